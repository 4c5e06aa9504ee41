//! The gRPC service the `kube-ovn` plugin calls, and the unix-socket server around it.
//!
//! ADD: wait for the controller's allocation (watch), plumb the veth (rtnetlink), add the OVS
//! port (one OVSDB transaction), wait for `ovn-installed` (monitor), answer. Any failure undoes
//! what this ADD made. DEL removes the port and the veth and succeeds when they are already gone.

use std::net::IpAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cni::api::cni_status;
use cni::error::code;
use cni::api::proto::cni_daemon_server::{CniDaemon, CniDaemonServer};
use cni::api::proto::{
    AddResponse, AttachmentRequest, CheckResponse, DelResponse, GcRequest, GcResponse, IpConfig,
    Route, StatusRequest, StatusResponse,
};
use ipnet::IpNet;
use ovn_api::rpc::Client;
use tonic::{Request, Response, Status};

use crate::allocation::Allocation;
use crate::interface::{self, InterfaceError};
use crate::metrics::{AddPhase, Metrics, Verb};
use crate::netns::{Netns, NetnsError};
use crate::ovs::{self, PortSpec, keys};
use crate::pods::PodSource;
use crds::MacAddr;

/// Plugin-specific CNI code: CHECK found the attachment different from its previous result.
pub const CHECK_MISMATCH: u32 = 100;

/// Settings of the CNI service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Integration bridge.
    pub bridge: String,
    /// Pod interface MTU unless the NAD sets one.
    pub mtu: u32,
    /// Turn off TX checksum offload in pods (userspace datapath).
    pub disable_tx_checksum: bool,
    /// Longest wait for the controller's allocation.
    pub allocation_timeout: Duration,
    /// Longest wait for ovn-controller's `ovn-installed`.
    pub install_timeout: Duration,
}

/// The CNI service.
#[derive(Debug)]
pub struct CniService<P> {
    pods: Arc<P>,
    ovs: Arc<Client>,
    host: Netns,
    config: ServiceConfig,
    metrics: Arc<Metrics>,
}

impl<P: PodSource> CniService<P> {
    /// A service using `pods` for allocations, `ovs` for the node's database and `host` (the
    /// node's network namespace, where ovs-vswitchd sees the host ends of the veths), recording
    /// into `metrics`.
    pub fn new(
        pods: Arc<P>,
        ovs: Arc<Client>,
        host: Netns,
        config: ServiceConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            pods,
            ovs,
            host,
            config,
            metrics,
        }
    }

    /// The metrics this service records into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Records one operation's latency and result.
    fn observe<T>(&self, verb: Verb, started: Instant, result: &Result<T, Status>) {
        let code = result.as_ref().err().map(status_code);
        self.metrics.observe_op(verb, code, started.elapsed());
    }
}

/// The CNI error code a status carries (as the plugin will read it).
fn status_code(status: &Status) -> u32 {
    cni::api::status_to_cni(status, cni::version::LATEST, "").code
}

fn describe(r: &AttachmentRequest, verb: &str) -> String {
    format!(
        "{verb} {}/{} {} (container {})",
        r.pod_namespace, r.pod_name, r.ifname, r.container_id
    )
}

/// Checks a request from the plugin: the daemon does not trust its client's validation.
fn validate(r: &AttachmentRequest, verb: &str) -> Result<(), Status> {
    let bad = |msg: String| cni_status(code::INVALID_ENV, format!("{}: {msg}", describe(r, verb)));
    if r.pod_name.is_empty() || r.pod_namespace.is_empty() {
        return Err(bad("pod name and namespace are required".into()));
    }
    if r.container_id.is_empty() {
        return Err(bad("container id is required".into()));
    }
    cni::env::validate_ifname(&r.ifname).map_err(|e| bad(format!("interface name: {e}")))?;
    if verb != "DEL" && !r.netns.starts_with('/') {
        return Err(bad(format!("netns {:?} must be an absolute path", r.netns)));
    }
    if r.provider.is_empty() {
        return Err(cni_status(
            code::INVALID_CONFIG,
            format!("{}: provider is empty", describe(r, verb)),
        ));
    }
    Ok(())
}

fn iface_error(what: &str, e: InterfaceError) -> Status {
    let c = match &e {
        InterfaceError::Netns(NetnsError::Gone { .. }) => code::UNKNOWN_CONTAINER,
        InterfaceError::NameTaken { .. } => code::INVALID_CONFIG,
        _ => code::IO_FAILURE,
    };
    cni_status(c, format!("{what}: {e}"))
}

