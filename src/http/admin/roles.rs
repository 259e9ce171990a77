//! Roles: the ordered role list, the default role, the reserved group-name prefix and the
//! custom group → role mappings, each change previewed before it is saved.
//!
//! A preview plans the whole tenant under the edited settings without saving them
//! (`ops::settings::preview`): exactly the re-evaluation that saving runs
//! (`ops::settings::edit`, as `scimd roles …` does), so what the preview lists is what
//! Save applies — unless the directory changed in between, in which case Save applies the
//! plan of that moment, as any sync does.

use askama::Template;

use super::sync::{Count, summary};
use super::{
    Form, Layout, PageResult, Req, UiError, html, layout, page_status, redirect_with_flash,
};
use crate::db::{self, DbError, settings, tenants::Tenant};
use crate::http::State;
use crate::ops;
use crate::ops::reconcile::SyncRun;
use crate::ops::settings::{Edit as SettingsEdit, Update};
use crate::sync::report::Report;
use crate::sync::{ChangeKind, Field, Role, Settings};

/// How many directory groups the mapping picker offers; others are typed in.
const PICKER_GROUPS: usize = 500;
/// How many role changes a preview lists.
const PREVIEW_ROWS: usize = 200;

/// One role as the page lists it.
struct RoleRow {
    role: Role,
    /// The group name that always gives this role.
    reserved_group: String,
    /// Custom groups mapped to it.
    mapped: Vec<String>,
    /// Members holding it, whatever their status.
    members: i64,
    is_default: bool,
}

/// What the forms show: the saved settings, or what the admin just submitted.
struct Inputs {
    /// One role per line, highest first.
    roles: String,
    default_role: String,
    role_prefix: String,
    map_group: String,
    map_role: String,
}

impl Inputs {
    fn of(s: &Settings) -> Inputs {
        Inputs {
            roles: s
                .roles
                .iter()
                .map(Role::as_str)
                .collect::<Vec<_>>()
                .join("\n"),
            default_role: s.default_role.to_string(),
            role_prefix: s.role_prefix.clone(),
            map_group: String::new(),
            map_role: String::new(),
        }
    }
}

/// One member whose role would change.
struct PreviewRow {
    subject: String,
    member_id: String,
    from: String,
    to: String,
    reason: String,
}

/// The consequences of an edit, shown before it is saved.
struct Preview {
    /// The edit in words.
    what: String,
    /// Where Save posts, and the fields that repeat the edit.
    action: &'static str,
    fields: Vec<(&'static str, String)>,
    changes: Vec<PreviewRow>,
    /// Role changes beyond those listed.
    hidden: usize,
    /// Members who keep their role but with another explanation (e.g. another group).
    reexplained: usize,
    test_mode: bool,
}

#[derive(Template)]
#[template(path = "roles.html")]
struct RolesPage {
    layout: Layout,
    csrf: String,
    settings: Settings,
    rows: Vec<RoleRow>,
    /// Directory groups the picker offers (reserved names left out: they cannot be mapped).
    groups: Vec<String>,
    more_groups: bool,
    inputs: Inputs,
    error: Option<String>,
    preview: Option<Preview>,
}

impl RolesPage {
    /// The submitted group name when the picker does not offer it: it goes back in the
    /// free-text field.
    fn typed_group(&self) -> &str {
        let g = &self.inputs.map_group;
        if self.groups.contains(g) { "" } else { g }
    }
}

/// A change to the role settings, as submitted by one of the page's forms.
#[derive(Clone)]
enum Edit {
    Roles {
        roles: Vec<Role>,
        default_role: Role,
        role_prefix: String,
    },
    Map {
        group: String,
        role: Role,
    },
    Unmap {
        group: String,
    },
}

impl Edit {
    /// The settings edit this form submits: the one `scimd roles …` makes too.
    fn op(&self) -> SettingsEdit {
        match self {
            Edit::Roles {
                roles,
                default_role,
                role_prefix,
            } => SettingsEdit::Update(Update {
                roles: Some(roles.clone()),
                default_role: Some(default_role.clone()),
                role_prefix: Some(role_prefix.clone()),
                ..Update::default()
            }),
            Edit::Map { group, role } => SettingsEdit::Map {
                group: group.clone(),
                role: role.clone(),
            },
            Edit::Unmap { group } => SettingsEdit::Unmap {
                group: group.clone(),
            },
        }
    }

    fn describe(&self) -> String {
        match self {
            Edit::Roles {
                roles,
                default_role,
                role_prefix,
            } => {
                let list: Vec<&str> = roles.iter().map(Role::as_str).collect();
                format!(
                    "Roles {} (highest first), default role {default_role}, reserved prefix {role_prefix}",
                    list.join(" > ")
                )
            }
            Edit::Map { group, role } => format!("Members of group {group} get role {role}"),
            Edit::Unmap { group } => format!("Group {group} no longer gives a role"),
        }
    }

