"""A cluster's own discovery credential for another EtcdCluster: issued, renewed, mounted, retired (pure)."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from etcd_operator.models.cluster import EtcdClusterSpec
from etcd_operator.pki import bundles, certs
from etcd_operator.reconcile.access import discovery_of
from etcd_operator.reconcile.desired import ClusterIdentity
from etcd_operator.reconcile.discovery import (
    DISCOVERY_LIFETIME,
    discovery_grant,
    discovery_user,
    live_discovery,
    plan_discovery,
)
from etcd_operator.reconcile.observed import DiscoveryService
from etcd_operator.resources.naming import ClusterNames

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CHILD = ClusterIdentity.of("child", "db", "c0ffee00-0000-4000-8000-000000000000")
SEED = ClusterNames("seed", "db")
SPEC = EtcdClusterSpec.model_validate({"replicas": 3, "bootstrap": {"mode": "discovery",
                                                                    "discoveryClusterRef": {"name": "seed"}}})  # fmt: skip
SERIALS = count(100)


def seed_ca() -> bundles.CASet:
    return bundles.CASet(bundles.new_authority("seed.db etcd client CA", T0, certs.new_key(), next(SERIALS)))


def observed(ca: bundles.CASet | None, credential: dict[str, bytes] | None = None):
    service = discovery_of(SEED, EtcdClusterSpec())  # the seed with selfSigned client TLS
    return replace(service, client_ca=ca.secret_data() if ca else None, credential=credential)


def plan(ca, credential=None, *, live=None, bootstrapped=False, now=T0, spec=SPEC):
    return plan_discovery(CHILD, spec, observed(ca, credential), live, bootstrapped, now,
                          certs.new_key, lambda: next(SERIALS))  # fmt: skip


def data_of(secret: dict) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}


def test_the_credential_is_the_clusters_own_certificate_from_the_seeds_client_ca_in_a_secret_it_owns():
    ca = seed_ca()
    planned = plan(ca)
    secret = planned.secret
    assert secret is not None and secret["metadata"]["name"] == "child-discovery-tls"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == CHILD.owner.uid  # goes with the child, not the seed
    assert planned.tls_secret == "child-discovery-tls" and planned.tls_secret != SEED.client_tls_secret
    assert planned.endpoints == "https://seed-client.db.svc.cluster.local:2379" and not planned.wait
    data = data_of(secret)
    cert = certs.load_cert(data["tls.crt"])
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "discovery:db/child"
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value != "etcd-operator"  # the seed's own
    assert certs.issued_by(cert, ca.signer.cert)
    usages = list(cert.extensions.get_extension_for_class(certs.x509.ExtendedKeyUsage).value)
    assert usages == [ExtendedKeyUsageOID.CLIENT_AUTH]  # a client, never a server
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= DISCOVERY_LIFETIME.validity + certs.CLOCK_SKEW
    # ca.crt verifies the seed's members: their server certificates come from the same client CA.
    server = bundles.member_bundle(ca, SEED, range(1), "server", T0, certs.new_key, lambda: next(SERIALS))
    trusted = [certs.load_cert(b"-----BEGIN" + pem) for pem in data["ca.crt"].split(b"-----BEGIN")[1:]]
    assert any(certs.issued_by(certs.load_cert(server["seed-0.crt"]), t) for t in trusted)


def test_the_credential_is_kept_renewed_before_its_end_and_follows_a_rollover_of_the_seeds_ca():
    ca = seed_ca()
    first = data_of(plan(ca).secret)
    assert plan(ca, first, now=T0 + timedelta(hours=15)).secret is None  # not due: nothing written
    renewed = plan(ca, first, now=T0 + timedelta(hours=17)).secret  # within renewBefore (8h) of its day
    assert renewed is not None and data_of(renewed)["tls.crt"] != first["tls.crt"]
    # The seed trusts a next CA beside its signer: the pair stays, ca.crt carries both.
    rolling = bundles.CASet(ca.signer, next=bundles.new_authority("seed next", T0, certs.new_key(), next(SERIALS)))
    followed = data_of(plan(rolling, first, now=T0 + timedelta(hours=1)).secret)
    assert followed["tls.crt"] == first["tls.crt"] and followed["ca.crt"] == rolling.bundle() != first["ca.crt"]
    # A new signer that did not issue the pair (the seed re-created its CA): a new pair.
    assert data_of(plan(seed_ca(), first).secret)["tls.crt"] != first["tls.crt"]


def test_a_shorter_leaf_policy_of_the_cluster_shortens_the_credential_too():
    spec = SPEC.model_copy(update={"tls": EtcdClusterSpec.model_validate(
        {"tls": {"certificates": {"validity": "2h", "renewBefore": "30m"}}}).tls})  # fmt: skip
    cert = certs.load_cert(data_of(plan(seed_ca(), spec=spec).secret)["tls.crt"])
    assert cert.not_valid_after_utc == T0 + timedelta(hours=2)


def test_once_bootstrapped_the_credential_goes_and_the_template_keeps_its_optional_mount():
    ca = seed_ca()
    first = data_of(plan(ca).secret)
    live = ("https://seed-client.db.svc.cluster.local:2379", True)
    done = plan(ca, first, live=live, bootstrapped=True)
    assert done.retire and done.secret is None and done.tls_secret == "child-discovery-tls"
    assert done.endpoints == live[0]
    # The seed deleted as well (nothing of it read): the template's inputs are the same, nothing to retire again.
    gone = plan_discovery(CHILD, SPEC, DiscoveryService(), live, True, T0)
    assert (gone.endpoints, gone.tls_secret, gone.retire, gone.secret, gone.wait) == (live[0], "child-discovery-tls",
                                                                                       False, None, "")  # fmt: skip


def test_members_wait_for_the_seeds_ca_and_running_members_only_hear_about_it():
    waiting = plan(None)
    assert "seed-client-ca" in waiting.wait and waiting.secret is None
    live = ("https://seed-client.db.svc.cluster.local:2379", True)
    running = plan(None, live=live)
    assert not running.wait and running.problem is not None and running.problem.reason == "WaitingForDiscovery"
    assert running.tls_secret == "child-discovery-tls" and not running.retire


def test_a_seed_without_client_certificates_gets_no_credential_and_a_left_over_one_goes():
    plain = discovery_of(SEED, EtcdClusterSpec.model_validate({"tls": {"client": {"mode": "none"}}}))
    planned = plan_discovery(CHILD, SPEC, replace(plain, credential={"tls.crt": b"x"}), None, False, T0)
    assert planned.tls_secret == "" and planned.secret is None and planned.retire
    assert planned.endpoints == "http://seed-client.db.svc.cluster.local:2379"


@pytest.mark.parametrize(("env", "expected"), [
    ([{"name": "ETCD_DISCOVERY_ENDPOINTS", "value": "https://a:2379"}, {"name": "ETCD_DISCOVERY_CERT", "value": "f"}],
     ("https://a:2379", True)),
    ([{"name": "ETCD_DISCOVERY_ENDPOINTS", "value": "http://a:2379"}], ("http://a:2379", False)),
    ([], ("", False)),
])  # fmt: skip
def test_the_live_template_says_what_members_were_started_with(env, expected):
    sts = {"spec": {"template": {"spec": {"containers": [{"name": "etcd", "env": env}]}}}}
    assert live_discovery(sts) == expected and live_discovery(None) is None


def test_the_user_is_unique_within_a_common_name_and_the_grant_names_only_the_registry_prefix():
    assert discovery_user(ClusterNames("child", "db")) == "discovery:db/child"
    long_a, long_b = ClusterNames("c" * 52, "n" * 63), ClusterNames("c" * 51 + "d", "n" * 63)
    assert len(discovery_user(long_a)) == 64 and discovery_user(long_a) != discovery_user(long_b)
    grant = discovery_grant(ClusterNames("child", "db"), "db-child-c0ffee00")
    assert (grant.user, grant.role, grant.prefix) == ("discovery:db/child", "discovery:db/child",
                                                      "/_etcd/registry/db-child-c0ffee00/")  # fmt: skip
