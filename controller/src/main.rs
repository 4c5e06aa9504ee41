//! `kube-ovn-controller` entry point.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use controller::leader;
use controller::metrics::Metrics;
use controller::options::{LogFormat, Options, translate_upstream_flags};
use controller::run::{self, RunConfig};
use crds::admin;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Upstream's flags (copied manifests) are renamed, dropped with a warning, or refused.
    let translated = match translate_upstream_flags(std::env::args_os()) {
        Ok(t) => t,
        Err(err) => {
            eprintln!("kube-ovn-controller: {err}");
            std::process::exit(2);
        }
    };
    let options = Options::parse_from(translated.args);
    let nb_tls = match options.validate() {
        Ok(tls) => tls,
        Err(err) => {
            eprintln!("kube-ovn-controller: {err}");
            std::process::exit(2);
        }
    };
    admin::init_logging(options.log_format == LogFormat::Json);
    for warning in &translated.warnings {
        tracing::warn!("{warning}");
    }
    let client = admin::kube_client(options.kubeconfig.as_deref()).await?;
    if options.remove_finalizers {
        let report = controller::uninstall::remove_finalizers(&client).await?;
        tracing::info!(
            patched = report.patched,
            untouched = report.untouched,
            failed = report.failed.len(),
            "removed Kube-OVN finalizers"
        );
        if !report.failed.is_empty() {
            anyhow::bail!("could not patch: {}", report.failed.join("; "));
        }
        return Ok(());
    }
    if options.apply_crds {
        let report = controller::crd_upgrade::apply_crds(&client).await?;
        tracing::info!(
            created = ?report.created,
            updated = ?report.updated,
            unchanged = report.unchanged.len(),
            "applied the Kube-OVN CRDs"
        );
        return Ok(());
    }
    let metrics = Arc::new(Metrics::new());
    // Served by every replica, leader or not, so a follower is visibly alive.
    if let Some(addr) = admin::parse_addr("--metrics-addr", &options.metrics_addr)? {
        let listener = admin::bind("--metrics-addr", addr).await?;
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
        tokio::spawn(admin::serve(
            listener,
            metrics.admin_routes(),
            std::future::pending(),
        ));
    }
    // Every replica answers admission requests, leader or not (the Service picks any).
    if let Some(addr) = admin::parse_addr("--webhook-addr", &options.webhook_addr)? {
        let tls = controller::webhook::acceptor(&options.webhook_cert_dir)?;
        let listener = admin::bind("--webhook-addr", addr).await?;
        tracing::info!(%addr, path = controller::webhook::PATH, "serving the pod admission webhook");
        tokio::spawn(controller::webhook::serve(
            listener,
            tls,
            std::future::pending(),
        ));
    }
    let config = RunConfig {
        metrics,
        nb_remotes: options.ovn_nb_addr.clone(),
        nb_tls,
        gc_interval: Duration::from_secs(options.gc_interval),
        workers: options.workers,
        nat_gateway_image: options.nat_gateway_image.clone(),
    };
    if options.leader_elect {
        let identity = options
            .leader_elect_identity
            .clone()
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
            })
            .unwrap_or_else(|| format!("kube-ovn-controller-{}", std::process::id()));
        let lease = leader::LeaseConfig {
            namespace: options.leader_elect_namespace.clone(),
            name: options.leader_elect_lease.clone(),
            identity,
            duration: Duration::from_secs(options.leader_elect_lease_seconds),
        };
        let lost = run::run_with_leader(client, config, lease).await;
        // Another replica may be reconciling already: exit, the Deployment restarts us.
        if let Err(e) = lost {
            tracing::error!(error = %e, "stopping");
            std::process::exit(1);
        }
        return Ok(());
    }
    let ctx = run::start(client, &config).await?;
    tracing::info!(nb = %options.ovn_nb_addr, "kube-ovn-controller started (non-primary CNI mode)");
    run::run(ctx, config).await;
    Ok(())
}
