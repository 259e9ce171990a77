//! `/Users` (RFC 7644 §3.3–3.6).

use std::collections::HashSet;

use hyper::{HeaderMap, Response, StatusCode};
use serde_json::{Map, Value, json};

use super::{
    Ctx, audited, check_if_match, no_content, not_found_as, not_modified, resource_response,
    write_existing,
};
use crate::db::audit::Action;
use crate::db::{DbError, ListQuery, sync, users};
use crate::http::{ApiError, Body, State};
use crate::scim::patch::{self, Operation};
use crate::scim::projection::Projection;
use crate::scim::resource::{self, Meta};
use crate::scim::schema::USER_RESOURCE;

/// The managers that rendered users name and the directory holds, by id (see
/// [`resource::show_manager`]).
type Managers = HashSet<String>;

fn managers_of<'r>(
    conn: &rusqlite::Connection,
    tenant_id: i64,
    rows: impl IntoIterator<Item = &'r users::UserRow>,
) -> Result<Managers, DbError> {
    let ids: Vec<&str> = rows
        .into_iter()
        .filter_map(|r| resource::manager_id(&r.data))
        .collect();
    if ids.is_empty() {
        return Ok(Managers::new());
    }
    users::existing_ids(conn, tenant_id, &ids)
}

fn render(
    ctx: &Ctx,
    row: &users::UserRow,
    groups: &[users::GroupRef],
    managers: &Managers,
) -> Value {
    let mut computed = Vec::new();
    if !groups.is_empty() {
        let list = groups
            .iter()
            .map(|g| {
                json!({
                    "value": g.id,
                    "$ref": format!("{}/Groups/{}", ctx.base, g.id),
                    "display": g.display,
                    "type": "direct",
                })
            })
            .collect();
        computed.push(("groups", Value::Array(list)));
    }
    let meta = Meta {
        created: row.created.clone(),
        last_modified: row.last_modified.clone(),
        version: row.version,
        location: format!("{}/Users/{}", ctx.base, row.id),
    };
    let mut user = resource::render(&USER_RESOURCE, &row.id, &row.data, computed, &meta);
    if let Some(id) = resource::manager_id(&row.data).filter(|id| managers.contains(*id)) {
        resource::show_manager(&mut user, format!("{}/Users/{id}", ctx.base));
    }
    user
}

fn respond(
    ctx: &Ctx,
    status: StatusCode,
    row: &users::UserRow,
    groups: &[users::GroupRef],
    managers: &Managers,
    projection: &Projection,
) -> Response<Body> {
    let mut body = render(ctx, row, groups, managers);
    projection.apply(&USER_RESOURCE, &mut body);
    resource_response(status, &body, row.version)
}

/// `active` defaults to true on create: IdPs that omit it mean an active user, and a user
/// read back without `active` would be suspended by the next read-modify-write PUT.
/// On PUT an omitted `active` keeps its value (idp-behaviour.md §9 item 10).
fn default_active(data: &mut Map<String, Value>, previous: Option<&Value>) {
    if !data.contains_key("active") {
        data.insert(
            "active".into(),
            previous.cloned().unwrap_or(Value::Bool(true)),
        );
    }
}

/// The direct groups of one user, for `User.groups`.
fn groups_of(conn: &rusqlite::Connection, pk: i64) -> Result<Vec<users::GroupRef>, DbError> {
    Ok(users::groups_of(conn, &[pk])?
        .remove(&pk)
        .unwrap_or_default())
}

/// Loads user `id` of the tenant for a write, checking `If-Match`.
fn load_for_write(
    conn: &rusqlite::Connection,
    ctx: &sync::WriteContext,
    id: &str,
    if_match: Option<&str>,
) -> Result<users::UserRow, ApiError> {
    let row = users::get(conn, ctx.tenant_id, id)?.ok_or(DbError::NotFound)?;
    check_if_match(if_match, row.version)?;
    Ok(row)
}

