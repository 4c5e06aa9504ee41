{{- /*
The templates both charts render (charts/kube-ovn-v2 and charts/kube-ovn depend on this library
chart). Each chart's own templates/_config.tpl defines "kube-ovn.config", which maps that
chart's values onto one settings dict (the "cfg" below): both charts render these same objects
from it. Their templates/kube-ovn.yaml and NOTES.txt only include "kube-ovn.manifest" and
"kube-ovn.notes".
*/ -}}

{{- define "kube-ovn.image" -}}
{{- $registry := .registry | trimSuffix "/" -}}
{{- if $registry -}}{{ $registry }}/{{ end -}}{{ .repository }}:{{ .tag | default .appVersion }}
{{- end }}

{{- define "kube-ovn.manifest" -}}
{{- $cfg := include "kube-ovn.config" . | fromYaml -}}
{{- if hasKey $cfg "Error" -}}
{{- fail (printf "internal error: the chart's settings are not valid YAML: %s" $cfg.Error) -}}
{{- end -}}
{{- include "kube-ovn.objects" (dict "cfg" $cfg "namespace" .Release.Namespace) }}
{{- if $cfg.multiNetworkPolicyCRD }}
---
{{ .Files.Get "files/multi-networkpolicies.k8s.cni.cncf.io.yaml" }}
{{- end }}
{{- end }}

{{- define "kube-ovn.notes" -}}
Kube-OVN (Rust) is installed in namespace {{ .Release.Namespace }} as an attached (non-primary) CNI.

Check that it runs:
  kubectl -n {{ .Release.Namespace }} get pods -l app.kubernetes.io/part-of=kube-ovn

Multus must be installed: Kube-OVN gives pods extra interfaces (net1, net2, ...) through
NetworkAttachmentDefinitions of type kube-ovn, for example:

  apiVersion: k8s.cni.cncf.io/v1
  kind: NetworkAttachmentDefinition
  metadata:
    name: kube-ovn-vpc-network
    namespace: default
  spec:
    config: |
      {
        "cniVersion": "0.3.1",
        "type": "kube-ovn",
        "server_socket": "{{ (include "kube-ovn.config" . | fromYaml).cni.socket }}",
        "provider": "kube-ovn-vpc-network.default.ovn"
      }

then a Vpc and a Subnet whose spec.provider is that provider, and pods annotated with
k8s.v1.cni.cncf.io/networks: default/kube-ovn-vpc-network
{{- end }}

{{- define "kube-ovn.labels" -}}
app.kubernetes.io/part-of: kube-ovn
app.kubernetes.io/managed-by: Helm
{{- end }}

{{- /*
Least privilege (docs/SECURITY.md has the measurements behind each line).
The user of the non-root pods: nobody (65534), as the controller image's USER.
*/ -}}
{{- define "kube-ovn.nonRootId" -}}65534{{- end }}

{{- define "kube-ovn.nonRootPod" -}}
runAsNonRoot: true
runAsUser: {{ include "kube-ovn.nonRootId" . }}
runAsGroup: {{ include "kube-ovn.nonRootId" . }}
# Secret volumes (the TLS keys, mode 0400) are given to this group (0440): readable by the
# pod's user, no one else.
fsGroup: {{ include "kube-ovn.nonRootId" . }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "kube-ovn.nonRootContainer" -}}
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
{{- end }}

{{- /*
ovs-ovn (ovsdb-server, ovs-vswitchd, ovn-controller), as root (it owns the host's
/etc/origin/openvswitch and /run/openvswitch, which the daemon and the CNI plugin share as
root), with only:
- NET_ADMIN: ovs-vswitchd creates and configures br-int, br-phy and their internal ports
  (netlink, ioctls: MTU, flags, promiscuous mode), ovn-controller flushes conntrack zones;
- NET_RAW: the userspace datapath reads and writes every port through AF_PACKET sockets;
- SYS_MODULE, with the kernel datapath only: start-ovs.sh loads the openvswitch module
  (modprobe, the host's /lib/modules).
Measured (userspace datapath): ovs-vswitchd with exactly NET_ADMIN + NET_RAW (setpriv
--bounding-set) builds a netdev bridge with a veth and an internal port and forwards a ping
through them; its only complaint is NETLINK_LISTEN_ALL_NSID (CAP_NET_BROADCAST, for ports in
other namespaces, which we never make), logged at INFO. The real-node tests run the chart so.
*/ -}}
{{- define "kube-ovn.ovsSecurityContext" -}}
runAsUser: 0
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
  add:
  - NET_ADMIN
  - NET_RAW
  {{- if eq .cni.datapathType "system" }}
  - SYS_MODULE
  {{- end }}
{{- end }}

{{- /*
kube-ovn-daemon (cni-server), as root (the host's /run/openvswitch and CNI bin dir), with only:
- NET_ADMIN: veth pairs, moving one into the pod's netns, addresses, routes, MTU (rtnetlink),
  tx checksum offload off (the SIOCETHTOOL ioctl);
- NET_RAW: the gratuitous ARP after ADD (an AF_PACKET socket);
- SYS_ADMIN: setns(2) into the pod's network namespace (the kernel asks CAP_SYS_ADMIN for
  entering a namespace; the runtime's seccomp profile allows setns only with it).
The same in every mode: with the userspace datapath and agent.interface (the tunnel NIC moved
onto br-phy) the NIC's arp_ignore is set over rtnetlink (IFLA_INET_CONF, NET_ADMIN), not by
writing the read-only /proc/sys (daemon/src/devconf.rs), so no mode needs privileged.
*/ -}}
{{- define "kube-ovn.cniSecurityContext" -}}
runAsUser: 0
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
  add:
  - NET_ADMIN
  - NET_RAW
  - SYS_ADMIN
{{- end }}

