//! End-to-end harness: a local cluster built from real programs on this machine.
//!
//! Kind needs a Docker engine, which these machines lack, so the default backend runs every part
//! as a process or a network namespace here: etcd and kube-apiserver (with controller-manager and
//! scheduler) on loopback, OVN central on the host, and each node as a network namespace with its
//! own ovsdb-server, ovs-vswitchd (userspace datapath) and ovn-controller, joined by geneve over
//! an underlay bridge. Pods are network namespaces whose `eth0` comes from a primary CNI and whose
//! extra interfaces come from our `kube-ovn` plugin, called exactly as Multus calls it.

pub mod cluster;
pub mod external;
pub mod helm;
pub mod k8s;
pub mod keep;
pub mod ovn;
pub mod programs;
pub mod real;
pub mod scenario;
