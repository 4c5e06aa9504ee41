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

/// A server certificate that does not name the address connected to (here one with only a
/// DNS name, and one with no name at all, as `ovs-pki` makes them): refused when the name is
/// checked, accepted when only the chain is (OVN's own clients' check); a certificate of
/// another CA stays refused either way.
#[tokio::test]
async fn the_server_name_is_checked_only_when_asked() {
    for names in ["DNS:ovn-central", ""] {
        let server = OvsdbServer::start_with_ssl_names(SchemaKind::Northbound, names).unwrap();
        let connect = |tls: ovn_api::TlsConfig| {
            let mut cfg = ClientConfig::new(server.ssl_remote().unwrap(), "OVN_Northbound");
            cfg.tls = Some(tls);
            cfg.request_timeout = Duration::from_millis(700);
            cfg.backoff_min = Duration::from_millis(20);
            Client::connect(cfg)
        };
        let named = server.pki().unwrap().client_config();
        let e = connect(named.clone()).await.unwrap_err().to_string();
        assert!(
            e.contains("handshake") && e.contains("not valid for name"),
            "{names:?}: {e}"
        );
        let chain_only = ovn_api::TlsConfig {
            check_server_name: false,
            ..named
        };
        let c = connect(chain_only).await.unwrap();
        let mut tx = Txn::new();
        tx.insert(&nb::LogicalSwitch {
            name: "chain-only".into(),
            ..Default::default()
        });
        c.commit(tx).await.unwrap();

        let dir = tempfile::tempdir().unwrap();
        let other = TestPki::generate_for(dir.path(), names).unwrap();
        let e = connect(ovn_api::TlsConfig {
            check_server_name: false,
            ..other.client_config()
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("handshake"), "{names:?}: {e}");
    }
}
