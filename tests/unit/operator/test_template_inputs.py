"""How many member pods the StatefulSet asks for: the spec at first start, membership after, none while hibernated."""

import pytest

from etcd_operator.controller import ClusterContext, template_inputs
from etcd_operator.models.cluster import EtcdClusterSpec, EtcdClusterStatus, MemberStatus
from etcd_operator.reconcile.desired import ClusterIdentity

IDENTITY = ClusterIdentity.of("main", "db", "6f1c2d3e-0000-4000-8000-000000000000")


def ctx(spec: dict, initial: int | None = None, members: int = 0) -> ClusterContext:
    status = EtcdClusterStatus(
        initial_members=initial,
        members=[MemberStatus(name=f"main-{i}", id=f"{i + 1:x}") for i in range(members)] or None,
    )
    return ClusterContext(IDENTITY, EtcdClusterSpec.model_validate(spec), status, 1)


def sts(replicas: int) -> dict:
    return {"spec": {"replicas": replicas}}


@pytest.mark.parametrize(
    ("context", "existing", "replicas"),
    [
        (ctx({"replicas": 3}), None, 3),  # first start: the spec's size bootstraps together
        (ctx({"replicas": 5}, initial=3, members=3), sts(3), 3),  # scaling: the planner grows it, not the spec
        (ctx({"replicas": 5, "hibernate": True}, initial=3, members=4), sts(4), 0),  # hibernating: all stop
        (ctx({"replicas": 5}, initial=3, members=4), sts(0), 4),  # waking: every listed member comes back
        (ctx({"replicas": 3}, initial=3), sts(0), 3),  # waking before any member was observed
    ],
    ids=["first-start", "scaling", "hibernate", "wake", "wake-unobserved"],
)
def test_statefulset_size(context, existing, replicas):
    assert template_inputs(context, existing).replicas == replicas
