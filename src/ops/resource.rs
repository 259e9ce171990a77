//! What every SCIM write of a Users or Groups resource shares: one transaction, the audit
//! entry of the write (inside it when it succeeds, in one of its own when it fails), and a
//! 404 that names the resource asked for.

use serde_json::json;

use super::Error;
use crate::db::audit::{self, Action as AuditAction};
use crate::db::{Conn, Db, DbError, tenants};
use crate::model::Actor;
use crate::scim::ScimError;
use crate::scim::resource::Preconditions;
use crate::scim::schema::ResourceType;

/// The SCIM writes, as the audit log names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Post,
    Put,
    Patch,
    Delete,
}

impl Write {
    /// The write an HTTP method makes; `None` for methods that do not write.
    pub fn of_method(method: &str) -> Option<Write> {
        match method.to_ascii_uppercase().as_str() {
            "POST" => Some(Write::Post),
            "PUT" => Some(Write::Put),
            "PATCH" => Some(Write::Patch),
            "DELETE" => Some(Write::Delete),
            _ => None,
        }
    }

    fn action(self) -> AuditAction {
        match self {
            Write::Post => AuditAction::ScimPost,
            Write::Put => AuditAction::ScimPut,
            Write::Patch => AuditAction::ScimPatch,
            Write::Delete => AuditAction::ScimDelete,
        }
    }

    /// The status a success answers with.
    fn success(self) -> u16 {
        match self {
            Write::Post => 201,
            Write::Put | Write::Patch => 200,
            Write::Delete => 204,
        }
    }
}

/// Records a successful SCIM write of `resource` (`Users/<id>`), inside its transaction;
/// fails it instead if its tenant was deleted since its token was checked.
pub(super) fn audited(
    conn: &Conn,
    actor: &Actor,
    tenant_id: i64,
    write: Write,
    resource: &str,
) -> Result<(), DbError> {
    tenants::taking_writes(conn, tenant_id)?;
    audit::append(
        conn,
        &audit::Entry::new(
            actor,
            Some(tenant_id),
            write.action(),
            Some(resource.into()),
        )
        .with_status(write.success()),
    )
    .map(drop)
}

/// Records a SCIM write that was refused or failed with `status` and `error`. The write
/// rolled back with everything it did, so its entry gets a small transaction of its own.
pub async fn audit_refused(
    db: &Db,
    actor: &Actor,
    tenant_id: i64,
    write: Write,
    resource: &str,
    status: u16,
    error: &str,
) -> Result<(), DbError> {
    let entry = audit::Entry::new(
        actor,
        Some(tenant_id),
        write.action(),
        Some(resource.trim_matches('/').to_string()),
    )
    .with_status(status)
    .with_detail(json!({ "error": error }));
    db.write(move |tx| audit::append(tx, &entry))
        .await
        .map(drop)
}

/// A stored resource: what a write to an existing one needs to know of it.
pub(super) trait Stored: Sized {
    /// The resource type, for its endpoint and its name in errors.
    const RT: &'static ResourceType;
    /// The tenant's resource `id`, if it has one.
    fn load(conn: &Conn, tenant_id: i64, id: &str) -> Result<Option<Self>, DbError>;
    /// Its version, which its ETag names.
    fn version(&self) -> i64;
}

/// A SCIM write to the existing resource `id` (PUT, PATCH, DELETE), in one transaction: the
/// resource is loaded and its preconditions checked (412), `f` does the work, the write is audited
/// in the same transaction, and a missing resource is a 404 that names it.
pub(super) async fn write_existing<R, T, F>(
    db: &Db,
    actor: &Actor,
    tenant_id: i64,
    id: String,
    pre: Preconditions,
    write: Write,
    f: F,
) -> Result<T, Error>
where
    R: Stored,
    T: Send + 'static,
    F: Fn(&Conn, &Actor, R) -> Result<T, Error> + Send + 'static,
{
    let actor = actor.clone();
    let rt = R::RT;
    let resource = format!("{}/{id}", &rt.endpoint[1..]);
    let shown = id.clone();
    db.write_replayable(move |tx| {
        let row = R::load(tx, tenant_id, &id)?.ok_or(DbError::NotFound)?;
        pre.check_write(row.version())?;
        let out = f(tx, &actor, row)?;
        audited(tx, &actor, tenant_id, write, &resource)?;
        Ok(out)
    })
    .await
    .map_err(|e| match e {
        Error::Db(DbError::NotFound) => Error::Scim(ScimError::not_found(format!(
            "{} {shown} not found",
            rt.name
        ))),
        other => other,
    })
}
