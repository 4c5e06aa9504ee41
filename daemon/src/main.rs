//! `kube-ovn-daemon` entry point.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use crds::admin;
use daemon::metrics::Metrics;
use daemon::natgw::{
    self,
    agent::{AgentOptions, ReadyOptions},
};
use daemon::options::{Options, translate_upstream_flags};
use daemon::ovs::{self, NodeConfig};
use daemon::pods::KubePods;
use daemon::server::{self, CniService, ServiceConfig};
use daemon::tunnel::{self, TunnelConfig};
use daemon::uninstall;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The NAT gateway agent and its readiness probe share the binary (and the image).
    match std::env::args_os()
        .nth(1)
        .and_then(|a| a.into_string().ok())
        .as_deref()
    {
        Some("nat-gateway") => return nat_gateway().await,
        Some("nat-gateway-ready") => {
            let opts = ReadyOptions::parse_from(std::env::args_os().skip(1));
            std::process::exit(if natgw::agent::is_ready(&opts.ready_file) {
                0
            } else {
                1
            });
        }
        _ => {}
    }
    // Upstream's flags (copied manifests) are renamed, dropped with a warning, or refused.
    let translated = match translate_upstream_flags(std::env::args_os()) {
        Ok(t) => t,
        Err(err) => {
            eprintln!("kube-ovn-daemon: {err}");
            std::process::exit(2);
        }
    };
    let opts = Options::parse_from(translated.args);
    if let Err(err) = opts.validate() {
        eprintln!("kube-ovn-daemon: {err}");
        std::process::exit(2);
    }
    admin::init_logging(opts.log_json);
    for warning in &translated.warnings {
        tracing::warn!("{warning}");
    }

    let client = admin::kube_client(opts.kubeconfig.as_deref()).await?;
    let kube_client = client.clone();

    let ovs = Arc::new(ovs::connect(&opts.ovs_db).await?);
    // The daemon's own namespace unless told otherwise (read now, before any thread moves).
    let host = daemon::netns::Netns::open(
        opts.host_netns
            .as_deref()
            .unwrap_or(std::path::Path::new("/proc/self/ns/net")),
    )?;
    let (encap_ip, record) = tunnel_endpoint(&opts, &ovs, &host).await?;
    // What the tunnel bridge holds, as last seen: uninstall puts it back on the NIC.
    let record = Arc::new(std::sync::Mutex::new(record));
    let node_config = NodeConfig {
        bridge: opts.bridge.clone(),
        datapath_type: opts.datapath_type.clone(),
        system_id: opts.node_name.clone(),
        ovn_remote: opts.ovn_remote.clone(),
        encap_type: opts.encap_type.clone(),
        encap_ip: encap_ip.clone(),
    };
    ovs::init_node(&ovs, &node_config).await?;
    tracing::info!(node = %opts.node_name, bridge = %opts.bridge, datapath = %opts.datapath_type,
        %encap_ip, "node initialised");

    let metrics = Arc::new(Metrics::for_node(&opts.node_name));
    // Bound now, so a bad address fails at start; served once the service exists.
    let admin = match admin::parse_addr("--metrics-addr", &opts.metrics_addr)? {
        Some(addr) => Some((addr, admin::bind("--metrics-addr", addr).await?)),
        None => None,
    };

    let mut tunnel_task = None;
    if let Some(nic) = opts.tunnel_nic().filter(|_| opts.datapath_type == "netdev") {
        // ovs-vswitchd recreates the bridge's interface empty when it restarts: put the
        // addresses back soon after.
        let cfg = tunnel_config(&opts, nic);
        let (ovs, host, record) = (ovs.clone(), host.try_clone()?, record.clone());
        tunnel_task = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tick.tick().await;
                match tunnel::ensure(&ovs, &host, &cfg).await {
                    Ok(ep) => {
                        if ep.changed > 0 {
                            tracing::info!(bridge = %cfg.bridge, addresses = ?ep.addresses,
                                changed = ep.changed, "tunnel endpoint restored on its bridge");
                        }
                        *record
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) = ep.record;
                    }
                    Err(e) => tracing::warn!(bridge = %cfg.bridge, error = %e,
                        "tunnel endpoint check failed"),
                }
            }
        }));
    }
    let service = CniService::new(
        Arc::new(KubePods::new(client)),
        ovs.clone(),
        host.try_clone()?,
        ServiceConfig {
            bridge: opts.bridge.clone(),
            mtu: opts.mtu,
            disable_tx_checksum: opts.datapath_type == "netdev",
            allocation_timeout: opts.allocation_timeout(),
            install_timeout: opts.install_timeout(),
        },
        metrics,
    );
    let sweeper = service.clone();
    if let Some((addr, listener)) = admin {
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
        tokio::spawn(admin::serve(
            listener,
            service.admin_routes(),
            std::future::pending(),
        ));
    }
    let adopted = service.adopt_plumbed();
    if adopted > 0 {
        tracing::info!(
            ports = adopted,
            "attachments plumbed by an earlier run taken over"
        );
    }
    // A reset Open vSwitch database (ovs-ovn restarted on a fresh conf.db) loses the bridge,
    // ovn-controller's settings and the pods' ports: put them back within seconds.
    let keeper = service.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3));
        loop {
            tick.tick().await;
            match keeper.restore(&node_config).await {
                Ok(done) if done.ports > 0 => {
                    tracing::info!(ports = done.ports, "ports restored in Open vSwitch");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "restoring the node's Open vSwitch state failed")
                }
            }
        }
    });
    let every = std::time::Duration::from_secs(opts.sweep_interval_secs.max(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match sweeper.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "sweep removed ports of deleted pods"),
                Err(errors) => tracing::warn!(?errors, "sweep failed"),
            }
        }
    });

    let listener = server::bind(&opts.bind_socket)?;
    // The kubelet stops the pod with SIGTERM; a terminal gives SIGINT.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down");
    };
    let cleaner = service.clone();
    server::serve(listener, service, shutdown).await?;
    // Nothing may put the tunnel NIC back on its bridge while uninstall takes it off.
    if let Some(task) = tunnel_task {
        task.abort();
    }
    if let Some(owner) = &opts.owner_daemonset {
        let known = record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        undo_if_uninstalled(&opts, owner, &kube_client, &ovs, &host, &known, &cleaner).await;
    }
    Ok(())
}

