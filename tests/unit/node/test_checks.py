import pytest

from etcd_node import checks, flags
from etcd_node.findings import Severity, errors

from . import guide


def options_of(command: str) -> dict[str, str]:
    return flags.parse_argv(guide.args(command))[0]


def codes(findings, severity=None):
    return [f.code for f in findings if severity is None or f.severity is severity]


def no_dns(host):
    return []


@pytest.mark.parametrize("command", guide.STATIC + guide.AUTO_TLS + guide.TLS_SELF_SIGNED)
def test_guide_static_commands_pass(command):
    findings = checks.check_flags(options_of(command), False, no_dns)
    assert errors(findings) == []


def test_guide_not_listed_error_uses_guide_wording():
    findings = checks.check_flags(options_of(guide.NOT_LISTED), False, no_dns)
    not_listed = [f for f in findings if f.code == "MemberNotListed"]
    assert len(not_listed) == 1
    assert not_listed[0].message.startswith("infra1 not listed in the initial cluster config")
    assert "infra1=http://10.0.1.11:2380" in not_listed[0].fix


def test_guide_advertised_url_mismatch():
    findings = checks.check_flags(options_of(guide.URL_MISMATCH), False, no_dns)
    assert codes(findings, Severity.ERROR) == ["AdvertisedURLMismatch"]
    assert "infra0 has different advertised URLs in the cluster and advertised peer URLs list" in findings[-1].message


def test_advertised_name_matching_listed_ip_after_resolving_is_accepted():
    options = options_of(guide.STATIC[0]) | {"initial-advertise-peer-urls": "http://infra0.example.com:2380"}
    resolve = {"infra0.example.com": ["10.0.1.10"]}.get
    assert errors(checks.check_flags(options, False, lambda h: resolve(h, []))) == []
    assert codes(checks.check_flags(options, False, no_dns), Severity.ERROR) == ["AdvertisedURLMismatch"]


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"listen-peer-urls": "http://infra0.example.com:2380"}, "DomainInListenURL"),
        ({"listen-client-urls": "http://infra0.example.com:2379"}, "DomainInListenURL"),
        ({"listen-peer-urls": "ftp://10.0.1.10:2380"}, "InvalidURL"),
        ({"initial-cluster": "infra0"}, "InvalidInitialCluster"),
        ({"discovery-srv": "example.com"}, "MultipleBootstrapSources"),
        ({"initial-cluster-state": "old"}, "InvalidClusterState"),
        ({"cert-file": "/a.crt"}, "TLSPairIncomplete"),
        ({"client-cert-auth": "true"}, "TrustedCAMissing"),
        ({"advertise-client-urls": "https://10.0.1.10:2379"}, "TLSMissing"),
        (
            {"initial-cluster": "infra0=http://10.0.1.10:2380,infra1=http://10.0.1.10:2380"},
            "DuplicatePeerURL",
        ),
        (
            {"initial-cluster": "infra0=http://10.0.1.10:2380,infra0=http://10.0.1.10:2380"},
            "DuplicateMemberName",
        ),
    ],
)
def test_flag_errors(changes, code):
    options = options_of(guide.STATIC[0]) | changes
    assert code in codes(checks.check_flags(options, False, no_dns), Severity.ERROR)


@pytest.mark.parametrize(
    ("changes", "removed", "code"),
    [
        ({"advertise-client-urls": "http://127.0.0.1:2379"}, (), "AdvertiseClientURLsLocalhost"),
        ({}, ("initial-cluster-token",), "ClusterTokenDefault"),
        ({"auto-tls": "true", "cert-file": "/a", "key-file": "/b"}, (), "AutoTLSIgnored"),
        ({"cert-file": "/a", "key-file": "/b"}, (), "TLSUnused"),
        (
            {"initial-cluster": "infra0=http://10.0.1.10:2380,infra0=http://10.0.9.9:2380"},
            (),
            "MemberWithSeveralHosts",
        ),
    ],
)
def test_flag_warnings(changes, removed, code):
    options = options_of(guide.STATIC[0]) | changes
    for flag in removed:
        options.pop(flag)
    assert code in codes(checks.check_flags(options, False, no_dns), Severity.WARNING)


def test_listen_client_urls_without_advertise_is_an_error():
    options = options_of(guide.STATIC[0])
    options.pop("advertise-client-urls")
    assert "AdvertiseClientURLsMissing" in codes(checks.check_flags(options, False, no_dns))


def test_localhost_is_allowed_in_listen_urls():
    options = options_of(guide.STATIC[0]) | {"listen-client-urls": "http://localhost:2379,http://10.0.1.10:2379"}
    assert "DomainInListenURL" not in codes(checks.check_flags(options, False, no_dns))


def test_restart_with_data_ignores_bootstrap_flags_and_says_so():
    options = options_of(guide.DISCOVERY[0]) | {"data-dir": "/var/lib/etcd"}
    findings = checks.check_flags(options, True, no_dns)
    assert errors(findings) == []
    (ignored,) = [f for f in findings if f.code == "DiscoveryIgnored"]
    assert ignored.message == (
        "discovery token ignored since a cluster has already been initialized. "
        "Valid log found at /var/lib/etcd/member/wal"
    )
    static = checks.check_flags(options_of(guide.STATIC[0]), True, no_dns)
    assert codes(static) == ["BootstrapFlagsIgnored"]
    assert "--initial-cluster," in static[0].message


def test_restart_skips_membership_checks():
    # A restarted member is judged by its data dir, not by bootstrap flags it no longer reads.
    assert "MemberNotListed" not in codes(checks.check_flags(options_of(guide.NOT_LISTED), True, no_dns))


def test_name_defaults_to_default_with_advertised_url():
    # etcd's own default: --initial-cluster is NAME=advertised peer URLs.
    findings = checks.check_flags({"name": "solo", "initial-advertise-peer-urls": "http://10.0.1.10:2380"}, False, no_dns)
    assert errors(findings) == []
