//! OVSDB values (RFC 7047 §5.1): atoms, sets, maps and UUID references, with their JSON wire
//! forms (`["set",[..]]`, `["map",[[k,v],..]]`, `["uuid",".."]`, `["named-uuid",".."]`).
//!
//! A [`Datum`] is always held in canonical form (elements sorted, no duplicate set elements or
//! map keys), so two datums are equal exactly when OVSDB considers them equal. Pure code: no I/O.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::schema::{AtomicType, BaseType, ColumnType};

/// A row UUID. Stored as 16 bytes (not 128-bit aligned) to keep replica rows small.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// The all-zero UUID.
    pub const NIL: Uuid = Uuid([0; 16]);

    /// Builds a UUID from a 128-bit number (handy in tests).
    pub fn from_u128(v: u128) -> Self {
        Uuid(v.to_be_bytes())
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Uuid {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Value(format!("not a UUID: {s:?}"));
        let b = s.as_bytes();
        if b.len() != 36 {
            return Err(bad());
        }
        let mut out = [0u8; 16];
        let mut n = 0;
        let mut i = 0;
        while i < 36 {
            if matches!(i, 8 | 13 | 18 | 23) {
                if b[i] != b'-' {
                    return Err(bad());
                }
                i += 1;
                continue;
            }
            let hi = hex(b[i]).ok_or_else(bad)?;
            let lo = hex(b[i + 1]).ok_or_else(bad)?;
            out[n] = (hi << 4) | lo;
            n += 1;
            i += 2;
        }
        Ok(Uuid(out))
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// One OVSDB atom.
///
/// Strings are `Arc<str>` so the replica's secondary indexes share them with the rows.
#[derive(Clone)]
pub enum Atom {
    /// 64-bit integer.
    Integer(i64),
    /// IEEE double.
    Real(f64),
    /// Boolean.
    Boolean(bool),
    /// UTF-8 string.
    String(Arc<str>),
    /// Reference to a row by UUID.
    Uuid(Uuid),
    /// Reference to a row inserted earlier in the same transaction (`["named-uuid", name]`).
    NamedUuid(Arc<str>),
}

impl Atom {
    /// A string atom.
    pub fn string(s: impl AsRef<str>) -> Self {
        Atom::String(Arc::from(s.as_ref()))
    }

    fn rank(&self) -> u8 {
        match self {
            Atom::Integer(_) => 0,
            Atom::Real(_) => 1,
            Atom::Boolean(_) => 2,
            Atom::String(_) => 3,
            Atom::Uuid(_) => 4,
            Atom::NamedUuid(_) => 5,
        }
    }

    /// The string, if this is a string atom.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Atom::String(s) => Some(s),
            _ => None,
        }
    }

    /// The UUID, if this is a UUID atom.
    pub fn as_uuid(&self) -> Option<Uuid> {
        match self {
            Atom::Uuid(u) => Some(*u),
            _ => None,
        }
    }

    /// The integer, if this is an integer atom.
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Atom::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The JSON wire form of this atom.
    pub fn to_json(&self) -> Json {
        match self {
            Atom::Integer(i) => Json::from(*i),
            Atom::Real(r) => serde_json::Number::from_f64(*r).map_or(Json::Null, Json::Number),
            Atom::Boolean(b) => Json::Bool(*b),
            Atom::String(s) => Json::String(s.to_string()),
            Atom::Uuid(u) => Json::Array(vec![Json::from("uuid"), Json::String(u.to_string())]),
            Atom::NamedUuid(n) => {
                Json::Array(vec![Json::from("named-uuid"), Json::String(n.to_string())])
            }
        }
    }

    /// Parses an atom without knowing its type (numbers with a fraction or exponent are reals).
    pub fn from_json(j: &Json) -> Result<Atom> {
        match j {
            Json::Bool(b) => Ok(Atom::Boolean(*b)),
            Json::String(s) => Ok(Atom::string(s)),
            Json::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Ok(Atom::Integer(i))
                } else if let Some(f) = n.as_f64() {
                    Ok(Atom::Real(f))
                } else {
                    Err(Error::Value(format!("number out of range: {n}")))
                }
            }
            Json::Array(a) => match a.as_slice() {
                [Json::String(tag), Json::String(v)] if tag == "uuid" => Ok(Atom::Uuid(v.parse()?)),
                [Json::String(tag), Json::String(v)] if tag == "named-uuid" => {
                    Ok(Atom::NamedUuid(Arc::from(v.as_str())))
                }
                _ => Err(Error::Value(format!("not an atom: {}", short(j)))),
            },
            _ => Err(Error::Value(format!("not an atom: {}", short(j)))),
        }
    }

    /// Parses an atom of a known type; integers are accepted for reals.
    pub fn from_json_typed(j: &Json, ty: AtomicType) -> Result<Atom> {
        let atom = Atom::from_json(j)?;
        match (ty, atom) {
            (AtomicType::Integer, a @ Atom::Integer(_)) => Ok(a),
            (AtomicType::Real, a @ Atom::Real(_)) => Ok(a),
            (AtomicType::Real, Atom::Integer(i)) => Ok(Atom::Real(i as f64)),
            (AtomicType::Boolean, a @ Atom::Boolean(_)) => Ok(a),
            (AtomicType::String, a @ Atom::String(_)) => Ok(a),
            (AtomicType::Uuid, a @ (Atom::Uuid(_) | Atom::NamedUuid(_))) => Ok(a),
            (ty, a) => Err(Error::Value(format!(
                "expected {ty}, got {}",
                short(&a.to_json())
            ))),
        }
    }

    /// True if the atom has the given type.
    pub fn is_type(&self, ty: AtomicType) -> bool {
        matches!(
            (ty, self),
            (AtomicType::Integer, Atom::Integer(_))
                | (AtomicType::Real, Atom::Real(_))
                | (AtomicType::Boolean, Atom::Boolean(_))
                | (AtomicType::String, Atom::String(_))
                | (AtomicType::Uuid, Atom::Uuid(_) | Atom::NamedUuid(_))
        )
    }
}

