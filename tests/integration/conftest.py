import pytest

from tests.integration.etcdlab import EtcdLab
from tests.integration.netlab import netlab  # noqa: F401 - fixture
from tests.support.binaries import etcd_dir


@pytest.fixture
def lab(netlab):  # noqa: F811 - the fixture above
    return EtcdLab(netlab, etcd_dir())


@pytest.fixture
def v2_etcd_dir():
    return etcd_dir("ETCD_V2_VERSION")
