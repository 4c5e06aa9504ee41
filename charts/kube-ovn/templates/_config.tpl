{{- /*
kube-ovn (chart v1 value names): maps this chart's values onto the settings that the templates
of the kube-ovn-lib library chart render (the same as for kube-ovn-v2).
*/ -}}
{{- define "kube-ovn.config" -}}
{{- $v := .Values -}}
{{- $np := $v.cni_conf.NON_PRIMARY_CNI -}}
{{- if eq (toString $np) "true" }}{{ $np = true }}{{ else if eq (toString $np) "false" }}{{ $np = false }}{{ end -}}
{{- $img := $v.global.images.kubeovn -}}
{{- $reg := $v.global.registry.address -}}
{{- $master := dict -}}
{{- range $label := splitList "," ($v.MASTER_NODES_LABEL | default "") -}}
{{- $kv := splitn "=" 2 (trim $label) -}}
{{- if $kv._0 }}{{ $_ := set $master $kv._0 ($kv._1 | default "") }}{{ end -}}
{{- end -}}
{{- $res := $v.resources | default dict -}}
names:
  nonPrimaryCNI: cni_conf.NON_PRIMARY_CNI
  socket: cni_conf.CNI_SOCKET
  binDir: cni_conf.CNI_BIN_DIR
  datapathType: networking.DATAPATH_TYPE
  encapType: networking.TUNNEL_TYPE
  mtu: networking.MTU
  logFormat: controller.LOG_FORMAT
  replicas: replicaCount
nonPrimaryCNI: {{ $np | toJson }}
images:
  controller: {{ include "kube-ovn.image" (dict "registry" $reg "repository" $img.controller "tag" $img.tag "appVersion" .Chart.AppVersion) | quote }}
  cni: {{ include "kube-ovn.image" (dict "registry" $reg "repository" $img.cni "tag" $img.tag "appVersion" .Chart.AppVersion) | quote }}
  ovn: {{ include "kube-ovn.image" (dict "registry" $reg "repository" $img.ovn "tag" $img.tag "appVersion" .Chart.AppVersion) | quote }}
pullPolicy: {{ $v.image.pullPolicy | quote }}
imagePullSecrets: {{ $v.global.registry.imagePullSecrets | default list | toJson }}
masterNodeSelector: {{ $master | toJson }}
logLevel: {{ $v.LOG_LEVEL | quote }}
controller:
  replicas: {{ $v.replicaCount | toJson }}
  logFormat: {{ $v.controller.LOG_FORMAT | quote }}
  gcInterval: {{ $v.controller.GC_INTERVAL | toJson }}
  workers: {{ $v.controller.WORKERS | toJson }}
  metricsPort: {{ $v.controller.METRICS_PORT | toJson }}
  resources: {{ index $res "kube-ovn-controller" | default dict | toJson }}
cni:
  socket: {{ $v.cni_conf.CNI_SOCKET | quote }}
  binDir: {{ $v.cni_conf.CNI_BIN_DIR | quote }}
  datapathType: {{ $v.networking.DATAPATH_TYPE | quote }}
  encapType: {{ $v.networking.TUNNEL_TYPE | quote }}
  mtu: {{ $v.networking.MTU | toJson }}
  iface: {{ $v.networking.IFACE | default "" | quote }}
  dpdkTunnelIface: {{ $v.networking.DPDK_TUNNEL_IFACE | default "br-phy" | quote }}
  metricsPort: {{ $v.cni_conf.METRICS_PORT | toJson }}
  resources: {{ index $res "kube-ovn-cni" | default dict | toJson }}
ovnCentral:
  resources: {{ index $res "ovn-central" | default dict | toJson }}
ovsOvn:
  resources: {{ index $res "ovs-ovn" | default dict | toJson }}
{{- end }}