impl PartialEq for Atom {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Atom {}
impl PartialOrd for Atom {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Atom {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Atom::Integer(a), Atom::Integer(b)) => a.cmp(b),
            (Atom::Real(a), Atom::Real(b)) => a.total_cmp(b),
            (Atom::Boolean(a), Atom::Boolean(b)) => a.cmp(b),
            (Atom::String(a), Atom::String(b)) => a.cmp(b),
            (Atom::Uuid(a), Atom::Uuid(b)) => a.cmp(b),
            (Atom::NamedUuid(a), Atom::NamedUuid(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}
impl std::hash::Hash for Atom {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.rank().hash(state);
        match self {
            Atom::Integer(i) => i.hash(state),
            Atom::Real(r) => r.to_bits().hash(state),
            Atom::Boolean(b) => b.hash(state),
            Atom::String(s) | Atom::NamedUuid(s) => s.hash(state),
            Atom::Uuid(u) => u.hash(state),
        }
    }
}

impl fmt::Debug for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Atom::Integer(i) => write!(f, "{i}"),
            Atom::Real(r) => write!(f, "{r:?}"),
            Atom::Boolean(b) => write!(f, "{b}"),
            Atom::String(s) => write!(f, "{s:?}"),
            Atom::Uuid(u) => write!(f, "{u}"),
            Atom::NamedUuid(n) => write!(f, "@{n}"),
        }
    }
}

impl From<&str> for Atom {
    fn from(s: &str) -> Self {
        Atom::string(s)
    }
}
impl From<String> for Atom {
    fn from(s: String) -> Self {
        Atom::String(Arc::from(s))
    }
}
impl From<i64> for Atom {
    fn from(i: i64) -> Self {
        Atom::Integer(i)
    }
}
impl From<bool> for Atom {
    fn from(b: bool) -> Self {
        Atom::Boolean(b)
    }
}
impl From<f64> for Atom {
    fn from(r: f64) -> Self {
        Atom::Real(r)
    }
}
impl From<Uuid> for Atom {
    fn from(u: Uuid) -> Self {
        Atom::Uuid(u)
    }
}

/// An OVSDB datum: the value of one column. Scalars are one-element sets; optional values are
/// sets of zero or one element. Kept canonical: sorted, without duplicates.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Datum {
    /// A set of atoms (also every scalar column).
    Set(Box<[Atom]>),
    /// A map from key atoms to value atoms, sorted by key, keys unique.
    Map(Box<[(Atom, Atom)]>),
}

impl Default for Datum {
    fn default() -> Self {
        Datum::Set(Box::new([]))
    }
}

impl fmt::Debug for Datum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Datum::Set(s) if s.len() == 1 => write!(f, "{:?}", s[0]),
            Datum::Set(s) => f.debug_set().entries(s.iter()).finish(),
            Datum::Map(m) => f
                .debug_map()
                .entries(m.iter().map(|(k, v)| (k, v)))
                .finish(),
        }
    }
}

