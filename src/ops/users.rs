//! The SCIM writes of Users (RFC 7644 §3.3–3.6), each in one transaction with its sync
//! hook and its audit entry, and the reads that gather what a User response shows.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::Error;
use super::lists::Resumes;
use super::members;
use super::reconcile;
use super::resource::{Stored, Write, audited, write_existing};
use crate::db::paging::Listed;
use crate::db::users::{self, GroupRef, StoredUser, UserRow};
use crate::db::{Conn, Db, DbError, ListQuery, Page, Scan};
use crate::model::Actor;
use crate::scim::patch::{self, Operation};
use crate::scim::resource::{self, Preconditions, StoredMembers};
use crate::scim::schema::{ENTERPRISE_URN, ResourceType, USER_RESOURCE};

/// What a User response shows: the stored user, its direct groups, and the managers it
/// names that the directory holds (see [`resource::show_manager`]).
#[derive(Debug, Clone)]
pub struct UserView {
    pub row: UserRow,
    pub groups: Vec<GroupRef>,
    pub managers: HashSet<String>,
}

fn managers_of<'r>(
    conn: &Conn,
    tenant_id: i64,
    ids: impl IntoIterator<Item = &'r str>,
) -> Result<HashSet<String>, DbError> {
    let ids: Vec<&str> = ids.into_iter().collect();
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    users::existing_ids(conn, tenant_id, &ids)
}

/// User `pk`'s direct groups if `want_groups`, for its response.
fn groups_shown(conn: &Conn, pk: i64, want_groups: bool) -> Result<Vec<GroupRef>, DbError> {
    if !want_groups {
        return Ok(Vec::new());
    }
    Ok(users::groups_of(conn, &[pk])?
        .remove(&pk)
        .unwrap_or_default())
}

/// `row` with what its response shows; its groups only if `want_groups`.
fn view(conn: &Conn, tenant_id: i64, row: UserRow, want_groups: bool) -> Result<UserView, DbError> {
    let groups = groups_shown(conn, row.pk, want_groups)?;
    let managers = managers_of(conn, tenant_id, resource::manager_id(&row.data))?;
    Ok(UserView {
        row,
        groups,
        managers,
    })
}

/// What a User response shows, with the user's data as stored: what a read answers from,
/// parsing the data only when it must ([`StoredUser::parse`]).
pub struct StoredView {
    pub row: StoredUser,
    pub groups: Vec<GroupRef>,
    pub managers: HashSet<String>,
}

/// `manager.value` of a stored user, without parsing the data of one that has none.
fn stored_manager(row: &StoredUser) -> Option<String> {
    if !row.data.contains(ENTERPRISE_URN) {
        return None;
    }
    StoredMembers::parse(&row.data)?.manager_id()
}

/// `active` as a write omitting it leaves it: on create `true` (IdPs that omit it mean an
/// active user, and a user read back without `active` would be suspended by the next
/// read-modify-write PUT); on PUT `previous`, the stored value (idp-behaviour.md §9 item
/// 10), unassigned when a PATCH unassigned it.
fn default_active(data: &mut Map<String, Value>, previous: Option<&Value>) {
    if let Some(value) = previous {
        data.entry("active").or_insert_with(|| value.clone());
    }
}

impl Stored for UserRow {
    const RT: &'static ResourceType = &USER_RESOURCE;

    fn load(conn: &Conn, tenant_id: i64, id: &str) -> Result<Option<UserRow>, DbError> {
        users::get(conn, tenant_id, id)
    }

    fn version(&self) -> i64 {
        self.version
    }
}

