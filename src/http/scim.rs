//! The SCIM endpoints (RFC 7644 §3), mounted at `/scim/v2` and `/scim`.
//!
//! Each handler parses the request into `scim` types, runs its storage work in one
//! `db` call (one transaction for writes) and renders the answer. Discovery is public;
//! everything else needs a bearer token, and the token alone decides the tenant.

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use serde_json::{Map, Value, json};

use super::{ApiError, Body, State, error_response, is_get, method_not_allowed, scim_json};
use crate::auth::tokens;
use crate::db::{self, ListQuery, filter_sql, users};
use crate::scim::list::{self, ListParams};
use crate::scim::projection::Projection;
use crate::scim::resource::{self, Meta};
use crate::scim::schema::{ALL_RESOURCE_TYPES, ResourceType, USER_RESOURCE};
use crate::scim::{ScimError, datetime, discovery};

/// Who is calling, and how to spell URLs back to them.
struct Ctx {
    tenant_id: i64,
    /// The SCIM base URL as the client reached it, e.g. `https://host/scim/v2`.
    base: String,
}

pub(super) async fn handle(state: &State, req: Request<Incoming>, prefix: &str) -> Response<Body> {
    match dispatch(state, req, prefix).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn dispatch(
    state: &State,
    req: Request<Incoming>,
    prefix: &str,
) -> Result<Response<Body>, ApiError> {
    let base = base_url(state, &req, prefix);
    let rest = req.uri().path()[prefix.len()..]
        .trim_matches('/')
        .to_string();
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method().clone();

    // Discovery: public, read-only.
    match segments.as_slice() {
        [s] if s.eq_ignore_ascii_case("ServiceProviderConfig") => {
            return Ok(discovery_get(&method, || {
                Ok(discovery::service_provider_config(
                    &base,
                    state.config.max_body_bytes,
                ))
            }));
        }
        [s] if s.eq_ignore_ascii_case("ResourceTypes") => {
            return Ok(discovery_get(&method, || {
                Ok(discovery::resource_types(&base))
            }));
        }
        [s, name] if s.eq_ignore_ascii_case("ResourceTypes") => {
            return Ok(discovery_get(&method, || {
                discovery::resource_type(&base, name)
            }));
        }
        [s] if s.eq_ignore_ascii_case("Schemas") => {
            return Ok(discovery_get(&method, || Ok(discovery::schemas(&base))));
        }
        [s, id] if s.eq_ignore_ascii_case("Schemas") => {
            return Ok(discovery_get(&method, || discovery::schema(&base, id)));
        }
        _ => {}
    }

    let tenant_id = authenticate(state, req.headers()).await?;
    let ctx = Ctx { tenant_id, base };

    let rt = match segments.first() {
        Some(s) => ALL_RESOURCE_TYPES
            .iter()
            .copied()
            .find(|rt| rt.endpoint[1..].eq_ignore_ascii_case(s)),
        None => None,
    };
    match (rt, segments.as_slice()) {
        (Some(rt), [_]) if rt.name == "User" => match method {
            m if is_get(&m) => list_users(state, &ctx, ListParams::from_query(query_pairs(&req).iter().map(|(k, v)| (k.as_str(), v.as_str())), rt)?).await,
            Method::POST => {
                let body = read_json(state, req).await?;
                create_user(state, &ctx, body).await
            }
            _ => Ok(method_not_allowed("GET, POST")),
        },
        (Some(rt), [_, search]) if *search == ".search" && rt.name == "User" => {
            if method != Method::POST {
                return Ok(method_not_allowed("POST"));
            }
            let body = read_json(state, req).await?;
            list_users(state, &ctx, ListParams::from_search(&body, rt)?).await
        }
        (Some(rt), [_, id]) if rt.name == "User" => {
            let id = id.to_string();
            let projection = projection_of(&req, rt)?;
            match method {
                m if is_get(&m) => get_user(state, &ctx, &id, &projection, req.headers()).await,
                Method::PUT => {
                    let if_match = if_match(req.headers());
                    let body = read_json(state, req).await?;
                    replace_user(state, &ctx, id, body, if_match, &projection).await
                }
                Method::DELETE => delete_user(state, &ctx, id, if_match(req.headers())).await,
                _ => Ok(method_not_allowed("GET, PUT, PATCH, DELETE")),
            }
        }
        (None, [s]) if *s == ".search" => {
            if method != Method::POST {
                return Ok(method_not_allowed("POST"));
            }
            let body = read_json(state, req).await?;
            // Root search spans resource types; with only Users searchable here so far,
            // it searches Users.
            list_users(state, &ctx, ListParams::from_search(&body, &USER_RESOURCE)?).await
        }
        (None, [s, ..]) if s.eq_ignore_ascii_case("Bulk") => {
            Err(ScimError::new(501, None, "bulk operations are not supported by this server (see /ServiceProviderConfig)").into())
        }
        (None, [s, ..]) if s.eq_ignore_ascii_case("Me") => {
            Err(ScimError::new(501, None, "the /Me endpoint is not supported: SCIM tokens belong to an IdP connection, not a user").into())
        }
        _ => Err(ScimError::not_found(format!("no SCIM endpoint at /{rest}")).into()),
    }
}

fn discovery_get(
    method: &Method,
    render: impl FnOnce() -> Result<Value, ScimError>,
) -> Response<Body> {
    if !is_get(method) {
        return method_not_allowed("GET");
    }
    match render() {
        Ok(v) => scim_json(StatusCode::OK, &v),
        Err(e) => error_response(&e),
    }
}

/// The SCIM base URL for responses: the configured public URL, else the Host the client used.
fn base_url(state: &State, req: &Request<Incoming>, prefix: &str) -> String {
    if let Some(root) = &state.config.base_url {
        return format!("{root}{prefix}");
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("localhost");
    format!("http://{host}{prefix}")
}

/// The tenant of the presented bearer token, or 401.
async fn authenticate(state: &State, headers: &HeaderMap) -> Result<i64, ApiError> {
    let unauthorized = |detail: &str| ApiError::Scim(ScimError::new(401, None, detail));
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("authentication required: send Authorization: Bearer <token>"))?
        .to_str()
        .map_err(|_| unauthorized("malformed Authorization header"))?
        .trim();
    let secret = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        // Some IdP forms take "the header value" and send the bare token.
        None if value.starts_with(tokens::TOKEN_PREFIX) => value,
        _ => return Err(unauthorized("unsupported authorization scheme: use Bearer")),
    };
    let hash = tokens::hash(secret);
    let now = time::OffsetDateTime::now_utc();
    let grant = state
        .db
        .read(move |c| {
            let grant = db::tokens::authenticate(c, &hash, &datetime::format(now))?;
            let stale = match grant {
                Some(g) => db::tokens::needs_touch(c, g.token_id, now)?,
                None => false,
            };
            Ok::<_, ApiError>(grant.map(|g| (g, stale)))
        })
        .await?;
    let Some((grant, stale)) = grant else {
        return Err(unauthorized("invalid, expired or revoked token"));
    };
    if stale {
        let when = datetime::format(now);
        let id = grant.token_id;
        state
            .db
            .write(move |tx| db::tokens::touch(tx, id, &when).map_err(ApiError::from))
            .await?;
    }
    Ok(grant.tenant_id)
}

