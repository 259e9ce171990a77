//! Filters compiled to SQL (placeholder until the full compiler lands).

use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;

use crate::scim::ScimError;
use crate::scim::filter::{AttrRef, Filter, fold};
use crate::scim::schema::ResourceType;

pub struct Compiled {
    pub sql: String,
    pub params: Vec<rusqlite::types::Value>,
}

pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "scim_fold",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| Ok(ctx.get::<Option<String>>(0)?.map(|s| fold(&s))),
    )
}

pub fn compile(_f: &Filter, _rt: &ResourceType) -> Result<Compiled, ScimError> {
    Err(ScimError::invalid_filter("not yet"))
}

pub fn order_by(_sort: Option<&AttrRef>, _descending: bool, rt: &ResourceType) -> String {
    let alias = if rt.name == "User" { "u" } else { "g" };
    format!("ORDER BY {alias}.pk")
}
