//! OVSDB protocol payloads (RFC 7047 §4-5 plus the OVS extensions): transaction operations and
//! their results, monitor requests, and table updates in the `update` (v1) and `update2`/`update3`
//! formats. Pure code: JSON in, JSON out.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json, json};

use crate::error::{Error, Result};
use crate::value::{Datum, Uuid, short};

/// A condition `[column, function, value]` of a `where` clause.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// Column name (`_uuid` allowed).
    pub column: String,
    /// `==`, `!=`, `<`, `<=`, `>`, `>=`, `includes`, `excludes`.
    pub function: String,
    /// The value compared with.
    pub value: Datum,
}

impl Condition {
    /// `column == value`.
    pub fn eq(column: &str, value: impl Into<Datum>) -> Self {
        Condition {
            column: column.into(),
            function: "==".into(),
            value: value.into(),
        }
    }

    /// `column != value`.
    pub fn ne(column: &str, value: impl Into<Datum>) -> Self {
        Condition {
            column: column.into(),
            function: "!=".into(),
            value: value.into(),
        }
    }

    /// `column includes value`.
    pub fn includes(column: &str, value: impl Into<Datum>) -> Self {
        Condition {
            column: column.into(),
            function: "includes".into(),
            value: value.into(),
        }
    }

    /// `_uuid == uuid`.
    pub fn uuid(uuid: Uuid) -> Self {
        Condition::eq("_uuid", Datum::scalar(uuid))
    }

    fn to_json(&self) -> Json {
        json!([self.column, self.function, self.value.to_json()])
    }
}

/// A mutation `[column, mutator, value]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    /// Column name.
    pub column: String,
    /// `+=`, `-=`, `*=`, `/=`, `%=`, `insert`, `delete`.
    pub mutator: String,
    /// Argument.
    pub value: Datum,
}

impl Mutation {
    /// `insert` elements into a set or pairs into a map.
    pub fn insert(column: &str, value: impl Into<Datum>) -> Self {
        Mutation {
            column: column.into(),
            mutator: "insert".into(),
            value: value.into(),
        }
    }

    /// `delete` elements from a set, or keys (given as a set) or pairs from a map.
    pub fn delete(column: &str, value: impl Into<Datum>) -> Self {
        Mutation {
            column: column.into(),
            mutator: "delete".into(),
            value: value.into(),
        }
    }

    /// Arithmetic mutator (`+=`, `-=`, ...).
    pub fn arith(column: &str, mutator: &str, value: i64) -> Self {
        Mutation {
            column: column.into(),
            mutator: mutator.into(),
            value: Datum::scalar(value),
        }
    }

    fn to_json(&self) -> Json {
        json!([self.column, self.mutator, self.value.to_json()])
    }
}

impl From<Uuid> for Datum {
    fn from(u: Uuid) -> Self {
        Datum::scalar(u)
    }
}

/// One transaction operation (RFC 7047 §5.2).
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    /// Insert a row; `uuid_name` lets later operations refer to it as `["named-uuid", name]`.
    Insert {
        /// Table.
        table: String,
        /// Column values (missing columns take their defaults).
        row: BTreeMap<String, Datum>,
        /// Optional name for the new row's UUID.
        uuid_name: Option<String>,
    },
    /// Select rows.
    Select {
        /// Table.
        table: String,
        /// Conditions (all must hold).
        conditions: Vec<Condition>,
        /// Columns to return (`None`: all).
        columns: Option<Vec<String>>,
    },
    /// Update matching rows.
    Update {
        /// Table.
        table: String,
        /// Conditions.
        conditions: Vec<Condition>,
        /// New column values.
        row: BTreeMap<String, Datum>,
    },
    /// Mutate matching rows.
    Mutate {
        /// Table.
        table: String,
        /// Conditions.
        conditions: Vec<Condition>,
        /// Mutations.
        mutations: Vec<Mutation>,
    },
    /// Delete matching rows.
    Delete {
        /// Table.
        table: String,
        /// Conditions.
        conditions: Vec<Condition>,
    },
    /// Wait until the selected rows do (`==`) or do not (`!=`) equal `rows`.
    Wait {
        /// Table.
        table: String,
        /// Conditions.
        conditions: Vec<Condition>,
        /// Columns compared.
        columns: Vec<String>,
        /// `==` or `!=`.
        until: String,
        /// Expected rows.
        rows: Vec<BTreeMap<String, Datum>>,
        /// Milliseconds to wait (`None`: forever; 0: fail at once).
        timeout_ms: Option<u64>,
    },
    /// Commit, optionally durably.
    Commit {
        /// Wait for the disk write.
        durable: bool,
    },
    /// Abort the transaction (always fails with `aborted`).
    Abort,
    /// A comment recorded in the log.
    Comment(String),
    /// Require that this session holds a lock.
    Assert {
        /// The lock name.
        lock: String,
    },
}