fn query_pairs(req: &Request<Incoming>) -> Vec<(String, String)> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn projection_of(req: &Request<Incoming>, rt: &ResourceType) -> Result<Projection, ScimError> {
    let pairs = query_pairs(req);
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    Projection::parse(get("attributes"), get("excludedAttributes"), rt)
}

async fn read_json(state: &State, req: Request<Incoming>) -> Result<Value, ApiError> {
    let declared = super::content_length(&req);
    let bytes = super::read_body(req.into_body(), declared, state.config.max_body_bytes).await?;
    Ok(super::parse_json(&bytes)?)
}

// --- ETags (RFC 7644 §3.14) ------------------------------------------------------------

fn if_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Whether an `If-Match`/`If-None-Match` list names `version` (weak comparison).
fn etag_matches(list: &str, version: i64) -> bool {
    let ours = resource::etag(version);
    let strip = |t: &str| {
        t.trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .to_string()
    };
    list.split(',')
        .any(|t| t.trim() == "*" || strip(t) == strip(&ours))
}

fn check_if_match(if_match: Option<&str>, version: i64) -> Result<(), ScimError> {
    match if_match {
        Some(list) if !etag_matches(list, version) => Err(ScimError::new(
            412,
            None,
            format!(
                "the resource has changed: its version is {}, not {list}",
                resource::etag(version)
            ),
        )),
        _ => Ok(()),
    }
}

