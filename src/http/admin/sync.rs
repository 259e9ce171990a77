//! Test mode and sync: the test-mode switch, the report of what a sync would change now
//! (grouped, counted, exportable as CSV and JSON), the Force sync button and the history of
//! sync runs.
//!
//! Everything goes through the use cases the command line uses: the report is
//! `ops::reconcile::Plans::report` (the tenant's plan, made again only after something it
//! reads changed), Force sync `ops::reconcile::force` (a dry run in test mode, planned
//! afresh inside its transaction), the switch `ops::settings::edit`. The page only renders
//! what they return, at most [`SHOWN_PER_KIND`] changes of each kind.

use std::sync::Arc;

use askama::Template;
use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::filters;
use super::{Layout, PageResult, Req, UiError, html, layout, redirect_with_flash};
use crate::db::sync_runs::{self, RunRecord};
use crate::db::{DbError, tenants::Tenant};
use crate::http::{Body, State};
use crate::model::SyncScope;
use crate::ops::guard::Forecast;
use crate::ops::settings::{Edit, Update};
use crate::ops::{self, reconcile};
use crate::scim::datetime;
use crate::sync::report::{Report, ReportEntry, changes_of};
use crate::sync::{ChangeKind, TextEnum};

/// How many changes of one kind the page lists; the exports always have all of them.
const SHOWN_PER_KIND: usize = 200;
/// How many past runs the history shows.
const HISTORY: u32 = 25;

/// A kind of change as the page names it: (heading, short label, what it means).
pub(super) fn kind_text(kind: ChangeKind) -> (&'static str, &'static str, &'static str) {
    match kind {
        ChangeKind::Create => (
            "New members",
            "Create",
            "people the IdP pushed who are not members yet",
        ),
        ChangeKind::Update => (
            "Profile updates",
            "Update",
            "the IdP's values overwrite the member's",
        ),
        ChangeKind::RoleChange => (
            "Role changes",
            "Role change",
            "from the groups the IdP put them in",
        ),
        ChangeKind::Suspend => (
            "Suspensions",
            "Suspend",
            "deactivated in the IdP; reversible",
        ),
        ChangeKind::Reactivate => (
            "Reactivations",
            "Reactivate",
            "active in the IdP again, same member",
        ),
        ChangeKind::Archive => (
            "Archivals",
            "Archive",
            "deleted by the IdP or no longer in it",
        ),
        ChangeKind::Delete => (
            "Deletions",
            "Delete",
            "removed with everything hanging off them",
        ),
        ChangeKind::Skip => (
            "Skipped",
            "Skip",
            "members sync would change but must not (not managed, or a conflict)",
        ),
    }
}

/// One count of a report or a run, labelled.
pub(super) struct Count {
    pub label: &'static str,
    pub n: usize,
}

/// Every kind's count, in report order.
fn counts_of(get: impl Fn(ChangeKind) -> usize) -> Vec<Count> {
    ChangeKind::ALL
        .iter()
        .map(|&k| Count {
            label: kind_text(k).1,
            n: get(k),
        })
        .collect()
}

/// A past run as the history lists it.
pub(super) struct RunRow {
    /// The member changes it applied: its changes but the skips and those held.
    pub applied: usize,
    pub id: i64,
    pub actor: String,
    /// "full" (force sync) or "roles" (after a role setting changed).
    pub scope: String,
    pub dry_run: bool,
    pub started_at: String,
    pub duration_ms: i64,
    pub counts: Vec<Count>,
    /// The deprovisionings of `counts` the guard held instead of applying.
    pub held: u64,
}

impl RunRow {
    pub fn of(r: RunRecord) -> RunRow {
        let count = |k: ChangeKind| {
            r.counts
                .get(k.as_str())
                .and_then(Value::as_u64)
                .unwrap_or(0) as usize
        };
        let held = r.counts.get("held").and_then(Value::as_u64).unwrap_or(0);
        RunRow {
            applied: changes_of(count).saturating_sub(held as usize),
            counts: counts_of(count),
            id: r.id,
            actor: r.actor,
            scope: r.scope,
            dry_run: r.dry_run,
            started_at: r.started_at,
            duration_ms: r.duration_ms,
            held,
        }
    }

