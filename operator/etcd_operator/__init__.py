"""etcd-operator: reconciles EtcdCluster resources into healthy etcd clusters."""

__version__ = "0.1.0"

GROUP = "etcd.operator.dev"
VERSION = "v1alpha1"
KIND = "EtcdCluster"
PLURAL = "etcdclusters"
