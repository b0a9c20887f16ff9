import pytest

from etcd_node import discovery
from etcd_node.discovery import DiscoveryState, Registration

URL = "http://10.0.1.9:2379/v2/keys/discovery/6c007a14875d53d9bf0ef5a6fc0257c817f0fb83"
ME = ["http://10.0.1.10:2380"]


def state(size=3, registered=(), failure=""):
    return DiscoveryState(URL, f"{URL}/_config", f"curl -X PUT {URL}/_config/size -d value=3", size,
                          tuple(registered), failure)


def test_size_missing_uses_the_guide_wording():
    (finding,) = discovery.check("infra0", ME, state(size=None))
    assert finding.message == f"error: the cluster doesn’t have a size configuration value in {URL}/_config"
    assert f"curl -X PUT {URL}/_config/size -d value=3" in finding.fix


@pytest.mark.parametrize(
    ("registered", "code"),
    [
        ([], None),
        ([Registration("k", "infra0", tuple(ME))], None),  # our own earlier registration
        ([Registration("k", "infra0", ("http://10.0.1.11:2380",))], "DuplicateMemberName"),
        ([Registration(f"k{i}", f"m{i}", (f"http://10.0.2.{i}:2380",)) for i in range(3)], "DiscoveryFull"),
    ],
)
def test_registry_cases(registered, code):
    assert [f.code for f in discovery.check("infra0", ME, state(registered=registered))] == ([code] if code else [])


def test_unreachable_service():
    (finding,) = discovery.check("infra0", ME, state(failure="connection refused"))
    assert finding.code == "DiscoveryUnreachable"
    assert "ETCD_DISCOVERY_PROXY" in finding.fix


def test_parse_registration_and_v3_endpoints():
    reg = discovery.parse_registration("/_etcd/registry/t/members/8e9e", "infra0=http://10.0.1.10:2380")
    assert (reg.name, reg.peer_urls) == ("infra0", ("http://10.0.1.10:2380",))
    assert discovery.v3_endpoint_urls({"discovery-endpoints": "10.0.1.9:2379,https://d:2379"}) == [
        "http://10.0.1.9:2379",
        "https://d:2379",
    ]