    /// The non-zero counts, e.g. "Create 2 · Role change 1", or "no changes".
    pub fn summary(&self) -> String {
        summary(&self.counts)
    }

    pub fn what(&self) -> &'static str {
        if self.scope == SyncScope::Roles.as_str() {
            "Roles re-evaluated"
        } else {
            "Force sync"
        }
    }
}

pub(super) fn summary(counts: &[Count]) -> String {
    let parts: Vec<String> = counts
        .iter()
        .filter(|c| c.n > 0)
        .map(|c| format!("{} {}", c.label, c.n))
        .collect();
    if parts.is_empty() {
        "no changes".into()
    } else {
        parts.join(" · ")
    }
}

/// The changes of one kind, as listed.
pub(super) struct KindGroup {
    pub key: &'static str,
    pub heading: &'static str,
    pub meaning: &'static str,
    pub total: usize,
    pub entries: Vec<ReportEntry>,
}

impl KindGroup {
    pub fn hidden(&self) -> usize {
        self.total - self.entries.len()
    }
}

/// A report grouped for display, at most [`SHOWN_PER_KIND`] entries per kind.
pub(super) fn groups_of(report: &Report) -> Vec<KindGroup> {
    report
        .changes
        .iter()
        .map(|(kind, entries)| {
            let (heading, _, meaning) = kind_text(*kind);
            KindGroup {
                key: kind.as_str(),
                heading,
                meaning,
                total: entries.len(),
                entries: entries.iter().take(SHOWN_PER_KIND).cloned().collect(),
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "sync.html")]
struct SyncPage {
    layout: Layout,
    csrf: String,
    counts: Vec<Count>,
    groups: Vec<KindGroup>,
    /// Changes Force sync would write (all but skips).
    applicable: usize,
    runs: Vec<RunRow>,
    /// The run just made, shown at the top after Force sync.
    result: Option<RunRow>,
    /// (deprovisionings, threshold) when applying the report would pass the guard's
    /// threshold.
    guard: Option<(u64, u64)>,
    /// The deprovisionings of the report, when a hold is open and would hold them all.
    held_open: Option<u64>,
}

pub(super) async fn page(state: &State, req: &Req, tenant: &Tenant) -> PageResult {
    let s = req.session()?;
    let id = tenant.id;
    let just_ran: Option<i64> = req.query("run").and_then(|r| r.parse().ok());
    let (report, _) = state.plans.report(&state.db, id).await?;
    let (runs, result) = state
        .db
        .read(move |c| {
            let result = match just_ran {
                Some(run) => match sync_runs::get(c, id, run) {
                    Ok(r) => Some(r),
                    Err(DbError::NotFound) => None,
                    Err(e) => return Err(e),
                },
                None => None,
            };
            Ok((sync_runs::recent(c, id, HISTORY)?, result))
        })
        .await?;
    let deprovisionings = report.deprovisionings();
    let forecast = ops::guard::would_trip(&state.db, id, deprovisionings).await?;
    let page = SyncPage {
        guard: match forecast {
            Some(Forecast::Threshold(threshold)) => Some((deprovisionings, threshold)),
            _ => None,
        },
        held_open: (forecast == Some(Forecast::OpenHold)).then_some(deprovisionings),
        layout: layout(state, req, Some(tenant), "sync").await?,
        csrf: s.session.csrf.clone(),
        counts: counts_of(|k| report.counts.get(k)),
        groups: groups_of(&report),
        applicable: report.applicable(),
        runs: runs.into_iter().map(RunRow::of).collect(),
        result: result.map(RunRow::of),
    };
    html(StatusCode::OK, &page)
}

/// Turns test mode on or off. Turning it off applies nothing by itself.
pub(super) async fn set_test_mode(state: &State, req: &mut Req, tenant: &Tenant) -> PageResult {
    let form = req.form(state).await?;
    let on = match form.get("test_mode") {
        "on" => true,
        "off" => false,
        _ => return Err(UiError::BadRequest("choose test mode on or off".into())),
    };
    let edit = Edit::Update(Update {
        test_mode: Some(on),
        ..Update::default()
    });
    let saved = ops::settings::edit(&state.db, &req.actor()?, tenant.id, edit).await?;
    if let Some(run) = &saved.run {
        state.metrics.sync_run(run);
    }
    let changed = saved.changed;
    let message = match (on, changed) {
        (true, true) => {
            "Test mode is on. The IdP's writes still reach the directory; members stay as they are."
        }
        (false, true) => {
            "Test mode is off. Nothing was applied by turning it off: click Force sync to apply the report."
        }
        (true, false) => "Test mode was already on.",
        (false, false) => "Test mode was already off.",
    };
    Ok(redirect_with_flash(
        req,
        &format!("/t/{}/sync", tenant.slug),
        message,
    ))
}

/// Force sync: applies the plan for the whole tenant (a dry run, recorded as such, in test
/// mode), then shows the run.
pub(super) async fn force(state: &State, req: &mut Req, tenant: &Tenant) -> PageResult {
    req.form(state).await?;
    let run = reconcile::force(&state.db, &req.actor()?, tenant.id, false).await?;
    state.metrics.sync_run(&run);
    let summary = summary(&counts_of(|k| run.report.counts.get(k)));
    let message = if run.test_mode {
        format!(
            "Dry run recorded: test mode is on, so nothing was applied ({summary}). Turn test mode off, then Force sync applies it."
        )
    } else if run.held > 0 && run.applied() == 0 {
        format!(
            "Sync held by the guard: nothing applied; it holds {} deprovisioning{} (the report: {summary}).",
            run.held,
            if run.held == 1 { "" } else { "s" }
        )
    } else if run.held > 0 {
        format!(
            "Sync {}: the report had {summary}, of which the guard held {} deprovisioning{}, not applied.",
            run.applied_in(),
            run.held,
            if run.held == 1 { "" } else { "s" }
        )
    } else {
        format!("Sync {}: {summary}.", run.applied_in())
    };
    Ok(redirect_with_flash(
        req,
        &format!("/t/{}/sync?run={}", tenant.slug, run.id),
        &message,
    ))
}

async fn current_report(state: &State, tenant: &Tenant) -> Result<(Arc<Report>, bool), UiError> {
    let (report, settings) = state.plans.report(&state.db, tenant.id).await?;
    Ok((report, settings.test_mode))
}

/// A file download: `Content-Disposition: attachment` with a name saying what and when.
fn download(content_type: &'static str, tenant: &Tenant, ext: &str, body: String) -> PageResult {
    let stamp: String = datetime::now()
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    let name = format!("scimd-{}-sync-report-{stamp}.{ext}", tenant.slug);
    let mut r = Response::new(Body::from(Bytes::from(body)));
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The slug is [a-z0-9-], so the name needs no quoting beyond the quotes.
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .map_err(|e| UiError::Internal(e.to_string()))?;
    h.insert(header::CONTENT_DISPOSITION, disposition);
    Ok(r)
}

/// The report as CSV: one row per changed field (`Report::to_csv`, as `scimd sync --csv`).
pub(super) async fn export_csv(state: &State, tenant: &Tenant) -> PageResult {
    let (report, _) = current_report(state, tenant).await?;
    download("text/csv; charset=utf-8", tenant, "csv", report.to_csv())
}

/// The report as JSON: counts and changes by kind, with when and in which mode.
pub(super) async fn export_json(state: &State, tenant: &Tenant) -> PageResult {
    let (report, test_mode) = current_report(state, tenant).await?;
    let body = json!({
        "tenant": tenant.slug,
        "generatedAt": datetime::now(),
        "testMode": test_mode,
        "counts": report.counts,
        "changes": report.changes,
    });
    let text = serde_json::to_string_pretty(&body).map_err(|e| UiError::Internal(e.to_string()))?;
    download("application/json", tenant, "json", text)
}
