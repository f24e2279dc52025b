{{/* Names and labels. */}}
{{- define "mailstream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mailstream.fullname" -}}
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

{{/* The object name of one component: (dict "root" $ "component" "sender"). */}}
{{- define "mailstream.componentName" -}}
{{- printf "%s-%s" (include "mailstream.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mailstream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mailstream.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "mailstream.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "mailstream.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: mailstream
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{- define "mailstream.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
mailstream.mergeInto: merges .src into the map .dst in place, key by key for maps, replacing
anything else. Unlike sprig's mergeOverwrite it keeps a `false` or `0` of .src, so a service
can switch off what the defaults switch on.
*/}}
{{- define "mailstream.mergeInto" -}}
{{- $dst := .dst -}}
{{- range $key, $value := .src -}}
{{- $current := get $dst $key -}}
{{- if and (kindIs "map" $value) (kindIs "map" $current) -}}
{{- include "mailstream.mergeInto" (dict "dst" $current "src" $value) -}}
{{- else -}}
{{- $_ := set $dst $key $value -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* One service's settings: the defaults with its own entry on top. (dict "root" $ "name" n) */}}
{{- define "mailstream.service" -}}
{{- $svc := deepCopy .root.Values.defaults -}}
{{- $_ := include "mailstream.mergeInto" (dict "dst" $svc "src" (index .root.Values.services .name)) -}}
{{- toJson $svc -}}
{{- end -}}

{{/* The settings shared by every container, as MAILSTREAM_* variables. */}}
{{- define "mailstream.configData" -}}
{{- $k := .Values.kafka -}}
{{- $c := .Values.cassandra -}}
MAILSTREAM_KAFKA__BOOTSTRAP_SERVERS: {{ $k.bootstrapServers | quote }}
MAILSTREAM_KAFKA__TOPIC_PREFIX: {{ $k.topicPrefix | quote }}
MAILSTREAM_KAFKA__SECURITY_PROTOCOL: {{ $k.securityProtocol | quote }}
MAILSTREAM_KAFKA__PARTITIONS: {{ int $k.partitions | quote }}
MAILSTREAM_KAFKA__REPLICATION_FACTOR: {{ int $k.replicationFactor | quote }}
{{- with $k.saslMechanism }}
MAILSTREAM_KAFKA__SASL_MECHANISM: {{ . | quote }}
{{- end }}
{{- with $k.saslUsername }}
MAILSTREAM_KAFKA__SASL_USERNAME: {{ . | quote }}
{{- end }}
{{- if $k.tlsSecret.name }}
MAILSTREAM_KAFKA__SSL_CA_LOCATION: /etc/mailstream/kafka-tls/ca.crt
{{- if $k.tlsSecret.clientCertificate }}
MAILSTREAM_KAFKA__SSL_CERTIFICATE_LOCATION: /etc/mailstream/kafka-tls/tls.crt
MAILSTREAM_KAFKA__SSL_KEY_LOCATION: /etc/mailstream/kafka-tls/tls.key
{{- end }}
{{- end }}
MAILSTREAM_CASSANDRA__HOSTS: {{ $c.hosts | quote }}
MAILSTREAM_CASSANDRA__PORT: {{ int $c.port | quote }}
MAILSTREAM_CASSANDRA__KEYSPACE: {{ $c.keyspace | quote }}
MAILSTREAM_CASSANDRA__REPLICATION: {{ $c.replication | quote }}
{{- with $c.localDc }}
MAILSTREAM_CASSANDRA__LOCAL_DC: {{ . | quote }}
{{- end }}
{{- with $c.username }}
MAILSTREAM_CASSANDRA__USERNAME: {{ . | quote }}
{{- end }}
{{- if $c.tlsSecret.name }}
MAILSTREAM_CASSANDRA__SSL_CA_FILE: /etc/mailstream/cassandra-tls/ca.crt
{{- if $c.tlsSecret.clientCertificate }}
MAILSTREAM_CASSANDRA__SSL_CERT_FILE: /etc/mailstream/cassandra-tls/tls.crt
MAILSTREAM_CASSANDRA__SSL_KEY_FILE: /etc/mailstream/cassandra-tls/tls.key
{{- end }}
{{- end }}
{{- with .Values.dns }}
{{- with .nameservers }}
MAILSTREAM_DNS__NAMESERVERS: {{ . | quote }}
{{- end }}
MAILSTREAM_DNS__PORT: {{ int .port | quote }}
MAILSTREAM_DNS__TIMEOUT_S: {{ .timeoutSeconds | quote }}
MAILSTREAM_DNS__PROBE_NAME: {{ .probeName | quote }}
MAILSTREAM_DNS__PROBE_TYPE: {{ .probeType | quote }}
MAILSTREAM_DNS__PROBE_TIMEOUT_S: {{ .probeTimeoutSeconds | quote }}
{{- end }}
MAILSTREAM_HEALTH__HOST: "0.0.0.0"
MAILSTREAM_HEALTH__PORT: {{ int .Values.metrics.port | quote }}
MAILSTREAM_LOG_LEVEL: {{ .Values.logLevel | quote }}
MAILSTREAM_LOG_FORMAT: "json"
{{- range $name, $value := .Values.env }}
{{ $name }}: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* Passwords, from Secrets only. */}}
{{- define "mailstream.secretEnv" -}}
{{- with .Values.kafka.saslPasswordSecret }}{{ if .name }}
- name: MAILSTREAM_KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ .name | quote }}, key: {{ .key | quote }}}
{{- end }}{{ end }}
{{- with .Values.cassandra.passwordSecret }}{{ if .name }}
- name: MAILSTREAM_CASSANDRA__PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ .name | quote }}, key: {{ .key | quote }}}
{{- end }}{{ end }}
{{- end -}}

{{/* Volumes every pod has: a writable /tmp, and the TLS Secrets when set. (dict "root" $ "dkim" bool) */}}
{{- define "mailstream.volumes" -}}
- name: tmp
  emptyDir: {sizeLimit: 64Mi}
{{- with .root.Values.kafka.tlsSecret.name }}
- name: kafka-tls
  secret: {secretName: {{ . | quote }}, defaultMode: 0440}
{{- end }}
{{- with .root.Values.cassandra.tlsSecret.name }}
- name: cassandra-tls
  secret: {secretName: {{ . | quote }}, defaultMode: 0440}
{{- end }}
{{- if and .dkim .root.Values.dkim.existingSecret }}
- name: dkim-keys
  secret: {secretName: {{ .root.Values.dkim.existingSecret | quote }}, defaultMode: 0440}
{{- end }}
{{- end -}}

{{- define "mailstream.volumeMounts" -}}
- {name: tmp, mountPath: /tmp}
{{- if .root.Values.kafka.tlsSecret.name }}
- {name: kafka-tls, mountPath: /etc/mailstream/kafka-tls, readOnly: true}
{{- end }}
{{- if .root.Values.cassandra.tlsSecret.name }}
- {name: cassandra-tls, mountPath: /etc/mailstream/cassandra-tls, readOnly: true}
{{- end }}
{{- if and .dkim .root.Values.dkim.existingSecret }}
- {name: dkim-keys, mountPath: {{ .root.Values.dkim.mountPath | quote }}, readOnly: true}
{{- end }}
{{- end -}}
