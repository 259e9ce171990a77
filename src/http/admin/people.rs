//! People: the members list (search, filters by status, role and managed, keyset pages),
//! a member's page (its fields, its role and why, its directory record and groups, the
//! managed switch), CSV import with a preview, and the CSV and JSON exports.
//!
//! Import is two steps: the upload is parsed and previewed (every row's outcome, every
//! row's errors) and kept in memory under a random id; only the admin's confirmation
//! imports it, with the same code as `scimd members import`. Nothing is written when any
//! row is invalid.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use askama::Template;
use http_body_util::BodyExt;
use hyper::StatusCode;

use super::filters;
use super::{Form, Layout, PageResult, Req, UiError, download, html, layout, redirect_with_flash};
use crate::db::members::{self, ListFilter, MemberRow};
use crate::db::paging::Cursor;
use crate::db::{self, DbError, tenants::Tenant};
use crate::http::{RequestBody, State};
use crate::ops;
use crate::ops::members::{AdminStatus, ExportFormat, ImportPreview, ImportProblem, RowOutcome};
use crate::sync::member_csv::{self, RowError};
use crate::sync::roles::{self, RoleDecision};
use crate::sync::{DirectoryGroup, MemberStatus, Role, Settings, TextEnum};

/// Members per page.
const PAGE: usize = 50;
/// Counts stop here: "more than 10 000" is all a list header needs, and a search cannot
/// count from an index.
const COUNT_CAP: usize = 10_000;
/// The largest CSV an admin can upload (about 250 000 rows); the usual request limit is
/// meant for SCIM bodies.
pub(super) const IMPORT_MAX_BYTES: usize = 16 * 1024 * 1024;
/// How long an uploaded file waits for its confirmation.
const PENDING_TTL: Duration = Duration::from_secs(30 * 60);
/// Uploads kept at once; the oldest goes first.
const PENDING_MAX: usize = 16;
/// Preview rows listed on the page; the counts cover all of them.
const PREVIEW_ROWS: usize = 500;

/// `path?k=v&…` with the non-empty pairs, URL-encoded.
pub(super) fn link(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        q.append_pair(k, v);
    }
    let q = q.finish();
    if q.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{q}")
    }
}

// --- List ------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "people.html")]
struct PeoplePage {
    layout: Layout,
    rows: Vec<MemberRow>,
    q: String,
    status: String,
    role: String,
    managed: String,
    statuses: Vec<&'static str>,
    roles: Vec<String>,
    /// "12 members", "more than 10 000 members".
    count: String,
    prev: Option<String>,
    next: Option<String>,
    filtered: bool,
}

pub(super) async fn list_page(state: &State, req: &Req, tenant: &Tenant) -> PageResult {
    let q = req.query("q").unwrap_or("").trim().to_string();
    let status = req.query("status").unwrap_or("").to_string();
    let role = req.query("role").unwrap_or("").to_string();
    let managed = req.query("managed").unwrap_or("").to_string();
    let filter = ListFilter {
        search: Some(q.clone()).filter(|q| !q.is_empty()),
        status: status.parse::<MemberStatus>().ok(),
        role: Some(role.as_str())
            .filter(|r| !r.is_empty())
            .and_then(|r| r.parse::<Role>().ok()),
        managed: match managed.as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        },
        ..ListFilter::default()
    };
    let cursor = Cursor::from_query(req.query("after"), req.query("before"));
    let id = tenant.id;
    let (settings, page, count) = {
        let filter = filter.clone();
        state
            .db
            .read(move |c| {
                Ok::<_, DbError>((
                    db::settings::get(c, id)?,
                    members::page(c, id, &filter, cursor, PAGE)?,
                    members::count(c, id, &filter, COUNT_CAP + 1)?,
                ))
            })
            .await?
    };
    let base = format!("/t/{}/people", tenant.slug);
    let keep = |k: &'static str, v: String| {
        link(
            &base,
            &[
                ("q", &q),
                ("status", &status),
                ("role", &role),
                ("managed", &managed),
                (k, &v),
            ],
        )
    };
    let noun = if count == 1 { "member" } else { "members" };
    let page = PeoplePage {
        layout: layout(state, req, Some(tenant), "people").await?,
        count: if count > COUNT_CAP {
            format!("More than {COUNT_CAP} members")
        } else {
            format!("{count} {noun}")
        },
        rows: page.items,
        prev: page.prev.map(|k| keep("before", k.to_string())),
        next: page.next.map(|k| keep("after", k.to_string())),
        filtered: filter.search.is_some()
            || filter.status.is_some()
            || filter.role.is_some()
            || filter.managed.is_some(),
        q,
        status,
        role,
        managed,
        statuses: MemberStatus::ALL.iter().map(|s| s.as_str()).collect(),
        roles: settings.roles.iter().map(|r| r.to_string()).collect(),
    };
    html(StatusCode::OK, &page)
}

