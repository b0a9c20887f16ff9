"""Host-path volume provisioner of the local cluster's default StorageClass.

Kubernetes' in-tree host-path provisioner creates directories with mode 0750
owned by root, which a non-root etcd cannot write to, and hostPath volumes
ignore fsGroup. Like the local-path provisioner kind ships, this one creates
each claim's directory world-writable under one base directory, binds a
PersistentVolume to the claim, and removes both when a released volume's
policy is Delete. Single node only: a test fixture, not a product part.

usage: python provisioner.py KUBECONFIG BASE_DIR
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from kubernetes import client, config
from kubernetes.client.rest import ApiException

PROVISIONER = "etcd-operator.dev/local-hostpath"


def provisioned_by_us(claim) -> bool:
    ann = claim.metadata.annotations or {}
    wanted = ann.get("volume.kubernetes.io/storage-provisioner") or ann.get(
        "volume.beta.kubernetes.io/storage-provisioner"
    )
    return wanted == PROVISIONER


def volume_for(claim, base: Path, reclaim_policy: str) -> client.V1PersistentVolume:
    name = f"pvc-{claim.metadata.uid}"
    return client.V1PersistentVolume(
        metadata=client.V1ObjectMeta(name=name, annotations={"pv.kubernetes.io/provisioned-by": PROVISIONER}),
        spec=client.V1PersistentVolumeSpec(
            capacity={"storage": claim.spec.resources.requests["storage"]},
            access_modes=claim.spec.access_modes,
            persistent_volume_reclaim_policy=reclaim_policy,
            storage_class_name=claim.spec.storage_class_name,
            volume_mode=claim.spec.volume_mode,
            host_path=client.V1HostPathVolumeSource(path=str(base / name), type="Directory"),
            claim_ref=client.V1ObjectReference(
                kind="PersistentVolumeClaim",
                namespace=claim.metadata.namespace,
                name=claim.metadata.name,
                uid=claim.metadata.uid,
            ),
        ),
    )


def provision(core, storage, base: Path) -> None:
    for claim in core.list_persistent_volume_claim_for_all_namespaces().items:
        if claim.status.phase != "Pending" or claim.spec.volume_name or not provisioned_by_us(claim):
            continue
        klass = storage.read_storage_class(claim.spec.storage_class_name)
        pv = volume_for(claim, base, klass.reclaim_policy or "Delete")
        path = Path(pv.spec.host_path.path)
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)
        try:
            core.create_persistent_volume(pv)
            print(f"provisioner: {pv.metadata.name} for {claim.metadata.namespace}/{claim.metadata.name}", flush=True)
        except ApiException as e:
            if e.status != 409:  # already made on an earlier pass
                raise


def reclaim(core, base: Path) -> None:
    for pv in core.list_persistent_volume().items:
        ann = pv.metadata.annotations or {}
        if ann.get("pv.kubernetes.io/provisioned-by") != PROVISIONER:
            continue
        if pv.status.phase != "Released" or pv.spec.persistent_volume_reclaim_policy != "Delete":
            continue
        path = Path(pv.spec.host_path.path)
        if path.parent == base:
            shutil.rmtree(path, ignore_errors=True)
        try:
            core.delete_persistent_volume(pv.metadata.name)
            print(f"provisioner: deleted {pv.metadata.name}", flush=True)
        except ApiException as e:
            if e.status != 404:
                raise


def main(argv: list[str]) -> int:
    kubeconfig, base_dir = argv
    base = Path(base_dir)
    base.mkdir(parents=True, exist_ok=True)
    config.load_kube_config(kubeconfig)
    core, storage = client.CoreV1Api(), client.StorageV1Api()
    while True:
        try:
            provision(core, storage, base)
            reclaim(core, base)
        except Exception as e:  # the apiserver restarting, a claim deleted mid-pass: retry
            print(f"provisioner: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
