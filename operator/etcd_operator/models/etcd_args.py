"""The etcd flags `spec.etcd.extraArgs` may set: an allowlist, each flag with the type of its value.

A deny-list can never keep up with etcd: every release adds flags, and any flag
the operator forgot (`--config-file`, `--listen-client-http-urls`, the agent's
own `--etcd-bin`) overrides what the operator builds. So only flags known to be
safe to tune are accepted, each value checked by type at admission. The rest are
refused with the reason of their group: flags the operator owns, flags that risk
data loss, the agent's own flags, and duplicates of the typed `spec.etcd` fields.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic.json_schema import JsonDict

from etcd_node.flags import AGENT_FLAGS

# Go's time.ParseDuration, without the µs spelling: 500ms, 2s, 1h30m, 0.
DURATION = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+)$"
MAX_UINT32 = 2**32 - 1
MAX_INT = 10**15


@dataclass(frozen=True)
class Tunable:
    """One allowed flag: `kind` is int, bool, duration, enum or pattern."""

    kind: str
    values: tuple[str, ...] = ()  # enum
    minimum: int = 0  # int
    maximum: int = MAX_INT  # int
    pattern: str = ""  # pattern
    since_minor: int = 5  # the first etcd 3.x minor version that has the flag

    def describe(self) -> str:
        if self.kind == "int":
            return f"a whole number {self.minimum}-{self.maximum}"
        if self.kind == "bool":
            return "true or false"
        if self.kind == "duration":
            return "a Go duration such as 500ms, 10s or 1h"
        if self.kind == "enum":
            return " | ".join(v or '""' for v in self.values)
        return f"matching {self.pattern}"


def _int(minimum: int = 0, maximum: int = MAX_INT, since: int = 5) -> Tunable:
    return Tunable("int", minimum=minimum, maximum=maximum, since_minor=since)


def _bool(since: int = 5) -> Tunable:
    return Tunable("bool", since_minor=since)


def _duration(since: int = 5) -> Tunable:
    return Tunable("duration", since_minor=since)


def _enum(*values: str, since: int = 5) -> Tunable:
    return Tunable("enum", values=values, since_minor=since)


TUNABLE: dict[str, Tunable] = {
    # Requests and gRPC.
    "max-request-bytes": _int(1, 64 * 2**20),
    "max-txn-ops": _int(1, 1_000_000),
    "max-concurrent-streams": _int(1, MAX_UINT32),
    "grpc-keepalive-min-time": _duration(),
    "grpc-keepalive-interval": _duration(),
    "grpc-keepalive-timeout": _duration(),
    # Raft and the backend.
    "pre-vote": _bool(),
    "initial-election-tick-advance": _bool(),
    "raft-read-timeout": _duration(),
    "raft-write-timeout": _duration(),
    "backend-batch-interval": _duration(),
    "backend-batch-limit": _int(0, MAX_UINT32),
    "backend-bbolt-freelist-type": _enum("map", "array"),
    "max-snapshots": _int(0, 1_000_000),
    "max-wals": _int(0, 1_000_000),
    # Logs, metrics, profiling.
    "log-level": _enum("debug", "info", "warn", "error", "panic", "fatal"),
    "log-format": _enum("json", "console", since=6),
    "metrics": _enum("basic", "extensive"),
    "enable-pprof": _bool(),
    # Auth and TLS parameters (the certificates themselves are the operator's).
    "auth-token-ttl": _int(1, MAX_UINT32),
    "bcrypt-cost": _int(4, 31),
    "cipher-suites": Tunable("pattern", pattern=r"^[A-Z0-9_]+(,[A-Z0-9_]+)*$"),
    "tls-min-version": _enum("TLS1.2", "TLS1.3"),
    "tls-max-version": _enum("TLS1.2", "TLS1.3"),
    # Corruption checks, compaction, leases, defragmentation (experimental- on 3.5, renamed in 3.6).
    "experimental-compact-hash-check-enabled": _bool(),
    "experimental-compact-hash-check-time": _duration(),
    "experimental-compaction-batch-limit": _int(0, MAX_INT),
    "experimental-compaction-sleep-interval": _duration(),
    "experimental-corrupt-check-time": _duration(),
    "experimental-initial-corrupt-check": _bool(),
    "experimental-watch-progress-notify-interval": _duration(),
    "experimental-warning-apply-duration": _duration(),
    "experimental-enable-lease-checkpoint": _bool(),
    "experimental-enable-lease-checkpoint-persist": _bool(),
    "experimental-stop-grpc-service-on-defrag": _bool(),
    "experimental-txn-mode-write-with-shared-buffer": _bool(),
    "experimental-bootstrap-defrag-threshold-megabytes": _int(0, MAX_UINT32),
    "experimental-downgrade-check-time": _duration(),
    "experimental-memory-mlock": _bool(),
    "compact-hash-check-time": _duration(since=6),
    "compaction-batch-limit": _int(0, MAX_INT, since=6),
    "compaction-sleep-interval": _duration(since=6),
    "corrupt-check-time": _duration(since=6),
    "watch-progress-notify-interval": _duration(since=6),
    "warning-apply-duration": _duration(since=6),
    "warning-unary-request-duration": _duration(since=6),
    "bootstrap-defrag-threshold-megabytes": _int(0, MAX_UINT32, since=6),
    "downgrade-check-time": _duration(since=6),
    "memory-mlock": _bool(since=6),
    "snapshot-catchup-entries": _int(1, MAX_INT, since=6),
    "feature-gates": Tunable("pattern", pattern=r"^[A-Za-z0-9]+=(true|false)(,[A-Za-z0-9]+=(true|false))*$", since_minor=6),
}

# etcd 3.6 refuses a flag given under both its experimental and its new name.
RENAMED_IN_3_6: tuple[str, ...] = tuple(
    name for name, t in TUNABLE.items() if t.since_minor == 6 and f"experimental-{name}" in TUNABLE
)

# Flags the operator sets itself, or that would bypass what it sets: names, URLs, listeners, bootstrap, TLS.
OWNED_FLAGS: tuple[str, ...] = (
    "name",
    "data-dir",
    "wal-dir",
    "config-file",
    "listen-peer-urls",
    "listen-client-urls",
    "listen-client-http-urls",
    "listen-metrics-urls",
    "enable-grpc-gateway",
    "initial-advertise-peer-urls",
    "advertise-client-urls",
    "initial-cluster",
    "initial-cluster-state",
    "initial-cluster-token",
    "discovery",
    "cert-file",
    "key-file",
    "trusted-ca-file",
    "client-cert-auth",
    "client-cert-file",
    "client-key-file",
    "client-crl-file",
    "client-cert-allowed-hostname",
    "auto-tls",
    "peer-cert-file",
    "peer-key-file",
    "peer-trusted-ca-file",
    "peer-client-cert-auth",
    "peer-client-cert-file",
    "peer-client-key-file",
    "peer-crl-file",
    "peer-cert-allowed-cn",
    "peer-cert-allowed-hostname",
    "peer-auto-tls",
    "peer-skip-client-san-verification",
    "experimental-peer-skip-client-san-verification",
    "self-signed-cert-validity",
    "proxy",
)
OWNED_PREFIXES: tuple[str, ...] = ("discovery-",)

# Flags that can lose or fork data: etcd-operator never sets them, and neither may a spec.
DATA_LOSS_FLAGS: tuple[str, ...] = ("unsafe-no-fsync", "force-new-cluster", "strict-reconfig-check")

# etcd-node's own flags (node_image/etcd_node/flags.py): they never reach etcd, and would change the agent.
AGENT_ONLY_FLAGS: tuple[str, ...] = tuple(sorted(AGENT_FLAGS))
AGENT_PREFIXES: tuple[str, ...] = ("join-",)

# Flags with a typed field in spec.etcd: the flag name and the field to use instead.
TYPED_FIELDS: dict[str, str] = {
    "heartbeat-interval": "etcd.heartbeatInterval",
    "election-timeout": "etcd.electionTimeout",
    "quota-backend-bytes": "etcd.quotaBackendBytes",
    "auto-compaction-mode": "etcd.autoCompactionMode",
    "auto-compaction-retention": "etcd.autoCompactionRetention",
    "snapshot-count": "etcd.snapshotCount",
}


def _literal(text: str) -> str:
    """Text inside a single-quoted CEL string literal."""
    assert "'" not in text and "\\" not in text, text
    return text


def _cel_list(items: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(f"'{i}'" for i in items) + "]"


def _prefixed(key: str, prefixes: tuple[str, ...]) -> str:
    return " || ".join(f"{key}.startsWith('{p}')" for p in prefixes)


def _value_ok(value: str, t: Tunable) -> str:
    """A CEL predicate on one flag's value (regexes as CEL raw strings)."""
    if t.kind == "int":
        return f"({value}.matches(r'^[0-9]{{1,16}}$') && int({value}) >= {t.minimum} && int({value}) <= {t.maximum})"
    if t.kind == "bool":
        return f"{value} in ['true', 'false']"
    if t.kind == "duration":
        return f"{value}.matches(r'{DURATION}')"
    if t.kind == "enum":
        return f"{value} in {_cel_list(t.values)}"
    return f"{value}.matches(r'{t.pattern}')"