// --- One member ------------------------------------------------------------------------

/// A directory group of the member, with the role it maps to.
struct GroupLine {
    id: String,
    name: String,
    /// "admin (reserved name)", "member (mapping)", or "".
    role: String,
}

#[derive(Template)]
#[template(path = "member.html")]
struct MemberPage {
    layout: Layout,
    csrf: String,
    m: MemberRow,
    /// The linked directory user's attributes, as stored (pretty JSON).
    record: Option<String>,
    groups: Vec<GroupLine>,
    /// What the member's groups give now, when that differs from the stored role.
    pending_role: Option<String>,
    /// The deprovisioning the guard keeps back for this member: (action, held at).
    held: Option<(String, String)>,
    test_mode: bool,
    /// Whether the IdP decides the member's status (else the admin may change it here).
    idp_decides: bool,
    /// The status changes the admin may make now.
    changes: Vec<StatusButton>,
}

/// A button of the member page's Status section.
struct StatusButton {
    change: &'static str,
    label: &'static str,
    /// What the confirmation asks, for a change that takes access away.
    confirm: Option<&'static str>,
}

/// The status changes an admin may make to `m`: none when the IdP decides; no deletion
/// while the IdP still has the person (`linked`).
fn status_buttons(m: &MemberRow, linked: bool) -> Vec<StatusButton> {
    if ops::members::idp_decides(m) {
        return Vec::new();
    }
    let all = [
        (AdminStatus::Reactivate, "reactivate", "Reactivate", None),
        (
            AdminStatus::Suspend,
            "suspend",
            "Suspend",
            Some("Suspend this member? Apps are told to revoke the person's access."),
        ),
        (
            AdminStatus::Archive,
            "archive",
            "Archive",
            Some(
                "Archive this member? Apps are told the person is gone; it stays here as history.",
            ),
        ),
        (
            AdminStatus::Delete,
            "delete",
            "Delete",
            Some("Delete this member for good? Apps are told to delete the person's data."),
        ),
    ];
    all.into_iter()
        .filter(|(c, ..)| c.applies_to(m.status) && !(linked && *c == AdminStatus::Delete))
        .map(|(_, change, label, confirm)| StatusButton {
            change,
            label,
            confirm,
        })
        .collect()
}

