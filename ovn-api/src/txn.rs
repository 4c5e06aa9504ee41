//! A typed transaction builder:
//!
//! ```no_run
//! # async fn demo(nb: &ovn_api::Client, ls: ovn_api::value::Uuid) -> ovn_api::Result<()> {
//! use ovn_api::tables::nb::{LogicalSwitch, LogicalSwitchPort};
//! let lsp = LogicalSwitchPort { name: "pod1.ns.ovn".into(), addresses: vec!["0a:00:00:00:00:01 10.0.0.2".into()], ..Default::default() };
//! let mut tx = nb.txn();
//! let port = tx.insert(&lsp);
//! tx.mutate(ls, [LogicalSwitch::PORTS.insert(port.clone())]);
//! let done = tx.commit().await?;
//! let port_uuid = done.uuid(&port);
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::error::Result;
use crate::protocol::{Condition, OpResult, Operation};
use crate::rpc::Client;
use crate::tables::{Mutate, Set, Table, Where};
use crate::value::{Atom, Datum, Uuid};

/// A row inserted earlier in the same transaction (`["named-uuid", name]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NamedUuid(Arc<str>);

impl NamedUuid {
    /// The name.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl From<NamedUuid> for Atom {
    fn from(n: NamedUuid) -> Self {
        Atom::NamedUuid(n.0)
    }
}
impl From<&NamedUuid> for Atom {
    fn from(n: &NamedUuid) -> Self {
        Atom::NamedUuid(n.0.clone())
    }
}
impl From<NamedUuid> for Datum {
    fn from(n: NamedUuid) -> Self {
        Datum::scalar(Atom::from(n))
    }
}
impl From<&NamedUuid> for Datum {
    fn from(n: &NamedUuid) -> Self {
        Datum::scalar(Atom::from(n))
    }
}

/// A transaction under construction. Nothing is sent until [`Txn::commit`].
#[derive(Debug)]
pub struct Txn<'c> {
    client: &'c Client,
    ops: Vec<Operation>,
    inserts: Vec<(NamedUuid, usize)>,
}

/// The outcome of a committed transaction.
#[derive(Debug, Clone)]
pub struct Committed {
    /// Per-operation results, in order.
    pub results: Vec<OpResult>,
    named: HashMap<NamedUuid, Uuid>,
}

impl Committed {
    /// The UUID the server gave a row inserted in this transaction.
    pub fn uuid(&self, n: &NamedUuid) -> Option<Uuid> {
        self.named.get(n).copied()
    }
}

impl Client {
    /// Starts a typed transaction.
    pub fn txn(&self) -> Txn<'_> {
        Txn {
            client: self,
            ops: Vec::new(),
            inserts: Vec::new(),
        }
    }
}

impl<'c> Txn<'c> {
    /// Inserts a row; the returned name can be used as a reference in later operations.
    pub fn insert<T: Table>(&mut self, row: &T) -> NamedUuid {
        self.insert_with(row, std::iter::empty())
    }

    /// Inserts a row with some columns overridden (e.g. set to named UUIDs of other new rows).
    pub fn insert_with<T: Table>(
        &mut self,
        row: &T,
        set: impl IntoIterator<Item = Set<T>>,
    ) -> NamedUuid {
        let name = NamedUuid(Arc::from(format!("row{}", self.inserts.len())));
        let mut cols = row.to_columns();
        for Set { column, value, .. } in set {
            cols.insert(column, value);
        }
        self.inserts.push((name.clone(), self.ops.len()));
        self.ops.push(Operation::Insert {
            table: T::TABLE.to_owned(),
            row: cols,
            uuid_name: Some(name.0.to_string()),
        });
        name
    }

    /// Updates columns of the rows matching `target` (a UUID or typed conditions).
    pub fn update<T: Table>(
        &mut self,
        target: impl Into<Where<T>>,
        set: impl IntoIterator<Item = Set<T>>,
    ) -> &mut Self {
        let row: BTreeMap<String, Datum> = set
            .into_iter()
            .map(|Set { column, value, .. }| (column, value))
            .collect();
        self.ops.push(Operation::Update {
            table: T::TABLE.to_owned(),
            conditions: target.into().0,
            row,
        });
        self
    }

    /// Writes every column of `row` to the row with its UUID (empty sets/maps included).
    pub fn update_row<T: Table>(&mut self, row: &T) -> &mut Self {
        let mut cols = row.to_columns();
        for (name, kind) in T::COLUMNS {
            if !cols.contains_key(*name) {
                let empty = match kind {
                    crate::tables::Kind::Map(..) => Datum::empty_map(),
                    _ => Datum::default(),
                };
                cols.insert((*name).to_owned(), empty);
            }
        }
        self.ops.push(Operation::Update {
            table: T::TABLE.to_owned(),
            conditions: vec![Condition::uuid(row.uuid())],
            row: cols,
        });
        self
    }

    /// Mutates the rows matching `target`.
    pub fn mutate<T: Table>(
        &mut self,
        target: impl Into<Where<T>>,
        mutations: impl IntoIterator<Item = Mutate<T>>,
    ) -> &mut Self {
        self.ops.push(Operation::Mutate {
            table: T::TABLE.to_owned(),
            conditions: target.into().0,
            mutations: mutations.into_iter().map(|m| m.0).collect(),
        });
        self
    }

    /// Deletes the rows matching `target`.
    pub fn delete<T: Table>(&mut self, target: impl Into<Where<T>>) -> &mut Self {
        self.ops.push(Operation::Delete {
            table: T::TABLE.to_owned(),
            conditions: target.into().0,
        });
        self
    }

    /// Fails the transaction unless exactly the rows matching `target` exist, compared on
    /// `columns` with `rows` (a `wait` with timeout 0: optimistic concurrency).
    pub fn expect<T: Table>(
        &mut self,
        target: impl Into<Where<T>>,
        columns: &[&str],
        rows: Vec<BTreeMap<String, Datum>>,
    ) -> &mut Self {
        self.ops.push(Operation::Wait {
            table: T::TABLE.to_owned(),
            conditions: target.into().0,
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            until: "==".into(),
            rows,
            timeout_ms: Some(0),
        });
        self
    }

    /// Adds a comment to the server's log of this transaction.
    pub fn comment(&mut self, text: &str) -> &mut Self {
        self.ops.push(Operation::Comment(text.to_owned()));
        self
    }

    /// Adds a raw operation.
    pub fn op(&mut self, op: Operation) -> &mut Self {
        self.ops.push(op);
        self
    }

    /// Number of operations so far.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when no operation was added.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operations (for logging or inspection).
    pub fn operations(&self) -> &[Operation] {
        &self.ops
    }

    /// Sends the transaction. An empty transaction succeeds without a round trip.
    pub async fn commit(self) -> Result<Committed> {
        if self.ops.is_empty() {
            return Ok(Committed {
                results: Vec::new(),
                named: HashMap::new(),
            });
        }
        let results = self.client.transact(self.ops).await?;
        let named = self
            .inserts
            .into_iter()
            .filter_map(|(n, i)| results.get(i).and_then(OpResult::uuid).map(|u| (n, u)))
            .collect();
        Ok(Committed { results, named })
    }
}
