"""The test control plane itself works: apiserver version, namespaces, and the
controller manager's StatefulSet and garbage-collector controllers.

No scheduler or kubelet runs, so pods are created but never scheduled; that is
enough to see kube-controller-manager act on objects.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable

import pytest

pytestmark = pytest.mark.kube

DEADLINE = 90  # seconds for a controller to act


def wait_until(what: str, probe: Callable[[], object], timeout: float = DEADLINE) -> object:
    """Poll probe() until it returns something truthy, or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}", pytrace=False)
        time.sleep(0.5)


@pytest.fixture
def namespace(kubectl):
    name = f"kube-test-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


def test_version_is_pinned(kubectl, kube_version):
    info = json.loads(kubectl("get", "--raw", "/version").stdout)
    assert info["gitVersion"] == kube_version
    assert (info["major"], info["minor"]) == ("1", kube_version.split(".")[1])
    assert info["gitTreeState"] == "clean"


def test_namespace_can_be_created(kubectl, namespace):
    ns = json.loads(kubectl("get", "namespace", namespace, "-o", "json").stdout)
    assert ns["metadata"]["name"] == namespace
    assert ns["status"]["phase"] == "Active"


STATEFULSET = """
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: example.invalid/none:1
"""


def test_statefulset_pod_is_created_and_garbage_collected(kubectl, namespace):
    kubectl("-n", namespace, "apply", "-f", "-", input=STATEFULSET)
    sts = json.loads(kubectl("-n", namespace, "get", "statefulset", "web", "-o", "json").stdout)

    def pod():
        proc = kubectl("-n", namespace, "get", "pod", "web-0", "-o", "json", "--ignore-not-found")
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    # The statefulset controller (kube-controller-manager) creates the pod.
    created = wait_until("the statefulset controller to create pod web-0", pod)
    assert [(o["kind"], o["name"], o["uid"]) for o in created["metadata"]["ownerReferences"]] == [
        ("StatefulSet", "web", sts["metadata"]["uid"])
    ]
    assert created["spec"]["containers"][0]["image"] == "example.invalid/none:1"
    # Nothing schedules or runs it.
    assert created["status"]["phase"] == "Pending"
    assert not created["spec"].get("nodeName")

    # Deleting the owner without waiting leaves the pod to the garbage collector.
    kubectl("-n", namespace, "delete", "statefulset", "web", "--cascade=background", "--wait=false")
    wait_until("the garbage collector to delete pod web-0", lambda: pod() is None)


TOKEN_SECRET = """
apiVersion: v1
kind: Secret
metadata:
  name: default-token
  annotations: {kubernetes.io/service-account.name: default}
type: kubernetes.io/service-account-token
"""


def test_service_account_token_controller_signs_tokens(kubectl, namespace):
    # The namespace's `default` service account comes from the serviceaccount
    # controller, the token in a legacy token Secret from the
    # serviceaccount-token controller (--service-account-private-key-file).
    wait_until("service account default", lambda: kubectl(
        "-n", namespace, "get", "serviceaccount", "default", "--ignore-not-found", "-o", "name").stdout.strip())
    kubectl("-n", namespace, "apply", "-f", "-", input=TOKEN_SECRET)
    token = wait_until("the token controller to fill the secret", lambda: kubectl(
        "-n", namespace, "get", "secret", "default-token", "-o", "jsonpath={.data.token}").stdout)
    # The apiserver accepts it as the service account's (a TokenReview asks).
    review = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": base64.b64decode(token).decode()},
    }
    status = json.loads(kubectl("create", "-f", "-", "-o", "json", input=json.dumps(review)).stdout)["status"]
    assert status["authenticated"] is True
    assert status["user"]["username"] == f"system:serviceaccount:{namespace}:default"
