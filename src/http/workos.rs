//! The WorkOS Directory Sync API shapes, at the root of the listener (the official Node SDK
//! drops any path prefix of its base URL): `/directories`, `/directory_users`,
//! `/directory_groups` (each with `/{id}`) and `/events`, read with an app API key as
//! `Authorization: Bearer …`. Errors are WorkOS's `{"message", "code"}`, always JSON.

use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

use super::{Body, RequestBody, State, is_get, read_only};
use crate::db::Db;
use crate::ops::apikeys;
use crate::ops::workos::{self, Cursor, Error, EventQuery, Order, Page, Paging, UserShape};

/// Whether `path` is one of the WorkOS endpoints.
pub(super) fn serves(path: &str) -> bool {
    let top = path.trim_start_matches('/').split('/').next().unwrap_or("");
    matches!(
        top,
        "directories" | "directory_users" | "directory_groups" | "events"
    )
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    text_response(status, body.to_string())
}

fn text_response(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    super::challenged(json_response(
        status,
        &json!({"message": message, "code": code}),
    ))
}

fn failure(e: Error) -> Response<Body> {
    match e {
        Error::Invalid(m) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request_parameters",
            &m,
        ),
        Error::NotFound(m) => error(StatusCode::NOT_FOUND, "entity_not_found", &m),
        Error::Gone(m) => error(StatusCode::GONE, "cursor_expired", &m),
        Error::Db(e) => {
            tracing::error!(cause = %e, "WorkOS-compatible request failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "internal error",
            )
        }
    }
}

/// The query parameters, by name; a repeated one keeps every value.
struct Query(Vec<(String, String)>);

impl Query {
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    }

    /// Every value of `name`, repeated (`events=a&events=b`), comma-separated (`events=a,b`)
    /// or in the bracket form query-string libraries write for arrays (`events[]=a`,
    /// `events[0]=a`).
    fn all(&self, name: &str) -> Vec<String> {
        let named = |k: &str| {
            k == name
                || k.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix('['))
                    .and_then(|rest| rest.strip_suffix(']'))
                    .is_some_and(|i| i.bytes().all(|b| b.is_ascii_digit()))
        };
        self.0
            .iter()
            .filter(|(k, _)| named(k))
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    }

    fn paging(&self, default_order: Order) -> Result<Paging, Error> {
        let limit = match self.get("limit") {
            None => 10,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=100).contains(&n) => n,
                _ => return Err(Error::Invalid("limit must be between 1 and 100".into())),
            },
        };
        let cursor = match (self.get("after"), self.get("before")) {
            (Some(a), _) => Cursor::After(a),
            (None, Some(b)) => Cursor::Before(b),
            (None, None) => Cursor::First,
        };
        let order = match self.get("order") {
            Some(o) => o.parse()?,
            None => default_order,
        };
        Ok(Paging {
            limit,
            cursor,
            order,
        })
    }
}

/// The query parameters of the WorkOS-compatible API that take one value.
const SINGLE_VALUED: [&str; 14] = [
    "limit",
    "before",
    "after",
    "order",
    "directory",
    "group",
    "user",
    "email",
    "idp_id",
    "organization_id",
    "range_start",
    "range_end",
    "search",
    "domain",
];

fn list(page: Page) -> Value {
    json!({
        "object": "list",
        "data": page.data,
        "list_metadata": {"before": page.before, "after": page.after},
    })
}

