//! WorkOS Directory Sync, as the official SDKs read it: directories, directory users and
//! groups, and `dsync.*` events, built from scimd's own tenants, members, directory groups
//! and events. A WorkOS directory (and its organization) is a scimd tenant; a directory
//! user is a member linked to a directory user of the IdP (a suspended member is
//! `inactive`; an archived or deleted one is gone, `dsync.user.deleted`); its role is the
//! member's role.
//!
//! Ids carry what they name: `directory_<tenant slug>`, `org_<tenant slug>`,
//! `directory_user_<SCIM user id>`, `directory_group_<SCIM group id>`, `event_<cursor>`.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::members::api_object;
use crate::db::events::{self, Event, EventType};
use crate::db::groups::{self, ListedGroup};
use crate::db::members::{self, MemberRow};
use crate::db::paging::Direction;
use crate::db::tenants::{self, Tenant};
use crate::db::{Conn, Db, DbError, users};
use crate::model::DirectoryUser;
use crate::scim::datetime;
use crate::scim::schema::ENTERPRISE_URN;

/// Why a request cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 422: a parameter is invalid.
    #[error("{0}")]
    Invalid(String),
    /// 404: no such object within the key's reach.
    #[error("{0}")]
    NotFound(String),
    /// 410: events after the cursor are no longer kept (retention, a restore).
    #[error("{0}")]
    Gone(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The order of a list (`order`): `asc`, `desc` (the default), or `normal` (descending, with
/// `before` reading older objects and `after` newer ones, in the query and in
/// `list_metadata` alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
    Normal,
}

impl std::str::FromStr for Order {
    type Err = Error;
    fn from_str(s: &str) -> Result<Order, Error> {
        match s {
            "asc" => Ok(Order::Asc),
            "desc" => Ok(Order::Desc),
            "normal" => Ok(Order::Normal),
            other => Err(Error::Invalid(format!(
                "order must be asc, desc or normal, not {other:?}"
            ))),
        }
    }
}

/// A page's cursor: after or before an object id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    First,
    After(String),
    Before(String),
}

/// A list request's paging.
#[derive(Debug, Clone)]
pub struct Paging {
    pub limit: usize,
    pub cursor: Cursor,
    pub order: Order,
}

/// A page: objects, and the ids to page from (`after` is `None` on the last page).
#[derive(Debug, Clone)]
pub struct Page {
    pub data: Vec<Value>,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// How to read a keyset page for `paging` whose cursor is at key `at`: the comparison and
/// order, and whether the rows come back reversed (a `before` page is read backwards).
fn direction(order: Order, cursor: &Cursor) -> (Direction, bool) {
    let (ascending_list, reading_after) = match (order, cursor) {
        (Order::Asc, Cursor::Before(_)) => (true, false),
        (Order::Asc, _) => (true, true),
        (Order::Desc, Cursor::Before(_)) | (Order::Normal, Cursor::After(_)) => (false, false),
        (Order::Desc | Order::Normal, _) => (false, true),
    };
    // Reading forward in a list ascending by key: keys greater than the cursor, ascending.
    let ascending = ascending_list == reading_after;
    (
        Direction {
            greater: ascending,
            ascending,
        },
        !reading_after,
    )
}

/// The keyset position of a cursor whose object is gone (the IdP deleted it between two
/// pages), from `next`, the pk of the first object after it: read on from there rather
/// than fail a walk an SDK is in the middle of.
fn stood_at(next: Option<i64>, d: Direction) -> i64 {
    match next {
        // Read forward: from `next` on; backward: what came before it.
        Some(pk) if d.greater => pk - 1,
        Some(pk) => pk,
        // Nothing after it: nothing more forward, everything backward.
        None => i64::MAX,
    }
}

/// Turns `limit + 1` rows read in `direction` into a page of ids.
fn page_of<T>(
    mut rows: Vec<T>,
    paging: &Paging,
    reversed: bool,
    id: impl Fn(&T) -> String,
    object: impl Fn(&T) -> Result<Option<Value>, Error>,
) -> Result<Page, Error> {
    let more = rows.len() > paging.limit;
    rows.truncate(paging.limit);
    if reversed {
        rows.reverse();
    }
    let first = rows.first().map(&id);
    let last = rows.last().map(&id);
    // Where the list goes on: `after` down the list, `before` back up it.
    let (up, down) = match (&paging.cursor, reversed) {
        (_, true) => (first.filter(|_| more), last),
        (Cursor::First, false) => (None, last.filter(|_| more)),
        (_, false) => (first, last.filter(|_| more)),
    };
    // `normal` reverses the cursors: `before` reads on down (older), `after` back up.
    let (before, after) = match paging.order {
        Order::Normal => (down, up),
        Order::Asc | Order::Desc => (up, down),
    };
    Ok(Page {
        // A row `object` passes over (its tenant is being deleted) still moves the cursors.
        data: rows
            .iter()
            .filter_map(|r| object(r).transpose())
            .collect::<Result<_, _>>()?,
        before,
        after,
    })
}

/// WorkOS timestamps: milliseconds and `Z` (`2024-01-01T00:00:00.000Z`).
fn ts(stored: &str) -> String {
    match stored.get(..23) {
        Some(head) => format!("{head}Z"),
        None => stored.to_string(),
    }
}

fn directory_id(t: &Tenant) -> String {
    format!("directory_{}", t.slug)
}

fn organization_id(t: &Tenant) -> String {
    format!("org_{}", t.slug)
}

/// The tenants a key reads, by id.
struct Reach {
    tenants: HashMap<i64, Tenant>,
    /// The key's tenant; `None` for a key of every tenant.
    only: Option<i64>,
}

impl Reach {
    fn load(conn: &Conn, only: Option<i64>) -> Result<Reach, DbError> {
        let tenants = tenants::list(conn)?
            .into_iter()
            .filter(|t| only.is_none_or(|o| o == t.id))
            .map(|t| (t.id, t))
            .collect();
        Ok(Reach { tenants, only })
    }

