"""The contract between the operator and etcd-node in a member pod: names, URLs, variables, error codes.

The operator writes a StatefulSet whose pods carry a few `ETCD_NODE_*`
variables; etcd-node derives each member's name and URLs from them. Both sides
import this module (the operator image installs etcd_node too), so the peer URL
the operator adds with `member add` and the one the agent advertises can never
drift apart, and the operator matches the agent's refusals by code, not prose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PEER_PORT = 2380
CLIENT_PORT = 2379
METRICS_PORT = 2381

# Variables the operator sets and the agent reads.
ENV_POD_NAME = "ETCD_NODE_POD_NAME"
ENV_POD_NAMESPACE = "ETCD_NODE_POD_NAMESPACE"
ENV_SERVICE = "ETCD_NODE_SERVICE"
ENV_CLUSTER_DOMAIN = "ETCD_NODE_CLUSTER_DOMAIN"
ENV_BOOTSTRAP = "ETCD_NODE_BOOTSTRAP"
ENV_INITIAL_MEMBERS = "ETCD_NODE_INITIAL_MEMBERS"
ENV_PEER_SCHEME = "ETCD_NODE_PEER_SCHEME"
ENV_CLIENT_SCHEME = "ETCD_NODE_CLIENT_SCHEME"
ENV_JOIN_ENDPOINTS = "ETCD_NODE_JOIN_ENDPOINTS"
ENV_TERMINATION_LOG = "ETCD_NODE_TERMINATION_LOG"
ENV_SRV_NAME = "ETCD_NODE_SRV_NAME"
# A cluster that starts from a backup: the operator mounts a Secret with this file only until the
# cluster has bootstrapped, so a member started later (a restart, a replacement) never restores.
ENV_RESTORE_FILE = "ETCD_NODE_RESTORE_FILE"
RESTORE_FILE = "/etc/etcd-node/restore/restore.json"
# A cluster recovering from quorum loss (spec.recovery): which member restarts once with
# --force-new-cluster; every other member refuses to start until that one answers.
ENV_RECOVERY_FILE = "ETCD_NODE_RECOVERY_FILE"
RECOVERY_FILE = "/etc/etcd-node/recovery/recovery.json"
# A restore from a snapshot on a PersistentVolumeClaim: the members mount the claim here, read-only, only while
# they restore; the request's source is then `--path=<this>/<file inside the claim>`.
RESTORE_VOLUME_DIR = "/etc/etcd-node/restore-volume"

_POD = re.compile(r"^(?P<set>.+)-(?P<ordinal>\d+)$")
# First line of a refusal in the termination log: `etcd-node: error[Code]: message`.
_ERROR = re.compile(r"^etcd-node: error\[(?P<code>[A-Za-z0-9]+)\]: (?P<message>.*)$")


def pod_name(statefulset: str, ordinal: int) -> str:
    return f"{statefulset}-{ordinal}"


def split_pod_name(pod: str) -> tuple[str, int] | None:
    """(StatefulSet, ordinal) of a StatefulSet pod's name, None for any other name."""
    match = _POD.match(pod)
    return (match["set"], int(match["ordinal"])) if match else None


def service_domain(service: str, namespace: str, cluster_domain: str) -> str:
    """The headless Service's DNS domain: pods' names live under it, and it is the SRV discovery domain."""
    return f"{service}.{namespace}.svc.{cluster_domain}"


def member_url(scheme: str, pod: str, service: str, namespace: str, cluster_domain: str, port: int) -> str:
    return f"{scheme}://{pod}.{service_domain(service, namespace, cluster_domain)}:{port}"


def ordinal_in_url(url: str, statefulset: str, service: str) -> int | None:
    """The ordinal of the pod a member URL names (`scheme://<set>-<n>.<service>.…`), None for another host."""
    host = url.split("://", 1)[-1].split("/", 1)[0]
    pod, _, rest = host.partition(".")
    split = split_pod_name(pod)
    if split is None or split[0] != statefulset or not rest.startswith(f"{service}."):
        return None
    return split[1]


@dataclass(frozen=True)
class Member:
    """One etcd member as its member list names it; the operator adds what the member's own status says.

    The one member type of both sides: the agent builds a joining member's
    initial cluster from it, the operator plans membership and reports status.
    """

    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...] = ()
    is_learner: bool = False
    healthy: bool = False  # answered its status with no alarm and a leader (filled in by the operator)
    version: str = ""  # the etcd server version it runs, from its status (filled in by the operator)

    @property
    def started(self) -> bool:
        """A member publishes its client URLs when it first starts.

        Not its name: members of a static bootstrap are named from --initial-cluster
        before they ever ran; only members added at runtime start out nameless.
        """
        return bool(self.client_urls)


@dataclass(frozen=True)
class AgentError:
    """A refusal etcd-node wrote to the termination log: a stable code and the words for a person."""

    code: str
    message: str

    def render(self) -> str:
        return f"etcd-node: error[{self.code}]: {self.message}"


def parse_agent_error(text: str) -> AgentError | None:
    """The first refusal in a termination message, or None when the text holds none."""
    for line in text.splitlines():
        if match := _ERROR.match(line.strip()):
            return AgentError(match["code"], match["message"])
    return None


# Codes the operator acts on (the agent defines many more; the operator reports any of them).
MEMBER_ALREADY_BOOTSTRAPPED = "MemberAlreadyBootstrapped"
CLUSTER_ID_MISMATCH = "ClusterIDMismatch"
