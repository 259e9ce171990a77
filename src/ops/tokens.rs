//! SCIM bearer tokens: issuing and revoking them (audited, never the secret), and
//! authenticating a presented bearer token, a SCIM token or an OAuth access token.

use serde_json::json;

use crate::auth::tokens::{self, NewToken};
use crate::db::audit::{self, Action as AuditAction};
use crate::db::credentials::Found;
use crate::db::{Conn, Db, DbError, oauth};
use crate::model::{Actor, Who};
use crate::scim::datetime;

/// How stale `last_used_at` may get before a request refreshes it; keeps reads read-only.
pub(super) const LAST_USED_RESOLUTION_SECS: i64 = 60;

/// A token just issued: its id and the secret, to show once.
pub struct Issued {
    pub id: i64,
    pub token: NewToken,
}

/// Creates a token named `name` for the tenant, expiring at `expires_at` if given, and
/// records who did it (the prefix and name, never the secret).
pub async fn issue(
    db: &Db,
    actor: &Actor,
    tenant_id: i64,
    name: String,
    expires_at: Option<String>,
) -> Result<Issued, DbError> {
    let actor = actor.clone();
    db.write(move |tx| issue_in(tx, &actor, tenant_id, &name, expires_at.as_deref()))
        .await
}

fn issue_in(
    conn: &Conn,
    actor: &Actor,
    tenant_id: i64,
    name: &str,
    expires_at: Option<&str>,
) -> Result<Issued, DbError> {
    let token = tokens::generate();
    let id = crate::db::tokens::insert(
        conn,
        tenant_id,
        name,
        &token.prefix,
        &token.hash,
        expires_at,
    )?;
    audit::append(
        conn,
        &audit::Entry::new(
            actor,
            Some(tenant_id),
            AuditAction::TokenCreated,
            Some(format!("token/{id}")),
        )
        .with_detail(json!({"name": name, "prefix": token.prefix, "expiresAt": expires_at})),
    )?;
    Ok(Issued { id, token })
}

/// Revokes the tenant's live token `id` (`NotFound` if there is none) and audits it.
pub async fn revoke(db: &Db, actor: &Actor, tenant_id: i64, id: i64) -> Result<(), DbError> {
    let actor = actor.clone();
    db.write(move |tx| revoke_in(tx, &actor, tenant_id, id))
        .await
}

fn revoke_in(conn: &Conn, actor: &Actor, tenant_id: i64, id: i64) -> Result<(), DbError> {
    crate::db::tokens::revoke(conn, Some(tenant_id), id)?;
    audit::append(
        conn,
        &audit::Entry::new(
            actor,
            Some(tenant_id),
            AuditAction::TokenRevoked,
            Some(format!("token/{id}")),
        ),
    )?;
    Ok(())
}

/// Replaces the tenant's live token `id`: it stops working, and a new one with the same
/// name and expiry is issued, in one transaction.
pub async fn regenerate(
    db: &Db,
    actor: &Actor,
    tenant_id: i64,
    id: i64,
) -> Result<(String, Issued), DbError> {
    let actor = actor.clone();
    db.write(move |tx| {
        let old = crate::db::tokens::get(tx, tenant_id, id)?;
        revoke_in(tx, &actor, tenant_id, id)?;
        let new = issue_in(tx, &actor, tenant_id, &old.name, old.expires_at.as_deref())?;
        Ok((old.name, new))
    })
    .await
}

/// What a live bearer token grants: access to one tenant, as one caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub tenant_id: i64,
    /// The SCIM token, or the OAuth client whose access token was presented.
    pub who: Who,
}

/// The grant of a presented bearer token: a SCIM token or an OAuth access token, both
/// looked up by their SHA-256, from memory when it was seen lately ([`Db::credentials`]:
/// a revocation empties that at once). Its last use is recorded once a minute at most, so
/// reads stay reads: awaited on a token's first use since start (up to [`FIRST_USE_WAIT`]),
/// written behind after.
pub async fn authenticate(db: &Db, secret: &str) -> Result<Option<Grant>, DbError> {
    let hash = tokens::hash(secret);
    let now = time::OffsetDateTime::now_utc();
    let when = datetime::format(now);
    let every = std::time::Duration::from_secs(LAST_USED_RESOLUTION_SECS as u64);
    if let Some(hit) = db.credentials().get(&hash, &when, every) {
        let grant = grant(&hit.found);
        if hit.note_use {
            let db = db.clone();
            tokio::spawn(async move { note_use(&db, hit.found, when).await });
        }
        return Ok(Some(grant));
    }
    let generation = db.credentials().generation();
    let cutoff = datetime::format(now - time::Duration::seconds(LAST_USED_RESOLUTION_SECS));
    let at = when.clone();
    let found = db
        .read(move |c| {
            let found = match crate::db::tokens::authenticate(c, &hash, &at)? {
                Some(found) => found,
                None => match oauth::authenticate(c, &hash, &at)? {
                    Some(found) => found,
                    None => return Ok::<_, DbError>(None),
                },
            };
            let stale = match &found {
                Found::Scim { id, .. } => crate::db::tokens::used_before(c, *id, &cutoff)?,
                Found::OAuth { id, .. } => oauth::token_used_before(c, *id, &cutoff)?,
            };
            Ok(Some((found, stale)))
        })
        .await?;
    let Some((found, stale)) = found else {
        return Ok(None);
    };
    db.credentials().put(hash, found.clone(), generation);
    let grant = grant(&found);
    if stale {
        // Awaited, so that the dashboard and `token list` show the use once the request is
        // answered; but not past a moment: behind a write lock held elsewhere, the request
        // itself would otherwise wait a busy timeout for it before its own.
        let db = db.clone();
        let noted = tokio::spawn(async move { note_use(&db, found, when).await });
        let _ = tokio::time::timeout(FIRST_USE_WAIT, noted).await;
    }
    Ok(Some(grant))
}

/// How long a request waits for its token's first use since start to be noted before it
/// goes on (the note goes on behind it).
const FIRST_USE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

fn grant(found: &Found) -> Grant {
    match found {
        Found::Scim { id, tenant_id, .. } => Grant {
            tenant_id: *tenant_id,
            who: Who::ScimToken(*id),
        },
        Found::OAuth {
            tenant_id, client, ..
        } => Grant {
            tenant_id: *tenant_id,
            who: Who::OAuthClient(client.clone()),
        },
    }
}

/// Records a token's use at `when`. Best effort: a storage that cannot take writes (disk
/// full) must not stop reads, and losing it on power loss harms nothing.
async fn note_use(db: &Db, found: Found, when: String) {
    let touched = db
        .write_relaxed_replayable(move |tx| match &found {
            Found::Scim { id, .. } => crate::db::tokens::touch(tx, *id, &when),
            Found::OAuth { id, .. } => oauth::touch_token(tx, *id, &when),
        })
        .await;
    if let Err(e) = touched {
        tracing::warn!(error = %e, "could not note a token's last use");
    }
}
