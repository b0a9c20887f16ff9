import pytest

from tests.integration.etcdlab import EtcdLab
from tests.integration.netlab import netlab  # noqa: F401 - fixture
from tests.support.binaries import etcd_dir
from tests.support.loopback import LoopbackCluster, LoopbackPKI
from tests.support.objectstore import S3Server


@pytest.fixture
def lab(netlab):  # noqa: F811 - the fixture above
    return EtcdLab(netlab, etcd_dir())


@pytest.fixture
def v2_etcd_dir():
    return etcd_dir("ETCD_V2_VERSION")


@pytest.fixture
def source(tmp_path):
    """A 3-member TLS cluster with data: 100 keys, one overwritten 5 times, one deleted."""
    cluster = LoopbackCluster(tmp_path / "source", LoopbackPKI.make(tmp_path / "pki"), token="source").start_all()
    for i in range(100):
        cluster.etcdctl("put", f"/data/k{i:03d}", f"v{i}")
    for n in range(5):
        cluster.etcdctl("put", "/data/overwritten", f"round-{n}")
    cluster.etcdctl("put", "/data/deleted", "soon gone")
    cluster.etcdctl("del", "/data/deleted")
    cluster.wait_storage_version()  # so that a snapshot of it records the etcd version it was taken at
    yield cluster
    cluster.close()


@pytest.fixture
def s3(tmp_path):
    server = S3Server(tmp_path / "s3", tls=True).start()
    server.bucket("backups")
    yield server
    server.stop()