    fn tenant(&self, id: i64) -> Result<&Tenant, Error> {
        self.tenants
            .get(&id)
            .ok_or_else(|| Error::NotFound("Directory not found".into()))
    }

    /// The tenant a `directory_…` or `org_…` id names, within reach.
    fn named(&self, id: &str, prefix: &str, what: &str) -> Result<i64, Error> {
        id.strip_prefix(prefix)
            .and_then(|slug| self.tenants.values().find(|t| t.slug == slug))
            .map(|t| t.id)
            .ok_or_else(|| Error::NotFound(format!("{what} not found: '{id}'")))
    }

    /// The tenants a list reads: the one named, else every one in reach.
    fn scope(&self, named: Option<i64>) -> Option<i64> {
        named.or(self.only)
    }
}

fn directory_object(t: &Tenant) -> Value {
    json!({
        "object": "directory",
        "id": directory_id(t),
        "organization_id": organization_id(t),
        "external_key": t.slug,
        "type": "generic scim v2.0",
        "state": "linked",
        "name": t.name,
        "domain": null,
        "created_at": ts(&t.created_at),
        "updated_at": ts(&t.created_at),
    })
}

fn group_object(t: &Tenant, g: &ListedGroup) -> Value {
    json!({
        "object": "directory_group",
        "id": format!("directory_group_{}", g.id),
        "idp_id": g.data.get("externalId").and_then(Value::as_str).unwrap_or(&g.id),
        "directory_id": directory_id(t),
        "organization_id": organization_id(t),
        "name": g.data.get("displayName").and_then(Value::as_str).unwrap_or_default(),
        "created_at": ts(&g.created),
        "updated_at": ts(&g.last_modified),
        "raw_attributes": Value::Object(g.data.clone()),
    })
}

/// The WorkOS `state` of a member status.
fn state(status: &str) -> &'static str {
    match status {
        "active" => "active",
        _ => "inactive",
    }
}

/// WorkOS's predefined custom attributes of a directory user (its auto-mapped set:
/// `job_title`, `department_name`, `manager_email`, `addresses`…), from the IdP's record
/// `data`, for what it holds. WorkOS stopped filling `raw_attributes` on 2026-04-15 and
/// points apps here instead; an app written against it reads these. `manager_email` is
/// `manager_name` and `manager_email` are the manager's as the directory holds them now.
fn custom_attributes(
    conn: &Conn,
    tenant_id: i64,
    data: &Map<String, Value>,
) -> Result<Value, DbError> {
    let enterprise = data.get(ENTERPRISE_URN).and_then(Value::as_object);
    fn text(v: Option<&Value>) -> Option<&str> {
        v.and_then(Value::as_str).filter(|s| !s.is_empty())
    }
    let mut out = Map::new();
    let mut put = |name: &str, value: Option<&str>| {
        if let Some(v) = value {
            out.insert(name.into(), json!(v));
        }
    };
    put("username", text(data.get("userName")));
    put("display_name", text(data.get("displayName")));
    put("job_title", text(data.get("title")));
    put("employee_type", text(data.get("userType")));
    let field = |name: &str| text(enterprise.and_then(|e| e.get(name)));
    put("employee_number", field("employeeNumber"));
    put("organization", field("organization"));
    put("division_name", field("division"));
    put("department_name", field("department"));
    put("cost_center_name", field("costCenter"));
    let manager = enterprise
        .and_then(|e| text(e.get("manager").and_then(|m| m.get("value"))))
        .map(|id| users::get(conn, tenant_id, id))
        .transpose()?
        .flatten()
        .map(|row| DirectoryUser::from_data(&row.id, &row.data, Vec::new()));
    if let Some(m) = manager {
        let full_name = [m.given_name.as_deref(), m.family_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let name = m
            .display_name
            .clone()
            .or(Some(full_name).filter(|n| !n.is_empty()));
        put("manager_name", name.as_deref());
        put("manager_email", m.email.as_deref());
    }
    let list = |name: &str| {
        data.get(name)
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty())
    };
    if let Some(emails) = list("emails") {
        let emails: Vec<Value> = emails
            .iter()
            .map(|e| json!({"type": e.get("type"), "value": e.get("value"), "primary": e.get("primary").and_then(Value::as_bool).unwrap_or(false)}))
            .collect();
        out.insert("emails".into(), Value::Array(emails));
    }
    if let Some(addresses) = list("addresses") {
        let addresses: Vec<Value> = addresses
            .iter()
            .map(|a| {
                json!({
                    "type": a.get("type"),
                    "street_address": a.get("streetAddress"),
                    "locality": a.get("locality"),
                    "region": a.get("region"),
                    "postal_code": a.get("postalCode"),
                    "country": a.get("country"),
                    "raw_address": a.get("formatted"),
                    "primary": a.get("primary").and_then(Value::as_bool).unwrap_or(false),
                })
            })
            .collect();
        out.insert("addresses".into(), Value::Array(addresses));
    }
    Ok(Value::Object(out))
}

