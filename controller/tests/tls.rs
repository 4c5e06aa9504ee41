//! NB over TLS (issue 16 item 2): the controller's `--ovn-ssl-*` flags, checked at start-up,
//! carry it to an `ssl:` NB (a real ovsdb-server listening with `pssl:` and a throw-away PKI),
//! where it writes as over `tcp:`; the same port refuses a plaintext client; the binary stops
//! at once, naming the flags, when an `ssl:` remote comes without them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use controller::options::Options;
use controller::run::{self, RunConfig};
use e2e::k8s::ControlPlane;
use ovn_api::tables::nb::LogicalSwitch;
use ovn_api::testing::{OvsdbServer, SchemaKind};
use ovn_api::{Client, ClientConfig};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn the_controller_writes_nb_over_tls_and_the_tls_port_refuses_plaintext() {
    let cp = ControlPlane::start().await.unwrap();
    let client = cp.client();
    e2e::cluster::install_crds(&client).await.unwrap();
    // NB's certificate names no address (as `ovs-pki` makes them): the controller checks the
    // chain to the CA, as OVN's own clients do.
    let nb = OvsdbServer::start_with_ssl_names(SchemaKind::Northbound, "").unwrap();
    let ssl = nb.ssl_remote().unwrap();
    let pki = nb.pki().unwrap().clone();

    // The flags as the chart passes them, checked as main() checks them.
    let options = Options::try_parse_from([
        "kube-ovn-controller".to_owned(),
        format!("--ovn-nb-addr={ssl}"),
        format!("--ovn-ssl-ca-cert={}", pki.ca_cert.display()),
        format!("--ovn-ssl-cert={}", pki.client_cert.display()),
        format!("--ovn-ssl-key={}", pki.client_key.display()),
    ])
    .unwrap();
    let config = RunConfig {
        nb_tls: options.validate().unwrap(),
        nat_gateway_image: controller::options::DEFAULT_NAT_GATEWAY_IMAGE.to_owned(),
        nb_remotes: options.ovn_nb_addr.clone(),
        gc_interval: Duration::from_secs(30),
        workers: 2,
        metrics: Default::default(),
    };
    assert!(config.nb_tls.is_some());
    let ctx = run::start(client.clone(), &config).await.unwrap();
    let controller = tokio::spawn(run::run(Arc::clone(&ctx), config));

    // A Subnet becomes its logical switch, written over the TLS connection; read back through
    // the server's own unix socket.
    common::network(
        &client,
        "tls-net",
        "tls-net.default.ovn",
        "tls-vpc",
        "tls-subnet",
        "10.166.0.0/24",
    )
    .await;
    let reader =
        Client::connect(ClientConfig::new(nb.remote(), "OVN_Northbound").typed::<LogicalSwitch>())
            .await
            .unwrap();
    let start = Instant::now();
    while reader
        .replica()
        .one_by_name::<LogicalSwitch>("tls-subnet")
        .unwrap()
        .is_none()
    {
        assert!(
            start.elapsed() < WAIT,
            "no logical switch tls-subnet written over {ssl}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The TLS port speaks nothing else: a plaintext client gets no session.
    let port = ssl.rsplit(':').next().unwrap();
    let mut plain = ClientConfig::new(format!("tcp:127.0.0.1:{port}"), "OVN_Northbound");
    plain.request_timeout = Duration::from_secs(2);
    plain.backoff_min = Duration::from_millis(50);
    let refused = Client::connect(plain).await;
    assert!(
        refused.is_err(),
        "a plaintext client got a session on {ssl}"
    );
    controller.abort();
}

/// Each wrong combination stops the binary before it does anything (exit 2, nothing but the
/// message), naming what to fix.
#[test]
fn the_binary_stops_at_start_naming_the_missing_or_unused_tls_flags() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ovn_api::testing::TestPki::generate(dir.path()).unwrap();
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let ca = format!("--ovn-ssl-ca-cert={}", pki.ca_cert.display());
    let cert = format!("--ovn-ssl-cert={}", pki.client_cert.display());
    let key = format!("--ovn-ssl-key={}", pki.client_key.display());
    let missing_key = format!("--ovn-ssl-key={}", dir.path().join("gone.key").display());
    let wrong_key = format!("--ovn-ssl-key={}", pki.server_key.display());
    let bad_ca = format!("--ovn-ssl-ca-cert={}", not_pem.display());
    let bad_cert = format!("--ovn-ssl-cert={}", not_pem.display());
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--ovn-nb-addr=ssl:127.0.0.1:6641"],
            vec![
                "ssl:",
                "missing: --ovn-ssl-ca-cert, --ovn-ssl-cert, --ovn-ssl-key",
            ],
        ),
        (
            vec!["--ovn-nb-addr=tcp:127.0.0.1:6641,ssl:127.0.0.2:6641", &ca],
            vec!["missing: --ovn-ssl-cert, --ovn-ssl-key"],
        ),
        (
            vec!["--ovn-nb-addr=tcp:127.0.0.1:6641", &ca, &cert, &key],
            vec!["no ssl: remote", "plaintext"],
        ),
        (
            vec!["--ovn-nb-addr=ssl:127.0.0.1:6641", &ca, &cert, &missing_key],
            vec!["gone.key"],
        ),
        (
            vec!["--ovn-nb-addr=ssl:127.0.0.1:6641", &ca, &cert, &wrong_key],
            vec!["TLS files for NB"],
        ),
        (
            vec!["--ovn-nb-addr=ssl:127.0.0.1:6641", &bad_ca, &cert, &key],
            vec!["CA", "not.pem"],
        ),
        (
            vec!["--ovn-nb-addr=ssl:127.0.0.1:6641", &ca, &bad_cert, &key],
            vec!["certificate", "not.pem", "no PEM certificate"],
        ),
        (vec!["--ovn-nb-addr=ssl:127.0.0.1"], vec!["--ovn-nb-addr"]),
    ];
    for (args, expect) in cases {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kube-ovn-controller"))
            .args(&args)
            // No cluster to reach: the check must come before any API call.
            .env("KUBECONFIG", dir.path().join("no-kubeconfig"))
            .env_remove("OVN_NB_ADDR")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        for e in expect {
            assert!(stderr.contains(e), "{args:?}: {e:?} not in {stderr}");
        }
    }
}