impl<P: PodSource> CniService<P> {
    async fn do_add(&self, r: &AttachmentRequest) -> Result<AddResponse, Status> {
        let what = describe(r, "ADD");
        validate(r, "ADD")?;
        let phase = Instant::now();
        let annotations = self
            .pods
            .wait_allocated(
                &r.pod_namespace,
                &r.pod_name,
                &r.provider,
                &r.ifname,
                self.config.allocation_timeout,
            )
            .await;
        let wait_allocation = phase.elapsed();
        self.metrics
            .observe_phase(AddPhase::WaitAllocation, wait_allocation);
        let annotations =
            annotations.map_err(|e| cni_status(code::TRY_AGAIN_LATER, format!("{what}: {e}")))?;
        // The attachment's provider as the controller resolved it: `<p>.<ifname>` when the pod
        // attaches this NAD more than once.
        let (provider, element) = crds::attachment::provider_of_interface(
            &annotations,
            &r.pod_namespace,
            &r.provider,
            &r.ifname,
        );
        let alloc = Allocation::from_annotations(&annotations, &provider, element.as_ref())
            .map_err(|e| cni_status(code::INVALID_CONFIG, format!("{what}: {e}")))?;
        check_static_requests(r, &alloc)
            .map_err(|e| cni_status(code::INVALID_CONFIG, format!("{what}: {e}")))?;

        // The NAD's mtu wins, then the Subnet's spec.mtu, then the daemon's flag.
        let mtu = if r.mtu != 0 {
            r.mtu
        } else {
            match self.pods.subnet_mtu(&alloc.allocated.logical_switch).await {
                Some(m) if (68..=65535).contains(&m) => m,
                _ => self.config.mtu,
            }
        };
        let mut response = AddResponse {
            mac: alloc.allocated.mac.to_string(),
            mtu,
            ips: alloc
                .addresses()
                .iter()
                .map(|a| IpConfig {
                    address: a.to_string(),
                    gateway: alloc
                        .gateway_for(&a.addr())
                        .map(|g| g.to_string())
                        .unwrap_or_default(),
                })
                .collect(),
            routes: alloc
                .pod_routes()
                .iter()
                .map(|rt| Route {
                    dst: rt.dst.to_string(),
                    gw: rt.via.map(|g| g.to_string()).unwrap_or_default(),
                })
                .collect(),
            host_ifname: String::new(),
        };
        if r.ipam_only {
            return Ok(response);
        }
        let spec = alloc.interface_spec(
            &r.container_id,
            &r.ifname,
            PathBuf::from(&r.netns),
            mtu,
            self.config.disable_tx_checksum,
        );
        let phase = Instant::now();
        let plumbed = match interface::plumb(&self.host, &spec).await {
            Ok(plumbed) => plumbed,
            Err(e) => {
                self.metrics
                    .observe_phase(AddPhase::Plumbing, phase.elapsed());
                return Err(iface_error(&what, e));
            }
        };
        let port = PortSpec {
            bridge: self.config.bridge.clone(),
            name: plumbed.host_ifname.clone(),
            iface_id: crds::naming::lsp_name(&r.pod_name, &r.pod_namespace, &provider),
            pod_name: r.pod_name.clone(),
            pod_namespace: r.pod_namespace.clone(),
            netns: r.netns.clone(),
            ips: alloc
                .addresses()
                .iter()
                .map(|a| a.addr().to_string())
                .collect::<Vec<_>>()
                .join(","),
            container_id: r.container_id.clone(),
            ifname: r.ifname.clone(),
        };
        let kernel = phase.elapsed();
        let added = ovs::add_port(&self.ovs, &port).await;
        let plumbing = phase.elapsed();
        self.metrics.observe_phase(AddPhase::Plumbing, plumbing);
        let phase = Instant::now();
        let wired = match added {
            Ok(()) => {
                let installed = ovs::wait_installed(
                    &self.ovs,
                    &port.name,
                    &port.iface_id,
                    self.config.install_timeout,
                )
                .await;
                self.metrics
                    .observe_phase(AddPhase::WaitOvnInstalled, phase.elapsed());
                installed
            }
            Err(e) => Err(e),
        };
        let wait_installed = phase.elapsed();
        if let Err(e) = wired {
            // Undo: the port (if it was added) and the veth. Report the original failure.
            let _ = self.remove_attachment(&r.container_id, &r.ifname).await;
            return Err(cni_status(code::TRY_AGAIN_LATER, format!("{what}: {e}")));
        }
        // Off the ADD's path: closing the AF_PACKET socket waits for an RCU grace period
        // (`synchronize_net` in the kernel's packet_release, ~10 ms measured here, a tenth of
        // a sequential ADD), and peers need the announcement soon, not before the runtime's
        // answer. It still goes out within milliseconds of ovn-installed.
        let (netns, ifname, mac, addresses) = (
            r.netns.clone(),
            r.ifname.clone(),
            alloc.mac(),
            alloc.addresses().to_vec(),
        );
        tokio::task::spawn_blocking(move || announce(&netns, &ifname, mac, &addresses));
        // The phase timings (µs) per attachment, for the one slow pod that a histogram hides;
        // plumbing = the kernel part (`kernel_us`: setup + veth + ethtool + configure +
        // handback) + the OVS port transaction.
        let steps = plumbed.timings;
        tracing::info!(pod = %format!("{}/{}", r.pod_namespace, r.pod_name), ifname = %r.ifname,
            port = %port.name, lsp = %port.iface_id, ips = %port.ips,
            wait_allocation_us = micros(wait_allocation), plumbing_us = micros(plumbing),
            kernel_us = micros(kernel), setup_us = micros(steps.setup),
            veth_us = micros(steps.veth), ethtool_us = micros(steps.ethtool),
            configure_us = micros(steps.configure), handback_us = micros(steps.handback),
            wait_installed_us = micros(wait_installed),
            "attachment added");
        response.host_ifname = plumbed.host_ifname;
        Ok(response)
    }