/// [`custom_attributes`] of the directory user `user_id` as the directory holds it now;
/// none when it is gone.
fn current_custom_attributes(conn: &Conn, tenant_id: i64, user_id: &str) -> Result<Value, DbError> {
    match users::get(conn, tenant_id, user_id)? {
        Some(row) => custom_attributes(conn, tenant_id, &row.data),
        None => Ok(json!({})),
    }
}

/// A directory user from a member as apps read it (`ops::members::api_object`), the IdP's
/// record of the user (`raw`, when still there), its [`custom_attributes`] and its groups
/// (`None`: not listed).
fn user_object(
    t: &Tenant,
    member: &Value,
    raw: Option<&Map<String, Value>>,
    custom: Value,
    groups: Option<Vec<Value>>,
) -> Value {
    let user_id = member["directory_user_id"].as_str().unwrap_or_default();
    // A member always has a role; a person whose member is gone has none to name.
    let (role, roles) = match &member["role"] {
        Value::Null => (Value::Null, json!([])),
        slug => (json!({"slug": slug}), json!([{"slug": slug}])),
    };
    // The full name: the IdP's displayName, else the name's parts.
    let name = match member["display_name"].as_str() {
        Some(n) if !n.is_empty() => Some(n.to_string()),
        _ => {
            let parts = [&member["given_name"], &member["family_name"]];
            let full: Vec<&str> = parts.iter().filter_map(|p| p.as_str()).collect();
            (!full.is_empty()).then(|| full.join(" "))
        }
    };
    let mut user = json!({
        "object": "directory_user",
        "id": format!("directory_user_{user_id}"),
        "name": name,
        "job_title": custom["job_title"],
        "idp_id": member["external_id"].as_str().unwrap_or(user_id),
        "directory_id": directory_id(t),
        "organization_id": organization_id(t),
        "email": member["email"],
        "first_name": member["given_name"],
        "last_name": member["family_name"],
        "username": member["user_name"],
        "emails": member["email"].as_str().map(|e| json!([{"primary": true, "type": "work", "value": e}])).unwrap_or(json!([])),
        "state": state(member["status"].as_str().unwrap_or("active")),
        "custom_attributes": custom,
        "raw_attributes": raw.cloned().map(Value::Object).unwrap_or(json!({})),
        "role": role,
        "roles": roles,
        "created_at": ts(member["created_at"].as_str().unwrap_or_default()),
        "updated_at": ts(member["updated_at"].as_str().unwrap_or_default()),
    });
    if let Some(groups) = groups {
        user["groups"] = Value::Array(groups);
    }
    user
}

/// Whether a directory user is answered with its `groups`: the older routes
/// (`/directory_users`) give them, the routes under a directory (`/directories/{id}/users`)
/// do not, as WorkOS answers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserShape {
    WithGroups,
    Plain,
}

/// A listed member as a directory user, with its groups if `shape` asks for them.
fn listed_user(
    conn: &Conn,
    reach: &Reach,
    m: &MemberRow,
    shape: UserShape,
) -> Result<Value, Error> {
    let t = reach.tenant(m.tenant_id)?;
    let member = api_object(conn, m.tenant_id, m)?;
    let raw = match &m.user_id {
        Some(id) => users::get(conn, m.tenant_id, id)?.map(|u| u.data),
        None => None,
    };
    let groups = match &m.user_id {
        _ if shape == UserShape::Plain => None,
        Some(uid) => Some(
            groups::listed_page(
                conn,
                Some(m.tenant_id),
                Some(uid),
                None,
                Direction {
                    greater: true,
                    ascending: true,
                },
                1000,
            )?
            .iter()
            .map(|g| group_object(t, g))
            .collect(),
        ),
        None => Some(Vec::new()),
    };
    let custom = match &raw {
        Some(data) => custom_attributes(conn, m.tenant_id, data)?,
        None => json!({}),
    };
    Ok(user_object(t, &member, raw.as_ref(), custom, groups))
}

/// What `GET /directories` narrows the list by (WorkOS's `organization_id`, `search`, a
/// piece of the name in any case, and `domain`).
#[derive(Debug, Default)]
pub struct DirectoryFilter {
    pub organization: Option<String>,
    pub search: Option<String>,
    pub domain: Option<String>,
}

