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
{{- end }}

{{/*
What the operator does to EtcdClusters and their objects, in the namespaces it
watches. Shared by the ClusterRole (rbac.scope=cluster) and the per-namespace
Roles (rbac.scope=namespaced).
*/}}
{{- define "etcd-operator.namespacedRules" -}}
# EtcdClusters: kopf watches them and patches finalizers, annotations and status.
- apiGroups: ["etcd.operator.dev"]
  resources: ["etcdclusters"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["etcd.operator.dev"]
  resources: ["etcdclusters/status"]
  verbs: ["get", "patch", "update"]
# EtcdBackups: the same, for the backup pass; a cluster's schedule (spec.backup) creates them and
# retention deletes them.
- apiGroups: ["etcd.operator.dev"]
  resources: ["etcdbackups"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["etcd.operator.dev"]
  resources: ["etcdbackups/status"]
  verbs: ["get", "patch", "update"]
# Owned objects carry blockOwnerDeletion, which the OwnerReferencesPermissionEnforcement
# admission plugin allows only to those who may update the owner's finalizers.
- apiGroups: ["etcd.operator.dev"]
  resources: ["etcdclusters/finalizers", "etcdbackups/finalizers"]
  verbs: ["update"]
# The Job that takes a backup's snapshot (server-side apply: create and patch); its pods are read
# for the agent's termination message.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch"]
# Events on EtcdClusters (condition changes, warnings).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# The cluster's Services and TLS Secrets (server-side apply).
- apiGroups: [""]
  resources: ["services", "secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# Members: observed; deleted one at a time to roll out a new template (the StatefulSet
# uses OnDelete and recreates each pod).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "delete"]
# Claims of removed members.
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "delete"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
{{- end }}

{{/*
What kopf itself needs cluster-wide, whatever it watches: CRDs (to find its
resources) and namespaces (to follow the watched ones).
*/}}
{{- define "etcd-operator.clusterRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
