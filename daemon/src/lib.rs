//! `kube-ovn-daemon`, the node agent.
//!
//! Initialises the node's Open vSwitch (`br-int` and the `Open_vSwitch` external_ids that
//! ovn-controller reads), serves the CNI plugin over gRPC on a unix socket, serves Prometheus
//! metrics of every CNI operation and the phases of ADD on `--metrics-addr`, and removes the
//! ports of pods that are gone (a periodic sweep). The same binary runs the VPC NAT gateway
//! agent inside a gateway pod (`kube-ovn-daemon nat-gateway`, module [`natgw`]).
//!
//! One ADD, module by module:
//! 1. [`server`] receives the request (the API is [`cni::api`]) and checks it;
//! 2. [`pods`] waits for the controller's allocation (a watch, not a poll);
//! 3. [`allocation`] reads it from the pod's annotations through [`crds::attachment`];
//! 4. [`plan`] turns it and the request into the interface spec, the port spec and the answer
//!    (pure; unit-tested without root);
//! 5. [`apply`] executes the plan: the veth by rtnetlink ([`interface`], [`netns`], [`rtnl`],
//!    [`sys`]), the OVS port in one OVSDB transaction and the wait for `ovn-installed` ([`ovs`]),
//!    each step undone in reverse when a later one fails;
//! 6. failures are one [`error::DaemonError`] carrying its CNI code, which [`metrics`] records
//!    and [`server`] turns into a gRPC status.
//!
//! DEL and GC run [`apply`]'s undo steps for an attachment; host interface names come from
//! [`naming`]; command-line flags are in [`options`].

pub mod allocation;
pub mod apply;
pub mod devconf;
pub mod error;
pub mod interface;
pub mod ko;
pub mod metrics;
pub mod naming;
pub mod natgw;
pub mod netns;
pub mod options;
pub mod ovs;
pub mod plan;
pub mod pods;
pub mod rtnl;
pub mod server;
pub mod sys;
pub mod tunnel;
pub mod uninstall;