impl Datum {
    /// A one-atom datum.
    pub fn scalar(a: impl Into<Atom>) -> Self {
        Datum::Set(Box::new([a.into()]))
    }

    /// A set datum, canonicalised.
    pub fn set(atoms: impl IntoIterator<Item = Atom>) -> Self {
        let mut v: Vec<Atom> = atoms.into_iter().collect();
        v.sort();
        v.dedup();
        Datum::Set(v.into_boxed_slice())
    }

    /// A map datum, canonicalised. For duplicate keys the last one wins.
    pub fn map(pairs: impl IntoIterator<Item = (Atom, Atom)>) -> Self {
        let m: BTreeMap<Atom, Atom> = pairs.into_iter().collect();
        Datum::Map(m.into_iter().collect::<Vec<_>>().into_boxed_slice())
    }

    /// The empty map.
    pub fn empty_map() -> Self {
        Datum::Map(Box::new([]))
    }

    /// Number of elements (set members or map pairs).
    pub fn len(&self) -> usize {
        match self {
            Datum::Set(s) => s.len(),
            Datum::Map(m) => m.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The set elements (empty for a map).
    pub fn as_set(&self) -> &[Atom] {
        match self {
            Datum::Set(s) => s,
            Datum::Map(_) => &[],
        }
    }

    /// The map pairs (empty for a set).
    pub fn as_map(&self) -> &[(Atom, Atom)] {
        match self {
            Datum::Map(m) => m,
            Datum::Set(_) => &[],
        }
    }

    /// Looks a key up in a map datum.
    pub fn map_get(&self, key: &str) -> Option<&Atom> {
        let m = self.as_map();
        m.binary_search_by(|(k, _)| match k {
            Atom::String(s) => (**s).cmp(key),
            other => other.rank().cmp(&3),
        })
        .ok()
        .map(|i| &m[i].1)
    }

    /// The JSON wire form: a one-element set as the bare atom, otherwise `["set",[..]]` or
    /// `["map",[[k,v],..]]`.
    pub fn to_json(&self) -> Json {
        match self {
            Datum::Set(s) if s.len() == 1 => s[0].to_json(),
            Datum::Set(s) => Json::Array(vec![
                Json::from("set"),
                Json::Array(s.iter().map(Atom::to_json).collect()),
            ]),
            Datum::Map(m) => Json::Array(vec![
                Json::from("map"),
                Json::Array(
                    m.iter()
                        .map(|(k, v)| Json::Array(vec![k.to_json(), v.to_json()]))
                        .collect(),
                ),
            ]),
        }
    }

    /// Parses a datum without a schema. `["set",..]`/`["map",..]` give sets/maps; anything else
    /// must be a single atom.
    pub fn from_json(j: &Json) -> Result<Datum> {
        if let Json::Array(a) = j {
            match a.as_slice() {
                [Json::String(tag), Json::Array(elems)] if tag == "set" => {
                    return Ok(Datum::set(
                        elems
                            .iter()
                            .map(Atom::from_json)
                            .collect::<Result<Vec<_>>>()?,
                    ));
                }
                [Json::String(tag), Json::Array(pairs)] if tag == "map" => {
                    let pairs = pairs
                        .iter()
                        .map(|p| match p {
                            Json::Array(kv) if kv.len() == 2 => {
                                Ok((Atom::from_json(&kv[0])?, Atom::from_json(&kv[1])?))
                            }
                            _ => Err(Error::Value(format!("bad map pair: {}", short(p)))),
                        })
                        .collect::<Result<Vec<_>>>()?;
                    return Ok(Datum::map(pairs));
                }
                _ => {}
            }
        }
        Ok(Datum::scalar(Atom::from_json(j)?))
    }

    /// Parses a datum of a known column type, checking atom types and the element count.
    /// An empty `["set",[]]` is accepted for a map column (the server may send either).
    pub fn from_json_typed(j: &Json, ty: &ColumnType) -> Result<Datum> {
        let d = match &ty.value {
            Some(vt) => match j {
                Json::Array(a) if matches!(a.as_slice(), [Json::String(t), Json::Array(e)] if t == "set" && e.is_empty()) => {
                    Datum::empty_map()
                }
                Json::Array(a) => match a.as_slice() {
                    [Json::String(tag), Json::Array(pairs)] if tag == "map" => {
                        let pairs = pairs
                            .iter()
                            .map(|p| match p {
                                Json::Array(kv) if kv.len() == 2 => Ok((
                                    Atom::from_json_typed(&kv[0], ty.key.atomic)?,
                                    Atom::from_json_typed(&kv[1], vt.atomic)?,
                                )),
                                _ => Err(Error::Value(format!("bad map pair: {}", short(p)))),
                            })
                            .collect::<Result<Vec<_>>>()?;
                        Datum::map(pairs)
                    }
                    _ => return Err(Error::Value(format!("expected a map, got {}", short(j)))),
                },
                _ => return Err(Error::Value(format!("expected a map, got {}", short(j)))),
            },
            None => {
                let atoms = match j {
                    Json::Array(a) => match a.as_slice() {
                        [Json::String(tag), Json::Array(elems)] if tag == "set" => elems
                            .iter()
                            .map(|e| Atom::from_json_typed(e, ty.key.atomic))
                            .collect::<Result<Vec<_>>>()?,
                        _ => vec![Atom::from_json_typed(j, ty.key.atomic)?],
                    },
                    _ => vec![Atom::from_json_typed(j, ty.key.atomic)?],
                };
                Datum::set(atoms)
            }
        };
        if let Some(max) = ty.max
            && d.len() as u64 > max
        {
            return Err(Error::Value(format!(
                "{} elements, at most {max} allowed",
                d.len()
            )));
        }
        Ok(d)
    }

    /// The default value of a column type (what the server stores when a column is not given):
    /// empty for optional/set/map columns, zero/false/""/nil for scalars, or the smallest
    /// enum member.
    pub fn default_for(ty: &ColumnType) -> Datum {
        if ty.value.is_some() {
            return Datum::empty_map();
        }
        if ty.min == 0 {
            return Datum::default();
        }
        Datum::scalar(default_atom(&ty.key))
    }

    /// Applies an update2 `modify` diff. A column that holds at most one element (a scalar, and
    /// also an optional value or a map with `max: 1`) is replaced by the diff, which is its new
    /// value: ovsdb-server only diffs "composite" types, those with `max` above 1
    /// (`ovsdb_datum_diff`), so `up: [false] → [true]` arrives as `[true]`, not as the toggle
    /// `{false, true}`. In larger sets elements are toggled (symmetric difference); map pairs
    /// with a new key are added, with an equal value removed, with another value replaced.
    pub fn apply_diff(&self, diff: &Datum, ty: &ColumnType) -> Datum {
        let single = ty.max == Some(1);
        match (self, diff) {
            _ if single => diff.clone(),
            (Datum::Set(old), Datum::Set(d)) => {
                let mut s: BTreeSet<Atom> = old.iter().cloned().collect();
                for a in d.iter() {
                    if !s.remove(a) {
                        s.insert(a.clone());
                    }
                }
                Datum::Set(s.into_iter().collect::<Vec<_>>().into_boxed_slice())
            }
            (Datum::Map(old), Datum::Map(d)) => {
                let mut m: BTreeMap<Atom, Atom> = old.iter().cloned().collect();
                for (k, v) in d.iter() {
                    match m.get(k) {
                        Some(cur) if cur == v => {
                            m.remove(k);
                        }
                        _ => {
                            m.insert(k.clone(), v.clone());
                        }
                    }
                }
                Datum::Map(m.into_iter().collect::<Vec<_>>().into_boxed_slice())
            }
            // An empty map may arrive as an empty set and vice versa.
            (Datum::Set(old), Datum::Map(_)) if old.is_empty() => {
                Datum::empty_map().apply_diff(diff, ty)
            }
            (_, d) => d.clone(),
        }
    }
}

fn default_atom(bt: &BaseType) -> Atom {
    if let Some(e) = &bt.enum_values
        && let Some(first) = e.first()
    {
        return first.clone();
    }
    match bt.atomic {
        AtomicType::Integer => Atom::Integer(0),
        AtomicType::Real => Atom::Real(0.0),
        AtomicType::Boolean => Atom::Boolean(false),
        AtomicType::String => Atom::string(""),
        AtomicType::Uuid => Atom::Uuid(Uuid::NIL),
    }
}

/// A JSON value shortened for error messages (never the whole of a huge input).
pub(crate) fn short(j: &Json) -> String {
    let s = j.to_string();
    if s.len() > 120 {
        let mut end = 120;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ColumnType;
    use proptest::prelude::*;
    use serde_json::json;

    fn arb_atom() -> impl Strategy<Value = Atom> {
        prop_oneof![
            any::<i64>().prop_map(Atom::Integer),
            any::<bool>().prop_map(Atom::Boolean),
            ".{0,12}".prop_map(Atom::from),
            any::<u128>().prop_map(|u| Atom::Uuid(Uuid::from_u128(u))),
            (-1e9f64..1e9f64).prop_map(Atom::Real),
        ]
    }

    fn arb_datum() -> impl Strategy<Value = Datum> {
        prop_oneof![
            prop::collection::vec(arb_atom(), 0..6).prop_map(Datum::set),
            prop::collection::vec((arb_atom(), arb_atom()), 0..6).prop_map(Datum::map),
        ]
    }

    proptest! {
        #[test]
        fn uuid_display_parse_round_trip(v in any::<u128>()) {
            let u = Uuid::from_u128(v);
            let s = u.to_string();
            prop_assert_eq!(s.len(), 36);
            prop_assert_eq!(s.parse::<Uuid>().unwrap(), u);
        }

        #[test]
        fn uuid_parse_never_panics(s in ".{0,40}") {
            let _ = s.parse::<Uuid>();
        }

        #[test]
        fn datum_json_round_trip(d in arb_datum()) {
            let j = d.to_json();
            let back = Datum::from_json(&j).unwrap();
            // An empty map is written as ["map",[]] and read back as a map.
            prop_assert_eq!(back, d);
        }

        #[test]
        fn datum_wire_text_round_trip(d in arb_datum()) {
            let text = serde_json::to_string(&d.to_json()).unwrap();
            let j: Json = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(Datum::from_json(&j).unwrap(), d);
        }

        #[test]
        fn datum_from_arbitrary_json_never_panics(s in "[\\[\\]\"a-z0-9,{}:. -]{0,40}") {
            if let Ok(j) = serde_json::from_str::<Json>(&s) {
                let _ = Datum::from_json(&j);
                let ty = ColumnType::parse(&json!({"key":"string","value":"string","min":0,"max":"unlimited"})).unwrap();
                let _ = Datum::from_json_typed(&j, &ty);
            }
        }

        #[test]
        fn set_diff_is_symmetric_difference(a in prop::collection::btree_set(0i64..20, 0..10),
                                            b in prop::collection::btree_set(0i64..20, 0..10)) {
            let ty = ColumnType::parse(&json!({"key":"integer","min":0,"max":"unlimited"})).unwrap();
            let old = Datum::set(a.iter().map(|i| Atom::Integer(*i)));
            let new = Datum::set(b.iter().map(|i| Atom::Integer(*i)));
            let diff = Datum::set(a.symmetric_difference(&b).map(|i| Atom::Integer(*i)));
            prop_assert_eq!(old.apply_diff(&diff, &ty), new);
        }

        #[test]
        fn map_diff_reaches_new_map(a in prop::collection::btree_map(0i64..10, 0i64..3, 0..8),
                                    b in prop::collection::btree_map(0i64..10, 0i64..3, 0..8)) {
            // Build the diff the way ovsdb-server does: removed keys with their old value,
            // added keys and changed keys with their new value.
            let ty = ColumnType::parse(&json!({"key":"integer","value":"integer","min":0,"max":"unlimited"})).unwrap();
            let mut diff = Vec::new();
            for (k, v) in &a {
                match b.get(k) {
                    None => diff.push((Atom::Integer(*k), Atom::Integer(*v))),
                    Some(nv) if nv != v => diff.push((Atom::Integer(*k), Atom::Integer(*nv))),
                    _ => {}
                }
            }
            for (k, v) in &b {
                if !a.contains_key(k) {
                    diff.push((Atom::Integer(*k), Atom::Integer(*v)));
                }
            }
            let old = Datum::map(a.iter().map(|(k, v)| (Atom::Integer(*k), Atom::Integer(*v))));
            let new = Datum::map(b.iter().map(|(k, v)| (Atom::Integer(*k), Atom::Integer(*v))));
            prop_assert_eq!(old.apply_diff(&Datum::map(diff), &ty), new);
        }
    }

    /// What ovsdb-server sends for a column of at most one element is the new value itself
    /// (the `Logical_Switch_Port.up` bug: `[false] → [true]` was toggled into `{false, true}`).
    #[test]
    fn single_element_columns_take_the_diff_as_their_new_value() {
        let optional = ColumnType::parse(&json!({"key":"boolean","min":0,"max":1})).unwrap();
        let empty = Datum::default();
        let f = Datum::set([Atom::Boolean(false)]);
        let t = Datum::set([Atom::Boolean(true)]);
        assert_eq!(empty.apply_diff(&f, &optional), f);
        assert_eq!(f.apply_diff(&t, &optional), t);
        assert_eq!(t.apply_diff(&empty, &optional), empty);
        let one_pair =
            ColumnType::parse(&json!({"key":"string","value":"string","min":0,"max":1})).unwrap();
        let a = Datum::map([(Atom::from("k"), Atom::from("a"))]);
        let b = Datum::map([(Atom::from("j"), Atom::from("b"))]);
        assert_eq!(a.apply_diff(&b, &one_pair), b);
        assert_eq!(
            a.apply_diff(&Datum::empty_map(), &one_pair),
            Datum::empty_map()
        );
        let scalar = ColumnType::parse(&json!("integer")).unwrap();
        assert_eq!(
            Datum::scalar(Atom::Integer(1)).apply_diff(&Datum::scalar(Atom::Integer(2)), &scalar),
            Datum::scalar(Atom::Integer(2))
        );
    }

    #[test]
    fn wire_forms() {
        let u: Uuid = "36bd4bf2-1b7a-4b26-a5c0-2b9d6ea6e2a3".parse().unwrap();
        assert_eq!(
            Atom::Uuid(u).to_json(),
            json!(["uuid", "36bd4bf2-1b7a-4b26-a5c0-2b9d6ea6e2a3"])
        );
        assert_eq!(
            Atom::NamedUuid("row1".into()).to_json(),
            json!(["named-uuid", "row1"])
        );
        assert_eq!(Datum::scalar("a").to_json(), json!("a"));
        assert_eq!(Datum::default().to_json(), json!(["set", []]));
        assert_eq!(
            Datum::set([Atom::from(2), Atom::from(1)]).to_json(),
            json!(["set", [1, 2]])
        );
        assert_eq!(
            Datum::map([(Atom::from("k"), Atom::from("v"))]).to_json(),
            json!(["map", [["k", "v"]]])
        );
        assert_eq!(
            Datum::map([(Atom::from("k"), Atom::from("v"))])
                .map_get("k")
                .and_then(Atom::as_str),
            Some("v")
        );
    }

    #[test]
    fn typed_parsing_checks_types_and_counts() {
        let opt_int = ColumnType::parse(
            &json!({"key":{"type":"integer","minInteger":0,"maxInteger":4095},"min":0,"max":1}),
        )
        .unwrap();
        assert_eq!(
            Datum::from_json_typed(&json!(["set", []]), &opt_int).unwrap(),
            Datum::default()
        );
        assert_eq!(
            Datum::from_json_typed(&json!(5), &opt_int).unwrap(),
            Datum::scalar(5)
        );
        assert!(Datum::from_json_typed(&json!("x"), &opt_int).is_err());
        assert!(Datum::from_json_typed(&json!(["set", [1, 2]]), &opt_int).is_err());
        let real = ColumnType::parse(&json!("real")).unwrap();
        assert_eq!(
            Datum::from_json_typed(&json!(3), &real).unwrap(),
            Datum::scalar(3.0)
        );
        let map =
            ColumnType::parse(&json!({"key":"string","value":"string","min":0,"max":"unlimited"}))
                .unwrap();
        assert_eq!(
            Datum::from_json_typed(&json!(["set", []]), &map).unwrap(),
            Datum::empty_map()
        );
        assert!(Datum::from_json_typed(&json!(["map", [["a"]]]), &map).is_err());
        assert!(Datum::from_json_typed(&json!("a"), &map).is_err());
        assert!(Atom::from_json(&json!(["uuid", "nope"])).is_err());
        assert!(Atom::from_json(&json!({"a": 1})).is_err());
        assert!(Atom::from_json(&json!(null)).is_err());
    }

    #[test]
    fn defaults() {
        let e = ColumnType::parse(
            &json!({"key":{"type":"string","enum":["set",["from-lport","to-lport"]]}}),
        )
        .unwrap();
        assert_eq!(Datum::default_for(&e), Datum::scalar("from-lport"));
        let b = ColumnType::parse(&json!("boolean")).unwrap();
        assert_eq!(Datum::default_for(&b), Datum::scalar(false));
    }
}
