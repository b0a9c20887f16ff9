import json

import pytest

from etcd_node import cli
from etcd_node.contract import AgentError, parse_agent_error

from . import guide

ETCD = {"ETCD_NODE_ETCD_BIN": "/opt/etcd/bin/etcd"}


def run(capsys, argv, environ=ETCD):
    code = cli.main(argv, environ)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", guide.STATIC)
def test_dry_run_prints_etcd_argv_for_guide_commands(capsys, command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, ["--dry-run", *guide.args(command)])
    assert code == 0
    argv = json.loads(out)
    assert argv[0] == "/opt/etcd/bin/etcd"
    assert "--initial-cluster-token=etcd-cluster-1" in argv
    assert not any(a.startswith("--dry-run") for a in argv)


def test_environment_variables_as_in_the_guide(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = ETCD | {
        "ETCD_INITIAL_CLUSTER": "infra0=http://10.0.1.10:2380,infra1=http://10.0.1.11:2380,infra2=http://10.0.1.12:2380",
        "ETCD_INITIAL_CLUSTER_STATE": "new",
        "ETCD_INITIAL_CLUSTER_TOKEN": "etcd-cluster-1",
    }
    argv = guide.args(guide.STATIC[1])
    flags_only = [a for a in argv if not a.startswith("infra0=")]
    cut = flags_only.index("--initial-cluster")
    code, out, _ = run(capsys, ["--dry-run", *flags_only[:cut], *flags_only[cut + 1 :]], env)
    assert code == 0
    assert "--initial-cluster=infra0=http://10.0.1.10:2380,infra1=http://10.0.1.11:2380,infra2=http://10.0.1.12:2380" in (
        json.loads(out)
    )


@pytest.mark.parametrize(
    ("command", "text"),
    [
        (guide.NOT_LISTED, "infra1 not listed in the initial cluster config"),
        (guide.URL_MISMATCH, "infra0 has different advertised URLs in the cluster and advertised peer URLs list"),
    ],
)
def test_guide_error_cases_exit_non_zero_with_clear_message(capsys, command, text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, ["--dry-run", *guide.args(command)])
    assert code == 1
    assert out == ""
    assert text in err and '"fix"' in err


def test_termination_log_gets_the_errors(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    log = tmp_path / "termination-log"
    code, _, _ = run(capsys, ["--dry-run", *guide.args(guide.NOT_LISTED)], ETCD | {"ETCD_NODE_TERMINATION_LOG": str(log)})
    assert code == 1
    text = log.read_text()
    # The guide's command also listens on https without a certificate: both errors, each coded, each with its fix.
    assert "etcd-node: error[MemberNotListed]: infra1 not listed in the initial cluster config" in text
    assert "\n  fix: add infra1=http://10.0.1.11:2380 to --initial-cluster" in text
    first = text.splitlines()[0]
    assert parse_agent_error(text) == AgentError("TLSMissing", first.removeprefix("etcd-node: error[TLSMissing]: "))


def test_invalid_command_line_is_coded_in_the_termination_log(capsys, tmp_path):
    log = tmp_path / "termination-log"
    env = ETCD | {"ETCD_NODE_TERMINATION_LOG": str(log), "ETCD_NODE_POD_NAME": "main-0",
                  "ETCD_NODE_POD_NAMESPACE": "db", "ETCD_NODE_SERVICE": "main", "ETCD_NODE_BOOTSTRAP": "magic"}
    assert run(capsys, ["--dry-run"], env)[0] == 2
    assert parse_agent_error(log.read_text()).code == "InvalidCommandLine"
    assert "use static, dns-srv or discovery" in log.read_text()


def test_proxy_is_refused_with_the_alternatives(capsys):
    code, _, err = run(capsys, ["--proxy", "on", "--listen-client-urls", "http://127.0.0.1:8080"])
    assert code == 1
    assert "etcd-node gateway" in err and "grpc-proxy" in err


def test_invalid_command_line_exits_2(capsys):
    assert run(capsys, ["infra0"])[0] == 2


def test_kubernetes_identity_fills_flags_and_explicit_flags_win(capsys, tmp_path):
    env = ETCD | {
        "ETCD_NODE_POD_NAME": "main-0",
        "ETCD_NODE_POD_NAMESPACE": "db",
        "ETCD_NODE_SERVICE": "main",
        "ETCD_NODE_INITIAL_MEMBERS": "3",
        "ETCD_DATA_DIR": str(tmp_path / "data"),
        "ETCD_INITIAL_CLUSTER_TOKEN": "db-main-uid",
    }
    code, out, _ = run(capsys, ["--dry-run", "--listen-client-urls=http://0.0.0.0:2379,http://127.0.0.1:2379"], env)
    assert code == 0
    argv = json.loads(out)
    assert "--name=main-0" in argv
    assert "--listen-client-urls=http://0.0.0.0:2379,http://127.0.0.1:2379" in argv
    assert "--initial-advertise-peer-urls=http://main-0.main.db.svc.cluster.local:2380" in argv


def test_gateway_dry_run(capsys):
    code, out, _ = run(capsys, ["gateway", "--dry-run", "--endpoints=10.0.1.10:2379,10.0.1.11:2379"])
    assert code == 0
    assert json.loads(out) == ["/opt/etcd/bin/etcd", "gateway", "start", "--endpoints=10.0.1.10:2379,10.0.1.11:2379"]


@pytest.mark.parametrize(("token", "said"), [("main-r1", "would restore r1"), ("main", "not this pod's restore")])
def test_an_in_place_request_is_decided_from_the_pods_own_token_before_anything_else(capsys, tmp_path, token, said):
    request = tmp_path / "restore.json"
    request.write_text(json.dumps({"token": "main-r1", "source": ["--path=/backups/x.db"], "requestID": "r1",
                                   "initialCluster": "main-0=http://main-0.main.db.svc.cluster.local:2380"}))  # fmt: skip
    (tmp_path / "data" / "member" / "wal").mkdir(parents=True)
    (tmp_path / "data" / "member" / "wal" / "0.wal").write_text("")
    env = ETCD | {"ETCD_NODE_POD_NAME": "main-0", "ETCD_NODE_POD_NAMESPACE": "db", "ETCD_NODE_SERVICE": "main",
                  "ETCD_DATA_DIR": str(tmp_path / "data"), "ETCD_INITIAL_CLUSTER_TOKEN": token,
                  "ETCD_NODE_RESTORE_FILE": str(request)}  # fmt: skip
    code, out, err = run(capsys, ["--dry-run"], env)
    assert code == 0 and said in err, err
    assert (tmp_path / "data" / "member" / "wal" / "0.wal").exists()  # a dry run moves nothing
