{{/* Names ------------------------------------------------------------------ */}}

{{- define "sqh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sqh.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<base>-<suffix>" in at most 63 characters (a DNS label). Unchanged when it fits; else
     the base is cut and followed by 8 hex digits of its sha256, "<cut base>-<hash>-<suffix>",
     so that bases which only differ after the cut (long release names, namespaces with a
     common prefix) still give distinct names, and the suffix (the component) stays readable. */}}
{{- define "sqh.fitName" -}}
{{- $full := printf "%s-%s" .base .suffix -}}
{{- if le (len $full) 63 -}}
{{- $full -}}
{{- else -}}
{{- $room := int (sub 63 (add (len .suffix) 10)) -}}
{{- printf "%s-%s-%s" (trunc $room .base | trimSuffix "-") (sha256sum .base | trunc 8) .suffix -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<component>[-<suffix>]", at most 63 characters (sqh.fitName). */}}
{{- define "sqh.componentName" -}}
{{- $suffix := .component -}}
{{- with .suffix }}{{ $suffix = printf "%s-%s" $suffix . }}{{ end -}}
{{- include "sqh.fitName" (dict "base" (include "sqh.fullname" .root) "suffix" $suffix) -}}
{{- end -}}

{{/* A cluster-scoped object's name, "<namespace>-<fullname>-<component>" in at most 63
     characters (sqh.fitName): releases of one name in two namespaces do not collide. */}}
{{- define "sqh.clusterName" -}}
{{- $base := printf "%s-%s" (include "sqh.namespace" .root) (include "sqh.fullname" .root) -}}
{{- include "sqh.fitName" (dict "base" $base "suffix" .component) -}}
{{- end -}}

{{- define "sqh.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}

{{/* Labels ----------------------------------------------------------------- */}}

{{- define "sqh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sqh.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "sqh.labels" -}}
{{ include "sqh.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: sgx-quote-helper
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Pods of this chart are never mutated by its own webhook (objectSelector). */}}
{{- define "sqh.podLabels" -}}
{{ include "sqh.labels" . }}
sgx-quote-helper.io/webhook: skip
{{- end -}}

{{/* An integer as an integer (values files give float64s, which print as 1e+06), or a
     string (a percentage) as it is. */}}
{{- define "sqh.intOrString" -}}
{{- if kindIs "string" . -}}
{{- . -}}
{{- else -}}
{{- int64 . -}}
{{- end -}}
{{- end -}}

{{/* Images ------------------------------------------------------------------ */}}

{{- define "sqh.imageRef" -}}
{{- $image := .image -}}
{{- $repo := $image.repository -}}
{{- if $image.registry -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" $image.registry) $image.repository -}}
{{- end -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $repo $image.digest -}}
{{- else -}}
{{- printf "%s:%s%s" $repo (default .root.Chart.AppVersion $image.tag) (default "" $image.tagSuffix) -}}
{{- end -}}
{{- end -}}

{{- define "sqh.image" -}}
{{- include "sqh.imageRef" (dict "image" .Values.image "root" .) -}}
{{- end -}}

{{/* Resources ---------------------------------------------------------------- */}}

{{- define "sqh.epcResource" -}}
{{- if .Values.legacyEpc.enabled -}}
{{- .Values.legacyEpc.resource -}}
{{- else -}}
{{- .Values.resourceNames.epc -}}
{{- end -}}
{{- end -}}

{{- define "sqh.daemonEpc" -}}
{{- if .Values.legacyEpc.enabled -}}
{{- .Values.legacyEpc.daemonRequest -}}
{{- else -}}
{{- .Values.daemon.epcRequest -}}
{{- end -}}
{{- end -}}

{{- define "sqh.sampleEpc" -}}
{{- if .Values.legacyEpc.enabled -}}
{{- .Values.legacyEpc.sampleLimit -}}
{{- else -}}
{{- .Values.sample.epcLimit -}}
{{- end -}}
{{- end -}}

{{/* The legacy AKS EPC taint, when that resource is in use. */}}
{{- define "sqh.legacyEpcToleration" -}}
{{- if and .Values.legacyEpc.enabled .Values.legacyEpc.tolerateTaint }}
- key: {{ .Values.legacyEpc.resource }}
  operator: Equal
  value: "true"
  effect: NoSchedule
{{- end }}
{{- end -}}

{{/* Services and URLs --------------------------------------------------------- */}}

{{- define "sqh.pccsUrl" -}}
{{- if .Values.daemon.pccsUrl -}}
{{- .Values.daemon.pccsUrl -}}
{{- else if .Values.simPccs.enabled -}}
{{- printf "http://%s.%s:%d" (include "sqh.componentName" (dict "root" . "component" "pccs")) (include "sqh.namespace" .) (int .Values.simPccs.port) -}}
{{- end -}}
{{- end -}}

{{/* sgx_default_qcnl.conf (JSON) for Intel's quote provider library. */}}
{{- define "sqh.qcnlConf" -}}
{{- $conf := dict "use_secure_cert" (not .Values.daemon.pccsInsecure) -}}
{{- if .Values.daemon.pccsUrl -}}
{{- $_ := set $conf "pccs_url" (printf "%s/sgx/certification/v4/" (trimSuffix "/" .Values.daemon.pccsUrl)) -}}
{{- end -}}
{{- toPrettyJson (merge (deepCopy .Values.daemon.qcnl.extra) $conf) -}}
{{- end -}}

{{- define "sqh.serviceAccountName" -}}
{{- include "sqh.componentName" . -}}
{{- end -}}

{{/* Kubernetes version gates -------------------------------------------------- */}}

{{/* DaemonSet rollingUpdate.maxSurge exists from 1.21 (beta, on by default). */}}
{{- define "sqh.daemonSetMaxSurge" -}}
{{- semverCompare ">=1.21.0-0" .Capabilities.KubeVersion.Version -}}
{{- end -}}

{{- define "sqh.pdbApiVersion" -}}
{{- if semverCompare ">=1.21.0-0" .Capabilities.KubeVersion.Version -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end -}}
{{- end -}}

{{/* batch/v1 CronJob from 1.21; 1.20 serves batch/v1beta1. */}}
{{- define "sqh.cronJobApiVersion" -}}
{{- if semverCompare ">=1.21.0-0" .Capabilities.KubeVersion.Version -}}
batch/v1
{{- else -}}
batch/v1beta1
{{- end -}}
{{- end -}}

{{/* Shared pod bits ----------------------------------------------------------- */}}

{{- define "sqh.restrictedContainerSecurity" -}}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
{{- end -}}

{{- define "sqh.nonRootPodSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}
