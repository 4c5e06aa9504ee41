{{- /*
kube-ovn-v2: maps this chart's values onto the settings that the templates of the kube-ovn-lib
library chart render. charts/kube-ovn has its own _config.tpl for the v1 value names.
*/ -}}
{{- define "kube-ovn.config" -}}
{{- include "kube-ovn.upstream-values" . -}}
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
  enableSsl: networking.enableSsl
  sslSecret: networking.sslSecret
nonPrimaryCNI: {{ $np | toJson }}
multiNetworkPolicyCRD: {{ dig "installCRD" true ($v.multiNetworkPolicy | default dict) | toJson }}
images:
  controller: {{ include "kube-ovn.image" (dict "registry" $reg "repository" $img.controller.repository "tag" $img.controller.tag "appVersion" .Chart.AppVersion) | quote }}
  cni: {{ include "kube-ovn.image" (dict "registry" $reg "repository" $img.cni.repository "tag" $img.cni.tag "appVersion" .Chart.AppVersion) | quote }}
  ovn: {{ include "kube-ovn.image" (dict "registry" $reg "repository" $img.ovn.repository "tag" $img.ovn.tag "appVersion" .Chart.AppVersion) | quote }}
pullPolicy: {{ $v.global.imagePullPolicy | quote }}
imagePullSecrets: {{ $v.global.registry.imagePullSecrets | default list | toJson }}
masterNodeSelector: {{ $v.masterNodesLabels | default dict | toJson }}
logLevel: {{ $v.logLevel | quote }}
ssl:
  enabled: {{ dig "enableSsl" true $v.networking | toJson }}
  secret: {{ dig "sslSecret" "" $v.networking | quote }}
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

{{- /*
Upstream Kube-OVN's v2 keys a user may bring along (values.schema.json declares them so that
these messages, not "additional properties not allowed", are what they see): each either works
with upstream's meaning or fails here naming this chart's key. The chart's README section in
README.md lists the decisions.
*/ -}}
{{- define "kube-ovn.upstream-values" -}}
{{- $v := .Values -}}
{{- $images := $v.global.images | default dict -}}
{{- if hasKey $images "kubeovn" -}}
{{- fail "global.images.kubeovn is upstream Kube-OVN's single image (docker.io/kubeovn/kube-ovn), which this implementation does not run: its three images are global.images.controller, global.images.cni and global.images.ovn (each with repository and tag; empty tag: the chart's appVersion), under global.registry.address. Remove global.images.kubeovn." -}}
{{- end -}}
{{- if hasKey $images "natgateway" -}}
{{- fail "global.images.natgateway is upstream Kube-OVN's vpc-nat-gateway image; this chart deploys no NAT gateway image. Remove global.images.natgateway." -}}
{{- end -}}
{{- if hasKey $v "image" -}}
{{- fail "image.pullPolicy is upstream's name; this chart's is global.imagePullPolicy. Remove image." -}}
{{- end -}}
{{- $masters := $v.masterNodes | default list -}}
{{- if kindIs "string" $masters }}{{ $masters = splitList "," $masters }}{{ end -}}
{{- if compact $masters -}}
{{- fail (printf "masterNodes=%v lists upstream's OVN central nodes by IP; this chart runs one ovn-central on a node picked by label: label that node and set masterNodesLabels (now %v), and leave masterNodes empty." $v.masterNodes ($v.masterNodesLabels | toJson)) -}}
{{- end -}}
{{- if hasKey $v "central" -}}
{{- fail "central is upstream's name for OVN central's settings; this chart's is ovnCentral (ovnCentral.resources). Remove central." -}}
{{- end -}}
{{- if eq (dig "networkType" "geneve" $v.networking | toString) "vlan" -}}
{{- fail (printf "networking.networkType=vlan makes upstream's default pod network a VLAN underlay, which is primary mode and not part of this implementation: attached networks run over the overlay of networking.tunnelType (now %q; geneve or vxlan). Remove networkType or set it to geneve." $v.networking.tunnelType) -}}
{{- end -}}
{{- if dig "dpdkHybrid" "enabled" false $v.ovsOvn -}}
{{- fail "ovsOvn.dpdkHybrid.enabled=true runs upstream's DPDK OVS image on nodes labelled ovn.kubernetes.io/ovs_dp_type=userspace; this chart has no DPDK image. For OVS's userspace datapath on every node set networking.datapathType=netdev (and agent.interface, the tunnel NIC); remove ovsOvn.dpdkHybrid." -}}
{{- end -}}
{{- end }}
