//! Typed rows for the tables the controller and daemon use, generated from the installed
//! `.ovsschema` files into `generated.rs` (see [`codegen`]; a plain `cargo test` fails when the
//! committed file drifts from the schemas). Each struct implements [`Table`]; its column
//! constants ([`Column`]) build typed conditions, updates and mutations for the
//! [`Txn`](crate::txn::Txn) builder.
//!
//! At connect time [`Table::check`] compares every modelled column with the live server schema:
//! a missing table or column, or a different type, is an [`Error::SchemaMismatch`] naming it.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use crate::error::{Error, Result};
use crate::protocol::{Condition, Mutation};
use crate::replica::{Replica, Row};
use crate::schema::{AtomicType, ColumnType, DatabaseSchema};
use crate::value::{Atom, Datum, Uuid};

pub mod codegen;
#[rustfmt::skip]
mod generated;
pub use generated::{nb, sb, vswitch};

/// The shape a Rust field expects of its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Exactly one atom.
    Scalar(AtomicType),
    /// Zero or one atom.
    Optional(AtomicType),
    /// Any number of atoms.
    Set(AtomicType),
    /// A map.
    Map(AtomicType, AtomicType),
}

impl Kind {
    /// Whether a column of type `ty` can be held in this kind.
    pub fn accepts(self, ty: &ColumnType) -> bool {
        match (self, &ty.value) {
            (Kind::Scalar(a), None) => ty.is_scalar() && ty.key.atomic == a,
            (Kind::Optional(a), None) => ty.is_optional() && ty.key.atomic == a,
            (Kind::Set(a), None) => ty.key.atomic == a && ty.max != Some(1),
            (Kind::Map(k, v), Some(vt)) => ty.key.atomic == k && vt.atomic == v,
            _ => false,
        }
    }
}

/// A Rust type usable as one OVSDB atom.
pub trait AtomValue: Sized {
    /// Its atomic type.
    const ATOMIC: AtomicType;
    /// Converts from an atom.
    fn from_atom(a: &Atom) -> Option<Self>;
    /// Converts to an atom.
    fn to_atom(&self) -> Atom;
}