/// POST /Users.
pub async fn create(
    db: &Db,
    actor: &Actor,
    tenant_id: i64,
    body: Value,
) -> Result<UserView, Error> {
    let mut data = resource::normalize(&USER_RESOURCE, body)?;
    default_active(&mut data, Some(&Value::Bool(true)));
    let actor = actor.clone();
    db.write_replayable(move |tx| {
        let row = users::create(tx, tenant_id, &data)?;
        reconcile::user_written(tx, &actor, tenant_id, &row, Default::default())?;
        audited(
            tx,
            &actor,
            tenant_id,
            Write::Post,
            &format!("Users/{}", row.id),
        )?;
        Ok(view(tx, tenant_id, row, false)?)
    })
    .await
}

/// Stores `data` as user `row`'s and syncs its member. A new `externalId` or title,
/// department, manager… changes what apps read of the person even when the member does not
/// change: they hear of it all the same, in the one `member.updated` of the write
/// ([`reconcile::user_written`]).
fn rewrite(
    tx: &Conn,
    actor: &Actor,
    tenant_id: i64,
    row: &UserRow,
    data: Map<String, Value>,
) -> Result<UserRow, DbError> {
    let change = members::DirectoryChange::between(&row.data, &data);
    let row = users::replace(tx, tenant_id, row, data)?;
    reconcile::user_written(tx, actor, tenant_id, &row, change)?;
    Ok(row)
}

/// PUT /Users/{id}. A PUT that changes nothing keeps the version and triggers no sync,
/// unless it is the IdP's first write to a seed: that adopts it.
pub async fn replace(
    db: &Db,
    actor: &Actor,
    tenant_id: i64,
    id: String,
    body: Value,
    pre: Preconditions,
) -> Result<UserView, Error> {
    let body = resource::normalize(&USER_RESOURCE, body)?;
    write_existing(
        db,
        actor,
        tenant_id,
        id,
        pre,
        Write::Put,
        move |tx, actor, row: UserRow| {
            let mut data = body.clone();
            default_active(&mut data, row.data.get("active"));
            resource::keep_manager_ref(&mut data, &row.data);
            // A PUT that changes nothing (Okta's AIW apps PUT on every push) keeps the
            // version and triggers no sync, like a PATCH that changes nothing.
            let row = if data == row.data && !users::is_seed(tx, row.pk)? {
                row
            } else {
                rewrite(tx, actor, tenant_id, &row, data)?
            };
            Ok(view(tx, tenant_id, row, true)?)
        },
    )
    .await
}

/// PATCH /Users/{id}. A PATCH that changes nothing (Entra's periodic `active: true`) keeps
/// the version and triggers no sync, unless it is the IdP's first write to a seed (Entra
/// matches an existing person, then sends just that): that adopts it.
pub async fn patch(
    db: &Db,
    actor: &Actor,
    tenant_id: i64,
    id: String,
    ops: Vec<Operation>,
    pre: Preconditions,
) -> Result<UserView, Error> {
    write_existing(
        db,
        actor,
        tenant_id,
        id,
        pre,
        Write::Patch,
        move |tx, actor, row: UserRow| {
            let mut data = row.data.clone();
            // Unassigning `active` (a `remove`, a `null`) leaves it unassigned, as RFC 7644
            // §3.5.2.2 says; sync reads that as no word on the person's access, so it
            // gives back none (`DirectoryUser::active`).
            patch::apply(&USER_RESOURCE, &mut data, &ops)?;
            let row = if data == row.data && !users::is_seed(tx, row.pk)? {
                row
            } else {
                rewrite(tx, actor, tenant_id, &row, data)?
            };
            Ok(view(tx, tenant_id, row, true)?)
        },
    )
    .await
}

/// DELETE /Users/{id}.
pub async fn delete(
    db: &Db,
    actor: &Actor,
    tenant_id: i64,
    id: String,
    pre: Preconditions,
) -> Result<(), Error> {
    write_existing(
        db,
        actor,
        tenant_id,
        id,
        pre,
        Write::Delete,
        move |tx, actor, row: UserRow| {
            // A member who existed before provisioning, found by the IdP and deleted
            // before anything else was written to it: adopted first, so the deletion
            // reaches the member as the tenant's policy says.
            if users::is_seed(tx, row.pk)? {
                let data = row.data.clone();
                rewrite(tx, actor, tenant_id, &row, data)?;
            }
            reconcile::user_deleting(tx, actor, tenant_id, row.pk)?;
            users::delete(tx, tenant_id, &row.id)?;
            Ok(())
        },
    )
    .await
}