    /// Where the form posts and the fields that repeat this edit on Save.
    fn form(&self) -> (&'static str, Vec<(&'static str, String)>) {
        match self {
            Edit::Roles {
                roles,
                default_role,
                role_prefix,
            } => (
                "",
                vec![
                    (
                        "roles",
                        roles
                            .iter()
                            .map(Role::as_str)
                            .collect::<Vec<_>>()
                            .join("\n"),
                    ),
                    ("default_role", default_role.to_string()),
                    ("role_prefix", role_prefix.clone()),
                ],
            ),
            Edit::Map { group, role } => (
                "/map",
                vec![("group_other", group.clone()), ("role", role.to_string())],
            ),
            Edit::Unmap { group } => ("/unmap", vec![("group", group.clone())]),
        }
    }

    /// Puts the submitted values back into the form they came from.
    fn keep_in(&self, inputs: &mut Inputs) {
        match self {
            Edit::Roles { .. } => {
                for (k, v) in self.form().1 {
                    match k {
                        "roles" => inputs.roles = v,
                        "default_role" => inputs.default_role = v,
                        _ => inputs.role_prefix = v,
                    }
                }
            }
            Edit::Map { group, role } => {
                inputs.map_group = group.clone();
                inputs.map_role = role.to_string();
            }
            Edit::Unmap { .. } => {}
        }
    }
}

async fn render(
    state: &State,
    req: &Req,
    tenant: &Tenant,
    inputs: Option<Inputs>,
    error: Option<String>,
    preview: Option<Preview>,
) -> PageResult {
    let s = req.session()?;
    let id = tenant.id;
    let (settings, counts, (names, more_groups)) = state
        .db
        .read(move |c| {
            Ok::<_, DbError>((
                settings::get(c, id)?,
                db::members::counts_by_status_and_role(c, id)?,
                db::groups::display_names(c, id, PICKER_GROUPS)?,
            ))
        })
        .await?;
    let rows = settings
        .roles
        .iter()
        .map(|role| RoleRow {
            role: role.clone(),
            reserved_group: format!("{}{role}", settings.role_prefix),
            mapped: settings
                .mappings
                .iter()
                .filter(|m| &m.role == role)
                .map(|m| m.group.clone())
                .collect(),
            members: counts
                .iter()
                .filter(|(_, r, _)| r == role)
                .map(|(_, _, n)| n)
                .sum(),
            is_default: *role == settings.default_role,
        })
        .collect();
    let groups = names
        .into_iter()
        .filter(|g| settings.reserved_role(g).is_none())
        .collect();
    let status = page_status(error.is_some());
    let page = RolesPage {
        layout: layout(state, req, Some(tenant), "roles").await?,
        csrf: s.session.csrf.clone(),
        inputs: inputs.unwrap_or_else(|| Inputs::of(&settings)),
        settings,
        rows,
        groups,
        more_groups,
        error,
        preview,
    };
    html(status, &page)
}

pub(super) async fn page(state: &State, req: &Req, tenant: &Tenant) -> PageResult {
    render(state, req, tenant, None, None, None).await
}

/// The role list (one per line or comma-separated, highest first), the default role and
/// the prefix, as the roles form submits them; `Err` names the role that is not valid.
pub(crate) fn roles_of(form: &Form) -> Result<(Vec<Role>, Role, String), String> {
    let roles = form
        .get("roles")
        .split(['\n', ','])
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::parse)
        .collect::<Result<Vec<Role>, String>>()?;
    let default_role = form.trimmed("default_role").parse::<Role>()?;
    let role_prefix = form.trimmed("role_prefix").to_string();
    Ok((roles, default_role, role_prefix))
}

/// The role list, default role and prefix form.
pub(super) async fn update(state: &State, req: &mut Req, tenant: &Tenant) -> PageResult {
    let form = req.form(state).await?;
    let edit = roles_of(&form).map(|(roles, default_role, role_prefix)| Edit::Roles {
        roles,
        default_role,
        role_prefix,
    });
    let fallback = Inputs {
        roles: form.get("roles").to_string(),
        default_role: form.trimmed("default_role").to_string(),
        role_prefix: form.trimmed("role_prefix").to_string(),
        map_group: String::new(),
        map_role: String::new(),
    };
    submit(state, req, tenant, &form, edit, fallback).await
}

/// Adds or replaces a custom mapping.
pub(super) async fn map(state: &State, req: &mut Req, tenant: &Tenant) -> PageResult {
    let form = req.form(state).await?;
    let group = match form.trimmed("group_other") {
        "" => form.trimmed("group"),
        typed => typed,
    }
    .to_string();
    let edit = match form.trimmed("role") {
        _ if group.is_empty() => Err("Choose a group, or type the name of one.".to_string()),
        "" => Err("Choose the role the group gives.".to_string()),
        role => role.parse::<Role>().map(|role| Edit::Map {
            group: group.clone(),
            role,
        }),
    };
    let current = current_inputs(state, tenant).await?;
    let fallback = Inputs {
        map_group: group,
        map_role: form.trimmed("role").to_string(),
        ..current
    };
    submit(state, req, tenant, &form, edit, fallback).await
}

