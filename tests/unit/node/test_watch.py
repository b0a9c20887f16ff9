import io
import json

from etcd_node import watch
from etcd_node.contract import parse_agent_error

MISMATCH = json.dumps({
    "level": "warn", "msg": "request sent was ignored by remote peer due to cluster ID mismatch",
    "remote-peer-id": "8e9e05c52164694d", "remote-peer-cluster-id": "cdf818194e3a8c32",
    "local-member-id": "a1b2", "local-member-cluster-id": "c6ab534d07e8fcc4", "error": "cluster ID mismatch",
})


def test_cluster_id_mismatch_is_explained_with_both_ids():
    found = watch.explain(MISMATCH)
    assert found.code == "ClusterIDMismatch"
    assert "this member: cluster c6ab534d07e8fcc4, peer 8e9e05c52164694d: cluster cdf818194e3a8c32" in found.message
    # The operator matches the code of the first line; the fix follows for a person.
    rendered = found.render()
    assert rendered.startswith("etcd-node: error[ClusterIDMismatch]: cluster ID mismatch: ")
    assert parse_agent_error(rendered).code == "ClusterIDMismatch"
    assert "\n  fix: stop it, remove it from the cluster if it is listed" in rendered


def test_guide_wording_and_other_loops():
    assert watch.explain("etcd: conflicting cluster ID to the target cluster (c6ab != bc25). Exiting.").code == (
        "ClusterIDMismatch"
    )
    assert watch.explain('{"msg":"the member has been permanently removed from the cluster"}').code == "MemberRemoved"
    assert watch.explain('{"level":"info","msg":"ready to serve client requests"}') is None


def test_copy_adds_each_explanation_once_and_keeps_every_line():
    lines = [b"starting\n", MISMATCH.encode() + b"\n", MISMATCH.encode() + b"\n", b"done\n"]
    source = io.BytesIO(b"".join(lines))
    out = io.BytesIO()
    seen = []
    watch.copy_with_explanations(source.readline, out.write, seen.append)
    text = out.getvalue().decode()
    assert text.count("cluster ID mismatch: this member and its peers") == 1
    assert all(line.decode() in text for line in lines)
    assert [s.code for s in seen] == ["ClusterIDMismatch"]
