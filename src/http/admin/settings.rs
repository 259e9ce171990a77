//! Tenant settings: the name, the deprovisioning policies and the matching attribute.
//!
//! Saved through `ops::settings::edit`, as `scimd tenant set` does (audited; a policy
//! change applies from then on and redoes nothing). Test mode has its own page (sync), roles
//! theirs (roles).

use askama::Template;

use super::{Form, Layout, PageResult, Req, html, layout, page_status, redirect_with_flash};
use crate::db::{DbError, settings, tenants::Tenant};
use crate::http::State;
use crate::ops;
use crate::ops::settings::{Edit, Update};
use crate::sync::{AbsentPolicy, DeactivatePolicy, DeletePolicy, MatchBy, Settings, TextEnum};

/// One choice of a setting, with what it means.
struct Choice {
    value: &'static str,
    label: &'static str,
    explain: &'static str,
    checked: bool,
}

/// A setting chosen among a few values, shown as radio buttons.
struct Setting {
    /// The form field.
    name: &'static str,
    legend: &'static str,
    /// When it applies.
    when: &'static str,
    choices: Vec<Choice>,
}

/// The words beside each value of each policy.
fn explain(value: &str, name: &str) -> (&'static str, &'static str) {
    match (name, value) {
        ("on_deactivate", "suspend") => (
            "Suspend",
            "the member loses access but is kept; reactivation in the IdP restores the same member.",
        ),
        ("on_deactivate", _) => (
            "Delete",
            "the member and everything hanging off it are removed; the audit log records it.",
        ),
        ("on_delete", "archive") => (
            "Archive",
            "the member is kept for history, without access; if the IdP pushes the person again, the same member is restored.",
        ),
        ("on_delete", _) => (
            "Delete",
            "the member and everything hanging off it are removed; the audit log records it.",
        ),
        ("absent", "retain") => (
            "Retain",
            "they keep their access, as before provisioning (for example people added by hand).",
        ),
        ("absent", _) => ("Archive", "they lose access and are kept for history."),
        ("match_by", "email") => (
            "Email",
            "the IdP user's primary email (or its userName when that is an email), any case.",
        ),
        _ => ("userName", "the IdP user's userName, any case."),
    }
}

fn setting<T: TextEnum + PartialEq>(
    name: &'static str,
    legend: &'static str,
    when: &'static str,
    current: &str,
) -> Setting {
    Setting {
        name,
        legend,
        when,
        choices: T::ALL
            .iter()
            .map(|v| {
                let (label, explain) = explain(v.as_str(), name);
                Choice {
                    value: v.as_str(),
                    label,
                    explain,
                    checked: v.as_str() == current,
                }
            })
            .collect(),
    }
}

/// The form's values: the saved ones, or what was submitted.
struct Values {
    name: String,
    on_deactivate: String,
    on_delete: String,
    absent: String,
    match_by: String,
    event_retention_days: String,
    /// The safety fields: `None` when a submitted form did not carry them (keep what is set).
    delete_grace_days: Option<String>,
    archived_retention_days: Option<String>,
    audit_retention_days: Option<String>,
    guard: Option<String>,
    guard_percent: Option<String>,
    guard_minimum: Option<String>,
}

impl Values {
    fn of(tenant: &Tenant, s: &Settings) -> Values {
        Values {
            name: tenant.name.clone(),
            on_deactivate: s.on_deactivate.to_string(),
            on_delete: s.on_delete.to_string(),
            absent: s.absent.to_string(),
            match_by: s.match_by.to_string(),
            event_retention_days: s.event_retention_days.to_string(),
            delete_grace_days: Some(days(s.delete_grace_days)),
            archived_retention_days: Some(days(s.archived_retention_days)),
            audit_retention_days: Some(days(s.audit_retention_days)),
            guard: Some(if s.guard.enabled { "on" } else { "off" }.into()),
            guard_percent: Some(s.guard.percent.to_string()),
            guard_minimum: Some(s.guard.minimum.to_string()),
        }
    }

