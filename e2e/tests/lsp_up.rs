//! `Logical_Switch_Port.up` as OVN really sets it (L1): ovn-controller claims a port, ovn-northd
//! turns `up` from `[false]` to `[true]`, and back when the port goes away. Our NB replica must
//! equal the server after every step and read the typed row without error. Before the fix the
//! replica toggled the optional column into `{false, true}` and every later reconcile of a
//! running pod failed with "table Logical_Switch_Port column up: expected at most one value,
//! got 2" (issue 19); the controller tests run without ovn-controller, so `up` never changed
//! there.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::time::Duration;

use e2e::ovn::{OvnCentral, OvnNode, unique};
use ovn_api::tables::nb;
use ovn_api::testing::{Rows, dump_rows, replica_rows};
use ovn_api::value::{Atom, Datum};
use ovn_api::{Client, ClientConfig};

const WAIT: Duration = Duration::from_secs(60);

/// `ovsdb-client dump` of one NB table, parsed with the replica's schema.
fn dump(central: &OvnCentral, replica: &ovn_api::replica::Replica, table: &str) -> Rows {
    let schema = replica.table(table).unwrap().schema().clone();
    dump_rows(&central.nb_remote(), "OVN_Northbound", &schema).unwrap()
}

/// An internal port `tap1` on br-int for the logical port `port` (ovn-controller claims it).
fn plug(node: &OvnNode, port: &str) {
    node.plug_internal("tap1", port).unwrap();
}

/// The port's `up` in a dump: `None` when empty.
fn up_of(rows: &Rows, port: &str) -> Option<Option<bool>> {
    let row = rows.values().find(|r| r["name"] == Datum::scalar(port))?;
    Some(match &row["up"] {
        Datum::Set(s) if s.is_empty() => None,
        Datum::Set(s) if s.len() == 1 => Some(s[0] == Atom::Boolean(true)),
        other => panic!("the server holds up={other:?}"),
    })
}

/// Waits (on the replica's updates, each of which may be northd's write) until the server has
/// the port's `up` at `want` and the replica equals the server; then reads every port typed.
async fn expect_up(central: &OvnCentral, client: &Client, port: &str, want: Option<bool>) {
    let settled = client
        .wait_until(WAIT, |r| {
            let server = dump(central, r, "Logical_Switch_Port");
            up_of(&server, port) == Some(want) && replica_rows(r, "Logical_Switch_Port") == server
        })
        .await;
    let server = dump(central, &client.replica(), "Logical_Switch_Port");
    let replica = replica_rows(&client.replica(), "Logical_Switch_Port");
    assert!(
        settled.is_ok(),
        "port {port}: want up={want:?}; server has {:?}\nreplica {replica:?}\nserver {server:?}\n(logs: {})",
        up_of(&server, port),
        central.log_dir().display()
    );
    let ports = client.replica().list::<nb::LogicalSwitchPort>().unwrap();
    let p = ports.iter().find(|p| p.name == port).unwrap();
    assert_eq!(p.up, want, "typed read of {port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lsp_up_set_by_ovn_controller_and_northd_reads_back_typed() {
    let central = OvnCentral::start().unwrap();
    let mut node = OvnNode::start("kovn-up").unwrap();
    let chassis = unique("chassis");
    node.join(&central.sb_remote(), &chassis).unwrap();

    let client = Client::connect(
        ClientConfig::new(central.nb_remote(), "OVN_Northbound")
            .typed::<nb::LogicalSwitch>()
            .typed::<nb::LogicalSwitchPort>(),
    )
    .await
    .unwrap();
    let port = "p1.default.net.default.ovn";
    central.nbctl(&["ls-add", "s1"]).unwrap();
    central
        .nbctl(&[
            "lsp-add",
            "s1",
            port,
            "--",
            "lsp-set-addresses",
            port,
            "0a:00:00:00:00:01 10.0.0.2",
        ])
        .unwrap();
    // northd writes `up: [false]` for a port nobody has claimed.
    expect_up(&central, &client, port, Some(false)).await;

    // ovn-controller claims it: `[false] → [true]`.
    plug(&node, port);
    expect_up(&central, &client, port, Some(true)).await;

    // The port leaves the node: `[true] → [false]`; and comes back.
    node.vsctl(&["del-port", "br-int", "tap1"]).unwrap();
    expect_up(&central, &client, port, Some(false)).await;
    plug(&node, port);
    expect_up(&central, &client, port, Some(true)).await;
}
