{{/*
Chart name, truncated to 63 characters (the DNS label limit).
*/}}
{{- define "cvm-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: "<release>-<chart>", or "<release>" when the release
name already contains the chart name. Truncated to 63 characters.
*/}}
{{- define "cvm-operator.fullname" -}}
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
"<chart>-<version>" for the helm.sh/chart label.
*/}}
{{- define "cvm-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "cvm-operator.labels" -}}
helm.sh/chart: {{ include "cvm-operator.chart" . }}
{{ include "cvm-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cvm-operator
{{- end }}

{{/*
Selector labels (immutable once a Deployment exists: keep them minimal).
*/}}
{{- define "cvm-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cvm-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
ServiceAccount name.
*/}}
{{- define "cvm-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cvm-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Container image reference: repository@digest, or repository:tag (tag defaults to appVersion).
*/}}
{{- define "cvm-operator.image" -}}
{{- $repository := required "image.repository is required: build the image (make image), push it (skopeo copy oci-archive:target/image/cvm-operator.oci.tar docker://REGISTRY/cvm-operator:TAG), then install with --set image.repository=REGISTRY/cvm-operator (README: Running it)" .Values.image.repository }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Leader-election Lease name.
*/}}
{{- define "cvm-operator.leaseName" -}}
{{- default (include "cvm-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
Name of the Secret holding operator-wide credentials, or "" when there is none.
Fails on contradictory or half-filled credential values.
*/}}
{{- define "cvm-operator.credentialsSecretName" -}}
{{- $c := .Values.credentials }}
{{- if and $c.existingSecret (or $c.secretId $c.secretKey $c.sessionToken) }}
{{- fail "credentials: set either existingSecret or secretId/secretKey, not both" }}
{{- end }}
{{- if or (and $c.secretId (not $c.secretKey)) (and $c.secretKey (not $c.secretId)) }}
{{- fail "credentials: secretId and secretKey must be set together" }}
{{- end }}
{{- if and $c.sessionToken (not $c.secretId) }}
{{- fail "credentials: sessionToken needs secretId and secretKey" }}
{{- end }}
{{- $sources := 0 }}
{{- if or $c.existingSecret $c.secretId }}{{ $sources = add1 $sources }}{{ end }}
{{- if $c.workloadIdentity.enabled }}{{ $sources = add1 $sources }}{{ end }}
{{- if $c.instanceRole.enabled }}{{ $sources = add1 $sources }}{{ end }}
{{- if gt $sources 1 }}
{{- fail "credentials: use one of a Secret (existingSecret or secretId/secretKey), workloadIdentity or instanceRole" }}
{{- end }}
{{- if and $c.workloadIdentity.enabled (not (and $c.workloadIdentity.roleArn $c.workloadIdentity.providerId)) }}
{{- fail "credentials.workloadIdentity needs roleArn and providerId" }}
{{- end }}
{{- if $c.existingSecret }}
{{- $c.existingSecret }}
{{- else if $c.secretId }}
{{- printf "%s-credentials" (include "cvm-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
RBAC rules on CvmInstances and Events, shared by the ClusterRole (all
namespaces) and the Role (watchNamespace): exactly the verbs the operator
uses. The watch lists and watches; finalizers are set by merge patch of
metadata; status by server-side apply; events are created, never updated.
Secrets are not here: see secretNamespaces in rbac.yaml.
*/}}
{{- define "cvm-operator.rules" -}}
- apiGroups: ["cvm.tencentcloud.io"]
  resources: ["cvminstances"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["cvm.tencentcloud.io"]
  resources: ["cvminstances/status"]
  verbs: ["patch"]
- apiGroups: ["cvm.tencentcloud.io"]
  resources: ["cvminstancesets"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["cvm.tencentcloud.io"]
  resources: ["cvminstancesets/status"]
  verbs: ["patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/*
Cluster-wide rules, in every mode: CvmAccounts are cluster-scoped (the operator
watches them and reports their status), and an account selects namespaces by
their labels.
*/}}
{{- define "cvm-operator.accountRules" -}}
- apiGroups: ["cvm.tencentcloud.io"]
  resources: ["cvmaccounts"]
  verbs: ["list", "watch"]
- apiGroups: ["cvm.tencentcloud.io"]
  resources: ["cvmaccounts/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get"]
{{- end }}
