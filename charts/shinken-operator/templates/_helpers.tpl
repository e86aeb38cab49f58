{{/*
The chart name, for the app.kubernetes.io/name label.
*/}}
{{- define "shinken-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name, prefix of every object: "<release>-<chart>", or "<release>" when the release name
already contains the chart name. Truncated to 63 characters (the DNS label limit).
*/}}
{{- define "shinken-operator.fullname" -}}
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

{{/*
"<chart>-<version>", for the helm.sh/chart label.
*/}}
{{- define "shinken-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object of the release.
*/}}
{{- define "shinken-operator.labels" -}}
helm.sh/chart: {{ include "shinken-operator.chart" . }}
{{ include "shinken-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: shinken
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the operator pods (immutable in a Deployment: never add to them).
*/}}
{{- define "shinken-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shinken-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the operator runs as.
*/}}
{{- define "shinken-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "shinken-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The operator image, "<repository>:<tag>", the tag defaulting to the chart's appVersion.
*/}}
{{- define "shinken-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
"true" when the operator elects a leader: asked for, or more than one replica (two operators
reconciling the same clusters would fight over them). Empty otherwise.
*/}}
{{- define "shinken-operator.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{/*
The RBAC rules of the operator on the namespaces it watches. Leader election's Lease rule is
apart (leader-election-rbac.yaml): it is granted in the release namespace only.
*/}}
{{- define "shinken-operator.rules" -}}
- apiGroups: ["shinken.io"]
  resources: ["shinkenclusters"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["shinken.io"]
  resources: ["shinkenclusters/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["shinken.io"]
  resources: ["shinkenclusters/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: [""]
  resources: ["services", "configmaps", "secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