fn row_json(row: &BTreeMap<String, Datum>) -> Json {
    Json::Object(
        row.iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect::<Map<_, _>>(),
    )
}

fn conds_json(c: &[Condition]) -> Json {
    Json::Array(c.iter().map(Condition::to_json).collect())
}

impl Operation {
    /// The `op` name.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Insert { .. } => "insert",
            Operation::Select { .. } => "select",
            Operation::Update { .. } => "update",
            Operation::Mutate { .. } => "mutate",
            Operation::Delete { .. } => "delete",
            Operation::Wait { .. } => "wait",
            Operation::Commit { .. } => "commit",
            Operation::Abort => "abort",
            Operation::Comment(_) => "comment",
            Operation::Assert { .. } => "assert",
        }
    }

    /// The table, or `""` for table-less operations.
    pub fn table(&self) -> &str {
        match self {
            Operation::Insert { table, .. }
            | Operation::Select { table, .. }
            | Operation::Update { table, .. }
            | Operation::Mutate { table, .. }
            | Operation::Delete { table, .. }
            | Operation::Wait { table, .. } => table,
            _ => "",
        }
    }

    /// The JSON form.
    pub fn to_json(&self) -> Json {
        let mut o = Map::new();
        o.insert("op".into(), Json::from(self.name()));
        match self {
            Operation::Insert {
                table,
                row,
                uuid_name,
            } => {
                o.insert("table".into(), Json::from(table.as_str()));
                o.insert("row".into(), row_json(row));
                if let Some(n) = uuid_name {
                    o.insert("uuid-name".into(), Json::from(n.as_str()));
                }
            }
            Operation::Select {
                table,
                conditions,
                columns,
            } => {
                o.insert("table".into(), Json::from(table.as_str()));
                o.insert("where".into(), conds_json(conditions));
                if let Some(c) = columns {
                    o.insert("columns".into(), json!(c));
                }
            }
            Operation::Update {
                table,
                conditions,
                row,
            } => {
                o.insert("table".into(), Json::from(table.as_str()));
                o.insert("where".into(), conds_json(conditions));
                o.insert("row".into(), row_json(row));
            }
            Operation::Mutate {
                table,
                conditions,
                mutations,
            } => {
                o.insert("table".into(), Json::from(table.as_str()));
                o.insert("where".into(), conds_json(conditions));
                o.insert(
                    "mutations".into(),
                    Json::Array(mutations.iter().map(Mutation::to_json).collect()),
                );
            }
            Operation::Delete { table, conditions } => {
                o.insert("table".into(), Json::from(table.as_str()));
                o.insert("where".into(), conds_json(conditions));
            }
            Operation::Wait {
                table,
                conditions,
                columns,
                until,
                rows,
                timeout_ms,
            } => {
                o.insert("table".into(), Json::from(table.as_str()));
                o.insert("where".into(), conds_json(conditions));
                o.insert("columns".into(), json!(columns));
                o.insert("until".into(), Json::from(until.as_str()));
                o.insert(
                    "rows".into(),
                    Json::Array(rows.iter().map(row_json).collect()),
                );
                if let Some(t) = timeout_ms {
                    o.insert("timeout".into(), Json::from(*t));
                }
            }
            Operation::Commit { durable } => {
                o.insert("durable".into(), Json::Bool(*durable));
            }
            Operation::Abort => {}
            Operation::Comment(c) => {
                o.insert("comment".into(), Json::from(c.as_str()));
            }
            Operation::Assert { lock } => {
                o.insert("lock".into(), Json::from(lock.as_str()));
            }
        }
        Json::Object(o)
    }
}

