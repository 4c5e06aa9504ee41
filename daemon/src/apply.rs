//! Executes the node side of an [`AddPlan`](crate::plan::AddPlan): the veth (rtnetlink), the OVS
//! port (one OVSDB transaction), the wait for `ovn-installed` (monitor), then a gratuitous ARP.
//!
//! Each step that changes the node first records how to undo it; when a later step fails, the
//! undo list runs in reverse (collecting errors, never stopping at one) and the original failure
//! is reported, so a failed ADD leaves nothing behind. DEL and GC run the same undo steps for an
//! attachment they did not make in this process ([`Applier::remove`]).

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use ovn_api::rpc::Client;

use crate::error::DaemonError;
use crate::interface::{self, PlumbTimings};
use crate::metrics::{AddPhase, Metrics};
use crate::netns::Netns;
use crate::ovs::{self, keys};
use crate::plan::Attach;

/// What [`Applier::apply`] needs of the node.
#[derive(Debug, Clone, Copy)]
pub struct Applier<'a> {
    /// The node's network namespace, where ovs-vswitchd sees the host ends of the veths.
    pub host: &'a Netns,
    /// The node's Open vSwitch database.
    pub ovs: &'a Client,
    /// Integration bridge.
    pub bridge: &'a str,
    /// Longest wait for ovn-controller's `ovn-installed`.
    pub install_timeout: Duration,
    /// Where the ADD phases are recorded.
    pub metrics: &'a Metrics,
}

/// Where the time of one applied ADD went (logged per attachment: the one slow pod that a
/// histogram hides).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// The kernel part: the veth and its configuration.
    pub kernel: Duration,
    /// The kernel part plus the OVS port transaction.
    pub plumbing: Duration,
    /// The wait for `ovn-installed`.
    pub wait_installed: Duration,
    /// The kernel part, step by step.
    pub steps: PlumbTimings,
}

/// One change to the node and how to take it back.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Undo {
    /// Delete the veth by its host end (which deletes the pair).
    Veth { host_ifname: String },
    /// Remove the OVS ports of the attachment (container id, ifname).
    Port {
        container_id: String,
        ifname: String,
    },
}

impl Applier<'_> {
    /// Applies `attach`; `what` names the attachment in errors. On failure, everything this
    /// call changed is undone before the error returns.
    pub async fn apply(&self, attach: &Attach, what: &str) -> Result<Applied, DaemonError> {
        let (spec, port) = (&attach.interface, &attach.port);
        let mut undo = Vec::new();
        let phase = Instant::now();
        // A failed plumb removes the veth it made itself: nothing to undo yet.
        let plumbed = match interface::plumb(self.host, spec).await {
            Ok(plumbed) => plumbed,
            Err(source) => {
                self.metrics
                    .observe_phase(AddPhase::Plumbing, phase.elapsed());
                return Err(DaemonError::Interface {
                    what: what.to_owned(),
                    source,
                });
            }
        };
        undo.push(Undo::Veth {
            host_ifname: plumbed.host_ifname.clone(),
        });
        let kernel = phase.elapsed();
        // Recorded before the transaction: a failure whose reply was lost may still have
        // committed the port, and removing a port that is not there is a no-op.
        undo.push(Undo::Port {
            container_id: port.container_id.clone(),
            ifname: port.ifname.clone(),
        });
        let added = ovs::add_port(self.ovs, port).await;
        let plumbing = phase.elapsed();
        self.metrics.observe_phase(AddPhase::Plumbing, plumbing);
        let phase = Instant::now();
        let wired = match added {
            Ok(()) => {
                let installed =
                    ovs::wait_installed(self.ovs, &port.name, &port.iface_id, self.install_timeout)
                        .await;
                self.metrics
                    .observe_phase(AddPhase::WaitOvnInstalled, phase.elapsed());
                installed
            }
            Err(e) => Err(e),
        };
        let wait_installed = phase.elapsed();
        if let Err(source) = wired {
            if let Err(errors) = self.undo(undo).await {
                tracing::warn!(%what, errors = %errors.join("; "), "undoing a failed ADD left something behind");
            }
            return Err(DaemonError::Port {
                what: what.to_owned(),
                source: Box::new(source),
            });
        }
        // Off the ADD's path: closing the AF_PACKET socket waits for an RCU grace period
        // (`synchronize_net` in the kernel's packet_release, ~10 ms measured here, a tenth of
        // a sequential ADD), and peers need the announcement soon, not before the runtime's
        // answer. It still goes out within milliseconds of ovn-installed.
        let (netns, ifname, mac, addresses) = (
            port.netns.clone(),
            spec.ifname.clone(),
            spec.mac,
            spec.addresses.clone(),
        );
        tokio::task::spawn_blocking(move || announce(&netns, &ifname, mac, &addresses));
        Ok(Applied {
            kernel,
            plumbing,
            wait_installed,
            steps: plumbed.timings,
        })
    }

    /// Removes the OVS port and the veth of one attachment (DEL, GC), collecting errors and
    /// carrying on; an attachment already gone is success.
    pub async fn remove(&self, container_id: &str, ifname: &str) -> Result<(), Vec<String>> {
        self.undo(vec![
            Undo::Veth {
                host_ifname: crate::naming::host_ifname(container_id, ifname),
            },
            Undo::Port {
                container_id: container_id.to_owned(),
                ifname: ifname.to_owned(),
            },
        ])
        .await
    }

    /// Runs `steps` last first, every one of them whatever the others do.
    async fn undo(&self, steps: Vec<Undo>) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        for step in steps.into_iter().rev() {
            match step {
                Undo::Port {
                    container_id,
                    ifname,
                } => {
                    let matches = |ids: &std::collections::BTreeMap<&str, &str>| {
                        ids.get(keys::CONTAINER_ID) == Some(&container_id.as_str())
                            && ids.get(keys::IFNAME) == Some(&ifname.as_str())
                    };
                    if let Err(e) =
                        ovs::remove_ports(self.ovs, self.bridge, matches, "attachment port").await
                    {
                        errors.push(e.to_string());
                    }
                }
                Undo::Veth { host_ifname } => {
                    if let Err(e) = interface::unplumb(self.host, &host_ifname).await {
                        errors.push(e.to_string());
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Sends a gratuitous ARP for each IPv4 address from the pod's interface, once OVN forwards
/// for it: a peer that cached the MAC of an earlier owner of a static IP learns the new one at
/// once instead of after its neighbour entry expires. Best effort: failure is only logged.
fn announce(netns: &str, ifname: &str, mac: [u8; 6], addresses: &[IpNet]) {
    let v4: Vec<std::net::Ipv4Addr> = addresses
        .iter()
        .filter_map(|a| match a.addr() {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .collect();
    if v4.is_empty() {
        return;
    }
    let sent = Netns::open(Path::new(netns))
        .map_err(|e| e.to_string())
        .and_then(|ns| {
            ns.run(|| -> Result<(), String> {
                let index = nix::net::if_::if_nametoindex(ifname).map_err(|e| e.to_string())?;
                for ip in &v4 {
                    crate::sys::send_gratuitous_arp(index, mac, *ip).map_err(|e| e.to_string())?;
                }
                Ok(())
            })
            .map_err(|e| e.to_string())?
        });
    if let Err(e) = sent {
        tracing::warn!(%netns, %ifname, error = %e, "gratuitous ARP not sent");
    }
}
