#!/usr/bin/env bash
# Start a minimal Kubernetes control plane for the `kube` tests: a private etcd,
# kube-apiserver and kube-controller-manager, as background processes on
# 127.0.0.1 only. No scheduler, kubelet or kube-proxy: pods are created but stay
# Pending. Idempotent: a healthy running plane is reused as is; missing pieces
# are (re)started. The last line printed is `KUBECONFIG=<path>` (admin).
#
# State (pids, logs, certs, kubeconfigs, etcd data) lives in
#   ${ETCD_OPERATOR_STATE:-~/.cache/etcd-operator/state}/apiserver/
# Stop it with hack/cluster-down.sh.
#
# Settings (environment):
#   KUBE_APISERVER_PORT (6443)  KUBE_CONTROLLER_MANAGER_PORT (10257)
#   KUBE_ETCD_CLIENT_PORT (23790)  KUBE_ETCD_PEER_PORT (23800)
#   KUBE_UP_TIMEOUT (120, seconds per wait)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

bin_dir=${ETCD_BIN:-${ETCD_OPERATOR_CACHE:-$HOME/.cache/etcd-operator}/bin}
kube_bin="$bin_dir/kube-$KUBE_VERSION"
etcd_bin="$bin_dir/etcd-$ETCD_VERSION"
state=${ETCD_OPERATOR_STATE:-$HOME/.cache/etcd-operator/state}/apiserver
pki="$state/pki"
run="$state/run"
logs="$state/logs"
kubeconfig="$state/admin.kubeconfig"
kcm_kubeconfig="$state/controller-manager.kubeconfig"

host=127.0.0.1
api_port=${KUBE_APISERVER_PORT:-6443}
kcm_port=${KUBE_CONTROLLER_MANAGER_PORT:-10257}
etcd_client_port=${KUBE_ETCD_CLIENT_PORT:-23790}
etcd_peer_port=${KUBE_ETCD_PEER_PORT:-23800}
timeout=${KUBE_UP_TIMEOUT:-120}
service_cidr=10.96.0.0/16   # an allocation range only; nothing routes it
service_ip=10.96.0.1        # first address: the `kubernetes` service

for b in "$kube_bin/kube-apiserver" "$kube_bin/kube-controller-manager" "$kube_bin/kubectl"; do
  [ -x "$b" ] || { echo "missing $b: run \`bash hack/build-kube.sh\`" >&2; exit 2; }
done
for b in "$etcd_bin/etcd" "$etcd_bin/etcdctl"; do
  [ -x "$b" ] || { echo "missing $b: run \`bash hack/build-etcd.sh\`" >&2; exit 2; }
done
mkdir -p "$pki" "$run" "$logs"

plane=apiserver-up
context=etcd-operator-test
# shellcheck source=lib/plane.sh
. "$here/lib/plane.sh"

# One starter at a time (parallel test sessions, make and pytest together);
# hack/cluster-down.sh takes the same lock. Started daemons must not inherit fd 9.
exec 9>"$state/lock"
if ! flock -n 9; then
  log "another apiserver-up/cluster-down holds $state/lock; waiting (up to ${timeout}s)"
  flock -w "$timeout" 9 || { log "timed out waiting for $state/lock"; exit 1; }
fi

kubectl() { "$kube_bin/kubectl" --kubeconfig "$kubeconfig" --request-timeout=5s "$@"; }

# stop_stale NAME EXE: a process from our pid file that runs something other
# than EXE (another pinned version, or a binary rebuilt since: "... (deleted)")
# is ours to stop before restarting. A reused pid (another program) is left be.
stop_stale() {
  local pid exe
  pid=$(cat "$run/$1.pid" 2>/dev/null) || return 0
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || { rm -f "$run/$1.pid"; return 0; }
  case "$exe" in
    "$(readlink -f "$2")") return 0 ;;
    */etcd*|*/kube-apiserver*|*/kube-controller-manager*)
      log "stopping stale $1 (pid $pid, $exe)"
      KUBE_PLANE_LOCK_HELD=1 bash "$here/cluster-down.sh" "$1" >&2 ;;
  esac
  rm -f "$run/$1.pid"
}