impl AtomValue for String {
    const ATOMIC: AtomicType = AtomicType::String;
    fn from_atom(a: &Atom) -> Option<Self> {
        a.as_str().map(str::to_owned)
    }
    fn to_atom(&self) -> Atom {
        Atom::string(self)
    }
}
impl AtomValue for i64 {
    const ATOMIC: AtomicType = AtomicType::Integer;
    fn from_atom(a: &Atom) -> Option<Self> {
        a.as_integer()
    }
    fn to_atom(&self) -> Atom {
        Atom::Integer(*self)
    }
}
impl AtomValue for f64 {
    const ATOMIC: AtomicType = AtomicType::Real;
    fn from_atom(a: &Atom) -> Option<Self> {
        match a {
            Atom::Real(r) => Some(*r),
            Atom::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }
    fn to_atom(&self) -> Atom {
        Atom::Real(*self)
    }
}
impl AtomValue for bool {
    const ATOMIC: AtomicType = AtomicType::Boolean;
    fn from_atom(a: &Atom) -> Option<Self> {
        match a {
            Atom::Boolean(b) => Some(*b),
            _ => None,
        }
    }
    fn to_atom(&self) -> Atom {
        Atom::Boolean(*self)
    }
}
impl AtomValue for Uuid {
    const ATOMIC: AtomicType = AtomicType::Uuid;
    fn from_atom(a: &Atom) -> Option<Self> {
        a.as_uuid()
    }
    fn to_atom(&self) -> Atom {
        Atom::Uuid(*self)
    }
}

/// A Rust type usable as a column value.
pub trait Field: Sized {
    /// The column shape it needs.
    const KIND: Kind;
    /// Converts from a datum (`Err` says why not).
    fn from_datum(d: &Datum) -> std::result::Result<Self, String>;
    /// Converts to a datum.
    fn to_datum(&self) -> Datum;
}

fn atom_err<T: AtomValue>(a: &Atom) -> String {
    format!("expected {}, got {a:?}", T::ATOMIC)
}

impl<T: AtomValue> Field for T {
    const KIND: Kind = Kind::Scalar(T::ATOMIC);
    fn from_datum(d: &Datum) -> std::result::Result<Self, String> {
        match d.as_set() {
            [a] => T::from_atom(a).ok_or_else(|| atom_err::<T>(a)),
            other => Err(format!("expected one value, got {}", other.len())),
        }
    }
    fn to_datum(&self) -> Datum {
        Datum::scalar(self.to_atom())
    }
}

impl<T: AtomValue> Field for Option<T> {
    const KIND: Kind = Kind::Optional(T::ATOMIC);
    fn from_datum(d: &Datum) -> std::result::Result<Self, String> {
        match d.as_set() {
            [] => Ok(None),
            [a] => T::from_atom(a).map(Some).ok_or_else(|| atom_err::<T>(a)),
            other => Err(format!("expected at most one value, got {}", other.len())),
        }
    }
    fn to_datum(&self) -> Datum {
        Datum::set(self.iter().map(T::to_atom))
    }
}

impl<T: AtomValue> Field for Vec<T> {
    const KIND: Kind = Kind::Set(T::ATOMIC);
    fn from_datum(d: &Datum) -> std::result::Result<Self, String> {
        d.as_set()
            .iter()
            .map(|a| T::from_atom(a).ok_or_else(|| atom_err::<T>(a)))
            .collect()
    }
    fn to_datum(&self) -> Datum {
        Datum::set(self.iter().map(T::to_atom))
    }
}

impl<K: AtomValue + Ord, V: AtomValue> Field for BTreeMap<K, V> {
    const KIND: Kind = Kind::Map(K::ATOMIC, V::ATOMIC);
    fn from_datum(d: &Datum) -> std::result::Result<Self, String> {
        d.as_map()
            .iter()
            .map(|(k, v)| {
                Ok((
                    K::from_atom(k).ok_or_else(|| atom_err::<K>(k))?,
                    V::from_atom(v).ok_or_else(|| atom_err::<V>(v))?,
                ))
            })
            .collect()
    }
    fn to_datum(&self) -> Datum {
        Datum::map(self.iter().map(|(k, v)| (k.to_atom(), v.to_atom())))
    }
}

/// A typed row of one table.
pub trait Table: Sized {
    /// Database name.
    const DATABASE: &'static str;
    /// Table name.
    const TABLE: &'static str;
    /// Modelled columns and the shapes their fields need.
    const COLUMNS: &'static [(&'static str, Kind)];

    /// The row's UUID (nil for a row not yet inserted).
    fn uuid(&self) -> Uuid;

    /// Converts a replica row.
    fn from_row(row: &Row) -> Result<Self>;

    /// The column values to insert: every scalar, and every non-empty set or map (empty ones
    /// are the server's default anyway).
    fn to_columns(&self) -> BTreeMap<String, Datum>;

    /// Checks the live schema has every modelled column with a compatible type.
    fn check(schema: &DatabaseSchema) -> Result<()> {
        check_columns(schema, Self::DATABASE, Self::TABLE, Self::COLUMNS)
    }
}

/// Checks `columns` of `table` against `schema` (see [`Table::check`]).
pub fn check_columns(
    schema: &DatabaseSchema,
    db: &str,
    table: &str,
    columns: &[(&str, Kind)],
) -> Result<()> {
    let mismatch = |column: Option<&str>, reason: String| Error::SchemaMismatch {
        db: db.to_owned(),
        table: table.to_owned(),
        column: column.map(str::to_owned),
        reason,
    };
    if schema.name != db {
        return Err(mismatch(
            None,
            format!("the server's database is {}, not {db}", schema.name),
        ));
    }
    let t = schema.table(table)?;
    for (name, kind) in columns {
        let c = t
            .column(name)
            .ok_or_else(|| mismatch(Some(name), "no such column in the server's schema".into()))?;
        if !kind.accepts(&c.ty) {
            return Err(mismatch(
                Some(name),
                format!(
                    "server type {:?} does not fit the typed field ({kind:?})",
                    c.ty
                ),
            ));
        }
    }
    Ok(())
}

