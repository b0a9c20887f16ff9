#!/usr/bin/env bash
# The main job: a Kubernetes cluster (kind when Docker answers, else the
# local single-node cluster), the operator installed by its Helm chart, and
# examples/etcdcluster.yaml applied; then it shows the cluster and how to reach it.
# Idempotent: run it again and it reuses what is there.
#
# Settings: DEMO_NAMESPACE (etcd-demo), DEMO_CLUSTER=kind|local (auto)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cache=${ETCD_OPERATOR_CACHE:-$HOME/.cache/etcd-operator}
export PATH="$cache/bin:$PATH"
ns=${DEMO_NAMESPACE:-etcd-demo}
start=$SECONDS
step() { echo; echo "== [$((SECONDS - start))s] $*"; }

kind_usable() { command -v kind >/dev/null && command -v docker >/dev/null && docker info >/dev/null 2>&1; }
flavour=${DEMO_CLUSTER:-}
[ -n "$flavour" ] || { if kind_usable; then flavour=kind; else flavour=local; fi; }

# The kind cluster has its own dockerd and tear-down (e2e/kind/dockerd.sh, down.sh).
teardown="make cluster-down"
[ "$flavour" != kind ] || teardown="bash e2e/kind/down.sh"

step "cluster: $flavour (e2e/$flavour/up.sh; the first run builds images, a few minutes)"
out=$(bash "$root/e2e/$flavour/up.sh")
export KUBECONFIG=${out##*KUBECONFIG=}
kubectl get nodes -o wide

step "operator: helm upgrade --install etcd-operator charts/etcd-operator"
# Helm installs a chart's CRDs only on first install, never on upgrade: apply the current one first.
kubectl apply --server-side --force-conflicts -f "$root/charts/etcd-operator/crds/" >/dev/null
helm upgrade --install etcd-operator "$root/charts/etcd-operator" \
  --namespace etcd-operator-system --create-namespace --wait --timeout 180s
kubectl -n etcd-operator-system rollout restart deploy/etcd-operator >/dev/null  # a rebuilt image, same tag
kubectl -n etcd-operator-system rollout status deploy/etcd-operator --timeout=180s

step "EtcdCluster: kubectl apply -n $ns -f examples/etcdcluster.yaml"
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n "$ns" apply -f "$root/examples/etcdcluster.yaml"
name=$(kubectl -n "$ns" get -f "$root/examples/etcdcluster.yaml" -o jsonpath='{.metadata.name}')

step "waiting for $name to be Available (printed every 10s)"
deadline=$((SECONDS + 600)) next=0
until [ "$(kubectl -n "$ns" get etcdcluster "$name" -o jsonpath='{.status.conditions[?(@.type=="Available")].status}')" = True ]; do
  [ "$SECONDS" -lt "$deadline" ] || { echo "not Available after 600s"; kubectl -n "$ns" describe etcdcluster "$name"; exit 1; }
  if [ "$SECONDS" -ge "$next" ]; then kubectl -n "$ns" get etcdcluster,pods --no-headers 2>/dev/null | sed 's/^/  /'; next=$((SECONDS + 10)); fi
  sleep 2
done
kubectl -n "$ns" get etcdcluster "$name"
kubectl -n "$ns" get pods,svc,pvc -l "app.kubernetes.io/instance=$name"

step "etcd's own view, through the client Service with the user client certificate"
# A client pod with etcdctl (the node image) and the $name-client-tls Secret mounted: the members'
# root filesystems are read-only, and the user's certificate does not belong in them anyway.
version=$(kubectl -n "$ns" get etcdcluster "$name" -o jsonpath='{.spec.version}')
kubectl -n "$ns" apply -f - >/dev/null <<POD
apiVersion: v1
kind: Pod
metadata: {name: etcd-client}
spec:
  terminationGracePeriodSeconds: 1
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
    - name: client
      image: etcd-node:$version
      imagePullPolicy: IfNotPresent
      command: [sleep, infinity]
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
      volumeMounts: [{name: tls, mountPath: /tls, readOnly: true}]
  volumes: [{name: tls, secret: {secretName: $name-client-tls}}]
POD
kubectl -n "$ns" wait --for=condition=Ready pod/etcd-client --timeout=120s >/dev/null
client=(etcdctl --endpoints "https://$name-client.$ns.svc.cluster.local:2379"
  --cacert /tls/ca.crt --cert /tls/tls.crt --key /tls/tls.key)
kubectl -n "$ns" exec etcd-client -- "${client[@]}" member list -w table
kubectl -n "$ns" exec etcd-client -- "${client[@]}" endpoint status --cluster -w table
kubectl -n "$ns" exec etcd-client -- "${client[@]}" put demo "written at $(date -u +%FT%TZ)" >/dev/null
kubectl -n "$ns" exec etcd-client -- "${client[@]}" get demo

cat <<EOF

== done in $((SECONDS - start))s. Try:
  export KUBECONFIG=$KUBECONFIG
  kubectl -n $ns get etcdcluster $name -o yaml                      # status: members, leader, conditions
  kubectl -n $ns patch etcdcluster $name --type=merge -p '{"spec":{"replicas":5}}'   # scale through the runtime API
  kubectl -n $ns get events --sort-by=.lastTimestamp               # what the operator did, step by step
  kubectl -n $ns exec etcd-client -- ${client[*]} get demo   # etcdctl with the user certificate
  kubectl -n $ns patch etcdcluster $name --type=merge -p '{"spec":{"hibernate":true}}'  # stop every member, keep the data
Client certificate: Secret $ns/$name-client-tls; endpoint https://$name-client.$ns.svc.cluster.local:2379
Tear down: $teardown
EOF