/// On uninstall (not on a restart), gives the node back what the install changed.
async fn undo_if_uninstalled(
    opts: &Options,
    owner: &uninstall::Owner,
    client: &kube::Client,
    ovs: &ovn_api::rpc::Client,
    host: &daemon::netns::Netns,
    known: &tunnel::Recorded,
    cleaner: &CniService<impl daemon::pods::PodSource>,
) {
    let asked = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        uninstall::verdict(client, owner),
    )
    .await
    .unwrap_or_else(|_| uninstall::Verdict::Unknown("no answer from the API server in 5 s".into()));
    match asked {
        uninstall::Verdict::Staying => {
            tracing::info!(daemonset = %format!("{}/{}", owner.namespace, owner.name),
                "restart, not an uninstall: leaving the node as it is");
            return;
        }
        uninstall::Verdict::Unknown(why) => {
            tracing::warn!(%why, "could not tell a restart from an uninstall: leaving the node as it is");
            return;
        }
        uninstall::Verdict::Uninstalled(why) => {
            tracing::info!(%why, "Kube-OVN is being uninstalled: cleaning up this node");
        }
    }
    if let Some(dir) = &opts.cni_bin_dir {
        match uninstall::remove_plugin(dir) {
            Ok(true) => tracing::info!(path = %uninstall::plugin_path(dir).display(),
                "removed the kube-ovn CNI plugin"),
            Ok(false) => {}
            Err(e) => tracing::warn!(path = %uninstall::plugin_path(dir).display(), error = %e,
                "could not remove the kube-ovn CNI plugin"),
        }
    }
    // The pods' attachments: their ports and interfaces go, as at a DEL (the plugin that
    // would run it is gone).
    let (removed, errors) = cleaner
        .remove_every_attachment(std::time::Duration::from_secs(5))
        .await;
    if removed > 0 {
        tracing::info!(removed, "removed every attachment's interface");
    }
    if !errors.is_empty() {
        tracing::warn!(?errors, "could not remove every attachment entirely");
    }
    if let Some(nic) = opts.tunnel_nic().filter(|_| opts.datapath_type == "netdev") {
        let cfg = tunnel_config(opts, nic);
        match tunnel::release(ovs, host, &cfg, known).await {
            Ok(moved) => tracing::info!(nic, bridge = %cfg.bridge, moved,
                "tunnel NIC has its addresses and routes back"),
            Err(e) => tracing::warn!(nic, bridge = %cfg.bridge, error = %e,
                "could not give the tunnel NIC its addresses back"),
        }
    }
}

