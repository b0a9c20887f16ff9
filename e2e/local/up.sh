#!/usr/bin/env bash
# Bring up a real single-node Kubernetes cluster on this machine, without
# Docker: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubelet and kube-proxy (pinned builds from hack/build-kube.sh), containerd +
# runc + CNI plugins from Debian, CoreDNS as a pod, and a default StorageClass.
# The images it runs are built locally (e2e/images/build.sh) and imported.
#
# The whole node lives in its own network namespace ($E2E_NETNS): pod and
# service addresses, the bridge and kube-proxy's iptables rules exist only
# there, and the namespace has no link to the outside, so no cluster traffic
# can leave the machine. The apiserver is forwarded to 127.0.0.1:$E2E_API_PORT
# of this namespace for kubectl, helm and the tests.
#
# Idempotent: a healthy running cluster is reused; missing pieces are started.
# The last line printed is `KUBECONFIG=<path>`. Stop it with e2e/local/down.sh.
#
# Settings (environment): E2E_NETNS (etcd-operator-e2e), E2E_API_PORT (16443),
#   E2E_UP_TIMEOUT (180 seconds per wait), PYTHON (.venv/bin/python)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../../hack/versions.env
. "$root/hack/versions.env"

cache=${ETCD_OPERATOR_CACHE:-$HOME/.cache/etcd-operator}
bin_dir=${ETCD_BIN:-$cache/bin}
kube_bin="$bin_dir/kube-$KUBE_VERSION"
etcd_bin="$bin_dir/etcd-$ETCD_VERSION"
state=${ETCD_OPERATOR_STATE:-$cache/state}/node
pki="$state/pki"
run="$state/run"
logs="$state/logs"
conf="$state/conf"
python=${PYTHON:-$root/.venv/bin/python}
timeout=${E2E_UP_TIMEOUT:-180}

netns=${E2E_NETNS:-etcd-operator-e2e}
node_name=e2e-node
node_ip=10.250.0.2          # on a link inside the namespace only
pod_cidr=10.244.0.0/24      # the CNI bridge's range
service_cidr=10.96.0.0/16
api_service_ip=10.96.0.1
dns_service_ip=10.96.0.10
api_port=6443
user_api_port=${E2E_API_PORT:-16443}
containerd_sock="$state/containerd/containerd.sock"
kubeconfig="$state/admin.kubeconfig"           # for this namespace (forwarded port)
node_kubeconfig="$state/admin-node.kubeconfig" # inside the node's namespace
pause_image=localhost/etcd-operator/pause:1.0
coredns_image="localhost/etcd-operator/coredns:${COREDNS_VERSION#v}"

plane=cluster-up
context=etcd-operator-e2e
in_ns=(nsenter "--net=/run/netns/$netns")
# shellcheck source=../../hack/lib/plane.sh
. "$root/hack/lib/plane.sh"
# shellcheck source=ours.sh
. "$here/ours.sh"

for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
  [ -x "$kube_bin/$b" ] || { log "missing $kube_bin/$b: run \`bash hack/build-kube.sh\`"; exit 2; }
done
[ -x "$etcd_bin/etcd" ] || { log "missing $etcd_bin/etcd: run \`bash hack/build-etcd.sh\`"; exit 2; }
for b in containerd runc iptables conntrack; do
  command -v "$b" >/dev/null || { log "missing $b: run \`bash hack/install-deps.sh\`"; exit 2; }
done
[ -x /usr/lib/cni/bridge ] || { log "missing CNI plugins in /usr/lib/cni: run \`bash hack/install-deps.sh\`"; exit 2; }
[ -x "$python" ] || { log "missing $python (the project's venv with the operator extra): run \`make setup\`"; exit 2; }
mkdir -p "$pki" "$run" "$logs" "$conf"

exec 9>"$state/lock"
if ! flock -n 9; then
  log "another cluster-up/cluster-down holds $state/lock; waiting (up to ${timeout}s)"
  flock -w "$timeout" 9 || { log "timed out waiting for $state/lock"; exit 1; }
fi

kubectl() { "$kube_bin/kubectl" --kubeconfig "$kubeconfig" --request-timeout=10s "$@"; }
ctr() { command ctr --address "$containerd_sock" --namespace k8s.io "$@"; }

