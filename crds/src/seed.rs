//! The user manual's YAML (`shared/seed/000_6fabcdef3dc2956b.txt`), snippet by snippet, with
//! the indentation of the original page (the stored text lost it) and nothing else changed.
//! Everything that must accept the manual's objects tests against these: the CRD and parser
//! tests here, the seed scenario and `cargo xtask demo`.

/// The NetworkAttachmentDefinition `kube-ovn-vpc-network` (配置, step 1).
pub const NAD: &str = r#"apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: kube-ovn-vpc-network
  namespace: default
spec:
  config: |
    {
      "cniVersion": "0.3.1",
      "type": "kube-ovn",
      "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
      "provider": "kube-ovn-vpc-network.default.ovn"
    }
"#;

/// The Vpc `vpc-secondary` and the Subnet `subnet-secondary` (配置, step 2).
pub const VPC_AND_SUBNET: &str = r#"apiVersion: kubeovn.io/v1
kind: Vpc
metadata:
  name: vpc-secondary
spec:
  namespaces:
  - default
---
apiVersion: kubeovn.io/v1
kind: Subnet
metadata:
  name: subnet-secondary
spec:
  vpc: vpc-secondary
  cidr: "10.100.0.0/16"
  gateway: "10.100.0.1"
  provider: kube-ovn-vpc-network.default.ovn
"#;

/// The pod `multi-network-pod` with the networks annotation (配置, step 3).
pub const POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: multi-network-pod
  annotations:
    k8s.v1.cni.cncf.io/networks: default/kube-ovn-vpc-network
spec:
  containers:
  - name: app
    image: nginx
"#;

/// Use case 1, network segmentation: the `frontend` pod's annotation.
pub const SEGMENTATION: &str = r#"# 前端 Pod 可同时访问公共网络和内部网络
apiVersion: v1
kind: Pod
metadata:
  name: frontend
  annotations:
    k8s.v1.cni.cncf.io/networks: |
      [
        {"name": "default/public-network"},
        {"name": "default/internal-network"}
      ]
"#;

/// Use case 2, multi-tenancy: the two tenant pods.
pub const TENANTS: &str = r#"# 租户 A Pod
apiVersion: v1
kind: Pod
metadata:
  name: tenant-a-app
  annotations:
    k8s.v1.cni.cncf.io/networks: default/tenant-a-network
---
# 租户 B Pod
apiVersion: v1
kind: Pod
metadata:
  name: tenant-b-app
  annotations:
    k8s.v1.cni.cncf.io/networks: default/tenant-b-network
"#;

/// Use case 3: the VpcNatGateway `vpc-nat-gw`.
pub const NAT_GW: &str = r#"apiVersion: kubeovn.io/v1
kind: VpcNatGateway
metadata:
  name: vpc-nat-gw
spec:
  vpc: vpc-secondary
  subnet: subnet-secondary
  lanIp: "10.100.0.254"
"#;

/// Multiple providers with explicit interface names.
pub const MULTI_PROVIDER: &str = r#"metadata:
  annotations:
    k8s.v1.cni.cncf.io/networks: |
      [
        {"name": "default/kube-ovn-network-1", "interface": "net1"},
        {"name": "default/kube-ovn-network-2", "interface": "net2"}
      ]
"#;

/// Static IP allocation through the selection element's `ips`.
pub const STATIC_IP: &str = r#"# 静态 IP 分配
metadata:
  annotations:
    k8s.v1.cni.cncf.io/networks: |
      [{
        "name": "default/kube-ovn-network",
        "ips": ["10.100.0.100/16"]
      }]
"#;

/// QoS annotations.
pub const QOS: &str = r#"metadata:
  annotations:
    ovn.kubernetes.io/ingress_rate: "1000"
    ovn.kubernetes.io/egress_rate: "1000"
"#;

/// The manual's first example as one multi-document YAML: the NAD, the Vpc and Subnet, and the
/// pod, in the order the manual applies them.
pub fn first_example() -> String {
    [NAD, VPC_AND_SUBNET, POD].join("---\n")
}
