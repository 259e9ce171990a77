//! The `SET` list of an `UPDATE` that leaves alone the indexes it does not change.
//!
//! SQLite rewrites the entry of every index one of whose columns an `UPDATE` assigns, even
//! to the value the column already holds: a `PATCH` that only deactivated a user deleted
//! and re-inserted its `userName`, `displayName` and `externalId` index entries, three
//! random pages dirtied, logged and flushed for nothing (a quarter of the pages such a
//! write commits). Columns an index holds are assigned here only when their value changes.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params_from_iter};

/// The assignments of one `UPDATE … WHERE pk = ?`.
pub(super) struct Assignments {
    set: Vec<&'static str>,
    values: Vec<SqlValue>,
}

impl Assignments {
    pub(super) fn new() -> Assignments {
        Assignments {
            set: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Assigns `value` to `column`.
    pub(super) fn set(mut self, column: &'static str, value: impl Into<SqlValue>) -> Self {
        self.set.push(column);
        self.values.push(value.into());
        self
    }

    /// Assigns `value` to `column` when `changed`: for columns an index holds.
    pub(super) fn set_if(
        self,
        changed: bool,
        column: &'static str,
        value: impl Into<SqlValue>,
    ) -> Self {
        if changed {
            self.set(column, value)
        } else {
            self
        }
    }

    /// Runs `UPDATE table SET … WHERE pk = pk`, a statement cached per set of columns (a
    /// handful per table); returns the rows changed.
    pub(super) fn update(self, conn: &Connection, table: &str, pk: i64) -> rusqlite::Result<usize> {
        let set: Vec<String> = self.set.iter().map(|c| format!("{c} = ?")).collect();
        let sql = format!("UPDATE OR FAIL {table} SET {} WHERE pk = ?", set.join(", "));
        let values = self.values.into_iter().chain([SqlValue::Integer(pk)]);
        conn.prepare_cached(&sql)?.execute(params_from_iter(values))
    }
}
