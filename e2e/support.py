"""kubectl-driven helpers for the e2e suite: polling with deadlines, a client pod, etcdctl."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

T = TypeVar("T")

NODE_IMAGE = "etcd-node:3.6.16"
CLIENT_POD = "etcd-client"


@dataclass(frozen=True)
class Kube:
    kubectl: str
    kubeconfig: Path

    def run(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 90
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.kubectl, "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True, text=True, input=input, timeout=timeout,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr}", pytrace=False)
        return proc

    def get(self, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
        proc = self.run("-n", namespace, "get", kind, name, "-o", "json", check=False)
        if proc.returncode != 0:
            if "NotFound" in proc.stderr:
                return None
            pytest.fail(f"kubectl get {kind} {name}: {proc.stderr}", pytrace=False)
        return json.loads(proc.stdout)

    def items(self, namespace: str, kind: str, selector: str | None = None) -> list[dict[str, Any]]:
        args = ["-n", namespace, "get", kind, "-o", "json"]
        if selector:
            args += ["-l", selector]
        return json.loads(self.run(*args).stdout)["items"]

    def apply(self, namespace: str, obj: dict[str, Any]) -> None:
        self.run("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(obj))

    def diagnostics(self, namespace: str, operator_namespace: str) -> str:
        """What a failed test leaves behind: objects, events and the operator's log tail."""
        parts = []
        for args in (
            ("-n", namespace, "get", "etcdclusters,statefulsets,pods,pvc,svc", "-o", "wide"),
            ("-n", namespace, "get", "etcdclusters", "-o", "yaml"),
            ("-n", namespace, "get", "events", "--sort-by=.lastTimestamp"),
            ("-n", operator_namespace, "logs", "deploy/etcd-operator", "--tail=1000"),
        ):
            proc = self.run(*args, check=False)
            out = proc.stdout
            if "logs" in args:  # the operator's own lines, without probes and timer chatter
                lines = [x for x in out.splitlines() if "/healthz" not in x and "Timer 'observe'" not in x]
                out = "\n".join(lines[-60:]) + "\n"
            parts.append(f"$ kubectl {' '.join(args)}\n{out}{proc.stderr}")
        return "\n".join(parts)


def wait_until(what: str, probe: Callable[[], T | None], timeout: float = 300, interval: float = 2) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after the deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})", pytrace=False)


def etcd_cluster(name: str, replicas: int = 3, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "etcd.operator.dev/v1alpha1",
        "kind": "EtcdCluster",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "version": "3.6.16", "storage": {"size": "1Gi"}, **spec},
    }


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c
    return None


def available_status(kube: Kube, namespace: str, name: str, members: int) -> dict[str, Any] | None:
    """The cluster's status once it is Available with `members` healthy voting members and a leader."""
    obj = kube.get(namespace, "etcdcluster", name)
    if not obj:
        return None
    status = obj.get("status") or {}
    listed = status.get("members") or []
    available = (condition(obj, "Available") or {}).get("status") == "True"
    healthy_voters = [m for m in listed if m.get("healthy") and not m.get("isLearner")]
    if available and len(listed) == members and len(healthy_voters) == members and status.get("leader"):
        return status
    return None


def wait_available(kube: Kube, namespace: str, name: str, members: int, timeout: float = 300) -> dict[str, Any]:
    return wait_until(
        f"EtcdCluster {namespace}/{name} Available with {members} healthy members",
        lambda: available_status(kube, namespace, name, members), timeout=timeout,
    )


def start_client_pod(kube: Kube, namespace: str, cluster: str, client_tls: bool = True) -> None:
    """A pod with etcdctl and the cluster's user client certificate, to reach the client Service."""
    volumes, mounts = [], []
    if client_tls:
        volumes = [{"name": "tls", "secret": {"secretName": f"{cluster}-client-tls"}}]
        mounts = [{"name": "tls", "mountPath": "/tls", "readOnly": True}]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": CLIENT_POD},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "client", "image": NODE_IMAGE, "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "infinity"], "volumeMounts": mounts,
            }],
            "volumes": volumes,
        },
    }
    kube.apply(namespace, pod)
    kube.run("-n", namespace, "wait", "--for=condition=Ready", f"pod/{CLIENT_POD}", "--timeout=120s", timeout=150)


def etcdctl(
    kube: Kube, namespace: str, cluster: str, *args: str, tls: str = "cert", check: bool = True, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """etcdctl in the client pod against the client Service. tls: cert (client cert auth), server-only, none."""
    scheme = "http" if tls == "none" else "https"
    endpoint = f"{scheme}://{cluster}-client.{namespace}.svc.cluster.local:2379"
    flags = ["--endpoints", endpoint, "--command-timeout=10s"]
    if tls == "cert":
        flags += ["--cacert", "/tls/ca.crt", "--cert", "/tls/tls.crt", "--key", "/tls/tls.key"]
    elif tls == "server-only":
        flags += ["--insecure-skip-tls-verify"]
    return kube.run("-n", namespace, "exec", CLIENT_POD, "--", "etcdctl", *flags, *args, check=check, timeout=timeout)


def member_ids(kube: Kube, namespace: str, cluster: str, tls: str = "cert") -> dict[str, str]:
    """name -> hex member ID, from etcd's own member list."""
    out = etcdctl(kube, namespace, cluster, "member", "list", "-w", "json", tls=tls).stdout
    return {m.get("name", ""): format(m["ID"], "x") for m in json.loads(out)["members"]}
