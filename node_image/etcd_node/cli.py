"""`etcd-node`: etcd's command line, checked first, then handed over to the real etcd.

    etcd-node [etcd flags...] [--dry-run] [--etcd-bin PATH] [--join-endpoints URLS]
              [--join-ca-file F] [--join-cert-file F] [--join-key-file F] [--id-mismatch-grace SECONDS]
    etcd-node gateway [--endpoints HOST:PORT,... | --discovery-srv DOMAIN] [--listen-addr ADDR]
    etcd-node backup --endpoints URLS ... | etcd-node restore --data-dir DIR ...   (see snapshots.py)
    etcd-node delete-snapshot (--s3-bucket B --s3-key K ... | --path FILE)

Exit codes: 0 success (or exec), 1 a check failed, 2 the command line is invalid.

The shape is gather facts (preflight, I/O) -> decide (plan, pure) -> exec; this
module only wires them together and reports.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from structlog.typing import FilteringBoundLogger

from . import datadir, flags, gateway, kube, plan, preflight, watch
from .contract import ENV_RECOVERY_FILE, ENV_RESTORE_FILE, ENV_TERMINATION_LOG, RECOVERY_FILE, RESTORE_FILE
from .findings import Finding, Severity, error, errors
from .log import configure

PASS_THROUGH = {"--version", "-version", "--help", "-help", "-h", "grpc-proxy"}

_INVALID_FIX = (
    "correct the flag or ETCD_NODE_* variable named above; etcd-node takes etcd's own flags, written as etcd "
    "takes them (--name=value or --name value)"
)

_PROXY_REMOVED = (
    "--proxy runs etcd's v2-only proxy, which etcd 3.6 removed",
    "use `etcd-node gateway --endpoints=...` (a TCP gateway) or `etcd grpc-proxy start` for a v3 proxy",
)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = dict(os.environ if environ is None else environ)
    log = configure()
    if argv and argv[0] == "gateway":
        return _gateway(argv[1:], environ, log)
    if argv and argv[0] in ("backup", "restore", "delete-snapshot"):
        from . import snapshots

        run = {"backup": snapshots.main_backup, "restore": snapshots.main_restore,
               "delete-snapshot": snapshots.main_delete}[argv[0]]  # fmt: skip
        return run(argv[1:], environ)
    if argv and argv[0] in PASS_THROUGH:
        etcd_bin = _etcd_bin({}, environ)
        os.execve(etcd_bin, [etcd_bin, *argv], environ)
    try:
        parsed = flags.parse(argv, environ)
        identity = kube.identity_from_env(environ)
        derived = kube.derived_options(identity, environ) if identity is not None else {}
    except (flags.FlagError, kube.PodIdentityError) as exc:
        _report(log, [error("InvalidCommandLine", str(exc), _INVALID_FIX)], environ)
        return 2
    etcd_options = dict(parsed.options)
    if "proxy" in etcd_options or environ.get("ETCD_PROXY"):
        _report(log, [error("ProxyRemoved", *_PROXY_REMOVED)], environ)
        return 1
    if identity is not None:
        for name, value in derived.items():
            etcd_options.setdefault(name, value)
        log.info("derived member identity from the pod", pod=identity.pod, domain=identity.domain)
    try:
        options = plan.Options.from_args(
            etcd_options, parsed.agent, _etcd_bin(parsed.agent, environ), in_pod=identity is not None
        )
    except flags.FlagError as exc:
        _report(log, [error("InvalidCommandLine", str(exc), _INVALID_FIX)], environ)
        return 2
    # An in-place restore replaces the data dir before anything looks at it: the member then starts
    # exactly as a restart from that data would.
    restored = _restore_in_place_if_asked(options, environ, log)
    if errors(restored):
        _report(log, restored, environ)
        return 1
    facts = preflight.gather(options, datetime.now(UTC))
    decided = plan.decide(options, facts)
    findings = list(decided.findings)
    if not errors(findings) and decided.set_aside is not None and not options.dry_run:
        findings += _set_aside(options, facts)
    if not errors(findings):
        findings += _restore_if_asked(decided, environ, log, options.dry_run)
    if not errors(findings):
        forced, recovered = _recover_if_asked(decided, facts, environ, log, options.dry_run)
        findings += recovered
        decided = replace(decided, argv=[*decided.argv, *forced])
    _report(log, findings, environ)
    if errors(findings):
        return 1
    if options.dry_run:
        print(json.dumps(decided.argv))
        return 0
    log.info("handing over to etcd", etcd=options.etcd_bin, name=decided.options.get("name"),
             restarting=decided.restarting)  # fmt: skip
    # Only a member without data of its own can be one that never belonged: the watcher may stop it.
    stop_after = None if decided.restarting else options.id_mismatch_grace
    watch.start(environ.get(ENV_TERMINATION_LOG, ""), stop_on_mismatch_after=stop_after)
    os.execve(options.etcd_bin, decided.argv, flags.etcd_environ(environ))
    return 0  # not reached


def _set_aside(options: plan.Options, facts: plan.Facts) -> list[Finding]:
    """Move a removed incarnation's data dir aside (never delete it); a failure stops the member."""
    try:
        datadir.set_aside(options.etcd, facts.now)
    except OSError as exc:
        return [
            error(
                "StaleDataNotSetAside",
                f"cannot move the previous member's data dir aside: {exc}",
                "make the data volume writable by the etcd user (etcd-node renames, never deletes); or move "
                "the data dir away by hand",
            )
        ]
    return []


