//! The bridge between directory writes and the members layer: every SCIM write calls one
//! of these hooks inside its own transaction, so a write, its sync consequences, its audit
//! entries and its events commit together or not at all.
//!
//! (Placeholder: the members layer lands with the directory-sync work.)

use rusqlite::Connection;

use super::DbError;

/// Who caused a directory write, for audit entries and events.
#[derive(Debug, Clone)]
pub struct WriteContext {
    pub tenant_id: i64,
    /// `token:<id>` for SCIM calls, `admin:<name>` for the UI, `cli` for the command line.
    pub actor: String,
    /// The HTTP request id, when there is one.
    pub request_id: Option<String>,
}

/// What changed in a group, as far as members' roles are concerned.
#[derive(Debug, Clone, Default)]
pub struct GroupChange {
    pub created: bool,
    /// `displayName` changed: every member's role is re-evaluated.
    pub renamed: bool,
    /// The membership was replaced wholesale (PUT, `replace members`, clear).
    pub members_replaced: bool,
    pub added_user_pks: Vec<i64>,
    pub removed_user_pks: Vec<i64>,
}

/// After a user was created or changed (POST, PUT, PATCH).
pub fn user_written(_conn: &Connection, _ctx: &WriteContext, _user_pk: i64) -> Result<(), DbError> {
    Ok(())
}

/// Before a user row is deleted by the IdP (DELETE /Users/{id}).
pub fn user_deleting(
    _conn: &Connection,
    _ctx: &WriteContext,
    _user_pk: i64,
) -> Result<(), DbError> {
    Ok(())
}

/// After a group was created or changed.
pub fn group_written(
    _conn: &Connection,
    _ctx: &WriteContext,
    _group_pk: i64,
    _change: &GroupChange,
) -> Result<(), DbError> {
    Ok(())
}

/// Before a group row is deleted.
pub fn group_deleting(
    _conn: &Connection,
    _ctx: &WriteContext,
    _group_pk: i64,
) -> Result<(), DbError> {
    Ok(())
}
