import pytest

from etcd_operator.models.cluster import EtcdClusterSpec
from etcd_operator.reconcile.access import client_access, discovery_of
from etcd_operator.resources.naming import ClusterNames

NAMES = ClusterNames("main", "db")


def spec(client: str) -> EtcdClusterSpec:
    side = {"mode": client, **({"secretName": "s"} if client == "secret" else {})}
    return EtcdClusterSpec.model_validate({"tls": {"client": side}})


@pytest.mark.parametrize(
    ("mode", "scheme", "secret", "error"),
    [
        ("selfSigned", "https", "main-client-tls", ""),
        ("auto", "https", None, ""),
        ("none", "http", None, ""),
        ("secret", "https", None, "the operator has no client certificate"),
    ],
)
def test_the_operator_reaches_members_directly_too_and_presents_its_own_certificate(mode, scheme, secret, error):
    access = client_access(NAMES, spec(mode), 3)
    assert access.endpoints[0] == f"{scheme}://main-client.db.svc.cluster.local:2379"  # the client Service first
    assert access.endpoints[1:] == tuple(f"{scheme}://main-{o}.main.db.svc.cluster.local:2379" for o in range(3))
    assert access.secret == secret
    assert error in access.error and bool(access.error) == bool(error)


def test_a_discovery_cluster_gives_its_url_and_the_ca_to_issue_from_never_its_own_certificate():
    signed = discovery_of(ClusterNames("seed", "db"), spec("selfSigned"))
    assert signed.client_ca_secret == "seed-client-ca" and signed.credential is None and signed.client_ca is None
    plain = discovery_of(ClusterNames("seed", "db"), spec("none"))
    assert plain.endpoints == "http://seed-client.db.svc.cluster.local:2379" and plain.client_ca_secret == ""


def test_secret_mode_uses_the_operator_client_secret_named_in_the_spec():
    spec = EtcdClusterSpec.model_validate({"tls": {"client": {"mode": "secret", "secretName": "srv"},
                                                   "operatorClientSecretName": "op"}})  # fmt: skip
    access = client_access(NAMES, spec, 1)
    assert access.secret == "op" and not access.error
