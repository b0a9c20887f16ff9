import pytest

from etcd_node import flags


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--name", "infra0"], {"name": "infra0"}),
        (["-name", "infra0"], {"name": "infra0"}),
        (["--name=infra0"], {"name": "infra0"}),
        (["--auto-tls"], {"auto-tls": "true"}),
        (["--auto-tls=false", "--name", "x"], {"auto-tls": "false", "name": "x"}),
        (["--client-cert-auth", "--trusted-ca-file=/ca.crt"], {"client-cert-auth": "true", "trusted-ca-file": "/ca.crt"}),
        (["--name", "a", "--name", "b"], {"name": "b"}),
        (["--initial-cluster-state=new"], {"initial-cluster-state": "new"}),
    ],
)
def test_parse_argv_spellings(argv, expected):
    options, agent = flags.parse_argv(argv)
    assert options == expected
    assert agent == {}


def test_agent_flags_are_kept_apart():
    options, agent = flags.parse_argv(["--dry-run", "--name", "x", "--etcd-bin", "/bin/etcd"])
    assert options == {"name": "x"}
    assert agent == {"dry-run": "true", "etcd-bin": "/bin/etcd"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["infra0"], "is not a valid flag"),
        (["--name"], "flag needs an argument: --name"),
        (["--auto-tls=maybe"], "invalid boolean value"),
        (["--", "x"], "after '--'"),
    ],
)
def test_parse_argv_errors(argv, message):
    with pytest.raises(flags.FlagError, match=message):
        flags.parse_argv(argv)


def test_environment_fills_unset_flags_and_command_line_wins():
    parsed = flags.parse(
        ["--name", "cli"],
        {
            "ETCD_NAME": "env",
            "ETCD_INITIAL_CLUSTER_STATE": "new",
            "ETCD_UNSUPPORTED_ARCH": "arm",
            "ETCD_BIN": "/somewhere/etcd",
            "ETCD_NODE_DRY_RUN": "true",
            "HOME": "/root",
        },
    )
    assert parsed.options == {"name": "cli", "initial-cluster-state": "new"}
    assert parsed.from_env == {"initial-cluster-state"}
    assert parsed.agent == {"dry-run": "true"}


@pytest.mark.parametrize(
    ("var", "flag"),
    [
        ("ETCD_INITIAL_CLUSTER", "initial-cluster"),
        ("ETCD_DISCOVERY_PROXY", "discovery-proxy"),
        ("ETCD_NODE_POD_NAME", None),
        ("ETCD_UNSUPPORTED_ARCH", None),
        ("ETCD_NOT_A_FLAG", None),
        ("PATH", None),
    ],
)
def test_flag_for_env(var, flag):
    assert flags.flag_for_env(var) == flag


def test_render_always_uses_equals():
    assert flags.render({"name": "infra0", "auto-tls": "true"}) == ["--name=infra0", "--auto-tls=true"]
