"""etcd-node: works out an etcd member's flags, checks them, then execs the real etcd."""

__version__ = "0.1.0"