etcd_healthy() { "$etcd_bin/etcdctl" --endpoints "http://$host:$etcd_client_port" --command-timeout=3s endpoint health; }
apiserver_ready() { [ "$(kubectl get --raw /readyz)" = ok ]; }
kcm_healthy() { [ "$(curl -fsk --max-time 3 "https://$host:$kcm_port/healthz")" = ok ]; }
defaults_exist() { kubectl -n default get serviceaccount default; }

print_kubeconfig() { echo "KUBECONFIG=$kubeconfig"; }

healthy() {
  running etcd "$etcd_bin/etcd" && running kube-apiserver "$kube_bin/kube-apiserver" \
    && running kube-controller-manager "$kube_bin/kube-controller-manager" \
    && apiserver_ready && kcm_healthy && defaults_exist
}

# Fast path: everything already up and healthy.
if healthy >/dev/null 2>&1; then
  print_kubeconfig
  exit 0
fi

# --- certificates (made once, kept across cluster-down) ----------------------

make_ca ca etcd-operator-test-ca apiserver admin controller-manager
# A separate CA for the request-header (front proxy) client: anything it signs
# may assert any user to the apiserver, so it must not be the client CA.
make_ca front-proxy-ca etcd-operator-test-front-proxy-ca front-proxy-client
# The apiserver's serving cert covers loopback and the in-cluster names.
sign apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$host,IP:$service_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
# system:masters is the superuser group, bypassing RBAC.
sign admin "/O=system:masters/CN=kubernetes-admin" "$client_ext"
# The controller manager's own identity; RBAC bootstraps its role bindings.
sign controller-manager "/CN=system:kube-controller-manager" "$client_ext"
# The apiserver's identity towards aggregated API servers.
sign front-proxy-client "/CN=front-proxy-client" "$client_ext" front-proxy-ca
# Service-account token signing key pair.
service_account_keys
chmod 600 "$pki"/*.key

write_kubeconfig "$kubeconfig" admin "https://$host:$api_port"
write_kubeconfig "$kcm_kubeconfig" controller-manager "https://$host:$api_port"

# --- etcd --------------------------------------------------------------------

stop_stale etcd "$etcd_bin/etcd"
if ! running etcd "$etcd_bin/etcd"; then
  # Plain HTTP is fine: it listens on loopback only and serves this apiserver.
  start etcd "$host" "$etcd_client_port" "$etcd_bin/etcd" \
    --name apiserver-etcd \
    --data-dir "$state/etcd-data" \
    --listen-client-urls "http://$host:$etcd_client_port" \
    --advertise-client-urls "http://$host:$etcd_client_port" \
    --listen-peer-urls "http://$host:$etcd_peer_port" \
    --initial-advertise-peer-urls "http://$host:$etcd_peer_port" \
    --initial-cluster "apiserver-etcd=http://$host:$etcd_peer_port" \
    --initial-cluster-state new
fi
wait_for "etcd on $host:$etcd_client_port" etcd etcd_healthy

# --- kube-apiserver ----------------------------------------------------------

stop_stale kube-apiserver "$kube_bin/kube-apiserver"
if ! running kube-apiserver "$kube_bin/kube-apiserver"; then
  # --advertise-address=127.0.0.1 is accepted (without it the apiserver would
  # advertise the default route's address), but the `kubernetes` service's
  # endpoints may not be loopback addresses ("may not be in the loopback
  # range", every 10s), so the endpoint reconciler is off; nothing in this
  # plane could route to them anyway. The request-header (front proxy) flags
  # publish the CA that kube-controller-manager's delegated authentication
  # reads from kube-system/extension-apiserver-authentication; without them it
  # logs "missing content for CA bundle" errors.
  start kube-apiserver "$host" "$api_port" "$kube_bin/kube-apiserver" \
    --bind-address "$host" \
    --advertise-address "$host" \
    --secure-port "$api_port" \
    --endpoint-reconciler-type none \
    --etcd-servers "http://$host:$etcd_client_port" \
    --cert-dir "$pki/kube-apiserver" \
    --tls-cert-file "$pki/apiserver.crt" \
    --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --authorization-mode Node,RBAC \
    --service-cluster-ip-range "$service_cidr" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" \
    --requestheader-client-ca-file "$pki/front-proxy-ca.crt" \
    --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User \
    --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$pki/front-proxy-client.crt" \
    --proxy-client-key-file "$pki/front-proxy-client.key"
fi
wait_for "kube-apiserver /readyz on $host:$api_port" kube-apiserver apiserver_ready

# --- kube-controller-manager -------------------------------------------------

stop_stale kube-controller-manager "$kube_bin/kube-controller-manager"
if ! running kube-controller-manager "$kube_bin/kube-controller-manager"; then
  # --controllers='*' is the default set (garbage collector, statefulset,
  # serviceaccount and its token controller included). One instance, so no
  # leader election: a restart does not wait out the previous lease.
  start kube-controller-manager "$host" "$kcm_port" "$kube_bin/kube-controller-manager" \
    --bind-address "$host" \
    --secure-port "$kcm_port" \
    --cert-dir "$pki/kube-controller-manager" \
    --kubeconfig "$kcm_kubeconfig" \
    --authentication-kubeconfig "$kcm_kubeconfig" \
    --authorization-kubeconfig "$kcm_kubeconfig" \
    --leader-elect=false \
    --controllers '*' \
    --use-service-account-credentials \
    --service-account-private-key-file "$pki/sa.key" \
    --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" \
    --cluster-signing-key-file "$pki/ca.key"
fi
wait_for "kube-controller-manager /healthz on $host:$kcm_port" kube-controller-manager kcm_healthy
# `default` namespace: the apiserver; its `default` service account: the
# controller manager's serviceaccount controller.
wait_for "namespace default and service account default/default" kube-controller-manager defaults_exist

print_kubeconfig
