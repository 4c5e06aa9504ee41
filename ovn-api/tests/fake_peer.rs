//! A fake peer sends malformed, truncated and oversized JSON-RPC: the connection fails with an
//! error naming the problem, in-flight calls return errors, nothing panics or hangs.

// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ovn_api::rpc::{Connection, ConnectionOptions};
use ovn_api::{Client, ClientConfig, Error};
use proptest::prelude::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

const T: Duration = Duration::from_secs(5);

fn opts(max: usize) -> ConnectionOptions {
    ConnectionOptions {
        probe_interval: Duration::from_secs(30),
        max_message: max,
    }
}

/// Starts a call, lets the peer send `bytes` (and optionally close), returns the call's result.
async fn call_against(
    bytes: Vec<u8>,
    close: bool,
    max: usize,
) -> ovn_api::Result<serde_json::Value> {
    let (ours, mut peer): (DuplexStream, DuplexStream) = tokio::io::duplex(1 << 20);
    let (conn, _notes) = Connection::over(ours, "fake".into(), opts(max));
    let call = tokio::spawn(async move { conn.call("transact", json!(["X"])).await });
    // Wait for the request to arrive, then answer with the bytes.
    let mut buf = vec![0u8; 4096];
    let n = peer.read(&mut buf).await.unwrap();
    assert!(n > 0);
    peer.write_all(&bytes).await.unwrap();
    if close {
        drop(peer);
        tokio::time::timeout(T, call)
            .await
            .expect("call must finish")
            .unwrap()
    } else {
        let r = tokio::time::timeout(T, call)
            .await
            .expect("call must finish")
            .unwrap();
        drop(peer);
        r
    }
}

#[tokio::test]
async fn valid_reply_is_matched_by_id() {
    let r = call_against(
        br#"{"id":1,"result":[{"count":0}],"error":null}"#.to_vec(),
        false,
        1 << 20,
    )
    .await
    .unwrap();
    assert_eq!(r, json!([{"count": 0}]));
}

#[tokio::test]
async fn rpc_error_reply_is_an_error() {
    let e = call_against(
        br#"{"id":1,"result":null,"error":"unknown database"}"#.to_vec(),
        false,
        1 << 20,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, Error::Rpc { method, error, .. } if method == "transact" && error.contains("unknown database")),
        "{e}"
    );
}

#[tokio::test]
async fn malformed_json_fails_the_connection() {
    for bad in [
        &b"{\"id\":1,\"result\":}"[..],
        b"hello",
        b"[1,2,3]",
        b"{\"id\":\"x\",\"result\":1}",
        b"{\"id\":99,\"result\":1,\"error\":null}",
        b"{}",
    ] {
        let e = call_against(bad.to_vec(), false, 1 << 20)
            .await
            .unwrap_err();
        let s = e.to_string();
        assert!(matches!(e, Error::Disconnected { .. }), "{s}");
        assert!(
            s.contains("protocol error") || s.contains("invalid JSON"),
            "{}: {s}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[tokio::test]
async fn truncated_reply_then_close_is_an_error() {
    let e = call_against(br#"{"id":1,"result":[{"cou"#.to_vec(), true, 1 << 20)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("middle of a message"), "{e}");
}

#[tokio::test]
async fn oversized_reply_is_an_error() {
    let big = format!(
        r#"{{"id":1,"result":"{}","error":null}}"#,
        "a".repeat(10_000)
    );
    let e = call_against(big.into_bytes(), false, 1024)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("exceeds the limit of 1024 bytes"),
        "{e}"
    );
}

#[tokio::test]
async fn answers_echo_and_times_out_a_silent_peer() {
    let (ours, mut peer) = tokio::io::duplex(1 << 16);
    let (conn, _notes) = Connection::over(
        ours,
        "fake".into(),
        ConnectionOptions {
            probe_interval: Duration::from_millis(100),
            max_message: 1 << 20,
        },
    );
    peer.write_all(br#"{"method":"echo","params":["hi"],"id":"e1"}"#)
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(T, peer.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
    assert_eq!(reply, json!({"id": "e1", "result": ["hi"], "error": null}));
    // Now stay silent: we get an echo probe, ignore it, and the connection must close.
    let n = tokio::time::timeout(T, peer.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let probe: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
    assert_eq!(probe["method"], "echo");
    let call = conn.call("transact", json!(["X"]));
    let e = tokio::time::timeout(T, call)
        .await
        .expect("probe must close the connection")
        .unwrap_err();
    assert!(
        e.to_string().contains("inactivity probe") || matches!(e, Error::Disconnected { .. }),
        "{e}"
    );
    assert!(conn.is_closed());
}

/// A fake unix server that answers everything with garbage: connect gives up with an error.
#[tokio::test]
async fn client_against_garbage_server_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"{\"id\":1,\"result\":[\"set\",").await;
                let _ = s.write_all(b"\x00\xff not json").await;
            });
        }
    });
    let mut cfg = ClientConfig::new(format!("unix:{}", path.display()), "OVN_Northbound")
        .monitor_table("Logical_Switch");
    cfg.request_timeout = Duration::from_millis(500);
    cfg.backoff_min = Duration::from_millis(10);
    cfg.backoff_max = Duration::from_millis(50);
    let e = Client::connect(cfg).await.unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    server.abort();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever bytes the peer sends before closing, the call finishes (Ok or Err) and
    /// nothing panics.
    #[test]
    fn arbitrary_peer_bytes_never_panic_or_hang(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..5),
                                               json_like in "[{}\\[\\]\":,a-z0-9 ]{0,100}") {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut bytes: Vec<u8> = chunks.concat();
            bytes.extend(json_like.as_bytes());
            let (ours, mut peer) = tokio::io::duplex(1 << 16);
            let (conn, _notes) = Connection::over(ours, "fake".into(), opts(512));
            let call = tokio::spawn(async move { conn.call("transact", json!(["X"])).await });
            let mut buf = vec![0u8; 4096];
            let _ = peer.read(&mut buf).await;
            let _ = peer.write_all(&bytes).await;
            // A valid reply after the garbage: either the garbage already failed the stream,
            // or (if it was only whitespace/complete notifications) this answers the call.
            let _ = peer.write_all(br#"{"id":1,"result":1,"error":null}"#).await;
            // Closing makes any incomplete message a truncation, so the call must finish.
            drop(peer);
            let r = tokio::time::timeout(T, call).await;
            prop_assert!(r.is_ok(), "call hung");
            prop_assert!(r.unwrap().is_ok(), "task panicked");
            Ok(())
        })?;
    }
}

/// Dropping the last handle closes the socket (no leaked connection answering echoes).
#[tokio::test]
async fn dropping_the_connection_closes_the_socket() {
    let (ours, mut peer) = tokio::io::duplex(1 << 16);
    let (conn, _notes) = Connection::over(ours, "fake".into(), opts(1 << 20));
    let clone = conn.clone();
    drop(conn);
    drop(clone);
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(T, peer.read(&mut buf))
        .await
        .expect("peer sees EOF")
        .unwrap();
    assert_eq!(n, 0);
}