    fn from_form(form: &Form) -> Values {
        Values {
            name: form.trimmed("name").to_string(),
            on_deactivate: form.trimmed("on_deactivate").to_string(),
            on_delete: form.trimmed("on_delete").to_string(),
            absent: form.trimmed("absent").to_string(),
            match_by: form.trimmed("match_by").to_string(),
            event_retention_days: form.trimmed("event_retention_days").to_string(),
            delete_grace_days: form.field("delete_grace_days"),
            archived_retention_days: form.field("archived_retention_days"),
            audit_retention_days: form.field("audit_retention_days"),
            guard: form.field("guard"),
            guard_percent: form.field("guard_percent"),
            guard_minimum: form.field("guard_minimum"),
        }
    }

    /// The settings update these values make; `Err` names a value that is not allowed.
    fn update(&self) -> Result<Update, String> {
        let e = |e: crate::model::UnknownValue| e.to_string();
        Ok(Update {
            on_deactivate: Some(self.on_deactivate.parse().map_err(e)?),
            on_delete: Some(self.on_delete.parse().map_err(e)?),
            absent: Some(self.absent.parse().map_err(e)?),
            match_by: Some(self.match_by.parse().map_err(e)?),
            // Absent (an older form): keep what is set.
            event_retention_days: match self.event_retention_days.as_str() {
                "" => None,
                days => Some(
                    days.parse()
                        .map_err(|_| "Keep events for a whole number of days.".to_string())?,
                ),
            },
            delete_grace_days: optional_days(&self.delete_grace_days, "The grace period")?,
            archived_retention_days: optional_days(
                &self.archived_retention_days,
                "Keep archived members",
            )?,
            audit_retention_days: optional_days(&self.audit_retention_days, "Keep audit entries")?,
            guard_enabled: match self.guard.as_deref() {
                None => None,
                Some("on") => Some(true),
                Some("off") => Some(false),
                Some(_) => return Err("The guard is on or off.".into()),
            },
            guard_percent: number(&self.guard_percent, "The guard's share")?,
            guard_minimum: number(&self.guard_minimum, "The guard's number of people")?,
            ..Update::default()
        })
    }
}

