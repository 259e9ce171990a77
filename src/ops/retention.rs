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
use crate::db::{Conn, Db, DbError, settings, tenants};
use crate::model::Actor;
use crate::scim::datetime;

/// Members deleted per transaction, so the job never holds the write lock for long.
const BATCH: usize = 200;

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
    let summary = db
        .write(move |tx| {
            let s = settings::get(tx, tenant_id)?;
            let mut done = done;
            if let Some(days) = s.audit_retention_days {
                let cutoff = datetime::format(now - time::Duration::days(days.into()));
                done.audit_purged = audit::purge_before(tx, Some(tenant_id), &cutoff)?;
            }
            let cutoff = now - time::Duration::days(s.event_retention_days.into());
            done.events_purged = events::purge_before(tx, tenant_id, &datetime::format(cutoff))?;
            if !done.is_empty() {
                audit::append(
                    tx,
                    &audit::Entry::new(
                        &Actor::system(),
                        Some(tenant_id),
                        AuditAction::RetentionApplied,
                        Some("tenant".into()),
                    )
                    .with_detail(json!(done)),
                )?;
            }
            Ok::<_, DbError>(done)
        })
        .await?;
    Ok(summary)
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
