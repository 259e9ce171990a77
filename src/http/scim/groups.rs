//! `/Groups` (RFC 7644 §3.3–3.6): parse, call the use case in `ops::groups`, render.
//!
//! Reads load members only when the response carries them (`excludedAttributes=members`
//! skips them entirely), and a whole member list is written straight into the body.

use bytes::Bytes;
use hyper::{HeaderMap, Response, StatusCode};
use serde_json::{Value, json};

use super::{
    Ctx, Endpoint, conditional_answer, no_content, not_found_as, resource_bytes_response,
    resource_response, with_etag,
};
use crate::db::ListQuery;
use crate::db::groups::{GroupMember, GroupRow, MemberKind};
use crate::http::{ApiError, Body, State};
use crate::ops::groups::{self, GroupView};
use crate::scim::patch::Operation;
use crate::scim::projection::Projection;
use crate::scim::resource::{self, Meta, Preconditions};
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

fn member_out<'a>(base: &str, m: &'a GroupMember) -> MemberOut<'a> {
    let endpoint = match m.kind {
        MemberKind::User => "Users",
        MemberKind::Group => "Groups",
    };
    MemberOut {
        value: &m.value,
        reference: format!("{base}/{endpoint}/{}", m.value),
        kind: m.kind.as_str(),
        display: m.display.as_deref(),
    }
}

/// A group as a `Value`, with `members` when they were read: an empty group shows
/// `"members": []` rather than no key. RFC 7643 §2.5 holds the two equal, but Microsoft's
/// reference SCIM tests read the key of a group just created without members.
fn render(ctx: &Ctx, row: &GroupRow, members: Option<&[GroupMember]>) -> Value {
    let mut computed = Vec::new();
    if let Some(members) = members {
        let list = members
            .iter()
            .map(|m| json!(member_out(&ctx.base, m)))
            .collect();
        computed.push(("members", Value::Array(list)));
    }
    let meta = Meta {
        created: row.created.clone(),
        last_modified: row.last_modified.clone(),
        version: row.version,
        location: location(ctx, &row.id),
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
        return resource_response(status, &body, &location(ctx, &row.id), row.version);
    };
    let out = whole_bytes(ctx, row, members, projection);
    resource_bytes_response(status, out, Some(&location(ctx, &row.id)), row.version)
}

/// Where group `id` is: `meta.location`, and the `Location` of its creation whatever the
/// projection leaves of `meta` (RFC 7644 §3.3).
fn location(ctx: &Ctx, id: &str) -> String {
    format!("{}/Groups/{id}", ctx.base)
}

/// A group's answer with every member, serialised with the members written straight into
/// the bytes ([`Around`]).
fn whole_bytes(
    ctx: &Ctx,
    row: &GroupRow,
    members: &[GroupMember],
    projection: &Projection,
) -> Vec<u8> {
    let around = Around::render(ctx, row, projection);
    // Sized for the whole answer up front: growing by doubling would copy it repeatedly.
    let mut out = Vec::with_capacity(around.head.len() + members.len() * (ctx.base.len() + 128));
    out.extend_from_slice(&around.head);
    write_members(&ctx.base, &mut out, members, true);
    out.extend_from_slice(&around.tail);
    out
}

/// A group's answer without its members, split where they go, so that they can be written
/// straight into the body (no `Value` per member) after `head` and before `tail`.
struct Around {
    /// Everything before the first member, `,"members":[` included.
    head: Vec<u8>,
    /// `]`, then `meta` if shown, and the closing brace.
    tail: Vec<u8>,
}

