"""`python -m etcd_operator` / `etcd-operator`: structlog set up once, then kopf."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys

import kopf
import structlog

from . import metrics
from .adapters.kube import load_config
from .controller import pod_certificates


def configure_logging(json: bool) -> None:
    shared: list[structlog.typing.Processor] = [structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso", utc=True)]
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    # kopf logs through the standard library: render its records the same way.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(processor=renderer, foreign_pre_chain=shared))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def namespace_name(value: str) -> str:
    """A namespace's exact name: with --namespace kopf lists no namespaces, so a glob would match nothing."""
    if not _NAMESPACE.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a namespace name (a DNS label: a-z, 0-9 and '-')")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="etcd-operator")
    parser.add_argument(
        "--namespace", action="append", default=[], type=namespace_name,
        help="watch only this namespace (repeat for several); needs no cluster-wide permission. Default: all",
    )  # fmt: skip
    parser.add_argument("--liveness", default=os.environ.get("ETCD_OPERATOR_LIVENESS", "http://0.0.0.0:8080/healthz"))
    parser.add_argument(
        "--metrics-address", default=os.environ.get("ETCD_OPERATOR_METRICS", "0.0.0.0:8081"),
        help="host:port of the Prometheus /metrics endpoint; empty disables it",
    )  # fmt: skip
    parser.add_argument("--log-format", choices=("json", "console"), default=os.environ.get("ETCD_OPERATOR_LOG_FORMAT"))
    args = parser.parse_args(argv)
    configure_logging(json=(args.log_format or ("console" if sys.stderr.isatty() else "json")) == "json")
    load_config()
    if args.metrics_address:
        metrics.serve(args.metrics_address)
    from .handlers import backup, cluster, settings  # noqa: F401 - registers the handlers

    if pod_certificates():
        from .handlers import podcerts  # noqa: F401 - the members' pod certificate signer

    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness or None,
        memo=kopf.Memo(namespaces=tuple(args.namespace)),  # for the settings handler
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
