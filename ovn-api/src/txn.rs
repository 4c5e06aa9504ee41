//! A typed transaction: a plain value, built without a connection (so planners and their
//! tests need no server) and sent by [`Client::commit`](crate::Client::commit):
//!
//! ```no_run
//! # async fn demo(nb: &ovn_api::Client, ls: ovn_api::value::Uuid) -> ovn_api::Result<()> {
//! use ovn_api::tables::nb::{LogicalSwitch, LogicalSwitchPort};
//! use ovn_api::txn::Txn;
//! let lsp = LogicalSwitchPort { name: "pod1.ns.ovn".into(), addresses: vec!["0a:00:00:00:00:01 10.0.0.2".into()], ..Default::default() };
//! let mut tx = Txn::new();
//! let port = tx.insert(&lsp);
//! tx.mutate(ls, [LogicalSwitch::PORTS.insert(port.clone())]);
//! let done = nb.commit(tx).await?;
//! let port_uuid = done.uuid(&port);
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::protocol::{Condition, OpResult, Operation};
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

/// A transaction under construction: operations in order, plus the rows it inserts. Nothing
/// is sent until a [`Client`](crate::Client) commits it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Txn {
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

    /// The outcome of `inserts` (from [`Txn::into_parts`]) given the server's `results`.
    pub(crate) fn new(inserts: Vec<(NamedUuid, usize)>, results: Vec<OpResult>) -> Committed {
        let named = inserts
            .into_iter()
            .filter_map(|(n, i)| results.get(i).and_then(OpResult::uuid).map(|u| (n, u)))
            .collect();
        Committed { results, named }
    }
}

impl Txn {
    /// An empty transaction.
    pub fn new() -> Txn {
        Txn::default()
    }

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

    /// The operations and, per inserted row, its name and the index of its operation.
    pub(crate) fn into_parts(self) -> (Vec<Operation>, Vec<(NamedUuid, usize)>) {
        (self.ops, self.inserts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::nb::{LogicalSwitch, LogicalSwitchPort};

    #[test]
    fn a_transaction_is_a_value_and_named_rows_resolve_from_the_results() {
        let mut tx = Txn::new();
        assert!(tx.is_empty());
        let port = tx.insert(&LogicalSwitchPort::default());
        tx.comment("between");
        let switch = tx.insert(&LogicalSwitch::default());
        assert_eq!((port.name(), switch.name()), ("row0", "row1"));
        assert_eq!(tx.clone(), tx, "plain data: clone and compare");
        let (ops, inserts) = tx.into_parts();
        assert_eq!(ops.len(), 3);
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let done = Committed::new(
            inserts,
            vec![OpResult::Insert(a), OpResult::Empty, OpResult::Insert(b)],
        );
        assert_eq!((done.uuid(&port), done.uuid(&switch)), (Some(a), Some(b)));
    }
}
