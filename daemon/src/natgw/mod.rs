//! The VPC NAT gateway agent (`kube-ovn-daemon nat-gateway`), running inside the gateway pod.
//!
//! It keeps the pod's network namespace equal to the API objects of its gateway, level-
//! triggered: every change of the VpcNatGateway, its IptablesEIPs, the FIP/SNAT/DNAT rules on
//! them, the QoSPolicies, the Subnets or its own Pod recomputes the whole desired state and
//! applies it.
//! - [`plan`] (pure): objects → desired namespace state + a verdict per object;
//! - [`nft`]: the NAT rules (and the EIPs' QoS limits) as one nf_tables netlink transaction
//!   (our own small encoder);
//! - [`apply`]: addresses, policy routing and the transaction, idempotent;
//! - [`inputs`]: the watches (reflectors) feeding the plan;
//! - [`status`]: the objects' status by server-side apply (field manager
//!   [`status::MANAGER`]);
//! - [`agent`]: the loop, and the readiness file the pod's probe checks.
//!
//! Nothing is kept on disk: after a restart the first plan rebuilds everything from the API.

pub mod agent;
pub mod apply;
pub mod inputs;
pub mod nft;
pub mod plan;
pub mod status;