pub(super) async fn member_page(state: &State, req: &Req, tenant: &Tenant, id: &str) -> PageResult {
    let s = req.session()?;
    let (tenant_id, id) = (tenant.id, id.to_string());
    let (m, user, groups, settings, held) = state
        .db
        .read(move |c| {
            let m = members::get(c, tenant_id, &id)?.ok_or(DbError::NotFound)?;
            let held = db::guard::held_for(c, m.pk)?;
            let user = match m.user_id.as_deref() {
                Some(uid) => db::users::get(c, tenant_id, uid)?,
                None => None,
            };
            let groups = match &user {
                Some(u) => db::users::groups_of(c, &[u.pk])?
                    .remove(&u.pk)
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            let settings = db::settings::get(c, tenant_id)?;
            Ok::<_, DbError>((m, user, groups, settings, held))
        })
        .await?;
    let directory_groups: Vec<DirectoryGroup> = groups
        .iter()
        .map(|g| DirectoryGroup {
            id: g.id.as_str().into(),
            display_name: g.display.as_str().into(),
        })
        .collect();
    // The stored role is what sync last applied; the groups as they are now may say
    // otherwise (test mode, a member not managed): show both, so the admin is not misled.
    let pending_role = user
        .as_ref()
        .map(|_| roles::decide(&directory_groups, &settings))
        .filter(|d: &RoleDecision| {
            d.to_string() != m.role_reason && m.status == MemberStatus::Active
        })
        .map(|d| d.to_string());
    let groups = groups
        .into_iter()
        .map(|g| GroupLine {
            role: group_role(&settings, &g.display),
            id: g.id,
            name: g.display,
        })
        .collect();
    let linked = user.is_some();
    let page = MemberPage {
        layout: layout(state, req, Some(tenant), "people").await?,
        csrf: s.session.csrf.clone(),
        record: user.map(|u| {
            serde_json::to_string_pretty(&serde_json::Value::Object(u.data)).unwrap_or_default()
        }),
        groups,
        pending_role,
        held,
        test_mode: settings.test_mode,
        idp_decides: ops::members::idp_decides(&m),
        changes: status_buttons(&m, linked),
        m,
    };
    html(StatusCode::OK, &page)
}

/// The role a group gives, said the way the roles page says it.
pub(super) fn group_role(settings: &Settings, group: &str) -> String {
    match roles::role_of_group(settings, group) {
        Some((role, true)) => format!("{role} (reserved name)"),
        Some((role, false)) => format!("{role} (mapping)"),
        None => String::new(),
    }
}

/// Marks a member managed or not managed by provisioning, audited with an event, like
/// the CSV column "Provisioning Managed".
pub(super) async fn set_managed(
    state: &State,
    req: &mut Req,
    tenant: &Tenant,
    id: &str,
) -> PageResult {
    let form = req.form(state).await?;
    let managed = match form.get("managed") {
        "true" => true,
        "false" => false,
        _ => return Err(UiError::BadRequest("choose managed or not managed".into())),
    };
    let id = id.to_string();
    let changed =
        ops::members::set_managed(&state.db, &req.actor()?, tenant.id, id.clone(), managed).await?;
    let message = match (changed, managed) {
        (false, _) => "Nothing to change.",
        (true, true) => {
            "Marked as managed: the IdP's next change for this person, or the next force sync, updates it."
        }
        (true, false) => "Marked as not managed: provisioning will not change this member.",
    };
    Ok(redirect_with_flash(
        req,
        &format!("/t/{}/people/{id}", tenant.slug),
        message,
    ))
}

pub(super) async fn restore(state: &State, req: &mut Req, tenant: &Tenant, id: &str) -> PageResult {
    req.form(state).await?;
    let id = id.to_string();
    ops::members::restore(&state.db, &req.actor()?, tenant.id, id.clone()).await?;
    Ok(redirect_with_flash(
        req,
        &format!("/t/{}/people/{id}", tenant.slug),
        "Restored: the member is active again and will not be deleted.",
    ))
}

/// An admin suspends, reactivates, archives or deletes a member provisioning does not
/// decide for.
pub(super) async fn set_status(
    state: &State,
    req: &mut Req,
    tenant: &Tenant,
    id: &str,
) -> PageResult {
    let form = req.form(state).await?;
    let Some(change) = AdminStatus::parse(form.get("change")) else {
        return Err(UiError::BadRequest(
            "choose suspend, reactivate, archive or delete".into(),
        ));
    };
    let id = id.to_string();
    ops::members::set_status(&state.db, &req.actor()?, tenant.id, id.clone(), change).await?;
    let message = match change {
        AdminStatus::Delete => "Member deleted: apps were told (member.deleted).",
        AdminStatus::Suspend => "Suspended: apps were told (member.suspended).",
        AdminStatus::Reactivate => "Reactivated: apps were told (member.reactivated).",
        AdminStatus::Archive => "Archived: apps were told (member.archived).",
    };
    let to = match change {
        AdminStatus::Delete => format!("/t/{}/people", tenant.slug),
        _ => format!("/t/{}/people/{id}", tenant.slug),
    };
    Ok(redirect_with_flash(req, &to, message))
}

// --- Export ----------------------------------------------------------------------------

pub(super) async fn export(
    state: &State,
    _req: &Req,
    tenant: &Tenant,
    format: ExportFormat,
) -> PageResult {
    let body = ops::members::export(&state.db, tenant.id, format).await?;
    Ok(match format {
        ExportFormat::Csv => download(
            "text/csv; charset=utf-8",
            &format!("members-{}.csv", tenant.slug),
            body,
        ),
        ExportFormat::Json => download(
            "application/json",
            &format!("members-{}.json", tenant.slug),
            body,
        ),
    })
}

// --- Import ----------------------------------------------------------------------------

/// Uploaded CSV files between their preview and the admin's confirmation. In memory on
/// purpose: an upload is a draft, and a restart asking for it again loses nothing.
#[derive(Default)]
pub(in crate::http) struct PendingImports(Mutex<HashMap<String, Pending>>);

struct Pending {
    tenant_id: i64,
    admin: String,
    file_name: String,
    csv: String,
    /// What the preview showed ([`ops::members::ImportPreview::fingerprint`]).
    fingerprint: String,
    at: Instant,
}

impl PendingImports {
    fn put(&self, pending: Pending) -> String {
        let id = crate::auth::random_hex(16);
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|_, p| p.at.elapsed() < PENDING_TTL);
        while all.len() >= PENDING_MAX {
            let oldest = all.iter().min_by_key(|(_, p)| p.at).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => all.remove(&k),
                None => break,
            };
        }
        all.insert(id.clone(), pending);
        id
    }

    /// The file's name, the file, and the fingerprint of its preview, if `id` is this
    /// admin's upload for this tenant.
    fn get(&self, id: &str, tenant_id: i64, admin: &str) -> Option<(String, String, String)> {
        let all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.get(id)
            .filter(|p| p.tenant_id == tenant_id && p.admin == admin)
            .filter(|p| p.at.elapsed() < PENDING_TTL)
            .map(|p| (p.file_name.clone(), p.csv.clone(), p.fingerprint.clone()))
    }

    fn remove(&self, id: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}