/// `GET /directories`.
pub async fn directories(
    db: &Db,
    only: Option<i64>,
    filter: DirectoryFilter,
    paging: Paging,
) -> Result<Page, Error> {
    db.read(move |c| {
        let reach = Reach::load(c, only)?;
        let named = filter
            .organization
            .map(|o| reach.named(&o, "org_", "Organization"))
            .transpose()?;
        let search = filter.search.map(|s| s.to_lowercase());
        let mut list: Vec<&Tenant> = reach
            .tenants
            .values()
            .filter(|t| named.is_none_or(|n| n == t.id))
            .filter(|t| {
                search
                    .as_deref()
                    .is_none_or(|s| t.name.to_lowercase().contains(s))
            })
            // A directory here has no domain (`domain: null`): asking for one finds none.
            .filter(|_| filter.domain.is_none())
            .collect();
        list.sort_by_key(|t| t.id);
        let key = |id: &str| {
            list.iter()
                .find(|t| directory_id(t) == id)
                .map(|t| t.id)
                .ok_or_else(|| Error::Invalid(format!("no directory {id:?} to page from")))
        };
        let at = match &paging.cursor {
            Cursor::First => None,
            Cursor::After(id) | Cursor::Before(id) => Some(key(id)?),
        };
        let (d, reversed) = direction(paging.order, &paging.cursor);
        let mut rows: Vec<&Tenant> = list
            .iter()
            .copied()
            .filter(|t| at.is_none_or(|a| if d.greater { t.id > a } else { t.id < a }))
            .collect();
        if !d.ascending {
            rows.reverse();
        }
        rows.truncate(paging.limit + 1);
        page_of(
            rows,
            &paging,
            reversed,
            |t| directory_id(t),
            |t| Ok(Some(directory_object(t))),
        )
    })
    .await
}

/// `GET /directories/{id}`.
pub async fn directory(db: &Db, only: Option<i64>, id: String) -> Result<Value, Error> {
    db.read(move |c| {
        let reach = Reach::load(c, only)?;
        let tenant = reach.named(&id, "directory_", "Directory")?;
        Ok(directory_object(reach.tenant(tenant)?))
    })
    .await
}

/// `GET /directory_users`: in `directory` and/or directory group `group` when given
/// (`GET /directories/{directory}/users`, in `shape` [`UserShape::Plain`]).
pub async fn users(
    db: &Db,
    only: Option<i64>,
    directory: Option<String>,
    group: Option<String>,
    filter: UserFilter,
    paging: Paging,
    shape: UserShape,
) -> Result<Page, Error> {
    db.read(move |c| {
        let reach = Reach::load(c, only)?;
        let named = directory
            .map(|d| reach.named(&d, "directory_", "Directory"))
            .transpose()?;
        let (group_tenant, group_id) = match &group {
            Some(g) => {
                let id = g.strip_prefix("directory_group_").unwrap_or(g);
                let found = groups::listed(c, reach.scope(named), id)?
                    .filter(|f| reach.tenants.contains_key(&f.tenant_id))
                    .ok_or_else(|| Error::NotFound(format!("Directory Group not found: '{g}'")))?;
                (Some(found.tenant_id), Some(found.id))
            }
            None => (None, None),
        };
        let scope = reach.scope(named.or(group_tenant));
        let user_ids = match &filter.idp_id {
            Some(idp_id) => {
                let mut ids = Vec::new();
                for tenant in reach
                    .tenants
                    .keys()
                    .filter(|t| scope.is_none_or(|s| s == **t))
                {
                    ids.extend(users::ids_by_idp_id(c, *tenant, idp_id)?);
                }
                Some(ids)
            }
            None => None,
        };
        let narrowed = members::Only {
            email: filter.email,
            user_ids,
        };
        let (d, reversed) = direction(paging.order, &paging.cursor);
        let at = match &paging.cursor {
            Cursor::First => None,
            Cursor::After(id) | Cursor::Before(id) => {
                let uid = paged_from(id, "directory_user_", "directory user")?;
                Some(match members::by_user_id(c, scope, uid)? {
                    Some(m) => m.pk,
                    None => stood_at(members::pk_after_user_id(c, scope, uid)?, d),
                })
            }
        };
        let rows = members::linked_page(
            c,
            scope,
            group_id.as_deref(),
            &narrowed,
            at,
            d,
            paging.limit + 1,
        )?;
        let id =
            |m: &MemberRow| format!("directory_user_{}", m.user_id.clone().unwrap_or_default());
        page_of(rows, &paging, reversed, id, |m| {
            let gone = !reach.tenants.contains_key(&m.tenant_id);
            Ok(if gone {
                None
            } else {
                Some(listed_user(c, &reach, m, shape)?)
            })
        })
    })
    .await
}

/// `GET /directory_users`' filters on a user's own values (the SDKs' `email`, `idp_id`).
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// The primary email, any case.
    pub email: Option<String>,
    /// The IdP's identifier: the `externalId` (the user's id when it has none).
    pub idp_id: Option<String>,
}

