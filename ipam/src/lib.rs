//! Address and MAC allocation for Kube-OVN subnets.
//!
//! Pure logic: no async runtime, no Kubernetes client. The controller owns one allocator, feeds it
//! subnets and the records it reads from `IP` custom resources, and asks it for addresses by owner
//! key (`<pod>.<namespace>.<provider>`). Free and used space is kept as ranges, so memory grows
//! with the number of allocations, not with the size of a subnet.
