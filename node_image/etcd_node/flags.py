"""Read etcd's flags the way etcd does: Go-style argv plus `ETCD_*` variables.

Every command in etcd's clustering guide must work with `etcd-node` in place of
`etcd`, so the agent accepts the same spellings (`-name x`, `--name=x`,
`--auto-tls`, `--auto-tls=false`) and the same environment variables, with the
same precedence: a flag on the command line shadows its variable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .etcd_flags import BOOL_FLAGS, KNOWN_FLAGS

# Flags that belong to the agent itself; they never reach etcd.
AGENT_FLAGS: frozenset[str] = frozenset(
    {
        "dry-run",
        "etcd-bin",
        "join-endpoints",
        "join-ca-file",
        "join-cert-file",
        "join-key-file",
        "id-mismatch-grace",
    }
)
AGENT_BOOL_FLAGS: frozenset[str] = frozenset({"dry-run"})

# Variables that look like etcd's but are not flags (read by etcd or by us directly).
_NOT_FLAG_VARS: frozenset[str] = frozenset({"ETCD_UNSUPPORTED_ARCH"})


class FlagError(ValueError):
    """A command line that etcd itself would refuse to parse."""


@dataclass(frozen=True)
class ParsedArgs:
    """Options by canonical flag name (no dashes), in the order first given."""

    options: dict[str, str] = field(default_factory=dict)
    agent: dict[str, str] = field(default_factory=dict)
    from_env: frozenset[str] = frozenset()


def parse_argv(
    argv: Sequence[str], bools: frozenset[str] = BOOL_FLAGS
) -> tuple[dict[str, str], dict[str, str]]:
    """Split argv into etcd options and agent options.

    Unknown flags are kept (etcd will judge them) and assumed to take a value
    unless written `--flag=value`, matching Go's behaviour for non-bool flags.
    """
    options: dict[str, str] = {}
    agent: dict[str, str] = {}

    def _is_bool(name: str) -> bool:
        return name in bools or name in AGENT_BOOL_FLAGS

    i = 0
    args = list(argv)
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            if i < len(args):
                raise FlagError(f"unexpected argument {args[i]!r} after '--': etcd takes flags only")
            break
        if not arg.startswith("-") or arg in ("-", "---") or arg.startswith("---"):
            raise FlagError(f"{arg!r} is not a valid flag: etcd takes flags only (did you forget '--' before it?)")
        body = arg.lstrip("-")
        name, eq, value = body.partition("=")
        if not name:
            raise FlagError(f"{arg!r} is not a valid flag")
        if not eq:
            if _is_bool(name):
                value = "true"
            elif i < len(args):
                value = args[i]
                i += 1
            else:
                raise FlagError(f"flag needs an argument: --{name}")
        elif _is_bool(name) and value.lower() not in ("true", "false", "1", "0", "t", "f"):
            raise FlagError(f"invalid boolean value {value!r} for --{name}: use true or false")
        target = agent if name in AGENT_FLAGS else options
        if name in target:
            # Go's flag package keeps the last value; say so rather than guess silently.
            target.pop(name)
        target[name] = value
    return options, agent


def env_var_for(flag: str) -> str:
    return "ETCD_" + flag.upper().replace("-", "_")


def agent_env_var(flag: str) -> str:
    """`ETCD_NODE_JOIN_ENDPOINTS` for `--join-endpoints`: every agent flag has a variable too."""
    return "ETCD_NODE_" + flag.upper().replace("-", "_")


def flag_for_env(var: str) -> str | None:
    """The etcd flag an `ETCD_*` variable sets, or None when it is not one."""
    if not var.startswith("ETCD_") or var.startswith("ETCD_NODE_") or var in _NOT_FLAG_VARS:
        return None
    name = var[len("ETCD_") :].lower().replace("_", "-")
    return name if name in KNOWN_FLAGS else None


def parse(argv: Sequence[str], environ: Mapping[str, str]) -> ParsedArgs:
    """Combine argv and environment; the command line wins, as in etcd."""
    options, agent = parse_argv(argv)
    from_env: set[str] = set()
    for var, value in environ.items():
        name = flag_for_env(var)
        if name is not None and name not in options:
            options[name] = value
            from_env.add(name)
    for name in AGENT_FLAGS:
        var = agent_env_var(name)
        if name not in agent and var in environ:
            agent[name] = environ[var]
    return ParsedArgs(options=options, agent=agent, from_env=frozenset(from_env))


def etcd_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment etcd runs with: our flags carry every option, and ETCD_NODE_* are the agent's.

    etcd would warn about a variable that shadows a flag, and about every
    ETCD_* variable it does not know.
    """
    return {k: v for k, v in environ.items() if flag_for_env(k) is None and not k.startswith("ETCD_NODE_")}


def truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("true", "1", "t", "yes")


def split_list(value: str | None) -> list[str]:
    """etcd's comma-separated list flags; blanks are dropped."""
    if not value:
        return []
    return [part.strip() for part in value.split(",") if part.strip()]


def render(options: Mapping[str, str]) -> list[str]:
    """Options as an etcd argv, always `--name=value` so no value is misread as a flag."""
    return [f"--{name}={value}" for name, value in options.items()]
