#!/usr/bin/env bash
# Build the kind node image without Docker or a registry: kindest/node cannot
# be pulled here, so this is its contract rebuilt from Debian packages and the
# pinned builds, as an archive `docker load` takes:
#
#   localhost/etcd-operator/kind-node:<KUBE_VERSION>
#     Debian bookworm with systemd (PID 1 after e2e/images/kind-node/entrypoint),
#     Debian's containerd, runc and CNI plugins (a ptp network for the single
#     node, 10.244.0.0/24), the pinned kubelet, kubeadm and kubectl, /kind/version
#     (what kind reads), /kind/manifests/default-storage.yaml (the StorageClass),
#     and /kind/images: the control-plane images kubeadm asks for, made from
#     the pinned static binaries and imported into containerd when the node
#     boots (preload-images.service), so nothing is ever pulled:
#       registry.k8s.io/kube-{apiserver,controller-manager,scheduler,proxy}:<KUBE_VERSION>
#       registry.k8s.io/etcd:<ETCD_VERSION without v>   (kubeadm's etcd.local.imageTag)
#       registry.k8s.io/coredns/coredns:<COREDNS_VERSION> (kubeadm's dns.imageTag)
#       localhost/etcd-operator/pause:1.0                 (containerd's sandbox image)
#     kube-proxy's image is the node's own base (it needs iptables); the
#     others hold one static binary each.
#
# The Debian layer is cached as kind-base-<key>.tar.gz; the archive is rebuilt
# only when its inputs change (this script, oci.py, kind-node/, the binaries,
# the versions). Needs root (debootstrap, chroot) and Debian's mirror.
#
# usage: e2e/images/kind-node.sh     prints the archive's path last
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
packages=systemd,systemd-sysv,dbus,containerd,runc,containernetworking-plugins,iptables,iproute2,kmod,procps,util-linux,mount,ca-certificates,conntrack,ethtool,socat,libseccomp2
kube=$bin_dir/kube-$KUBE_VERSION
kubeadm=$bin_dir/kubeadm-$KUBE_VERSION/kubeadm
etcd_dir=$bin_dir/etcd-$ETCD_VERSION
coredns=$bin_dir/coredns-$COREDNS_VERSION/coredns
pause=$out/pause-1.0.tar
name=kind-node-$KUBE_VERSION
ref=localhost/etcd-operator/kind-node:$KUBE_VERSION
started=$SECONDS
say() { echo "kind-node: [$((SECONDS - started))s] $*" >&2; }
die() { echo "kind-node: $*" >&2; exit 1; }
oci() { "$python" "$here/oci.py" "$@"; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot)"
for b in kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl; do
  [ -x "$kube/$b" ] || die "missing $kube/$b: run \`bash hack/build-kube.sh\`"
done
[ -x "$kubeadm" ] || die "missing $kubeadm: run \`bash hack/build-kubeadm.sh\`"
[ -x "$etcd_dir/etcd" ] || die "missing $etcd_dir/etcd: run \`bash hack/build-etcd.sh\`"
[ -x "$coredns" ] || die "missing $coredns: run \`bash hack/build-coredns.sh\`"
[ -s "$pause" ] || die "missing $pause: run \`bash e2e/images/build.sh pause\`"

# key TEXT FILE...: a digest of the text and the files' contents.
key() {
  local text=$1
  shift
  { printf '%s\n' "$text"; sha256sum "$@" | cut -d' ' -f1; } | sha256sum | cut -c1-16
}

mkdir -p "$out"
exec 9>"$out/.kind-node.lock"
flock -n 9 || { say "waiting for another kind-node.sh to finish"; flock 9; }