/// A `multipart/form-data` body as form fields; an uploaded file's field holds its text.
pub(super) async fn read_multipart(
    body: RequestBody,
    boundary: String,
    limit: usize,
) -> Result<Form, UiError> {
    let too_big = || {
        UiError::BadRequest(format!(
            "the upload is larger than {} MB",
            limit / (1024 * 1024)
        ))
    };
    let stream = http_body_util::Limited::new(body, limit).into_data_stream();
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit as u64));
    let mut parts = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut pairs = Vec::new();
    loop {
        let field = match parts.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(multer::Error::StreamSizeExceeded { .. }) => return Err(too_big()),
            Err(e) if e.to_string().contains("length limit") => return Err(too_big()),
            Err(e) => {
                return Err(UiError::BadRequest(format!(
                    "the upload could not be read: {e}"
                )));
            }
        };
        let name = field.name().unwrap_or_default().to_string();
        if let Some(file_name) = field.file_name() {
            pairs.push((format!("{name}.filename"), file_name.to_string()));
        }
        let bytes = field.bytes().await.map_err(|e| match e {
            multer::Error::StreamSizeExceeded { .. } => too_big(),
            e if e.to_string().contains("length limit") => too_big(),
            e => UiError::BadRequest(format!("the upload could not be read: {e}")),
        })?;
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
            UiError::BadRequest(
                "the file is not UTF-8 text: save it as \"CSV UTF-8\" and upload it again".into(),
            )
        })?;
        pairs.push((name, text));
    }
    Ok(Form(pairs))
}