/// Checks the values an operation writes (insert/update rows, mutation arguments) against the
/// schema: column existence, enums, ranges, string lengths and element counts. Catches mistakes
/// before a round trip, with an error naming the table, op and column.
pub fn validate(schema: &crate::schema::DatabaseSchema, op: &Operation) -> Result<()> {
    let db = &schema.name;
    let invalid = |table: &str, column: &str, reason: String| Error::Invalid {
        db: db.clone(),
        table: table.to_owned(),
        op: op.name(),
        column: column.to_owned(),
        reason,
    };
    let (table, row, mutations) = match op {
        Operation::Insert { table, row, .. } | Operation::Update { table, row, .. } => {
            (table, Some(row), None)
        }
        Operation::Mutate {
            table, mutations, ..
        } => (table, None, Some(mutations)),
        _ => return Ok(()),
    };
    let ts = schema.table(table)?;
    for (column, value) in row.into_iter().flatten() {
        let c = ts
            .column(column)
            .ok_or_else(|| invalid(table, column, "no such column".into()))?;
        c.ty.check(value).map_err(|r| invalid(table, column, r))?;
    }
    for m in mutations.into_iter().flatten() {
        let c = ts
            .column(&m.column)
            .ok_or_else(|| invalid(table, &m.column, "no such column".into()))?;
        if matches!(m.mutator.as_str(), "insert" | "delete") {
            c.ty.check_elements(&m.value)
                .map_err(|r| invalid(table, &m.column, r))?;
        }
    }
    Ok(())
}

/// The `transact` params: `[db, op...]`.
pub fn transact_params(db: &str, ops: &[Operation]) -> Json {
    let mut v = Vec::with_capacity(ops.len() + 1);
    v.push(Json::from(db));
    v.extend(ops.iter().map(Operation::to_json));
    Json::Array(v)
}

/// The successful result of one operation.
#[derive(Debug, Clone, PartialEq)]
pub enum OpResult {
    /// `insert`: the new row's UUID.
    Insert(Uuid),
    /// `select`: the rows, as raw JSON objects (column → wire value).
    Rows(Vec<Map<String, Json>>),
    /// `update`/`mutate`/`delete`: number of rows matched.
    Count(u64),
    /// Everything else.
    Empty,
}

impl OpResult {
    /// The UUID of an insert.
    pub fn uuid(&self) -> Option<Uuid> {
        match self {
            OpResult::Insert(u) => Some(*u),
            _ => None,
        }
    }

    /// The count of an update/mutate/delete.
    pub fn count(&self) -> Option<u64> {
        match self {
            OpResult::Count(c) => Some(*c),
            _ => None,
        }
    }
}

fn err_fields(o: &Map<String, Json>) -> Option<(String, Option<String>)> {
    let e = o.get("error")?;
    if e.is_null() {
        return None;
    }
    let error = e.as_str().map_or_else(|| e.to_string(), str::to_owned);
    let details = o
        .get("details")
        .map(|d| d.as_str().map_or_else(|| d.to_string(), str::to_owned));
    Some((error, details))
}

/// The operations to send for `ops`: before the first update or mutate of a row named by its
/// UUID, a `wait` (timeout 0) that the row exists. Without it, a transaction planned against a
/// row that is gone (planned on the replica of an earlier session, or the row deleted
/// meanwhile) matches nothing there and commits the rest: inserting a port and adding it to a
/// switch that no longer exists "succeeds" and leaves nothing. With it the whole transaction
/// fails, and its planner sees the truth at the next attempt. Returns the operations and, for
/// each, the index of the operation it came from (`None` for the guards).
pub fn guard_uuid_targets(ops: Vec<Operation>) -> (Vec<Operation>, Vec<Option<usize>>) {
    let mut sent = Vec::with_capacity(ops.len() + 2);
    let mut origin = Vec::with_capacity(ops.len() + 2);
    let mut guarded: Vec<(String, Datum)> = Vec::new();
    for (i, op) in ops.into_iter().enumerate() {
        if let Operation::Update {
            table, conditions, ..
        }
        | Operation::Mutate {
            table, conditions, ..
        } = &op
            && let [c] = conditions.as_slice()
            && c.column == "_uuid"
            && c.function == "=="
            && !guarded.iter().any(|(t, v)| t == table && *v == c.value)
        {
            guarded.push((table.clone(), c.value.clone()));
            sent.push(Operation::Wait {
                table: table.clone(),
                conditions: vec![c.clone()],
                columns: Vec::new(),
                until: "==".into(),
                rows: vec![BTreeMap::new()],
                timeout_ms: Some(0),
            });
            origin.push(None);
        }
        sent.push(op);
        origin.push(Some(i));
    }
    (sent, origin)
}

