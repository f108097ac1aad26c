{{/*
Names, labels and the few values several templates derive (NATS URL, ingress URL, webhook host).
*/}}

{{- define "ripple.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}

{{/*
The base of every resource name: 40 characters at most, so "<fullname>-operator-webhook-tls" and the NATS
PVC "data-<fullname>-nats-0" stay within Kubernetes' 63-character label limit.
*/}}
{{- define "ripple.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ripple.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; call with (dict "ctx" $ "component" "operator"). */}}
{{- define "ripple.labels" -}}
helm.sh/chart: {{ include "ripple.chart" .ctx }}
{{ include "ripple.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: ripple
{{- end }}

{{/* Selector labels: stable for the life of a release (Deployments' selectors are immutable). */}}
{{- define "ripple.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ripple.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* <fullname>-<component>, e.g. ripple-operator. */}}
{{- define "ripple.componentName" -}}
{{- printf "%s-%s" (include "ripple.fullname" .ctx) .component }}
{{- end }}

{{/* Cluster-scoped objects carry the namespace too: two releases of the same name must not collide. */}}
{{- define "ripple.clusterName" -}}
{{- printf "%s-%s-%s" .ctx.Release.Namespace (include "ripple.fullname" .ctx) .component }}
{{- end }}

{{- define "ripple.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The NATS URL every component connects to: the bundled server, or the required external one. */}}
{{- define "ripple.natsUrl" -}}
{{- if .Values.nats.enabled }}
{{- if .Values.nats.url }}
{{- fail "nats.url is for an external NATS server: set nats.enabled=false to use it, or leave nats.url empty to use the bundled one" }}
{{- end }}
{{- $name := printf "%s-nats" (include "ripple.fullname" .) }}
{{- if gt (int .Values.nats.cluster.replicas) 1 }}
{{- $urls := list }}
{{- range $i := until (int .Values.nats.cluster.replicas) }}
{{- $urls = append $urls (printf "nats://%s-%d.%s-headless.%s.svc:4222" $name $i $name $.Release.Namespace) }}
{{- end }}
{{- join "," $urls }}
{{- else }}
{{- printf "nats://%s.%s.svc:4222" $name .Release.Namespace }}
{{- end }}
{{- else }}
{{- /* fail, not required: `helm lint` only logs a missing required value */ -}}
{{- if not .Values.nats.url }}
{{- fail "nats.url is required when nats.enabled=false: set it to a NATS server with JetStream, e.g. --set nats.url=nats://nats.nats.svc:4222" }}
{{- end }}
{{- .Values.nats.url }}
{{- end }}
{{- end }}

{{/* Base URL of the ingress Service, the Brokers' status.address.url prefix. */}}
{{- define "ripple.ingressUrl" -}}
{{- $port := int .Values.ingress.service.port }}
{{- printf "http://%s.%s.svc%s" (include "ripple.componentName" (dict "ctx" . "component" "ingress")) .Release.Namespace (ternary "" (printf ":%d" $port) (eq $port 80)) }}
{{- end }}

{{- define "ripple.webhookServiceName" -}}
{{- include "ripple.componentName" (dict "ctx" . "component" "operator-webhook") }}
{{- end }}

{{- define "ripple.webhookHost" -}}
{{- printf "%s.%s.svc" (include "ripple.webhookServiceName" .) .Release.Namespace }}
{{- end }}

{{- define "ripple.webhookCertSecretName" -}}
{{- default (printf "%s-tls" (include "ripple.webhookServiceName" .)) .Values.operator.webhook.certSecret }}
{{- end }}

{{/* Restricted pod security: what every pod of the chart runs with. */}}
{{- define "ripple.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "ripple.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* nodeSelector, tolerations, affinity and image pull secrets, shared by every pod. */}}
{{- define "ripple.podScheduling" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Stream replicas of Brokers without spec.replicas: operator.brokerReplicas, else 3 on the bundled NATS cluster.
*/}}
{{- define "ripple.brokerReplicas" -}}
{{- if .Values.operator.brokerReplicas }}
{{- .Values.operator.brokerReplicas }}
{{- else if and .Values.nats.enabled (gt (int .Values.nats.cluster.replicas) 1) }}
{{- 3 }}
{{- else }}
{{- 1 }}
{{- end }}
{{- end }}

{{- /* The OTEL_* variables of every component (tracing.otlpEndpoint, tracing.env), as env entries. */}}
{{- define "ripple.tracingEnv" -}}
{{- with .Values.tracing.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- range $name, $value := .Values.tracing.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}

{{- /* The Secrets of the bundled NATS's security settings (nats.tls, nats.auth, nats.encryption). */}}
{{- define "ripple.natsTlsSecretName" -}}
{{- default (printf "%s-tls" (include "ripple.componentName" (dict "ctx" . "component" "nats"))) .Values.nats.tls.secretName }}
{{- end }}
{{- define "ripple.natsClientSecretName" -}}
{{- default (printf "%s-client" (include "ripple.componentName" (dict "ctx" . "component" "nats"))) .Values.nats.auth.secretName }}
{{- end }}
{{- define "ripple.natsEncryptionSecretName" -}}
{{- default (printf "%s-encryption" (include "ripple.componentName" (dict "ctx" . "component" "nats"))) .Values.nats.encryption.secretName }}
{{- end }}
{{- define "ripple.natsSecured" -}}
{{- if and .Values.nats.enabled (or .Values.nats.tls.enabled .Values.nats.auth.enabled) }}true{{ end }}
{{- end }}

{{- /* How a component connects to the bundled NATS when it requires TLS or a password (ripple.store.auth). */}}
{{- define "ripple.natsClientEnv" -}}
{{- if .Values.nats.enabled }}
{{- if .Values.nats.tls.enabled }}
- name: RIPPLE_NATS_CA
  value: /etc/ripple/nats/ca.crt
{{- end }}
{{- if .Values.nats.auth.enabled }}
- name: RIPPLE_NATS_USER
  value: ripple
- name: RIPPLE_NATS_PASSWORD_FILE
  value: /etc/ripple/nats-auth/password
{{- end }}
{{- end }}
{{- end }}
{{- define "ripple.natsClientMounts" -}}
{{- if .Values.nats.enabled }}
{{- if .Values.nats.tls.enabled }}
- name: nats-ca
  mountPath: /etc/ripple/nats
  readOnly: true
{{- end }}
{{- if .Values.nats.auth.enabled }}
- name: nats-auth
  mountPath: /etc/ripple/nats-auth
  readOnly: true
{{- end }}
{{- end }}
{{- end }}
{{- define "ripple.natsClientVolumes" -}}
{{- if .Values.nats.enabled }}
{{- if .Values.nats.tls.enabled }}
- name: nats-ca
  secret:
    secretName: {{ include "ripple.natsTlsSecretName" . }}
    items: [{key: ca.crt, path: ca.crt}]
    defaultMode: 0444
{{- end }}
{{- if .Values.nats.auth.enabled }}
- name: nats-auth
  secret:
    secretName: {{ include "ripple.natsClientSecretName" . }}
    defaultMode: 0440
{{- end }}
{{- end }}
{{- end }}

{{- /* Every component's environment: tracing and the NATS client settings. */}}
{{- define "ripple.componentEnv" -}}
{{- include "ripple.tracingEnv" . }}
{{- include "ripple.natsClientEnv" . }}
{{- end }}