    /// Removes the OVS port and the veth of one attachment, collecting errors and carrying on.
    async fn remove_attachment(&self, container_id: &str, ifname: &str) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        let matches = |ids: &std::collections::BTreeMap<&str, &str>| {
            ids.get(keys::CONTAINER_ID) == Some(&container_id)
                && ids.get(keys::IFNAME) == Some(&ifname)
        };
        if let Err(e) =
            ovs::remove_ports(&self.ovs, &self.config.bridge, matches, "attachment port").await
        {
            errors.push(e.to_string());
        }
        let host = crate::naming::host_ifname(container_id, ifname);
        if let Err(e) = interface::unplumb(&self.host, &host).await {
            errors.push(e.to_string());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    async fn do_check(&self, r: &AttachmentRequest) -> Result<(), Status> {
        let what = describe(r, "CHECK");
        validate(r, "CHECK")?;
        let prev: serde_json::Value = serde_json::from_str(&r.prev_result_json).map_err(|e| {
            cni_status(
                code::DECODE_FAILURE,
                format!("{what}: prevResult is not valid JSON: {e}"),
            )
        })?;
        let mismatch = |msg: String| cni_status(CHECK_MISMATCH, format!("{what}: {msg}"));
        let mut want_addrs: Vec<IpNet> = prev["ips"]
            .as_array()
            .map(|ips| {
                ips.iter()
                    .filter_map(|ip| ip["address"].as_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        want_addrs.sort();
        if r.ipam_only {
            return Ok(());
        }
        let netns = Netns::open(Path::new(&r.netns)).map_err(|e| iface_error(&what, e.into()))?;
        let seen = interface::observe(&netns, &r.ifname)
            .await
            .map_err(|e| mismatch(e.to_string()))?;
        if seen.addresses != want_addrs {
            return Err(mismatch(format!(
                "addresses are {:?}, prevResult has {want_addrs:?}",
                seen.addresses
            )));
        }
        let want_mac = prev["interfaces"]
            .as_array()
            .and_then(|ifs| ifs.iter().find(|i| i["name"].as_str() == Some(&r.ifname)))
            .and_then(|i| i["mac"].as_str()?.parse::<MacAddr>().ok());
        if want_mac.is_some() && seen.mac.map(MacAddr) != want_mac {
            return Err(mismatch(format!(
                "MAC is {}, prevResult has {}",
                seen.mac.map(|m| MacAddr(m).to_string()).unwrap_or_default(),
                want_mac.map(|m| m.to_string()).unwrap_or_default()
            )));
        }
        let host = crate::naming::host_ifname(&r.container_id, &r.ifname);
        let installed = self.ovs.replica().table("Interface").is_some_and(|t| {
            t.by_name(&host)
                .any(|row| row.external_id(keys::OVN_INSTALLED) == Some("true"))
        });
        if !installed {
            return Err(mismatch(format!(
                "OVS interface {host} is missing or not installed by ovn-controller"
            )));
        }
        Ok(())
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Checks the runtime's static requests (`runtimeConfig.ips`/`mac`) against what the controller
/// allocated: both come from the same networks annotation, so a difference is a real conflict.
fn check_static_requests(r: &AttachmentRequest, alloc: &Allocation) -> Result<(), String> {
    for ip in &r.ips {
        let bare = ip.split_once('/').map_or(ip.as_str(), |(a, _)| a);
        let addr: IpAddr = bare
            .parse()
            .map_err(|_| format!("requested IP {ip:?} is not an IP"))?;
        if !alloc.addresses().iter().any(|a| a.addr() == addr) {
            return Err(format!(
                "requested IP {ip} but kube-ovn-controller allocated {:?}",
                alloc
                    .addresses()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            ));
        }
    }
    if !r.mac.is_empty() {
        let mac: MacAddr = r
            .mac
            .parse()
            .map_err(|e| format!("requested MAC {:?}: {e}", r.mac))?;
        if mac != alloc.allocated.mac {
            return Err(format!(
                "requested MAC {} but kube-ovn-controller allocated {}",
                r.mac, alloc.allocated.mac
            ));
        }
    }
    Ok(())
}

#[tonic::async_trait]
impl<P: PodSource> CniDaemon for CniService<P> {
    async fn add(
        &self,
        request: Request<AttachmentRequest>,
    ) -> Result<Response<AddResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let result = self.do_add(&r).await;
        self.observe(Verb::Add, started, &result);
        if let Err(e) = &result {
            tracing::warn!(error = %e.message(), "ADD failed");
        }
        result.map(Response::new)
    }

    async fn del(
        &self,
        request: Request<AttachmentRequest>,
    ) -> Result<Response<DelResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let result = self.do_del(&r).await;
        self.observe(Verb::Del, started, &result);
        result.map(|()| Response::new(DelResponse {}))
    }

    async fn check(
        &self,
        request: Request<AttachmentRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let result = self.do_check(&r).await;
        self.observe(Verb::Check, started, &result);
        result.map(|()| Response::new(CheckResponse {}))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let started = Instant::now();
        let result = self.do_status();
        self.observe(Verb::Status, started, &result);
        result.map(Response::new)
    }

    async fn gc(&self, request: Request<GcRequest>) -> Result<Response<GcResponse>, Status> {
        let started = Instant::now();
        let result = self.do_gc(request.into_inner()).await;
        self.observe(Verb::Gc, started, &result);
        result.map(Response::new)
    }
}

impl<P: PodSource> CniService<P> {
    async fn do_del(&self, r: &AttachmentRequest) -> Result<(), Status> {
        validate(r, "DEL")?;
        if r.ipam_only {
            // Addresses are released by the controller when the pod goes; nothing on the node.
            return Ok(());
        }
        self.remove_attachment(&r.container_id, &r.ifname)
            .await
            .map_err(|errors| {
                cni_status(
                    code::TRY_AGAIN_LATER,
                    format!("{}: {}", describe(r, "DEL"), errors.join("; ")),
                )
            })
    }

    fn do_status(&self) -> Result<StatusResponse, Status> {
        let Some(remote) = self.ovs.current_remote() else {
            return Err(cni_status(
                code::PLUGIN_NOT_AVAILABLE,
                "kube-ovn-daemon has no session to the local Open vSwitch database",
            ));
        };
        if !ovs::bridge_exists(&self.ovs, &self.config.bridge) {
            return Err(cni_status(
                code::PLUGIN_NOT_AVAILABLE,
                format!(
                    "integration bridge {} does not exist in {remote}",
                    self.config.bridge
                ),
            ));
        }
        Ok(StatusResponse {
            detail: format!(
                "connected to {remote}; bridge {} present",
                self.config.bridge
            ),
        })
    }

    async fn do_gc(&self, request: GcRequest) -> Result<GcResponse, Status> {
        let valid: Vec<(String, String)> = request
            .valid
            .into_iter()
            .map(|v| (v.container_id, v.ifname))
            .collect();
        let stale =
            self.attachments(|cid, ifname| !valid.iter().any(|(c, i)| c == cid && i == ifname));
        let removed = self.remove_all(&stale).await.map_err(|errors| {
            cni_status(code::TRY_AGAIN_LATER, format!("GC: {}", errors.join("; ")))
        })?;
        Ok(GcResponse { removed })
    }
}

impl<P: PodSource> CniService<P> {
    /// Our attachments (container id, ifname) on this node that satisfy `keep`.
    fn attachments(&self, select: impl Fn(&str, &str) -> bool) -> Vec<(String, String)> {
        let replica = self.ovs.replica();
        let Some(ifaces) = replica.table("Interface") else {
            return Vec::new();
        };
        ifaces
            .by_external_id(
                crds::naming::EXTERNAL_ID_VENDOR.0,
                crds::naming::EXTERNAL_ID_VENDOR.1,
            )
            .filter_map(|row| {
                let ids = ovs::external_ids(row.get("external_ids"));
                let (cid, ifname) = (*ids.get(keys::CONTAINER_ID)?, *ids.get(keys::IFNAME)?);
                select(cid, ifname).then(|| (cid.to_owned(), ifname.to_owned()))
            })
            .collect()
    }

    async fn remove_all(&self, attachments: &[(String, String)]) -> Result<u32, Vec<String>> {
        let mut errors = Vec::new();
        let mut removed = 0;
        for (cid, ifname) in attachments {
            match self.remove_attachment(cid, ifname).await {
                Ok(()) => removed += 1,
                Err(e) => errors.extend(e),
            }
        }
        if errors.is_empty() {
            Ok(removed)
        } else {
            Err(errors)
        }
    }

    /// One sweep: removes ports of pods that no longer exist. Returns how many were removed.
    pub async fn sweep(&self) -> Result<u32, Vec<String>> {
        let owners: Vec<(String, String, String, String)> = {
            let replica = self.ovs.replica();
            let Some(ifaces) = replica.table("Interface") else {
                return Ok(0);
            };
            ifaces
                .by_external_id(
                    crds::naming::EXTERNAL_ID_VENDOR.0,
                    crds::naming::EXTERNAL_ID_VENDOR.1,
                )
                .filter_map(|row| {
                    let ids = ovs::external_ids(row.get("external_ids"));
                    Some((
                        ids.get(keys::POD_NAMESPACE)?.to_string(),
                        ids.get(keys::POD_NAME)?.to_string(),
                        ids.get(keys::CONTAINER_ID)?.to_string(),
                        ids.get(keys::IFNAME)?.to_string(),
                    ))
                })
                .collect()
        };
        let mut gone = Vec::new();
        for (ns, name, cid, ifname) in owners {
            // An API error keeps the port: only a confirmed absence removes anything.
            if let Ok(false) = self.pods.exists(&ns, &name).await {
                tracing::info!(pod = %format!("{ns}/{name}"), %ifname, "removing the port of a pod that no longer exists");
                gone.push((cid, ifname));
            }
        }
        self.remove_all(&gone).await
    }
}

/// A failure to start serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Socket setup failed.
    #[error("socket {path}: {source}")]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Something else than a socket is at the path.
    #[error("{path} exists and is not a socket; refusing to remove it")]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Binds the unix socket `path`: mode 0600, a stale socket from an earlier run replaced, a
/// non-socket file at the path refused. Bound before serving so clients never race the server.
pub fn bind(path: &Path) -> Result<tokio::net::UnixListener, ServeError> {
    let sock_err = |source| ServeError::Socket {
        path: path.to_owned(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path).map_err(sock_err)?,
        Ok(_) => {
            return Err(ServeError::NotASocket {
                path: path.to_owned(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(sock_err(e)),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(sock_err)?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(sock_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(sock_err)?;
    Ok(listener)
}

/// Serves `service` on `listener` (from [`bind`]), refusing peers other than root or our own
/// user, until `shutdown` resolves.
pub async fn serve<P: PodSource>(
    listener: tokio::net::UnixListener,
    service: Arc<CniService<P>>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    use tokio_stream::StreamExt;
    let me = nix::unistd::geteuid().as_raw();
    let incoming =
        tokio_stream::wrappers::UnixListenerStream::new(listener).filter(move |conn| match conn {
            Ok(stream) => match stream.peer_cred() {
                Ok(cred) if cred.uid() == 0 || cred.uid() == me => true,
                Ok(cred) => {
                    tracing::warn!(
                        uid = cred.uid(),
                        "refused a CNI connection from a non-root peer"
                    );
                    false
                }
                Err(e) => {
                    tracing::warn!(error = %e, "refused a CNI connection without peer credentials");
                    false
                }
            },
            Err(_) => true,
        });
    tracing::info!("serving the kube-ovn CNI plugin");
    tonic::transport::Server::builder()
        .add_service(CniDaemonServer::from_arc(service))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
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
