//! `kube-ovn-daemon`, the node agent.
//!
//! Initialises the node's Open vSwitch (`br-int` and the `Open_vSwitch` external_ids that
//! ovn-controller reads), serves the CNI plugin over gRPC on a unix socket, and turns each CNI
//! request into a plan of kernel (rtnetlink) and OVSDB operations that a separate module applies.
//! Serves Prometheus metrics of every CNI operation and the phases of ADD on `--metrics-addr`.
//! Also runs the VPC NAT gateway agent (`kube-ovn-daemon nat-gateway`).

pub mod allocation;
pub mod interface;
pub mod metrics;
pub mod naming;
pub mod netns;
pub mod options;
pub mod ovs;
pub mod pods;
pub mod rtnl;
pub mod server;
pub mod sys;
pub mod tunnel;
pub mod uninstall;
