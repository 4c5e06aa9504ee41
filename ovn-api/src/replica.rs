//! The in-memory replica of monitored tables, with secondary indexes by `name` and by
//! `external_ids` key/value. Applies parsed monitor updates and reports what changed.
//! Pure code: the rpc client owns the socket and feeds updates in.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};
use crate::protocol::{RowUpdate, TableUpdates};
use crate::schema::{AtomicType, DatabaseSchema, TableSchema};
use crate::value::{Atom, Datum, Uuid};

/// One row. Columns are positional, in the order of [`TableSchema::columns`].
#[derive(Clone, PartialEq)]
pub struct Row {
    /// The row's `_uuid`.
    pub uuid: Uuid,
    table: Arc<TableSchema>,
    columns: Box<[Datum]>,
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        m.entry(&"_uuid", &self.uuid);
        for (c, d) in self.table.columns.iter().zip(self.columns.iter()) {
            if !d.is_empty() {
                m.entry(&c.name, d);
            }
        }
        m.finish()
    }
}

impl Row {
    /// A row with every column at its default.
    pub fn new_default(uuid: Uuid, table: Arc<TableSchema>) -> Row {
        let columns = table
            .columns
            .iter()
            .map(|c| Datum::default_for(&c.ty))
            .collect();
        Row {
            uuid,
            table,
            columns,
        }
    }

    /// Builds a row from a wire object (missing columns take their defaults).
    pub fn from_json(uuid: Uuid, table: Arc<TableSchema>, obj: &Map<String, Json>) -> Result<Row> {
        let mut row = Row::new_default(uuid, table);
        for (name, j) in obj {
            if name == "_uuid" || name == "_version" {
                continue;
            }
            let i = row.index_of(name)?;
            row.columns[i] = Datum::from_json_typed(j, &row.table.columns[i].ty)
                .map_err(|e| col_err(&row.table.name, name, e))?;
        }
        Ok(row)
    }

    fn index_of(&self, name: &str) -> Result<usize> {
        self.table.column_index(name).ok_or_else(|| Error::Column {
            table: self.table.name.clone(),
            column: name.to_owned(),
            reason: "not in the schema".into(),
        })
    }

    /// The table this row belongs to.
    pub fn table(&self) -> &TableSchema {
        &self.table
    }

    /// A column's value (`None` if the table has no such column).
    pub fn get(&self, column: &str) -> Option<&Datum> {
        self.table.column_index(column).map(|i| &self.columns[i])
    }

    /// Column values in schema order.
    pub fn columns(&self) -> impl Iterator<Item = (&str, &Datum)> {
        self.table
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .zip(self.columns.iter())
    }

    /// The `name` column, if it is a string.
    pub fn name(&self) -> Option<&str> {
        self.get("name")
            .and_then(|d| d.as_set().first())
            .and_then(Atom::as_str)
    }

    /// `external_ids:key`, if present.
    pub fn external_id(&self, key: &str) -> Option<&str> {
        self.get("external_ids")
            .and_then(|d| d.map_get(key))
            .and_then(Atom::as_str)
    }

    fn apply_diff(&self, obj: &Map<String, Json>) -> Result<Row> {
        let mut row = self.clone();
        for (name, j) in obj {
            let i = row.index_of(name)?;
            let ty = &row.table.columns[i].ty;
            // A diff may carry more elements than the column allows (a toggle set), so parse
            // it without the count limit.
            let mut loose = ty.clone();
            loose.max = None;
            loose.min = 0;
            let d =
                Datum::from_json_typed(j, &loose).map_err(|e| col_err(&row.table.name, name, e))?;
            row.columns[i] = row.columns[i].apply_diff(&d, ty);
        }
        Ok(row)
    }
}

fn col_err(table: &str, column: &str, e: Error) -> Error {
    Error::Column {
        table: table.to_owned(),
        column: column.to_owned(),
        reason: e.to_string(),
    }
}

/// What happened to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// The row appeared.
    Insert,
    /// The row changed.
    Modify,
    /// The row went away.
    Delete,
}

