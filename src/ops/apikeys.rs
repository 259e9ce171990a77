//! App API keys: issued and revoked by admins (audited, never the secret), and the
//! authentication of `/api/v1` calls. A key reads one tenant, or every tenant when it was
//! created for all of them; it never works on `/scim`, and a SCIM token never works here.

use serde_json::json;

use super::tokens::{Issued, LAST_USED_RESOLUTION_SECS};
use crate::auth::tokens;
use crate::db::audit::{self, Action as AuditAction};
use crate::db::{Db, DbError, api_keys};
use crate::model::Actor;
use crate::scim::datetime;

/// Creates a key named `name` for `tenant_id` (`None`: every tenant), expiring at
/// `expires_at` if given, and audits it (the prefix and name, never the secret).
pub async fn issue(
    db: &Db,
    actor: &Actor,
    tenant_id: Option<i64>,
    name: String,
    expires_at: Option<String>,
) -> Result<Issued, DbError> {
    let actor = actor.clone();
    db.write(move |tx| {
        let token = tokens::generate_api_key();
        let expires = expires_at.as_deref();
        let id = api_keys::insert(tx, tenant_id, &name, &token.prefix, &token.hash, expires)?;
        audit::append(
            tx,
            &audit::Entry::new(
                &actor,
                tenant_id,
                AuditAction::ApiKeyCreated,
                Some(format!("apikey/{id}")),
            )
            .with_detail(json!({"name": name, "prefix": token.prefix, "expiresAt": expires})),
        )?;
        Ok(Issued { id, token })
    })
    .await
}

/// Revokes live key `id` (of `tenant_id`, when given; `NotFound` if there is none) and
/// audits it. It stops working at once.
pub async fn revoke(
    db: &Db,
    actor: &Actor,
    tenant_id: Option<i64>,
    id: i64,
) -> Result<(), DbError> {
    let actor = actor.clone();
    db.write(move |tx| {
        let owner = api_keys::revoke(tx, tenant_id, id)?;
        let target = Some(format!("apikey/{id}"));
        audit::append(
            tx,
            &audit::Entry::new(&actor, owner, AuditAction::ApiKeyRevoked, target),
        )
        .map(drop)
    })
    .await
}

/// What a live API key grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyGrant {
    pub key_id: i64,
    /// The tenant it reads; `None`: every tenant.
    pub tenant_id: Option<i64>,
}

/// Whether key `key_id` still reads: not revoked, not expired. What a long poll or an
/// event stream asks again while it runs.
pub async fn in_force(db: &Db, key_id: i64) -> Result<bool, DbError> {
    let now = datetime::now();
    db.read(move |c| api_keys::in_force(c, key_id, &now)).await
}

/// The grant of a presented API key, looked up by its SHA-256; its last use is recorded
/// once a minute at most.
pub async fn authenticate(db: &Db, secret: &str) -> Result<Option<KeyGrant>, DbError> {
    if !secret.starts_with(tokens::API_KEY_PREFIX) {
        return Ok(None);
    }
    let hash = tokens::hash(secret);
    let now = time::OffsetDateTime::now_utc();
    let when = datetime::format(now);
    let found = db
        .read(move |c| api_keys::authenticate(c, &hash, &when))
        .await?;
    let Some((key_id, tenant_id, last_used)) = found else {
        return Ok(None);
    };
    let cutoff = datetime::format(now - time::Duration::seconds(LAST_USED_RESOLUTION_SECS));
    if last_used.is_none_or(|t| t < cutoff) {
        // Written behind, as a SCIM token's last use is: a read does not wait in the
        // writer's queue (behind another tenant's writes) to say when it was made.
        let (db, when) = (db.clone(), datetime::format(now));
        tokio::spawn(async move {
            if let Err(e) = db.write(move |tx| api_keys::touch(tx, key_id, &when)).await {
                tracing::warn!(error = %e, key = key_id, "could not record an API key's last use");
            }
        });
    }
    Ok(Some(KeyGrant { key_id, tenant_id }))
}
