//! `/Users` (RFC 7644 §3.3–3.6): parse, call the use case in `ops::users`, render.

use std::collections::HashSet;

use hyper::{HeaderMap, Response, StatusCode};
use serde_json::{Value, json};

use super::{Ctx, Endpoint, conditional_answer, no_content, resource_response};
use crate::db::users::{GroupRef, StoredUser, UserRow};
use crate::http::{ApiError, Body, State};
use crate::ops::users::{self, StoredView, UserView};
use crate::scim::patch::Operation;
use crate::scim::projection::Projection;
use crate::scim::resource::{self, Meta, Preconditions, StoredMembers};
use crate::scim::schema::{ResourceType, USER_RESOURCE};

/// A user's `groups`: the groups it is a direct member of.
fn groups_of(ctx: &Ctx, groups: &[GroupRef]) -> Vec<Value> {
    groups
        .iter()
        .map(|g| {
            json!({
                "value": g.id,
                "$ref": format!("{}/Groups/{}", ctx.base, g.id),
                "display": g.display,
                "type": "direct",
            })
        })
        .collect()
}

/// The meta of the user `id` with these times and version.
fn meta_of(ctx: &Ctx, id: &str, created: &str, last_modified: &str, version: i64) -> Meta {
    Meta {
        created: created.to_owned(),
        last_modified: last_modified.to_owned(),
        version,
        location: location(ctx, id),
    }
}

/// Where user `id` is: `meta.location`, and the `Location` of its creation whatever the
/// projection leaves of `meta` (RFC 7644 §3.3).
fn location(ctx: &Ctx, id: &str) -> String {
    format!("{}/Users/{id}", ctx.base)
}

fn render(ctx: &Ctx, row: &UserRow, groups: &[GroupRef], managers: &HashSet<String>) -> Value {
    let mut computed = Vec::new();
    if !groups.is_empty() {
        computed.push(("groups", Value::Array(groups_of(ctx, groups))));
    }
    let meta = meta_of(ctx, &row.id, &row.created, &row.last_modified, row.version);
    let mut out = resource::render(&USER_RESOURCE, &row.id, &row.data, computed, &meta);
    if let Some(id) = resource::manager_id(&row.data).filter(|id| managers.contains(*id)) {
        resource::show_manager(&mut out, location(ctx, id));
    }
    out
}

/// [`render`] serialised without building it: the same bytes, for a user whose manager
/// is not completed (whose stored data goes out as stored) and a default projection.
fn write(ctx: &Ctx, row: &StoredUser, data: &StoredMembers, groups: &[GroupRef]) -> Vec<u8> {
    let mut computed = Vec::new();
    if !groups.is_empty() {
        let list = Value::Array(groups_of(ctx, groups));
        computed.push(serde_json::to_vec(&list).expect("a JSON value always serialises"));
    }
    let computed: Vec<(&str, &[u8])> = computed.iter().map(|c| ("groups", c.as_slice())).collect();
    let meta = meta_of(ctx, &row.id, &row.created, &row.last_modified, row.version);
    let mut out = Vec::with_capacity(row.data.len() + 512);
    resource::write_rendered(&mut out, &USER_RESOURCE, &row.id, data, &computed, &meta);
    out
}

/// A user read from storage, serialised: its stored data written out as stored for the
/// default projection when no manager needs completing, else parsed and rendered.
fn stored_bytes(
    ctx: &Ctx,
    row: StoredUser,
    groups: &[GroupRef],
    managers: &HashSet<String>,
    projection: &Projection,
) -> Result<Vec<u8>, ApiError> {
    if projection.is_default()
        && let Some(data) = StoredMembers::parse(&row.data)
        && !data.manager_id().is_some_and(|id| managers.contains(&id))
    {
        return Ok(write(ctx, &row, &data, groups));
    }
    let row = row.parse()?;
    let mut v = render(ctx, &row, groups, managers);
    projection.apply(&USER_RESOURCE, &mut v);
    Ok(serde_json::to_vec(&v).expect("a JSON value always serialises"))
}

