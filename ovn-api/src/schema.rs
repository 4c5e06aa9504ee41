//! OVSDB schemas (RFC 7047 §3.2), parsed from a `get_schema` reply or an `.ovsschema` file.
//!
//! Columns of a table are kept sorted by name; a column's index in that order is its position in
//! a replica [`Row`](crate::replica::Row). Pure code: no I/O except [`DatabaseSchema::from_file`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::value::{Atom, Datum};

/// The five atomic types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AtomicType {
    /// `integer`
    Integer,
    /// `real`
    Real,
    /// `boolean`
    Boolean,
    /// `string`
    String,
    /// `uuid`
    Uuid,
}

impl fmt::Display for AtomicType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AtomicType::Integer => "integer",
            AtomicType::Real => "real",
            AtomicType::Boolean => "boolean",
            AtomicType::String => "string",
            AtomicType::Uuid => "uuid",
        })
    }
}

impl AtomicType {
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "integer" => AtomicType::Integer,
            "real" => AtomicType::Real,
            "boolean" => AtomicType::Boolean,
            "string" => AtomicType::String,
            "uuid" => AtomicType::Uuid,
            other => return Err(schema_err("?", format!("unknown atomic type {other:?}"))),
        })
    }
}

/// Strong references keep the target alive; weak ones are removed when the target goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefType {
    /// `strong` (the default).
    Strong,
    /// `weak`.
    Weak,
}

/// A base type: an atomic type with optional constraints.
#[derive(Debug, Clone, PartialEq)]
pub struct BaseType {
    /// The atomic type.
    pub atomic: AtomicType,
    /// Allowed values, if restricted (sorted).
    pub enum_values: Option<Vec<Atom>>,
    /// `minInteger`/`maxInteger`.
    pub integer_range: (Option<i64>, Option<i64>),
    /// `minLength`/`maxLength` for strings.
    pub length_range: (Option<u64>, Option<u64>),
    /// `refTable` for UUIDs.
    pub ref_table: Option<String>,
    /// `refType` (meaningful with `ref_table`).
    pub ref_type: RefType,
}

impl BaseType {
    fn plain(atomic: AtomicType) -> Self {
        BaseType {
            atomic,
            enum_values: None,
            integer_range: (None, None),
            length_range: (None, None),
            ref_table: None,
            ref_type: RefType::Strong,
        }
    }

    fn parse(j: &Json) -> Result<Self> {
        match j {
            Json::String(s) => Ok(BaseType::plain(AtomicType::parse(s)?)),
            Json::Object(o) => {
                let atomic = match o.get("type") {
                    Some(Json::String(s)) => AtomicType::parse(s)?,
                    _ => return Err(schema_err("?", "base type without \"type\"")),
                };
                let mut bt = BaseType::plain(atomic);
                if let Some(e) = o.get("enum") {
                    let d = Datum::from_json(e)?;
                    bt.enum_values = Some(d.as_set().to_vec());
                }
                bt.integer_range = (
                    o.get("minInteger").and_then(Json::as_i64),
                    o.get("maxInteger").and_then(Json::as_i64),
                );
                bt.length_range = (
                    o.get("minLength").and_then(Json::as_u64),
                    o.get("maxLength").and_then(Json::as_u64),
                );
                bt.ref_table = o.get("refTable").and_then(Json::as_str).map(str::to_owned);
                bt.ref_type = match o.get("refType").and_then(Json::as_str) {
                    Some("weak") => RefType::Weak,
                    _ => RefType::Strong,
                };
                Ok(bt)
            }
            _ => Err(schema_err("?", format!("bad base type {j}"))),
        }
    }
}

impl BaseType {
    /// Checks one atom against this base type: its type, enum, integer range and string
    /// length. Named UUIDs pass (they are resolved by the server).
    pub fn check(&self, a: &Atom) -> std::result::Result<(), String> {
        // An integer is a valid real on the wire too.
        let real_from_int = self.atomic == AtomicType::Real && matches!(a, Atom::Integer(_));
        if !a.is_type(self.atomic) && !real_from_int {
            return Err(format!("{a:?} is not of type {}", self.atomic));
        }
        if let Some(e) = &self.enum_values
            && !e.contains(a)
        {
            let allowed: Vec<String> = e.iter().map(|x| format!("{x:?}")).collect();
            return Err(format!("{a:?} is not one of {}", allowed.join(", ")));
        }
        if let Atom::Integer(i) = a {
            if let Some(lo) = self.integer_range.0
                && *i < lo
            {
                return Err(format!("{i} is below the minimum {lo}"));
            }
            if let Some(hi) = self.integer_range.1
                && *i > hi
            {
                return Err(format!("{i} is above the maximum {hi}"));
            }
        }
        if let Atom::String(s) = a {
            let n = s.chars().count() as u64;
            if let Some(lo) = self.length_range.0
                && n < lo
            {
                return Err(format!("{s:?} is shorter than {lo} characters"));
            }
            if let Some(hi) = self.length_range.1
                && n > hi
            {
                return Err(format!("{s:?} is longer than {hi} characters"));
            }
        }
        Ok(())
    }
}

