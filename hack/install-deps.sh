#!/usr/bin/env bash
# Debian packages the project needs: iproute2 and dnsmasq for the network-namespace
# test hosts, etcd-discovery (the public discovery service's server), privoxy, Go
# for the pinned builds, and the local e2e cluster's node and image tools. Idempotent: skips apt entirely when everything is present.
set -euo pipefail
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
[ -x /usr/bin/discovery.etcd.io ] || need+=(etcd-discovery)
[ -x /usr/sbin/privoxy ] || need+=(privoxy)  # a real HTTP proxy for ETCD_DISCOVERY_PROXY
command -v curl >/dev/null || need+=(curl)
command -v make >/dev/null || need+=(make)
command -v go >/dev/null || need+=(golang-go)
command -v python3 >/dev/null || need+=(python3 python3-venv)
# The local e2e cluster's node: container runtime, CNI plugins (/usr/lib/cni),
# kube-proxy's tools; debootstrap and a static libc for the images.
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v conntrack >/dev/null || need+=(conntrack)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v nsenter >/dev/null || need+=(util-linux)
# `make lint` (run by `make test`) checks every shell script.
command -v shellcheck >/dev/null || need+=(shellcheck)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