pub(super) async fn handle(
    state: &State,
    req: Request<RequestBody>,
    peer: Option<std::net::IpAddr>,
) -> Response<Body> {
    if !is_get(req.method()) {
        return read_only(error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "the directory API is read-only: use GET",
        ));
    }
    if super::repeated(req.headers(), header::AUTHORIZATION) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            super::AUTHORIZATION_REPEATED,
        );
    }
    let key = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, k)| k.trim().to_string());
    // Throttled per client address like SCIM's tokens (`ops::throttle::Floods`).
    if let Err(seconds) = state.admit(peer, key.as_deref()) {
        return super::throttled(
            error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                super::THROTTLED,
            ),
            seconds,
        );
    }
    let grant = match &key {
        Some(k) => apikeys::authenticate(&state.db, k).await,
        None => Ok(None),
    };
    if let Ok(found) = &grant {
        state.authenticated(peer, key.as_deref(), found.is_some());
    }
    let only = match grant {
        Ok(Some(g)) => g.tenant_id,
        Ok(None) => return error(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
        Err(e) => return failure(Error::Db(e)),
    };
    let q = Query(
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect(),
    );
    // A parameter that takes one value, given twice: which one an SDK meant is a guess
    // (`events` alone takes several).
    let repeated = SINGLE_VALUED
        .iter()
        .find(|name| q.0.iter().filter(|(k, _)| k == *name).nth(1).is_some());
    if let Some(name) = repeated {
        return failure(Error::Invalid(format!("{name} is given more than once")));
    }
    let path = req.uri().path().trim_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').collect();
    let db = &state.db;
    let out = match segments.as_slice() {
        ["directories"] => match q.paging(Order::Desc) {
            Ok(p) => {
                let filter = workos::DirectoryFilter {
                    organization: q.get("organization_id"),
                    search: q.get("search").filter(|s| !s.is_empty()),
                    domain: q.get("domain").filter(|s| !s.is_empty()),
                };
                workos::directories(db, only, filter, p).await.map(list)
            }
            Err(e) => Err(e),
        },
        ["directories", id] => workos::directory(db, only, id.to_string()).await,
        ["directory_users"] => {
            users_page(db, only, &q, q.get("directory"), UserShape::WithGroups).await
        }
        ["directories", directory, "users"] => {
            let directory = Some(directory.to_string());
            users_page(db, only, &q, directory, UserShape::Plain).await
        }
        ["directory_users", id] => {
            workos::user(db, only, id.to_string(), None, UserShape::WithGroups).await
        }
        ["directories", directory, "users", id] => {
            let directory = Some(directory.to_string());
            workos::user(db, only, id.to_string(), directory, UserShape::Plain).await
        }
        ["directory_groups"] => groups_page(db, only, &q, q.get("directory")).await,
        ["directories", directory, "groups"] => {
            groups_page(db, only, &q, Some(directory.to_string())).await
        }
        ["directory_groups", id] => workos::group(db, only, id.to_string(), None).await,
        ["directories", directory, "groups", id] => {
            let directory = Some(directory.to_string());
            workos::group(db, only, id.to_string(), directory).await
        }
        ["events"] => match q.paging(Order::Asc) {
            Ok(p) => {
                let query = EventQuery {
                    events: q.all("events"),
                    after: q.get("after"),
                    // As on the other lists, `after` wins when both are given.
                    before: q.get("before").filter(|_| q.get("after").is_none()),
                    limit: p.limit,
                    range_start: q.get("range_start"),
                    range_end: q.get("range_end"),
                    organization: q.get("organization_id"),
                    order: p.order,
                };
                workos::list_events(db, only, query).await.map(list)
            }
            Err(e) => Err(e),
        },
        _ => Err(Error::NotFound(format!("no endpoint at /{path}"))),
    };
    match out {
        // A page of big records serializes for long enough to stall the requests sharing
        // an async worker: done on the blocking pool.
        Ok(body) => super::serialized(body)
            .await
            .map(|text| text_response(StatusCode::OK, text))
            .unwrap_or_else(|e| failure(Error::Db(e))),
        Err(e) => failure(e),
    }
}

/// A page of directory users (`GET /directory_users`, `GET /directories/{id}/users`), in
/// `directory` when given, narrowed by the query's `group`, `email` and `idp_id`.
async fn users_page(
    db: &Db,
    only: Option<i64>,
    q: &Query,
    directory: Option<String>,
    shape: UserShape,
) -> Result<Value, Error> {
    let paging = q.paging(Order::Desc)?;
    let filter = workos::UserFilter {
        email: q.get("email").filter(|s| !s.is_empty()),
        idp_id: q.get("idp_id").filter(|s| !s.is_empty()),
    };
    workos::users(db, only, directory, q.get("group"), filter, paging, shape)
        .await
        .map(list)
}

/// A page of directory groups (`GET /directory_groups`, `GET /directories/{id}/groups`), in
/// `directory` when given, narrowed by the query's `user`.
async fn groups_page(
    db: &Db,
    only: Option<i64>,
    q: &Query,
    directory: Option<String>,
) -> Result<Value, Error> {
    let paging = q.paging(Order::Desc)?;
    workos::groups(db, only, directory, q.get("user"), paging)
        .await
        .map(list)
}