/// A column type: key (and value for maps) plus the element count bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnType {
    /// Key (or element) type.
    pub key: BaseType,
    /// Value type for maps.
    pub value: Option<BaseType>,
    /// Minimum number of elements (0 or 1).
    pub min: u64,
    /// Maximum number of elements; `None` is "unlimited".
    pub max: Option<u64>,
}

impl ColumnType {
    /// Parses the `type` member of a column.
    pub fn parse(j: &Json) -> Result<Self> {
        match j {
            Json::String(_) => Ok(ColumnType {
                key: BaseType::parse(j)?,
                value: None,
                min: 1,
                max: Some(1),
            }),
            Json::Object(o) => {
                let key = BaseType::parse(
                    o.get("key")
                        .ok_or_else(|| schema_err("?", "column type without key"))?,
                )?;
                let value = o.get("value").map(BaseType::parse).transpose()?;
                let min = match o.get("min") {
                    None => 1,
                    Some(v) => v.as_u64().ok_or_else(|| schema_err("?", "bad min"))?,
                };
                let max = match o.get("max") {
                    None => Some(1),
                    Some(Json::String(s)) if s == "unlimited" => None,
                    Some(v) => Some(v.as_u64().ok_or_else(|| schema_err("?", "bad max"))?),
                };
                Ok(ColumnType {
                    key,
                    value,
                    min,
                    max,
                })
            }
            _ => Err(schema_err("?", format!("bad column type {j}"))),
        }
    }

    /// Checks a whole datum to be written: element count, and every key and value atom.
    pub fn check(&self, d: &Datum) -> std::result::Result<(), String> {
        let n = d.len() as u64;
        if n < self.min {
            return Err(format!("{n} elements, at least {} required", self.min));
        }
        if let Some(max) = self.max
            && n > max
        {
            return Err(format!("{n} elements, at most {max} allowed"));
        }
        self.check_elements(d)
    }

    /// Checks the atoms of a datum (not the count): for mutation arguments.
    pub fn check_elements(&self, d: &Datum) -> std::result::Result<(), String> {
        match (&self.value, d) {
            (Some(vt), Datum::Map(m)) => {
                for (k, v) in m.iter() {
                    self.key.check(k)?;
                    vt.check(v)?;
                }
                Ok(())
            }
            (Some(_), Datum::Set(s)) if s.is_empty() => Ok(()),
            // A map `delete` mutation may name just the keys.
            (Some(_), Datum::Set(s)) => s.iter().try_for_each(|k| self.key.check(k)),
            (None, Datum::Set(s)) => s.iter().try_for_each(|a| self.key.check(a)),
            (None, Datum::Map(m)) if m.is_empty() => Ok(()),
            (None, Datum::Map(_)) => Err("a map given for a set column".into()),
        }
    }

    /// A map column.
    pub fn is_map(&self) -> bool {
        self.value.is_some()
    }

    /// Exactly one element (a plain scalar).
    pub fn is_scalar(&self) -> bool {
        self.value.is_none() && self.min == 1 && self.max == Some(1)
    }

    /// Zero or one element.
    pub fn is_optional(&self) -> bool {
        self.value.is_none() && self.min == 0 && self.max == Some(1)
    }
}

/// One column.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSchema {
    /// Column name.
    pub name: String,
    /// Its type.
    pub ty: ColumnType,
    /// Not persisted across restarts.
    pub ephemeral: bool,
    /// May be changed after insert.
    pub mutable: bool,
}

/// One table. `columns` is sorted by name.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    /// Table name.
    pub name: String,
    /// Columns, sorted by name (excluding `_uuid` and `_version`).
    pub columns: Vec<ColumnSchema>,
    /// Root tables are not garbage-collected.
    pub is_root: bool,
    /// `maxRows`, if any.
    pub max_rows: Option<u64>,
    /// Sets of columns that must be unique together.
    pub indexes: Vec<Vec<String>>,
}

impl TableSchema {
    /// Position of a column in [`TableSchema::columns`].
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .binary_search_by(|c| c.name.as_str().cmp(name))
            .ok()
    }

    /// Looks a column up by name.
    pub fn column(&self, name: &str) -> Option<&ColumnSchema> {
        self.column_index(name).map(|i| &self.columns[i])
    }
}