/// Interprets a `transact` result array. An operation error becomes [`Error::Operation`] naming
/// the table and op; an extra trailing error (commit failure) becomes [`Error::Commit`].
pub fn parse_transact_result(db: &str, ops: &[Operation], result: &Json) -> Result<Vec<OpResult>> {
    let arr = result.as_array().ok_or_else(|| Error::Protocol {
        remote: db.to_owned(),
        reason: format!("transact result is not an array: {}", short(result)),
    })?;
    let mut out = Vec::with_capacity(ops.len());
    for (i, r) in arr.iter().enumerate() {
        let Some(o) = r.as_object() else {
            // `null` follows an error; we returned at the error already.
            continue;
        };
        if let Some((error, details)) = err_fields(o) {
            return Err(match ops.get(i) {
                Some(op) => Error::Operation {
                    db: db.to_owned(),
                    table: op.table().to_owned(),
                    op: op.name(),
                    index: u32::try_from(i).unwrap_or(u32::MAX),
                    error,
                    details,
                },
                None => Error::Commit {
                    db: db.to_owned(),
                    error,
                    details,
                },
            });
        }
        let res = if let Some(u) = o.get("uuid") {
            OpResult::Insert(crate::value::Atom::from_json(u)?.as_uuid().ok_or_else(|| {
                Error::Protocol {
                    remote: db.to_owned(),
                    reason: "insert result uuid".into(),
                }
            })?)
        } else if let Some(Json::Array(rows)) = o.get("rows") {
            OpResult::Rows(rows.iter().filter_map(|r| r.as_object().cloned()).collect())
        } else if let Some(c) = o.get("count").and_then(Json::as_u64) {
            OpResult::Count(c)
        } else {
            OpResult::Empty
        };
        if i < ops.len() {
            out.push(res);
        }
    }
    if out.len() != ops.len() {
        return Err(Error::Protocol {
            remote: db.to_owned(),
            reason: format!(
                "transact returned {} results for {} operations",
                out.len(),
                ops.len()
            ),
        });
    }
    Ok(out)
}

/// Which monitor flavour to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorMethod {
    /// `monitor_cond_since` (OVS 2.12+): resumes from the last transaction id.
    CondSince,
    /// `monitor_cond` (update2 format).
    Cond,
    /// Plain RFC 7047 `monitor`.
    Plain,
}

impl MonitorMethod {
    /// The JSON-RPC method name.
    pub fn method(self) -> &'static str {
        match self {
            MonitorMethod::CondSince => "monitor_cond_since",
            MonitorMethod::Cond => "monitor_cond",
            MonitorMethod::Plain => "monitor",
        }
    }

    /// The notification method carrying updates for this flavour.
    pub fn notification(self) -> &'static str {
        match self {
            MonitorMethod::CondSince => "update3",
            MonitorMethod::Cond => "update2",
            MonitorMethod::Plain => "update",
        }
    }

    /// The next flavour to try when the server does not know this one.
    pub fn fallback(self) -> Option<MonitorMethod> {
        match self {
            MonitorMethod::CondSince => Some(MonitorMethod::Cond),
            MonitorMethod::Cond => Some(MonitorMethod::Plain),
            MonitorMethod::Plain => None,
        }
    }
}

/// Builds monitor params. `tables` maps table → columns to monitor.
pub fn monitor_params(
    method: MonitorMethod,
    db: &str,
    monitor_id: &Json,
    tables: &BTreeMap<String, Vec<String>>,
    last_txn_id: Option<&str>,
) -> Json {
    let reqs: Map<String, Json> = tables
        .iter()
        .map(|(t, cols)| (t.clone(), json!([{ "columns": cols }])))
        .collect();
    let mut p = vec![Json::from(db), monitor_id.clone(), Json::Object(reqs)];
    if method == MonitorMethod::CondSince {
        p.push(Json::from(
            last_txn_id.unwrap_or("00000000-0000-0000-0000-000000000000"),
        ));
    }
    Json::Array(p)
}

/// How one row changed in an update notification.
#[derive(Debug, Clone, PartialEq)]
pub enum RowUpdate {
    /// The row exists with these (complete) columns: `initial`/`insert` of update2, or `new`
    /// of a v1 update (complete because we monitor whole rows).
    Full(Map<String, Json>),
    /// update2 `modify`: a diff per changed column.
    Diff(Map<String, Json>),
    /// The row is gone.
    Delete,
}

