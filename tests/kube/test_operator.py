"""The operator against a real kube-apiserver: objects per mode, status, Events, updates, restart, deletion.

No kubelet runs in this tier, so pods stay Pending: the tests cover what the
operator writes and reports; etcd itself is exercised by the `etcd` and `e2e` tiers.
"""

import base64
import json
import os
import re
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from tests.integration.netlab import wait_until
from tests.support.binaries import ROOT
from tests.support.pki import make_ca, make_cert

pytestmark = pytest.mark.kube


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Operator:
    """The operator as a subprocess, like it runs in its pod, with the kubeconfig it is given."""

    def __init__(self, kubeconfig: Path, log_dir: Path, args: tuple[str, ...] = (), env: dict[str, str] | None = None,
                 name: str = "operator"):  # fmt: skip
        self.kubeconfig, self.log_dir, self.proc, self.runs = kubeconfig, log_dir, None, 0
        self.args, self.env, self.name = args, env or {}, name

    def start(self) -> None:
        self.runs += 1
        self.log_path = self.log_dir / f"{self.name}-{self.runs}.log"
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "ETCD_OPERATOR_NODE_IMAGE": "etcd-node", **self.env}
        self.liveness = f"http://127.0.0.1:{free_port()}/healthz"
        argv = [sys.executable, "-m", "etcd_operator", "--log-format", "json", *self.args,
                "--liveness", self.liveness,
                "--metrics-address", f"127.0.0.1:{free_port()}"]  # fmt: skip
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log_path.open("w"), stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


CHART_NAMESPACE = "etcd-operator-rbac"


# What the operator's permissions are made of, among the chart's objects.
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ClusterKopfPeering", "KopfPeering")


def chart_service_account_kubeconfig(kubectl, admin: Path, directory: Path, *values: str,
                                     namespace: str = CHART_NAMESPACE, release: str = "etcd-operator") -> Path:  # fmt: skip
    """A kubeconfig holding only a token of the chart's ServiceAccount, bound to the chart's own RBAC.

    `values` are helm's --set flags; the chart's peering objects come along (kopf's CRDs must be installed).
    """
    from tests.support.binaries import bin_dir

    helm = bin_dir() / "helm"
    if not helm.exists():
        reason = f"helm not built at {helm}: run `bash hack/build-helm.sh` (or set ETCD_BIN)"
        if os.environ.get("HELM_REQUIRED") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    rendered = subprocess.run([str(helm), "template", release, str(ROOT / "charts" / "etcd-operator"),
                               "--namespace", namespace, *values], capture_output=True, text=True, check=True).stdout  # fmt: skip
    rbac = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] in RBAC_KINDS]
    kubectl("create", "namespace", namespace, check=False)
    kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(rbac))  # each object names its namespace
    account = next(d["metadata"]["name"] for d in rbac if d["kind"] == "ServiceAccount")
    token = kubectl("create", "token", account, "-n", namespace, "--duration=2h").stdout.strip()
    config = yaml.safe_load(admin.read_text())
    cluster = config["clusters"][0]
    path = directory / f"{release}.kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": [cluster],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": cluster["name"], "user": account}}],
        "current-context": account,
    }))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def operator(kubectl, kubeconfig, crd_installed, tmp_path_factory):
    """The operator with nothing but the chart's ServiceAccount token: every test below checks its RBAC too."""
    directory = tmp_path_factory.mktemp("operator")
    op = Operator(chart_service_account_kubeconfig(kubectl, kubeconfig, directory), directory)
    op.start()
    yield op
    op.stop()
    assert_never_forbidden(op)


# Anything the chart's RBAC does not allow shows as a 403 naming the ServiceAccount in the operator's log
# (a namespace being deleted also answers 403, but names no user).
DENIED = re.compile(r'forbidden: User \\?"system:serviceaccount:[^"\\]+\\?" cannot')


def assert_never_forbidden(op: Operator) -> None:
    for run in range(1, op.runs + 1):
        text = (op.log_dir / f"{op.name}-{run}.log").read_text()
        assert not DENIED.search(text), [line for line in text.splitlines() if DENIED.search(line)][:5]


@pytest.fixture(autouse=True)
def running_operator(operator):
    return operator