/// Reads one field out of a row, naming the table and column on failure.
pub fn read_field<F: Field>(row: &Row, table: &str, column: &str) -> Result<F> {
    let d = row.get(column).ok_or_else(|| Error::Column {
        table: table.to_owned(),
        column: column.to_owned(),
        reason: "missing from the replica row".into(),
    })?;
    F::from_datum(d).map_err(|reason| Error::Column {
        table: table.to_owned(),
        column: column.to_owned(),
        reason,
    })
}

/// A typed column handle: `LogicalSwitch::PORTS.insert(p)`, `Acl::PRIORITY.eq(1000)`.
#[derive(Debug)]
pub struct Column<T, V> {
    name: &'static str,
    _t: PhantomData<fn() -> (T, V)>,
}

impl<T, V> Clone for Column<T, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T, V> Copy for Column<T, V> {}

/// A condition on table `T`.
#[derive(Debug, Clone)]
pub struct Where<T>(pub Vec<Condition>, PhantomData<fn() -> T>);

impl<T> Where<T> {
    /// From raw conditions.
    pub fn raw(c: Vec<Condition>) -> Self {
        Where(c, PhantomData)
    }

    /// Adds a condition (both must hold).
    pub fn and(mut self, other: Where<T>) -> Self {
        self.0.extend(other.0);
        self
    }
}

impl<T> From<Uuid> for Where<T> {
    fn from(u: Uuid) -> Self {
        Where::raw(vec![Condition::uuid(u)])
    }
}

/// A column assignment for table `T` (update, or overriding a column on insert).
#[derive(Debug, Clone)]
pub struct Set<T> {
    /// Column name.
    pub column: String,
    /// New value.
    pub value: Datum,
    _t: PhantomData<fn() -> T>,
}

/// A mutation of table `T`.
#[derive(Debug, Clone)]
pub struct Mutate<T>(pub Mutation, PhantomData<fn() -> T>);

impl<T, V> Column<T, V> {
    /// A handle for column `name`.
    pub const fn new(name: &'static str) -> Self {
        Column {
            name,
            _t: PhantomData,
        }
    }

    /// The column name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// `column == value`.
    pub fn eq(self, value: impl Into<Datum>) -> Where<T> {
        Where::raw(vec![Condition::eq(self.name, value.into())])
    }

    /// `column != value`.
    pub fn ne(self, value: impl Into<Datum>) -> Where<T> {
        Where::raw(vec![Condition::ne(self.name, value.into())])
    }

    /// `column includes value` (sets and maps).
    pub fn includes(self, value: impl Into<Datum>) -> Where<T> {
        Where::raw(vec![Condition::includes(self.name, value.into())])
    }

    /// Sets the column (any value convertible to a datum, including named UUIDs).
    pub fn set(self, value: impl Into<Datum>) -> Set<T> {
        Set {
            column: self.name.to_owned(),
            value: value.into(),
            _t: PhantomData,
        }
    }

    /// Inserts elements into a set or pairs into a map.
    pub fn insert(self, value: impl Into<Datum>) -> Mutate<T> {
        Mutate(Mutation::insert(self.name, value.into()), PhantomData)
    }

    /// Deletes elements from a set, or keys (a set) or pairs (a map) from a map.
    pub fn delete(self, value: impl Into<Datum>) -> Mutate<T> {
        Mutate(Mutation::delete(self.name, value.into()), PhantomData)
    }
}

impl<T, V: Field> Column<T, V> {
    /// Sets the column from its typed value.
    pub fn to(self, value: &V) -> Set<T> {
        Set {
            column: self.name.to_owned(),
            value: value.to_datum(),
            _t: PhantomData,
        }
    }
}

