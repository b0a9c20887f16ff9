"""The operator and etcd-node agree: the pod the operator templates derives exactly the URLs the operator expects.

The operator adds members by peer URL and recognises them by it; the agent
derives each member's URLs from the pod's environment. Both go through
etcd_node.contract; these tests render the operator's real StatefulSet, give
its env the values the kubelet would, run the agent's real derivation, and
compare. The same for the agent's refusals, which the operator reads by code.
"""

from __future__ import annotations

import pytest

from etcd_node import kube as agent_kube
from etcd_node.contract import MEMBER_ALREADY_BOOTSTRAPPED
from etcd_node.findings import error
from etcd_operator.models.cluster import EtcdClusterSpec
from etcd_operator.reconcile.desired import ClusterIdentity
from etcd_operator.reconcile.pods import lost_data, pod_view
from etcd_operator.resources.statefulset import MemberTemplateInputs, build_statefulset

IDENTITY = ClusterIdentity.of("main", "db", "6f1c2d3e-0000-4000-8000-000000000000", "cluster.example")


def pod_env(spec: EtcdClusterSpec, ordinal: int, initial: int = 3) -> dict[str, str]:
    """The member container's environment as the kubelet resolves it for pod `main-<ordinal>`."""
    inputs = MemberTemplateInputs(initial, initial, "tok", "etcd-node:3.6.16")
    sts = build_statefulset(IDENTITY.names, spec, IDENTITY.owner, inputs)
    downward = {"metadata.name": f"main-{ordinal}", "metadata.namespace": "db"}
    env = {}
    for var in sts["spec"]["template"]["spec"]["containers"][0]["env"]:
        if "value" in var:
            env[var["name"]] = var["value"].replace("$(ETCD_NODE_POD_NAME)", f"main-{ordinal}")
        else:
            env[var["name"]] = downward[var["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


@pytest.mark.parametrize("tls", ["selfSigned", "none"])
@pytest.mark.parametrize("ordinal", [0, 2, 4])
def test_the_agent_derives_the_urls_the_operator_adds_and_recognises(tls, ordinal):
    spec = EtcdClusterSpec.model_validate({"tls": {"peer": {"mode": tls}, "client": {"mode": tls}}})
    env = pod_env(spec, ordinal)
    identity = agent_kube.identity_from_env(env)
    assert identity is not None
    options = agent_kube.derived_options(identity, env)
    names, secure = IDENTITY.names, tls != "none"
    assert options["name"] == names.pod(ordinal)
    assert options["initial-advertise-peer-urls"] == names.peer_url(ordinal, secure)
    assert options["advertise-client-urls"] == names.member_client_url(ordinal, secure)
    assert names.ordinal_in_url(options["initial-advertise-peer-urls"]) == ordinal
    if ordinal < 3:  # an initial member lists every initial member's peer URL as the operator names them
        expected = ",".join(f"{names.pod(o)}={names.peer_url(o, secure)}" for o in range(3))
        assert options["initial-cluster"] == expected
    else:  # a member beyond the initial ones joins the running cluster after the operator's member add
        assert options["initial-cluster-state"] == "existing"


def test_the_operator_reads_the_agents_refusal_by_its_code():
    refusal = error(MEMBER_ALREADY_BOOTSTRAPPED, "main-2 was started before and its data dir is empty", "re-add it")
    crashed = {
        "metadata": {"name": "main-2"},
        "status": {"containerStatuses": [{
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "message": refusal.render() + "\n"}},
        }]},
    }  # fmt: skip
    view = pod_view(crashed, "main")
    assert view.error is not None and view.error.code == MEMBER_ALREADY_BOOTSTRAPPED
    assert lost_data([view]) == {2}
    running = {**crashed, "status": {"containerStatuses": [{**crashed["status"]["containerStatuses"][0],
                                                            "state": {"running": {}}}]}}  # fmt: skip
    assert pod_view(running, "main").error is None  # the kubelet keeps lastState after the heal
