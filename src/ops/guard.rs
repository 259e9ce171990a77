//! The guard against mass deprovisioning. An IdP misconfiguration (an app unassigned from
//! "Everyone", a broken group rule) can deactivate thousands of people in minutes. Every
//! plan about to be applied passes through [`screen`]: when its member deprovisionings
//! (suspend, archive, delete) and those applied within the last hour would pass the
//! tenant's threshold, they are held instead, and so is every later one, while the rest of
//! the plan (and the IdP's own writes, which the IdP sees succeed) goes on as usual.
//!
//! An admin [`approve`]s (the held deprovisionings are planned again and applied) or
//! [`reject`]s (members stay as they are, and the hold stays open, holding, until the
//! directory changes back; one more deprovisioning puts it before the admin again). A held member whose plan no longer deprovisions it (the IdP
//! made the person active again) is let go; a hold with nothing left closes by itself.
//! Switching the guard off holds nothing more; what an open hold holds still waits for an
//! admin's decision.

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::db::audit::{self, Action as AuditAction};
use crate::db::events::{self, EventType};
use crate::db::guard::{self, Hold, HoldState};
use crate::db::{Conn, Db, DbError, members};
use crate::model::{Actor, Settings};
use crate::scim::datetime;
use crate::sync::{Action, Change};

/// The window the threshold counts over.
const WINDOW: time::Duration = time::Duration::hours(1);

/// Which members the plan being screened looked at: everyone (a full plan) or the people
/// one SCIM write touched.
#[derive(Debug, Clone, Copy)]
pub enum Considered<'a> {
    All,
    Members(&'a [i64]),
}

fn deprovisions(c: &Change) -> Option<i64> {
    match c.action {
        Action::Suspend | Action::Archive { .. } | Action::Delete { .. } => {
            c.member.as_ref().map(|m| m.pk)
        }
        _ => None,
    }
}

/// The changes of `changes` to apply now: all of them (borrowed as they are), or all but
/// the member deprovisionings the guard holds. Runs in the applying transaction.
pub fn screen<'c>(
    conn: &Conn,
    actor: &Actor,
    tenant_id: i64,
    settings: &Settings,
    considered: Considered,
    changes: &'c [Change],
) -> Result<Cow<'c, [Change]>, DbError> {
    let deprovisioning: BTreeSet<i64> = changes.iter().filter_map(deprovisions).collect();
    let now = OffsetDateTime::now_utc();
    let at = datetime::format(now);
    let hold = match guard::open_hold(conn, tenant_id)? {
        Some(hold) => hold,
        None => {
            let n = deprovisioning.len();
            if n == 0 {
                return Ok(Cow::Borrowed(changes));
            }
            let since = datetime::format(now - WINDOW);
            let active = members::count_active(conn, tenant_id)?;
            let threshold = settings.guard.threshold(active);
            let recent = guard::applied_since(conn, tenant_id, &since)?;
            if !settings.guard.enabled || recent + n as u64 <= threshold {
                guard::record_applied(conn, tenant_id, n, &at, &since)?;
                return Ok(Cow::Borrowed(changes));
            }
            let hold = guard::open(conn, tenant_id, threshold, active, &at)?;
            let (held, rest) = keep_back(conn, &hold, changes, &at)?;
            let detail = json!({"held": held, "appliedWithinHour": recent,
                "threshold": threshold, "activeMembers": active});
            record(
                conn,
                actor,
                tenant_id,
                &hold,
                AuditAction::DeprovisioningHeld,
                detail,
            )?;
            return Ok(Cow::Owned(rest));
        }
    };
    // Held members this plan looked at and no longer deprovisions are let go.
    let looked_at = match considered {
        Considered::All => guard::held_pks(conn, hold.id)?,
        Considered::Members(pks) => pks.to_vec(),
    };
    let back: Vec<i64> = looked_at
        .into_iter()
        .filter(|pk| !deprovisioning.contains(pk))
        .collect();
    let released = guard::release(conn, hold.id, &back)?;
    if deprovisioning.is_empty() {
        if released > 0 && guard::held_count(conn, hold.id)? == 0 {
            guard::set_state(conn, hold.id, HoldState::Cleared, None, &at)?;
            let hold = reload(conn, &hold)?;
            let detail = json!({"released": released});
            record(
                conn,
                actor,
                tenant_id,
                &hold,
                AuditAction::DeprovisioningReleased,
                detail,
            )?;
        }
        return Ok(Cow::Borrowed(changes));
    }
    if !settings.guard.enabled {
        // Switched off with a hold open: what the hold holds waits for an admin's decision
        // still, but nothing more is held; a person deactivated now loses access now.
        let already: BTreeSet<i64> = guard::held_pks(conn, hold.id)?.into_iter().collect();
        let (again, passing): (Vec<Change>, Vec<Change>) = changes
            .iter()
            .cloned()
            .partition(|c| deprovisions(c).is_some_and(|pk| already.contains(&pk)));
        keep_back(conn, &hold, &again, &at)?;
        let applied = passing.iter().filter(|c| deprovisions(c).is_some()).count();
        if applied > 0 {
            let since = datetime::format(now - WINDOW);
            guard::record_applied(conn, tenant_id, applied, &at, &since)?;
        }
        return Ok(Cow::Owned(passing));
    }
    // A person deprovisioned after a rejection is no part of what was rejected: the hold
    // waits for a decision again, so the admin hears of it rather than it being kept back
    // unseen.
    let already: BTreeSet<i64> = match hold.state {
        HoldState::Rejected => guard::held_pks(conn, hold.id)?.into_iter().collect(),
        _ => BTreeSet::new(),
    };
    let (_, rest) = keep_back(conn, &hold, changes, &at)?;
    let new = deprovisioning.difference(&already).count();
    if hold.state == HoldState::Rejected && new > 0 {
        guard::reopen(conn, hold.id)?;
        let hold = reload(conn, &hold)?;
        let detail = json!({"heldSinceRejected": new});
        record(
            conn,
            actor,
            tenant_id,
            &hold,
            AuditAction::DeprovisioningHeld,
            detail,
        )?;
    }
    Ok(Cow::Owned(rest))
}

