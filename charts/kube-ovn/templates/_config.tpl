{{- /*
kube-ovn (chart v1 value names): maps this chart's values onto the settings that the templates
of the kube-ovn-lib library chart render (the same as for kube-ovn-v2).
*/ -}}
{{- define "kube-ovn.config" -}}
{{- include "kube-ovn.upstream-values" . -}}
{{- $v := .Values -}}
{{- $np := $v.cni_conf.NON_PRIMARY_CNI -}}
{{- if eq (toString $np) "true" }}{{ $np = true }}{{ else if eq (toString $np) "false" }}{{ $np = false }}{{ end -}}
{{- $img := $v.global.images -}}
{{- $reg := $v.global.registry.address -}}
{{- $master := dict -}}
{{- range $label := splitList "," ($v.MASTER_NODES_LABEL | default "") -}}
{{- $kv := splitn "=" 2 (trim $label) -}}
{{- if $kv._0 }}{{ $_ := set $master $kv._0 ($kv._1 | default "") }}{{ end -}}
{{- end -}}
names:
  nonPrimaryCNI: cni_conf.NON_PRIMARY_CNI
  socket: cni_conf.CNI_SOCKET
  binDir: cni_conf.CNI_BIN_DIR
  datapathType: networking.DATAPATH_TYPE
  encapType: networking.TUNNEL_TYPE
  mtu: networking.MTU
  logFormat: controller.LOG_FORMAT
  replicas: replicaCount
  enableSsl: networking.ENABLE_SSL
  sslSecret: networking.SSL_SECRET
nonPrimaryCNI: {{ $np | toJson }}
multiNetworkPolicyCRD: {{ dig "installCRD" true ($v.multiNetworkPolicy | default dict) | toJson }}
images:
  controller: {{ include "kube-ovn.image" (dict "registry" $reg "repository" $img.controller.repository "tag" $img.controller.tag "appVersion" .Chart.AppVersion) | quote }}
  cni: {{ include "kube-ovn.image" (dict "registry" $reg "repository" $img.cni.repository "tag" $img.cni.tag "appVersion" .Chart.AppVersion) | quote }}
  ovn: {{ include "kube-ovn.image" (dict "registry" $reg "repository" $img.ovn.repository "tag" $img.ovn.tag "appVersion" .Chart.AppVersion) | quote }}
pullPolicy: {{ $v.image.pullPolicy | quote }}
imagePullSecrets: {{ $v.global.registry.imagePullSecrets | default list | toJson }}
masterNodeSelector: {{ $master | toJson }}
logLevel: {{ $v.LOG_LEVEL | quote }}
ssl:
  enabled: {{ dig "ENABLE_SSL" true $v.networking | toJson }}
  secret: {{ dig "SSL_SECRET" "" $v.networking | quote }}
controller:
  replicas: {{ $v.replicaCount | toJson }}
  logFormat: {{ $v.controller.LOG_FORMAT | quote }}
  gcInterval: {{ $v.controller.GC_INTERVAL | toJson }}
  workers: {{ $v.controller.WORKERS | toJson }}
  metricsPort: {{ $v.controller.METRICS_PORT | toJson }}
  resources: {{ include "kube-ovn.resources" (list $v "kube-ovn-controller") }}
cni:
  socket: {{ $v.cni_conf.CNI_SOCKET | quote }}
  binDir: {{ $v.cni_conf.CNI_BIN_DIR | quote }}
  datapathType: {{ $v.networking.DATAPATH_TYPE | quote }}
  encapType: {{ $v.networking.TUNNEL_TYPE | quote }}
  mtu: {{ $v.networking.MTU | toJson }}
  iface: {{ $v.networking.IFACE | default "" | quote }}
  dpdkTunnelIface: {{ $v.networking.DPDK_TUNNEL_IFACE | default "br-phy" | quote }}
  metricsPort: {{ $v.cni_conf.METRICS_PORT | toJson }}
  resources: {{ include "kube-ovn.resources" (list $v "kube-ovn-cni") }}
ovnCentral:
  resources: {{ include "kube-ovn.resources" (list $v "ovn-central") }}
ovsOvn:
  resources: {{ include "kube-ovn.resources" (list $v "ovs-ovn") }}
{{- end }}

{{- /*
The resources of one component: upstream v1's top-level block (`kube-ovn-controller:`, ...) when
given, over this chart's `resources.<component>`, as helm merges a values file over defaults.
*/ -}}
{{- define "kube-ovn.resources" -}}
{{- $v := index . 0 -}}
{{- $name := index . 1 -}}
{{- $ours := index ($v.resources | default dict) $name | default dict -}}
{{- $upstream := index $v $name | default dict -}}
{{- mergeOverwrite (deepCopy $ours) (deepCopy $upstream) | toJson -}}
{{- end }}

{{- /*
Upstream Kube-OVN's v1 keys a user may bring along (values.schema.json declares them so that
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
{{- $masters := $v.MASTER_NODES | default list -}}
{{- if kindIs "string" $masters }}{{ $masters = splitList "," $masters }}{{ end -}}
{{- if compact $masters -}}
{{- fail (printf "MASTER_NODES=%v lists upstream's OVN central nodes by IP; this chart runs one ovn-central on a node picked by label: label that node and set MASTER_NODES_LABEL (now %q), and leave MASTER_NODES empty." $v.MASTER_NODES $v.MASTER_NODES_LABEL) -}}
{{- end -}}
{{- range $component := list "kube-ovn-pinger" "kube-ovn-monitor" -}}
{{- if hasKey $v $component -}}
{{- fail (printf "%s: this implementation runs no %s (its components are kube-ovn-controller, kube-ovn-cni, ovn-central and ovs-ovn, whose resources are resources.<component> or upstream's top-level <component> blocks). Remove %s." $component $component $component) -}}
{{- end -}}
{{- end -}}
{{- if eq (dig "NETWORK_TYPE" "geneve" $v.networking | toString) "vlan" -}}
{{- fail (printf "networking.NETWORK_TYPE=vlan makes upstream's default pod network a VLAN underlay, which is primary mode and not part of this implementation: attached networks run over the overlay of networking.TUNNEL_TYPE (now %q; geneve or vxlan). Remove NETWORK_TYPE or set it to geneve." $v.networking.TUNNEL_TYPE) -}}
{{- end -}}
{{- if $v.HYBRID_DPDK -}}
{{- fail "HYBRID_DPDK=true runs upstream's DPDK OVS image on nodes labelled ovn.kubernetes.io/ovs_dp_type=userspace; this chart has no DPDK image. For OVS's userspace datapath on every node set networking.DATAPATH_TYPE=netdev (and networking.IFACE, the tunnel NIC); remove HYBRID_DPDK." -}}
{{- end -}}
{{- end }}