fn tunnel_config(opts: &Options, nic: &str) -> TunnelConfig {
    TunnelConfig {
        nic: nic.to_owned(),
        bridge: opts.dpdk_tunnel_iface.clone(),
        timeout: std::time::Duration::from_secs(30),
    }
}

/// This node's `ovn-encap-ip`: `--encap-ip`, else the address of `--iface`. With the userspace
/// datapath and `--iface`, the NIC goes onto its OVS bridge first ([`tunnel::ensure`]).
async fn tunnel_endpoint(
    opts: &Options,
    ovs: &ovn_api::rpc::Client,
    host: &daemon::netns::Netns,
) -> anyhow::Result<(String, tunnel::Recorded)> {
    let netdev = opts.datapath_type == "netdev";
    let mut record = tunnel::Recorded::default();
    let from_nic = match opts.tunnel_nic() {
        Some(nic) if netdev => {
            let cfg = tunnel_config(opts, nic);
            let ep = tunnel::ensure(ovs, host, &cfg).await.with_context(|| {
                format!("putting tunnel interface {nic} on bridge {}", cfg.bridge)
            })?;
            tracing::info!(nic, bridge = %cfg.bridge, addresses = ?ep.addresses,
                changed = ep.changed, "tunnel endpoint on its OVS bridge");
            record = ep.record.clone();
            ep.encap_ip()
        }
        Some(nic) => Some(
            tunnel::nic_address(host, nic)
                .await
                .with_context(|| format!("reading the address of tunnel interface {nic}"))?,
        ),
        None => None,
    };
    let encap_ip = match (opts.encap_ip(), from_nic) {
        (Some(ip), _) => ip.to_owned(),
        (None, Some(ip)) => ip.to_string(),
        (None, None) => anyhow::bail!("{}", daemon::options::OptionsError::NoTunnelEndpoint),
    };
    if netdev
        && opts.tunnel_nic().is_none()
        && let Ok(ip) = encap_ip.parse()
    {
        let holder = tunnel::holder_of(host, ip).await.ok().flatten();
        let on_ovs = holder
            .as_deref()
            .is_some_and(|name| ovs::bridge_exists(ovs, name));
        if !on_ovs {
            tracing::warn!(%encap_ip, interface = ?holder,
                    "with the userspace datapath (netdev) geneve and vxlan between nodes need \
                     the tunnel address on an OVS bridge; set --iface (IFACE, chart value \
                     agent.interface) to a NIC that carries only the tunnel");
        }
    }
    Ok((encap_ip, record))
}

/// `kube-ovn-daemon nat-gateway`: the VPC NAT gateway agent, until SIGTERM or SIGINT.
async fn nat_gateway() -> anyhow::Result<()> {
    let opts = AgentOptions::parse_from(std::env::args_os().skip(1));
    admin::init_logging(opts.log_json);
    let client = admin::kube_client(opts.kubeconfig.as_deref()).await?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    };
    natgw::agent::run(client, &opts, shutdown)
        .await
        .with_context(|| format!("NAT gateway agent for VpcNatGateway {}", opts.gateway))
}