/// Holds the deprovisionings of `changes` under `hold`; returns how many, and the rest.
fn keep_back(
    conn: &Conn,
    hold: &Hold,
    changes: &[Change],
    at: &str,
) -> Result<(usize, Vec<Change>), DbError> {
    let (held, rest): (Vec<&Change>, Vec<&Change>) =
        changes.iter().partition(|c| deprovisions(c).is_some());
    let rows: Vec<(i64, &str, Option<String>)> = held
        .iter()
        .filter_map(|c| {
            let pk = deprovisions(c)?;
            Some((pk, c.action.kind().as_str(), crate::sync::reason_of(c)))
        })
        .collect();
    guard::hold_changes(conn, hold.id, &rows, at)?;
    Ok((held.len(), rest.into_iter().cloned().collect()))
}

fn reload(conn: &Conn, hold: &Hold) -> Result<Hold, DbError> {
    guard::get(conn, hold.tenant_id, hold.id)?.ok_or(DbError::NotFound)
}

/// The audit entry and the event of a step of a hold.
fn record(
    conn: &Conn,
    actor: &Actor,
    tenant_id: i64,
    hold: &Hold,
    action: AuditAction,
    mut detail: Value,
) -> Result<(), DbError> {
    let held = guard::held_count(conn, hold.id)?;
    detail["hold"] = json!(hold.id);
    audit::append(
        conn,
        &audit::Entry::new(
            actor,
            Some(tenant_id),
            action,
            Some(format!("hold/{}", hold.id)),
        )
        .with_detail(detail),
    )?;
    let kind = match action {
        AuditAction::DeprovisioningHeld => EventType::DeprovisioningHeld,
        _ => EventType::DeprovisioningResolved,
    };
    let mut object = serde_json::to_value(hold).unwrap_or(Value::Null);
    object["held"] = json!(held);
    // An approval or a rejection is an admin's (from the UI or the CLI); the rest comes
    // about through the IdP's writes or a sync.
    let mut payload = json!({"hold": object});
    if matches!(
        action,
        AuditAction::DeprovisioningApproved | AuditAction::DeprovisioningRejected
    ) {
        payload["context"] = json!({"via": "admin"});
    }
    events::append(
        conn,
        actor,
        tenant_id,
        kind,
        &format!("hold_{}", hold.id),
        &payload,
    )?;
    Ok(())
}

/// What the dashboard and the guard page show.
#[derive(Debug, Clone)]
pub struct Status {
    pub hold: Hold,
    pub held: u64,
    /// Which deprovisionings are held ([`guard::held_digest`]): an approval may name it
    /// to apply only what was shown.
    pub digest: String,
    /// The first held deprovisionings, oldest first.
    pub first: Vec<guard::Held>,
}