build_base() {
  local rootfs=$tmp/base began=$SECONDS
  say "base: debootstrap --variant=minbase $suite with systemd and containerd from $mirror (a few minutes)"
  debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1 \
    || { tail -n 30 "$tmp/debootstrap.log" >&2; die "debootstrap failed"; }
  say "base: debootstrap done in $((SECONDS - began))s"
  # A container boots none of a machine's hardware and login units: they
  # would fail or wait for devices that are not there.
  local unit
  for unit in systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
      systemd-udev-trigger.service systemd-modules-load.service systemd-remount-fs.service \
      systemd-firstboot.service systemd-binfmt.service systemd-timesyncd.service \
      getty@tty1.service console-getty.service getty.target sys-kernel-debug.mount \
      sys-kernel-tracing.mount sys-kernel-config.mount dev-hugepages.mount apt-daily.timer \
      apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
    ln -sfn /dev/null "$rootfs/etc/systemd/system/$unit"
  done
  # Debian's scripts enabled containerd at install time; kind's node runs it
  # with the configuration below instead, started by systemd as usual.
  (cd "$rootfs" && rm -rf var/cache/apt/* var/lib/apt/lists/* var/log/* dev/* etc/hostname etc/resolv.conf \
    usr/share/man/* usr/share/info/* usr/share/locale/* var/cache/ldconfig/aux-cache \
    && find usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete)
  : >"$rootfs/etc/machine-id"
  say "base: writing the layer"
  oci layer "$rootfs" "$base.partial" >/dev/null
  mv "$base.partial" "$base"
  find "$out" -maxdepth 1 -name "kind-base-*.tar.gz" ! -path "$base" -delete
  rm -rf --one-file-system "$rootfs"
}
# static_image REF FILE BINARY...: an image of static binaries in /usr/local/bin.
static_image() {
  local ref=$1 file=$2 dir
  shift 2
  dir=$tmp/layers/$file
  install -d -m 0755 "$dir/usr" "$dir/usr/local" "$dir/usr/local/bin"
  install -m 0755 "$@" "$dir/usr/local/bin/"
  oci image "$ref" "$tmp/top/kind/images/$file.tar" \
    --config '{"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}' "$dir" >/dev/null
}

build_node() {
  local top=$tmp/top f
  install -d -m 0755 "$top/kind" "$top/kind/images" "$top/kind/bin" "$top/kind/manifests" \
    "$top/usr" "$top/usr/bin" "$top/usr/local" "$top/usr/local/bin" "$top/etc" "$top/etc/containerd" \
    "$top/etc/cni" "$top/etc/cni/net.d" "$top/etc/systemd" "$top/etc/systemd/system" \
    "$top/etc/systemd/system/multi-user.target.wants" "$top/etc/kubernetes" "$top/etc/kubernetes/manifests"
  say "control-plane images"
  for f in kube-apiserver kube-controller-manager kube-scheduler; do
    static_image "registry.k8s.io/$f:$KUBE_VERSION" "$f" "$kube/$f"
  done
  static_image "registry.k8s.io/etcd:${ETCD_VERSION#v}" etcd "$etcd_dir/etcd" "$etcd_dir/etcdctl"
  mkdir -p "$tmp/layers/coredns"
  cp "$coredns" "$tmp/layers/coredns/coredns"
  oci image "registry.k8s.io/coredns/coredns:$COREDNS_VERSION" "$top/kind/images/coredns.tar" \
    --config '{"Entrypoint": ["/coredns"], "ExposedPorts": {"53/tcp": {}, "53/udp": {}, "9153/tcp": {}}}' \
    "$tmp/layers/coredns" >/dev/null
  install -d -m 0755 "$tmp/layers/kube-proxy/usr" "$tmp/layers/kube-proxy/usr/local" "$tmp/layers/kube-proxy/usr/local/bin"
  install -m 0755 "$kube/kube-proxy" "$tmp/layers/kube-proxy/usr/local/bin/"
  oci image "registry.k8s.io/kube-proxy:$KUBE_VERSION" "$top/kind/images/kube-proxy.tar" \
    --config '{"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}' \
    "$base" "$tmp/layers/kube-proxy" >/dev/null
  cp "$pause" "$top/kind/images/pause.tar"

  say "node files"
  install -m 0755 "$kube/kubelet" "$kube/kubectl" "$kubeadm" "$top/usr/bin/"
  install -m 0755 "$here/kind-node/entrypoint" "$top/usr/local/bin/entrypoint"
  install -m 0755 "$here/kind-node/preload-images.sh" "$top/kind/bin/"
  install -m 0644 "$here/kind-node/containerd.toml" "$top/etc/containerd/config.toml"
  install -m 0644 "$here/kind-node/10-ptp.conflist" "$top/etc/cni/net.d/"
  install -m 0644 "$here/kind-node/default-storage.yaml" "$top/kind/manifests/"
  install -m 0644 "$here/kind-node/kubelet.service" "$here/kind-node/preload-images.service" "$top/etc/systemd/system/"
  for f in kubelet.service preload-images.service containerd.service; do
    ln -sfn "/etc/systemd/system/$f" "$top/etc/systemd/system/multi-user.target.wants/$f"
  done
  # Debian's containerd unit lives in /lib; the wants link names the path systemd finds it at.
  ln -sfn /lib/systemd/system/containerd.service "$top/etc/systemd/system/multi-user.target.wants/containerd.service"
  echo "$KUBE_VERSION" >"$top/kind/version"
  chmod 0644 "$top/kind/version"

  say "$name: writing $ref"
  # systemd wants to know it runs in a container, and to be stopped with SIGRTMIN+3.
  oci image "$ref" "$out/$name.tar" --config "$(cat <<JSON
{"Entrypoint": ["/usr/local/bin/entrypoint", "/sbin/init"], "Env": ["container=docker",
 "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "StopSignal": "SIGRTMIN+3"}
JSON
)" "$base" "$top" >/dev/null
  echo "$node_key" >"$out/$name.key"
  say "$name: $(du -h "$out/$name.tar" | cut -f1)"
}
base=$out/kind-base-$(key "$(declare -f build_base) $suite $packages" "$here/oci.py").tar.gz
node_key=$(key "$(declare -f build_node static_image) $KUBE_VERSION $ETCD_VERSION $COREDNS_VERSION $(basename "$base")" \
  "$0" "$here/oci.py" "$here"/kind-node/* "$kube"/* "$kubeadm" "$etcd_dir/etcd" "$etcd_dir/etcdctl" "$coredns" "$pause")
if [ -s "$out/$name.tar" ] && [ "$(cat "$out/$name.key" 2>/dev/null)" = "$node_key" ]; then
  say "$name: up to date"
  echo "$out/$name.tar"
  exit 0
fi
tmp=$(mktemp -d "$out/.kind-node.XXXXXX")
trap 'rm -rf --one-file-system "$tmp"' EXIT
[ -s "$base" ] || build_base
build_node
echo "$out/$name.tar"