impl Around {
    fn render(ctx: &Ctx, row: &GroupRow, projection: &Projection) -> Around {
        let mut body = render(ctx, row, None);
        projection.apply(&GROUP_RESOURCE, &mut body);
        let meta = body.as_object_mut().and_then(|o| o.shift_remove("meta"));
        let mut head = serde_json::to_vec(&body).expect("a JSON value always serialises");
        head.pop(); // the closing brace; `body` always holds at least schemas and id
        head.extend_from_slice(br#","members":["#);
        let mut tail = b"]".to_vec();
        if let Some(meta) = meta {
            tail.extend_from_slice(br#","meta":"#);
            serde_json::to_writer(&mut tail, &meta).expect("a JSON value always serialises");
        }
        tail.push(b'}');
        Around { head, tail }
    }
}

/// Members as JSON array items; `first` when no member precedes them in the array. The
/// bytes `MemberOut` serialises to, written by hand: a 100 000-member answer spent a
/// fifth of its time in serde_json's byte-by-byte escaping of strings that need none, and
/// as much again allocating each member's `$ref`.
fn write_members(base: &str, out: &mut Vec<u8>, members: &[GroupMember], first: bool) {
    let mut escaped_base = Vec::with_capacity(base.len());
    write_str_content(&mut escaped_base, base);
    for (i, m) in members.iter().enumerate() {
        if i > 0 || !first {
            out.push(b',');
        }
        let endpoint: &[u8] = match m.kind {
            MemberKind::User => b"/Users/",
            MemberKind::Group => b"/Groups/",
        };
        out.extend_from_slice(br#"{"value":""#);
        let value = out.len();
        write_str_content(out, &m.value);
        let value = value..out.len();
        out.extend_from_slice(br#"","$ref":""#);
        out.extend_from_slice(&escaped_base);
        out.extend_from_slice(endpoint);
        out.extend_from_within(value);
        out.extend_from_slice(br#"","type":""#);
        out.extend_from_slice(m.kind.as_str().as_bytes());
        out.push(b'"');
        if let Some(display) = &m.display {
            out.extend_from_slice(br#","display":""#);
            write_str_content(out, display);
            out.push(b'"');
        }
        out.push(b'}');
    }
}

/// `s` as inside a JSON string, escaped as serde_json escapes it; copied whole when it
/// holds nothing to escape (a quote, a backslash, a control character), as ids and most
/// names do.
fn write_str_content(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.extend_from_slice(s.as_bytes());
    } else {
        let quoted = serde_json::to_vec(s).expect("a string always serialises");
        out.extend_from_slice(&quoted[1..quoted.len() - 1]);
    }
}

/// The answer to a GET of a group with more members than one chunk: the same bytes as
/// [`respond`] would build, sent as they are read, so that the server holds a couple of
/// chunks of the member list rather than all of it. The status and headers (the ETag is
/// the group's version) go out before the members are read; should the read fail half
/// way, the connection ends without the body's last chunk.
fn respond_streamed(
    ctx: &Ctx,
    row: &GroupRow,
    first: Vec<GroupMember>,
    mut rest: groups::MemberChunks,
    projection: &Projection,
) -> Response<Body> {
    let around = Around::render(ctx, row, projection);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    let base = ctx.base.clone();
    let group = row.id.clone();
    let mut out = around.head;
    tokio::spawn(async move {
        write_members(&base, &mut out, &first, true);
        drop(first);
        if tx.send(Ok(Bytes::from(out))).await.is_err() {
            return;
        }
        while let Some(chunk) = rest.next().await {
            let members = match chunk {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(group = %group, error = %e, "reading a group's members failed half way through its answer");
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            let mut out = Vec::with_capacity(members.len() * (base.len() + 128));
            write_members(&base, &mut out, &members, false);
            if !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
                return;
            }
        }
        let _ = tx.send(Ok(Bytes::from(around.tail))).await;
    });
    let mut r = Response::new(Body::Chunks(rx, None));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(crate::http::SCIM_CONTENT_TYPE),
    );
    super::with_etag(r, row.version)
}

/// A written group's 200 answer. Past [`groups::PATCH_RESPONSE_MEMBER_LIMIT`] members
/// the writer does not list them (every write waits on it): asked for, they are read
/// back after the commit, streamed as a GET streams them.
async fn answer_written(
    state: &State,
    ctx: &Ctx,
    group: groups::GroupView,
    projection: &Projection,
) -> Result<Response<Body>, ApiError> {
    if projection.wants("members") && group.members.is_none() {
        let id = group.row.id.clone();
        return <Groups as Endpoint>::get(state, ctx, id, projection, &HeaderMap::new()).await;
    }
    Ok(respond_view(ctx, StatusCode::OK, &group, projection))
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
        if projection.wants_whole("members") {
            // Every member goes out: read them in chunks, and stream past the first.
            let (row, mut chunks) = groups::get_streamed(&state.db, ctx.tenant_id, id)
                .await
                .map_err(|e| not_found_as(e.into(), "Group", &shown))?;
            if let Some(r) = conditional_answer(headers, row.version) {
                return Ok(r);
            }
            let first = chunks.next().await.transpose()?.unwrap_or_default();
            if chunks.done() {
                return Ok(respond(ctx, StatusCode::OK, &row, Some(&first), projection));
            }
            return Ok(respond_streamed(ctx, &row, first, chunks, projection));
        }
        let group = groups::get(&state.db, ctx.tenant_id, id, projection.wants("members"))
            .await
            .map_err(|e| not_found_as(e.into(), "Group", &shown))?;
        if let Some(r) = conditional_answer(headers, group.row.version) {
            return Ok(r);
        }
        Ok(respond_view(ctx, StatusCode::OK, &group, projection))
    }

    async fn replace(
        state: &State,
        ctx: &Ctx,
        id: String,
        body: Value,
        pre: Preconditions,
        projection: &Projection,
    ) -> Result<Response<Body>, ApiError> {
        let want_members = projection.wants("members");
        let group = groups::replace(
            &state.db,
            &ctx.actor,
            ctx.tenant_id,
            id,
            body,
            pre,
            want_members,
        )
        .await?;
        answer_written(state, ctx, group, projection).await
    }

    /// PATCH answers 204 No Content with the group's new ETag, as Entra prefers and Okta
    /// accepts (idp-behaviour.md §1.7, §2.7, §9 item 20): an IdP reads nothing from the
    /// answer, and listing the members made each one-member change pay for reading them
    /// all on the writer, which every write waits on (BENCHMARKS.md, twenty-fourth). A
    /// request that names `attributes` or `excludedAttributes` gets 200 with the group so
    /// projected (RFC 7644 §3.5.2 requires it for `attributes`), its members included up
    /// to [`groups::PATCH_RESPONSE_MEMBER_LIMIT`].
    async fn patch(
        state: &State,
        ctx: &Ctx,
        id: String,
        ops: Vec<Operation>,
        pre: Preconditions,
        projection: &Projection,
    ) -> Result<Response<Body>, ApiError> {
        let answered = !projection.is_default();
        let want_members = answered && projection.wants("members");
        let group = groups::patch(
            &state.db,
            &ctx.actor,
            ctx.tenant_id,
            id,
            ops,
            pre,
            want_members,
        )
        .await?;
        if !answered {
            return Ok(with_etag(no_content(), group.row.version));
        }
        answer_written(state, ctx, group, projection).await
    }

    async fn delete(
        state: &State,
        ctx: &Ctx,
        id: String,
        pre: Preconditions,
    ) -> Result<Response<Body>, ApiError> {
        groups::delete(&state.db, &ctx.actor, ctx.tenant_id, id, pre).await?;
        Ok(no_content())
    }

    /// One page of groups, rendered and projected: (total, resources, where the next page resumes).
    async fn list(
        state: &State,
        ctx: &Ctx,
        query: ListQuery,
        projection: &Projection,
    ) -> Result<(u64, Vec<Vec<u8>>, Option<crate::scim::list::Position>), ApiError> {
        let (page, members) = groups::list(
            &state.db,
            ctx.tenant_id,
            query,
            projection.wants("members"),
            state.resumes.clone(),
        )
        .await?;
        // Each group's members are written straight into its bytes, as a GET of one group
        // writes them (no `Value` per member), and let go of once written: a page of big
        // groups holds its answer and one group's member list, not a tree of every member.
        let whole = projection.wants_whole("members");
        let resources = page
            .items
            .iter()
            .zip(members)
            .map(|(row, members)| match members {
                Some(members) if whole && !members.is_empty() => {
                    whole_bytes(ctx, row, &members, projection)
                }
                members => {
                    let mut v = render(ctx, row, members.as_deref());
                    projection.apply(&GROUP_RESOURCE, &mut v);
                    serde_json::to_vec(&v).expect("a JSON value always serialises")
                }
            })
            .collect();
        Ok((page.total, resources, page.next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written members are what serialising `MemberOut` writes, byte for byte,
    /// for names that need escaping and ones that do not.
    #[test]
    fn members_are_written_as_serde_writes_them() {
        let member = |value: &str, kind, display: Option<&str>| GroupMember {
            value: value.into(),
            kind,
            display: display.map(str::to_string),
        };
        let members = [
            member(
                "2819c223-7f76-453a-919d-413861904646",
                MemberKind::User,
                Some("Babs Jensen"),
            ),
            member("g-1", MemberKind::Group, None),
            member(
                "we\"ird\\id\n",
                MemberKind::User,
                Some("Ünïcødé \u{1} \t \"q\" \\ / \u{7f}"),
            ),
            member("", MemberKind::User, Some("")),
            // One kind of escape each.
            member("q\"", MemberKind::User, Some("say \"hi\"")),
            member("b\\", MemberKind::Group, Some("back\\slash")),
            member("c\u{1f}", MemberKind::User, Some("tab\there")),
        ];
        for base in ["https://scim.example.com/scim/v2", "https://h/t/\"odd\\"] {
            let mut out = Vec::new();
            write_members(base, &mut out, &members[..1], true);
            write_members(base, &mut out, &members[1..], false);
            let expected: Vec<String> = members
                .iter()
                .map(|m| serde_json::to_string(&member_out(base, m)).unwrap())
                .collect();
            assert_eq!(String::from_utf8(out).unwrap(), expected.join(","));
        }
    }
}
