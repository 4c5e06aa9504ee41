//! The node's Open vSwitch database: `br-int`, the settings ovn-controller reads, and one OVS
//! port per pod attachment, all through `ovn-api` (no `ovs-vsctl`).
//!
//! Every row we create carries `external_ids:vendor=kube-ovn`; removal and the sweep touch only
//! such rows.

use std::collections::BTreeMap;
use std::time::Duration;

use crds::naming::EXTERNAL_ID_VENDOR;
use ovn_api::protocol::{Condition, Mutation, OpResult, Operation};
use ovn_api::replica::Replica;
use ovn_api::rpc::{Client, ClientConfig};
use ovn_api::value::{Atom, Datum, Uuid};

/// Tables the daemon reads from its replica.
pub const TABLES: [&str; 4] = ["Open_vSwitch", "Bridge", "Port", "Interface"];

/// `external_ids` keys on a pod's Interface row (the contract in DESIGN §3, plus the attachment
/// identity DEL and GC look up by).
pub mod keys {
    /// The logical switch port name ovn-controller binds.
    pub const IFACE_ID: &str = "iface-id";
    /// Pod name.
    pub const POD_NAME: &str = "pod_name";
    /// Pod namespace.
    pub const POD_NAMESPACE: &str = "pod_namespace";
    /// The pod object's `metadata.uid`, when the runtime passed `K8S_POD_UID`: a pod recreated
    /// under the same name has another, so its predecessor's port is told apart.
    pub const POD_UID: &str = "pod_uid";
    /// Pod network namespace path.
    pub const POD_NETNS: &str = "pod_netns";
    /// Addresses, comma-joined.
    pub const IP: &str = "ip";
    /// The runtime's container id.
    pub const CONTAINER_ID: &str = "container_id";
    /// The interface name in the pod.
    pub const IFNAME: &str = "ifname";
    /// The provider of the attachment's network as its NAD names it (CNI GC is per network).
    pub const PROVIDER: &str = "provider";
    /// Set to `true` by ovn-controller once the port's flows are installed.
    pub const OVN_INSTALLED: &str = "ovn-installed";
}

/// An OVSDB failure, naming what was being done.
#[derive(Debug, thiserror::Error)]
pub enum OvsError {
    /// The database request failed.
    #[error("{what}: {source}")]
    Db {
        /// What was being done.
        what: String,
        /// The client's error.
        source: ovn_api::error::Error,
    },
    /// The integration bridge does not exist.
    #[error("bridge {bridge} does not exist in the local Open vSwitch database")]
    NoBridge {
        /// Bridge name.
        bridge: String,
    },
    /// The database has no `Open_vSwitch` root row.
    #[error("the local Open vSwitch database has no Open_vSwitch row (ovs-vsctl init not run?)")]
    NoRoot,
    /// ovn-controller did not mark the port installed in time.
    #[error(
        "ovn-controller did not set external_ids:ovn-installed=true on interface {ifname} within \
         {}s; is ovn-controller running on this node, and does logical switch port {iface_id} \
         exist in OVN Northbound?",
        waited.as_secs()
    )]
    NotInstalled {
        /// Host interface.
        ifname: String,
        /// The LSP name.
        iface_id: String,
        /// How long we waited.
        waited: Duration,
    },
}

pub(crate) fn db(what: impl Into<String>) -> impl FnOnce(ovn_api::error::Error) -> OvsError {
    let what = what.into();
    move |source| OvsError::Db { what, source }
}

/// Connects to the local database at `remote` (e.g. `unix:/run/openvswitch/db.sock`),
/// monitoring the tables the daemon reads.
pub async fn connect(remote: &str) -> Result<Client, OvsError> {
    let mut config = ClientConfig::new(remote, "Open_vSwitch");
    for table in TABLES {
        config = config.monitor_table(table);
    }
    Client::connect(config)
        .await
        .map_err(db(format!("connecting to Open vSwitch at {remote}")))
}

pub(crate) fn string_map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Datum {
    Datum::map(
        pairs
            .into_iter()
            .map(|(k, v)| (Atom::string(k), Atom::string(v))),
    )
}

pub(crate) fn named(name: &str) -> Datum {
    Datum::scalar(Atom::NamedUuid(name.into()))
}

/// One pod attachment's OVS port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// Integration bridge.
    pub bridge: String,
    /// Host-side interface name (port and interface name).
    pub name: String,
    /// The logical switch port (`iface-id`).
    pub iface_id: String,
    /// Pod name.
    pub pod_name: String,
    /// Pod namespace.
    pub pod_namespace: String,
    /// The pod's UID (empty when the runtime did not pass one: not written).
    pub pod_uid: String,
    /// Pod netns path.
    pub netns: String,
    /// Addresses, comma-joined.
    pub ips: String,
    /// Container id.
    pub container_id: String,
    /// Interface name in the pod.
    pub ifname: String,
    /// The NAD's provider (the network, for CNI GC).
    pub provider: String,
}

