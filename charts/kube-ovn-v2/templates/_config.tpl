{{- /*
kube-ovn-v2: maps this chart's values onto the settings that the templates of the kube-ovn-lib
library chart render. charts/kube-ovn has its own _config.tpl for the v1 value names.
*/ -}}
{{- define "kube-ovn.config" -}}
{{- $v := .Values -}}
{{- $np := $v.cni.nonPrimaryCNI -}}
{{- if eq (toString $np) "true" }}{{ $np = true }}{{ else if eq (toString $np) "false" }}{{ $np = false }}{{ end -}}
{{- $img := $v.global.images -}}
{{- $reg := $v.global.registry.address -}}
names:
  nonPrimaryCNI: cni.nonPrimaryCNI
  socket: cni.socket
  binDir: cni.binaryDirectory
  datapathType: networking.datapathType
  encapType: networking.tunnelType
  mtu: networking.mtu
  logFormat: controller.logFormat
  replicas: controller.replicas
nonPrimaryCNI: {{ $np | toJson }}
images:
  controller: {{ include "kube-ovn.image" (dict "registry" $reg "repository" $img.controller.repository "tag" $img.controller.tag "appVersion" .Chart.AppVersion) | quote }}
  cni: {{ include "kube-ovn.image" (dict "registry" $reg "repository" $img.cni.repository "tag" $img.cni.tag "appVersion" .Chart.AppVersion) | quote }}
  ovn: {{ include "kube-ovn.image" (dict "registry" $reg "repository" $img.ovn.repository "tag" $img.ovn.tag "appVersion" .Chart.AppVersion) | quote }}
pullPolicy: {{ $v.global.imagePullPolicy | quote }}
imagePullSecrets: {{ $v.global.registry.imagePullSecrets | default list | toJson }}
masterNodeSelector: {{ $v.masterNodesLabels | default dict | toJson }}
logLevel: {{ $v.logLevel | quote }}
controller:
  replicas: {{ $v.controller.replicas | toJson }}
  logFormat: {{ $v.controller.logFormat | quote }}
  gcInterval: {{ $v.controller.gcInterval | toJson }}
  workers: {{ $v.controller.workers | toJson }}
  metricsPort: {{ $v.controller.metrics.port | toJson }}
  resources: {{ $v.controller.resources | default dict | toJson }}
cni:
  socket: {{ $v.cni.socket | quote }}
  binDir: {{ $v.cni.binaryDirectory | quote }}
  datapathType: {{ $v.networking.datapathType | quote }}
  encapType: {{ $v.networking.tunnelType | quote }}
  mtu: {{ $v.networking.mtu | toJson }}
  iface: {{ $v.agent.interface | default "" | quote }}
  dpdkTunnelIface: {{ $v.agent.dpdkTunnelInterface | default "br-phy" | quote }}
  metricsPort: {{ $v.agent.metrics.port | toJson }}
  resources: {{ $v.agent.resources | default dict | toJson }}
ovnCentral:
  resources: {{ $v.ovnCentral.resources | default dict | toJson }}
ovsOvn:
  resources: {{ $v.ovsOvn.resources | default dict | toJson }}
{{- end }}
