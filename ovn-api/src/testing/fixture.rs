//! In-memory replicas built from rows, for tests of code that only reads a [`Replica`] (the
//! controller's NB planners): no server, milliseconds per test.
//!
//! ```
//! use ovn_api::tables::nb::LogicalSwitch;
//! use ovn_api::testing::{FixtureReplica, SchemaKind};
//! let mut nb = FixtureReplica::new(SchemaKind::Northbound)?;
//! let ls = nb.add(&LogicalSwitch { name: "s1".into(), ..Default::default() })?;
//! assert_eq!(nb.uuid_by_name::<LogicalSwitch>("s1"), Some(ls));
//! # Ok::<(), ovn_api::Error>(())
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::Map;

use super::{Rows, SchemaKind};
use crate::error::{Error, Result};
use crate::protocol::RowUpdate;
use crate::replica::Replica;
use crate::schema::DatabaseSchema;
use crate::tables::Table;
use crate::value::Uuid;

/// A replica of every table of one installed schema, filled by the test rather than by a
/// monitor. Derefs to [`Replica`], so it goes wherever a `&Replica` is read.
#[derive(Debug)]
pub struct FixtureReplica {
    replica: Replica,
    next_uuid: u128,
}

impl FixtureReplica {
    /// An empty replica of `kind`'s installed schema (every table monitored).
    pub fn new(kind: SchemaKind) -> Result<FixtureReplica> {
        let schema = Arc::new(DatabaseSchema::from_file(Path::new(kind.require()?))?);
        let tables: Vec<String> = schema.tables.keys().cloned().collect();
        Ok(FixtureReplica {
            replica: Replica::new(schema, &tables)?,
            next_uuid: 0,
        })
    }

    /// Adds a typed row and returns its UUID: the row's own when set, else the next of a
    /// counter (`00000000-0000-0000-0000-000000000001`, ...), so tests are deterministic.
    pub fn add<T: Table>(&mut self, row: &T) -> Result<Uuid> {
        let uuid = if row.uuid() == Uuid::NIL {
            self.next_uuid += 1;
            Uuid::from_u128(self.next_uuid)
        } else {
            row.uuid()
        };
        self.add_rows(T::TABLE, &Rows::from([(uuid, row.to_columns())]))?;
        Ok(uuid)
    }

    /// Adds untyped rows of `table`, in the shape [`dump_rows`](super::dump_rows) returns.
    pub fn add_rows(&mut self, table: &str, rows: &Rows) -> Result<()> {
        if self.replica.table(table).is_none() {
            return Err(Error::Testing(format!(
                "fixture: {table} is not a table of {}",
                self.replica.schema().name
            )));
        }
        let updates = rows
            .iter()
            .map(|(uuid, cols)| {
                let obj: Map<_, _> = cols.iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
                (*uuid, RowUpdate::Full(obj))
            })
            .collect();
        self.replica
            .apply(&BTreeMap::from([(table.to_owned(), updates)]))?;
        Ok(())
    }
}

impl std::ops::Deref for FixtureReplica {
    type Target = Replica;
    fn deref(&self) -> &Replica {
        &self.replica
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::nb::LogicalSwitch;

    #[test]
    fn rows_keep_their_uuid_replace_in_place_and_unknown_tables_are_errors() {
        let mut r = FixtureReplica::new(SchemaKind::Northbound).unwrap();
        let first = r.add(&LogicalSwitch::default()).unwrap();
        assert_eq!(first, Uuid::from_u128(1));
        let named = LogicalSwitch {
            uuid: first,
            name: "s1".into(),
            ..Default::default()
        };
        assert_eq!(r.add(&named).unwrap(), first);
        assert_eq!(r.list::<LogicalSwitch>().unwrap(), vec![named]);
        let err = r.add_rows("No_Such_Table", &Rows::new()).unwrap_err();
        assert!(err.to_string().contains("No_Such_Table"), "{err}");
    }
}