impl PortSpec {
    fn external_ids(&self) -> Datum {
        let uid = (!self.pod_uid.is_empty()).then_some((keys::POD_UID, self.pod_uid.as_str()));
        string_map(
            [
                (keys::IFACE_ID, self.iface_id.as_str()),
                (keys::POD_NAME, self.pod_name.as_str()),
                (keys::POD_NAMESPACE, self.pod_namespace.as_str()),
                (keys::POD_NETNS, self.netns.as_str()),
                (keys::IP, self.ips.as_str()),
                (keys::CONTAINER_ID, self.container_id.as_str()),
                (keys::IFNAME, self.ifname.as_str()),
                (keys::PROVIDER, self.provider.as_str()),
                EXTERNAL_ID_VENDOR,
            ]
            .into_iter()
            .chain(uid),
        )
    }
}

/// Port rows (and their Interface rows) named `name`.
fn ports_named(replica: &Replica, name: &str) -> Vec<Uuid> {
    replica
        .table("Port")
        .map(|t| t.by_name(name).map(|r| r.uuid).collect())
        .unwrap_or_default()
}

/// Adds the port in one transaction: Interface + Port rows and the bridge's reference, replacing
/// a stale port of the same name (an interrupted earlier ADD of this attachment).
pub async fn add_port(ovs: &Client, spec: &PortSpec) -> Result<(), OvsError> {
    let stale = ports_named(&ovs.replica(), &spec.name);
    let bridge = || vec![Condition::eq("name", Datum::scalar(spec.bridge.as_str()))];
    let mut ops = Vec::new();
    if !stale.is_empty() {
        ops.push(Operation::Mutate {
            table: "Bridge".into(),
            conditions: bridge(),
            mutations: vec![Mutation::delete(
                "ports",
                Datum::set(stale.into_iter().map(Atom::Uuid)),
            )],
        });
    }
    ops.push(Operation::Insert {
        table: "Interface".into(),
        row: BTreeMap::from([
            ("name".into(), Datum::scalar(spec.name.as_str())),
            ("external_ids".into(), spec.external_ids()),
        ]),
        uuid_name: Some("iface".into()),
    });
    ops.push(Operation::Insert {
        table: "Port".into(),
        row: BTreeMap::from([
            ("name".into(), Datum::scalar(spec.name.as_str())),
            ("interfaces".into(), named("iface")),
            ("external_ids".into(), string_map([EXTERNAL_ID_VENDOR])),
        ]),
        uuid_name: Some("port".into()),
    });
    let mutate_at = ops.len();
    ops.push(Operation::Mutate {
        table: "Bridge".into(),
        conditions: bridge(),
        mutations: vec![Mutation::insert("ports", named("port"))],
    });
    let results = ovs
        .transact(ops)
        .await
        .map_err(db(format!("adding port {} to {}", spec.name, spec.bridge)))?;
    if results.get(mutate_at).and_then(OpResult::count) == Some(0) {
        // The inserted rows are unreferenced and garbage-collected by the server.
        return Err(OvsError::NoBridge {
            bridge: spec.bridge.clone(),
        });
    }
    Ok(())
}

/// Removes every port on `bridge` whose Interface matches `matches`, in one transaction.
/// Returns how many ports were removed. Only rows tagged `vendor=kube-ovn` are considered.
pub async fn remove_ports(
    ovs: &Client,
    bridge: &str,
    matches: impl Fn(&BTreeMap<&str, &str>) -> bool,
    what: &str,
) -> Result<usize, OvsError> {
    let ports: Vec<Uuid> = {
        let replica = ovs.replica();
        let (Some(ifaces), Some(port_table)) = (replica.table("Interface"), replica.table("Port"))
        else {
            return Ok(0);
        };
        let wanted: Vec<Uuid> = ifaces
            .by_external_id(EXTERNAL_ID_VENDOR.0, EXTERNAL_ID_VENDOR.1)
            .filter(|row| matches(&external_ids(row.get("external_ids"))))
            .map(|row| row.uuid)
            .collect();
        port_table
            .rows()
            .filter(|port| {
                port.get("interfaces").is_some_and(|d| {
                    d.as_set()
                        .iter()
                        .any(|a| a.as_uuid().is_some_and(|u| wanted.contains(&u)))
                })
            })
            .map(|port| port.uuid)
            .collect()
    };
    if ports.is_empty() {
        return Ok(0);
    }
    let n = ports.len();
    ovs.transact(vec![Operation::Mutate {
        table: "Bridge".into(),
        conditions: vec![Condition::eq("name", Datum::scalar(bridge))],
        mutations: vec![Mutation::delete(
            "ports",
            Datum::set(ports.into_iter().map(Atom::Uuid)),
        )],
    }])
    .await
    .map_err(db(format!("removing {what} from {bridge}")))?;
    Ok(n)
}