/// One previewed row, as the page lists it.
struct PreviewLine {
    line: u64,
    email: String,
    /// "create", "update" or "unchanged".
    action: &'static str,
    member_id: Option<String>,
    /// "role: viewer → admin", one per changed field; for a creation, the cells given.
    details: Vec<String>,
}

#[derive(Template)]
#[template(path = "import.html")]
struct ImportPage {
    layout: Layout,
    csrf: String,
    columns: String,
    roles: String,
    /// The pasted text, kept when the page comes back with an error.
    csv: String,
    file_name: String,
    /// Per-row problems: nothing can be imported until they are fixed.
    errors: Vec<RowError>,
    /// A problem with the upload as a whole.
    error: Option<String>,
    preview: Option<PreviewView>,
}

/// A valid file's preview and the id its confirmation carries.
struct PreviewView {
    pending: String,
    total: usize,
    created: usize,
    updated: usize,
    unchanged: usize,
    lines: Vec<PreviewLine>,
    /// How many changed rows are not listed.
    more: usize,
}

impl ImportPage {
    async fn new(state: &State, req: &Req, tenant: &Tenant) -> Result<ImportPage, UiError> {
        let id = tenant.id;
        let settings = state.db.read(move |c| db::settings::get(c, id)).await?;
        Ok(ImportPage {
            layout: layout(state, req, Some(tenant), "people").await?,
            csrf: req.session()?.session.csrf.clone(),
            columns: member_csv::COLUMNS.join(", "),
            roles: settings
                .roles
                .iter()
                .map(Role::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            csv: String::new(),
            file_name: String::new(),
            errors: Vec::new(),
            error: None,
            preview: None,
        })
    }
}

/// The form that adds a person by hand, with what was typed when it comes back refused.
#[derive(Template)]
#[template(path = "person_new.html")]
struct NewPersonPage {
    layout: Layout,
    csrf: String,
    roles: Vec<String>,
    default_role: String,
    error: Option<String>,
    email: String,
    given_name: String,
    family_name: String,
    /// The role chosen; empty for the tenant's default.
    role: String,
    managed: bool,
}

async fn new_person_page(
    state: &State,
    req: &Req,
    tenant: &Tenant,
    typed: ops::members::NewPerson,
    error: Option<String>,
) -> PageResult {
    let id = tenant.id;
    let settings = state.db.read(move |c| db::settings::get(c, id)).await?;
    let status = match error {
        Some(_) => StatusCode::BAD_REQUEST,
        None => StatusCode::OK,
    };
    let page = NewPersonPage {
        layout: layout(state, req, Some(tenant), "people").await?,
        csrf: req.session()?.session.csrf.clone(),
        roles: settings.roles.iter().map(|r| r.to_string()).collect(),
        default_role: settings.default_role.to_string(),
        error,
        email: typed.email,
        given_name: typed.given_name.unwrap_or_default(),
        family_name: typed.family_name.unwrap_or_default(),
        role: typed.role.unwrap_or_default(),
        managed: typed.managed,
    };
    html(status, &page)
}

/// The "Add a person" form.
pub(super) async fn add_page(state: &State, req: &Req, tenant: &Tenant) -> PageResult {
    let blank = ops::members::NewPerson {
        managed: true,
        ..Default::default()
    };
    new_person_page(state, req, tenant, blank, None).await
}

/// Adds the person and goes to their page; a refusal shows the form again, as typed.
pub(super) async fn add(state: &State, req: &mut Req, tenant: &Tenant) -> PageResult {
    let form = req.form(state).await?;
    let given = |name: &str| Some(form.trimmed(name).to_string()).filter(|v| !v.is_empty());
    let person = ops::members::NewPerson {
        email: form.trimmed("email").to_string(),
        given_name: given("given_name"),
        family_name: given("family_name"),
        role: given("role"),
        managed: form.get("managed") == "1",
    };
    let actor = req.actor()?;
    match ops::members::add(&state.db, &actor, tenant.id, person.clone()).await? {
        Ok(member) => Ok(redirect_with_flash(
            req,
            &format!("/t/{}/people/{}", tenant.slug, member.id),
            "Person added. Your apps hear of them as member.created.",
        )),
        Err(message) => new_person_page(state, req, tenant, person, Some(message)).await,
    }
}

pub(super) async fn import_page(state: &State, req: &Req, tenant: &Tenant) -> PageResult {
    html(StatusCode::OK, &ImportPage::new(state, req, tenant).await?)
}

fn preview_lines(preview: &ImportPreview) -> (Vec<PreviewLine>, usize) {
    let mut lines = Vec::new();
    let mut more = 0;
    for (row, outcome) in &preview.rows {
        let (action, member_id, details) = match outcome {
            RowOutcome::Unchanged { .. } => continue,
            RowOutcome::Create => {
                let cells = [
                    ("userName", row.user_name.clone()),
                    ("givenName", row.given_name.clone()),
                    ("familyName", row.family_name.clone()),
                    ("role", row.role.as_ref().map(Role::to_string)),
                    ("managed", row.managed.map(|m| m.to_string())),
                ];
                let details = cells
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| format!("{k}: {v}")))
                    .collect();
                ("create", None, details)
            }
            RowOutcome::Update { member, changes } => {
                // A member the IdP provides (linked, and managed still after this row):
                // its next write or a sync sets the IdP's values and its groups' role again.
                let provisioned =
                    member.managed && member.user_id.is_some() && row.managed != Some(false);
                let details = changes
                    .iter()
                    .map(|c| {
                        let (before, after) = c.values();
                        let before = if before.is_empty() {
                            "—".into()
                        } else {
                            before
                        };
                        let until = match c {
                            ops::members::Planned::Managed(..) => "",
                            _ if provisioned => " (until the IdP's next write or a sync sets it back: the IdP provides this member; import it with Provisioning Managed false to keep it)",
                            _ => "",
                        };
                        format!("{}: {before} → {after}{until}", c.name())
                    })
                    .collect();
                ("update", Some(member.id.clone()), details)
            }
        };
        if lines.len() == PREVIEW_ROWS {
            more += 1;
            continue;
        }
        lines.push(PreviewLine {
            line: row.line,
            email: row.email.clone(),
            action,
            member_id,
            details,
        });
    }
    (lines, more)
}

