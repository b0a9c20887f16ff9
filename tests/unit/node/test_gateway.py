from etcd_node import gateway
from etcd_node.srv import SrvAnswer, SrvTarget


def test_gateway_args_strip_schemes_and_keep_gateway_flags():
    args, findings = gateway.gateway_args(
        {"endpoints": "x", "listen-addr": "127.0.0.1:23790"}, ["https://10.0.1.10:2379", "10.0.1.11:2379"]
    )
    assert findings == []
    assert args == ["gateway", "start", "--endpoints=10.0.1.10:2379,10.0.1.11:2379", "--listen-addr=127.0.0.1:23790"]


def test_gateway_needs_endpoints_and_known_flags():
    assert gateway.gateway_args({}, [])[1][0].code == "GatewayNoEndpoints"
    assert gateway.gateway_args({"name": "x"}, ["a:1"])[1][0].code == "GatewayUnknownFlag"


def test_endpoints_from_client_srv_records():
    answer = SrvAnswer("example.com", ("a", "b"), (), (SrvTarget("infra0.example.com", 2379, ("10.0.1.10",)),))
    assert gateway.endpoints_from_srv(answer) == ["infra0.example.com:2379"]