def get(kubectl, ns, kind, name):
    result = kubectl("get", "-n", ns, kind, name, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def wait_for(kubectl, ns, kind, name, timeout=60):
    return wait_until(lambda: get(kubectl, ns, kind, name), timeout, interval=0.5, message=f"{kind}/{name} missing")


def env_of(sts):
    return {e["name"]: e.get("value") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}


def apply_example(kubectl, ns, example):
    kubectl("apply", "-n", ns, "-f", str(ROOT / "examples" / example))
    return yaml.safe_load((ROOT / "examples" / example).read_text())["metadata"]["name"]


MODES = {
    # example: (secrets the operator creates, peer/client port names, env that must be set)
    "etcdcluster.yaml": (
        {"main-peer-ca", "main-client-ca", "main-peer-tls", "main-server-tls", "main-client-tls"},
        ["etcd-server-ssl", "etcd-client-ssl"],
        {"ETCD_NODE_BOOTSTRAP": "static", "ETCD_PEER_CLIENT_CERT_AUTH": "true", "ETCD_NODE_PEER_SCHEME": "https"},
    ),
    "dns-srv.yaml": (
        {"srv-peer-ca", "srv-client-ca", "srv-peer-tls", "srv-server-tls", "srv-client-tls"},
        ["etcd-server-ssl", "etcd-client-ssl"],
        {"ETCD_NODE_BOOTSTRAP": "dns-srv"},
    ),
    "auto-tls.yaml": (set(), ["etcd-server-ssl", "etcd-client-ssl"], {"ETCD_PEER_AUTO_TLS": "true", "ETCD_AUTO_TLS": "true"}),
    "discovery.yaml": (
        set(),
        ["etcd-server", "etcd-client"],
        {"ETCD_NODE_BOOTSTRAP": "discovery", "ETCD_NODE_PEER_SCHEME": "http",
         "ETCD_DISCOVERY": "http://discovery.example.svc:2379/v2/keys/discovery/6c007a14875d53d9bf0ef5a6fc0257c817f0fb83"},
    ),
    "secret-tls.yaml": ({"byo-peer", "byo-server"}, ["etcd-server-ssl", "etcd-client-ssl"], {"ETCD_PEER_CERT_FILE": "/etc/etcd/peer-tls/tls.crt"}),
}


@pytest.mark.parametrize("example", sorted(MODES))
def test_objects_for_each_bootstrap_and_tls_mode(kubectl, namespace, example):
    secrets, ports, env = MODES[example]
    if example == "secret-tls.yaml":  # the user's Secrets must exist, and be usable, before members are started
        now = datetime.now(UTC)
        ca = make_ca(now, "byo CA")
        leaf = make_cert(ca, "byo", [f"*.byo.{namespace}.svc.cluster.local"], now)  # cert-manager's wildcard layout
        for provided in ("byo-peer", "byo-server"):
            data = {k: base64.b64encode(v).decode() for k, v in leaf.cert_manager_secret(ca).items()}
            kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": provided}, "data": data}))  # fmt: skip
    name = apply_example(kubectl, namespace, example)
    sts = wait_for(kubectl, namespace, "statefulset", name)
    uid = get(kubectl, namespace, "etcdcluster", name)["metadata"]["uid"]
    assert env.items() <= env_of(sts).items()
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    peer = wait_for(kubectl, namespace, "service", name)
    assert [p["name"] for p in peer["spec"]["ports"]] == ports and peer["spec"]["publishNotReadyAddresses"]
    client = wait_for(kubectl, namespace, "service", f"{name}-client")
    pdb = wait_for(kubectl, namespace, "pdb", name)
    for obj in (sts, peer, client, pdb):
        assert obj["metadata"]["ownerReferences"][0]["uid"] == uid
    listed = json.loads(kubectl("get", "-n", namespace, "secrets", "-o", "json").stdout)["items"]
    assert {s["metadata"]["name"] for s in listed} == secrets


def test_status_events_update_restart_and_deletion(kubectl, namespace, operator):
    name = apply_example(kubectl, namespace, "etcdcluster.yaml")

    def status():
        return (get(kubectl, namespace, "etcdcluster", name) or {}).get("status", {})

    current = wait_until(lambda: status().get("conditions") and status(), 60, interval=0.5, message="no status")
    conditions = {c["type"]: (c["status"], c["reason"]) for c in current["conditions"]}
    assert conditions == {
        "Available": ("False", "Bootstrapping"),
        "Progressing": ("True", "MembersStarting"),
        "Degraded": ("False", "AsExpected"),
    }
    assert current["phase"] == "Bootstrapping" and current["initialMembers"] == 3
    assert current["observedGeneration"] == 1 and current["readyReplicas"] == 0

    def event_reasons():
        raw = kubectl("get", "events", "-n", namespace, "--field-selector",
                      f"involvedObject.kind=EtcdCluster,involvedObject.name={name}", "-o", "json").stdout  # fmt: skip
        return {e["reason"] for e in json.loads(raw)["items"]}

    wait_until(lambda: {"Bootstrapping", "MembersStarting"} <= event_reasons(), 30, message="no Events")

    # An update to the pod template reaches the StatefulSet.
    kubectl("patch", "-n", namespace, "etcdcluster", name, "--type=merge", "-p",
            '{"spec":{"resources":{"requests":{"cpu":"250m"}}}}')  # fmt: skip

    def cpu():
        sts = get(kubectl, namespace, "statefulset", name)
        return sts["spec"]["template"]["spec"]["containers"][0].get("resources", {}).get("requests", {}).get("cpu")

    wait_until(lambda: cpu() == "250m", 60, message="resources update not applied")

    # A restarted operator resumes without touching what is already right. The statefulset controller
    # writes status after a template change, so compare generation (spec writes), not resourceVersion.
    settled = wait_until(
        lambda: ((s := get(kubectl, namespace, "statefulset", name)).get("status") or {}).get("observedGeneration")
        == s["metadata"]["generation"] and s, 30, message="StatefulSet status never caught up")  # fmt: skip
    before = settled["metadata"]["generation"]
    secret = get(kubectl, namespace, "secret", f"{name}-peer-tls")["data"]
    operator.stop()
    operator.start()
    resumed = wait_until(
        lambda: next((line for line in operator.log().splitlines()
                      if '"reconciling"' in line and f'"cluster": "{name}"' in line), None),
        60, message="restarted operator did not resume the cluster")  # fmt: skip
    assert json.loads(resumed)["repaired"] == []  # everything was already right: nothing rewritten
    assert get(kubectl, namespace, "statefulset", name)["metadata"]["generation"] == before
    assert get(kubectl, namespace, "secret", f"{name}-peer-tls")["data"] == secret
    assert base64.b64decode(secret["ca.crt"]).startswith(b"-----BEGIN CERTIFICATE-----")

    # Deletion: children are garbage-collected through their owner references.
    kubectl("delete", "-n", namespace, "etcdcluster", name, "--wait=true", "--timeout=60s")
    for kind, obj in (("statefulset", name), ("service", name), ("secret", f"{name}-peer-ca"), ("pdb", name)):
        wait_until(lambda k=kind, o=obj: get(kubectl, namespace, k, o) is None, 60, message=f"{kind}/{obj} not collected")


def test_discovery_cluster_reference_waits_for_the_referenced_cluster(kubectl, namespace):
    child = {"apiVersion": "etcd.operator.dev/v1alpha1", "kind": "EtcdCluster", "metadata": {"name": "child"},
             "spec": {"bootstrap": {"mode": "discovery", "discoveryClusterRef": {"name": "seed"}}}}  # fmt: skip
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(child))

    def messages():
        raw = kubectl("get", "events", "-n", namespace, "-o", "json").stdout
        return " ".join(e.get("message", "") for e in json.loads(raw)["items"])

    wait_until(lambda: "EtcdCluster seed not found in namespace" in messages(), 60, message="no Event for the missing ref")
    assert get(kubectl, namespace, "statefulset", "child") is None  # nothing starts without its discovery service
    seed = {**child, "metadata": {"name": "seed"}, "spec": {"replicas": 1}}
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(seed))
    # The seed exists now, but its members do not run in this tier: the child keeps waiting and says so.
    # The reason stays WaitingForDiscovery, so no new Event; the condition's message says what it waits for now.
    def progressing():
        conditions = ((get(kubectl, namespace, "etcdcluster", "child") or {}).get("status") or {}).get("conditions")
        return next((c for c in conditions or [] if c["type"] == "Progressing"), {})

    waiting = wait_until(lambda: "discovery cluster seed is not reachable yet" in progressing().get("message", "")
                         and progressing(), 90, message="the child does not say it waits for the seed")  # fmt: skip
    assert (waiting["status"], waiting["reason"]) == ("True", "WaitingForDiscovery")
    assert get(kubectl, namespace, "statefulset", "child") is None
