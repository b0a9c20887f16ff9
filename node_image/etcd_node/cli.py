"""`etcd-node`: etcd's command line, checked first, then handed over to the real etcd.

    etcd-node [etcd flags...] [--dry-run] [--etcd-bin PATH] [--join-endpoints URLS]
    etcd-node gateway [--endpoints HOST:PORT,... | --discovery-srv DOMAIN] [--listen-addr ADDR]

Exit codes: 0 success (or exec), 1 a check failed, 2 the command line is invalid.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from . import flags, gateway, kube, preflight, watch
from .contract import ENV_TERMINATION_LOG
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
    options, agent = dict(parsed.options), dict(parsed.agent)
    if "proxy" in options or environ.get("ETCD_PROXY"):
        _report(log, [error("ProxyRemoved", *_PROXY_REMOVED)], environ)
        return 1
    if identity is not None:
        for name, value in derived.items():
            options.setdefault(name, value)
        log.info("derived member identity from the pod", pod=identity.pod, domain=identity.domain)
    etcd_bin = _etcd_bin(agent, environ)
    dry_run = flags.truthy(agent.get("dry-run"))
    plan = preflight.prepare(
        options, agent, etcd_bin, datetime.now(UTC), in_pod=identity is not None, dry_run=dry_run
    )
    _report(log, plan.findings, environ)
    if errors(plan.findings):
        return 1
    final = [etcd_bin, *flags.render(plan.options)]
    if dry_run:
        print(json.dumps(final))
        return 0
    # Our flags carry every option, and ETCD_NODE_* are ours: etcd would warn about each of them.
    env = {k: v for k, v in environ.items() if flags.flag_for_env(k) is None and not k.startswith("ETCD_NODE_")}
    log.info("handing over to etcd", etcd=etcd_bin, name=plan.options.get("name"), restarting=plan.restarting)
    watch.start(environ.get(ENV_TERMINATION_LOG, ""))
    os.execve(etcd_bin, final, env)
    return 0  # not reached


def _etcd_bin(agent: Mapping[str, str], environ: Mapping[str, str]) -> str:
    return agent.get("etcd-bin") or environ.get("ETCD_NODE_ETCD_BIN") or shutil.which("etcd") or "etcd"


def _report(log, findings: Sequence[Finding], environ: Mapping[str, str]) -> None:
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


def _gateway(argv: Sequence[str], environ: Mapping[str, str], log) -> int:
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