/// A whole database schema.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseSchema {
    /// Database name (`OVN_Northbound`, ...).
    pub name: String,
    /// Schema version.
    pub version: String,
    /// Schema checksum, if given.
    pub cksum: Option<String>,
    /// Tables by name.
    pub tables: BTreeMap<String, TableSchema>,
}

fn schema_err(schema: &str, reason: impl Into<String>) -> Error {
    Error::Schema {
        schema: schema.to_owned(),
        reason: reason.into(),
    }
}

impl DatabaseSchema {
    /// Parses a schema document (the `get_schema` result or an `.ovsschema` file's JSON).
    pub fn parse(j: &Json) -> Result<Self> {
        let o = j
            .as_object()
            .ok_or_else(|| schema_err("?", "schema is not an object"))?;
        let name = o
            .get("name")
            .and_then(Json::as_str)
            .ok_or_else(|| schema_err("?", "schema without name"))?
            .to_owned();
        let ctx = |e: Error| match e {
            Error::Schema { reason, .. } => schema_err(&name, reason),
            Error::Value(v) => schema_err(&name, v),
            other => other,
        };
        let version = o
            .get("version")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned();
        let cksum = o.get("cksum").and_then(Json::as_str).map(str::to_owned);
        let tables_j = o
            .get("tables")
            .and_then(Json::as_object)
            .ok_or_else(|| schema_err(&name, "schema without tables"))?;
        let mut tables = BTreeMap::new();
        for (tname, tj) in tables_j {
            let to = tj
                .as_object()
                .ok_or_else(|| schema_err(&name, format!("table {tname} is not an object")))?;
            let cols_j = to
                .get("columns")
                .and_then(Json::as_object)
                .ok_or_else(|| schema_err(&name, format!("table {tname} without columns")))?;
            let mut columns = Vec::with_capacity(cols_j.len());
            for (cname, cj) in cols_j {
                let ty = cj
                    .get("type")
                    .ok_or_else(|| schema_err(&name, format!("{tname}.{cname} without type")))
                    .and_then(|t| ColumnType::parse(t).map_err(ctx))
                    .map_err(|e| match e {
                        Error::Schema { schema, reason } => Error::Schema {
                            schema,
                            reason: format!("{tname}.{cname}: {reason}"),
                        },
                        o => o,
                    })?;
                columns.push(ColumnSchema {
                    name: cname.clone(),
                    ty,
                    ephemeral: cj.get("ephemeral").and_then(Json::as_bool).unwrap_or(false),
                    mutable: cj.get("mutable").and_then(Json::as_bool).unwrap_or(true),
                });
            }
            columns.sort_by(|a, b| a.name.cmp(&b.name));
            let indexes = to
                .get("indexes")
                .and_then(Json::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Json::as_array)
                        .map(|cols| {
                            cols.iter()
                                .filter_map(Json::as_str)
                                .map(str::to_owned)
                                .collect()
                        })
                        .collect()
                })
                .unwrap_or_default();
            tables.insert(
                tname.clone(),
                TableSchema {
                    name: tname.clone(),
                    columns,
                    is_root: to.get("isRoot").and_then(Json::as_bool).unwrap_or(false),
                    max_rows: to.get("maxRows").and_then(Json::as_u64),
                    indexes,
                },
            );
        }
        Ok(DatabaseSchema {
            name,
            version,
            cksum,
            tables,
        })
    }

    /// Reads and parses an `.ovsschema` file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read(path).map_err(|e| Error::Schema {
            schema: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let j: Json = serde_json::from_slice(&text).map_err(|e| Error::Schema {
            schema: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&j)
    }

    /// Looks a table up, with an error naming it when missing.
    pub fn table(&self, name: &str) -> Result<&TableSchema> {
        self.tables.get(name).ok_or_else(|| Error::SchemaMismatch {
            db: self.name.clone(),
            table: name.to_owned(),
            column: None,
            reason: "no such table in the server's schema".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_column_types() {
        let t = ColumnType::parse(&json!({"key": {"type": "uuid", "refTable": "Logical_Switch_Port", "refType": "weak"}, "min": 0, "max": "unlimited"})).unwrap();
        assert_eq!(t.key.atomic, AtomicType::Uuid);
        assert_eq!(t.key.ref_table.as_deref(), Some("Logical_Switch_Port"));
        assert_eq!(t.key.ref_type, RefType::Weak);
        assert_eq!((t.min, t.max), (0, None));
        let t = ColumnType::parse(&json!("string")).unwrap();
        assert!(t.is_scalar());
        let t = ColumnType::parse(
            &json!({"key": {"type": "string", "enum": ["set", ["a", "b"]]}, "min": 0, "max": 1}),
        )
        .unwrap();
        assert!(t.is_optional());
        assert_eq!(
            t.key.enum_values.unwrap(),
            vec![Atom::from("a"), Atom::from("b")]
        );
        let t = ColumnType::parse(&json!({"key": {"type": "string", "enum": "only"}})).unwrap();
        assert_eq!(t.key.enum_values.unwrap(), vec![Atom::from("only")]);
        assert!(ColumnType::parse(&json!("float")).is_err());
        assert!(ColumnType::parse(&json!({"value": "string"})).is_err());
        assert!(ColumnType::parse(&json!({"key": "string", "max": -1})).is_err());
    }

    #[test]
    fn checks_values_against_constraints() {
        let t = ColumnType::parse(&json!({"key": {"type": "integer", "minInteger": 1, "maxInteger": 4095}, "min": 0, "max": 1})).unwrap();
        assert!(t.check(&Datum::default()).is_ok());
        assert!(t.check(&Datum::scalar(4095)).is_ok());
        assert!(
            t.check(&Datum::scalar(0))
                .unwrap_err()
                .contains("below the minimum 1")
        );
        assert!(
            t.check(&Datum::scalar("x"))
                .unwrap_err()
                .contains("not of type integer")
        );
        let e = ColumnType::parse(
            &json!({"key": {"type": "string", "enum": ["set", ["allow", "drop"]]}}),
        )
        .unwrap();
        assert!(e.check(&Datum::scalar("drop")).is_ok());
        assert!(
            e.check(&Datum::scalar("permit"))
                .unwrap_err()
                .contains("not one of")
        );
        assert!(
            e.check(&Datum::default())
                .unwrap_err()
                .contains("at least 1")
        );
        let s =
            ColumnType::parse(&json!({"key": {"type": "string", "minLength": 2, "maxLength": 3}}))
                .unwrap();
        assert!(s.check(&Datum::scalar("a")).is_err() && s.check(&Datum::scalar("abcd")).is_err());
        assert!(s.check(&Datum::scalar("ab")).is_ok());
        let r = ColumnType::parse(&json!("real")).unwrap();
        assert!(
            r.check(&Datum::scalar(3)).is_ok(),
            "integers are valid reals"
        );
        let m = ColumnType::parse(&json!({"key": "string", "value": {"type": "integer", "maxInteger": 5}, "min": 0, "max": "unlimited"})).unwrap();
        assert!(
            m.check(&Datum::map([(Atom::from("a"), Atom::from(5))]))
                .is_ok()
        );
        assert!(
            m.check(&Datum::map([(Atom::from("a"), Atom::from(6))]))
                .is_err()
        );
        assert!(
            m.check_elements(&Datum::set([Atom::from("a")])).is_ok(),
            "map delete by keys"
        );
        assert!(m.check(&Datum::set([Atom::from(1)])).is_err());
        let u = ColumnType::parse(&json!({"key": "uuid", "min": 0, "max": "unlimited"})).unwrap();
        assert!(u.check(&Datum::scalar(Atom::NamedUuid("x".into()))).is_ok());
    }

    #[test]
    fn parses_installed_schema_files() {
        for (path, name, table, col) in [
            (
                "/usr/share/ovn/ovn-nb.ovsschema",
                "OVN_Northbound",
                "Logical_Switch_Port",
                "addresses",
            ),
            (
                "/usr/share/ovn/ovn-sb.ovsschema",
                "OVN_Southbound",
                "Port_Binding",
                "chassis",
            ),
            (
                "/usr/share/openvswitch/vswitch.ovsschema",
                "Open_vSwitch",
                "Interface",
                "ofport",
            ),
        ] {
            let s = DatabaseSchema::from_file(Path::new(path)).unwrap();
            assert_eq!(s.name, name);
            let t = s.table(table).unwrap();
            assert!(t.column(col).is_some(), "{table}.{col}");
            assert!(t.columns.windows(2).all(|w| w[0].name < w[1].name));
            assert!(s.table("Nope").is_err());
        }
    }

    #[test]
    fn rejects_bad_documents() {
        assert!(DatabaseSchema::parse(&json!([])).is_err());
        assert!(DatabaseSchema::parse(&json!({"name": "x"})).is_err());
        let e = DatabaseSchema::parse(
            &json!({"name": "x", "tables": {"T": {"columns": {"c": {"type": "bogus"}}}}}),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("T.c"), "{e}");
    }
}
