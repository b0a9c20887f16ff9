"""The image archive writer: reproducible layers that keep what a root filesystem needs, and the
archive layout containerd's `ctr images import` names by its `io.containerd.image.name` annotation."""

import gzip
import hashlib
import json
import os
import socket
import stat
import tarfile
from pathlib import Path

import pytest

from e2e.images import oci

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="device nodes and trusted.* xattrs need root")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def members(layer: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(layer, "r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    t = tmp_path / "tree"
    (t / "usr/bin").mkdir(parents=True)
    (t / "usr/bin/tool").write_bytes(b"#!/bin/sh\n")
    (t / "usr/bin/tool").chmod(0o4755)
    os.link(t / "usr/bin/tool", t / "usr/bin/tool-again")
    (t / "usr/bin/alias").symlink_to("tool")
    (t / "tmp").mkdir()
    (t / "tmp").chmod(0o1777)
    (t / "var/lib/etcd").mkdir(parents=True)
    return t


def test_layer_digests_describe_the_gzip_and_the_tar_inside(tree, tmp_path):
    layer = oci.write_layer(tree, tmp_path / "l.tar.gz")
    data = layer.path.read_bytes()
    assert layer.digest == sha256(data)
    assert layer.diff_id == sha256(gzip.decompress(data))
    assert layer.size == len(data)


def test_same_tree_gives_the_same_layer_whatever_the_file_name_or_time(tree, tmp_path):
    first = oci.write_layer(tree, tmp_path / "a.tar.gz")
    os.utime(tree / "usr/bin/tool", (1_700_000_000, 1_700_000_000))
    second = oci.write_layer(tree, tmp_path / "another-name.tar.gz")
    assert (first.digest, first.diff_id) == (second.digest, second.diff_id)


def test_layer_keeps_modes_links_and_order_with_fixed_times_and_no_names(tree, tmp_path):
    entries = members(oci.write_layer(tree, tmp_path / "l.tar.gz").path)
    assert list(entries) == sorted(entries, key=lambda n: n.split("/"))  # parents first
    tool = entries["usr/bin/tool"]
    assert tool.isreg() and stat.S_IMODE(tool.mode) == 0o4755
    assert entries["usr/bin/tool-again"].islnk() and entries["usr/bin/tool-again"].linkname == "usr/bin/tool"
    assert entries["usr/bin/alias"].issym() and entries["usr/bin/alias"].linkname == "tool"
    assert stat.S_IMODE(entries["tmp"].mode) == 0o1777
    assert {m.mtime for m in entries.values()} == {0}
    assert {(m.uname, m.gname) for m in entries.values()} == {("", "")}


def test_owner_is_kept_from_disk_unless_overridden(tree, tmp_path):
    entries = members(oci.write_layer(tree, tmp_path / "l.tar.gz", owners={"/var/lib/etcd": (65532, 65533)}).path)
    st = (tree / "usr/bin/tool").lstat()
    assert (entries["usr/bin/tool"].uid, entries["usr/bin/tool"].gid) == (st.st_uid, st.st_gid)
    assert (entries["var/lib/etcd"].uid, entries["var/lib/etcd"].gid) == (65532, 65533)


def test_sockets_are_left_out(tree, tmp_path):
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(tree / "tmp/sock"))
        entries = members(oci.write_layer(tree, tmp_path / "l.tar.gz").path)
    assert "tmp/sock" not in entries
    assert "tmp" in entries


@root_only
def test_overlay_whiteouts_and_opaque_directories_become_oci_entries(tmp_path):
    upper = tmp_path / "upper"
    (upper / "etc/cron.d").mkdir(parents=True)
    os.mknod(upper / "etc/motd", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    os.mknod(upper / "gone", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    os.setxattr(upper / "etc/cron.d", "trusted.overlay.opaque", b"y")
    entries = members(oci.write_layer(upper, tmp_path / "l.tar.gz", overlay=True).path)
    assert {"etc/.wh.motd", ".wh.gone", "etc/cron.d/.wh..wh..opq"} <= set(entries)
    assert "etc/motd" not in entries and "gone" not in entries
    assert entries["etc/.wh.motd"].isreg() and entries["etc/.wh.motd"].size == 0


@root_only
def test_device_nodes_stay_devices_outside_overlay_mode(tmp_path):
    tree = tmp_path / "tree"
    (tree / "dev").mkdir(parents=True)
    os.mknod(tree / "dev/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    entry = members(oci.write_layer(tree, tmp_path / "l.tar.gz").path)["dev/null"]
    assert entry.ischr() and (entry.devmajor, entry.devminor) == (1, 3)


def test_load_layer_reads_the_diff_id_of_any_gzip_tar(tree, tmp_path):
    written = oci.write_layer(tree, tmp_path / "l.tar.gz")
    assert oci.load_layer(written.path) == written
    # Several gzip members in one file are one stream (`cat a.gz b.gz`).
    raw = written.path.read_bytes()
    inner = gzip.decompress(raw)
    two = tmp_path / "two.tar.gz"
    two.write_bytes(gzip.compress(inner[:1000]) + gzip.compress(inner[1000:]))
    assert oci.load_layer(two).diff_id == written.diff_id


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("docker.io/library/etcd-node:3.6.16", ("docker.io/library/etcd-node", "3.6.16")),
        ("localhost/etcd-operator/pause:1.0", ("localhost/etcd-operator/pause", "1.0")),
        ("localhost:5000/x:v1", ("localhost:5000/x", "v1")),
    ],
)
def test_split_ref(ref, expected):
    assert oci.split_ref(ref) == expected


@pytest.mark.parametrize("ref", ["etcd-node", "localhost:5000/x", "x:1@sha256:" + "0" * 64, ":1"])
def test_refs_without_a_tag_are_refused(ref):
    with pytest.raises(ValueError, match="tag"):
        oci.split_ref(ref)


def test_docker_repo_tags_drop_the_default_registry():
    assert oci.docker_repo_tag("docker.io/library/etcd-node:3.6.16") == "etcd-node:3.6.16"
    assert oci.docker_repo_tag("docker.io/someone/x:1") == "someone/x:1"
    assert oci.docker_repo_tag("localhost/etcd-operator/pause:1.0") == "localhost/etcd-operator/pause:1.0"


RUNTIME = {"Entrypoint": ["etcd-node"], "Env": ["PATH=/opt/venv/bin:/usr/bin:/bin"], "User": "65532:65532",
           "WorkingDir": "/var/lib/etcd", "ExposedPorts": {"2379/tcp": {}}}


def read_archive(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isreg()}


def test_image_archive_is_an_oci_layout_named_for_containerd(tree, tmp_path):
    base = oci.write_layer(tree, tmp_path / "base.tar.gz")
    (tmp_path / "top").mkdir()
    (tmp_path / "top/hello").write_text("hi\n")
    top = oci.write_layer(tmp_path / "top", tmp_path / "top.tar.gz")
    ref = "docker.io/library/etcd-node:3.6.16"
    digest = oci.write_image(ref, [base, top], RUNTIME, tmp_path / "image.tar")
    files = read_archive(tmp_path / "image.tar")

    def blob(d: str) -> bytes:
        data = files["blobs/sha256/" + d.removeprefix("sha256:")]
        assert sha256(data) == d
        return data

    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    (entry,) = json.loads(files["index.json"])["manifests"]
    assert entry["digest"] == digest
    assert entry["annotations"] == {"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": "3.6.16"}
    manifest = json.loads(blob(digest))
    assert entry["size"] == len(blob(digest))
    assert manifest["mediaType"] == entry["mediaType"] == oci.MEDIA_MANIFEST
    assert [x["digest"] for x in manifest["layers"]] == [base.digest, top.digest]
    assert {x["mediaType"] for x in manifest["layers"]} == {oci.MEDIA_LAYER}
    for x in manifest["layers"]:
        assert len(blob(x["digest"])) == x["size"]
    config = json.loads(blob(manifest["config"]["digest"]))
    assert (config["architecture"], config["os"]) == ("amd64", "linux")
    assert config["rootfs"] == {"type": "layers", "diff_ids": [base.diff_id, top.diff_id]}
    assert config["config"] == RUNTIME
    assert len(config["history"]) == 2
    (docker,) = json.loads(files["manifest.json"])
    assert docker["RepoTags"] == ["etcd-node:3.6.16"]
    assert docker["Config"] == "blobs/sha256/" + manifest["config"]["digest"].removeprefix("sha256:")
    assert [p.removeprefix("blobs/sha256/") for p in docker["Layers"]] == [
        x["digest"].removeprefix("sha256:") for x in manifest["layers"]
    ]
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob(".oci-*"))


def test_image_archive_is_reproducible(tree, tmp_path):
    layer = oci.write_layer(tree, tmp_path / "l.tar.gz")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = oci.write_image("localhost/x/y:1", [layer], RUNTIME, tmp_path / "a/image.tar")
    second = oci.write_image("localhost/x/y:1", [layer], RUNTIME, tmp_path / "b/image.tar")
    assert first == second
    assert (tmp_path / "a/image.tar").read_bytes() == (tmp_path / "b/image.tar").read_bytes()


def test_cli_writes_layers_from_directories_and_tarballs(tree, tmp_path, capsys):
    assert oci.main(["layer", str(tree), str(tmp_path / "l.tar.gz"), "--owner", "/var/lib/etcd=65532"]) == 0
    diff_id = capsys.readouterr().out.strip()
    assert members(tmp_path / "l.tar.gz")["var/lib/etcd"].gid == 65532
    (tmp_path / "top").mkdir()
    (tmp_path / "top/pause").write_bytes(b"\x7fELF")
    config = json.dumps({"Entrypoint": ["/pause"], "User": "65535:65535"})
    out = tmp_path / "pause.tar"
    assert oci.main(["image", "localhost/etcd-operator/pause:1.0", str(out), "--config", config,
                     str(tmp_path / "l.tar.gz"), str(tmp_path / "top")]) == 0
    digest = capsys.readouterr().out.strip()
    files = read_archive(out)
    manifest = json.loads(files["blobs/sha256/" + digest.removeprefix("sha256:")])
    config_blob = json.loads(files["blobs/sha256/" + manifest["config"]["digest"].removeprefix("sha256:")])
    assert config_blob["rootfs"]["diff_ids"][0] == diff_id
    assert config_blob["config"]["Entrypoint"] == ["/pause"]
    assert not list(tmp_path.glob(".layers-*"))


def test_cli_refuses_a_bad_owner(tree, tmp_path):
    with pytest.raises(SystemExit):
        oci.main(["layer", str(tree), str(tmp_path / "l.tar.gz"), "--owner", "var/lib/etcd=x"])
