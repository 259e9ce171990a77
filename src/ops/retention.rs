//! The daily job `serve` runs (and tests run with a moved clock): members past their
//! deletion grace period are deleted, archived members and audit entries past the
//! retention an admin set are purged, and events past their retention go. Deletions cascade
//! and are recorded like any member deletion (`member.deleted` event and audit entry, by
//! `system`); each tenant where anything was done gets one `retention.applied` entry with
//! the counts.

use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

use super::members::MemberWrite;
use crate::db::audit::{self, Action as AuditAction};
use crate::db::events::{self, EventType};
use crate::db::members::{self, MemberRow};
use crate::db::{Conn, Db, DbError, settings, tenants, webhooks};
use crate::model::Actor;
use crate::scim::datetime;

/// Members deleted per transaction, so the job never holds the write lock for long.
const BATCH: usize = 200;

/// Audit entries, and events, purged per transaction: ~50 ms of the writer each.
const PURGE_BATCH: usize = 5_000;

/// What one run did, over every tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Done {
    /// Members whose grace period ended.
    pub deleted_after_grace: usize,
    /// Archived members past their retention.
    pub archived_purged: usize,
    pub audit_purged: usize,
    pub events_purged: usize,
}

impl Done {
    fn is_empty(&self) -> bool {
        *self == Done::default()
    }
}

/// Runs the job as of `now`.
pub async fn daily(db: &Db, now: OffsetDateTime) -> Result<Done, DbError> {
    let tenant_ids: Vec<i64> = db
        .read(|c| Ok::<_, DbError>(tenants::list(c)?.into_iter().map(|t| t.id).collect()))
        .await?;
    let mut total = Done::default();
    for tenant_id in tenant_ids {
        let done = tenant(db, tenant_id, now).await?;
        total.deleted_after_grace += done.deleted_after_grace;
        total.archived_purged += done.archived_purged;
        total.audit_purged += done.audit_purged;
        total.events_purged += done.events_purged;
    }
    // Entries outside any tenant (admin logins, installation changes) are kept forever.
    Ok(total)
}

async fn tenant(db: &Db, tenant_id: i64, now: OffsetDateTime) -> Result<Done, DbError> {
    let at = datetime::format(now);
    let mut done = Done::default();
    // Members, a batch per transaction.
    loop {
        let at = at.clone();
        let (grace, archived) = db
            .write(move |tx| {
                let s = settings::get(tx, tenant_id)?;
                let due: Vec<MemberRow> = members::deletions_due(tx, &at, BATCH)?
                    .into_iter()
                    .filter(|m| m.tenant_id == tenant_id)
                    .collect();
                for m in &due {
                    delete(tx, tenant_id, m, "the deletion grace period ended")?;
                }
                let mut archived = Vec::new();
                if let Some(days) = s.archived_retention_days {
                    let before = datetime::format(now - time::Duration::days(days.into()));
                    archived = members::archived_before(tx, tenant_id, &before, BATCH)?;
                    for m in &archived {
                        delete(tx, tenant_id, m, "archived for longer than the retention")?;
                    }
                }
                Ok::<_, DbError>((due.len(), archived.len()))
            })
            .await?;
        done.deleted_after_grace += grace;
        done.archived_purged += archived;
        if grace < BATCH && archived < BATCH {
            break;
        }
    }
    // Audit entries and events past their retention, a batch per transaction: a first
    // purge after retention was turned on (or shortened) may have a million rows to go,
    // and the writer would be theirs for seconds.
    let bounds = db
        .read(move |c| {
            let s = settings::get(c, tenant_id)?;
            let audit = match s.audit_retention_days {
                Some(days) => {
                    let cutoff = datetime::format(now - time::Duration::days(days.into()));
                    audit::purgeable(c, Some(tenant_id), &cutoff)?
                }
                None => None,
            };
            let cutoff = now - time::Duration::days(s.event_retention_days.into());
            let events = events::purgeable(c, tenant_id, &datetime::format(cutoff))?;
            Ok::<_, DbError>((audit, events))
        })
        .await?;
    let (mut audit_through, mut events_through) = bounds;
    while audit_through.is_some() || events_through.is_some() {
        let (audit_n, events_n) = db
            .write(move |tx| {
                let audit_n = match audit_through {
                    Some(last) => audit::purge_through(tx, Some(tenant_id), last, PURGE_BATCH)?,
                    None => 0,
                };
                let events_n = match events_through {
                    // An enabled webhook endpoint keeps the events it has not received past
                    // their retention: it is still trying to deliver them, in order. (A
                    // disabled one does not: enabling it names what it lost.) Read in the
                    // purge's transaction, so no endpoint enabled meanwhile is passed over.
                    Some(last) => {
                        let last = match webhooks::oldest_enabled_cursor(tx, tenant_id)? {
                            Some(undelivered) => last.min(undelivered),
                            None => last,
                        };
                        events::purge_through(tx, tenant_id, last, PURGE_BATCH)?
                    }
                    None => 0,
                };
                Ok::<_, DbError>((audit_n, events_n))
            })
            .await?;
        done.audit_purged += audit_n;
        done.events_purged += events_n;
        // A batch short of the limit reached its bound.
        if audit_n < PURGE_BATCH {
            audit_through = None;
        }
        if events_n < PURGE_BATCH {
            events_through = None;
        }
    }
    if !done.is_empty() {
        let detail = json!(done);
        db.write(move |tx| {
            let entry = audit::Entry::new(
                &Actor::system(),
                Some(tenant_id),
                AuditAction::RetentionApplied,
                Some("tenant".into()),
            );
            audit::append(tx, &entry.with_detail(detail)).map(drop)
        })
        .await?;
    }
    Ok(done)
}

/// Deletes `m` (with everything hanging off it) and records it.
fn delete(conn: &Conn, tenant_id: i64, m: &MemberRow, cause: &str) -> Result<(), DbError> {
    let before = super::members::api_object(conn, tenant_id, m)?;
    members::delete(conn, m.pk)?;
    super::members::record(
        conn,
        &Actor::system(),
        tenant_id,
        MemberWrite {
            before: Some(before),
            after: m,
            event: EventType::MemberDeleted,
            action: AuditAction::MemberDeleted,
            via: "retention",
            extra: json!({"cause": cause}),
            detail: super::members::detail(&json!({"memberId": m.id, "cause": cause})),
        },
    )
}
