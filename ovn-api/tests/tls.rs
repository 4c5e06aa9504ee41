//! `ssl:` remotes with a client certificate against ovsdb-server's `pssl:`.

// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ovn_api::tables::nb;
use ovn_api::testing::{OvsdbServer, SchemaKind, TestPki};
use ovn_api::txn::Txn;
use ovn_api::{Client, ClientConfig, Error};

#[tokio::test]
async fn transact_and_monitor_over_tls() {
    let server = OvsdbServer::start_with_ssl(SchemaKind::Northbound).unwrap();
    let mut cfg = ClientConfig::new(server.ssl_remote().unwrap(), "OVN_Northbound")
        .typed::<nb::LogicalSwitch>();
    cfg.tls = Some(server.pki().unwrap().client_config());
    let c = Client::connect(cfg).await.unwrap();
    let mut tx = Txn::new();
    tx.insert(&nb::LogicalSwitch {
        name: "over-tls".into(),
        ..Default::default()
    });
    c.commit(tx).await.unwrap();
    assert_eq!(
        c.replica()
            .by_name::<nb::LogicalSwitch>("over-tls")
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn wrong_ca_or_missing_config_is_a_clear_error() {
    let server = OvsdbServer::start_with_ssl(SchemaKind::Northbound).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let other = TestPki::generate(dir.path()).unwrap();
    let mut cfg = ClientConfig::new(server.ssl_remote().unwrap(), "OVN_Northbound");
    cfg.tls = Some(other.client_config());
    cfg.request_timeout = Duration::from_millis(700);
    cfg.backoff_min = Duration::from_millis(20);
    let e = Client::connect(cfg).await.unwrap_err().to_string();
    assert!(e.contains("TLS error") && e.contains("handshake"), "{e}");

    let mut cfg = ClientConfig::new(server.ssl_remote().unwrap(), "OVN_Northbound");
    cfg.request_timeout = Duration::from_millis(300);
    let e = Client::connect(cfg).await.unwrap_err();
    assert!(
        matches!(e, Error::Timeout { .. }) && e.to_string().contains("needs a TlsConfig"),
        "{e}"
    );
}
