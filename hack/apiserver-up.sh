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

log() { echo "apiserver-up: $*" >&2; }

# One starter at a time (parallel test sessions, make and pytest together);
# hack/cluster-down.sh takes the same lock. Started daemons must not inherit fd 9.
exec 9>"$state/lock"
if ! flock -n 9; then
  log "another apiserver-up/cluster-down holds $state/lock; waiting (up to ${timeout}s)"
  flock -w "$timeout" 9 || { log "timed out waiting for $state/lock"; exit 1; }
fi

kubectl() { "$kube_bin/kubectl" --kubeconfig "$kubeconfig" --request-timeout=5s "$@"; }

# --- processes ---------------------------------------------------------------

# running NAME EXE: the pid file's process is alive and runs EXE (a stale pid
# file, a reused pid or a binary from another pinned version does not count).
running() {
  local pid
  pid=$(cat "$run/$1.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$2")" ]
}

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

port_free() { ! (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null; }

# start NAME PORT EXE ARGS...: detached (own session, no inherited stdio, so a
# caller capturing our output is not held open), logging to logs/NAME.log.
# In this non-interactive script a background job is no process-group leader,
# so setsid execs in place and $! is the daemon's own pid.
start() {
  local name=$1 port=$2
  shift 2
  # A process that was just stopped (or crashed) may still be closing it.
  local deadline=$((SECONDS + 10))
  until port_free "$port"; do
    [ "$SECONDS" -lt "$deadline" ] || { log "$host:$port is in use by another program; cannot start $name"; exit 1; }
    sleep 0.2
  done
  log "starting $name (log: $logs/$name.log)"
  setsid "$@" </dev/null >>"$logs/$name.log" 2>&1 9>&- &
  echo $! >"$run/$name.pid"
}

# wait_for WHAT NAME CMD...: poll CMD until it succeeds, printing progress, up
# to $timeout seconds; on failure show the component's log tail.
wait_for() {
  local what=$1 name=$2 deadline=$((SECONDS + timeout)) next=$((SECONDS + 5))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ -n "$name" ] && [ -f "$run/$name.pid" ] && ! kill -0 "$(cat "$run/$name.pid")" 2>/dev/null; then
      log "$name exited; last log lines:"; tail -n 30 "$logs/$name.log" >&2; exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "timed out after ${timeout}s waiting for $what"
      [ -z "$name" ] || { log "last lines of $logs/$name.log:"; tail -n 30 "$logs/$name.log" >&2; }
      exit 1
    fi
    if [ "$SECONDS" -ge "$next" ]; then log "waiting for $what ..."; next=$((SECONDS + 5)); fi
    sleep 0.5
  done
  log "$what: ok"
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

# make_ca NAME CN SIGNED...: self-signed CA key + certificate. A new CA
# invalidates the certificates it signed (SIGNED), so they are made again.
make_ca() {
  local name=$1 cn=$2 c
  shift 2
  [ -s "$pki/$name.crt" ] && return 0
  log "creating $name in $pki"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/$name.key" -out "$pki/$name.crt" -days 3650 \
    -subj "/CN=$cn" 2>/dev/null
  for c in "$@"; do rm -f "$pki/$c.crt" "$pki/$c.key"; done
}

# sign NAME SUBJECT EXTENSIONS [CA]: key + certificate signed by CA (ca).
sign() {
  local name=$1 subj=$2 ext=$3 ca=${4:-ca}
  [ -s "$pki/$name.crt" ] && return 0
  openssl req -new -newkey rsa:2048 -nodes -keyout "$pki/$name.key" -subj "$subj" \
    -out "$pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/$ca.crt" -CAkey "$pki/$ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile <(printf '%s\n' "$ext") -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr"
}

make_ca ca etcd-operator-test-ca apiserver admin controller-manager
# A separate CA for the request-header (front proxy) client: anything it signs
# may assert any user to the apiserver, so it must not be the client CA.
make_ca front-proxy-ca etcd-operator-test-front-proxy-ca front-proxy-client
# The apiserver's serving cert covers loopback and the in-cluster names.
sign apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$host,IP:$service_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
client_ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
# system:masters is the superuser group, bypassing RBAC.
sign admin "/O=system:masters/CN=kubernetes-admin" "$client_ext"
# The controller manager's own identity; RBAC bootstraps its role bindings.
sign controller-manager "/CN=system:kube-controller-manager" "$client_ext"
# The apiserver's identity towards aggregated API servers.
sign front-proxy-client "/CN=front-proxy-client" "$client_ext" front-proxy-ca
# Service-account token signing key pair.
if [ ! -s "$pki/sa.key" ]; then
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null
  openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
fi
chmod 600 "$pki"/*.key

# write_kubeconfig FILE CERT: self-contained kubeconfig (embedded certs).
write_kubeconfig() {
  local file=$1 cert=$2 tmp
  tmp=$(mktemp "$file.XXXXXX")
  cat >"$tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: etcd-operator-test
  cluster:
    server: https://$host:$api_port
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $cert
  user:
    client-certificate-data: $(base64 -w0 "$pki/$cert.crt")
    client-key-data: $(base64 -w0 "$pki/$cert.key")
contexts:
- name: etcd-operator-test
  context: {cluster: etcd-operator-test, user: $cert}
current-context: etcd-operator-test
EOF
  chmod 600 "$tmp"
  mv "$tmp" "$file"
}
write_kubeconfig "$kubeconfig" admin
write_kubeconfig "$kcm_kubeconfig" controller-manager

# --- etcd --------------------------------------------------------------------

stop_stale etcd "$etcd_bin/etcd"
if ! running etcd "$etcd_bin/etcd"; then
  # Plain HTTP is fine: it listens on loopback only and serves this apiserver.
  start etcd "$etcd_client_port" "$etcd_bin/etcd" \
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
  start kube-apiserver "$api_port" "$kube_bin/kube-apiserver" \
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
  start kube-controller-manager "$kcm_port" "$kube_bin/kube-controller-manager" \
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