fn with_etag(mut r: Response<Body>, version: i64) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(&resource::etag(version)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

// --- Users --------------------------------------------------------------------------------

fn user_meta(ctx: &Ctx, row: &users::UserRow) -> Meta {
    Meta {
        created: row.created.clone(),
        last_modified: row.last_modified.clone(),
        version: row.version,
        location: format!("{}/Users/{}", ctx.base, row.id),
    }
}

fn render_user(ctx: &Ctx, row: &users::UserRow, groups: &[users::GroupRef]) -> Value {
    let mut computed = Vec::new();
    if !groups.is_empty() {
        let list: Vec<Value> = groups
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
    resource::render(
        &USER_RESOURCE,
        &row.id,
        &row.data,
        computed,
        &user_meta(ctx, row),
    )
}

fn user_response(
    ctx: &Ctx,
    status: StatusCode,
    row: &users::UserRow,
    groups: &[users::GroupRef],
    projection: &Projection,
) -> Response<Body> {
    let mut body = render_user(ctx, row, groups);
    projection.apply(&USER_RESOURCE, &mut body);
    let mut r = with_etag(scim_json(status, &body), row.version);
    if status == StatusCode::CREATED
        && let Ok(v) = HeaderValue::from_str(&format!("{}/Users/{}", ctx.base, row.id))
    {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// `active` defaults to true on create: IdPs that omit it mean an active user, and a
/// user read back without `active` would be suspended by the next read-modify-write PUT.
fn default_active(data: &mut Map<String, Value>, previous: Option<&Value>) {
    if !data.contains_key("active") {
        data.insert(
            "active".into(),
            previous.cloned().unwrap_or(Value::Bool(true)),
        );
    }
}

async fn create_user(state: &State, ctx: &Ctx, body: Value) -> Result<Response<Body>, ApiError> {
    let mut data = resource::normalize(&USER_RESOURCE, body)?;
    default_active(&mut data, None);
    let tenant = ctx.tenant_id;
    let row = state
        .db
        .write(move |tx| users::create(tx, tenant, &data).map_err(ApiError::from))
        .await?;
    Ok(user_response(
        ctx,
        StatusCode::CREATED,
        &row,
        &[],
        &Projection::default(),
    ))
}

async fn get_user(
    state: &State,
    ctx: &Ctx,
    id: &str,
    projection: &Projection,
    headers: &HeaderMap,
) -> Result<Response<Body>, ApiError> {
    let tenant = ctx.tenant_id;
    let id_owned = id.to_string();
    let want_groups = projection.wants("groups");
    let (row, groups) = state
        .db
        .read(move |c| {
            let row = users::get(c, tenant, &id_owned)?.ok_or(db::DbError::NotFound)?;
            let groups = if want_groups {
                users::groups_of(c, &[row.pk])?
                    .remove(&row.pk)
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            Ok::<_, ApiError>((row, groups))
        })
        .await
        .map_err(|e| not_found_as(e, "User", id))?;
    if let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        && etag_matches(inm, row.version)
    {
        let mut r = Response::new(Body::default());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        return Ok(with_etag(r, row.version));
    }
    Ok(user_response(
        ctx,
        StatusCode::OK,
        &row,
        &groups,
        projection,
    ))
}

async fn replace_user(
    state: &State,
    ctx: &Ctx,
    id: String,
    body: Value,
    if_match: Option<String>,
    projection: &Projection,
) -> Result<Response<Body>, ApiError> {
    let mut data = resource::normalize(&USER_RESOURCE, body)?;
    let tenant = ctx.tenant_id;
    let shown_id = id.clone();
    let (row, groups) = state
        .db
        .write(move |tx| {
            let row = users::get(tx, tenant, &id)?.ok_or(db::DbError::NotFound)?;
            check_if_match(if_match.as_deref(), row.version)?;
            // An omitted `active` keeps its value (idp-behaviour.md §9 item 10).
            default_active(&mut data, row.data.get("active"));
            let row = users::replace(tx, tenant, &row, data)?;
            let groups = users::groups_of(tx, &[row.pk])?
                .remove(&row.pk)
                .unwrap_or_default();
            Ok::<_, ApiError>((row, groups))
        })
        .await
        .map_err(|e| not_found_as(e, "User", &shown_id))?;
    Ok(user_response(
        ctx,
        StatusCode::OK,
        &row,
        &groups,
        projection,
    ))
}

async fn delete_user(
    state: &State,
    ctx: &Ctx,
    id: String,
    if_match: Option<String>,
) -> Result<Response<Body>, ApiError> {
    let tenant = ctx.tenant_id;
    let shown_id = id.clone();
    state
        .db
        .write(move |tx| {
            if let Some(list) = if_match.as_deref() {
                let row = users::get(tx, tenant, &id)?.ok_or(db::DbError::NotFound)?;
                check_if_match(Some(list), row.version)?;
            }
            users::delete(tx, tenant, &id).map_err(ApiError::from)
        })
        .await
        .map_err(|e| not_found_as(e, "User", &shown_id))?;
    let mut r = Response::new(Body::default());
    *r.status_mut() = StatusCode::NO_CONTENT;
    Ok(r)
}

async fn list_users(
    state: &State,
    ctx: &Ctx,
    params: ListParams,
) -> Result<Response<Body>, ApiError> {
    let projection = Projection::parse(
        params.attributes.as_deref(),
        params.excluded_attributes.as_deref(),
        &USER_RESOURCE,
    )?;
    let query = list_query(&params, &USER_RESOURCE)?;
    let tenant = ctx.tenant_id;
    let want_groups = projection.wants("groups");
    let (page, mut groups) = state
        .db
        .read(move |c| {
            let page = users::list(c, tenant, &query)?;
            let groups = if want_groups {
                let pks: Vec<i64> = page.items.iter().map(|r| r.pk).collect();
                users::groups_of(c, &pks)?
            } else {
                Default::default()
            };
            Ok::<_, ApiError>((page, groups))
        })
        .await?;
    let resources = page
        .items
        .iter()
        .map(|row| {
            let mut v = render_user(ctx, row, &groups.remove(&row.pk).unwrap_or_default());
            projection.apply(&USER_RESOURCE, &mut v);
            v
        })
        .collect();
    let start = if params.cursor.is_some() {
        1
    } else {
        params.start_index
    };
    let next = params
        .cursor
        .as_ref()
        .and(page.next_after_pk)
        .map(list::encode_cursor);
    Ok(scim_json(
        StatusCode::OK,
        &list::list_response(page.total, start, resources, next),
    ))
}

/// The storage query for validated list parameters.
fn list_query(params: &ListParams, rt: &ResourceType) -> Result<ListQuery, ScimError> {
    let filter = params
        .filter
        .as_ref()
        .map(|f| filter_sql::compile(f, rt))
        .transpose()?;
    let after_pk = match params.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(list::decode_cursor(c)?),
    };
    if params.cursor.is_some() && params.sort_by.is_some() {
        return Err(ScimError::invalid_value(
            "cursor pagination cannot be combined with sortBy; use startIndex paging to sort",
        ));
    }
    Ok(ListQuery {
        filter,
        sort_by: params.sort_by,
        descending: params.descending,
        start_index: params.start_index,
        count: params.count,
        after_pk: if params.cursor.is_some() {
            Some(after_pk.unwrap_or(0))
        } else {
            None
        },
    })
}

/// A precise 404 detail naming the resource the client asked for.
fn not_found_as(e: ApiError, kind: &str, id: &str) -> ApiError {
    match e {
        ApiError::Scim(s) if s.status == 404 => {
            ApiError::Scim(ScimError::not_found(format!("{kind} {id} not found")))
        }
        other => other,
    }
}
