//! `ovn_api::unixctl` against a real daemon's control socket (ovsdb-server, as `ovs-appctl`
//! talks to it), and against peers that misbehave.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::time::Duration;

use ovn_api::testing::{OvsdbServer, SchemaKind};
use ovn_api::{Error, unixctl};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_real_daemon_answers_and_refuses_what_it_does_not_know() {
    let server = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    let ctl = server.dir().join("ctl");
    // start() returns once the database socket answers; the control socket comes a moment
    // later (measured: absent once under CI load).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !ctl.exists() {
        assert!(std::time::Instant::now() < deadline, "no {}", ctl.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let version = unixctl::call(&ctl, "version", &[], WAIT).await.unwrap();
    assert!(version.contains("ovsdb-server"), "{version}");
    let dbs = unixctl::call(&ctl, "ovsdb-server/list-dbs", &[], WAIT)
        .await
        .unwrap();
    assert!(dbs.lines().any(|l| l == "OVN_Northbound"), "{dbs}");
    // As ovs-appctl prints it.
    let e = unixctl::call(&ctl, "no/such-command", &["x"], WAIT)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Rpc { error, .. } if error.contains("not a valid command")),
        "{e}"
    );
}

#[tokio::test]
async fn a_missing_silent_closing_or_garbled_peer_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = unixctl::call(&dir.path().join("gone.ctl"), "version", &[], WAIT)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");

    for (name, behaviour) in [
        ("silent", 0),
        ("closing", 1),
        ("garbled", 2),
        ("no-text", 3),
    ] {
        let path = dir.path().join(format!("{name}.ctl"));
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let peer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf).await;
            match behaviour {
                0 => tokio::time::sleep(Duration::from_secs(5)).await,
                1 => {}
                2 => s.write_all(b"{\"id\":0,\"result\":]").await.unwrap(),
                _ => s
                    .write_all(br#"{"id":0,"result":7,"error":null}"#)
                    .await
                    .unwrap(),
            }
        });
        let e = unixctl::call(&path, "status", &[], Duration::from_millis(300))
            .await
            .unwrap_err();
        let ok = match behaviour {
            0 => matches!(e, Error::Timeout { .. }),
            1 => matches!(e, Error::Disconnected { .. }),
            _ => matches!(e, Error::Protocol { .. }),
        };
        assert!(ok, "{name}: {e}");
        peer.abort();
    }
}