/// Raw assignment helper (for columns not modelled).
pub fn set_raw<T>(column: &str, value: Datum) -> Set<T> {
    Set {
        column: column.to_owned(),
        value,
        _t: PhantomData,
    }
}

impl From<&str> for Datum {
    fn from(s: &str) -> Self {
        Datum::scalar(s)
    }
}
impl From<String> for Datum {
    fn from(s: String) -> Self {
        Datum::scalar(s)
    }
}
impl From<i64> for Datum {
    fn from(i: i64) -> Self {
        Datum::scalar(i)
    }
}
impl From<bool> for Datum {
    fn from(b: bool) -> Self {
        Datum::scalar(b)
    }
}
impl From<Atom> for Datum {
    fn from(a: Atom) -> Self {
        Datum::scalar(a)
    }
}
impl<A: Into<Atom>> From<Vec<A>> for Datum {
    fn from(v: Vec<A>) -> Self {
        Datum::set(v.into_iter().map(Into::into))
    }
}
impl<K: Into<Atom>, V: Into<Atom>> From<BTreeMap<K, V>> for Datum {
    fn from(m: BTreeMap<K, V>) -> Self {
        Datum::map(m.into_iter().map(|(k, v)| (k.into(), v.into())))
    }
}
impl<K: Into<Atom>, V: Into<Atom>, const N: usize> From<[(K, V); N]> for Datum {
    fn from(m: [(K, V); N]) -> Self {
        Datum::map(m.into_iter().map(|(k, v)| (k.into(), v.into())))
    }
}

/// Typed reads of the replica.
impl Replica {
    /// Every row of `T`'s table (empty if not monitored).
    pub fn list<T: Table>(&self) -> Result<Vec<T>> {
        self.table(T::TABLE).map_or(Ok(Vec::new()), |t| {
            t.rows().map(|r| T::from_row(r)).collect()
        })
    }

    /// One row by UUID.
    pub fn get<T: Table>(&self, uuid: Uuid) -> Result<Option<T>> {
        self.table(T::TABLE)
            .and_then(|t| t.get(&uuid))
            .map(|r| T::from_row(r))
            .transpose()
    }

    /// Rows whose `name` is `name` (index lookup).
    pub fn by_name<T: Table>(&self, name: &str) -> Result<Vec<T>> {
        self.table(T::TABLE).map_or(Ok(Vec::new()), |t| {
            t.by_name(name).map(|r| T::from_row(r)).collect()
        })
    }

    /// The single row named `name`, if any (the first one if several share the name).
    pub fn one_by_name<T: Table>(&self, name: &str) -> Result<Option<T>> {
        self.table(T::TABLE)
            .and_then(|t| t.by_name(name).next())
            .map(|r| T::from_row(r))
            .transpose()
    }

    /// The UUID of the row named `name` (the first one if several share the name), without
    /// converting the row: cheap even for a switch with thousands of ports.
    pub fn uuid_by_name<T: Table>(&self, name: &str) -> Option<Uuid> {
        self.table(T::TABLE)
            .and_then(|t| t.by_name(name).next())
            .map(|r| r.uuid)
    }

    /// The UUIDs of `T`'s rows whose set column `column` holds `member` (a binary search in
    /// each row's sorted set, without converting the rows): e.g. the switch that owns a port.
    pub fn referrers<T: Table>(&self, column: &str, member: &crate::value::Atom) -> Vec<Uuid> {
        self.table(T::TABLE).map_or_else(Vec::new, |t| {
            t.rows()
                .filter(|r| {
                    r.get(column)
                        .is_some_and(|d| d.as_set().binary_search(member).is_ok())
                })
                .map(|r| r.uuid)
                .collect()
        })
    }

    /// Rows with `external_ids:key=value` (index lookup).
    pub fn by_external_id<T: Table>(&self, key: &str, value: &str) -> Result<Vec<T>> {
        self.table(T::TABLE).map_or(Ok(Vec::new()), |t| {
            t.by_external_id(key, value)
                .map(|r| T::from_row(r))
                .collect()
        })
    }
}

