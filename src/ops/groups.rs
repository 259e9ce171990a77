//! The SCIM writes of Groups (RFC 7644 §3.3–3.6), with memberships stored as rows: each
//! membership operation runs one row at a time, so adding or removing one member of a huge
//! group never reads the member list. Every write ends in the group's sync hook and is
//! audited in its transaction.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};

use super::Error;
use super::reconcile::{self, GroupChange};
use super::resource::{Stored, Write, audited, write_existing};
use crate::db::groups::{
    self, GroupMember, GroupRow, MemberKind, MemberValue, Removed, ResolvedMember,
};
use crate::db::{Conn, Db, DbError, ListQuery, Page, Scan};
use crate::model::Actor;
use crate::scim::patch::{self, MemberOp, Operation};
use crate::scim::resource::{self, Preconditions};
use crate::scim::schema::{GROUP_RESOURCE, ResourceType};
use crate::scim::{ScimError, filter};

/// A PATCH response that asks for members (an IdP's gets 204 and none) lists them only up
/// to this many; past it `members` is left out so that changing one member of a huge group
/// stays cheap. A GET always returns them all.
pub const PATCH_RESPONSE_MEMBER_LIMIT: usize = 1000;

/// What a Group response shows: the stored group and, when the response carries them, its
/// members.
#[derive(Debug, Clone)]
pub struct GroupView {
    pub row: GroupRow,
    pub members: Option<Vec<GroupMember>>,
}

/// Splits `members` off a POST/PUT body: they are stored as rows, not in the JSON.
/// `None` when the body has no `members` key, or `"members": null`: RFC 7643 §2.5 makes
/// null and unassigned the same state, and clients that write every key (`null` for what
/// they do not hold) must not empty a group by renaming it.
fn take_members(body: &mut Value) -> Result<Option<Vec<MemberValue>>, ScimError> {
    let Value::Object(fields) = body else {
        return Ok(None);
    };
    let Some(key) = fields
        .keys()
        .find(|k| k.eq_ignore_ascii_case("members"))
        .cloned()
    else {
        return Ok(None);
    };
    match fields.shift_remove(&key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => patch::parse_members(value).map(Some),
    }
}