{{- define "kube-ovn.validate" -}}
{{- $cfg := . -}}
{{- if not (kindIs "bool" $cfg.nonPrimaryCNI) -}}
{{- fail (printf "%s must be true or false, not %v" $cfg.names.nonPrimaryCNI $cfg.nonPrimaryCNI) -}}
{{- end -}}
{{- if not $cfg.nonPrimaryCNI -}}
{{- fail (printf "%s=false asks for primary CNI mode, which is not part of this Kube-OVN (Rust) implementation: it runs only as an attached CNI beside the cluster's primary CNI (Cilium, Calico, Flannel, ...), with Multus. Install with --set %s=true." $cfg.names.nonPrimaryCNI $cfg.names.nonPrimaryCNI) -}}
{{- end -}}
{{- if not (isAbs $cfg.cni.socket) -}}
{{- fail (printf "%s must be an absolute path (it is the NAD's server_socket), not %q" $cfg.names.socket $cfg.cni.socket) -}}
{{- end -}}
{{- if not (isAbs $cfg.cni.binDir) -}}
{{- fail (printf "%s must be an absolute path on the nodes, not %q" $cfg.names.binDir $cfg.cni.binDir) -}}
{{- end -}}
{{- if not (has $cfg.cni.datapathType (list "system" "netdev")) -}}
{{- fail (printf "%s must be system (kernel datapath) or netdev (userspace), not %q" $cfg.names.datapathType $cfg.cni.datapathType) -}}
{{- end -}}
{{- if not (has $cfg.cni.encapType (list "geneve" "vxlan")) -}}
{{- fail (printf "%s must be geneve or vxlan, not %q" $cfg.names.encapType $cfg.cni.encapType) -}}
{{- end -}}
{{- $mtu := int $cfg.cni.mtu -}}
{{- if or (lt $mtu 68) (gt $mtu 65535) -}}
{{- fail (printf "%s must be between 68 and 65535, not %v" $cfg.names.mtu $cfg.cni.mtu) -}}
{{- end -}}
{{- if not (has $cfg.controller.logFormat (list "text" "json")) -}}
{{- fail (printf "%s must be text or json, not %q" $cfg.names.logFormat $cfg.controller.logFormat) -}}
{{- end -}}
{{- if not (kindIs "bool" $cfg.ssl.enabled) -}}
{{- fail (printf "%s must be true or false, not %v" $cfg.names.enableSsl $cfg.ssl.enabled) -}}
{{- end -}}
{{- if and $cfg.ssl.secret (not (regexMatch "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$" $cfg.ssl.secret)) -}}
{{- fail (printf "%s must name a Secret (lowercase letters, digits, '-' and '.'), not %q" $cfg.names.sslSecret $cfg.ssl.secret) -}}
{{- end -}}
{{- if lt (int $cfg.controller.replicas) 1 -}}
{{- fail (printf "%s must be at least 1, not %v" $cfg.names.replicas $cfg.controller.replicas) -}}
{{- end -}}
{{- end }}

{{- /*
TLS between the OVN databases and their clients (networking.enableSsl / ENABLE_SSL). Every
component mounts its Secret at /var/run/tls (files cacert, cert, key: upstream's layout):
  ovn-central-tls         NB and SB (pssl:) and ovn-northd
  ovs-ovn-tls             ovn-controller on every node (ssl: to SB)
  kube-ovn-controller-tls kube-ovn-controller (ssl: to NB)
or every one the user's Secret (sslSecret / SSL_SECRET). One certificate per component: a
node's key (on every node) is not the central's or the controller's. The clients check the
chain to this install's CA (as OVN's own do, not a name: the CA signs nothing else).
*/ -}}
{{- define "kube-ovn.tlsSecretName" -}}
{{- if .cfg.ssl.secret }}{{ .cfg.ssl.secret }}{{ else }}{{ .component }}-tls{{ end -}}
{{- end }}

{{- define "kube-ovn.tlsVolume" -}}
- name: ovn-tls
  secret:
    secretName: {{ include "kube-ovn.tlsSecretName" . }}
    # 0400 (decimal: YAML 1.1 and 1.2 readers agree).
    defaultMode: 256
{{- end }}

{{- define "kube-ovn.tlsMount" -}}
- name: ovn-tls
  mountPath: /var/run/tls
  readOnly: true
{{- end }}

{{- /*
The chart's CA and certificates, made at install and kept on upgrade: lookup finds the
Secrets (`helm template` has no cluster, so it makes new ones each time). kube-ovn-ovn-ca
keeps the CA's key so that a component Secret deleted by the operator (to renew it) is
signed again by the same CA; no pod mounts it and no service account of ours reads Secrets.
*/ -}}
{{- define "kube-ovn.tlsSecrets" -}}
{{- $ns := .namespace -}}
{{- $caSecret := lookup "v1" "Secret" $ns "kube-ovn-ovn-ca" -}}
{{- $ca := dict -}}
{{- if and $caSecret $caSecret.data (hasKey $caSecret.data "cacert") (hasKey $caSecret.data "cakey") -}}
{{- $ca = buildCustomCert (index $caSecret.data "cacert") (index $caSecret.data "cakey") -}}
{{- else -}}
{{- $ca = genCA "kube-ovn-ovn-ca" 3650 -}}
{{- end -}}
{{- $caB64 := $ca.Cert | b64enc }}
---
apiVersion: v1
kind: Secret
metadata:
  name: kube-ovn-ovn-ca
  namespace: {{ $ns }}
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
data:
  cacert: {{ $caB64 }}
  cakey: {{ $ca.Key | b64enc }}
{{- range $component := list "ovn-central" "ovs-ovn" "kube-ovn-controller" }}
{{- $name := printf "%s-tls" $component }}
{{- $old := lookup "v1" "Secret" $ns $name }}
{{- $tls := dict }}
{{- if and $old $old.data (eq (index $old.data "cacert" | default "") $caB64) (hasKey $old.data "cert") (hasKey $old.data "key") }}
{{- $tls = dict "cert" (index $old.data "cert") "key" (index $old.data "key") }}
{{- else }}
{{- $sans := list $component }}
{{- if eq $component "ovn-central" }}
{{- $sans = list "ovn-central" (printf "ovn-nb.%s.svc" $ns) (printf "ovn-sb.%s.svc" $ns) }}
{{- end }}
{{- $cert := genSignedCert $component nil $sans 3650 $ca }}
{{- $tls = dict "cert" ($cert.Cert | b64enc) "key" ($cert.Key | b64enc) }}
{{- end }}
---
apiVersion: v1
kind: Secret
metadata:
  name: {{ $name }}
  namespace: {{ $ns }}
  labels:
    {{- include "kube-ovn.labels" $ | nindent 4 }}
data:
  cacert: {{ $caB64 }}
  cert: {{ $tls.cert }}
  key: {{ $tls.key }}
{{- end }}
{{- end }}