/// Parses and previews an upload; stores it for confirmation only when it would import.
pub(super) async fn preview(state: &State, req: &mut Req, tenant: &Tenant) -> PageResult {
    // Sixteen times the usual body, so ten times the usual time to arrive.
    let timeout = state.config.body_read_timeout * 10;
    let form = req.form_limited(IMPORT_MAX_BYTES, timeout).await?;
    let mut page = ImportPage::new(state, req, tenant).await?;
    let (file_name, csv) = match form.get("file") {
        "" => ("pasted text".to_string(), form.get("csv").to_string()),
        file => (
            match form.get("file.filename") {
                "" => "uploaded file".to_string(),
                n => n.to_string(),
            },
            file.to_string(),
        ),
    };
    page.csv = form.get("csv").to_string();
    if csv.trim().is_empty() {
        page.error = Some("Choose a CSV file or paste its contents.".into());
        return html(StatusCode::BAD_REQUEST, &page);
    }
    page.file_name = file_name.clone();
    let admin = req.session()?.session.username.clone();
    let actor = req.actor()?;
    let preview =
        ops::members::preview_import(&state.db, &actor, tenant.id, csv.clone().into_bytes());
    match preview.await? {
        Err(ImportProblem::Rows(errors)) => {
            page.errors = errors;
            html(StatusCode::BAD_REQUEST, &page)
        }
        Err(ImportProblem::Conflict(message)) => {
            page.error = Some(message);
            html(StatusCode::BAD_REQUEST, &page)
        }
        Ok(preview) => {
            show_preview(state, &mut page, tenant, admin, file_name, csv, &preview);
            html(StatusCode::OK, &page)
        }
        // A preview has nothing to have changed since; `Changed` carries one all the same.
        Err(ImportProblem::Changed(preview)) => {
            show_preview(state, &mut page, tenant, admin, file_name, csv, &preview);
            html(StatusCode::OK, &page)
        }
    }
}

