//! `/Groups` (RFC 7644 §3.3–3.6), with memberships stored as rows.
//!
//! Membership changes run one row at a time, so adding or removing one member of a huge
//! group never reads the member list. Reads load members only when the response carries
//! them (`excludedAttributes=members` skips them entirely).

use hyper::{HeaderMap, Response, StatusCode};
use serde_json::{Map, Value, json};

use super::{
    Ctx, audited, check_if_match, no_content, not_found_as, not_modified, resource_bytes_response,
    resource_response, write_existing,
};
use crate::db::audit::Action;
use crate::db::groups::{self, GroupRow, Member, MemberInput, MemberKind, Removed};
use crate::db::sync::{self, GroupChange, WriteContext};
use crate::db::{DbError, ListQuery};
use crate::http::{ApiError, Body, State};
use crate::scim::ScimError;
use crate::scim::filter;
use crate::scim::patch::{self, MemberOp, Operation};
use crate::scim::projection::Projection;
use crate::scim::resource::{self, Meta};
use crate::scim::schema::GROUP_RESOURCE;

/// A PATCH response lists the members only up to this many; past it `members` is left out
/// (Okta accepts a group without members, Entra prefers no body at all) so that changing
/// one member of a huge group stays cheap. A GET always returns them all.
pub const PATCH_RESPONSE_MEMBER_LIMIT: usize = 1000;

/// A member as rendered; borrowed, so a 100 000-member group is written out without a
/// `Value` tree per member.
#[derive(serde::Serialize)]
struct MemberOut<'a> {
    value: &'a str,
    #[serde(rename = "$ref")]
    reference: String,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    display: Option<&'a str>,
}

fn member_out<'a>(ctx: &Ctx, m: &'a Member) -> MemberOut<'a> {
    let endpoint = match m.kind {
        MemberKind::User => "Users",
        MemberKind::Group => "Groups",
    };
    MemberOut {
        value: &m.value,
        reference: format!("{}/{endpoint}/{}", ctx.base, m.value),
        kind: m.kind.as_str(),
        display: m.display.as_deref(),
    }
}

fn render(ctx: &Ctx, row: &GroupRow, members: Option<&[Member]>) -> Value {
    let mut computed = Vec::new();
    if let Some(members) = members.filter(|m| !m.is_empty()) {
        let list = members.iter().map(|m| json!(member_out(ctx, m))).collect();
        computed.push(("members", Value::Array(list)));
    }
    let meta = Meta {
        created: row.created.clone(),
        last_modified: row.last_modified.clone(),
        version: row.version,
        location: format!("{}/Groups/{}", ctx.base, row.id),
    };
    resource::render(&GROUP_RESOURCE, &row.id, &row.data, computed, &meta)
}

/// The group response. When `members` go out whole (the usual case), they are written
/// straight into the body after the rest of the group is rendered, which keeps a read of a
/// huge group to the size of its answer; a projection into member sub-attributes goes
/// through the general path.
fn respond(
    ctx: &Ctx,
    status: StatusCode,
    row: &GroupRow,
    members: Option<&[Member]>,
    projection: &Projection,
) -> Response<Body> {
    let Some(members) = members.filter(|m| !m.is_empty() && projection.wants_whole("members"))
    else {
        let mut body = render(ctx, row, members);
        projection.apply(&GROUP_RESOURCE, &mut body);
        return resource_response(status, &body, row.version);
    };
    let mut body = render(ctx, row, None);
    projection.apply(&GROUP_RESOURCE, &mut body);
    let location = body["meta"]["location"].as_str().map(str::to_string);
    let meta = body.as_object_mut().and_then(|o| o.shift_remove("meta"));
    // Sized for the whole answer up front: growing by doubling would copy it repeatedly.
    let mut out = Vec::with_capacity(512 + members.len() * (ctx.base.len() + 128));
    serde_json::to_writer(&mut out, &body).expect("a JSON value always serialises");
    out.pop(); // the closing brace; `body` always holds at least schemas and id
    out.extend_from_slice(br#","members":["#);
    for (i, m) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, &member_out(ctx, m)).expect("a member always serialises");
    }
    out.push(b']');
    if let Some(meta) = meta {
        out.extend_from_slice(br#","meta":"#);
        serde_json::to_writer(&mut out, &meta).expect("a JSON value always serialises");
    }
    out.push(b'}');
    resource_bytes_response(status, out, location.as_deref(), row.version)
}

/// Splits `members` off a POST/PUT body: they are stored as rows, not in the JSON.
/// `None` when the body has no `members` key at all.
fn take_members(body: &mut Value) -> Result<Option<Vec<MemberInput>>, ScimError> {
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
    let value = fields.shift_remove(&key).unwrap_or(Value::Null);
    patch::parse_members(value).map(Some)
}

