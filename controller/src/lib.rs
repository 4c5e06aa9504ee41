//! `kube-ovn-controller` in the attached (non-primary) CNI mode.
//!
//! Watches NetworkAttachmentDefinitions, `Vpc`s, `Subnet`s and Pods, allocates addresses through
//! the `ipam` crate, records them in `IP` custom resources, and writes the OVN Northbound objects
//! (logical routers, switches and ports) through `ovn-api`. It creates nothing a NAD does not
//! ask for: no default VPC, no `ovn-default` or `join` subnet, no host routes.

pub mod context;
pub mod crd_upgrade;
pub mod error;
pub mod gc;
pub mod ip;
pub mod ippool;
pub mod leader;
pub mod metrics;
pub mod multi_network_policy;
pub mod nad;
pub mod nat_gateway;
pub mod nat_rules;
pub mod nb;
pub mod options;
pub mod pod;
pub mod reconciler;
pub mod repair;
pub mod retry;
pub mod run;
pub mod security_group;
pub mod status;
pub mod subnet;
pub mod tenancy;
pub mod uninstall;
pub mod vpc;
pub mod webhook;
