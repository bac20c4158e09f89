{{- define "tollgate.name" -}}{{ .Release.Name }}{{- end -}}
{{- define "tollgate.labels" -}}
app.kubernetes.io/name: tollgate
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "tollgate.selector" -}}
app.kubernetes.io/name: tollgate
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{/* The rules the operator needs in each namespace it acts in (docs/install.md). */}}
{{- define "tollgate.rules" -}}
- apiGroups: [tollgate.dev]
  resources: [canaries, promptreleases]
  verbs: [get, list, watch, patch, update]
- apiGroups: [tollgate.dev]
  resources: [canaries/status, promptreleases/status]
  verbs: [get, patch, update]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, update, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [get, list, create, patch]
{{- if .Values.routers.gatewayApi }}
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, list, watch, patch, update]
{{- end }}
{{- if .Values.peering.enabled }}
# the replicas' keep-alives (runtime/peering.py); each creates the object when it is missing;
# clusterkopfpeerings for --all-namespaces, kopfpeerings for --namespace
- apiGroups: [kopf.dev]
  resources: [kopfpeerings{{ if not .Values.watch.namespaces }}, clusterkopfpeerings{{ end }}]
  verbs: [get, list, watch, create, patch]
{{- end }}
{{- end -}}
