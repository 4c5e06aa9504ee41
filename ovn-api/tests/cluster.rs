//! A 3-member RAFT cluster: the client finds the leader, follows a new one when the leader is
//! killed during a write loop, and every acknowledged write is present afterwards.

// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ovn_api::tables::nb;
use ovn_api::testing::{OvsdbCluster, SchemaKind};
use ovn_api::txn::Txn;
use ovn_api::{Client, ClientConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_leader_and_keeps_acknowledged_writes() {
    let cluster = OvsdbCluster::start(SchemaKind::Northbound, 3).unwrap();
    let leader =
        tokio::task::block_in_place(|| cluster.wait_for_leader(Duration::from_secs(20))).unwrap();
    let cluster = std::sync::Arc::new(std::sync::Mutex::new(cluster));
    let remotes = cluster.lock().unwrap().remotes();
    let leader_remote = cluster.lock().unwrap().remote(leader);

    let mut cfg = ClientConfig::new(remotes, "OVN_Northbound").typed::<nb::LogicalSwitch>();
    cfg.backoff_min = Duration::from_millis(50);
    cfg.backoff_max = Duration::from_millis(500);
    cfg.request_timeout = Duration::from_secs(20);
    let c = Client::connect(cfg).await.unwrap();
    assert_eq!(
        c.current_remote().as_deref(),
        Some(leader_remote.as_str()),
        "connected to the leader"
    );

    // The leader is killed by another task while the write loop runs, so the kill lands at
    // any point of a transaction.
    let (progress, mut seen) = tokio::sync::watch::channel(0usize);
    let killer = {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            while *seen.borrow_and_update() < 20 {
                seen.changed().await.unwrap();
            }
            tokio::task::block_in_place(|| cluster.lock().unwrap().kill(leader));
        })
    };

    let mut updates = c.subscribe();
    let mut acked = BTreeSet::new();
    let mut unknown = 0;
    let start = Instant::now();
    for i in 0..60 {
        progress.send_replace(i);
        let ls = nb::LogicalSwitch {
            name: format!("ls{i}"),
            ..Default::default()
        };
        loop {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "write loop took too long"
            );
            let mut tx = Txn::new();
            let n = tx.insert(&ls);
            match c.commit(tx).await {
                Ok(done) => {
                    acked.insert(done.uuid(&n).unwrap());
                    break;
                }
                // Outcome unknown (or not applied): retry; only Ok counts as acknowledged.
                Err(e) if e.is_transient() => unknown += 1,
                Err(e) => panic!("write {i}: {e}"),
            }
        }
    }
    killer.await.unwrap();
    assert_eq!(acked.len(), 60);
    let now = c.current_remote().unwrap();
    assert_ne!(now, leader_remote, "moved off the killed leader");
    assert!(c.sessions() >= 2);
    eprintln!("failover: {unknown} retried writes, now on {now}");
    // The new session resumed the monitor from the last transaction id (clustered servers
    // keep a transaction history), so it did not download the whole database again.
    let mut resumed = false;
    while let Ok(u) = updates.try_recv() {
        resumed |= u.resumed;
    }
    assert!(resumed, "monitor_cond_since resumed after failover");

    // Every acknowledged write is in the replica...
    c.wait_until(Duration::from_secs(20), |r| {
        let t = r.table("Logical_Switch").unwrap();
        acked.iter().all(|u| t.get(u).is_some())
    })
    .await
    .unwrap();

    // ...and on the new leader as a fresh client sees it; the old leader, restarted, catches up.
    tokio::task::block_in_place(|| cluster.lock().unwrap().restart(leader)).unwrap();
    let mut cfg = ClientConfig::new(leader_remote, "OVN_Northbound").typed::<nb::LogicalSwitch>();
    cfg.leader_only = false;
    let old = Client::connect(cfg).await.unwrap();
    old.wait_until(Duration::from_secs(30), |r| {
        let t = r.table("Logical_Switch").unwrap();
        acked.iter().all(|u| t.get(u).is_some())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_only_skips_followers() {
    let cluster = OvsdbCluster::start(SchemaKind::Northbound, 3).unwrap();
    let leader =
        tokio::task::block_in_place(|| cluster.wait_for_leader(Duration::from_secs(20))).unwrap();
    let follower = (leader + 1) % 3;
    // Only a follower listed: leader-only never settles on it.
    let mut cfg = ClientConfig::new(cluster.remote(follower), "OVN_Northbound");
    cfg.request_timeout = Duration::from_millis(800);
    cfg.backoff_min = Duration::from_millis(20);
    assert!(Client::connect(cfg).await.is_err());
    // Without leader-only it connects to the follower, whose writes go through the leader.
    let mut cfg =
        ClientConfig::new(cluster.remote(follower), "OVN_Northbound").typed::<nb::LogicalSwitch>();
    cfg.leader_only = false;
    let c = Client::connect(cfg).await.unwrap();
    let mut tx = Txn::new();
    tx.insert(&nb::LogicalSwitch {
        name: "via-follower".into(),
        ..Default::default()
    });
    c.commit(tx).await.unwrap();
    assert_eq!(
        c.replica()
            .by_name::<nb::LogicalSwitch>("via-follower")
            .unwrap()
            .len(),
        1
    );
}

/// The leader leaves the cluster without dropping our connection: the `_Server` monitor tells
/// the client, which moves to the new leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_when_leadership_moves_without_a_disconnect() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let cluster = OvsdbCluster::start(SchemaKind::Northbound, 3).unwrap();
    let leader =
        tokio::task::block_in_place(|| cluster.wait_for_leader(Duration::from_secs(20))).unwrap();
    let mut cfg =
        ClientConfig::new(cluster.remotes(), "OVN_Northbound").typed::<nb::LogicalSwitch>();
    cfg.backoff_min = Duration::from_millis(50);
    cfg.backoff_max = Duration::from_millis(500);
    cfg.request_timeout = Duration::from_secs(20);
    let c = Client::connect(cfg).await.unwrap();
    assert_eq!(c.current_remote().unwrap(), cluster.remote(leader));
    let sessions = c.sessions();
    tokio::task::block_in_place(|| cluster.appctl(leader, &["cluster/leave", "OVN_Northbound"]))
        .unwrap();
    // The next write goes to the new leader (commit waits for the new session).
    let mut errors = Vec::new();
    let moved = loop {
        let mut tx = Txn::new();
        tx.insert(&nb::LogicalSwitch {
            name: "after-leave".into(),
            ..Default::default()
        });
        match c.commit(tx).await {
            Ok(_) => break c.current_remote().unwrap(),
            Err(e) if e.is_transient() && errors.len() < 5 => errors.push(e.to_string()),
            Err(e) => panic!("{e} (earlier: {errors:?})"),
        }
    };
    assert_ne!(moved, cluster.remote(leader), "errors: {errors:?}");
    assert!(c.sessions() > sessions);
    assert_ne!(c.current_remote().unwrap(), cluster.remote(leader));
}