/// A parsed `table-updates`: table → row UUID → change, in a stable order.
pub type TableUpdates = BTreeMap<String, BTreeMap<Uuid, RowUpdate>>;

fn bad_update(reason: impl Into<String>) -> Error {
    Error::Protocol {
        remote: "monitor".into(),
        reason: reason.into(),
    }
}

/// Parses `table-updates` (v1, for `monitor`) or `table-updates2` (`monitor_cond[_since]`).
pub fn parse_table_updates(j: &Json, v2: bool) -> Result<TableUpdates> {
    let tables = match j {
        Json::Object(o) => o,
        Json::Null => return Ok(TableUpdates::new()),
        _ => {
            return Err(bad_update(format!(
                "table-updates is not an object: {}",
                short(j)
            )));
        }
    };
    let mut out = TableUpdates::new();
    for (table, rows) in tables {
        let rows = rows
            .as_object()
            .ok_or_else(|| bad_update(format!("updates for {table} are not an object")))?;
        let t = out.entry(table.clone()).or_default();
        for (uuid, change) in rows {
            let uuid: Uuid = uuid.parse()?;
            let c = change.as_object().ok_or_else(|| {
                bad_update(format!("update of {table} row {uuid} is not an object"))
            })?;
            let obj = |k: &str| -> Result<Option<Map<String, Json>>> {
                match c.get(k) {
                    None | Some(Json::Null) => Ok(None),
                    Some(Json::Object(o)) => Ok(Some(o.clone())),
                    Some(other) => Err(bad_update(format!("{table} {uuid} {k}: {}", short(other)))),
                }
            };
            let u = if v2 {
                if let Some(r) = obj("initial")? {
                    RowUpdate::Full(r)
                } else if let Some(r) = obj("insert")? {
                    RowUpdate::Full(r)
                } else if let Some(r) = obj("modify")? {
                    RowUpdate::Diff(r)
                } else if c.contains_key("delete") {
                    RowUpdate::Delete
                } else {
                    return Err(bad_update(format!("{table} {uuid}: unknown update2 kind")));
                }
            } else {
                match obj("new")? {
                    Some(r) => RowUpdate::Full(r),
                    None => RowUpdate::Delete,
                }
            };
            t.insert(uuid, u);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Atom;

    #[test]
    fn operations_serialise_per_rfc() {
        let mut row = BTreeMap::new();
        row.insert("name".to_string(), Datum::scalar("ls0"));
        let op = Operation::Insert {
            table: "Logical_Switch".into(),
            row,
            uuid_name: Some("ls".into()),
        };
        assert_eq!(
            op.to_json(),
            json!({"op":"insert","table":"Logical_Switch","row":{"name":"ls0"},"uuid-name":"ls"})
        );
        let m = Operation::Mutate {
            table: "Logical_Switch".into(),
            conditions: vec![Condition::uuid(Uuid::from_u128(1))],
            mutations: vec![Mutation::insert(
                "ports",
                Datum::scalar(Atom::NamedUuid("p".into())),
            )],
        };
        assert_eq!(
            m.to_json(),
            json!({"op":"mutate","table":"Logical_Switch","where":[["_uuid","==",["uuid","00000000-0000-0000-0000-000000000001"]]],"mutations":[["ports","insert",["named-uuid","p"]]]})
        );
        assert_eq!(
            Operation::Commit { durable: false }.to_json(),
            json!({"op":"commit","durable":false})
        );
        assert_eq!(Operation::Abort.to_json(), json!({"op":"abort"}));
        assert_eq!(
            Operation::Comment("hi".into()).to_json(),
            json!({"op":"comment","comment":"hi"})
        );
        assert_eq!(
            Operation::Assert { lock: "l".into() }.to_json(),
            json!({"op":"assert","lock":"l"})
        );
        let w = Operation::Wait {
            table: "T".into(),
            conditions: vec![],
            columns: vec!["name".into()],
            until: "==".into(),
            rows: vec![],
            timeout_ms: Some(0),
        };
        assert_eq!(
            w.to_json(),
            json!({"op":"wait","table":"T","where":[],"columns":["name"],"until":"==","rows":[],"timeout":0})
        );
    }

    #[test]
    fn updates_and_mutations_of_a_uuid_row_are_guarded_once_by_a_wait() {
        let u = Condition::uuid(Uuid::from_u128(7));
        let mutate = |table: &str, c: &Condition| Operation::Mutate {
            table: table.into(),
            conditions: vec![c.clone()],
            mutations: Vec::new(),
        };
        let ops = vec![
            Operation::Insert {
                table: "Logical_Switch_Port".into(),
                row: BTreeMap::new(),
                uuid_name: Some("p".into()),
            },
            mutate("Logical_Switch", &u),
            mutate("Logical_Switch", &u),
            Operation::Update {
                table: "QoS".into(),
                conditions: vec![Condition::eq("name", Datum::scalar("x"))],
                row: BTreeMap::new(),
            },
            Operation::Delete {
                table: "ACL".into(),
                conditions: vec![u.clone()],
            },
        ];
        let (sent, origin) = guard_uuid_targets(ops);
        let names: Vec<&str> = sent.iter().map(Operation::name).collect();
        assert_eq!(
            names,
            ["insert", "wait", "mutate", "mutate", "update", "delete"]
        );
        assert_eq!(origin, [Some(0), None, Some(1), Some(2), Some(3), Some(4)]);
        assert_eq!(
            transact_params("db", &sent[1..2])[1],
            serde_json::json!({"op": "wait", "table": "Logical_Switch", "timeout": 0,
                "where": [["_uuid", "==", ["uuid", "00000000-0000-0000-0000-000000000007"]]],
                "columns": [], "until": "==", "rows": [{}]})
        );
    }

    #[test]
    fn transact_errors_name_table_and_op() {
        let ops = vec![
            Operation::Delete {
                table: "A".into(),
                conditions: vec![],
            },
            Operation::Insert {
                table: "B".into(),
                row: BTreeMap::new(),
                uuid_name: None,
            },
        ];
        let r = json!([{"count": 0}, {"error": "constraint violation", "details": "bad tag"}]);
        let e = parse_transact_result("DB", &ops, &r)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("insert on table B")
                && e.contains("constraint violation")
                && e.contains("bad tag"),
            "{e}"
        );
        let r = json!([{"count": 0}, {"uuid": ["uuid", "00000000-0000-0000-0000-000000000002"]}, {"error": "referential integrity violation", "details": "x"}]);
        assert!(matches!(
            parse_transact_result("DB", &ops, &r),
            Err(Error::Commit { .. })
        ));
        let r = json!([{"count": 3}, {"uuid": ["uuid", "00000000-0000-0000-0000-000000000002"]}]);
        let ok = parse_transact_result("DB", &ops, &r).unwrap();
        assert_eq!(
            ok,
            vec![OpResult::Count(3), OpResult::Insert(Uuid::from_u128(2))]
        );
        assert!(parse_transact_result("DB", &ops, &json!({})).is_err());
        assert!(parse_transact_result("DB", &ops, &json!([{"count": 1}])).is_err());
    }

    #[test]
    fn parses_update_formats() {
        let u = json!({"T": {"00000000-0000-0000-0000-000000000001": {"initial": {"a": 1}},
                             "00000000-0000-0000-0000-000000000002": {"modify": {"a": 2}},
                             "00000000-0000-0000-0000-000000000003": {"delete": null}}});
        let p = parse_table_updates(&u, true).unwrap();
        let t = &p["T"];
        assert!(matches!(t[&Uuid::from_u128(1)], RowUpdate::Full(_)));
        assert!(matches!(t[&Uuid::from_u128(2)], RowUpdate::Diff(_)));
        assert_eq!(t[&Uuid::from_u128(3)], RowUpdate::Delete);
        let v1 = json!({"T": {"00000000-0000-0000-0000-000000000001": {"old": {"a": 1}}}});
        assert_eq!(
            parse_table_updates(&v1, false).unwrap()["T"][&Uuid::from_u128(1)],
            RowUpdate::Delete
        );
        assert!(parse_table_updates(&json!({"T": {"nope": {}}}), true).is_err());
        assert!(
            parse_table_updates(
                &json!({"T": {"00000000-0000-0000-0000-000000000001": {"weird": {}}}}),
                true
            )
            .is_err()
        );
        assert!(parse_table_updates(&json!([1]), true).is_err());
    }
}