/// Defines a typed table struct (used by the generated code).
#[macro_export]
#[doc(hidden)]
macro_rules! ovsdb_table {
    ($(#[$m:meta])* $name:ident, $db:literal, $table:literal {
        $($(#[$fm:meta])* $field:ident : $ty:ty = $col:literal, $konst:ident;)*
    }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Default)]
        pub struct $name {
            /// The row's `_uuid` (nil until inserted).
            pub uuid: $crate::value::Uuid,
            $($(#[$fm])* pub $field: $ty,)*
        }

        impl $name {
            $(
                #[doc = concat!("The `", $col, "` column.")]
                pub const $konst: $crate::tables::Column<$name, $ty> = $crate::tables::Column::new($col);
            )*
        }

        impl $crate::tables::Table for $name {
            const DATABASE: &'static str = $db;
            const TABLE: &'static str = $table;
            const COLUMNS: &'static [(&'static str, $crate::tables::Kind)] =
                &[$(($col, <$ty as $crate::tables::Field>::KIND)),*];

            fn uuid(&self) -> $crate::value::Uuid {
                self.uuid
            }

            fn from_row(row: &$crate::replica::Row) -> $crate::Result<Self> {
                Ok($name {
                    uuid: row.uuid,
                    $($field: $crate::tables::read_field(row, $table, $col)?,)*
                })
            }

            fn to_columns(&self) -> std::collections::BTreeMap<String, $crate::value::Datum> {
                let mut m = std::collections::BTreeMap::new();
                $(
                    let d = $crate::tables::Field::to_datum(&self.$field);
                    if !d.is_empty() || matches!(<$ty as $crate::tables::Field>::KIND, $crate::tables::Kind::Scalar(_)) {
                        m.insert($col.to_owned(), d);
                    }
                )*
                m
            }
        }
    };
}

impl crate::rpc::ClientConfig {
    /// Monitors `T`'s table and checks its columns against the live schema at every connect.
    pub fn typed<T: Table>(self) -> Self {
        self.monitor_table(T::TABLE).check(T::check)
    }

    fn with_all(mut self, tables: &[(&str, crate::rpc::SchemaCheck)]) -> Self {
        for (t, check) in tables {
            self = self.monitor_table(t).check(*check);
        }
        self
    }

    /// `OVN_Northbound` with every typed NB table monitored and checked.
    pub fn northbound(remotes: impl Into<String>) -> Self {
        Self::new(remotes, nb::DATABASE).with_all(nb::TABLES)
    }

    /// `OVN_Southbound` with every typed SB table monitored and checked.
    pub fn southbound(remotes: impl Into<String>) -> Self {
        Self::new(remotes, sb::DATABASE).with_all(sb::TABLES)
    }