/// `GET /directory_users/{id}`, or `GET /directories/{directory}/users/{id}` (in `shape`
/// [`UserShape::Plain`]), where a user of another directory is not found.
pub async fn user(
    db: &Db,
    only: Option<i64>,
    id: String,
    directory: Option<String>,
    shape: UserShape,
) -> Result<Value, Error> {
    db.lookup(move |c| {
        let reach = Reach::load(c, only)?;
        let named = directory
            .map(|d| reach.named(&d, "directory_", "Directory"))
            .transpose()?;
        let uid = id.strip_prefix("directory_user_").unwrap_or(&id);
        let m = members::by_user_id(c, reach.scope(named), uid)?
            .filter(|m| m.status.as_str() != "archived" && reach.tenants.contains_key(&m.tenant_id))
            .ok_or_else(|| Error::NotFound(format!("Directory User not found: '{id}'")))?;
        listed_user(c, &reach, &m, shape)
    })
    .await
}

/// `GET /directory_groups`: in `directory`, or those directory user `user` belongs to.
pub async fn groups(
    db: &Db,
    only: Option<i64>,
    directory: Option<String>,
    user: Option<String>,
    paging: Paging,
) -> Result<Page, Error> {
    db.read(move |c| {
        let reach = Reach::load(c, only)?;
        let named = directory
            .map(|d| reach.named(&d, "directory_", "Directory"))
            .transpose()?;
        let user_id = user.map(|u| u.strip_prefix("directory_user_").unwrap_or(&u).to_string());
        let scope = reach.scope(named);
        let (d, reversed) = direction(paging.order, &paging.cursor);
        let at = match &paging.cursor {
            Cursor::First => None,
            Cursor::After(id) | Cursor::Before(id) => {
                let gid = paged_from(id, "directory_group_", "directory group")?;
                Some(match groups::listed(c, scope, gid)? {
                    Some(g) => g.pk,
                    None => stood_at(groups::pk_after_id(c, scope, gid)?, d),
                })
            }
        };
        let rows = groups::listed_page(c, scope, user_id.as_deref(), at, d, paging.limit + 1)?;
        let id = |g: &ListedGroup| format!("directory_group_{}", g.id);
        page_of(rows, &paging, reversed, id, |g| {
            Ok(reach.tenants.get(&g.tenant_id).map(|t| group_object(t, g)))
        })
    })
    .await
}

/// `GET /directory_groups/{id}`, or `GET /directories/{directory}/groups/{id}`, where a
/// group of another directory is not found.
pub async fn group(
    db: &Db,
    only: Option<i64>,
    id: String,
    directory: Option<String>,
) -> Result<Value, Error> {
    db.read(move |c| {
        let reach = Reach::load(c, only)?;
        let named = directory
            .map(|d| reach.named(&d, "directory_", "Directory"))
            .transpose()?;
        let gid = id.strip_prefix("directory_group_").unwrap_or(&id);
        let g = groups::listed(c, reach.scope(named), gid)?
            .filter(|g| reach.tenants.contains_key(&g.tenant_id))
            .ok_or_else(|| Error::NotFound(format!("Directory Group not found: '{id}'")))?;
        Ok(group_object(reach.tenant(g.tenant_id)?, &g))
    })
    .await
}

// --- Events ---------------------------------------------------------------------------------

/// The WorkOS event names scimd emits, and the scimd events each stands for.
const EVENT_NAMES: &[(&str, &[EventType])] = &[
    ("dsync.user.created", &[EventType::MemberCreated]),
    (
        "dsync.user.updated",
        &[
            EventType::MemberUpdated,
            EventType::MemberRoleChanged,
            EventType::MemberSuspended,
            EventType::MemberReactivated,
        ],
    ),
    (
        "dsync.user.deleted",
        &[EventType::MemberArchived, EventType::MemberDeleted],
    ),
    ("dsync.group.created", &[EventType::GroupCreated]),
    ("dsync.group.updated", &[EventType::GroupUpdated]),
    ("dsync.group.deleted", &[EventType::GroupDeleted]),
    ("dsync.group.user_added", &[EventType::GroupMemberAdded]),
    ("dsync.group.user_removed", &[EventType::GroupMemberRemoved]),
    ("dsync.deleted", &[EventType::TenantDeleted]),
];

/// The WorkOS name of event `e`, its scimd event object `object`: a member linked to a new
/// directory user (the IdP deleted the person and created them anew, and scimd matched
/// the member again) is a user WorkOS apps have never seen: `dsync.user.created`.
fn event_name(e: &Event, object: &Value) -> &'static str {
    match e.kind {
        EventType::MemberUpdated if object["previous"].get("directory_user_id").is_some() => {
            "dsync.user.created"
        }
        kind => workos_name(kind),
    }
}

/// The scimd event types a WorkOS event `name` is rendered from (a `dsync.user.created` may
/// be a relinking `member.updated`: [`event_name`]); `None` for a name scimd never emits.
pub fn native_kinds(name: &str) -> Option<Vec<EventType>> {
    let (_, kinds) = EVENT_NAMES.iter().find(|(n, _)| *n == name)?;
    let mut kinds = kinds.to_vec();
    if name == "dsync.user.created" {
        kinds.push(EventType::MemberUpdated);
    }
    Some(kinds)
}

fn workos_name(kind: EventType) -> &'static str {
    EVENT_NAMES
        .iter()
        .find(|(_, kinds)| kinds.contains(&kind))
        .map(|(name, _)| *name)
        .expect("every event type has a WorkOS name")
}

