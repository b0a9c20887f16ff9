"""Scaling through etcd's runtime API with real members: 1 -> 3 -> 5 -> 3 -> 1, a writer throughout, nothing lost."""

import json
import sys

import pytest

from tests.integration.etcdlab import add_walk_hosts, run_walk
from tests.support.binaries import ROOT

pytestmark = pytest.mark.etcd


def test_walk_1_3_5_3_1_with_a_writer(lab):
    hosts, ctl, workdir = add_walk_hosts(lab)
    config = {"hosts": hosts, "python": sys.executable, "etcd": lab.etcd, "workdir": str(workdir),
              "sizes": [3, 5, 3, 1]}  # fmt: skip
    result = run_walk(ctl, config, workdir, lab.env(PYTHONPATH=str(ROOT)), timeout=280)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    print(json.dumps(summary["steps"], indent=1))
    assert summary["members"] == ["main-0"]
    assert summary["lost"] == 0, summary
    assert summary["acked"] > 100
    done = [s for s in summary["steps"] if s.get("ok")]
    kinds = [s["step"] for s in done]
    assert kinds.count("AddLearner") == 4 and kinds.count("Promote") == 4 and kinds.count("RemoveMember") == 4
    # One change at a time: every add is followed by its promote before the next add.
    adds_and_promotes = [k for k in kinds if k in ("AddLearner", "Promote")]
    assert adds_and_promotes == ["AddLearner", "Promote"] * 4


def test_crash_after_each_kind_of_change_then_converge(lab):
    """The driver dies right after a member add, a promote and a remove; a fresh one finishes the job."""
    hosts, ctl, workdir = add_walk_hosts(lab)

    def drive(size: int, failpoint: str = "") -> dict | None:
        config = {"hosts": hosts, "python": sys.executable, "etcd": lab.etcd, "workdir": str(workdir),
                  "sizes": [size], "shutdown": False}  # fmt: skip
        env = lab.env(PYTHONPATH=str(ROOT), ETCD_OPERATOR_FAILPOINT=failpoint)
        result = run_walk(ctl, config, workdir, env, timeout=200)
        if failpoint:
            assert result.returncode == 86, result.stderr[-2000:]  # crashed exactly at the failpoint
            return None
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    for size, failpoint in ((3, "after-member-add"), (5, "after-promote"), (3, "after-remove")):
        drive(size, failpoint)
        summary = drive(size)
        # Converged: exactly the desired members, each once, all voting, no orphan learner.
        assert summary["members"] == [f"main-{i}" for i in range(size)], summary
        assert summary["lost"] == 0


def test_member_that_loses_its_data_is_healed_through_the_planner(lab):
    hosts, ctl, workdir = add_walk_hosts(lab, members=3)
    config = {"hosts": hosts, "python": sys.executable, "etcd": lab.etcd, "workdir": str(workdir),
              "sizes": [3, "lose:2", "lose:0"]}  # fmt: skip
    result = run_walk(ctl, config, workdir, lab.env(PYTHONPATH=str(ROOT)), timeout=280)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["members"] == ["main-0", "main-1", "main-2"] and summary["lost"] == 0, summary
    for lost in ("lose:2", "lose:0"):
        changes = ("MoveLeader", "RemoveMember", "AddLearner", "Promote", "ScaleStatefulSet")
        kinds = [s["step"] for s in summary["steps"] if s["to"] == lost and s.get("ok") and s["step"] in changes]
        # Stale entry out, same ordinal back as a learner, promoted once caught up.
        assert kinds[:1] == ["RemoveMember"] or kinds[:2] == ["MoveLeader", "RemoveMember"], kinds
        assert kinds[-2:] == ["AddLearner", "Promote"] and "ScaleStatefulSet" not in kinds, kinds
