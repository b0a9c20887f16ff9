{{/*
Chart name, truncated to the 63 characters a label value allows.
*/}}
{{- define "etcd-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the release name when it already contains the chart name,
<release>-<chart> otherwise; fullnameOverride wins.
*/}}
{{- define "etcd-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "etcd-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "etcd-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "etcd-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "etcd-operator.labels" -}}
helm.sh/chart: {{ include "etcd-operator.chart" . }}
{{ include "etcd-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "etcd-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "etcd-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "etcd-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/*
Refuse settings that cannot work, with the fix in the message.
*/}}
{{- define "etcd-operator.validate" -}}
{{- if not (has .Values.rbac.scope (list "cluster" "namespaced")) }}
{{- fail (printf "rbac.scope must be \"cluster\" or \"namespaced\", not %q" (toString .Values.rbac.scope)) }}
{{- end }}
{{- if and (eq .Values.rbac.scope "namespaced") (empty .Values.watchNamespaces) }}
{{- fail "rbac.scope=namespaced needs the namespaces to watch: set watchNamespaces (e.g. --set 'watchNamespaces={team-a,team-b}'), or use rbac.scope=cluster" }}
{{- end }}
{{- if not (has .Values.logFormat (list "json" "console")) }}
{{- fail (printf "logFormat must be \"json\" or \"console\", not %q" (toString .Values.logFormat)) }}
{{- end }}
{{- if lt (int .Values.replicas) 1 }}
{{- fail (printf "replicas must be at least 1, not %v" .Values.replicas) }}
{{- end }}
{{- if and (gt (int .Values.replicas) 1) (not .Values.peering.enabled) }}
{{- fail (printf "replicas=%v needs peering.enabled=true: without kopf peering every replica would reconcile the same clusters at once" .Values.replicas) }}
{{- end }}
{{- if and .Values.networkPolicy.enabled (empty (include "etcd-operator.networkPolicyNamespaces" .)) }}
{{- fail "networkPolicy.enabled needs the namespaces of the EtcdClusters: set networkPolicy.namespaces (or watchNamespaces), e.g. --set 'networkPolicy.namespaces={team-a,team-b}'; the chart cannot follow namespaces created later" }}
{{- end }}
{{- end }}

{{/*
The namespaces that get a NetworkPolicy, one per line: networkPolicy.namespaces, else watchNamespaces.
*/}}
{{- define "etcd-operator.networkPolicyNamespaces" -}}
{{- range uniq (.Values.networkPolicy.namespaces | default .Values.watchNamespaces) }}
{{ . }}
{{- end }}
{{- end }}

{{/*
The kopf peering object: a ClusterKopfPeering when the operator watches every namespace, a
KopfPeering in each watched namespace otherwise (kopf picks the kind by --namespace).
*/}}
{{- define "etcd-operator.peeringName" -}}
{{- .Values.peering.name | default (include "etcd-operator.fullname" .) }}
{{- end }}

{{/*
The labels the operator puts on every member pod (operator/etcd_operator/resources/meta.py).
*/}}
{{- define "etcd-operator.memberLabels" -}}
app.kubernetes.io/name: etcd
app.kubernetes.io/component: member
app.kubernetes.io/managed-by: etcd-operator
{{- end }}

{{/*
What the operator does to EtcdClusters and their objects, in the namespaces it
watches. Shared by the ClusterRole (rbac.scope=cluster) and the per-namespace
Roles (rbac.scope=namespaced). Exactly the verbs the code uses: every call goes
through adapters/kube.py (apply is a server-side apply patch: create and patch)
or kopf, which only ever lists, watches, patches and posts Events, never PUTs.
tests/chart/test_chart.py holds the same table and fails on any verb added.
*/}}
{{- define "etcd-operator.namespacedRules" -}}
# kopf watches EtcdClusters and patches its finalizer and annotations; the pass gets a discovery cluster, the backup pass a backup's cluster.
- apiGroups: ["etcd.operator.dev"]
  resources: ["etcdclusters"]
  verbs: ["get", "list", "watch", "patch"]
# handlers/cluster.py run_pass: Kube.patch_status.
- apiGroups: ["etcd.operator.dev"]
  resources: ["etcdclusters/status"]
  verbs: ["patch"]
# kopf watches and patches EtcdBackups (handlers/backup.py); a cluster's pass lists its scheduled ones, gets a restore's backupRef, applies new ones and deletes those past retention.
- apiGroups: ["etcd.operator.dev"]
  resources: ["etcdbackups"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# handlers/backup.py backup_pass: Kube.patch_status.
- apiGroups: ["etcd.operator.dev"]
  resources: ["etcdbackups/status"]
  verbs: ["patch"]
# Owned objects set blockOwnerDeletion, which OwnerReferencesPermissionEnforcement allows only to those who may update the owner's finalizers.
- apiGroups: ["etcd.operator.dev"]
  resources: ["etcdclusters/finalizers", "etcdbackups/finalizers"]
  verbs: ["update"]
# handlers/backup.py: gets a backup's snapshot and delete Jobs, applies them.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "create", "patch"]
# kopf.event and kopf's own warnings: a POST to core/v1 Events, never patched.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
# controller.observe lists the cluster's Services; apply.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "create", "patch"]
# controller: lists generated TLS Secrets, gets provided, restore and discovery ones, applies, deletes the spent restore request.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "create", "patch", "delete"]
# controller.observe and the backup pass list pods; a rollout deletes one member at a time (the StatefulSet uses OnDelete).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "delete"]
# controller.observe gets it; apply, and the replicas patch of each scale step.
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "create", "patch"]
# controller.observe gets it; apply.
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "create", "patch"]
{{- if .Values.podCertificates.enabled }}
# handlers/podcerts.py: kopf watches PodCertificateRequests; the signer gets the asking pod and writes the answer.
- apiGroups: ["certificates.k8s.io"]
  resources: ["podcertificaterequests"]
  verbs: ["list", "watch"]
- apiGroups: ["certificates.k8s.io"]
  resources: ["podcertificaterequests/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get"]
{{- end }}
{{- if and .Values.peering.enabled .Values.watchNamespaces }}
# kopf peering with --namespace: lists and watches the KopfPeering, patches its keep-alive into it.
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["list", "watch", "patch"]
{{- end }}
{{- end }}

{{/*
What kopf needs cluster-wide when it watches every namespace (no watchNamespaces): the CRDs, so
it serves EtcdClusters even when their CRD comes after it, and the ClusterKopfPeering. With
--namespace the operator turns kopf's CRD and namespace observation off and peers through a
KopfPeering in each namespace: nothing here.
*/}}
{{- define "etcd-operator.clusterRules" -}}
{{- if not .Values.watchNamespaces }}
# kopf's resource observer: lists and watches CRDs to find EtcdClusters and EtcdBackups.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- if .Values.peering.enabled }}
# kopf peering: lists and watches the ClusterKopfPeering, patches its keep-alive into it.
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["list", "watch", "patch"]
{{- end }}
{{- end }}
{{- end }}
