from etcd_node import srv
from etcd_node.srv import SrvAnswer, SrvTarget


def answer(tls=(), plain=()):
    return SrvAnswer("example.com", srv.record_names("example.com"), tuple(tls), tuple(plain))


TARGETS = [SrvTarget(f"infra{i}.example.com", 2380, (f"10.0.1.1{i}",)) for i in range(3)]


def test_record_names_follow_the_guide():
    assert srv.record_names("example.com") == ("_etcd-server-ssl._tcp.example.com", "_etcd-server._tcp.example.com")
    assert srv.record_names("example.com", "foo") == (
        "_etcd-server-ssl-foo._tcp.example.com",
        "_etcd-server-foo._tcp.example.com",
    )
    assert srv.record_names("example.com.", kind="client")[1] == "_etcd-client._tcp.example.com"


def test_member_by_name_or_ip_is_found():
    by_name = {"initial-advertise-peer-urls": "http://infra1.example.com:2380"}
    assert srv.check(by_name, answer(plain=TARGETS), {"infra1.example.com": ["10.0.1.11"]}) == []
    by_ip = {"initial-advertise-peer-urls": "http://10.0.1.12:2380"}
    assert srv.check(by_ip, answer(plain=TARGETS), {}) == []


def test_member_not_among_targets():
    (finding,) = srv.check({"initial-advertise-peer-urls": "http://10.0.1.13:2380"}, answer(plain=TARGETS), {})
    assert finding.code == "NotInSRVRecords"
    assert "infra0.example.com:2380 -> 10.0.1.10" in finding.message


def test_scheme_must_match_record_kind():
    (finding,) = srv.check({"initial-advertise-peer-urls": "http://10.0.1.10:2380"}, answer(tls=TARGETS), {})
    assert "only _etcd-server-ssl._tcp.example.com exists, so peer URLs must use https" in finding.message


def test_missing_records_and_unresolvable_targets():
    (missing,) = srv.check({}, answer(), {})
    assert missing.code == "SRVRecordsMissing"
    assert "dig +noall +answer SRV _etcd-server._tcp.example.com" in missing.fix
    broken = SrvAnswer("example.com", srv.record_names("example.com"), (), (SrvTarget("gone.example.com", 2380),),
                       unresolved=("gone.example.com",))
    found = srv.check({"initial-advertise-peer-urls": "http://10.0.1.10:2380"}, broken, {})
    assert [f.code for f in found] == ["SRVTargetUnresolvable", "NotInSRVRecords"]