    /// `Open_vSwitch` with every typed table monitored and checked.
    pub fn open_vswitch(remotes: impl Into<String>) -> Self {
        Self::new(remotes, vswitch::DATABASE).with_all(vswitch::TABLES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::nb::{Acl, LogicalSwitch, LogicalSwitchPort};
    use serde_json::json;
    use std::path::Path;

    #[test]
    fn every_typed_table_fits_the_installed_schema() {
        for (_, path, _) in codegen::SPEC {
            let s = DatabaseSchema::from_file(Path::new(path)).unwrap();
            let all: &[(&str, crate::rpc::SchemaCheck)] = match s.name.as_str() {
                "OVN_Northbound" => nb::TABLES,
                "OVN_Southbound" => sb::TABLES,
                _ => vswitch::TABLES,
            };
            for (t, check) in all {
                check(&s).unwrap_or_else(|e| panic!("{t}: {e}"));
            }
        }
    }

    #[test]
    fn raw_lookups_by_name_and_by_set_member() {
        use crate::protocol::parse_table_updates;
        use crate::replica::Replica;
        use crate::value::Atom;
        let schema = std::sync::Arc::new(
            DatabaseSchema::from_file(Path::new("/usr/share/ovn/ovn-nb.ovsschema")).unwrap(),
        );
        let mut r = Replica::new(schema, &["Logical_Switch".into()]).unwrap();
        let u = |i: u128| Uuid::from_u128(i).to_string();
        let ports: Vec<_> = (10..20).map(|i| json!(["uuid", u(i)])).collect();
        let init = json!({"Logical_Switch": {
            u(1): {"initial": {"name": "a", "ports": ["set", ports]}},
            u(2): {"initial": {"name": "b", "ports": ["uuid", u(30)]}},
        }});
        r.apply(&parse_table_updates(&init, true).unwrap()).unwrap();
        assert_eq!(
            r.uuid_by_name::<LogicalSwitch>("b"),
            Some(Uuid::from_u128(2))
        );
        assert_eq!(r.uuid_by_name::<LogicalSwitch>("zz"), None);
        let owner = |i| r.referrers::<LogicalSwitch>("ports", &Atom::Uuid(Uuid::from_u128(i)));
        assert_eq!(owner(15), vec![Uuid::from_u128(1)]);
        assert_eq!(owner(30), vec![Uuid::from_u128(2)]);
        assert!(owner(99).is_empty());
        assert!(
            r.referrers::<LogicalSwitchPort>("ports", &Atom::Uuid(Uuid::from_u128(15)))
                .is_empty(),
            "an unmonitored table has no referrers"
        );
    }

    #[test]
    fn check_names_missing_table_and_column() {
        let mut s = DatabaseSchema::from_file(Path::new(codegen::SPEC[0].1)).unwrap();
        s.tables
            .get_mut("ACL")
            .unwrap()
            .columns
            .retain(|c| c.name != "priority");
        let e = Acl::check(&s).unwrap_err().to_string();
        assert!(e.contains("table ACL column priority"), "{e}");
        s.tables.remove("Logical_Switch");
        let e = LogicalSwitch::check(&s).unwrap_err().to_string();
        assert!(
            e.contains("Logical_Switch") && e.contains("no such table"),
            "{e}"
        );
        // a type change is caught too
        let ls = s.tables.get_mut("Logical_Switch_Port").unwrap();
        let i = ls.column_index("tag").unwrap();
        ls.columns[i].ty = crate::schema::ColumnType::parse(&json!("string")).unwrap();
        let e = LogicalSwitchPort::check(&s).unwrap_err().to_string();
        assert!(e.contains("column tag"), "{e}");
    }

    #[test]
    fn field_conversions_round_trip() {
        let v: Vec<String> = vec!["a".into(), "b".into()];
        assert_eq!(Vec::<String>::from_datum(&v.to_datum()).unwrap(), v);
        let o: Option<i64> = Some(5);
        assert_eq!(Option::<i64>::from_datum(&o.to_datum()).unwrap(), o);
        assert_eq!(Option::<i64>::from_datum(&Datum::default()).unwrap(), None);
        let m: BTreeMap<String, String> = [("k".to_string(), "v".to_string())].into();
        assert_eq!(
            BTreeMap::<String, String>::from_datum(&m.to_datum()).unwrap(),
            m
        );
        assert!(String::from_datum(&Datum::default()).is_err());
        assert!(i64::from_datum(&Datum::scalar("x")).is_err());
        assert!(
            Option::<bool>::from_datum(&Datum::set([Atom::from(true), Atom::from(false)])).is_err()
        );
    }

    #[test]
    fn to_columns_skips_empty_collections_but_keeps_scalars() {
        let lsp = LogicalSwitchPort {
            name: "p".into(),
            ..Default::default()
        };
        let cols = lsp.to_columns();
        assert_eq!(cols.get("name"), Some(&Datum::scalar("p")));
        assert_eq!(cols.get("type"), Some(&Datum::scalar("")));
        assert!(!cols.contains_key("addresses") && !cols.contains_key("tag"));
    }
}
