"""Every row of the README's etcd-node flag table: the agent consumes the flag, etcd never sees it."""

import json
import re
from datetime import UTC, datetime

import pytest

from etcd_node import cli, flags, join, plan, preflight, srv
from etcd_node.httpjson import TLSClient

from . import guide
from .test_plan import readme_table

FLAG_TABLE = readme_table("| Flag / variable | Meaning |")
ETCD = "/opt/etcd/bin/etcd"
# A value for each agent flag that names nothing etcd would accept (files need not exist: no call is made).
VALUES = {
    "etcd-bin": "/opt/other/etcd",
    "join-endpoints": "http://10.9.9.9:2379",
    "join-ca-file": "/run/join/ca.crt",
    "join-cert-file": "/run/join/client.crt",
    "join-key-file": "/run/join/client.key",
    "id-mismatch-grace": "42.5s",
}
VARIABLE_VALUES = {"ETCD_NODE_TERMINATION_LOG": "termination-log", "ETCD_NODE_DRY_RUN": "true"}


def spans(cell: str) -> list[str]:
    return [span.replace("\\|", "|") for span in re.findall(r"`([^`]+)`", cell)]


def row_flags(cell: str) -> list[str]:
    return [flag for span in spans(cell) for flag in re.findall(r"(?<![\w-])--([a-z][a-z-]*)", span)]


def row_variables(cell: str) -> list[str]:
    return [var for span in spans(cell) for var in re.findall(r"ETCD_NODE_[A-Z_]+", span)]


def dry_run(capsys, argv, environ):
    code = cli.main(argv, {"ETCD_NODE_ETCD_BIN": ETCD} | environ)
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def assert_not_passed_to_etcd(argv, name, value=None):
    passed = {a.removeprefix("--").split("=", 1)[0] for a in argv[1:]}
    assert name not in passed, argv
    assert value is None or not any(value in a for a in argv[1:]), argv


def test_the_table_documents_every_agent_flag_and_its_variable():
    documented_flags = {flag for row in FLAG_TABLE for flag in row_flags(row[0])}
    documented_variables = {var for row in FLAG_TABLE for var in row_variables(row[0])}
    assert flags.AGENT_FLAGS - documented_flags == set()
    assert {flags.agent_env_var(flag) for flag in flags.AGENT_FLAGS} - documented_variables == set()


@pytest.mark.parametrize("row", FLAG_TABLE, ids=lambda row: spans(row[0])[0].split()[0])
def test_readme_flag_row_is_consumed_by_the_agent(capsys, tmp_path, monkeypatch, row):
    monkeypatch.chdir(tmp_path)
    cell = row[0]
    if spans(cell)[0].startswith("etcd-node gateway"):
        gateway_row(capsys, monkeypatch, cell)
        return
    names, variables = row_flags(cell), row_variables(cell)
    assert names or variables, f"row names no flag or variable: {cell}"
    base = guide.args(guide.STATIC[0])
    for name in names:
        assert name in flags.AGENT_FLAGS, f"--{name} is in the agent's table but would be passed to etcd"
        given = [f"--{name}"] if name in flags.AGENT_BOOL_FLAGS else [f"--{name}", VALUES[name]]
        argv = dry_run(capsys, ["--dry-run", *given, *base], {})
        assert_not_passed_to_etcd(argv, name, VALUES.get(name))
    for var in variables:
        value = VARIABLE_VALUES.get(var) or VALUES[var.removeprefix("ETCD_NODE_").lower().replace("_", "-")]
        environ = {var: value}
        argv = dry_run(capsys, ["--dry-run", *base], environ)
        assert_not_passed_to_etcd(argv, var.removeprefix("ETCD_NODE_").lower().replace("_", "-"), value)
        assert var not in flags.etcd_environ(environ)  # nor does it reach etcd's environment


def gateway_row(capsys, monkeypatch, cell):
    """`etcd-node gateway`: the agent finds the endpoints (a list or SRV records) for `etcd gateway start`."""
    assert {"endpoints", "discovery-srv", "listen-addr"} <= set(row_flags(cell))
    argv = dry_run(capsys, ["gateway", "--dry-run", "--endpoints", "10.0.1.10:2379", "--listen-addr", "127.0.0.1:23790"], {})
    assert argv == [ETCD, "gateway", "start", "--endpoints=10.0.1.10:2379", "--listen-addr=127.0.0.1:23790"]
    answer = srv.SrvAnswer("example.com", srv.record_names("example.com", kind="client"), (),
                           (srv.SrvTarget("infra0.example.com", 2379, ("10.0.1.10",)),))  # fmt: skip
    monkeypatch.setattr(srv, "lookup", lambda domain, name="", kind="server": answer)
    argv = dry_run(capsys, ["gateway", "--dry-run", "--discovery-srv", "example.com"], {})
    assert argv == [ETCD, "gateway", "start", "--endpoints=infra0.example.com:2379"]


def test_join_tls_flags_are_used_for_the_member_list_call(monkeypatch, tmp_path):
    calls = []

    def member_list(endpoints, tls=None, timeout=5.0):
        calls.append((tuple(endpoints), tls, timeout))
        return [join.Member(0x1, "", ("https://10.0.1.13:2380",), is_learner=True)]

    monkeypatch.setattr(join, "member_list", member_list)
    etcd = {"name": "infra3", "initial-advertise-peer-urls": "https://10.0.1.13:2380",
            "initial-cluster-state": "existing", "data-dir": str(tmp_path / "data"),
            "trusted-ca-file": "/etc/etcd/ca.crt", "cert-file": "/etc/etcd/server.crt", "key-file": "/etc/etcd/server.key"}  # fmt: skip
    agent = {"join-endpoints": "https://10.0.1.10:2379", "join-cert-file": "/run/join/client.crt",
             "join-key-file": "/run/join/client.key"}  # fmt: skip
    options = plan.Options.from_args(etcd, agent, ETCD)
    facts = preflight.gather(options, datetime(2026, 6, 1, tzinfo=UTC))
    # The client certificate is the agent's; the CA falls back to the member's own.
    assert calls == [(("https://10.0.1.10:2379",), TLSClient("/etc/etcd/ca.crt", "/run/join/client.crt",
                                                           "/run/join/client.key"), plan.JOIN_TIMEOUT)]  # fmt: skip
    argv, _ = plan.etcd_args(options, facts)
    assert "--initial-cluster=infra3=https://10.0.1.13:2380" in argv
    assert not any(a.startswith("--join-") for a in argv)


@pytest.mark.parametrize("raw", ["soon", "-1", "nan"])
def test_a_grace_that_is_not_seconds_is_an_invalid_command_line(capsys, raw):
    assert cli.main(["--dry-run", "--id-mismatch-grace", raw, *guide.args(guide.STATIC[0])], {"ETCD_NODE_ETCD_BIN": ETCD}) == 2
    assert "give a number of seconds" in capsys.readouterr().err