/// GET /Users/{id}: `NotFound` for a user the tenant does not have.
pub async fn get(
    db: &Db,
    tenant_id: i64,
    id: String,
    want_groups: bool,
) -> Result<StoredView, DbError> {
    // One statement: the user and its groups as of one moment, with no transaction
    // around two (its begin and end, and a second statement, were a tenth of the read).
    // A manager the user names is looked up after it, a moment later at most: it shows
    // as a reference if it is a user of the directory then.
    db.lookup(move |c| {
        let (row, groups) = if want_groups {
            users::get_stored_with_groups(c, tenant_id, &id)?
        } else {
            users::get_stored(c, tenant_id, &id)?.map(|row| (row, Vec::new()))
        }
        .ok_or(DbError::NotFound)?;
        let managers = managers_of(c, tenant_id, stored_manager(&row).as_deref())?;
        Ok(StoredView {
            row,
            groups,
            managers,
        })
    })
    .await
}

/// One page of users with their groups (if `want_groups`) and the managers they name.
pub struct UserPage {
    pub page: Page<StoredUser>,
    pub groups: HashMap<i64, Vec<GroupRef>>,
    pub managers: HashSet<String>,
}

/// GET /Users and POST /Users/.search.
///
/// A `startIndex` page starts where the page before it in `resumes` said the next one
/// would, and leaves there where the page after it starts.
pub async fn list(
    db: &Db,
    tenant_id: i64,
    query: ListQuery,
    want_groups: bool,
    resumes: std::sync::Arc<Resumes>,
) -> Result<UserPage, DbError> {
    let query = std::sync::Arc::new(query);
    let once = query.is_lookup().then(|| query.clone());
    // One snapshot: the total, the position resumed from and the rows agree.
    let read = move |c: &Conn| {
        let resume = resumes.nearest(tenant_id, Listed::Users, query.start_index);
        let (page, learned) = users::list_resuming(c, tenant_id, &query, resume)?;
        for position in learned {
            resumes.put(tenant_id, Listed::Users, position);
        }
        let groups = if want_groups {
            let pks: Vec<i64> = page.items.iter().map(|r| r.pk).collect();
            users::groups_of(c, &pks)?
        } else {
            HashMap::new()
        };
        let named: Vec<String> = page.items.iter().filter_map(stored_manager).collect();
        let managers = managers_of(c, tenant_id, named.iter().map(String::as_str))?;
        Ok(UserPage {
            page,
            groups,
            managers,
        })
    };
    match once {
        // A lookup's page most often holds every match: one statement, like GET by id,
        // with the managers looked up after it.
        Some(query) => {
            let whole = move |c: &Conn| {
                let Some(found) = users::whole_first_page(c, tenant_id, &query, want_groups)?
                else {
                    return Ok(None);
                };
                let named: Vec<String> = found
                    .iter()
                    .filter_map(|(u, _)| stored_manager(u))
                    .collect();
                let managers = managers_of(c, tenant_id, named.iter().map(String::as_str))?;
                let mut groups = HashMap::with_capacity(found.len());
                let mut items = Vec::with_capacity(found.len());
                for (user, its) in found {
                    groups.insert(user.pk, its);
                    items.push(user);
                }
                let page = Page {
                    total: items.len() as u64,
                    items,
                    next: None,
                };
                Ok(Some(UserPage {
                    page,
                    groups,
                    managers,
                }))
            };
            db.lookup_once_or_snapshot(whole, read).await
        }
        None => db.scan(Scan::list(tenant_id), read).await,
    }
}