pub(super) async fn create(
    state: &State,
    ctx: &Ctx,
    body: Value,
) -> Result<Response<Body>, ApiError> {
    let mut data = resource::normalize(&USER_RESOURCE, body)?;
    default_active(&mut data, None);
    let wctx = ctx.write.clone();
    let row = state
        .db
        .write(move |tx| {
            let row = users::create(tx, wctx.tenant_id, &data)?;
            sync::user_written(tx, &wctx, row.pk)?;
            audited(
                tx,
                &wctx,
                Action::ScimPost,
                &format!("Users/{}", row.id),
                StatusCode::CREATED,
            )?;
            let managers = managers_of(tx, wctx.tenant_id, [&row])?;
            Ok::<_, ApiError>((row, managers))
        })
        .await?;
    let (row, managers) = row;
    Ok(respond(
        ctx,
        StatusCode::CREATED,
        &row,
        &[],
        &managers,
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
    let want_groups = projection.wants("groups");
    let shown = id.clone();
    let (row, groups, managers) = state
        .db
        .read(move |c| {
            let row = users::get(c, tenant, &id)?.ok_or(DbError::NotFound)?;
            let groups = if want_groups {
                groups_of(c, row.pk)?
            } else {
                Vec::new()
            };
            let managers = managers_of(c, tenant, [&row])?;
            Ok::<_, ApiError>((row, groups, managers))
        })
        .await
        .map_err(|e| not_found_as(e, "User", &shown))?;
    if let Some(r) = not_modified(headers, row.version) {
        return Ok(r);
    }
    Ok(respond(
        ctx,
        StatusCode::OK,
        &row,
        &groups,
        &managers,
        projection,
    ))
}

pub(super) async fn replace(
    state: &State,
    ctx: &Ctx,
    id: String,
    body: Value,
    if_match: Option<String>,
    projection: &Projection,
) -> Result<Response<Body>, ApiError> {
    let mut data = resource::normalize(&USER_RESOURCE, body)?;
    let (row, groups, managers) = write_existing(
        state,
        ctx,
        &USER_RESOURCE,
        id,
        Action::ScimPut,
        StatusCode::OK,
        move |tx, wctx, id| {
            let row = load_for_write(tx, wctx, id, if_match.as_deref())?;
            default_active(&mut data, row.data.get("active"));
            let row = users::replace(tx, wctx.tenant_id, &row, data)?;
            sync::user_written(tx, wctx, row.pk)?;
            let managers = managers_of(tx, wctx.tenant_id, [&row])?;
            Ok((row.clone(), groups_of(tx, row.pk)?, managers))
        },
    )
    .await?;
    Ok(respond(
        ctx,
        StatusCode::OK,
        &row,
        &groups,
        &managers,
        projection,
    ))
}

/// PATCH answers 200 with the resource (Okta and Entra accept it; RFC 7644 §3.5.2 allows it).
/// A PATCH that changes nothing (Entra's periodic `active: true`) keeps the version.
pub(super) async fn patch(
    state: &State,
    ctx: &Ctx,
    id: String,
    ops: Vec<Operation>,
    if_match: Option<String>,
    projection: &Projection,
) -> Result<Response<Body>, ApiError> {
    let (row, groups, managers) = write_existing(
        state,
        ctx,
        &USER_RESOURCE,
        id,
        Action::ScimPatch,
        StatusCode::OK,
        move |tx, wctx, id| {
            let row = load_for_write(tx, wctx, id, if_match.as_deref())?;
            let mut data = row.data.clone();
            let outcome = patch::apply(&USER_RESOURCE, &row.id, &mut data, &ops)?;
            let row = if outcome.data_changed {
                let row = users::replace(tx, wctx.tenant_id, &row, data)?;
                sync::user_written(tx, wctx, row.pk)?;
                row
            } else {
                row
            };
            let managers = managers_of(tx, wctx.tenant_id, [&row])?;
            Ok((row.clone(), groups_of(tx, row.pk)?, managers))
        },
    )
    .await?;
    Ok(respond(
        ctx,
        StatusCode::OK,
        &row,
        &groups,
        &managers,
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
        &USER_RESOURCE,
        id,
        Action::ScimDelete,
        StatusCode::NO_CONTENT,
        move |tx, wctx, id| {
            let row = load_for_write(tx, wctx, id, if_match.as_deref())?;
            sync::user_deleting(tx, wctx, row.pk)?;
            users::delete(tx, wctx.tenant_id, &row.id)?;
            Ok(())
        },
    )
    .await?;
    Ok(no_content())
}

/// One page of users, rendered and projected: (total, resources, next cursor row).
pub(super) async fn list(
    state: &State,
    ctx: &Ctx,
    query: ListQuery,
    projection: &Projection,
) -> Result<(u64, Vec<Value>, Option<i64>), ApiError> {
    let tenant = ctx.tenant_id;
    let want_groups = projection.wants("groups");
    let (page, mut groups, managers) = state
        .db
        .read(move |c| {
            let page = users::list(c, tenant, &query)?;
            let groups = if want_groups {
                let pks: Vec<i64> = page.items.iter().map(|r| r.pk).collect();
                users::groups_of(c, &pks)?
            } else {
                Default::default()
            };
            let managers = managers_of(c, tenant, &page.items)?;
            Ok::<_, ApiError>((page, groups, managers))
        })
        .await?;
    let resources = page
        .items
        .iter()
        .map(|row| {
            let groups = groups.remove(&row.pk).unwrap_or_default();
            let mut v = render(ctx, row, &groups, &managers);
            projection.apply(&USER_RESOURCE, &mut v);
            v
        })
        .collect();
    Ok((page.total, resources, page.next_after_pk))
}
