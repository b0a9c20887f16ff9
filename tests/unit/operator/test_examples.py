from pathlib import Path

import pytest
import yaml

from etcd_operator.models.cluster import EtcdCluster

EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_are_valid_clusters(path):
    cluster = EtcdCluster.model_validate(yaml.safe_load(path.read_text()))
    assert cluster.kind == "EtcdCluster" and cluster.metadata["name"]


def test_there_is_an_example_per_bootstrap_and_tls_mode():
    clusters = [EtcdCluster.model_validate(yaml.safe_load(p.read_text())) for p in EXAMPLES]
    assert {c.spec.bootstrap.mode.value for c in clusters} == {"static", "dnsSRV", "discovery"}
    assert {c.spec.tls.peer.mode.value for c in clusters} == {"selfSigned", "auto", "secret", "none"}