/// The WorkOS names of `previous` values of a member or a group.
fn previous_attributes(previous: &Value) -> Value {
    let Value::Object(p) = previous else {
        return json!({});
    };
    let mut out = Map::new();
    for (k, v) in p {
        let (name, value) = match k.as_str() {
            "status" => ("state", json!(state(v.as_str().unwrap_or("active")))),
            "given_name" => ("first_name", v.clone()),
            "family_name" => ("last_name", v.clone()),
            "user_name" => ("username", v.clone()),
            "email" => ("email", v.clone()),
            "role" => ("role", json!({"slug": v})),
            "external_id" => ("idp_id", v.clone()),
            "display_name" => ("name", v.clone()),
            "attributes" => ("custom_attributes", previous_custom_attributes(v)),
            _ => continue,
        };
        out.insert(name.into(), value);
    }
    Value::Object(out)
}

/// A member event's `previous.attributes` (SCIM's names) as the `custom_attributes` they
/// feed; a manager's id has no such attribute of its own (the manager's name and email do,
/// as they are now).
fn previous_custom_attributes(attributes: &Value) -> Value {
    let mut out = Map::new();
    for (name, v) in attributes.as_object().into_iter().flatten() {
        let custom = match name.as_str() {
            "title" => "job_title",
            "userType" => "employee_type",
            "employeeNumber" => "employee_number",
            "organization" => "organization",
            "division" => "division_name",
            "department" => "department_name",
            "costCenter" => "cost_center_name",
            _ => continue,
        };
        out.insert(custom.into(), v.clone());
    }
    Value::Object(out)
}

/// A group as a `dsync.group.*` event names it, from the scimd event's `data`, created when
/// the group was (the event's time, once the group is gone) and updated by the event. Its
/// `idp_id` is the one `/directory_groups` gives: the externalId its events stored
/// (membership events stored before 2026-12 name the group only), else the group's now,
/// else its id.
fn event_group(conn: &Conn, t: &Tenant, stored: &Value, at: &str) -> Result<Value, DbError> {
    let id = stored["id"].as_str().unwrap_or_default();
    let row = groups::get(conn, t.id, id)?;
    let created = row
        .as_ref()
        .map_or_else(|| at.to_string(), |g| ts(&g.created));
    let idp_id = stored
        .get("external_id")
        .and_then(Value::as_str)
        .or_else(|| row.as_ref()?.data.get("externalId")?.as_str())
        .unwrap_or(id)
        .to_string();
    Ok(json!({
        "object": "directory_group",
        "id": format!("directory_group_{id}"),
        "idp_id": idp_id,
        "directory_id": directory_id(t),
        "organization_id": organization_id(t),
        "name": stored["display_name"],
        "created_at": created,
        "updated_at": at,
        "raw_attributes": row.map_or_else(|| json!({}), |g| Value::Object(g.data)),
    }))
}

/// The WorkOS event of a scimd event; `None` for a member event about a person the IdP
/// never had (a manual or CSV member: not a directory user).
pub fn event_object(conn: &Conn, t: &Tenant, e: &Event) -> Result<Option<Value>, DbError> {
    if matches!(
        e.kind,
        EventType::DeprovisioningHeld | EventType::DeprovisioningResolved
    ) {
        // scimd's own guard; WorkOS has no such event.
        return Ok(None);
    }
    if e.kind == EventType::TenantDeleted {
        return Ok(Some(deleted_directory(e)));
    }
    let object = super::events::object(e);
    let at = ts(&e.created_at);
    let data = match e.kind {
        EventType::GroupCreated | EventType::GroupUpdated | EventType::GroupDeleted => {
            let mut group = event_group(conn, t, &object["data"], &at)?;
            if e.kind == EventType::GroupUpdated {
                group["previous_attributes"] = previous_attributes(&object["previous"]);
            }
            group
        }
        EventType::GroupMemberAdded | EventType::GroupMemberRemoved
            if e.payload["user"].get("memberId") == Some(&Value::Null) =>
        {
            // The person had no member then (created inactive, or in test mode): no
            // directory user WorkOS apps could read, so no membership of one either.
            return Ok(None);
        }
        EventType::GroupMemberAdded | EventType::GroupMemberRemoved => {
            let stored_user = &object["data"]["user"];
            let uid = stored_user["id"].as_str().unwrap_or_default();
            // The member as it is now; its directory user's externalId as the event stored
            // it, for the user row may be gone.
            let mut member = match members::by_user_id(conn, Some(t.id), uid)? {
                Some(m) => api_object(conn, t.id, &m)?,
                None => match users::get(conn, t.id, uid)? {
                    // No member (test mode makes none): the directory user as stored.
                    Some(row) => {
                        let u = DirectoryUser::from_data(&row.id, &row.data, Vec::new());
                        json!({"directory_user_id": uid, "email": u.email,
                               "user_name": u.user_name, "given_name": u.given_name,
                               "family_name": u.family_name, "external_id": u.external_id,
                               "status": if u.active == Some(false) { "suspended" } else { "active" },
                               "role": null, "created_at": row.created,
                               "updated_at": row.last_modified})
                    }
                    // Neither is left: what the event stored of the person.
                    None => json!({"directory_user_id": uid, "email": stored_user["user_name"],
                                   "user_name": stored_user["user_name"], "status": "archived",
                                   "role": null, "created_at": e.created_at,
                                   "updated_at": e.created_at}),
                },
            };
            if member["external_id"].is_null() {
                member["external_id"] = stored_user["external_id"].clone();
            }
            let custom = current_custom_attributes(conn, t.id, uid)?;
            let user = user_object(t, &member, None, custom, None);
            json!({
                "directory_id": directory_id(t),
                "user": user,
                "group": event_group(conn, t, &object["data"]["group"], &at)?,
            })
        }
        _ => {
            let member = &object["data"];
            if member["directory_user_id"].is_null() {
                return Ok(None);
            }
            let uid = member["directory_user_id"].as_str().unwrap_or_default();
            let custom = current_custom_attributes(conn, t.id, uid)?;
            let mut user = user_object(t, member, None, custom, None);
            if matches!(e.kind, EventType::MemberArchived | EventType::MemberDeleted) {
                user["state"] = json!("inactive");
            }
            // A person created anew: the member is linked first, then reactivated by the
            // same write; the user WorkOS apps hear of is created as it is after both.
            if event_name(e, &object) == "dsync.user.created"
                && e.kind == EventType::MemberUpdated
                && events::get(conn, e.tenant_id, e.seq + 1)?.is_some_and(|next| {
                    next.kind == EventType::MemberReactivated
                        && next.subject == e.subject
                        && next.request_id == e.request_id
                })
            {
                user["state"] = json!("active");
            }
            if event_name(e, &object) == "dsync.user.updated" {
                user["previous_attributes"] = previous_attributes(&object["previous"]);
            }
            user
        }
    };
    Ok(Some(envelope(e, event_name(e, &object), data)))
}

