//! `/Groups` (RFC 7644 §3.3–3.6): parse, call the use case in `ops::groups`, render.
//!
//! Reads load members only when the response carries them (`excludedAttributes=members`
//! skips them entirely), and a whole member list is written straight into the body.

use hyper::{HeaderMap, Response, StatusCode};
use serde_json::{Value, json};

use super::{
    Ctx, Endpoint, no_content, not_found_as, not_modified, resource_bytes_response,
    resource_response,
};
use crate::db::ListQuery;
use crate::db::groups::{GroupMember, GroupRow, MemberKind};
use crate::http::{ApiError, Body, State};
use crate::ops::groups::{self, GroupView};
use crate::scim::patch::Operation;
use crate::scim::projection::Projection;
use crate::scim::resource::{self, Meta};
use crate::scim::schema::{GROUP_RESOURCE, ResourceType};

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

fn member_out<'a>(ctx: &Ctx, m: &'a GroupMember) -> MemberOut<'a> {
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

fn render(ctx: &Ctx, row: &GroupRow, members: Option<&[GroupMember]>) -> Value {
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
fn respond_view(
    ctx: &Ctx,
    status: StatusCode,
    group: &GroupView,
    projection: &Projection,
) -> Response<Body> {
    respond(
        ctx,
        status,
        &group.row,
        group.members.as_deref(),
        projection,
    )
}

fn respond(
    ctx: &Ctx,
    status: StatusCode,
    row: &GroupRow,
    members: Option<&[GroupMember]>,
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

/// `/Groups`.
pub(super) struct Groups;

impl Endpoint for Groups {
    const RT: &'static ResourceType = &GROUP_RESOURCE;

    async fn create(
        state: &State,
        ctx: &Ctx,
        body: Value,
        projection: &Projection,
    ) -> Result<Response<Body>, ApiError> {
        let group = groups::create(&state.db, &ctx.actor, ctx.tenant_id, body).await?;
        Ok(respond_view(ctx, StatusCode::CREATED, &group, projection))
    }

    async fn get(
        state: &State,
        ctx: &Ctx,
        id: String,
        projection: &Projection,
        headers: &HeaderMap,
    ) -> Result<Response<Body>, ApiError> {
        let shown = id.clone();
        let group = groups::get(&state.db, ctx.tenant_id, id, projection.wants("members"))
            .await
            .map_err(|e| not_found_as(e.into(), "Group", &shown))?;
        if let Some(r) = not_modified(headers, group.row.version) {
            return Ok(r);
        }
        Ok(respond_view(ctx, StatusCode::OK, &group, projection))
    }

    async fn replace(
        state: &State,
        ctx: &Ctx,
        id: String,
        body: Value,
        if_match: Option<String>,
        projection: &Projection,
    ) -> Result<Response<Body>, ApiError> {
        let want_members = projection.wants("members");
        let group = groups::replace(
            &state.db,
            &ctx.actor,
            ctx.tenant_id,
            id,
            body,
            if_match,
            want_members,
        )
        .await?;
        Ok(respond_view(ctx, StatusCode::OK, &group, projection))
    }

    /// PATCH answers 200 with the group; its members are included up to
    /// [`groups::PATCH_RESPONSE_MEMBER_LIMIT`].
    async fn patch(
        state: &State,
        ctx: &Ctx,
        id: String,
        ops: Vec<Operation>,
        if_match: Option<String>,
        projection: &Projection,
    ) -> Result<Response<Body>, ApiError> {
        let want_members = projection.wants("members");
        let group = groups::patch(
            &state.db,
            &ctx.actor,
            ctx.tenant_id,
            id,
            ops,
            if_match,
            want_members,
        )
        .await?;
        Ok(respond_view(ctx, StatusCode::OK, &group, projection))
    }

    async fn delete(
        state: &State,
        ctx: &Ctx,
        id: String,
        if_match: Option<String>,
    ) -> Result<Response<Body>, ApiError> {
        groups::delete(&state.db, &ctx.actor, ctx.tenant_id, id, if_match).await?;
        Ok(no_content())
    }

    /// One page of groups, rendered and projected: (total, resources, where the next page resumes).
    async fn list(
        state: &State,
        ctx: &Ctx,
        query: ListQuery,
        projection: &Projection,
    ) -> Result<(u64, Vec<Value>, Option<crate::scim::list::Position>), ApiError> {
        let (page, members) =
            groups::list(&state.db, ctx.tenant_id, query, projection.wants("members")).await?;
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
        Ok((page.total, resources, page.next))
    }
}