/// One row change, with the row before and after.
#[derive(Debug, Clone)]
pub struct RowChange {
    /// Insert, modify or delete.
    pub kind: ChangeKind,
    /// The row before (modify, delete).
    pub old: Option<Arc<Row>>,
    /// The row after (insert, modify).
    pub new: Option<Arc<Row>>,
}

impl RowChange {
    /// The table name.
    pub fn table(&self) -> &str {
        self.new
            .as_ref()
            .or(self.old.as_ref())
            .map_or("", |r| r.table.name.as_str())
    }

    /// The row UUID.
    pub fn uuid(&self) -> Uuid {
        self.new
            .as_ref()
            .or(self.old.as_ref())
            .map_or(Uuid::NIL, |r| r.uuid)
    }
}

type Index = HashMap<Arc<str>, Vec<Uuid>>;

/// The replica of one table.
#[derive(Debug)]
pub struct TableData {
    schema: Arc<TableSchema>,
    rows: HashMap<Uuid, Arc<Row>>,
    name_col: Option<usize>,
    ext_col: Option<usize>,
    by_name: Index,
    by_external_id: HashMap<Arc<str>, Index>,
}

fn index_add(ix: &mut Index, k: &Arc<str>, u: Uuid) {
    match ix.get_mut(k) {
        Some(v) => v.push(u),
        None => {
            ix.insert(k.clone(), vec![u]);
        }
    }
}

fn index_remove(ix: &mut Index, k: &str, u: Uuid) {
    if let Some(v) = ix.get_mut(k) {
        v.retain(|x| *x != u);
        if v.is_empty() {
            ix.remove(k);
        }
    }
}

impl TableData {
    fn new(schema: Arc<TableSchema>) -> Self {
        let name_col = schema.column_index("name").filter(|&i| {
            let t = &schema.columns[i].ty;
            t.value.is_none() && t.key.atomic == AtomicType::String
        });
        let ext_col = schema.column_index("external_ids").filter(|&i| {
            let t = &schema.columns[i].ty;
            t.key.atomic == AtomicType::String
                && t.value
                    .as_ref()
                    .is_some_and(|v| v.atomic == AtomicType::String)
        });
        TableData {
            schema,
            rows: HashMap::new(),
            name_col,
            ext_col,
            by_name: Index::new(),
            by_external_id: HashMap::new(),
        }
    }

    fn index(&mut self, row: &Row, add: bool) {
        if let Some(i) = self.name_col {
            for a in row.columns[i].as_set() {
                if let Atom::String(s) = a {
                    if add {
                        index_add(&mut self.by_name, s, row.uuid);
                    } else {
                        index_remove(&mut self.by_name, s, row.uuid);
                    }
                }
            }
        }
        if let Some(i) = self.ext_col {
            for (k, v) in row.columns[i].as_map() {
                if let (Atom::String(k), Atom::String(v)) = (k, v) {
                    if add {
                        let ix = match self.by_external_id.get_mut(k) {
                            Some(ix) => ix,
                            None => self.by_external_id.entry(k.clone()).or_default(),
                        };
                        index_add(ix, v, row.uuid);
                    } else if let Some(ix) = self.by_external_id.get_mut(&**k) {
                        index_remove(ix, v, row.uuid);
                        if ix.is_empty() {
                            self.by_external_id.remove(&**k);
                        }
                    }
                }
            }
        }
    }

    fn put(&mut self, row: Row) -> RowChange {
        let new = Arc::new(row);
        let old = self.rows.insert(new.uuid, new.clone());
        if let Some(o) = &old {
            self.index(o, false);
        }
        self.index(&new, true);
        RowChange {
            kind: if old.is_some() {
                ChangeKind::Modify
            } else {
                ChangeKind::Insert
            },
            old,
            new: Some(new),
        }
    }

    fn remove(&mut self, uuid: Uuid) -> Option<RowChange> {
        let old = self.rows.remove(&uuid)?;
        self.index(&old, false);
        Some(RowChange {
            kind: ChangeKind::Delete,
            old: Some(old),
            new: None,
        })
    }

