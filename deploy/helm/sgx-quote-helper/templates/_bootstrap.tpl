{{/* The bootstrap pod: `sim init` once, then `sim register-nodes` (idempotent). */}}
{{- define "sqh.bootstrapPodTemplate" -}}
{{- $ctx := dict "root" . "component" "bootstrap" }}
{{- $pccsCtx := dict "root" . "component" "pccs" }}
{{- $s := .Values.simPccs }}
{{- $dir := $s.mountPath -}}
metadata:
  labels:
    {{- include "sqh.podLabels" $ctx | nindent 4 }}
spec:
  restartPolicy: OnFailure
  serviceAccountName: {{ include "sqh.serviceAccountName" $ctx }}
  # Lists nodes and writes Secrets.
  automountServiceAccountToken: true
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- include "sqh.nonRootPodSecurity" . | nindent 4 }}
    fsGroup: 10001
  {{- if has "ReadWriteOnce" $s.persistence.accessModes }}
  # A ReadWriteOnce claim is usable by pods of one node only: run beside the PCCS.
  affinity:
    podAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        - labelSelector:
            matchLabels:
              {{- include "sqh.selectorLabels" $pccsCtx | nindent 14 }}
          topologyKey: kubernetes.io/hostname
  {{- end }}
  initContainers:
    # The PCCS pod creates the manufacturer (`sim init`, registry.json written last) before
    # it serves; wait for it.
    - name: wait-for-manufacturer
      image: {{ include "sqh.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      command:
        - /bin/sh
        - -c
        - until test -f "$SIM_DIR/pcs/registry.json"; do sleep 2; done
      env:
        - name: SIM_DIR
          value: {{ $dir | quote }}
      resources:
        {{- toYaml $s.bootstrap.resources | nindent 8 }}
      securityContext:
        {{- include "sqh.restrictedContainerSecurity" . | nindent 8 }}
      volumeMounts:
        - name: sim
          mountPath: {{ $dir }}
  containers:
    - name: register-nodes
      image: {{ include "sqh.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - sim
        - register-nodes
        - {{ $dir }}
        - --namespace={{ include "sqh.namespace" . }}
        - --secret-prefix={{ .Values.devicePlugin.secretPrefix }}
        {{- if $s.nodeSelector }}
        - --node-selector={{ $s.nodeSelector }}
        {{- end }}
      resources:
        {{- toYaml $s.bootstrap.resources | nindent 8 }}
      securityContext:
        {{- include "sqh.restrictedContainerSecurity" . | nindent 8 }}
      volumeMounts:
        - name: sim
          mountPath: {{ $dir }}
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: sim
      persistentVolumeClaim:
        claimName: {{ include "sqh.componentName" $pccsCtx }}
    - name: tmp
      emptyDir:
        medium: Memory
        sizeLimit: 16Mi
{{- end -}}