def _restore_in_place_if_asked(options: plan.Options, environ: Mapping[str, str],
                               log: FilteringBoundLogger) -> list[Finding]:  # fmt: skip
    """A running cluster restored under its name: this member restores once per request, before etcd starts."""
    from . import bootstrap_restore, inplace_restore

    request = bootstrap_restore.read_request(Path(environ.get(ENV_RESTORE_FILE) or RESTORE_FILE))
    if request is None or isinstance(request, Finding) or not request.in_place:
        return []  # an unreadable request is reported by _restore_if_asked
    log.info("in-place restore request", request=request.request_id, source=list(request.source))
    done, findings = inplace_restore.apply(request, options.etcd, options.dry_run)
    if done:
        log.info(done, request=request.request_id)
    return findings


def _restore_if_asked(decided: plan.Plan, environ: Mapping[str, str], log: FilteringBoundLogger,
                      dry_run: bool) -> list[Finding]:  # fmt: skip
    """A cluster created from a backup: this initial member restores its data dir before etcd starts."""
    from . import bootstrap_restore

    request = bootstrap_restore.read_request(Path(environ.get(ENV_RESTORE_FILE) or RESTORE_FILE))
    if request is None:
        return []
    if isinstance(request, Finding):
        return [request]
    if request.in_place:
        return []  # handled before the decision (_restore_in_place_if_asked)
    if not bootstrap_restore.applies(request, decided.options, decided.restarting):
        log.info("restore request not for this start: the member restarts or joins", restarting=decided.restarting)
        return []
    if dry_run:
        log.info("would restore the data dir from the backup before etcd starts", source=list(request.source))
        return []
    log.info("restoring the data dir from the backup before etcd starts", source=list(request.source))
    return list(bootstrap_restore.restore(request, decided.options))


def _recover_if_asked(decided: plan.Plan, facts: plan.Facts, environ: Mapping[str, str], log: FilteringBoundLogger,
                      dry_run: bool) -> tuple[list[str], list[Finding]]:  # fmt: skip
    """A cluster recovering from quorum loss: the survivor forces a new cluster once; the others wait for it."""
    from . import recovery

    request = recovery.read_request(Path(environ.get(ENV_RECOVERY_FILE) or RECOVERY_FILE))
    if request is None:
        return [], []
    if isinstance(request, Finding):
        return [], [request]
    flags_, done, findings = recovery.apply(request, decided.options, facts.member_data, facts.members is not None,
                                            dry_run)  # fmt: skip
    if done:
        log.info("recovery request", request=request.request_id, member=request.member, decided=done)
    return flags_, findings


def _etcd_bin(agent: Mapping[str, str], environ: Mapping[str, str]) -> str:
    return agent.get("etcd-bin") or environ.get("ETCD_NODE_ETCD_BIN") or shutil.which("etcd") or "etcd"


def _report(log: FilteringBoundLogger, findings: Sequence[Finding], environ: Mapping[str, str]) -> None:
    for finding in findings:
        emit = log.error if finding.severity is Severity.ERROR else log.warning
        emit(finding.message, code=finding.code, fix=finding.fix)
    failed = errors(findings)
    path = environ.get(ENV_TERMINATION_LOG)
    if failed and path:
        try:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write("\n".join(f.render() for f in failed) + "\n")
        except OSError:
            pass


def _gateway(argv: Sequence[str], environ: Mapping[str, str], log: FilteringBoundLogger) -> int:
    try:
        options, agent = flags.parse_argv(argv, bools=frozenset({"insecure-discovery"}))
    except flags.FlagError as exc:
        _report(log, [error("InvalidCommandLine", str(exc), _INVALID_FIX)], environ)
        return 2
    endpoints = gateway.static_endpoints(options)
    if not endpoints and options.get("discovery-srv"):
        from . import srv

        answer = srv.lookup(options["discovery-srv"], options.get("discovery-srv-name", ""), kind="client")
        endpoints = gateway.endpoints_from_srv(answer)
        log.info("cluster endpoints from SRV records", records=answer.queried, endpoints=endpoints)
    args, findings = gateway.gateway_args(options, endpoints)
    _report(log, findings, environ)
    if errors(findings):
        return 1
    etcd_bin = _etcd_bin(agent, environ)
    final = [etcd_bin, *args]
    if flags.truthy(agent.get("dry-run")):
        print(json.dumps(final))
        return 0
    log.info("handing over to etcd gateway", endpoints=endpoints)
    os.execve(etcd_bin, final, environ)
    return 0  # not reached