/// Days as the form shows them: blank for none.
fn days(d: Option<u32>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

/// A days field: absent keeps the setting, blank means none.
fn optional_days(v: &Option<String>, label: &str) -> Result<Option<Option<u32>>, String> {
    match v.as_deref() {
        None => Ok(None),
        Some("") => Ok(Some(None)),
        Some(d) => d
            .parse()
            .map(|d| Some(Some(d)))
            .map_err(|_| format!("{label}: a whole number of days, or blank.")),
    }
}

/// A number field: absent keeps the setting.
fn number(v: &Option<String>, label: &str) -> Result<Option<u32>, String> {
    match v.as_deref() {
        None => Ok(None),
        Some(n) => n
            .parse()
            .map(Some)
            .map_err(|_| format!("{label}: a whole number.")),
    }
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    layout: Layout,
    csrf: String,
    name: String,
    event_retention_days: String,
    delete_grace_days: String,
    archived_retention_days: String,
    audit_retention_days: String,
    guard_on: bool,
    guard_percent: String,
    guard_minimum: String,
    /// A warning when the saved guard would let every active member be deprovisioned
    /// within an hour without holding any of it.
    guard_lets_all_go: Option<String>,
    test_mode: bool,
    policies: Vec<Setting>,
    error: Option<String>,
}

async fn render(
    state: &State,
    req: &Req,
    tenant: &Tenant,
    values: Option<Values>,
    error: Option<String>,
) -> PageResult {
    let s = req.session()?;
    let id = tenant.id;
    let (saved, active) = state
        .db
        .read(move |c| {
            Ok::<_, DbError>((
                settings::get(c, id)?,
                crate::db::members::count_active(c, id)?,
            ))
        })
        .await?;
    let v = values.unwrap_or_else(|| Values::of(tenant, &saved));
    let policies = vec![
        setting::<DeactivatePolicy>(
            "on_deactivate",
            "When the IdP deactivates someone",
            "The IdP sends active: false (by PUT or PATCH).",
            &v.on_deactivate,
        ),
        setting::<DeletePolicy>(
            "on_delete",
            "When the IdP deletes someone",
            "The IdP deletes the user (DELETE /Users/{id}).",
            &v.on_delete,
        ),
        setting::<AbsentPolicy>(
            "absent",
            "People the IdP does not have, at a full sync",
            "When Force sync runs, members no IdP user is linked to or matches (for example people added by hand or by CSV). Members whose IdP user was deleted follow the policy above.",
            &v.absent,
        ),
        setting::<MatchBy>(
            "match_by",
            "Matching attribute",
            "How an IdP user is linked to a member that existed before provisioning.",
            &v.match_by,
        ),
    ];
    let status = page_status(error.is_some());
    let page = SettingsPage {
        layout: layout(state, req, Some(tenant), "settings").await?,
        csrf: s.session.csrf.clone(),
        name: v.name,
        event_retention_days: v.event_retention_days,
        delete_grace_days: v
            .delete_grace_days
            .unwrap_or_else(|| days(saved.delete_grace_days)),
        archived_retention_days: v
            .archived_retention_days
            .unwrap_or_else(|| days(saved.archived_retention_days)),
        audit_retention_days: v
            .audit_retention_days
            .unwrap_or_else(|| days(saved.audit_retention_days)),
        guard_on: v.guard.map_or(saved.guard.enabled, |g| g == "on"),
        guard_percent: v
            .guard_percent
            .unwrap_or_else(|| saved.guard.percent.to_string()),
        guard_minimum: v
            .guard_minimum
            .unwrap_or_else(|| saved.guard.minimum.to_string()),
        test_mode: saved.test_mode,
        guard_lets_all_go: guard_lets_all_go(&saved.guard, active),
        policies,
        error,
    };
    html(status, &page)
}

/// Says so when `guard`, on, lets all `active` members be deprovisioned within an hour: in
/// a small organisation, a number of people at or above its size holds nothing.
fn guard_lets_all_go(guard: &crate::model::Guard, active: u64) -> Option<String> {
    let threshold = guard.threshold(active);
    (guard.enabled && active > 0 && threshold >= active).then(|| {
        format!(
            "With {active} active member{}, the guard holds nothing until more than {threshold} \
             would be deprovisioned within an hour: the IdP could deprovision every member \
             without an admin's approval. Set the number of people, and the share, to let \
             fewer than {active} go.",
            if active == 1 { "" } else { "s" }
        )
    })
}

/// The settings update a submitted settings form asks for (all but the name); `Err` names
/// a value that is not allowed.
pub(crate) fn update_of(form: &Form) -> Result<Update, String> {
    Values::from_form(form).update()
}

pub(super) async fn page(state: &State, req: &Req, tenant: &Tenant) -> PageResult {
    render(state, req, tenant, None, None).await
}

pub(super) async fn update(state: &State, req: &mut Req, tenant: &Tenant) -> PageResult {
    let form = req.form(state).await?;
    let values = Values::from_form(&form);
    let update = match values.update() {
        Ok(u) => u,
        Err(m) => return render(state, req, tenant, Some(values), Some(m)).await,
    };
    let edit = Edit::Update(Update {
        name: Some(values.name.clone()),
        ..update
    });
    let saved = ops::settings::edit(&state.db, &req.actor()?, tenant.id, edit).await;
    if let Ok(ops::settings::Saved { run: Some(run), .. }) = &saved {
        state.metrics.sync_run(run);
    }
    let message = match saved {
        Ok(saved) if saved.changed => {
            "Settings saved. They apply from now on: nothing already done is redone."
        }
        Ok(_) => "Nothing to save: these are the current settings.",
        Err(DbError::Conflict(m)) => {
            return render(state, req, tenant, Some(values), Some(m)).await;
        }
        Err(e) => return Err(e.into()),
    };
    Ok(redirect_with_flash(
        req,
        &format!("/t/{}/settings", tenant.slug),
        message,
    ))
}