{{- define "kube-ovn.objects" -}}
{{- $cfg := .cfg -}}
{{- $ns := .namespace -}}
{{- include "kube-ovn.validate" $cfg -}}
{{- $socketDir := dir $cfg.cni.socket -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: kube-ovn-controller
  namespace: {{ $ns }}
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: kube-ovn-cni
  namespace: {{ $ns }}
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
---
# OVN central and the per-node Open vSwitch + ovn-controller never call the Kubernetes API.
apiVersion: v1
kind: ServiceAccount
metadata:
  name: kube-ovn-ovn
  namespace: {{ $ns }}
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
automountServiceAccountToken: false
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:kube-ovn-controller
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
{{- /*
RBAC: each rule is what the binary calls (grep controller/src for Api::<T>; the verbs are the
calls': get/get_opt = get, watcher/Controller/reflector = list + watch, patch and server-side
apply = patch (apply creating an object = create too), patch_status = patch on the status
subresource, replace = update). Nothing here may update (PUT) an object but the Lease, delete
anything but IP records and its NAT gateways' StatefulSets, or read Secrets, ConfigMaps or
Nodes. e2e/tests/charts.rs (rbac_is_what_each_binary_calls...) checks both ways with
`kubectl auth can-i` against a real apiserver.
*/}}
rules:
# Attachments: read pods (all namespaces), write the <provider>.kubernetes.io/* annotations.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, patch]
# Namespace selectors of MultiNetworkPolicies.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
# kube::runtime::events::Recorder: events.k8s.io/v1 Events, created then patched as a series.
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
# Every kind is read (get, list, watch); finalizers (kube::runtime::finalizer) and the EIP's
# allocated spec.v4ip are patches; IP records are the only objects it creates and deletes.
- apiGroups: [kubeovn.io]
  resources: [vpcs, subnets, ips, ippools, vpc-nat-gateways, iptables-eips, iptables-fip-rules, iptables-snat-rules, iptables-dnat-rules, security-groups, qos-policies]
  verbs: [get, list, watch]
- apiGroups: [kubeovn.io]
  resources: [vpcs, subnets, ips, ippools, vpc-nat-gateways, iptables-eips, security-groups]
  verbs: [patch]
- apiGroups: [kubeovn.io]
  resources: [ips]
  verbs: [create, delete]
# Status: server-side apply (or a merge patch) of the status subresource, never a read or PUT.
- apiGroups: [kubeovn.io]
  resources: [vpcs/status, subnets/status, ippools/status, vpc-nat-gateways/status, iptables-eips/status, iptables-fip-rules/status, iptables-snat-rules/status, iptables-dnat-rules/status, security-groups/status]
  verbs: [patch]
- apiGroups: [k8s.cni.cncf.io]
  resources: [network-attachment-definitions, multi-networkpolicies]
  verbs: [get, list, watch]
# A StatefulSet pod keeps its addresses while its StatefulSet (any namespace) still wants it:
# read by name. The NAT gateways' StatefulSets, which it writes, are kube-system's only (the
# Role system:kube-ovn-controller-nat-gateways there).
- apiGroups: [apps]
  resources: [statefulsets]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:kube-ovn-controller
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:kube-ovn-controller
subjects:
- kind: ServiceAccount
  name: kube-ovn-controller
  namespace: {{ $ns }}
---
# Leader election (controller/src/leader.rs): one Lease in the release namespace, read,
# created once and renewed by update (a PUT carrying the resourceVersion it read).
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: kube-ovn-controller
  namespace: {{ $ns }}
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
rules:
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: kube-ovn-controller
  namespace: {{ $ns }}
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: kube-ovn-controller
subjects:
- kind: ServiceAccount
  name: kube-ovn-controller
  namespace: {{ $ns }}
---
# Each VpcNatGateway is a StatefulSet in kube-system (controller/src/nat_gateway.rs NAMESPACE,
# upstream's, whatever the release namespace) that the controller applies (server-side apply:
# create + patch), watches (it owns them) and deletes with its gateway.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: system:kube-ovn-controller-nat-gateways
  namespace: kube-system
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
rules:
- apiGroups: [apps]
  resources: [statefulsets]
  verbs: [get, list, watch, create, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: system:kube-ovn-controller-nat-gateways
  namespace: kube-system
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: system:kube-ovn-controller-nat-gateways
subjects:
- kind: ServiceAccount
  name: kube-ovn-controller
  namespace: {{ $ns }}
---
# The VPC NAT gateway pods (kube-ovn-daemon nat-gateway, from the cni image) run as this
# ServiceAccount in kube-system, where the controller creates their StatefulSets (upstream's
# namespace for them, whatever the release namespace). They read their gateway's objects and
# write the status the agent owns (status.ready, status.ip, the Ready condition).
apiVersion: v1
kind: ServiceAccount
metadata:
  name: vpc-nat-gw
  namespace: kube-system
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:vpc-nat-gw
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
# daemon/src/natgw/inputs.rs watches (list + watch, its gateway by a field selector) these
# kinds; daemon/src/natgw/status.rs applies the rules' status. It writes no Events.
rules:
- apiGroups: [kubeovn.io]
  resources: [vpc-nat-gateways, iptables-eips, iptables-fip-rules, iptables-snat-rules, iptables-dnat-rules, subnets, qos-policies]
  verbs: [list, watch]
- apiGroups: [kubeovn.io]
  resources: [iptables-eips/status, iptables-fip-rules/status, iptables-snat-rules/status, iptables-dnat-rules/status]
  verbs: [patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:vpc-nat-gw
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:vpc-nat-gw
subjects:
- kind: ServiceAccount
  name: vpc-nat-gw
  namespace: kube-system
---
# Its own pod (the network-status annotation names its interfaces), watched by name: pods of
# kube-system only, where the gateway pods run.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: vpc-nat-gw
  namespace: kube-system
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: vpc-nat-gw
  namespace: kube-system
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: vpc-nat-gw
subjects:
- kind: ServiceAccount
  name: vpc-nat-gw
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:kube-ovn-cni
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
# daemon/src/pods.rs: CNI ADD waits for the controller's allocation on the pod (a watch by
# name: list + watch) and reads its uid (get); the Subnet gives the MTU (get).
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
- apiGroups: [kubeovn.io]
  resources: [subnets]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:kube-ovn-cni
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:kube-ovn-cni
subjects:
- kind: ServiceAccount
  name: kube-ovn-cni
  namespace: {{ $ns }}
---
# daemon/src/uninstall.rs, at SIGTERM: is our DaemonSet still there (a restart) or gone (an
# uninstall: clean the node)? Its own namespace only.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: kube-ovn-cni
  namespace: {{ $ns }}
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
rules:
- apiGroups: [apps]
  resources: [daemonsets]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: kube-ovn-cni
  namespace: {{ $ns }}
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: kube-ovn-cni
subjects:
- kind: ServiceAccount
  name: kube-ovn-cni
  namespace: {{ $ns }}
---
apiVersion: v1
kind: Service
metadata:
  name: ovn-nb
  namespace: {{ $ns }}
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
spec:
  selector:
    app: ovn-central
  ports:
  - name: ovn-nb
    protocol: TCP
    port: 6641
    targetPort: 6641
---
apiVersion: v1
kind: Service
metadata:
  name: ovn-sb
  namespace: {{ $ns }}
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
spec:
  selector:
    app: ovn-central
  ports:
  - name: ovn-sb
    protocol: TCP
    port: 6642
    targetPort: 6642
---
apiVersion: v1
kind: Service
metadata:
  name: kube-ovn-controller
  namespace: {{ $ns }}
  labels:
    app: kube-ovn-controller
    {{- include "kube-ovn.labels" . | nindent 4 }}
spec:
  selector:
    app: kube-ovn-controller
  ports:
  - name: metrics
    protocol: TCP
    port: {{ int $cfg.controller.metricsPort }}
    targetPort: metrics
---
apiVersion: v1
kind: Service
metadata:
  name: kube-ovn-cni
  namespace: {{ $ns }}
  labels:
    app: kube-ovn-cni
    {{- include "kube-ovn.labels" . | nindent 4 }}
spec:
  selector:
    app: kube-ovn-cni
  ports:
  - name: metrics
    protocol: TCP
    port: {{ int $cfg.cni.metricsPort }}
    targetPort: metrics
{{- if and $cfg.ssl.enabled (not $cfg.ssl.secret) }}
{{ include "kube-ovn.tlsSecrets" . }}
{{- end }}
---
# OVN central: NB and SB ovsdb-servers and ovn-northd, one replica on a control-plane node.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ovn-central
  namespace: {{ $ns }}
  labels:
    app: ovn-central
    {{- include "kube-ovn.labels" . | nindent 4 }}
spec:
  replicas: 1
  # Host network ports 6641/6642: the old pod must be gone before the new one starts.
  strategy:
    type: Recreate
  selector:
    matchLabels:
      app: ovn-central
  template:
    metadata:
      labels:
        app: ovn-central
        component: network
        {{- include "kube-ovn.labels" . | nindent 8 }}
    spec:
      serviceAccountName: kube-ovn-ovn
      automountServiceAccountToken: false
      # No Service variables: central reads none, and kubelet's (OVN_NB_PORT=tcp://...) would
      # only shadow names a script might use.
      enableServiceLinks: false
      hostNetwork: true
      priorityClassName: system-cluster-critical
      # Non-root: ovsdb-server and ovn-northd need no capability at all (ports 6641/6642 are
      # above 1024, no raw sockets, no kernel state); they need only to write their files.
      securityContext:
        {{- include "kube-ovn.nonRootPod" . | nindent 8 }}
      {{- with $cfg.imagePullSecrets }}
      imagePullSecrets:
      {{- range . }}
      - name: {{ . }}
      {{- end }}
      {{- end }}
      nodeSelector:
        kubernetes.io/os: linux
        {{- range $k, $v := $cfg.masterNodeSelector }}
        {{ $k }}: {{ $v | quote }}
        {{- end }}
      tolerations:
      - operator: Exists
        effect: NoSchedule
      - key: CriticalAddonsOnly
        operator: Exists
      # The databases and logs live on host paths, which kubelet creates root-owned 0755 (and
      # fsGroup does not apply to hostPath): this step, the only one as root and with one
      # capability (CHOWN), gives the database dir to the central's user and lets its group
      # write the log dir that ovs-ovn's ovn-controller (root) shares. Its run dir (sockets,
      # pidfiles, control sockets) is an emptyDir: nothing outside the pod uses it.
      initContainers:
      - name: hostpath-init
        image: {{ $cfg.images.ovn }}
        imagePullPolicy: {{ $cfg.pullPolicy }}
        command:
        - /bin/sh
        - -c
        - >-
          chown -R {{ include "kube-ovn.nonRootId" . }}:{{ include "kube-ovn.nonRootId" . }} /etc/ovn &&
          chgrp {{ include "kube-ovn.nonRootId" . }} /var/log/ovn && chmod 0775 /var/log/ovn &&
          for f in ovsdb-server-nb.log ovsdb-server-sb.log ovn-northd.log; do
          if [ -e /var/log/ovn/$f ]; then chown {{ include "kube-ovn.nonRootId" . }}:{{ include "kube-ovn.nonRootId" . }} /var/log/ovn/$f; fi; done
        securityContext:
          runAsUser: 0
          runAsNonRoot: false
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities:
            drop: [ALL]
            add: [CHOWN]
        volumeMounts:
        - name: host-config-ovn
          mountPath: /etc/ovn
        - name: host-log-ovn
          mountPath: /var/log/ovn
      containers:
      - name: ovn-central
        image: {{ $cfg.images.ovn }}
        imagePullPolicy: {{ $cfg.pullPolicy }}
        command: [/kube-ovn/start-ovn-central.sh]
        env:
        # true: NB and SB listen with pssl: (the certificate of /var/run/tls), plain TCP not.
        - name: ENABLE_SSL
          value: {{ $cfg.ssl.enabled | quote }}
        securityContext:
          {{- include "kube-ovn.nonRootContainer" . | nindent 10 }}
          # Databases, sockets and logs are all on the volumes below.
          readOnlyRootFilesystem: true
        ports:
        - name: ovn-nb
          containerPort: 6641
        - name: ovn-sb
          containerPort: 6642
        readinessProbe:
          exec:
            command: [/kube-ovn/ovn-healthcheck.sh, central]
          periodSeconds: 10
          timeoutSeconds: 10
        livenessProbe:
          exec:
            command: [/kube-ovn/ovn-healthcheck.sh, central]
          initialDelaySeconds: 30
          periodSeconds: 10
          timeoutSeconds: 10
          failureThreshold: 5
        {{- with $cfg.ovnCentral.resources }}
        resources:
          {{- toYaml . | nindent 10 }}
        {{- end }}
        volumeMounts:
        - name: run-ovn
          mountPath: /var/run/ovn
        - name: host-config-ovn
          mountPath: /etc/ovn
        - name: host-log-ovn
          mountPath: /var/log/ovn
        # ovsdb-server makes temporary files at start (the root file system is read-only:
        # "failed to create temporary file (Read-only file system)" without this).
        - name: tmp
          mountPath: /tmp
        {{- if $cfg.ssl.enabled }}
        {{- include "kube-ovn.tlsMount" . | nindent 8 }}
        {{- end }}
      volumes:
      - name: run-ovn
        emptyDir: {}
      - name: tmp
        emptyDir: {}
      {{- if $cfg.ssl.enabled }}
      {{- include "kube-ovn.tlsVolume" (dict "cfg" $cfg "component" "ovn-central") | nindent 6 }}
      {{- end }}
      - name: host-config-ovn
        hostPath:
          path: /etc/origin/ovn
          type: DirectoryOrCreate
      - name: host-log-ovn
        hostPath:
          path: /var/log/ovn
          type: DirectoryOrCreate
---
# Every node: ovsdb-server, ovs-vswitchd and ovn-controller. kube-ovn-daemon sets the
# Open_vSwitch external_ids (system-id, ovn-remote, ovn-encap-*) that ovn-controller reads.
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: ovs-ovn
  namespace: {{ $ns }}
  labels:
    app: ovs
    {{- include "kube-ovn.labels" . | nindent 4 }}
spec:
  selector:
    matchLabels:
      app: ovs
  # OnDelete: an upgrade does not restart the datapath. ovs-vswitchd forwards every pod's
  # traffic on its node; a restart cuts it (for seconds with the kernel datapath, until the
  # new process is up with the userspace one). A new ovs-ovn pod starts on a node only when
  # the operator deletes the old one, node by node, when it suits (docs/INSTALL.md, Upgrade).
  updateStrategy:
    type: OnDelete
  template:
    metadata:
      labels:
        app: ovs
        component: network
        {{- include "kube-ovn.labels" . | nindent 8 }}
    spec:
      serviceAccountName: kube-ovn-ovn
      automountServiceAccountToken: false
      hostNetwork: true
      # No hostPID: Open vSwitch and ovn-controller never look at another process (their
      # pidfiles and control sockets are read inside this pod: probes, kubectl ko).
      priorityClassName: system-node-critical
      securityContext:
        seccompProfile:
          type: RuntimeDefault
      {{- with $cfg.imagePullSecrets }}
      imagePullSecrets:
      {{- range . }}
      - name: {{ . }}
      {{- end }}
      {{- end }}
      nodeSelector:
        kubernetes.io/os: linux
      tolerations:
      - operator: Exists
      containers:
      - name: openvswitch
        image: {{ $cfg.images.ovn }}
        imagePullPolicy: {{ $cfg.pullPolicy }}
        command: [/kube-ovn/start-ovs.sh]
        securityContext:
          {{- include "kube-ovn.ovsSecurityContext" $cfg | nindent 10 }}
        env:
        - name: OVS_DATAPATH_TYPE
          value: {{ $cfg.cni.datapathType | quote }}
        # true: ovn-controller connects to SB (the ssl: remote kube-ovn-daemon sets) with the
        # certificate of /var/run/tls.
        - name: ENABLE_SSL
          value: {{ $cfg.ssl.enabled | quote }}
        readinessProbe:
          exec:
            command: [/kube-ovn/ovn-healthcheck.sh, ovs]
          periodSeconds: 10
          timeoutSeconds: 10
        livenessProbe:
          exec:
            command: [/kube-ovn/ovn-healthcheck.sh, ovs]
          initialDelaySeconds: 30
          periodSeconds: 10
          timeoutSeconds: 10
          failureThreshold: 5
        {{- with $cfg.ovsOvn.resources }}
        resources:
          {{- toYaml . | nindent 10 }}
        {{- end }}
        volumeMounts:
        {{- if eq $cfg.cni.datapathType "system" }}
        # modprobe openvswitch (the kernel datapath only).
        - name: host-modules
          mountPath: /lib/modules
          readOnly: true
        {{- end }}
        - name: host-run-ovs
          mountPath: /var/run/openvswitch
        - name: host-run-ovn
          mountPath: /var/run/ovn
        - name: host-config-openvswitch
          mountPath: /etc/openvswitch
        - name: host-log-ovs
          mountPath: /var/log/openvswitch
        - name: host-log-ovn
          mountPath: /var/log/ovn
        {{- if eq $cfg.cni.datapathType "netdev" }}
        # The userspace datapath's internal ports (br-int, br-phy) are tap devices: a
        # container that is not privileged has no /dev/net/tun of its own (measured: "opening
        # /dev/net/tun failed: No such file or directory", no bridge, no port ever
        # ovn-installed); the runtime's default device rules allow the tun device (c 10:200).
        - name: host-dev-tun
          mountPath: /dev/net/tun
        {{- end }}
        # ovsdb-server's temporary files (read-only root file system).
        - name: tmp
          mountPath: /tmp
        {{- if $cfg.ssl.enabled }}
        {{- include "kube-ovn.tlsMount" . | nindent 8 }}
        {{- end }}
      volumes:
      - name: tmp
        emptyDir: {}
      {{- if $cfg.ssl.enabled }}
      {{- include "kube-ovn.tlsVolume" (dict "cfg" $cfg "component" "ovs-ovn") | nindent 6 }}
      {{- end }}
      {{- if eq $cfg.cni.datapathType "system" }}
      - name: host-modules
        hostPath:
          path: /lib/modules
      {{- end }}
      {{- if eq $cfg.cni.datapathType "netdev" }}
      - name: host-dev-tun
        hostPath:
          path: /dev/net/tun
          type: CharDevice
      {{- end }}
      - name: host-run-ovs
        hostPath:
          path: /run/openvswitch
          type: DirectoryOrCreate
      - name: host-run-ovn
        hostPath:
          path: /run/ovn
          type: DirectoryOrCreate
      - name: host-config-openvswitch
        hostPath:
          path: /etc/origin/openvswitch
          type: DirectoryOrCreate
      - name: host-log-ovs
        hostPath:
          path: /var/log/openvswitch
          type: DirectoryOrCreate
      - name: host-log-ovn
        hostPath:
          path: /var/log/ovn
          type: DirectoryOrCreate
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: kube-ovn-controller
  namespace: {{ $ns }}
  labels:
    app: kube-ovn-controller
    {{- include "kube-ovn.labels" . | nindent 4 }}
spec:
  replicas: {{ int $cfg.controller.replicas }}
  selector:
    matchLabels:
      app: kube-ovn-controller
  template:
    metadata:
      labels:
        app: kube-ovn-controller
        component: network
        {{- include "kube-ovn.labels" . | nindent 8 }}
    spec:
      serviceAccountName: kube-ovn-controller
      priorityClassName: system-cluster-critical
      # Only the Kubernetes API, OVN NB over TCP and its own two listeners (ports above 1024):
      # no capability, no writes outside memory.
      securityContext:
        {{- include "kube-ovn.nonRootPod" . | nindent 8 }}
      {{- with $cfg.imagePullSecrets }}
      imagePullSecrets:
      {{- range . }}
      - name: {{ . }}
      {{- end }}
      {{- end }}
      nodeSelector:
        kubernetes.io/os: linux
      tolerations:
      - operator: Exists
        effect: NoSchedule
      - key: CriticalAddonsOnly
        operator: Exists
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm:
              topologyKey: kubernetes.io/hostname
              labelSelector:
                matchLabels:
                  app: kube-ovn-controller
      containers:
      - name: kube-ovn-controller
        image: {{ $cfg.images.controller }}
        imagePullPolicy: {{ $cfg.pullPolicy }}
        command: [/kube-ovn/kube-ovn-controller]
        args:
        # The Service's address as kubelet passes it (the ovn-nb Service is created first).
        {{- if $cfg.ssl.enabled }}
        - --ovn-nb-addr=ssl:[$(OVN_NB_SERVICE_HOST)]:$(OVN_NB_SERVICE_PORT)
        - --ovn-ssl-ca-cert=/var/run/tls/cacert
        - --ovn-ssl-cert=/var/run/tls/cert
        - --ovn-ssl-key=/var/run/tls/key
        {{- else }}
        - --ovn-nb-addr=tcp:[$(OVN_NB_SERVICE_HOST)]:$(OVN_NB_SERVICE_PORT)
        {{- end }}
        - --non-primary-cni-mode=true
        - --leader-elect=true
        - --leader-elect-namespace=$(POD_NAMESPACE)
        # The pod's own address (downward API; brackets take both families), not 0.0.0.0.
        - --metrics-addr=[$(POD_IP)]:{{ int $cfg.controller.metricsPort }}
        - --log-format={{ $cfg.controller.logFormat }}
        - --gc-interval={{ int $cfg.controller.gcInterval }}
        - --workers={{ int $cfg.controller.workers }}
        - --webhook-addr=[$(POD_IP)]:8443
        - --webhook-cert-dir=/etc/kube-ovn/webhook
        # VPC NAT gateway pods run the agent in the daemon binary of the cni image (no
        # fourth image).
        - --nat-gateway-image={{ $cfg.images.cni }}
        env:
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        - name: POD_IP
          valueFrom:
            fieldRef:
              fieldPath: status.podIP
        - name: RUST_LOG
          value: {{ $cfg.logLevel | quote }}
        securityContext:
          {{- include "kube-ovn.nonRootContainer" . | nindent 10 }}
          readOnlyRootFilesystem: true
        ports:
        - name: metrics
          containerPort: {{ int $cfg.controller.metricsPort }}
        - name: webhook
          containerPort: 8443
        readinessProbe:
          httpGet:
            path: /readyz
            port: metrics
          periodSeconds: 10
          timeoutSeconds: 5
        livenessProbe:
          httpGet:
            path: /healthz
            port: metrics
          initialDelaySeconds: 10
          periodSeconds: 10
          timeoutSeconds: 5
        volumeMounts:
        - name: webhook-tls
          mountPath: /etc/kube-ovn/webhook
          readOnly: true
        {{- if $cfg.ssl.enabled }}
        {{- include "kube-ovn.tlsMount" . | nindent 8 }}
        {{- end }}
        {{- with $cfg.controller.resources }}
        resources:
          {{- toYaml . | nindent 10 }}
        {{- end }}
      volumes:
      - name: webhook-tls
        secret:
          secretName: kube-ovn-webhook-tls
      {{- if $cfg.ssl.enabled }}
      {{- include "kube-ovn.tlsVolume" (dict "cfg" $cfg "component" "kube-ovn-controller") | nindent 6 }}
      {{- end }}
{{- /*
The pods' admission webhook (the controller's /mutate-pods). The manual names NADs in JSON
networks elements as "namespace/name", which Multus refuses ("may not contain '/'"); the
webhook rewrites such elements to Multus' form at pod creation. failurePolicy Ignore: a
controller that is down never blocks a pod. Its certificate is made at install and kept on
upgrade (lookup finds the Secret; `helm template` always makes a new one).
*/}}
{{- $svc := printf "kube-ovn-webhook.%s.svc" $ns }}
{{- $tls := dict }}
{{- $existing := lookup "v1" "Secret" $ns "kube-ovn-webhook-tls" }}
{{- if and $existing $existing.data (hasKey $existing.data "ca.crt") (hasKey $existing.data "tls.crt") (hasKey $existing.data "tls.key") }}
{{- $tls = dict "ca" (index $existing.data "ca.crt") "crt" (index $existing.data "tls.crt") "key" (index $existing.data "tls.key") }}
{{- else }}
{{- $ca := genCA "kube-ovn-webhook-ca" 3650 }}
{{- $cert := genSignedCert $svc nil (list $svc (printf "kube-ovn-webhook.%s" $ns) "kube-ovn-webhook") 3650 $ca }}
{{- $tls = dict "ca" ($ca.Cert | b64enc) "crt" ($cert.Cert | b64enc) "key" ($cert.Key | b64enc) }}
{{- end }}
---
apiVersion: v1
kind: Secret
metadata:
  name: kube-ovn-webhook-tls
  namespace: {{ $ns }}
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
type: kubernetes.io/tls
data:
  ca.crt: {{ $tls.ca }}
  tls.crt: {{ $tls.crt }}
  tls.key: {{ $tls.key }}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-ovn-webhook
  namespace: {{ $ns }}
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
spec:
  selector:
    app: kube-ovn-controller
  ports:
  - name: webhook
    port: 443
    targetPort: webhook
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: kube-ovn-webhook
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
webhooks:
- name: pod-networks.kube-ovn.io
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Ignore
  timeoutSeconds: 5
  reinvocationPolicy: Never
  clientConfig:
    service:
      name: kube-ovn-webhook
      namespace: {{ $ns }}
      path: /mutate-pods
      port: 443
    caBundle: {{ $tls.ca }}
  rules:
  - apiGroups: [""]
    apiVersions: [v1]
    operations: [CREATE]
    resources: [pods]
    scope: Namespaced
---
# Every node: kube-ovn-daemon (the CNI server), and the `kube-ovn` CNI plugin installed into
# the host's CNI bin dir, where Multus finds it. No conflist is written: Multus reads NADs.
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-ovn-cni
  namespace: {{ $ns }}
  labels:
    app: kube-ovn-cni
    {{- include "kube-ovn.labels" . | nindent 4 }}
spec:
  selector:
    matchLabels:
      app: kube-ovn-cni
  updateStrategy:
    type: RollingUpdate
  template:
    metadata:
      labels:
        app: kube-ovn-cni
        component: network
        {{- include "kube-ovn.labels" . | nindent 8 }}
    spec:
      serviceAccountName: kube-ovn-cni
      hostNetwork: true
      # hostPID: a runtime may name the pod's network namespace /proc/<pid>/ns/net (not a
      # pinned /var/run/netns path as containerd and CRI-O do); the daemon opens that path.
      hostPID: true
      priorityClassName: system-node-critical
      securityContext:
        seccompProfile:
          type: RuntimeDefault
      {{- with $cfg.imagePullSecrets }}
      imagePullSecrets:
      {{- range . }}
      - name: {{ . }}
      {{- end }}
      {{- end }}
      nodeSelector:
        kubernetes.io/os: linux
      tolerations:
      - operator: Exists
      initContainers:
      - name: install-cni
        image: {{ $cfg.images.cni }}
        imagePullPolicy: {{ $cfg.pullPolicy }}
        command: [/kube-ovn/install-cni.sh, /opt/cni/bin]
        # Root only to write the host's root-owned CNI bin dir (as its owner: no capability).
        securityContext:
          runAsUser: 0
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities:
            drop: [ALL]
        volumeMounts:
        - name: cni-bin
          mountPath: /opt/cni/bin
      containers:
      - name: cni-server
        image: {{ $cfg.images.cni }}
        imagePullPolicy: {{ $cfg.pullPolicy }}
        command: [/kube-ovn/kube-ovn-daemon]
        args:
        - --bind-socket={{ $cfg.cni.socket }}
        - --ovs-db=unix:/run/openvswitch/db.sock
        # ovn-controller runs in the host's network namespace: the Service's cluster IP, as
        # kubelet passes it, reaches OVN SB through kube-proxy (ssl: with enableSsl; the
        # certificate is ovs-ovn's, ovn-controller's own).
        - --ovn-remote={{ if $cfg.ssl.enabled }}ssl{{ else }}tcp{{ end }}:[$(OVN_SB_SERVICE_HOST)]:$(OVN_SB_SERVICE_PORT)
        - --encap-type={{ $cfg.cni.encapType }}
        - --datapath-type={{ $cfg.cni.datapathType }}
        - --mtu={{ int $cfg.cni.mtu }}
        {{- with $cfg.cni.iface }}
        - --iface={{ . }}
        - --dpdk-tunnel-iface={{ $cfg.cni.dpdkTunnelIface }}
        {{- end }}
        # The node's address (downward API), not 0.0.0.0 on the host network.
        - --metrics-addr=[$(HOST_IP)]:{{ int $cfg.cni.metricsPort }}
        # On uninstall (the DaemonSet gone at SIGTERM) the plugin leaves the node with us.
        - --owner-daemonset={{ $ns }}/kube-ovn-cni
        - --cni-bin-dir=/opt/cni/bin
        env:
        - name: NODE_NAME
          valueFrom:
            fieldRef:
              fieldPath: spec.nodeName
        - name: HOST_IP
          valueFrom:
            fieldRef:
              fieldPath: status.hostIP
        {{- if not $cfg.cni.iface }}
        - name: ENCAP_IP
          valueFrom:
            fieldRef:
              fieldPath: status.hostIP
        {{- end }}
        - name: RUST_LOG
          value: {{ $cfg.logLevel | quote }}
        securityContext:
          {{- include "kube-ovn.cniSecurityContext" $cfg | nindent 10 }}
        ports:
        - name: metrics
          containerPort: {{ int $cfg.cni.metricsPort }}
        # The daemon serves its socket once OVS (the ovs-ovn pod, started beside it) is up. The
        # startup probe waits for the socket inside one run instead of failing every 5 s until
        # then: a node coming up emits no Unhealthy warning for what is only a start.
        startupProbe:
          exec:
            command:
            - /bin/sh
            - -c
            - {{ printf "i=0; until test -S %s; do i=$((i+1)); [ $i -ge 50 ] && exit 1; sleep 0.5; done" $cfg.cni.socket | quote }}
          periodSeconds: 5
          timeoutSeconds: 30
          failureThreshold: 20
        # /readyz and /healthz: a session to the node's Open vSwitch database and br-int in it
        # (the daemon puts a lost bridge back within seconds; a restart is the last resort).
        readinessProbe:
          httpGet:
            path: /readyz
            port: metrics
          periodSeconds: 5
          timeoutSeconds: 5
        livenessProbe:
          httpGet:
            path: /healthz
            port: metrics
          periodSeconds: 10
          timeoutSeconds: 5
          failureThreshold: 3
        {{- with $cfg.cni.resources }}
        resources:
          {{- toYaml . | nindent 10 }}
        {{- end }}
        volumeMounts:
        - name: cni-bin
          mountPath: /opt/cni/bin
        - name: host-run-ovs
          mountPath: /run/openvswitch
        {{- if ne $socketDir "/run/openvswitch" }}
        - name: host-socket-dir
          mountPath: {{ $socketDir }}
        {{- end }}
        # Pod network namespaces that the runtime creates after the daemon started.
        - name: host-netns
          mountPath: /var/run/netns
          mountPropagation: HostToContainer
      volumes:
      - name: cni-bin
        hostPath:
          path: {{ $cfg.cni.binDir }}
          type: DirectoryOrCreate
      - name: host-run-ovs
        hostPath:
          path: /run/openvswitch
          type: DirectoryOrCreate
      {{- if ne $socketDir "/run/openvswitch" }}
      - name: host-socket-dir
        hostPath:
          path: {{ $socketDir }}
          type: DirectoryOrCreate
      {{- end }}
      - name: host-netns
        hostPath:
          path: /var/run/netns
          type: DirectoryOrCreate
{{- /*
`helm upgrade`: helm installs the CRDs of crds/ on install only and never updates them. This
pre-upgrade hook runs the new controller image once with --apply-crds: its own CRDs (the files
of crds/, generated from the same types) by server-side apply, waiting until each is
established, before the new workloads roll. Its account may create CRDs (create cannot be
limited to names) and read and patch only ours; it exists only while the hook runs.
*/}}
{{- $crdNames := list "vpcs.kubeovn.io" "subnets.kubeovn.io" "ips.kubeovn.io" "ippools.kubeovn.io" "vpc-nat-gateways.kubeovn.io" "iptables-eips.kubeovn.io" "iptables-fip-rules.kubeovn.io" "iptables-snat-rules.kubeovn.io" "iptables-dnat-rules.kubeovn.io" "security-groups.kubeovn.io" "qos-policies.kubeovn.io" }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: kube-ovn-crds
  namespace: {{ $ns }}
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
  annotations:
    helm.sh/hook: pre-upgrade
    helm.sh/hook-weight: "-5"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:kube-ovn-crds
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
  annotations:
    helm.sh/hook: pre-upgrade
    helm.sh/hook-weight: "-5"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
rules:
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  resourceNames:
  {{- range $crdNames }}
  - {{ . }}
  {{- end }}
  verbs: [get, list, watch, patch]
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:kube-ovn-crds
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
  annotations:
    helm.sh/hook: pre-upgrade
    helm.sh/hook-weight: "-5"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:kube-ovn-crds
subjects:
- kind: ServiceAccount
  name: kube-ovn-crds
  namespace: {{ $ns }}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: kube-ovn-crds
  namespace: {{ $ns }}
  labels:
    app: kube-ovn-crds
    {{- include "kube-ovn.labels" . | nindent 4 }}
  annotations:
    helm.sh/hook: pre-upgrade
    helm.sh/hook-weight: "0"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  backoffLimit: 3
  activeDeadlineSeconds: 240
  template:
    metadata:
      labels:
        app: kube-ovn-crds
        {{- include "kube-ovn.labels" . | nindent 8 }}
    spec:
      serviceAccountName: kube-ovn-crds
      restartPolicy: Never
      securityContext:
        {{- include "kube-ovn.nonRootPod" . | nindent 8 }}
      {{- with $cfg.imagePullSecrets }}
      imagePullSecrets:
      {{- range . }}
      - name: {{ . }}
      {{- end }}
      {{- end }}
      nodeSelector:
        kubernetes.io/os: linux
      tolerations:
      - operator: Exists
        effect: NoSchedule
      - key: CriticalAddonsOnly
        operator: Exists
      containers:
      - name: apply-crds
        image: {{ $cfg.images.controller }}
        imagePullPolicy: {{ $cfg.pullPolicy }}
        command: [/kube-ovn/kube-ovn-controller, --apply-crds]
        env:
        - name: RUST_LOG
          value: {{ $cfg.logLevel | quote }}
        securityContext:
          {{- include "kube-ovn.nonRootContainer" . | nindent 10 }}
          readOnlyRootFilesystem: true
{{- /*
`helm uninstall`: once the controller is gone nothing would remove our finalizers, and deleting a
Subnet, a Vpc, an IP (or the CRDs) would hang. This post-delete hook runs the controller binary
once with --remove-finalizers (only `kubeovn.io/` ones; other finalizers stay). Its account and
rights exist only while it runs.
*/}}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: kube-ovn-uninstall
  namespace: {{ $ns }}
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
  annotations:
    helm.sh/hook: post-delete
    helm.sh/hook-weight: "-5"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:kube-ovn-uninstall
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
  annotations:
    helm.sh/hook: post-delete
    helm.sh/hook-weight: "-5"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
rules:
- apiGroups: [kubeovn.io]
  resources: [ips, subnets, vpcs, ippools, security-groups, vpc-nat-gateways, iptables-eips]
  verbs: [get, list, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:kube-ovn-uninstall
  labels:
    {{- include "kube-ovn.labels" . | nindent 4 }}
  annotations:
    helm.sh/hook: post-delete
    helm.sh/hook-weight: "-5"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:kube-ovn-uninstall
subjects:
- kind: ServiceAccount
  name: kube-ovn-uninstall
  namespace: {{ $ns }}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: kube-ovn-uninstall
  namespace: {{ $ns }}
  labels:
    app: kube-ovn-uninstall
    {{- include "kube-ovn.labels" . | nindent 4 }}
  annotations:
    helm.sh/hook: post-delete
    helm.sh/hook-weight: "0"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  backoffLimit: 3
  activeDeadlineSeconds: 240
  template:
    metadata:
      labels:
        app: kube-ovn-uninstall
        {{- include "kube-ovn.labels" . | nindent 8 }}
    spec:
      serviceAccountName: kube-ovn-uninstall
      restartPolicy: Never
      securityContext:
        {{- include "kube-ovn.nonRootPod" . | nindent 8 }}
      {{- with $cfg.imagePullSecrets }}
      imagePullSecrets:
      {{- range . }}
      - name: {{ . }}
      {{- end }}
      {{- end }}
      nodeSelector:
        kubernetes.io/os: linux
      tolerations:
      - operator: Exists
        effect: NoSchedule
      - key: CriticalAddonsOnly
        operator: Exists
      containers:
      - name: remove-finalizers
        image: {{ $cfg.images.controller }}
        imagePullPolicy: {{ $cfg.pullPolicy }}
        command: [/kube-ovn/kube-ovn-controller, --remove-finalizers]
        env:
        - name: RUST_LOG
          value: {{ $cfg.logLevel | quote }}
        securityContext:
          {{- include "kube-ovn.nonRootContainer" . | nindent 10 }}
          readOnlyRootFilesystem: true
{{- end }}
