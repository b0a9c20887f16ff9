import pytest

from etcd_node import contract, flags, kube

ENV = {
    "ETCD_NODE_POD_NAME": "main-1",
    "ETCD_NODE_POD_NAMESPACE": "db",
    "ETCD_NODE_SERVICE": "main-peers",
    "ETCD_NODE_PEER_SCHEME": "https",
    "ETCD_NODE_INITIAL_MEMBERS": "3",
}


def test_static_bootstrap_from_pod_identity():
    identity = kube.identity_from_env(ENV)
    options = kube.derived_options(identity, ENV)
    assert options["name"] == "main-1"
    assert options["initial-advertise-peer-urls"] == "https://main-1.main-peers.db.svc.cluster.local:2380"
    assert options["advertise-client-urls"] == "http://main-1.main-peers.db.svc.cluster.local:2379"
    assert options["listen-peer-urls"] == "https://0.0.0.0:2380"
    assert options["initial-cluster"] == ",".join(
        f"main-{i}=https://main-{i}.main-peers.db.svc.cluster.local:2380" for i in range(3)
    )


def test_dns_srv_bootstrap_points_at_the_headless_service():
    env = ENV | {"ETCD_NODE_BOOTSTRAP": "dns-srv", "ETCD_NODE_SRV_NAME": "main"}
    options = kube.derived_options(kube.identity_from_env(env), env)
    assert options["discovery-srv"] == "main-peers.db.svc.cluster.local"
    assert options["discovery-srv-name"] == "main"
    assert "initial-cluster" not in options


def test_pod_beyond_initial_members_joins_existing():
    env = ENV | {"ETCD_NODE_POD_NAME": "main-3"}
    options = kube.derived_options(kube.identity_from_env(env), env)
    assert options["initial-cluster-state"] == "existing"
    assert "initial-cluster" not in options


def test_outside_kubernetes_and_bad_identity():
    assert kube.identity_from_env({}) is None
    with pytest.raises(kube.PodIdentityError, match="ETCD_NODE_SERVICE"):
        kube.identity_from_env({"ETCD_NODE_POD_NAME": "x-0", "ETCD_NODE_POD_NAMESPACE": "ns"})
    with pytest.raises(kube.PodIdentityError, match="no StatefulSet ordinal"):
        kube.identity_from_env(ENV | {"ETCD_NODE_POD_NAME": "standalone"})


def test_names_and_urls_follow_the_contract_the_operator_uses():
    # The operator finds a member's ordinal in the peer URL it added; the agent must advertise exactly that URL.
    identity = kube.identity_from_env(ENV)
    options = kube.derived_options(identity, ENV)
    assert contract.ordinal_in_url(options["initial-advertise-peer-urls"], "main", "main-peers") == 1
    assert options["initial-advertise-peer-urls"] == contract.member_url(
        "https", contract.pod_name("main", 1), "main-peers", "db", "cluster.local", contract.PEER_PORT
    )
    assert identity.domain == contract.service_domain("main-peers", "db", "cluster.local")


def test_agent_variables_are_the_contract_names():
    # ETCD_NODE_<FLAG> of an agent flag is the variable the operator sets for it.
    assert flags.agent_env_var("join-endpoints") == contract.ENV_JOIN_ENDPOINTS


def test_initial_members_must_be_a_number():
    with pytest.raises(kube.PodIdentityError, match="ETCD_NODE_INITIAL_MEMBERS='three'"):
        kube.derived_options(kube.identity_from_env(ENV), ENV | {"ETCD_NODE_INITIAL_MEMBERS": "three"})
