#!/usr/bin/env bash
# Build the project's container images without Docker or a registry, as
# archives `ctr -n k8s.io images import` (the local cluster) and `docker load` accept:
#
#   node      docker.io/library/etcd-node:<etcd version>   node_image/Dockerfile's image: Debian
#             bookworm's Python, the agent, etcd, etcdctl and etcdutl; one image
#             for each version in NODE_ETCD_VERSIONS (hack/versions.env)
#   operator  docker.io/library/etcd-operator:<appVersion>  operator/Dockerfile's image
#   pause     localhost/etcd-operator/pause:1.0             pod sandbox, a static build of pause.c
#   coredns   localhost/etcd-operator/coredns:<version>     cluster DNS, the pinned CoreDNS build
#   versitygw localhost/etcd-operator/versitygw:<version>   S3 store of the backup e2e tests, the pinned build
#
# The two Python images share one base layer: a minimal Debian root filesystem
# from debootstrap, cached as a tarball keyed on its recipe and package list.
# Each image's own layer is what installing into that base adds: a chroot on an
# overlay mount, whose upper directory becomes the layer. The node images share
# that layer too (the venv with the agent, cached as node-venv-<key>.tar.gz so
# every version carries the same blob) and differ only in a top layer holding
# their etcd binaries.
#
# An archive is rebuilt only when its inputs change: its recipe (the functions
# below), oci.py, the Python sources and pyproject.toml, the pinned versions,
# the binaries it holds. Needs root (debootstrap, chroot, mount) and, for a
# Python image, PyPI.
#
# usage: e2e/images/build.sh [node|operator|pause|coredns|versitygw ...]   (default: all)
# Archives: ${ETCD_OPERATOR_CACHE:-~/.cache/etcd-operator}/images/<name>-<tag>.tar
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../../hack/versions.env
. "$root/hack/versions.env"
cache=${ETCD_OPERATOR_CACHE:-$HOME/.cache/etcd-operator}
bin_dir=${ETCD_BIN:-$cache/bin}
out=$cache/images
python=${PYTHON:-$root/.venv/bin/python}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
base_packages=python3,python3-venv,ca-certificates
runtime_path=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
app_version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$root/charts/etcd-operator/Chart.yaml")
read -ra node_versions <<<"$NODE_ETCD_VERSIONS"
coredns_tag=${COREDNS_VERSION#v}
versitygw_tag=${VERSITYGW_VERSION#v}

started=$SECONDS
say() { echo "images: [$((SECONDS - started))s] $*" >&2; }
die() { echo "images: $*" >&2; exit 1; }
oci() { "$python" "$here/oci.py" "$@"; }

# key RECIPE FILE|DIR...: a digest of the recipe's text, oci.py and the inputs' contents.
key() {
  local recipe=$1 f
  shift
  { printf '%s\n' "$recipe"; sha256sum <"$here/oci.py"
    # Sources only: an editable install's egg-info differs between checkouts.
    for f in "$@"; do
      if [ -d "$f" ]; then
        (cd "$f" && find . -type f ! -name '*.pyc' ! -path '*.egg-info/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
      else sha256sum <"$f"; fi
    done; } | sha256sum | cut -c1-16
}

# fresh NAME KEY: the archive exists and was built from these inputs.
fresh() {
  [ -s "$out/$1.tar" ] && [ "$(cat "$out/$1.key" 2>/dev/null)" = "$2" ] || return 1
  say "$1: up to date"
}

# image REF NAME KEY CONFIG LAYER...: write the archive NAME.tar and remember its key.
image() {
  local ref=$1 name=$2 k=$3 config=$4
  shift 4
  oci image "$ref" "$out/$name.tar" --config "$config" "$@" >/dev/null
  echo "$k" >"$out/$name.key"
  say "$name: $ref, $(du -h "$out/$name.tar" | cut -f1)"
}

# unmount_under DIR: every mount below DIR, innermost first.
unmount_under() {
  findmnt -rno TARGET | { grep -F "$1/" || true; } | sort -r | while read -r m; do umount -l "$m"; done
}

# --- base layer: minimal Debian with Python ----------------------------------------

base_layer() {
  base=$out/base-$suite-$(key "$(declare -f base_layer) $suite $base_packages").tar.gz
  [ ! -s "$base" ] || return 0
  local rootfs=$tmp/base began=$SECONDS
  say "base: debootstrap --variant=minbase $suite with $base_packages from $mirror (a minute or two)"
  debootstrap --variant=minbase --include="$base_packages" "$suite" "$rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1 \
    || { tail -n 30 "$tmp/debootstrap.log" >&2; die "debootstrap failed"; }
  say "base: debootstrap done in $((SECONDS - began))s"
  # The layer fixes every mtime, which would make Debian's timestamp-checked
  # bytecode stale: recompile it checked by nothing (the image never changes),
  # so a user that cannot write it still starts fast.
  chroot "$rootfs" /usr/bin/python3 -m compileall -q -f --invalidation-mode unchecked-hash \
    /usr/lib/python3.11 /usr/lib/python3/dist-packages
  # What a container never needs: package caches and lists, docs (but their
  # copyright files), manuals, locales, logs, device nodes, the host's names,
  # ldconfig's auxiliary cache (inode numbers: the one file that differs between two runs).
  (cd "$rootfs" && rm -rf var/cache/apt/* var/lib/apt/lists/* var/cache/debconf/*-old var/lib/dpkg/*-old \
    var/cache/ldconfig/aux-cache \
    usr/share/man/* usr/share/info/* usr/share/locale/* var/log/* dev/* etc/resolv.conf etc/hostname \
    && find usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete)
  # Kubernetes and Docker mount their own /etc/hosts; this one is for `ctr run`.
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$rootfs/etc/hosts"
  say "base: writing the layer"
  oci layer "$rootfs" "$base.partial" >/dev/null
  mv "$base.partial" "$base"
  find "$out" -maxdepth 1 -name "base-*.tar.gz" ! -path "$base" -delete
  rm -rf --one-file-system "$rootfs"
}

# project_wheel: the project's wheel, built once per run into $tmp/wheel.
project_wheel() {
  [ ! -d "$tmp/wheel" ] || return 0
  say "wheel: pip wheel --no-deps $root"
  "$python" -m pip wheel -q --no-deps --wheel-dir "$tmp/wheel" "$root" >/dev/null
}

# requirements EXTRA...: pyproject's dependencies, plus those of the extras.
requirements() {
  "$python" - "$root/pyproject.toml" "$@" <<'EOF'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
print("\n".join(project["dependencies"] + [r for x in sys.argv[2:] for r in project["optional-dependencies"][x]]))
EOF
}

# python_layer NAME USER HOME REQUIREMENT...: the layer that a venv in
# /opt/venv adds to the base: the requirements from PyPI, the project's wheel
# without its dependencies, USER and its group with id 65532 (HOME made when it
# is not /nonexistent). Sets $layer.
python_layer() {
  local name=$1 user=$2 home=$3 dir=$tmp/$1 began
  shift 3
  base_layer
  project_wheel
  mkdir -p "$dir"/{lower,upper,ovl,root}
  tar --numeric-owner -xzf "$base" -C "$dir/lower"
  mount -t overlay overlay -o "lowerdir=$dir/lower,upperdir=$dir/upper,workdir=$dir/ovl" "$dir/root"
  cp "$tmp"/wheel/*.whl "$dir/root/tmp/"
  # Downloads use the host's resolver and trust store (an intercepting proxy's CA included).
  cp /etc/resolv.conf "$dir/root/etc/resolv.conf"
  cp "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$dir/root/tmp/host-ca.crt"
  mount -t proc proc "$dir/root/proc"
  say "$name: pip install $* (PyPI)"
  began=$SECONDS
  # shellcheck disable=SC2016  # expanded by the chroot's shell
  chroot "$dir/root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
    PIP_CERT=/tmp/host-ca.crt ${PIP_INDEX_URL:+PIP_INDEX_URL=$PIP_INDEX_URL} \
    sh -euc '
      user=$1 home=$2; shift 2
      python3 -m venv /opt/venv
      /opt/venv/bin/pip install -q --no-compile --only-binary=:all: "$@"
      /opt/venv/bin/pip install -q --no-compile --no-deps /tmp/*.whl
      /opt/venv/bin/pip uninstall -q -y pip setuptools
      /opt/venv/bin/python -m compileall -q --invalidation-mode unchecked-hash /opt/venv/lib
      groupadd -K GID_MAX=65534 --gid 65532 "$user"
      useradd -K UID_MAX=65534 --no-log-init --no-create-home --uid 65532 --gid 65532 \
        --home-dir "$home" --shell /usr/sbin/nologin "$user"
      [ "$home" = /nonexistent ] || install -d -o 65532 -g 65532 -m 0755 "$home"' sh "$user" "$home" "$@"
  say "$name: pip done in $((SECONDS - began))s"
  umount "$dir/root/proc"
  # Nothing may be left in /dev, where the runtime mounts its own (the base's is empty).
  find "$dir/root/dev" -mindepth 1 -delete
  rm -rf "$dir/root"/tmp/*.whl "$dir/root/tmp/host-ca.crt" "$dir/root/etc/resolv.conf" "$dir/root/root/.cache"
  umount "$dir/root"
  layer=$dir/layer.tar.gz
  oci layer --overlay "$dir/upper" "$layer" >/dev/null
  rm -rf --one-file-system "$dir/lower" "$dir/upper" "$dir/ovl"
}

# --- images ----------------------------------------------------------------------

# The layer every node image has above the base: only the agent's own
# dependencies (as node_image/Dockerfile: not the operator's), the project's
# wheel and the etcd user. Kept beside the base and named by its key, so node
# images built in different runs still share the blob. The key is taken once
# per run, so one run's node images share the layer even while the sources change.
node_venv_recipe() { declare -f node_venv_layer python_layer base_layer; echo "$suite $base_packages $runtime_path"; }

# node_venv_layer: build $venv unless it is there; sets $base.
node_venv_layer() {
  local reqs
  base_layer
  [ ! -s "$venv" ] || return 0
  mapfile -t reqs < <(requirements backup)
  python_layer node etcd /var/lib/etcd "${reqs[@]}"
  mv "$layer" "$venv.partial"
  mv "$venv.partial" "$venv"
  find "$out" -maxdepth 1 -name "node-venv-*.tar.gz" ! -path "$venv" -delete
}

# build_node_version VERSION: etcd-node:<VERSION without v>: the base, $venv
# and a top layer of that version's etcd, etcdctl and etcdutl.
build_node_version() {
  local version=$1 tag=${1#v} etcd_dir=$bin_dir/etcd-$1 name k b top
  name=etcd-node-$tag
  for b in etcd etcdctl etcdutl; do
    [ -x "$etcd_dir/$b" ] || die "missing $etcd_dir/$b: run \`bash hack/build-etcd.sh $version\`"
  done
  k=$(key "$(declare -f build_node_version) $tag $(basename "$venv")" \
    "$etcd_dir/etcd" "$etcd_dir/etcdctl" "$etcd_dir/etcdutl")
  if fresh "$name" "$k"; then return 0; fi
  node_venv_layer
  # Modes set here, not taken from the umask: this layer's /usr entries replace the base's.
  top=$tmp/etcd-$tag
  install -d -m 0755 "$top/usr" "$top/usr/local" "$top/usr/local/bin"
  install -m 0755 "$etcd_dir"/{etcd,etcdctl,etcdutl} "$top/usr/local/bin/"
  image "docker.io/library/etcd-node:$tag" "$name" "$k" "$(cat <<EOF
{"Entrypoint": ["etcd-node"], "Env": ["PATH=$runtime_path"], "User": "65532:65532", "WorkingDir": "/var/lib/etcd",
 "ExposedPorts": {"2379/tcp": {}, "2380/tcp": {}, "2381/tcp": {}}}
EOF
)" "$base" "$venv" "$top"
}

build_node() {
  local v
  venv=$out/node-venv-$(key "$(node_venv_recipe)" "$root/pyproject.toml" "$root/node_image" "$root/operator").tar.gz
  for v in "${node_versions[@]}"; do build_node_version "$v"; done
}

build_operator() {
  local name=etcd-operator-$app_version k reqs
  k=$(key "$(declare -f build_operator python_layer base_layer) $runtime_path $base_packages $app_version" \
    "$root/pyproject.toml" "$root/node_image" "$root/operator")
  if fresh "$name" "$k"; then return 0; fi
  mapfile -t reqs < <(requirements operator)
  python_layer operator etcd-operator /nonexistent "${reqs[@]}"
  image "docker.io/library/etcd-operator:$app_version" "$name" "$k" "$(cat <<EOF
{"Entrypoint": ["etcd-operator"], "Env": ["PATH=$runtime_path"], "User": "65532:65532", "WorkingDir": "/",
 "ExposedPorts": {"8080/tcp": {}}}
EOF
)" "$base" "$layer"
}

build_pause() {
  local name=pause-1.0 k
  k=$(key "$(declare -f build_pause)" "$here/pause.c")
  if fresh "$name" "$k"; then return 0; fi
  mkdir -p "$tmp/pause"
  gcc -static -Os -s -Wall -Werror -o "$tmp/pause/pause" "$here/pause.c"
  image localhost/etcd-operator/pause:1.0 "$name" "$k" '{"Entrypoint": ["/pause"], "User": "65535:65535"}' "$tmp/pause"
}

build_coredns() {
  local name=coredns-$coredns_tag bin=$bin_dir/coredns-$COREDNS_VERSION/coredns k
  [ -x "$bin" ] || die "missing $bin: run \`bash hack/build-coredns.sh\`"
  k=$(key "$(declare -f build_coredns)" "$bin")
  if fresh "$name" "$k"; then return 0; fi
  mkdir -p "$tmp/coredns"
  cp "$bin" "$tmp/coredns/coredns"
  image "localhost/etcd-operator/coredns:$coredns_tag" "$name" "$k" \
    '{"Entrypoint": ["/coredns"], "ExposedPorts": {"53/tcp": {}, "53/udp": {}, "9153/tcp": {}}}' "$tmp/coredns"
}

# The S3 store of the backup tests: the static versitygw build alone, run as the
# unprivileged user the restricted Pod Security Standard asks for.
build_versitygw() {
  local name=versitygw-$versitygw_tag bin=$bin_dir/versitygw-$VERSITYGW_VERSION/versitygw k
  [ -x "$bin" ] || die "missing $bin: run \`bash hack/build-versitygw.sh\`"
  k=$(key "$(declare -f build_versitygw)" "$bin")
  if fresh "$name" "$k"; then return 0; fi
  mkdir -p "$tmp/versitygw"
  cp "$bin" "$tmp/versitygw/versitygw"
  image "localhost/etcd-operator/versitygw:$versitygw_tag" "$name" "$k" \
    '{"Entrypoint": ["/versitygw"], "User": "65532:65532", "ExposedPorts": {"7070/tcp": {}}}' "$tmp/versitygw"
}

archive() {
  local v
  case $1 in
    node) for v in "${node_versions[@]}"; do echo "$out/etcd-node-${v#v}.tar"; done ;;
    operator) echo "$out/etcd-operator-$app_version.tar" ;;
    pause) echo "$out/pause-1.0.tar" ;;
    coredns) echo "$out/coredns-$coredns_tag.tar" ;;
    versitygw) echo "$out/versitygw-$versitygw_tag.tar" ;;
  esac
}

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(pause coredns versitygw node operator)
for w in "${wanted[@]}"; do
  case $w in
    node|operator|pause|coredns|versitygw) ;;
    *) die "unknown image '$w' (node, operator, pause, coredns, versitygw)" ;;
  esac
done
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mount)"
[ -n "$app_version" ] || die "no appVersion in charts/etcd-operator/Chart.yaml"
[ ${#node_versions[@]} -gt 0 ] || die "no NODE_ETCD_VERSIONS in hack/versions.env"

mkdir -p "$out"
# One build at a time; a build killed before its clean-up leaves mounts and a
# directory behind, removed here once the lock says nobody uses them.
exec 9>"$out/.lock"
flock -n 9 || { say "waiting for another build.sh to finish"; flock 9; }
for stale in "$out"/.build.*; do
  [ -e "$stale" ] || continue
  unmount_under "$stale"
  rm -rf --one-file-system "$stale"
done
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'unmount_under "$tmp"; rm -rf --one-file-system "$tmp"' EXIT

for w in "${wanted[@]}"; do "build_$w"; done
say "done"
for w in "${wanted[@]}"; do archive "$w"; done