/// Resolves members to rows; an id that names no user or group of the tenant is a 400.
/// Members for group `group_pk`. A group may hold groups, but not itself, directly or
/// through the groups it holds: a loop would make "who is in this group" endless.
fn resolve(
    conn: &Conn,
    tenant_id: i64,
    group_pk: i64,
    members: &[MemberValue],
) -> Result<Vec<ResolvedMember>, Error> {
    let (resolved, unknown) = groups::resolve_members(conn, tenant_id, members)?;
    for m in resolved.iter().filter(|m| m.kind == MemberKind::Group) {
        if m.pk == group_pk || groups::contains_group(conn, m.pk, group_pk)? {
            return Err(ScimError::invalid_value(
                "members: a group cannot be a member of itself, directly or through the groups it holds",
            )
            .into());
        }
    }
    if !unknown.is_empty() {
        return Err(ScimError::invalid_value(format!(
            "members: no user or group with id {}",
            unknown
                .iter()
                .map(|v| format!("{v:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into());
    }
    Ok(resolved)
}

fn user_pks(removed: &[Removed]) -> impl Iterator<Item = i64> + '_ {
    removed
        .iter()
        .filter(|(k, _)| *k == MemberKind::User)
        .map(|(_, pk)| *pk)
}

fn added_users(added: &[ResolvedMember]) -> impl Iterator<Item = i64> + '_ {
    added
        .iter()
        .filter(|m| m.kind == MemberKind::User)
        .map(|m| m.pk)
}

/// Runs membership operations in order, recording what changed for the sync hook.
/// Returns whether any membership changed, a member group's included (the sync hook
/// hears only of users, but the group's version must move either way). A member removed
/// and added back in one request (or added and removed) is where it was: no change, no
/// event; added back with a `display`, its membership may read differently, so it counts.
fn apply_member_ops(
    conn: &Conn,
    tenant_id: i64,
    group_pk: i64,
    ops: Vec<MemberOp>,
    change: &mut GroupChange,
) -> Result<bool, Error> {
    let mut changed = false;
    filter_budget(conn, group_pk, &ops)?;
    let mut moves = Moves::default();
    // A filter on member attributes other than `value` (rare) reads the member list: once
    // for all such operations in a row, as the ones before them left it.
    let mut listed: Option<Vec<(String, Value)>> = None;
    for op in ops {
        match op {
            MemberOp::Add(members) => {
                let resolved = resolve(conn, tenant_id, group_pk, &members)?;
                let added = groups::add_members(conn, group_pk, &resolved)?;
                for m in &added {
                    moves.count((m.kind, m.pk), 1, m.display.is_some());
                }
                listed = None;
            }
            MemberOp::Remove(ids) => {
                let removed = groups::remove_members(conn, group_pk, &ids)?;
                for &member in &removed {
                    moves.count(member, -1, false);
                }
                if let Some(list) = &mut listed {
                    let gone: HashSet<&String> = ids.iter().collect();
                    list.retain(|(value, _)| !gone.contains(value));
                }
            }
            MemberOp::RemoveMatching(f) => {
                let list = match &mut listed {
                    Some(list) => list,
                    None => listed.insert(
                        groups::members(conn, group_pk)?
                            .into_iter()
                            .map(|m| {
                                let element = json!({"value": m.value, "display": m.display, "type": m.kind.as_str()});
                                (m.value, element)
                            })
                            .collect(),
                    ),
                };
                let (gone, kept) = std::mem::take(list)
                    .into_iter()
                    .partition(|(_, element)| filter::matches_element(&f, element));
                *list = kept;
                let ids: Vec<String> = gone
                    .into_iter()
                    .map(|(value, _): (String, Value)| value)
                    .collect();
                let removed = groups::remove_members(conn, group_pk, &ids)?;
                for &member in &removed {
                    moves.count(member, -1, false);
                }
            }
            MemberOp::Clear => {
                changed |= moves.settle(change);
                let removed = groups::clear_members(conn, group_pk)?;
                changed |= !removed.is_empty();
                change.members_replaced = true;
                change.removed_user_pks.extend(user_pks(&removed));
                listed = None;
            }
            MemberOp::Replace(members) => {
                changed |= moves.settle(change);
                let resolved = resolve(conn, tenant_id, group_pk, &members)?;
                changed |= replace_members(conn, group_pk, &resolved, change)?;
                listed = None;
            }
        }
    }
    changed |= moves.settle(change);
    Ok(changed)
}

/// Refuses, before anything is applied, a request whose member filters (`members[display
/// eq "…"]`) would compare more than the write's budget: each such operation against every
/// member the group may hold by then (those it holds, and all the request adds).
fn filter_budget(conn: &Conn, group_pk: i64, ops: &[MemberOp]) -> Result<(), Error> {
    let mut filters = ops.iter().filter_map(|op| match op {
        MemberOp::RemoveMatching(f) => Some(f),
        _ => None,
    });
    let Some(first) = filters.next() else {
        return Ok(());
    };
    let added: usize = ops
        .iter()
        .map(|op| match op {
            MemberOp::Add(m) | MemberOp::Replace(m) => m.len(),
            _ => 0,
        })
        .sum();
    let most = groups::count_members(conn, group_pk)? as usize + added;
    let mut budget = filter::FilterBudget::default();
    for f in std::iter::once(first).chain(filters) {
        budget.spend(f, most.max(1))?;
    }
    Ok(())
}

/// What the adds and removes of a request did to each member, in the order they were
/// first touched: +1 joined, -1 left, 0 back where it was.
#[derive(Default)]
struct Moves {
    order: Vec<Removed>,
    net: HashMap<Removed, (i32, bool)>,
}

impl Moves {
    /// `member` joined (`by` 1, `displayed`: with a `display`) or left (-1).
    fn count(&mut self, member: Removed, by: i32, displayed: bool) {
        let (net, redisplayed) = self.net.entry(member).or_insert_with(|| {
            self.order.push(member);
            (0, false)
        });
        // Back after leaving, with a display of its own: the membership may read otherwise.
        *redisplayed |= by > 0 && *net < 0 && displayed;
        *net += by;
    }

    /// Records the net joins and leaves in `change` and starts over (before a replace or
    /// a clear, which record their own); whether anything changed.
    fn settle(&mut self, change: &mut GroupChange) -> bool {
        let mut changed = false;
        for member in self.order.drain(..) {
            let (net, redisplayed) = self.net[&member];
            changed |= net != 0 || redisplayed;
            if member.0 == MemberKind::User {
                match net {
                    1 => change.added_user_pks.push(member.1),
                    -1 => change.removed_user_pks.push(member.1),
                    _ => {}
                }
            }
        }
        self.net.clear();
        changed
    }
}

fn replace_members(
    conn: &Conn,
    group_pk: i64,
    members: &[ResolvedMember],
    change: &mut GroupChange,
) -> Result<bool, Error> {
    let (removed, added, redisplayed) = groups::set_members(conn, group_pk, members)?;
    change.removed_user_pks.extend(user_pks(&removed));
    change.added_user_pks.extend(added_users(&added));
    Ok(!removed.is_empty() || !added.is_empty() || redisplayed)
}

impl Stored for GroupRow {
    const RT: &'static ResourceType = &GROUP_RESOURCE;

    fn load(conn: &Conn, tenant_id: i64, id: &str) -> Result<Option<GroupRow>, DbError> {
        groups::get(conn, tenant_id, id)
    }

    fn version(&self) -> i64 {
        self.version
    }
}

fn display_name(data: &Map<String, Value>) -> Option<&str> {
    data.get("displayName").and_then(Value::as_str)
}

/// The `externalId` before the write, when the write changed it (`null`: there was none).
fn external_id_from(before: &Map<String, Value>, after: &Map<String, Value>) -> Option<Value> {
    let was = before.get("externalId");
    (was != after.get("externalId")).then(|| was.cloned().unwrap_or(Value::Null))
}

/// The group's displayName before the write, when the write changed it.
fn renamed_from(before: &Map<String, Value>, after: &Map<String, Value>) -> Option<String> {
    let was = display_name(before);
    (was != display_name(after)).then(|| was.unwrap_or_default().to_string())
}

/// POST /Groups, with its initial members.
pub async fn create(
    db: &Db,
    actor: &Actor,
    tenant_id: i64,
    mut body: Value,
) -> Result<GroupView, Error> {
    let members = take_members(&mut body)?.unwrap_or_default();
    let data = resource::normalize(&GROUP_RESOURCE, body)?;
    let actor = actor.clone();
    db.write_replayable(move |tx| {
        let row = groups::create(tx, tenant_id, &data)?;
        let mut change = GroupChange {
            created: true,
            ..Default::default()
        };
        if !members.is_empty() {
            let resolved = resolve(tx, tenant_id, row.pk, &members)?;
            replace_members(tx, row.pk, &resolved, &mut change)?;
        }
        reconcile::group_written(tx, &actor, tenant_id, row.pk, &change)?;
        audited(
            tx,
            &actor,
            tenant_id,
            Write::Post,
            &format!("Groups/{}", row.id),
        )?;
        let members = groups::members(tx, row.pk)?;
        Ok(GroupView {
            row,
            members: Some(members),
        })
    })
    .await
}

/// PUT /Groups/{id}. A body without `members` (or with `"members": null`) leaves the
/// membership as it is (RFC 7644 §3.5.1 lets a server treat omitted attributes as not
/// asserted): a rename by PUT must never empty a group. `"members": []` empties it.
pub async fn replace(
    db: &Db,
    actor: &Actor,
    tenant_id: i64,
    id: String,
    mut body: Value,
    pre: Preconditions,
    want_members: bool,
) -> Result<GroupView, Error> {
    let members = take_members(&mut body)?;
    let data = resource::normalize(&GROUP_RESOURCE, body)?;
    write_existing(
        db,
        actor,
        tenant_id,
        id,
        pre,
        Write::Put,
        move |tx, actor, row: GroupRow| {
            let mut change = GroupChange {
                renamed_from: renamed_from(&row.data, &data),
                external_id_from: external_id_from(&row.data, &data),
                ..Default::default()
            };
            let membership_changed = match &members {
                Some(members) => {
                    let resolved = resolve(tx, tenant_id, row.pk, members)?;
                    replace_members(tx, row.pk, &resolved, &mut change)?
                }
                None => false,
            };
            // A PUT that changes nothing (Okta's AIW apps PUT on every push) keeps the
            // version and tells nobody, like a PATCH that changes nothing.
            let row = if membership_changed || data != row.data {
                let row = groups::update(tx, &row, data.clone())?;
                reconcile::group_written(tx, actor, tenant_id, row.pk, &change)?;
                row
            } else {
                row
            };
            let members = if want_members {
                Some(groups::members(tx, row.pk)?)
            } else {
                None
            };
            Ok(GroupView { row, members })
        },
    )
    .await
}

/// PATCH /Groups/{id}; the view lists members up to [`PATCH_RESPONSE_MEMBER_LIMIT`].
pub async fn patch(
    db: &Db,
    actor: &Actor,
    tenant_id: i64,
    id: String,
    ops: Vec<Operation>,
    pre: Preconditions,
    want_members: bool,
) -> Result<GroupView, Error> {
    write_existing(
        db,
        actor,
        tenant_id,
        id,
        pre,
        Write::Patch,
        move |tx, actor, row: GroupRow| {
            let mut data = row.data.clone();
            let outcome = patch::apply(&GROUP_RESOURCE, &mut data, &ops)?;
            let mut change = GroupChange {
                renamed_from: renamed_from(&row.data, &data),
                external_id_from: external_id_from(&row.data, &data),
                ..Default::default()
            };
            let membership_changed =
                apply_member_ops(tx, tenant_id, row.pk, outcome.members, &mut change)?;
            let row = if outcome.data_changed || membership_changed {
                let row = groups::update(tx, &row, data)?;
                reconcile::group_written(tx, actor, tenant_id, row.pk, &change)?;
                row
            } else {
                row
            };
            // Count before reading: the first 1001 members in insertion order would still sort
            // the whole member list of a huge group.
            let limit = PATCH_RESPONSE_MEMBER_LIMIT;
            let members = if want_members && groups::count_members(tx, row.pk)? <= limit as i64 {
                Some(groups::members(tx, row.pk)?)
            } else {
                None
            };
            Ok(GroupView { row, members })
        },
    )
    .await
}

/// DELETE /Groups/{id}.
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
        move |tx, actor, row: GroupRow| {
            reconcile::group_deleting(tx, actor, tenant_id, row.pk)?;
            groups::delete(tx, tenant_id, &row.id)?;
            Ok(())
        },
    )
    .await
}

/// GET /Groups/{id}: its members only if `want_members`; `NotFound` for a group the tenant
/// does not have.
pub async fn get(
    db: &Db,
    tenant_id: i64,
    id: String,
    want_members: bool,
) -> Result<GroupView, DbError> {
    let read = move |c: &Conn| {
        let row = groups::get(c, tenant_id, &id)?.ok_or(DbError::NotFound)?;
        let members = if want_members {
            Some(groups::members(c, row.pk)?)
        } else {
            None
        };
        Ok(GroupView { row, members })
    };
    // Without its members a group is one row, whatever its size. With them, the group
    // and its members are read in one snapshot.
    if want_members {
        db.scan(Scan::list(tenant_id), read).await
    } else {
        db.lookup(read).await
    }
}

/// Members a streamed group read reads and sends at a time: ~180 KB of answer each.
pub const MEMBER_CHUNK: usize = 1000;

/// What the reader of a streamed group read sends: the group, then its members in
/// chunks, the last one shorter than [`MEMBER_CHUNK`].
enum Piece {
    Group(GroupRow),
    Members(Vec<GroupMember>),
}

/// The members of a streamed group read, chunk by chunk (see [`get_streamed`]).
pub struct MemberChunks {
    rx: tokio::sync::mpsc::Receiver<Result<Piece, DbError>>,
    done: bool,
}

impl MemberChunks {
    /// The next chunk, `None` after the last one. An error means the read failed half way:
    /// what was sent so far is not the whole group.
    pub async fn next(&mut self) -> Option<Result<Vec<GroupMember>, DbError>> {
        if self.done {
            return None;
        }
        let got = match self.rx.recv().await {
            Some(Ok(Piece::Members(m))) => Ok(m),
            Some(Err(e)) => Err(e),
            Some(Ok(Piece::Group(_))) | None => {
                Err(DbError::Task("the group's members stopped half way".into()))
            }
        };
        self.done = got.as_ref().map_or(true, |m| m.len() < MEMBER_CHUNK);
        Some(got)
    }

    /// Whether every chunk has been handed out.
    pub fn done(&self) -> bool {
        self.done
    }
}

/// GET /Groups/{id} with every member, for answers that stream them: the group, then its
/// members read [`MEMBER_CHUNK`] at a time by a reader on the blocking pool. The reader
/// holds one read transaction from the group row to the last member, so the answer is one
/// consistent snapshot however slowly the client reads, and it waits (holding at most two
/// chunks) while the client does. Dropping the chunks stops it.
pub async fn get_streamed(
    db: &Db,
    tenant_id: i64,
    id: String,
) -> Result<(GroupRow, MemberChunks), DbError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Piece, DbError>>(2);
    let failed = tx.clone();
    let db = db.clone();
    let read_all = move |c: &Conn| {
        let read = || -> Result<(), DbError> {
            let row = groups::get(c, tenant_id, &id)?.ok_or(DbError::NotFound)?;
            let pk = row.pk;
            if tx.blocking_send(Ok(Piece::Group(row))).is_err() {
                return Ok(());
            }
            groups::members_chunked(c, pk, MEMBER_CHUNK, |chunk| {
                tx.blocking_send(Ok(Piece::Members(chunk))).is_ok()
            })
        };
        if let Err(e) = read() {
            let _ = tx.blocking_send(Err(e));
        }
        Ok::<_, DbError>(())
    };
    tokio::spawn(async move {
        // Only what kept the reader from starting (no connection) is left to report.
        if let Err(e) = db.scan(Scan::streamed(tenant_id), read_all).await {
            let _ = failed.send(Err(e)).await;
        }
    });
    match rx.recv().await {
        Some(Ok(Piece::Group(row))) => Ok((row, MemberChunks { rx, done: false })),
        Some(Err(e)) => Err(e),
        _ => Err(DbError::Task("the group read ended early".into())),
    }
}

/// GET /Groups and POST /Groups/.search: one page, each group with its members if
/// `want_members`; `startIndex` pages resume as [`super::users::list`] says.
pub async fn list(
    db: &Db,
    tenant_id: i64,
    query: ListQuery,
    want_members: bool,
    resumes: std::sync::Arc<super::lists::Resumes>,
) -> Result<(Page<GroupRow>, Vec<Option<Vec<GroupMember>>>), DbError> {
    use crate::db::paging::Listed;
    // One snapshot: the total, the position resumed from and the rows agree.
    let lookup = query.is_lookup() && !want_members;
    let read = move |c: &Conn| {
        let resume = resumes.nearest(tenant_id, Listed::Groups, query.start_index);
        let (page, learned) = groups::list_resuming(c, tenant_id, &query, resume)?;
        for position in learned {
            resumes.put(tenant_id, Listed::Groups, position);
        }
        let members = if want_members {
            page.items
                .iter()
                .map(|g| groups::members(c, g.pk).map(Some))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            vec![None; page.items.len()]
        };
        Ok((page, members))
    };
    if lookup {
        db.lookup_snapshot(read).await
    } else {
        db.scan(Scan::list(tenant_id), read).await
    }
}