/// The tenant's open hold, with its first `limit` held deprovisionings.
pub async fn status(db: &Db, tenant_id: i64, limit: usize) -> Result<Option<Status>, DbError> {
    db.read(move |c| {
        let Some(hold) = guard::open_hold(c, tenant_id)? else {
            return Ok(None);
        };
        let (held, digest) = guard::held_digest(c, hold.id)?;
        Ok(Some(Status {
            held,
            digest,
            first: guard::held(c, hold.id, limit)?,
            hold,
        }))
    })
    .await
}

/// Why a decision could not be taken.
fn no_hold() -> DbError {
    DbError::Conflict("nothing is held: the hold was decided or cleared meanwhile".into())
}

/// Applies the held deprovisionings (planned again from the directory as it is now) and
/// closes the hold. Returns how many changes were applied. With `seen` (the
/// [`Status::digest`] the admin was shown), nothing is applied if the IdP has held more,
/// fewer or other deprovisionings since: the admin confirmed those, not these.
pub async fn approve(
    db: &Db,
    actor: &Actor,
    tenant_id: i64,
    hold_id: i64,
    seen: Option<String>,
) -> Result<usize, DbError> {
    let actor = actor.clone();
    db.write(move |tx| {
        let hold = guard::open_hold(tx, tenant_id)?
            .filter(|h| h.id == hold_id)
            .ok_or_else(no_hold)?;
        if let Some(seen) = &seen {
            let (n, digest) = guard::held_digest(tx, hold.id)?;
            if digest != *seen {
                return Err(DbError::Conflict(format!(
                    "Nothing was applied: the held deprovisionings changed since the page was \
                     shown ({n} held now). Review them and approve again."
                )));
            }
        }
        let held: BTreeSet<i64> = guard::held_pks(tx, hold.id)?.into_iter().collect();
        let at = datetime::now();
        guard::set_state(tx, hold.id, HoldState::Approved, Some(&actor.label()), &at)?;
        let applied = super::reconcile::apply_held(tx, &actor, tenant_id, &held)?;
        let hold = reload(tx, &hold)?;
        let detail = json!({"held": held.len(), "applied": applied});
        record(
            tx,
            &actor,
            tenant_id,
            &hold,
            AuditAction::DeprovisioningApproved,
            detail,
        )?;
        Ok(applied)
    })
    .await
}

/// Keeps the members as they are; the hold stays open, holding them until the directory
/// changes back (or an admin approves after all). A later deprovisioning is held too, and
/// puts the hold back before the admin ([`screen`]).
pub async fn reject(db: &Db, actor: &Actor, tenant_id: i64, hold_id: i64) -> Result<(), DbError> {
    let actor = actor.clone();
    db.write(move |tx| {
        let hold = guard::open_hold(tx, tenant_id)?
            .filter(|h| h.id == hold_id && h.state == HoldState::Held)
            .ok_or_else(no_hold)?;
        guard::set_state(
            tx,
            hold.id,
            HoldState::Rejected,
            Some(&actor.label()),
            &datetime::now(),
        )?;
        let hold = reload(tx, &hold)?;
        let detail = json!({"held": guard::held_count(tx, hold.id)?});
        record(
            tx,
            &actor,
            tenant_id,
            &hold,
            AuditAction::DeprovisioningRejected,
            detail,
        )
    })
    .await
}

/// Why the guard would hold the deprovisionings of a report, were it applied now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forecast {
    /// With those applied in the last hour they pass the threshold (this many).
    Threshold(u64),
    /// A hold is open (waiting for an admin, or rejected): it holds every deprovisioning
    /// until it closes.
    OpenHold,
}

/// Whether applying `deprovisionings` more now would trip the tenant's guard, and why.
/// What the test-mode report warns of before Force sync.
pub async fn would_trip(
    db: &Db,
    tenant_id: i64,
    deprovisionings: u64,
) -> Result<Option<Forecast>, DbError> {
    db.read(move |c| {
        let settings = crate::db::settings::get(c, tenant_id)?;
        if !settings.guard.enabled || deprovisionings == 0 {
            return Ok(None);
        }
        if guard::open_hold(c, tenant_id)?.is_some() {
            return Ok(Some(Forecast::OpenHold));
        }
        let now = OffsetDateTime::now_utc();
        let threshold = settings
            .guard
            .threshold(members::count_active(c, tenant_id)?);
        let recent = guard::applied_since(c, tenant_id, &datetime::format(now - WINDOW))?;
        Ok((recent + deprovisionings > threshold).then_some(Forecast::Threshold(threshold)))
    })
    .await
}