    /// The table schema.
    pub fn schema(&self) -> &Arc<TableSchema> {
        &self.schema
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// A row by UUID.
    pub fn get(&self, uuid: &Uuid) -> Option<&Arc<Row>> {
        self.rows.get(uuid)
    }

    /// All rows (in no particular order).
    pub fn rows(&self) -> impl Iterator<Item = &Arc<Row>> {
        self.rows.values()
    }

    /// Rows whose `name` is `name` (index lookup).
    pub fn by_name(&self, name: &str) -> impl Iterator<Item = &Arc<Row>> {
        self.by_name
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|u| self.rows.get(u))
    }

    /// Rows with `external_ids:key=value` (index lookup).
    pub fn by_external_id(&self, key: &str, value: &str) -> impl Iterator<Item = &Arc<Row>> {
        self.by_external_id
            .get(key)
            .and_then(|ix| ix.get(value))
            .into_iter()
            .flatten()
            .filter_map(|u| self.rows.get(u))
    }

    /// Rows that have `external_ids:key` with any value (index lookup).
    pub fn with_external_id(&self, key: &str) -> impl Iterator<Item = &Arc<Row>> {
        self.by_external_id
            .get(key)
            .into_iter()
            .flat_map(|ix| ix.values().flatten())
            .filter_map(|u| self.rows.get(u))
    }
}

/// The replica of one database (the monitored tables only).
#[derive(Debug)]
pub struct Replica {
    schema: Arc<DatabaseSchema>,
    tables: BTreeMap<String, TableData>,
    last_txn_id: Option<String>,
}

impl Replica {
    /// An empty replica of `tables` (names must exist in `schema`).
    pub fn new(schema: Arc<DatabaseSchema>, tables: &[String]) -> Result<Self> {
        let mut t = BTreeMap::new();
        for name in tables {
            let ts = Arc::new(schema.table(name)?.clone());
            t.insert(name.clone(), TableData::new(ts));
        }
        Ok(Replica {
            schema,
            tables: t,
            last_txn_id: None,
        })
    }

    /// The database schema.
    pub fn schema(&self) -> &Arc<DatabaseSchema> {
        &self.schema
    }

    /// The last transaction id seen (from `monitor_cond_since`/`update3`).
    pub fn last_txn_id(&self) -> Option<&str> {
        self.last_txn_id.as_deref()
    }

    /// Records the last transaction id.
    pub fn set_last_txn_id(&mut self, id: Option<String>) {
        self.last_txn_id = id;
    }

    /// One table's data (`None` if not monitored).
    pub fn table(&self, name: &str) -> Option<&TableData> {
        self.tables.get(name)
    }

    /// Names of the monitored tables.
    pub fn table_names(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }

    /// Total number of rows.
    pub fn len(&self) -> usize {
        self.tables.values().map(TableData::len).sum()
    }

    /// True when no table has rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies incremental updates. On error (e.g. a diff for an unknown row) the replica may
    /// be partly updated; the caller must resync.
    pub fn apply(&mut self, updates: &TableUpdates) -> Result<Vec<RowChange>> {
        let mut changes = Vec::new();
        for (tname, rows) in updates {
            let Some(t) = self.tables.get_mut(tname) else {
                return Err(Error::Protocol {
                    remote: "monitor".into(),
                    reason: format!("update for table {tname}, which is not monitored"),
                });
            };
            for (uuid, u) in rows {
                match u {
                    RowUpdate::Full(obj) => {
                        let row = Row::from_json(*uuid, t.schema.clone(), obj)?;
                        if t.rows.get(uuid).is_some_and(|old| **old == row) {
                            continue;
                        }
                        changes.push(t.put(row));
                    }
                    RowUpdate::Diff(obj) => {
                        let old = t.rows.get(uuid).ok_or_else(|| Error::Protocol {
                            remote: "monitor".into(),
                            reason: format!("modify of unknown row {uuid} in {tname}"),
                        })?;
                        let row = old.apply_diff(obj)?;
                        changes.push(t.put(row));
                    }
                    RowUpdate::Delete => {
                        if let Some(c) = t.remove(*uuid) {
                            changes.push(c);
                        }
                    }
                }
            }
        }
        Ok(changes)
    }