/// Puts `preview` of `csv` on `page`, kept for the admin's confirmation.
fn show_preview(
    state: &State,
    page: &mut ImportPage,
    tenant: &Tenant,
    admin: String,
    file_name: String,
    csv: String,
    preview: &ops::members::ImportPreview,
) {
    let (lines, more) = preview_lines(preview);
    page.file_name = file_name.clone();
    let pending = state.pending_imports.put(Pending {
        tenant_id: tenant.id,
        admin,
        file_name,
        csv,
        fingerprint: preview.fingerprint(),
        at: Instant::now(),
    });
    page.preview = Some(PreviewView {
        pending,
        total: preview.rows.len(),
        created: preview.summary.created,
        updated: preview.summary.updated,
        unchanged: preview.summary.unchanged,
        lines,
        more,
    });
}

/// Imports a previewed upload: parsed and validated again against the tenant as it is
/// now, then written in one transaction with its audit entries and events.
pub(super) async fn confirm(state: &State, req: &mut Req, tenant: &Tenant) -> PageResult {
    let form = req.form(state).await?;
    let pending_id = form.get("import").to_string();
    let actor = req.actor()?;
    let admin = req.session()?.session.username.clone();
    let Some((file_name, csv, previewed)) =
        state.pending_imports.get(&pending_id, tenant.id, &admin)
    else {
        let mut page = ImportPage::new(state, req, tenant).await?;
        page.error =
            Some("This preview has expired or was already imported. Upload the file again.".into());
        return html(StatusCode::BAD_REQUEST, &page);
    };
    let imported = ops::members::import(
        &state.db,
        &actor,
        tenant.id,
        csv.clone().into_bytes(),
        Some(previewed),
    );
    let outcome = imported.await?;
    match outcome {
        Ok((rows, summary)) => {
            state.pending_imports.remove(&pending_id);
            Ok(redirect_with_flash(
                req,
                &format!("/t/{}/people", tenant.slug),
                &format!(
                    "Imported {rows} row(s) from {file_name}: {} created, {} updated, {} unchanged.",
                    summary.created, summary.updated, summary.unchanged
                ),
            ))
        }
        Err(problems) => {
            let mut page = ImportPage::new(state, req, tenant).await?;
            page.file_name = file_name.clone();
            match problems {
                ImportProblem::Rows(errors) => page.errors = errors,
                ImportProblem::Conflict(m) => {
                    page.error = Some(format!("{m}; nothing was imported"));
                }
                ImportProblem::Changed(now) => {
                    state.pending_imports.remove(&pending_id);
                    page.error = Some(
                        "Nothing was imported: the members changed since this preview (another \
                         admin or the IdP). Here is what the file would do now; confirm again \
                         if it is still right."
                            .into(),
                    );
                    show_preview(state, &mut page, tenant, admin, file_name, csv, &now);
                    return html(StatusCode::CONFLICT, &page);
                }
            }
            html(StatusCode::BAD_REQUEST, &page)
        }
    }
}