def _group_predicate(kind: str) -> str | None:
    """A CEL predicate over the key k: true unless k is a tunable of this kind with a bad value."""
    flags = [name for name, t in TUNABLE.items() if t.kind == kind]
    if not flags:
        return None
    value = "self.extraArgs[k]"
    if kind in ("bool", "duration"):  # one check for all of them
        return f"!(k in {_cel_list(flags)}) || {_value_ok(value, TUNABLE[flags[0]])}"
    return " && ".join(f"(k != '{f}' || {_value_ok(value, TUNABLE[f])})" for f in flags)


def extra_args_rules() -> list[JsonDict]:
    """CEL rules on spec.etcd (self is EtcdOptions): which flags, and each value by type."""
    has = "!has(self.extraArgs) || "
    rules: list[JsonDict] = []

    def add(predicate: str, message_prefix: str, message_suffix: str) -> None:
        # A map key has no maxLength, so a join of every offender costs too much for the API server's
        # estimate; the message names the first one.
        first = f"self.extraArgs.filter(k, !({predicate}))[0]"
        rules.append(
            {
                "rule": has + f"self.extraArgs.all(k, {predicate})",
                "messageExpression": f"'{_literal(message_prefix)}' + {first} + '=' + self.extraArgs[{first}] + "
                f"'{_literal(message_suffix)}'",
            }
        )

    owned = f"!(k in {_cel_list(OWNED_FLAGS)}) && !({_prefixed('k', OWNED_PREFIXES)})"
    add(
        owned,
        "etcd.extraArgs may not set flags the operator owns (names, URLs, listeners, bootstrap, TLS): --",
        "; use the typed fields (bootstrap, tls) instead",
    )
    add(
        f"!(k in {_cel_list(DATA_LOSS_FLAGS)})",
        "etcd.extraArgs may not set flags that risk losing data: --",
        "; recover a broken cluster from a snapshot instead",
    )
    agent = f"!(k in {_cel_list(AGENT_ONLY_FLAGS)}) && !({_prefixed('k', AGENT_PREFIXES)})"
    add(agent, "etcd.extraArgs may not set the flags of the etcd-node agent: --", "; the operator sets what it needs")
    typed = ", ".join(f"{flag} -> {field}" for flag, field in TYPED_FIELDS.items())
    add(
        f"!(k in {_cel_list(tuple(TYPED_FIELDS))})",
        "etcd.extraArgs duplicates a typed field: --",
        f"; use the typed field instead ({typed})",
    )
    refused = f"k in {_cel_list(OWNED_FLAGS + DATA_LOSS_FLAGS + AGENT_ONLY_FLAGS + tuple(TYPED_FIELDS))}"
    prefixes = _prefixed("k", OWNED_PREFIXES + AGENT_PREFIXES)
    add(
        f"k in {_cel_list(tuple(TUNABLE))} || {refused} || {prefixes}",
        "etcd.extraArgs: --",
        " is not among the etcd flags etcd-operator allows to tune; see `kubectl explain "
        "etcdcluster.spec.etcd.extraArgs` for the list",
    )
    for kind, what in (
        ("int", "whole numbers in the range listed for the flag"),
        ("bool", "true or false"),
        ("duration", "Go durations such as 500ms, 10s or 1h"),
        ("enum", "one of the values listed for the flag"),
        ("pattern", "in the format listed for the flag"),
    ):
        predicate = _group_predicate(kind)
        if predicate is None:
            continue
        add(predicate, "etcd.extraArgs: --", f": values must be {what}; see `kubectl explain etcdcluster.spec.etcd.extraArgs`")
    renamed = " && ".join(f"!('{n}' in self.extraArgs && 'experimental-{n}' in self.extraArgs)" for n in RENAMED_IN_3_6)
    rules.append(
        {
            "rule": has + renamed,
            "message": "etcd.extraArgs sets a flag under both its experimental- name and its etcd 3.6 name "
            f"({', '.join(RENAMED_IN_3_6)}); keep one",
        }
    )
    return rules