/// Resolves members to rows; an id that names no user or group of the tenant is a 400.
fn resolve(
    conn: &rusqlite::Connection,
    tenant_id: i64,
    members: &[MemberInput],
) -> Result<Vec<groups::ResolvedMember>, ApiError> {
    let (resolved, unknown) = groups::resolve_members(conn, tenant_id, members)?;
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

/// Runs membership operations in order, recording what changed for the sync hook.
fn apply_member_ops(
    conn: &rusqlite::Connection,
    tenant_id: i64,
    group_pk: i64,
    ops: Vec<MemberOp>,
    change: &mut GroupChange,
) -> Result<(), ApiError> {
    for op in ops {
        match op {
            MemberOp::Add(members) => {
                let resolved = resolve(conn, tenant_id, &members)?;
                let added = groups::add_members(conn, group_pk, &resolved)?;
                change.added_user_pks.extend(
                    added
                        .iter()
                        .filter(|m| m.kind == MemberKind::User)
                        .map(|m| m.pk),
                );
            }
            MemberOp::Remove(ids) => {
                let removed = groups::remove_members(conn, group_pk, &ids)?;
                change.removed_user_pks.extend(user_pks(&removed));
            }
            MemberOp::RemoveMatching(f) => {
                // A filter on member attributes other than `value`: rare, so it reads the list.
                let ids: Vec<String> = groups::members(conn, group_pk)?
                    .into_iter()
                    .filter(|m| {
                        let element = json!({"value": m.value, "display": m.display, "type": m.kind.as_str()});
                        filter::matches_element(&f, &element)
                    })
                    .map(|m| m.value)
                    .collect();
                let removed = groups::remove_members(conn, group_pk, &ids)?;
                change.removed_user_pks.extend(user_pks(&removed));
            }
            MemberOp::Clear => {
                let removed = groups::clear_members(conn, group_pk)?;
                change.members_replaced = true;
                change.removed_user_pks.extend(user_pks(&removed));
            }
            MemberOp::Replace(members) => {
                let resolved = resolve(conn, tenant_id, &members)?;
                replace_members(conn, group_pk, &resolved, change)?;
            }
        }
    }
    Ok(())
}

fn replace_members(
    conn: &rusqlite::Connection,
    group_pk: i64,
    members: &[groups::ResolvedMember],
    change: &mut GroupChange,
) -> Result<(), ApiError> {
    let removed = groups::clear_members(conn, group_pk)?;
    let added = groups::add_members(conn, group_pk, members)?;
    change.members_replaced = true;
    change.removed_user_pks.extend(user_pks(&removed));
    change.added_user_pks.extend(
        added
            .iter()
            .filter(|m| m.kind == MemberKind::User)
            .map(|m| m.pk),
    );
    Ok(())
}

fn load_for_write(
    conn: &rusqlite::Connection,
    ctx: &WriteContext,
    id: &str,
    if_match: Option<&str>,
) -> Result<GroupRow, ApiError> {
    let row = groups::get(conn, ctx.tenant_id, id)?.ok_or(DbError::NotFound)?;
    check_if_match(if_match, row.version)?;
    Ok(row)
}

fn display_name(data: &Map<String, Value>) -> Option<&str> {
    data.get("displayName").and_then(Value::as_str)
}

pub(super) async fn create(
    state: &State,
    ctx: &Ctx,
    mut body: Value,
) -> Result<Response<Body>, ApiError> {
    let members = take_members(&mut body)?.unwrap_or_default();
    let data = resource::normalize(&GROUP_RESOURCE, body)?;
    let wctx = ctx.write.clone();
    let (row, members) = state
        .db
        .write(move |tx| {
            let row = groups::create(tx, wctx.tenant_id, &data)?;
            let mut change = GroupChange {
                created: true,
                ..Default::default()
            };
            if !members.is_empty() {
                let resolved = resolve(tx, wctx.tenant_id, &members)?;
                replace_members(tx, row.pk, &resolved, &mut change)?;
            }
            sync::group_written(tx, &wctx, row.pk, &change)?;
            audited(
                tx,
                &wctx,
                Action::ScimPost,
                &format!("Groups/{}", row.id),
                StatusCode::CREATED,
            )?;
            Ok::<_, ApiError>((row.clone(), groups::members(tx, row.pk)?))
        })
        .await?;
    Ok(respond(
        ctx,
        StatusCode::CREATED,
        &row,
        Some(&members),
        &Projection::default(),
    ))
}

pub(super) async fn get(
    state: &State,
    ctx: &Ctx,
    id: String,
    projection: &Projection,
    headers: &HeaderMap,
) -> Result<Response<Body>, ApiError> {
    let tenant = ctx.tenant_id;
    let want_members = projection.wants("members");
    let shown = id.clone();
    let (row, members) = state
        .db
        .read(move |c| {
            let row = groups::get(c, tenant, &id)?.ok_or(DbError::NotFound)?;
            let members = if want_members {
                Some(groups::members(c, row.pk)?)
            } else {
                None
            };
            Ok::<_, ApiError>((row, members))
        })
        .await
        .map_err(|e| not_found_as(e, "Group", &shown))?;
    if let Some(r) = not_modified(headers, row.version) {
        return Ok(r);
    }
    Ok(respond(
        ctx,
        StatusCode::OK,
        &row,
        members.as_deref(),
        projection,
    ))
}

/// PUT replaces the group. A body without a `members` key leaves the membership as it is
/// (RFC 7644 §3.5.1 lets a server treat omitted attributes as not asserted): a rename by
/// PUT must never empty a group. `"members": []` empties it.
pub(super) async fn replace(
    state: &State,
    ctx: &Ctx,
    id: String,
    mut body: Value,
    if_match: Option<String>,
    projection: &Projection,
) -> Result<Response<Body>, ApiError> {
    let members = take_members(&mut body)?;
    let data = resource::normalize(&GROUP_RESOURCE, body)?;
    let want_members = projection.wants("members");
    let (row, members) = write_existing(
        state,
        ctx,
        &GROUP_RESOURCE,
        id,
        Action::ScimPut,
        StatusCode::OK,
        move |tx, wctx, id| {
            let row = load_for_write(tx, wctx, id, if_match.as_deref())?;
            let mut change = GroupChange {
                renamed: display_name(&row.data) != display_name(&data),
                ..Default::default()
            };
            if let Some(members) = members {
                let resolved = resolve(tx, wctx.tenant_id, &members)?;
                replace_members(tx, row.pk, &resolved, &mut change)?;
            }
            let row = groups::update(tx, &row, data)?;
            sync::group_written(tx, wctx, row.pk, &change)?;
            let members = if want_members {
                Some(groups::members(tx, row.pk)?)
            } else {
                None
            };
            Ok((row, members))
        },
    )
    .await?;
    Ok(respond(
        ctx,
        StatusCode::OK,
        &row,
        members.as_deref(),
        projection,
    ))
}

/// PATCH answers 200 with the group; its members are included up to
/// [`PATCH_RESPONSE_MEMBER_LIMIT`] (see there).
pub(super) async fn patch(
    state: &State,
    ctx: &Ctx,
    id: String,
    ops: Vec<Operation>,
    if_match: Option<String>,
    projection: &Projection,
) -> Result<Response<Body>, ApiError> {
    let want_members = projection.wants("members");
    let (row, members) = write_existing(
        state,
        ctx,
        &GROUP_RESOURCE,
        id,
        Action::ScimPatch,
        StatusCode::OK,
        move |tx, wctx, id| {
            let row = load_for_write(tx, wctx, id, if_match.as_deref())?;
            let mut data = row.data.clone();
            let outcome = patch::apply(&GROUP_RESOURCE, &row.id, &mut data, &ops)?;
            let mut change = GroupChange {
                renamed: display_name(&row.data) != display_name(&data),
                ..Default::default()
            };
            apply_member_ops(tx, wctx.tenant_id, row.pk, outcome.members, &mut change)?;
            let membership_changed = change.members_replaced
                || !change.added_user_pks.is_empty()
                || !change.removed_user_pks.is_empty();
            let row = if outcome.data_changed || membership_changed {
                let row = groups::update(tx, &row, data)?;
                sync::group_written(tx, wctx, row.pk, &change)?;
                row
            } else {
                row
            };
            // Count before reading: the first 1001 members in insertion order would
            // still sort the whole member list of a huge group.
            let limit = PATCH_RESPONSE_MEMBER_LIMIT;
            let members =
                if want_members && groups::count_members_up_to(tx, row.pk, limit + 1)? <= limit {
                    Some(groups::members(tx, row.pk)?)
                } else {
                    None
                };
            Ok((row, members))
        },
    )
    .await?;
    Ok(respond(
        ctx,
        StatusCode::OK,
        &row,
        members.as_deref(),
        projection,
    ))
}

pub(super) async fn delete(
    state: &State,
    ctx: &Ctx,
    id: String,
    if_match: Option<String>,
) -> Result<Response<Body>, ApiError> {
    write_existing(
        state,
        ctx,
        &GROUP_RESOURCE,
        id,
        Action::ScimDelete,
        StatusCode::NO_CONTENT,
        move |tx, wctx, id| {
            let row = load_for_write(tx, wctx, id, if_match.as_deref())?;
            sync::group_deleting(tx, wctx, row.pk)?;
            groups::delete(tx, wctx.tenant_id, &row.id)?;
            Ok(())
        },
    )
    .await?;
    Ok(no_content())
}

/// One page of groups, rendered and projected: (total, resources, next cursor row).
pub(super) async fn list(
    state: &State,
    ctx: &Ctx,
    query: ListQuery,
    projection: &Projection,
) -> Result<(u64, Vec<Value>, Option<i64>), ApiError> {
    let tenant = ctx.tenant_id;
    let want_members = projection.wants("members");
    let (page, members) = state
        .db
        .read(move |c| {
            let page = groups::list(c, tenant, &query)?;
            let members = if want_members {
                page.items
                    .iter()
                    .map(|g| groups::members(c, g.pk).map(Some))
                    .collect::<Result<Vec<_>, _>>()?
            } else {
                vec![None; page.items.len()]
            };
            Ok::<_, ApiError>((page, members))
        })
        .await?;
    let resources = page
        .items
        .iter()
        .zip(&members)
        .map(|(row, members)| {
            let mut v = render(ctx, row, members.as_deref());
            projection.apply(&GROUP_RESOURCE, &mut v);
            v
        })
        .collect();
    Ok((page.total, resources, page.next_after_pk))
}
