"""What a pre-start check found: an error stops the member, a warning does not."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from .contract import AgentError


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One problem, phrased for the person who has to fix it.

    `message` says what is wrong (etcd's clustering-guide wording where it has
    one); `fix` says what to change. `code` is stable, for tests and for the
    operator to turn into a status condition reason.
    """

    severity: Severity
    code: str
    message: str
    fix: str = ""

    def render(self) -> str:
        """The lines for a person and, for an error, the coded first line the operator parses.

        An error's first line is `etcd-node: error[Code]: message` (see
        `contract.parse_agent_error`), so the operator matches the code, never the
        words; the fix follows on its own line.
        """
        if self.severity is Severity.ERROR:
            text = AgentError(self.code, self.message).render()
        else:
            text = f"etcd-node: {self.severity.value}: {self.message}"
        return f"{text}\n  fix: {self.fix}" if self.fix else text


def error(code: str, message: str, fix: str = "") -> Finding:
    return Finding(Severity.ERROR, code, message, fix)


def warning(code: str, message: str, fix: str = "") -> Finding:
    return Finding(Severity.WARNING, code, message, fix)


def errors(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity is Severity.ERROR]