    /// Replaces the whole content with a full snapshot (the initial reply of a fresh monitor)
    /// and returns the difference to what was there, so subscribers see neither lost nor
    /// phantom rows across a reconnect.
    pub fn replace(&mut self, snapshot: &TableUpdates) -> Result<Vec<RowChange>> {
        let mut fresh = BTreeMap::new();
        for (name, t) in &self.tables {
            fresh.insert(name.clone(), TableData::new(t.schema.clone()));
        }
        let mut next = Replica {
            schema: self.schema.clone(),
            tables: fresh,
            last_txn_id: None,
        };
        next.apply(snapshot)?;
        let mut changes = Vec::new();
        for (name, new_t) in &next.tables {
            let Some(old_t) = self.tables.get(name) else {
                continue;
            };
            for (u, old) in &old_t.rows {
                match new_t.rows.get(u) {
                    None => changes.push(RowChange {
                        kind: ChangeKind::Delete,
                        old: Some(old.clone()),
                        new: None,
                    }),
                    Some(new) if new != old => changes.push(RowChange {
                        kind: ChangeKind::Modify,
                        old: Some(old.clone()),
                        new: Some(new.clone()),
                    }),
                    Some(_) => {}
                }
            }
            for (u, new) in &new_t.rows {
                if !old_t.rows.contains_key(u) {
                    changes.push(RowChange {
                        kind: ChangeKind::Insert,
                        old: None,
                        new: Some(new.clone()),
                    });
                }
            }
        }
        self.tables = next.tables;
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::parse_table_updates;
    use proptest::prelude::*;
    use serde_json::json;
    use std::path::Path;

    fn nb() -> Arc<DatabaseSchema> {
        Arc::new(DatabaseSchema::from_file(Path::new("/usr/share/ovn/ovn-nb.ovsschema")).unwrap())
    }

    fn u(i: u128) -> String {
        Uuid::from_u128(i).to_string()
    }

    #[test]
    fn applies_initial_modify_delete_and_indexes() {
        let mut r = Replica::new(nb(), &["Logical_Switch".into()]).unwrap();
        let init = json!({"Logical_Switch": {
            u(1): {"initial": {"name": "a", "external_ids": ["map", [["vendor", "kube-ovn"], ["ls", "a"]]]}},
            u(2): {"initial": {"name": "b"}},
        }});
        let c = r.apply(&parse_table_updates(&init, true).unwrap()).unwrap();
        assert_eq!(c.len(), 2);
        let t = r.table("Logical_Switch").unwrap();
        assert_eq!(t.by_name("a").count(), 1);
        assert_eq!(t.by_external_id("vendor", "kube-ovn").count(), 1);
        assert_eq!(t.with_external_id("ls").count(), 1);
        assert_eq!(
            t.get(&Uuid::from_u128(2)).unwrap().get("ports"),
            Some(&Datum::default())
        );

        let m = json!({"Logical_Switch": {
            u(1): {"modify": {"name": "c", "external_ids": ["map", [["vendor", "kube-ovn"], ["pod", "x"]]],
                              "ports": ["uuid", u(9)]}},
            u(2): {"delete": null},
        }});
        let c = r.apply(&parse_table_updates(&m, true).unwrap()).unwrap();
        assert_eq!(
            c.iter().map(|c| c.kind).collect::<Vec<_>>(),
            vec![ChangeKind::Modify, ChangeKind::Delete]
        );
        let t = r.table("Logical_Switch").unwrap();
        assert_eq!(t.by_name("a").count(), 0);
        assert_eq!(t.by_name("c").count(), 1);
        assert_eq!(
            t.by_external_id("vendor", "kube-ovn").count(),
            0,
            "equal value removes the key"
        );
        assert_eq!(t.by_external_id("pod", "x").count(), 1);
        let row = t.get(&Uuid::from_u128(1)).unwrap();
        assert_eq!(row.external_id("ls"), Some("a"));
        assert_eq!(
            row.get("ports").unwrap().as_set(),
            &[Atom::Uuid(Uuid::from_u128(9))]
        );
        assert_eq!(r.len(), 1);

        let bad = json!({"Logical_Switch": {u(5): {"modify": {"name": "z"}}}});
        assert!(r.apply(&parse_table_updates(&bad, true).unwrap()).is_err());
        let bad = json!({"ACL": {u(5): {"insert": {}}}});
        assert!(r.apply(&parse_table_updates(&bad, true).unwrap()).is_err());
        let bad = json!({"Logical_Switch": {u(6): {"insert": {"nonexistent": 1}}}});
        assert!(r.apply(&parse_table_updates(&bad, true).unwrap()).is_err());
    }

    #[test]
    fn replace_reports_the_difference() {
        let mut r = Replica::new(nb(), &["Logical_Switch".into()]).unwrap();
        let a = json!({"Logical_Switch": {u(1): {"initial": {"name": "a"}}, u(2): {"initial": {"name": "b"}}}});
        r.apply(&parse_table_updates(&a, true).unwrap()).unwrap();
        let b = json!({"Logical_Switch": {u(2): {"initial": {"name": "b2"}}, u(3): {"initial": {"name": "c"}}}});
        let mut c: Vec<_> = r
            .replace(&parse_table_updates(&b, true).unwrap())
            .unwrap()
            .iter()
            .map(|c| (c.kind, c.uuid()))
            .collect();
        c.sort_by_key(|x| x.1);
        assert_eq!(
            c,
            vec![
                (ChangeKind::Delete, Uuid::from_u128(1)),
                (ChangeKind::Modify, Uuid::from_u128(2)),
                (ChangeKind::Insert, Uuid::from_u128(3))
            ]
        );
        assert_eq!(r.table("Logical_Switch").unwrap().by_name("a").count(), 0);
        assert_eq!(r.len(), 2);
    }

    proptest! {
        /// Indexes always agree with a full scan, whatever sequence of updates arrives.
        #[test]
        fn indexes_match_scan(ops in prop::collection::vec((0u128..6, prop::option::of((0u8..3, prop::collection::btree_map(0u8..3, 0u8..3, 0..3)))), 1..40)) {
            let mut r = Replica::new(nb(), &["Logical_Switch".into()]).unwrap();
            for (id, op) in ops {
                let upd = match op {
                    None => json!({"delete": null}),
                    Some((name, ext)) => {
                        let ext: Vec<_> = ext.iter().map(|(k, v)| json!([format!("k{k}"), format!("v{v}")])).collect();
                        json!({"insert": {"name": format!("n{name}"), "external_ids": ["map", ext]}})
                    }
                };
                r.apply(&parse_table_updates(&json!({"Logical_Switch": {u(id): upd}}), true).unwrap()).unwrap();
            }
            let t = r.table("Logical_Switch").unwrap();
            for n in 0..3 {
                let name = format!("n{n}");
                let mut a: Vec<_> = t.by_name(&name).map(|r| r.uuid).collect();
                let mut b: Vec<_> = t.rows().filter(|r| r.name() == Some(&name)).map(|r| r.uuid).collect();
                a.sort(); b.sort();
                prop_assert_eq!(a, b);
                for k in 0..3 {
                    let (key, val) = (format!("k{k}"), format!("v{n}"));
                    let mut a: Vec<_> = t.by_external_id(&key, &val).map(|r| r.uuid).collect();
                    let mut b: Vec<_> = t.rows().filter(|r| r.external_id(&key) == Some(&val)).map(|r| r.uuid).collect();
                    a.sort(); b.sort();
                    prop_assert_eq!(a, b);
                }
            }
        }
    }
}
