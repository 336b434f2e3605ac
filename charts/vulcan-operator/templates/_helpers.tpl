{{/* The chart's name (nameOverride) and the release's full name, both DNS labels. */}}
{{- define "vulcan-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vulcan-operator.fullname" -}}
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
Labels of every object: the same as manifests/ (kustomize) plus Helm's own two. No
app.kubernetes.io/instance: that is Argo CD's tracking label, Argo CD's to set.
Call with (dict "ctx" $ "component" "operator").
*/}}
{{- define "vulcan-operator.labels" -}}
app.kubernetes.io/name: {{ include "vulcan-operator.name" .ctx }}
app.kubernetes.io/part-of: vulcan-engine
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The operator pods' selector. */}}
{{- define "vulcan-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vulcan-operator.name" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "vulcan-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vulcan-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator's image: by digest when image.digest is set, else by tag (default appVersion). */}}
{{- define "vulcan-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The operator's RBAC rules, read from files/rbac.yaml (a copy of manifests/rbac.yaml, kept equal
by tests/repo/test_chart.py; refresh with scripts/sync_chart.py): the rules of its ClusterRole.
*/}}
{{- define "vulcan-operator.rules" -}}
{{- $rules := list }}
{{- range $doc := regexSplit "(?m)^---\\s*$" (.Files.Get "files/rbac.yaml") -1 }}
{{- $obj := fromYaml $doc }}
{{- if eq (get $obj "kind") "ClusterRole" }}
{{- $rules = $obj.rules }}
{{- end }}
{{- end }}
{{- if not $rules }}
{{- fail "files/rbac.yaml holds no ClusterRole with rules" }}
{{- end }}
{{- toYaml (dict "rules" $rules) }}
{{- end }}

{{/*
Those rules split by scope, for namespace-scoped installs (watchNamespaces), as
tests/support/rbac.py derives them for manifests/namespaced/: (dict "ctx" $ "scope"
"Namespaced") gives the Role of each watched namespace (everything namespaced; the cluster
peering becomes a KopfPeering there), "Cluster" the ClusterRole's rules (the cluster-scoped
resources still used: a namespace read by name; no CRD watch, as the operator run with exact
-n namespaces turns Kopf's scanning off: main.without_scanning).
*/}}
{{- define "vulcan-operator.scopedRules" -}}
{{- $clusterScoped := list "customresourcedefinitions" "namespaces" "clusterkopfpeerings" }}
{{- $instead := dict "clusterkopfpeerings" "kopfpeerings" }}
{{- $unused := list "customresourcedefinitions" }}
{{- $out := list }}
{{- range $rule := (include "vulcan-operator.rules" .ctx | fromYaml).rules }}
{{- $keep := list }}
{{- range $resource := $rule.resources }}
{{- $base := first (splitList "/" $resource) }}
{{- if eq $.scope "Cluster" }}
{{- if and (has $base $clusterScoped) (not (has $base $unused)) (not (hasKey $instead $base)) }}
{{- $keep = append $keep $resource }}
{{- end }}
{{- else if hasKey $instead $resource }}
{{- $keep = append $keep (get $instead $resource) }}
{{- else if not (has $base $clusterScoped) }}
{{- $keep = append $keep $resource }}
{{- end }}
{{- end }}
{{- if $keep }}
{{- $out = append $out (merge (dict "resources" (uniq $keep)) (omit $rule "resources")) }}
{{- end }}
{{- end }}
{{- toYaml (dict "rules" $out) }}
{{- end }}