/// The `external_ids` of a row as a string map.
pub fn external_ids(datum: Option<&Datum>) -> BTreeMap<&str, &str> {
    datum
        .map(|d| {
            d.as_map()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?, v.as_str()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits (on the monitor, not by polling) until ovn-controller sets
/// `external_ids:ovn-installed=true` on interface `name`.
pub async fn wait_installed(
    ovs: &Client,
    name: &str,
    iface_id: &str,
    timeout: Duration,
) -> Result<(), OvsError> {
    ovs.wait_until(timeout, |replica| {
        replica.table("Interface").is_some_and(|t| {
            t.by_name(name)
                .any(|row| row.external_id(keys::OVN_INSTALLED) == Some("true"))
        })
    })
    .await
    .map_err(|e| match e {
        ovn_api::error::Error::Timeout { .. } => OvsError::NotInstalled {
            ifname: name.to_owned(),
            iface_id: iface_id.to_owned(),
            waited: timeout,
        },
        other => OvsError::Db {
            what: format!("waiting for ovn-installed on {name}"),
            source: other,
        },
    })
}

/// Node settings for ovn-controller and the integration bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Integration bridge name.
    pub bridge: String,
    /// Datapath type: `system` (kernel) or `netdev` (userspace).
    pub datapath_type: String,
    /// Chassis name (`external_ids:system-id`), usually the node name.
    pub system_id: String,
    /// OVN Southbound remote(s) for ovn-controller.
    pub ovn_remote: String,
    /// Tunnel type (`geneve`).
    pub encap_type: String,
    /// This node's tunnel endpoint address.
    pub encap_ip: String,
}

/// Creates or adopts the integration bridge and writes the `Open_vSwitch` external_ids that
/// ovn-controller reads. Idempotent; one transaction.
pub async fn init_node(ovs: &Client, cfg: &NodeConfig) -> Result<(), OvsError> {
    // ovn-controller creates the integration bridge itself when it starts first. A transaction
    // built on a replica that has not seen that bridge yet fails on the bridge's unique name
    // (measured: "multiple rows in Interface ... identical values (br-int)"); by the next
    // attempt the replica has caught up and the bridge is adopted.
    const ATTEMPTS: u32 = 10;
    let mut attempt = 1;
    loop {
        match init_node_once(ovs, cfg).await {
            Ok(()) => return Ok(()),
            Err(e @ OvsError::Db { .. }) if attempt < ATTEMPTS => {
                tracing::info!(error = %e, attempt, "node init raced another writer; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(100 * u64::from(attempt)))
                    .await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Creates the `Open_vSwitch` root row everything hangs off in a fresh database (what
/// `ovs-vsctl init` would do); nothing when it exists.
pub async fn ensure_root(ovs: &Client) -> Result<(), OvsError> {
    let has_root = ovs
        .replica()
        .table("Open_vSwitch")
        .is_some_and(|t| !t.is_empty());
    if !has_root {
        ovs.transact(vec![Operation::Insert {
            table: "Open_vSwitch".into(),
            row: BTreeMap::new(),
            uuid_name: None,
        }])
        .await
        .map_err(db("creating the Open_vSwitch root row"))?;
    }
    Ok(())
}

/// What [`init_node`] set that the database no longer has (a reset `conf.db`, a bridge deleted
/// by hand, settings overwritten), or `None` when the node is as initialised.
pub fn node_drift(ovs: &Client, cfg: &NodeConfig) -> Option<String> {
    let replica = ovs.replica();
    let Some(root) = replica.table("Open_vSwitch").and_then(|t| t.rows().next()) else {
        return Some("the Open_vSwitch root row is missing".into());
    };
    let ids = external_ids(root.get("external_ids"));
    for (key, want) in node_settings(cfg) {
        let have = ids.get(key).copied();
        if have != Some(want) {
            return Some(format!(
                "external_ids:{key} is {}, want {want:?}",
                have.map_or("unset".to_owned(), |v| format!("{v:?}"))
            ));
        }
    }
    let dp = replica.table("Bridge").and_then(|t| {
        t.by_name(&cfg.bridge).next().map(|r| {
            r.get("datapath_type")
                .and_then(|d| d.as_set().first()?.as_str().map(str::to_owned))
        })
    });
    match dp {
        None => Some(format!("bridge {} is missing", cfg.bridge)),
        Some(dp) if dp.as_deref() != Some(cfg.datapath_type.as_str()) => Some(format!(
            "bridge {} has datapath_type {:?}, want {:?}",
            cfg.bridge, dp, cfg.datapath_type
        )),
        Some(_) => None,
    }
}

/// The `Open_vSwitch` `external_ids` ovn-controller reads, as [`init_node`] sets them.
fn node_settings(cfg: &NodeConfig) -> [(&'static str, &str); 6] {
    [
        ("system-id", cfg.system_id.as_str()),
        ("ovn-remote", cfg.ovn_remote.as_str()),
        ("ovn-encap-type", cfg.encap_type.as_str()),
        ("ovn-encap-ip", cfg.encap_ip.as_str()),
        ("ovn-bridge", cfg.bridge.as_str()),
        ("ovn-bridge-datapath-type", cfg.datapath_type.as_str()),
    ]
}

/// One attempt of [`init_node`], from the replica as it is now.
async fn init_node_once(ovs: &Client, cfg: &NodeConfig) -> Result<(), OvsError> {
    ensure_root(ovs).await?;
    let (root, bridge) = {
        let replica = ovs.replica();
        let root = replica
            .table("Open_vSwitch")
            .and_then(|t| t.rows().next().map(|r| r.uuid));
        let bridge = replica.table("Bridge").and_then(|t| {
            t.by_name(&cfg.bridge).next().map(|r| {
                let dp = r
                    .get("datapath_type")
                    .and_then(|d| d.as_set().first()?.as_str().map(str::to_owned));
                (r.uuid, dp)
            })
        });
        (root.ok_or(OvsError::NoRoot)?, bridge)
    };
    let mut ops = Vec::new();
    match bridge {
        None => {
            ops.push(Operation::Insert {
                table: "Interface".into(),
                row: BTreeMap::from([
                    ("name".into(), Datum::scalar(cfg.bridge.as_str())),
                    ("type".into(), Datum::scalar("internal")),
                ]),
                uuid_name: Some("iface".into()),
            });
            ops.push(Operation::Insert {
                table: "Port".into(),
                row: BTreeMap::from([
                    ("name".into(), Datum::scalar(cfg.bridge.as_str())),
                    ("interfaces".into(), named("iface")),
                ]),
                uuid_name: Some("port".into()),
            });
            ops.push(Operation::Insert {
                table: "Bridge".into(),
                row: BTreeMap::from([
                    ("name".into(), Datum::scalar(cfg.bridge.as_str())),
                    ("ports".into(), named("port")),
                    (
                        "datapath_type".into(),
                        Datum::scalar(cfg.datapath_type.as_str()),
                    ),
                    ("fail_mode".into(), Datum::scalar("secure")),
                    ("external_ids".into(), string_map([EXTERNAL_ID_VENDOR])),
                ]),
                uuid_name: Some("bridge".into()),
            });
            ops.push(Operation::Mutate {
                table: "Open_vSwitch".into(),
                conditions: vec![Condition::uuid(root)],
                mutations: vec![Mutation::insert("bridges", named("bridge"))],
            });
        }
        Some((uuid, dp)) if dp.as_deref() != Some(cfg.datapath_type.as_str()) => {
            ops.push(Operation::Update {
                table: "Bridge".into(),
                conditions: vec![Condition::uuid(uuid)],
                row: BTreeMap::from([(
                    "datapath_type".into(),
                    Datum::scalar(cfg.datapath_type.as_str()),
                )]),
            });
        }
        Some(_) => {}
    }
    let settings = node_settings(cfg);
    // Map `insert` keeps an existing key's value, so delete the keys first: one transaction.
    ops.push(Operation::Mutate {
        table: "Open_vSwitch".into(),
        conditions: vec![Condition::uuid(root)],
        mutations: vec![
            Mutation::delete(
                "external_ids",
                Datum::set(settings.iter().map(|(k, _)| Atom::string(k))),
            ),
            Mutation::insert("external_ids", string_map(settings)),
        ],
    });
    ovs.transact(ops).await.map_err(db(format!(
        "initialising bridge {} and ovn-controller settings",
        cfg.bridge
    )))?;
    Ok(())
}

/// Whether the integration bridge exists (for STATUS).
pub fn bridge_exists(ovs: &Client, bridge: &str) -> bool {
    ovs.replica()
        .table("Bridge")
        .is_some_and(|t| t.by_name(bridge).next().is_some())
}
