"""Write container images as archives `ctr images import` (and `docker load`) accept, without Docker.

An image is a list of layers plus its runtime config (entrypoint, env, user,
...). A layer is a directory tree turned into a gzipped tar. The archive is an
OCI image layout whose index names the image with containerd's
`io.containerd.image.name` annotation (containerd 1.6 imports it under exactly
that name), with Docker's manifest.json beside it for `docker load`.

Layers are reproducible: entries sorted, every mtime fixed, no user or group
names, no name or time in the gzip header, so an unchanged tree gives the same
digest. Ownership, modes, symlinks and hard links are kept as they are on disk.
The upper directory of an overlay mount is a layer too (`overlay=True`): its
whiteouts and opaque directories become the OCI `.wh.` entries.

usage:
  python oci.py layer DIR OUT.tar.gz [--overlay] [--owner PATH=UID:GID ...]    -> prints the diff_id
  python oci.py image REF OUT.tar --config JSON LAYER...    LAYER: a directory or a .tar.gz
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

MTIME = 0
CREATED = "1970-01-01T00:00:00Z"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Layer:
    path: Path  # the gzipped tar
    digest: str  # sha256 of the gzipped tar: the blob's name
    diff_id: str  # sha256 of the tar inside: what the config lists
    size: int


class _Hashing:
    """A write-only file that hashes what passes through: the diff_id without a second read."""

    def __init__(self, inner) -> None:
        self.inner, self.sha = inner, hashlib.sha256()

    def write(self, data) -> int:
        self.sha.update(data)
        return self.inner.write(data)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _walk(root: Path) -> Iterator[Path]:
    """Every path under root, each directory before its contents, in byte order of names."""
    with os.scandir(root) as it:
        entries = sorted(it, key=lambda e: e.name.encode("utf-8", "surrogateescape"))
    for entry in entries:
        yield Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path))


def _opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def _empty(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime, info.mode = MTIME, 0o644
    return info


def write_layer(
    tree: Path,
    out: Path,
    owners: Mapping[str, tuple[int, int]] | None = None,
    overlay: bool = False,
) -> Layer:
    """Tar the contents of `tree` (as the image's root) into `out`, gzipped.

    `owners` maps absolute image paths to the uid and gid they get instead of
    their owner on disk. Sockets are left out: a runtime makes its own.
    """
    owners = owners or {}
    with out.open("wb") as raw:
        with gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=MTIME, compresslevel=6) as gz:
            hashing = _Hashing(gz)
            with tarfile.open(fileobj=hashing, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for path in _walk(tree):
                    name = path.relative_to(tree).as_posix()
                    st = path.lstat()
                    if overlay and stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                        parent, _, base = name.rpartition("/")
                        tar.addfile(_empty(f"{parent}/{WHITEOUT}{base}" if parent else WHITEOUT + base))
                        continue
                    info = tar.gettarinfo(str(path), arcname=name)
                    if info is None:  # a socket
                        continue
                    info.mtime = MTIME
                    info.uid, info.gid = owners.get("/" + name, (st.st_uid, st.st_gid))
                    info.uname = info.gname = ""
                    if info.isreg():
                        with path.open("rb") as f:
                            tar.addfile(info, f)
                    else:
                        tar.addfile(info)
                    if overlay and info.isdir() and _opaque(path):
                        tar.addfile(_empty(f"{name}/{OPAQUE}"))
        diff_id = "sha256:" + hashing.sha.hexdigest()
    return Layer(out, _sha256_file(out), diff_id, out.stat().st_size)


def load_layer(path: Path) -> Layer:
    """A gzipped layer tar written elsewhere; its diff_id is read from the tar inside."""
    h, digest, z = hashlib.sha256(), hashlib.sha256(), zlib.decompressobj(16 + zlib.MAX_WBITS)
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            h.update(z.decompress(chunk))
            while z.eof and z.unused_data:  # a gzip file may hold several members
                rest, z = z.unused_data, zlib.decompressobj(16 + zlib.MAX_WBITS)
                h.update(z.decompress(rest))
    h.update(z.flush())
    return Layer(path, "sha256:" + digest.hexdigest(), "sha256:" + h.hexdigest(), path.stat().st_size)


def image_config(layers: Sequence[Layer], runtime: Mapping[str, object]) -> dict[str, object]:
    return {
        "architecture": "amd64",
        "os": "linux",
        "created": CREATED,
        "config": dict(runtime),
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": CREATED, "created_by": "e2e/images/oci.py"} for _ in layers],
    }


def split_ref(ref: str) -> tuple[str, str]:
    """`registry/repo:tag` -> (`registry/repo`, `tag`); a tag is required, a digest refused."""
    name, colon, tag = ref.rpartition(":")
    if not colon or "/" in tag or "@" in ref or not name:
        raise ValueError(f"image reference needs a tag (and no digest): {ref!r}")
    return name, tag


def docker_repo_tag(ref: str) -> str:
    """docker.io/library/x:t -> x:t, as `docker save` writes RepoTags."""
    for prefix in ("docker.io/library/", "docker.io/"):
        if ref.startswith(prefix):
            return ref.removeprefix(prefix)
    return ref


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def write_image(ref: str, layers: Sequence[Layer], runtime: Mapping[str, object], out: Path) -> str:
    """Write the archive to `out` (atomically) and return the manifest's digest."""
    _, tag = split_ref(ref)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".oci-") as tmp:
        root = Path(tmp)
        blobs = root / "blobs" / "sha256"
        blobs.mkdir(parents=True)

        def blob(data: bytes) -> dict[str, object]:
            digest = hashlib.sha256(data).hexdigest()
            (blobs / digest).write_bytes(data)
            return {"digest": "sha256:" + digest, "size": len(data)}

        for layer in layers:
            target = blobs / layer.digest.removeprefix("sha256:")
            if not target.exists():
                try:
                    os.link(layer.path, target)
                except OSError:
                    shutil.copyfile(layer.path, target)
        config = {"mediaType": MEDIA_CONFIG, **blob(_json(image_config(layers, runtime)))}
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": config,
            "layers": [{"mediaType": MEDIA_LAYER, "digest": x.digest, "size": x.size} for x in layers],
        }
        described = {"mediaType": MEDIA_MANIFEST, **blob(_json(manifest))}
        annotations = {"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": tag}
        index = {"schemaVersion": 2, "manifests": [{**described, "annotations": annotations}]}
        (root / "index.json").write_bytes(_json(index))
        (root / "oci-layout").write_bytes(_json({"imageLayoutVersion": "1.0.0"}))
        docker = [{
            "Config": f"blobs/sha256/{str(config['digest']).removeprefix('sha256:')}",
            "RepoTags": [docker_repo_tag(ref)],
            "Layers": [f"blobs/sha256/{x.digest.removeprefix('sha256:')}" for x in layers],
        }]
        (root / "manifest.json").write_bytes(_json(docker))
        partial = out.with_name(out.name + ".partial")
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            for path in _walk(root):
                info = tar.gettarinfo(str(path), arcname=path.relative_to(root).as_posix())
                info.mtime, info.uid, info.gid, info.uname, info.gname = MTIME, 0, 0, "", ""
                info.mode = 0o755 if info.isdir() else 0o644
                if info.isreg():
                    with path.open("rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
        partial.replace(out)
    return str(described["digest"])


def _owner(value: str) -> tuple[str, tuple[int, int]]:
    path, eq, ids = value.partition("=")
    uid, _, gid = ids.partition(":")
    if not eq or not path.startswith("/") or not uid.isdigit() or not (gid or uid).isdigit():
        raise argparse.ArgumentTypeError(f"expected /PATH=UID[:GID], got {value!r}")
    return path.rstrip("/") or "/", (int(uid), int(gid or uid))


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    lay = sub.add_parser("layer", help="tar a directory into a gzipped layer; prints its diff_id")
    lay.add_argument("tree", type=Path)
    lay.add_argument("out", type=Path)
    lay.add_argument("--owner", action="append", default=[], type=_owner, metavar="PATH=UID:GID")
    lay.add_argument("--overlay", action="store_true", help="the tree is an overlay upper dir: convert whiteouts")
    img = sub.add_parser("image", help="write an image archive; prints the manifest digest")
    img.add_argument("ref", help="full reference with tag, e.g. docker.io/library/etcd-node:3.6.16")
    img.add_argument("out", type=Path)
    img.add_argument("--config", required=True, help="runtime config as JSON (Entrypoint, Env, User, ...)")
    img.add_argument("layers", nargs="+", type=Path, help="a directory or a gzipped tar, base first")
    args = parser.parse_args(argv)
    if args.command == "layer":
        print(write_layer(args.tree, args.out, dict(args.owner), overlay=args.overlay).diff_id)
        return 0
    with tempfile.TemporaryDirectory(dir=args.out.parent, prefix=".layers-") as tmp:
        layers = [
            write_layer(p, Path(tmp) / f"{i}.tar.gz") if p.is_dir() else load_layer(p)
            for i, p in enumerate(args.layers)
        ]
        print(write_image(args.ref, layers, json.loads(args.config), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