def version_rules() -> list[JsonDict]:
    """CEL rules on the spec (self is EtcdClusterSpec): flags the chosen etcd version does not have."""
    newer = [name for name, t in TUNABLE.items() if t.since_minor > 5]
    guard = "!has(self.etcd) || !has(self.etcd.extraArgs) || "
    return [
        {
            "rule": guard + f"!self.version.startsWith('3.5.') || self.etcd.extraArgs.all(k, !(k in {_cel_list(newer)}))",
            "messageExpression": "'etcd.extraArgs: --' + self.etcd.extraArgs.filter(k, k in "
            + _cel_list(newer)
            + ")[0] + ' needs etcd 3.6 or later (spec.version is ' + self.version + '): use its experimental- name "
            "on 3.5, or upgrade first'",
            "fieldPath": ".etcd.extraArgs",
        },
        {
            "rule": guard + r"self.version.matches(r'^3\.[56]\.') || "
            "self.etcd.extraArgs.all(k, !k.startsWith('experimental-'))",
            "messageExpression": "'etcd.extraArgs: --' + self.etcd.extraArgs.filter(k, k.startsWith('experimental-'))"
            "[0] + ': etcd ' + self.version + ' has no experimental- flags; use the name without experimental-'",
            "fieldPath": ".etcd.extraArgs",
        },
    ]


def describe_allowlist() -> str:
    """The allowlist for the field's description, so `kubectl explain` lists it."""
    parts = []
    for name, t in TUNABLE.items():
        since = " (3.6+)" if t.since_minor > 5 else ""
        parts.append(f"{name}{since}: {t.describe()}")
    return "; ".join(parts)