fn envelope(e: &Event, name: &str, data: Value) -> Value {
    json!({
        "object": "event",
        "id": format!("event_{}", e.cursor),
        "event": name,
        "data": data,
        "created_at": ts(&e.created_at),
    })
}

/// `dsync.deleted` of a deleted tenant, from what its `tenant.deleted` event kept of it: the
/// directory as it was, `deleting`, without the `domains` and `external_key` WorkOS leaves
/// out of this event.
fn deleted_directory(e: &Event) -> Value {
    let t = &e.payload["tenant"];
    let mut directory = match serde_json::from_value::<Tenant>(t.clone()) {
        Ok(t) => directory_object(&t),
        Err(_) => json!({"object": "directory"}),
    };
    if let Value::Object(d) = &mut directory {
        d.remove("external_key");
        d.remove("domain");
        d.insert("state".into(), json!("deleting"));
        d.insert("updated_at".into(), json!(ts(&e.created_at)));
    }
    envelope(e, "dsync.deleted", directory)
}

/// `GET /events`'s parameters.
#[derive(Debug, Clone)]
pub struct EventQuery {
    /// WorkOS event names; empty: every one.
    pub events: Vec<String>,
    pub after: Option<String>,
    /// The page before this event id, in the list's order (with no `after`).
    pub before: Option<String>,
    pub limit: usize,
    pub range_start: Option<String>,
    pub range_end: Option<String>,
    pub organization: Option<String>,
    pub order: Order,
}

/// The id a list cursor names (with or without its `prefix`): one of an object this list
/// showed, which may have gone since (a walk goes on from where it stood), but an id all
/// the same. Anything else is a mistake to answer, not a place in the list.
fn paged_from<'a>(cursor: &'a str, prefix: &str, what: &str) -> Result<&'a str, Error> {
    let id = cursor.strip_prefix(prefix).unwrap_or(cursor);
    match uuid::Uuid::try_parse(id) {
        Ok(_) => Ok(id),
        Err(_) => Err(Error::Invalid(format!(
            "{cursor:?} is not a {what} id to page from"
        ))),
    }
}

/// Whether the events after `event_<n>` can be read on without passing over any no longer
/// kept, as `/api/v1/events` answers too: 410 when retention purged (or a restore undid)
/// events of the scope after it, 422 when it is past the newest event. Going on in silence
/// would hide the deprovisionings an app missed.
fn resumable(c: &Conn, reach: &Reach, scope: Option<i64>, n: i64, upto: i64) -> Result<(), Error> {
    let list_again =
        "list the directory's users and groups again, then read events from the newest";
    let in_scope = reach
        .tenants
        .keys()
        .filter(|t| scope.is_none_or(|s| s == **t));
    for t in in_scope {
        if n < events::purged_cursor(c, *t)? {
            return Err(Error::Gone(format!(
                "events after event_{n} are no longer kept (event retention, or a restored backup): {list_again}"
            )));
        }
    }
    let newest = events::newest_cursor(c)?.min(upto);
    if n > newest {
        return Err(Error::Invalid(format!(
            "after event_{n} is past the newest event (event_{newest}): {list_again}"
        )));
    }
    Ok(())
}

