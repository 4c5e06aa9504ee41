//! `kube-ovn-daemon` entry point.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use daemon::metrics::{self, Metrics};
use daemon::options::{Options, translate_upstream_flags};
use daemon::ovs::{self, NodeConfig};
use daemon::pods::KubePods;
use daemon::server::{self, CniService, ServiceConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if opts.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init();
    }
    for warning in &translated.warnings {
        tracing::warn!("{warning}");
    }

    let kube_config = match &opts.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("no in-cluster config and no --kubeconfig")?,
    };
    let client = kube::Client::try_from(kube_config)?;

    let ovs = Arc::new(ovs::connect(&opts.ovs_db).await?);
    ovs::init_node(
        &ovs,
        &NodeConfig {
            bridge: opts.bridge.clone(),
            datapath_type: opts.datapath_type.clone(),
            system_id: opts.node_name.clone(),
            ovn_remote: opts.ovn_remote.clone(),
            encap_type: opts.encap_type.clone(),
            encap_ip: opts.encap_ip.clone(),
        },
    )
    .await?;
    tracing::info!(node = %opts.node_name, bridge = %opts.bridge, datapath = %opts.datapath_type,
        "node initialised");

    let metrics = Arc::new(Metrics::new());
    if let Some(addr) = metrics::parse_addr(&opts.metrics_addr)? {
        let listener = metrics::bind(addr).await?;
        tracing::info!(%addr, "serving metrics on /metrics");
        tokio::spawn(metrics::serve(
            listener,
            metrics.clone(),
            std::future::pending(),
        ));
    }

    // The daemon's own namespace unless told otherwise (read now, before any thread moves).
    let host = daemon::netns::Netns::open(
        opts.host_netns
            .as_deref()
            .unwrap_or(std::path::Path::new("/proc/self/ns/net")),
    )?;
    let service = Arc::new(CniService::new(
        Arc::new(KubePods::new(client)),
        ovs,
        host,
        ServiceConfig {
            bridge: opts.bridge.clone(),
            mtu: opts.mtu,
            disable_tx_checksum: opts.datapath_type == "netdev",
            allocation_timeout: opts.allocation_timeout(),
            install_timeout: opts.install_timeout(),
        },
        metrics,
    ));
    let sweeper = service.clone();
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
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    };
    server::serve(listener, service, shutdown).await?;
    Ok(())
}