apiserver_ready() { [ "$(kubectl get --raw /readyz)" = ok ]; }
node_ready() {
  [ "$(kubectl get node "$node_name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}
dns_ready() {
  [ "$(kubectl -n kube-system get deploy coredns -o jsonpath='{.status.availableReplicas}')" = 1 ]
}


all_running() {
  running etcd "$etcd_bin/etcd" && running kube-apiserver "$kube_bin/kube-apiserver" \
    && running kube-controller-manager "$kube_bin/kube-controller-manager" \
    && running kube-scheduler "$kube_bin/kube-scheduler" \
    && running containerd "$(command -v containerd)" && running kubelet "$kube_bin/kubelet" \
    && running kube-proxy "$kube_bin/kube-proxy" \
    && [ -f "$run/forward.pid" ] && ours "$(cat "$run/forward.pid")" \
    && [ -f "$run/provisioner.pid" ] && ours "$(cat "$run/provisioner.pid")"
}

# sync_images: (re)build what changed (e2e/images/build.sh reuses archives
# whose inputs have not), and import each archive it lists that containerd
# lacks: every image of the pinned versions (a node image for each of
# NODE_ETCD_VERSIONS), not what an older pin left among the archives.
sync_images() {
  local built archive imported archives
  built=$(bash "$root/e2e/images/build.sh")
  [ -n "$built" ] || { log "e2e/images/build.sh listed no image archives"; exit 1; }
  mapfile -t archives <<<"$built"
  for archive in "${archives[@]}"; do
    [ -s "$archive" ] || { log "no image archive $archive"; exit 1; }
    imported="$state/containerd/imported-$(basename "$archive" .tar)"
    if ! cmp -s "${archive%.tar}.key" "$imported"; then
      log "importing $(basename "$archive")"
      ctr images import "$archive" >/dev/null
      cp "${archive%.tar}.key" "$imported"
    fi
  done
}

# How often the kubelet syncs each pod, and so rewrites the Secrets mounted in it: 10s here, so that
# certificates of a few minutes (the renewal tests) reach the members in seconds, not in up to 90 s.
# A running kubelet started with another value is restarted (its pods keep running).
kubelet_sync=10s
# Pod certificates (beta in 1.35, off by default): the members' own keys of spec.tls.memberKeys
# podCertificate. The API server serves the API, the kubelet fills the volumes, the controller manager
# cleans up old requests.
feature_gates=PodCertificateRequest=true
runtime_config=certificates.k8s.io/v1beta1=true
# The settings above that a running plane was started with: one started with others is restarted
# (kube-apiserver, kube-controller-manager and kubelet; the pods keep running).
plane_config="syncFrequency=$kubelet_sync featureGates=$feature_gates runtimeConfig=$runtime_config"
plane_config_current() { [ "$(cat "$run/plane.config" 2>/dev/null)" = "$plane_config" ]; }

if [ -e "/run/netns/$netns" ] && all_running && apiserver_ready && node_ready && dns_ready && plane_config_current; then
  sync_images
  echo "KUBECONFIG=$kubeconfig"
  exit 0
fi
started=$SECONDS

# --- host and network namespace ----------------------------------------------

# kubelet's mount propagation (and containerd's) needs a shared root mount.
mount --make-rshared /
if [ ! -e "/run/netns/$netns" ]; then
  log "creating network namespace $netns (node address $node_ip, no link outside)"
  ip netns add "$netns"
fi
"${in_ns[@]}" ip link set lo up
# This kernel has no dummy links: a veth pair with both ends inside stands in.
"${in_ns[@]}" ip link show node0 >/dev/null 2>&1 \
  || "${in_ns[@]}" ip link add node0 type veth peer name node0-end
"${in_ns[@]}" ip link set node0-end up
"${in_ns[@]}" ip link set node0 up
"${in_ns[@]}" ip addr replace "$node_ip/24" dev node0
# A default route through that link: kubelet and kube-proxy find the node
# address, service addresses route (then kube-proxy rewrites them), and
# anything else goes unanswered at the pair's other end: nothing leaves.
"${in_ns[@]}" ip route replace default dev node0
"${in_ns[@]}" sysctl -qw net.ipv4.ip_forward=1
"${in_ns[@]}" sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true

# --- certificates (made once, kept across cluster-down) ----------------------

make_ca ca etcd-operator-e2e-ca apiserver admin controller-manager scheduler kubelet kubelet-serving \
  kube-proxy apiserver-kubelet-client
make_ca front-proxy-ca etcd-operator-e2e-front-proxy-ca front-proxy-client
sign apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:$node_ip,IP:$api_service_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
sign kubelet-serving "/CN=$node_name" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$node_ip,DNS:$node_name"
sign admin "/O=system:masters/CN=kubernetes-admin" "$client_ext"
sign controller-manager "/CN=system:kube-controller-manager" "$client_ext"
sign scheduler "/CN=system:kube-scheduler" "$client_ext"
# The Node authorizer and NodeRestriction know a kubelet by this name and group.
sign kubelet "/O=system:nodes/CN=system:node:$node_name" "$client_ext"
sign kube-proxy "/CN=system:kube-proxy" "$client_ext"
sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client_ext"
sign front-proxy-client "/CN=front-proxy-client" "$client_ext" front-proxy-ca
service_account_keys
chmod 600 "$pki"/*.key

inner="https://127.0.0.1:$api_port"
write_kubeconfig "$kubeconfig" admin "https://127.0.0.1:$user_api_port"
write_kubeconfig "$node_kubeconfig" admin "$inner"
for c in controller-manager scheduler kubelet kube-proxy; do write_kubeconfig "$conf/$c.kubeconfig" "$c" "$inner"; done

# --- control plane -----------------------------------------------------------

if ! running etcd "$etcd_bin/etcd"; then
  start etcd 127.0.0.1 2379 "$etcd_bin/etcd" --name e2e-apiserver-etcd --data-dir "$state/etcd-data" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster e2e-apiserver-etcd=http://127.0.0.1:2380 --initial-cluster-state new
fi

if ! plane_config_current; then
  for name in kubelet kube-controller-manager kube-apiserver; do stop_pid "$name" ours 15; done
fi
if ! running kube-apiserver "$kube_bin/kube-apiserver"; then
  start kube-apiserver 127.0.0.1 "$api_port" "$kube_bin/kube-apiserver" \
    --bind-address 0.0.0.0 --advertise-address "$node_ip" --secure-port "$api_port" \
    --etcd-servers http://127.0.0.1:2379 \
    --cert-dir "$pki/kube-apiserver" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$pki/ca.crt" \
    --kubelet-preferred-address-types InternalIP \
    --authorization-mode Node,RBAC \
    --enable-admission-plugins NodeRestriction \
    --allow-privileged=true \
    --feature-gates "$feature_gates" --runtime-config "$runtime_config" \
    --service-cluster-ip-range "$service_cidr" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --requestheader-client-ca-file "$pki/front-proxy-ca.crt" \
    --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$pki/front-proxy-client.crt" --proxy-client-key-file "$pki/front-proxy-client.key"
fi

# kubectl on this side goes through the forwarder.
if ! { [ -f "$run/forward.pid" ] && ours "$(cat "$run/forward.pid")"; }; then
  # It starts here and moves itself into the node's namespace.
  node_ns=("${in_ns[@]}")
  in_ns=()
  start forward 127.0.0.1 "$user_api_port" "$python" "$here/forward.py" \
    "127.0.0.1:$user_api_port" "/run/netns/$netns" "127.0.0.1:$api_port"
  in_ns=("${node_ns[@]}")
fi
wait_for "etcd" etcd "${in_ns[@]}" "$etcd_bin/etcdctl" --endpoints http://127.0.0.1:2379 endpoint health
wait_for "kube-apiserver /readyz (via 127.0.0.1:$user_api_port)" kube-apiserver apiserver_ready

start_controller_manager() {
  start kube-controller-manager 127.0.0.1 10257 "$kube_bin/kube-controller-manager" \
    --bind-address 127.0.0.1 \
    --cert-dir "$pki/kube-controller-manager" \
    --kubeconfig "$conf/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$conf/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$conf/controller-manager.kubeconfig" \
    --leader-elect=false --controllers '*' --use-service-account-credentials \
    --feature-gates "$feature_gates" \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key"
}
start_scheduler() {
  start kube-scheduler 127.0.0.1 10259 "$kube_bin/kube-scheduler" \
    --bind-address 127.0.0.1 \
    --kubeconfig "$conf/scheduler.kubeconfig" \
    --authentication-kubeconfig "$conf/scheduler.kubeconfig" \
    --authorization-kubeconfig "$conf/scheduler.kubeconfig" \
    --leader-elect=false
}
# Under load a controller can exit at start-up (seen: "failed to create Kubernetes client
# ...: etcdserver: request timed out"); nothing else would restart it, and the cluster then
# never runs a Deployment. controllers_up restarts either one that has exited, a few times.
controller_restarts=-1  # -1: the first start, which is not a restart
controllers_up() {
  local name
  for name in kube-controller-manager kube-scheduler; do
    running "$name" "$kube_bin/$name" && continue
    if [ "$controller_restarts" -ge 0 ]; then
      [ "$controller_restarts" -lt 5 ] || return 1
      controller_restarts=$((controller_restarts + 1))
      echo "up.sh: $name had exited; restarting it" >>"$logs/$name.log"
    fi
    if [ "$name" = kube-scheduler ]; then start_scheduler; else start_controller_manager; fi
  done
}
controllers_up
controller_restarts=0

# --- container runtime -------------------------------------------------------

mkdir -p "$state/cni/net.d" "$state/containerd"
cat >"$conf/containerd.toml" <<EOF
version = 2
root = "$state/containerd/root"
state = "$state/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$containerd_sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$state/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  # This machine does not let even root lower oom_score_adj (runc fails with
  # "failed to update /proc/self/oom_score_adj: Permission denied"): keep the
  # kubelet's values within what containerd itself may set.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$state/cni/net.d"
EOF
# One bridge for all pods; hairpin so a pod reaches itself through a Service.
cat >"$state/cni/net.d/10-bridge.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "e2e-pods",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$pod_cidr"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
if ! running containerd "$(command -v containerd)"; then
  start containerd - - "$(command -v containerd)" --config "$conf/containerd.toml"
fi
wait_for "containerd" containerd ctr version
sync_images

# --- images ---------------------------------------------------------------------

# --- node ----------------------------------------------------------------------

# Pods that use the node's resolver (CoreDNS itself) get no upstream: the
# cluster has no way out.
echo "# the local e2e cluster has no upstream resolver" >"$conf/resolv.conf"
cat >"$conf/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This host is on cgroup v1 without systemd.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$containerd_sock
address: 0.0.0.0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: AlwaysAllow}
clusterDNS: [$dns_service_ip]
clusterDomain: cluster.local
resolvConf: $conf/resolv.conf
failSwapOn: false
# Images come from local archives and cannot be pulled again: never collect
# them (containerd 1.6 cannot pin the pause image).
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
serializeImagePulls: false
syncFrequency: $kubelet_sync
featureGates: {${feature_gates%%=*}: ${feature_gates#*=}}
EOF
if ! running kubelet "$kube_bin/kubelet"; then
  start kubelet 127.0.0.1 10248 "$kube_bin/kubelet" \
    --config "$conf/kubelet.yaml" --kubeconfig "$conf/kubelet.kubeconfig" \
    --root-dir "$state/kubelet" --cert-dir "$pki/kubelet" \
    --hostname-override "$node_name" --node-ip "$node_ip"
fi

cat >"$conf/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $conf/kube-proxy.kubeconfig}
mode: iptables
hostnameOverride: $node_name
clusterCIDR: $pod_cidr
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# conntrack limits are machine-wide: leave them as they are.
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
nodePortAddresses: [primary]
EOF
if ! running kube-proxy "$kube_bin/kube-proxy"; then
  start kube-proxy 127.0.0.1 10256 "$kube_bin/kube-proxy" --config "$conf/kube-proxy.yaml"
fi

if ! { [ -f "$run/provisioner.pid" ] && ours "$(cat "$run/provisioner.pid")"; }; then
  start provisioner - - "$python" "$here/provisioner.py" "$node_kubeconfig" "$state/volumes"
fi

wait_for "node $node_name Ready" kubelet node_ready

# --- add-ons -------------------------------------------------------------------

sed "s|@COREDNS_IMAGE@|$coredns_image|" "$here/addons.yaml" \
  | kubectl apply --server-side --force-conflicts --field-manager cluster-up -f - >/dev/null
dns_ready_with_controllers() { controllers_up && dns_ready; }
wait_for "CoreDNS available" "" dns_ready_with_controllers
[ "$controller_restarts" -eq 0 ] || log "restarted an exited controller $controller_restarts time(s); see its log"
echo "$plane_config" >"$run/plane.config"
log "cluster ready in $((SECONDS - started))s"
echo "KUBECONFIG=$kubeconfig"