/// WorkOS's Directory Sync events that scimd does not emit: a tenant is linked from the
/// moment it exists (`dsync.deleted` is emitted: [`deleted_directory`]).
const NEVER_EMITTED: &[&str] = &["dsync.activated"];

/// Whether `name` has the shape of a WorkOS event name: dotted lower-case words
/// (`dsync.group.user_added`, `authentication.email_verification_succeeded`).
fn is_event_name(name: &str) -> bool {
    let mut words = name.split('.');
    name.contains('.')
        && words.all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

/// `GET /events`: the `dsync.*` events of the key's tenants, oldest first unless `order`
/// says otherwise, paged by `after` (the last event id seen) or back by `before` (the first).
pub async fn list_events(db: &Db, only: Option<i64>, q: EventQuery) -> Result<Page, Error> {
    let mut kinds = Vec::new();
    for name in &q.events {
        match EVENT_NAMES.iter().find(|(n, _)| n == name) {
            Some((_, k)) => {
                kinds.extend_from_slice(k);
                if *name == "dsync.user.created" {
                    // A member the IdP pushed again under a new directory user ([`event_name`]).
                    kinds.push(EventType::MemberUpdated);
                }
            }
            // Another WorkOS product's event (`user.created`, `connection.activated`…),
            // or a Directory Sync one scimd never emits (the SDKs' lists of dsync events
            // name them): an app that reads several products' events from one stream asks
            // for them all, and gets the directory's. A `dsync.*` name WorkOS does not
            // have is a typo that would match nothing forever.
            None if NEVER_EMITTED.contains(&name.as_str()) => {}
            None if is_event_name(name) && !name.starts_with("dsync.") => {}
            None => {
                return Err(Error::Invalid(format!("unknown event type {name:?}")));
            }
        }
    }
    if !q.events.is_empty() && kinds.is_empty() {
        return Ok(Page {
            data: Vec::new(),
            before: None,
            after: None,
        });
    }
    let time = |t: &Option<String>, name: &str| {
        t.as_deref()
            .map(|v| {
                datetime::canonical(v)
                    .ok_or_else(|| Error::Invalid(format!("{name} must be an ISO 8601 date-time")))
            })
            .transpose()
    };
    let (since, until) = (
        time(&q.range_start, "range_start")?,
        time(&q.range_end, "range_end")?,
    );
    let event_id = |v: &Option<String>, name: &str| {
        v.as_deref()
            .map(|a| {
                a.strip_prefix("event_")
                    .and_then(|n| n.parse::<i64>().ok())
                    .ok_or_else(|| Error::Invalid(format!("{name} {a:?} is not an event id")))
            })
            .transpose()
    };
    let (after, before) = (event_id(&q.after, "after")?, event_id(&q.before, "before")?);
    // Back from `before`: read away from it, nearest first, and turn the page round.
    let backwards = before.is_some();
    let upto = db.durable_cursor();
    db.read(move |c| {
        let reach = Reach::load(c, only)?;
        let named = q
            .organization
            .as_deref()
            .map(|o| reach.named(o, "org_", "Organization"))
            .transpose()?;
        let scope = reach.scope(named);
        if let Some(n) = after {
            resumable(c, &reach, scope, n, upto)?;
        }
        let ascending = (q.order == Order::Asc) != backwards;
        let mut data = Vec::new();
        let mut cursor = after.or(before);
        // Member events about people the IdP never had are not directory events: read on
        // until the page is full or the feed ends.
        let more = loop {
            let want = q.limit - data.len();
            let page = events::FeedPage {
                tenant_id: scope,
                types: &kinds,
                since: since.as_deref(),
                until: until.as_deref(),
                cursor,
                direction: Direction {
                    greater: ascending,
                    ascending,
                },
                limit: want as u32 + 1,
                upto,
            };
            let rows = events::across(c, &page)?;
            let extra = rows.len() > want;
            for e in rows.iter().take(want) {
                cursor = Some(e.cursor);
                let object = match reach.tenants.get(&e.tenant_id) {
                    Some(t) => event_object(c, t, e)?,
                    // A deleted tenant's one event that outlives it, for a key of every
                    // tenant, like a WorkOS environment's.
                    None if e.kind == EventType::TenantDeleted && reach.only.is_none() => {
                        Some(deleted_directory(e))
                    }
                    // A tenant being deleted is out of reach: its events are not read.
                    None => None,
                };
                if let Some(o) = object {
                    let asked = q.events.is_empty() || q.events.iter().any(|n| o["event"] == *n);
                    if asked {
                        data.push(o);
                    }
                }
            }
            if !extra {
                break false;
            }
            if data.len() >= q.limit {
                break true;
            }
        };
        if backwards {
            data.reverse();
        }
        let id = |e: Option<&Value>| e.and_then(|e| e["id"].as_str().map(str::to_string));
        // A page has a page before it when it was reached from one (`after`) or more lies
        // beyond it going back, and one after it when more lies ahead or it came back
        // from one (`before`).
        let (has_before, has_after) = if backwards {
            (more, true)
        } else {
            (after.is_some(), more)
        };
        Ok(Page {
            before: id(data.first()).filter(|_| has_before),
            after: id(data.last()).filter(|_| has_after),
            data,
        })
    })
    .await
}