/// Removes a custom mapping.
pub(super) async fn unmap(state: &State, req: &mut Req, tenant: &Tenant) -> PageResult {
    let form = req.form(state).await?;
    let edit = Ok(Edit::Unmap {
        group: form.trimmed("group").to_string(),
    });
    let fallback = current_inputs(state, tenant).await?;
    submit(state, req, tenant, &form, edit, fallback).await
}

async fn current_inputs(state: &State, tenant: &Tenant) -> Result<Inputs, UiError> {
    let id = tenant.id;
    let s = state.db.read(move |c| settings::get(c, id)).await?;
    Ok(Inputs::of(&s))
}

/// Previews (`action=preview`) or saves (`action=save`) an edit; a bad edit is shown on
/// the page with what was typed.
async fn submit(
    state: &State,
    req: &Req,
    tenant: &Tenant,
    form: &Form,
    edit: Result<Edit, String>,
    fallback: Inputs,
) -> PageResult {
    let edit = match edit {
        Ok(e) => e,
        Err(message) => {
            return render(state, req, tenant, Some(fallback), Some(message), None).await;
        }
    };
    let mut inputs = fallback;
    edit.keep_in(&mut inputs);
    if form.get("action") == "save" {
        let saved = ops::settings::edit(&state.db, &req.actor()?, tenant.id, edit.op()).await;
        if let Ok(ops::settings::Saved { run: Some(run), .. }) = &saved {
            state.metrics.sync_run(run);
        }
        let message = match saved {
            Ok(saved) if !saved.changed => {
                "Nothing to save: that is the current setting.".to_string()
            }
            Ok(saved) => saved_message(saved.run.as_ref()),
            Err(DbError::Conflict(m)) => {
                return render(state, req, tenant, Some(inputs), Some(m), None).await;
            }
            Err(e) => return Err(e.into()),
        };
        return Ok(redirect_with_flash(
            req,
            &format!("/t/{}/roles", tenant.slug),
            &message,
        ));
    }
    match preview(state, tenant, &edit).await? {
        Ok(preview) => render(state, req, tenant, Some(inputs), None, Some(preview)).await,
        Err(message) => render(state, req, tenant, Some(inputs), Some(message), None).await,
    }
}

fn saved_message(run: Option<&SyncRun>) -> String {
    let Some(run) = run else {
        return "Saved.".into();
    };
    let counts: Vec<Count> = [ChangeKind::RoleChange, ChangeKind::Update]
        .into_iter()
        .map(|k| Count {
            label: if k == ChangeKind::Update {
                "Explanation updated"
            } else {
                "Role change"
            },
            n: run.report.counts.get(k),
        })
        .collect();
    if run.test_mode {
        format!(
            "Saved. Test mode is on, so no member's role changed ({} in the dry run); the sync page shows what a sync would do.",
            summary(&counts)
        )
    } else {
        format!("Saved; roles re-evaluated: {}.", summary(&counts))
    }
}

/// Plans under the edited settings without saving them; `Err` says why they are invalid.
async fn preview(
    state: &State,
    tenant: &Tenant,
    edit: &Edit,
) -> Result<Result<Preview, String>, UiError> {
    let (what, (action, fields)) = (edit.describe(), edit.form());
    let planned = ops::settings::preview(&state.db, tenant.id, edit.op())
        .await?
        .map(|(after, report)| (report, after.test_mode));
    let (report, test_mode): (Report, bool) = match planned {
        Ok(p) => p,
        Err(m) => return Ok(Err(m)),
    };
    let mut changes: Vec<PreviewRow> = report
        .changes
        .get(&ChangeKind::RoleChange)
        .into_iter()
        .flatten()
        .map(|e| {
            let role = e.fields.iter().find(|f| f.field == Field::Role);
            PreviewRow {
                subject: e.subject.clone(),
                member_id: e.member_id.clone().unwrap_or_default(),
                from: role.and_then(|f| f.before.clone()).unwrap_or_default(),
                to: role.and_then(|f| f.after.clone()).unwrap_or_default(),
                reason: e.reason.clone().unwrap_or_default(),
            }
        })
        .collect();
    let total = changes.len();
    changes.truncate(PREVIEW_ROWS);
    Ok(Ok(Preview {
        what,
        action,
        fields,
        hidden: total - changes.len(),
        changes,
        reexplained: report.counts.get(ChangeKind::Update),
        test_mode,
    }))
}