fn respond(
    ctx: &Ctx,
    status: StatusCode,
    user: &UserView,
    projection: &Projection,
) -> Response<Body> {
    let mut body = render(ctx, &user.row, &user.groups, &user.managers);
    projection.apply(&USER_RESOURCE, &mut body);
    resource_response(
        status,
        &body,
        &location(ctx, &user.row.id),
        user.row.version,
    )
}

/// `/Users`.
pub(super) struct Users;

impl Endpoint for Users {
    const RT: &'static ResourceType = &USER_RESOURCE;

    async fn create(
        state: &State,
        ctx: &Ctx,
        body: Value,
        projection: &Projection,
    ) -> Result<Response<Body>, ApiError> {
        let user = users::create(&state.db, &ctx.actor, ctx.tenant_id, body).await?;
        Ok(respond(ctx, StatusCode::CREATED, &user, projection))
    }

    async fn get(
        state: &State,
        ctx: &Ctx,
        id: String,
        projection: &Projection,
        headers: &HeaderMap,
    ) -> Result<Response<Body>, ApiError> {
        let shown = id.clone();
        let user = users::get(&state.db, ctx.tenant_id, id, projection.wants("groups"))
            .await
            .map_err(|e| super::not_found_as(e.into(), "User", &shown))?;
        if let Some(r) = conditional_answer(headers, user.row.version) {
            return Ok(r);
        }
        let version = user.row.version;
        let StoredView {
            row,
            groups,
            managers,
        } = user;
        let body = stored_bytes(ctx, row, &groups, &managers, projection)?;
        Ok(super::resource_bytes_response(
            StatusCode::OK,
            body,
            None,
            version,
        ))
    }

    async fn replace(
        state: &State,
        ctx: &Ctx,
        id: String,
        body: Value,
        pre: Preconditions,
        projection: &Projection,
    ) -> Result<Response<Body>, ApiError> {
        let user = users::replace(&state.db, &ctx.actor, ctx.tenant_id, id, body, pre).await?;
        Ok(respond(ctx, StatusCode::OK, &user, projection))
    }

    /// PATCH answers 200 with the resource (Okta and Entra accept it; RFC 7644 §3.5.2 allows it).
    async fn patch(
        state: &State,
        ctx: &Ctx,
        id: String,
        ops: Vec<Operation>,
        pre: Preconditions,
        projection: &Projection,
    ) -> Result<Response<Body>, ApiError> {
        let user = users::patch(&state.db, &ctx.actor, ctx.tenant_id, id, ops, pre).await?;
        Ok(respond(ctx, StatusCode::OK, &user, projection))
    }

    async fn delete(
        state: &State,
        ctx: &Ctx,
        id: String,
        pre: Preconditions,
    ) -> Result<Response<Body>, ApiError> {
        users::delete(&state.db, &ctx.actor, ctx.tenant_id, id, pre).await?;
        Ok(no_content())
    }

    /// One page of users, rendered and projected: (total, resources, where the next page resumes).
    async fn list(
        state: &State,
        ctx: &Ctx,
        query: crate::db::ListQuery,
        projection: &Projection,
    ) -> Result<(u64, Vec<Vec<u8>>, Option<crate::scim::list::Position>), ApiError> {
        let users::UserPage {
            page,
            mut groups,
            managers,
        } = users::list(
            &state.db,
            ctx.tenant_id,
            query,
            projection.wants("groups"),
            state.resumes.clone(),
        )
        .await?;
        let mut resources = Vec::with_capacity(page.items.len());
        for row in page.items {
            let groups = groups.remove(&row.pk).unwrap_or_default();
            resources.push(stored_bytes(ctx, row, &groups, &managers, projection)?);
        }
        Ok((page.total, resources, page.next))
    }
}
