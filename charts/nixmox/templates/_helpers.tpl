{{/* The chart name, or nameOverride. */}}
{{- define "nixmox.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* "<release>-<chart>" (just the release name when it contains the chart name), or fullnameOverride. */}}
{{- define "nixmox.fullname" -}}
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

{{/* Labels on every object. */}}
{{- define "nixmox.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "nixmox.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: nixmox
{{- end }}

{{/* Labels that select the operator pods; they never change after install. */}}
{{- define "nixmox.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nixmox.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The operator's service account. */}}
{{- define "nixmox.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "nixmox.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Whether the replicas elect a leader: asked for, or needed by more than one replica. */}}
{{- define "nixmox.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{/* The namespace of the leader election Lease. */}}
{{- define "nixmox.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace }}
{{- end }}

{{/* The operator image, tag defaulting to the chart's appVersion. */}}
{{- define "nixmox.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The builder image, tag defaulting to the chart's appVersion. */}}
{{- define "nixmox.builderImage" -}}
{{- printf "%s:%s" .Values.builder.image.repository (default .Chart.AppVersion .Values.builder.image.tag) }}
{{- end }}

{{/* The namespace and the Secret of the optional ProxmoxCluster: where the operator looks. */}}
{{- define "nixmox.clusterNamespace" -}}
{{- .Values.proxmoxCluster.namespace | default .Values.watchNamespace | default .Release.Namespace }}
{{- end }}
{{- define "nixmox.clusterSecretName" -}}
{{- if .Values.proxmoxCluster.credentials.create }}
{{- printf "%s-credentials" .Values.proxmoxCluster.name }}
{{- else }}
{{- required "proxmoxCluster.credentials.existingSecret is required when credentials.create is false" .Values.proxmoxCluster.credentials.existingSecret }}
{{- end }}
{{- end }}
