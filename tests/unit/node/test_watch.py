import io
import json
import signal
import subprocess
import sys

import pytest

from etcd_node import watch
from etcd_node.contract import parse_agent_error
from etcd_node.findings import Severity

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


# What the members of the running cluster log when a stranger knocks (etcd's rafthttp/http.go).
KNOCKED = json.dumps({
    "level": "warn", "msg": "request cluster ID mismatch", "local-member-id": "8e9e05c52164694d",
    "local-member-cluster-id": "cdf818194e3a8c32", "remote-peer-server-name": "a1b2",
    "remote-peer-cluster-id": "c6ab534d07e8fcc4",
})
READY = '{"level":"info","msg":"ready to serve client requests"}'


def test_the_receiving_side_of_a_mismatch_is_only_a_warning():
    found = watch.explain(KNOCKED)
    assert (found.code, found.severity) == ("PeerFromAnotherCluster", Severity.WARNING)
    assert "member a1b2 of another cluster (c6ab534d07e8fcc4)" in found.message
    assert not watch.rejected_by_peers(KNOCKED) and watch.rejected_by_peers(MISMATCH)


@pytest.mark.parametrize(
    ("lines", "deadline", "stopped"),
    [
        ([MISMATCH], 10.0, True),  # rejected by its peers and never served: a cluster of its own
        ([READY, MISMATCH], None, False),  # serving: it has a quorum, the mismatch is a stranger's
        ([MISMATCH, READY], 10.0, False),  # began serving within the grace period
        ([KNOCKED, KNOCKED], None, False),  # only hears from a stranger
        (["starting", "etcdmain: conflicting cluster ID to the target cluster (c6ab != bc25). Exiting."], 11.0, True),
    ],
)
def test_mismatch_guard_stops_only_a_member_that_never_served(lines, deadline, stopped):
    guard = watch.MismatchGuard(grace=10)
    deadlines = [d for t, line in enumerate(lines) if (d := guard.observe(line, now=float(t))) is not None]
    assert deadlines == ([deadline] if deadline is not None else [])  # the grace period starts once
    verdict = guard.verdict()
    assert (verdict is not None) is stopped
    if stopped:
        assert verdict.code == "ClusterIDMismatch" and "Exiting." in verdict.message


# A stand-in for etcd: says what etcd 3.6 says to a member of another cluster, then keeps running.
FAKE_ETCD = f"import sys, time\nsys.stderr.write({MISMATCH!r} + '\\n')\nsys.stderr.flush()\ntime.sleep(60)\n"
WATCHED = """
import os, sys
from etcd_node import watch
watch.start(sys.argv[1], stop_on_mismatch_after=float(sys.argv[2]))
os.execv(sys.executable, [sys.executable, "-c", sys.argv[3]])
"""


def test_the_watcher_ends_a_member_that_never_belonged_with_a_failure(tmp_path):
    log = tmp_path / "termination-log"
    proc = subprocess.run([sys.executable, "-c", WATCHED, str(log), "0.1", FAKE_ETCD],
                          capture_output=True, text=True, timeout=20)  # fmt: skip
    assert proc.returncode == -signal.SIGHUP  # not 0: SIGTERM would let a pod's PID 1 exit 0
    assert "etcd-node: error[ClusterIDMismatch]: cluster ID mismatch" in proc.stderr  # the explanation, at once
    assert parse_agent_error(log.read_text()).message.startswith(
        "conflicting cluster ID to the target cluster (c6ab534d07e8fcc4 != cdf818194e3a8c32). Exiting."
    )
    assert "\n  fix: empty its data dir" in log.read_text()
