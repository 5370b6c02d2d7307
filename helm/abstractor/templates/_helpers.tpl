{{/* Names, labels and the pieces every pod shares. */}}

{{- define "abstractor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "abstractor.fullname" -}}
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

{{- define "abstractor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: only what never changes over a release's life (no version, no chart). */}}
{{- define "abstractor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "abstractor.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Full labels: call with (dict "root" $ "component" "api"). */}}
{{- define "abstractor.labels" -}}
helm.sh/chart: {{ include "abstractor.chart" .root }}
{{ include "abstractor.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: abstractor
{{- end -}}

{{- define "abstractor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "abstractor.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "abstractor.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "abstractor.vllmImage" -}}
{{- if .Values.vllm.image.digest -}}
{{- printf "%s@%s" .Values.vllm.image.repository .Values.vllm.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.vllm.image.repository .Values.vllm.image.tag -}}
{{- end -}}
{{- end -}}

{{- define "abstractor.openaiBaseUrl" -}}
{{- if .Values.engine.openaiBaseUrl -}}
{{- .Values.engine.openaiBaseUrl -}}
{{- else if .Values.vllm.enabled -}}
{{- printf "http://%s-vllm:%d/v1" (include "abstractor.fullname" .) (int .Values.vllm.port) -}}
{{- else -}}
{{- fail "engine.openaiBaseUrl is required when vllm.enabled is false" -}}
{{- end -}}
{{- end -}}

{{/* Secret-backed environment of the API and the workers: credentials only ever by reference. */}}
{{- define "abstractor.secretEnv" -}}
- name: ABSTRACTOR_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ required "database.existingSecret is required" .Values.database.existingSecret }}
      key: {{ .Values.database.urlKey }}
- name: ABSTRACTOR_BROKER_URL
  valueFrom:
    secretKeyRef:
      name: {{ required "broker.existingSecret is required" .Values.broker.existingSecret }}
      key: {{ .Values.broker.urlKey }}
- name: ABSTRACTOR_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ required "admin.existingSecret is required" .Values.admin.existingSecret }}
      key: {{ .Values.admin.tokenKey }}
{{- if .Values.webhook.existingSecret }}
- name: ABSTRACTOR_WEBHOOK_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .Values.webhook.existingSecret }}
      key: {{ .Values.webhook.secretKey }}
{{- end }}
{{- if .Values.engine.apiKey.existingSecret }}
- name: ABSTRACTOR_OPENAI_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.engine.apiKey.existingSecret }}
      key: {{ .Values.engine.apiKey.key }}
{{- end }}
{{- end -}}

{{/* Writable places under the read-only root filesystem: HOME, /tmp and the data dir. */}}
{{- define "abstractor.scratchMounts" -}}
- name: tmp
  mountPath: /tmp
- name: home
  mountPath: /home/abstractor
- name: data
  mountPath: /var/lib/abstractor
{{- end -}}

{{- define "abstractor.scratchVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.scratch.tmpSizeLimit }}
- name: home
  emptyDir:
    sizeLimit: 256Mi
- name: data
  emptyDir:
    sizeLimit: {{ .Values.scratch.dataSizeLimit }}
{{- end -}}

{{/* Pod-level fields shared by every workload of the chart. */}}
{{- define "abstractor.podCommon" -}}
serviceAccountName: {{ include "abstractor.serviceAccountName" . }}
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* NetworkPolicy egress rules. */}}
{{- define "abstractor.np.dns" -}}
{{- /* Called with .Values. */ -}}
- to:
    - namespaceSelector:
        {{- toYaml .networkPolicy.dns.namespaceSelector | nindent 8 }}
      podSelector:
        {{- toYaml .networkPolicy.dns.podSelector | nindent 8 }}
  ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{- end }}
{{- define "abstractor.np.store" -}}
{{- /* Postgres or Redis: the given peers, or (no peers set) that port to anywhere. */ -}}
- ports:
    - {protocol: TCP, port: {{ .port }}}
  {{- with .peers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- define "abstractor.np.webhooks" -}}
{{- if .peers }}
- to:
    {{- toYaml .peers | nindent 4 }}
  ports:
    {{- range .ports }}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
{{- end }}
{{- end }}
