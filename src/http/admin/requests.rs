//! The request inspector's pages: a tenant's last SCIM requests, filtered (failures only,
//! resource, client), and one request with its bodies (redacted), the client scimd
//! recognised, the changes it caused (events and audit entries with its request id) and
//! "copy as curl" with the token left out.

use askama::Template;
use hyper::StatusCode;

use super::filters;
use super::people::link;
use super::{Layout, PageResult, Req, UiError, html, layout, page_status};
use crate::db::paging::Cursor;
use crate::db::requests::{self, Filter, Record};
use crate::db::tenants::Tenant;
use crate::db::{self, DbError, audit, events};
use crate::http::State;
use crate::model::TextEnum;
use crate::scim::idp::Idp;

/// Requests per page.
const PAGE: usize = 50;
/// Most events and audit entries shown under one request.
const CAUSED: u32 = 200;

/// The filter fields as typed, kept for the form and the links.
struct Fields {
    failed: bool,
    resource: String,
    client: String,
}

impl Fields {
    fn of(req: &Req) -> Fields {
        let get = |k: &str| req.query(k).unwrap_or("").trim().to_string();
        Fields {
            failed: !get("failed").is_empty(),
            resource: get("resource"),
            client: get("client"),
        }
    }

    fn pairs(&self) -> Vec<(&'static str, &str)> {
        let mut pairs = vec![
            ("resource", self.resource.as_str()),
            ("client", self.client.as_str()),
        ];
        if self.failed {
            pairs.push(("failed", "1"));
        }
        pairs
    }

    /// The storage filter, or what is wrong with the fields.
    fn filter(&self) -> Result<Filter, String> {
        let resource = match self.resource.as_str() {
            "" => None,
            r @ ("Users" | "Groups" | "other") => Some(r.to_string()),
            r => {
                return Err(format!(
                    "Resource: {r:?} is not one of Users, Groups, other"
                ));
            }
        };
        let idp = match self.client.as_str() {
            "" => None,
            c => Some(c.parse::<Idp>().map_err(|e| format!("Client: {e}"))?),
        };
        Ok(Filter {
            failures_only: self.failed,
            resource,
            idp,
        })
    }
}

/// One request as a list row or a page shows it.
struct Row {
    r: Record,
    /// The client's name, and Entra's dialect.
    client: String,
    /// The actor, with the token's name when it is a SCIM token of this tenant.
    actor: String,
    duration: String,
}

impl Row {
    fn of(r: Record, tokens: &[db::tokens::ScimToken]) -> Row {
        let e = &r.entry;
        let client = match e.dialect {
            Some(d) => format!("{} ({d})", e.idp.label()),
            None => e.idp.label().to_string(),
        };
        let actor = e
            .actor
            .strip_prefix("token:")
            .and_then(|id| id.parse::<i64>().ok())
            .and_then(|id| tokens.iter().find(|t| t.id == id))
            .map_or_else(|| e.actor.clone(), |t| format!("{} ({})", e.actor, t.name));
        let duration = format!("{:.1} ms", e.duration_us as f64 / 1000.0);
        Row {
            client,
            actor,
            duration,
            r,
        }
    }
}

#[derive(Template)]
#[template(path = "requests.html")]
struct RequestsPage {
    layout: Layout,
    f: Fields,
    clients: Vec<(&'static str, &'static str)>,
    error: Option<String>,
    rows: Vec<Row>,
    prev: Option<String>,
    next: Option<String>,
    successes: i64,
    failures: i64,
    retention: crate::ops::inspector::Retention,
    dropped: u64,
}

pub(super) async fn list_page(state: &State, req: &Req, tenant: &Tenant) -> PageResult {
    let f = Fields::of(req);
    let cursor = Cursor::from_query(req.query("after"), req.query("before"));
    let base = format!("/t/{}/requests", tenant.slug);
    let id = tenant.id;
    let filter = f.filter();
    let (error, filter) = match filter {
        Ok(filter) => (None, Some(filter)),
        Err(e) => (Some(e), None),
    };
    let (page, tokens, (successes, failures)) = state
        .db
        .read(move |c| {
            let page = filter
                .map(|filter| requests::page(c, id, &filter, cursor, PAGE))
                .transpose()?;
            Ok::<_, DbError>((
                page,
                db::tokens::list(c, Some(id))?,
                requests::counts(c, id)?,
            ))
        })
        .await?;
    let keep = |k: &'static str, v: i64| {
        let v = v.to_string();
        let mut pairs = f.pairs();
        pairs.push((k, &v));
        link(&base, &pairs)
    };
    let (rows, prev, next) = match page {
        None => (Vec::new(), None, None),
        Some(p) => (
            p.items.into_iter().map(|r| Row::of(r, &tokens)).collect(),
            p.prev.map(|k| keep("before", k)),
            p.next.map(|k| keep("after", k)),
        ),
    };
    let status = page_status(error.is_some());
    let page = RequestsPage {
        layout: layout(state, req, Some(tenant), "requests").await?,
        clients: Idp::ALL.iter().map(|i| (i.as_str(), i.label())).collect(),
        f,
        error,
        rows,
        prev,
        next,
        successes,
        failures,
        retention: state.config.inspector,
        dropped: state.recorder.dropped(),
    };
    html(status, &page)
}

/// An event the request caused, as the page lists it.
struct Caused {
    kind: String,
    subject: String,
    /// The member's or group's page.
    href: String,
}

#[derive(Template)]
#[template(path = "request.html")]
struct RequestPage {
    layout: Layout,
    row: Row,
    request_body: Option<String>,
    response_body: Option<String>,
    events: Vec<Caused>,
    audit: Vec<audit::Record>,
    curl: String,
}

pub(super) async fn request_page(
    state: &State,
    req: &Req,
    tenant: &Tenant,
    request_id: &str,
) -> PageResult {
    let (id, rid) = (tenant.id, request_id.to_string());
    let found = state
        .db
        .read(move |c| {
            let Some(record) = requests::get(c, id, &rid)? else {
                return Ok::<_, DbError>(None);
            };
            let during = record.entry.while_answered();
            Ok(Some((
                db::tokens::list(c, Some(id))?,
                events::by_request(c, id, &rid, &during, CAUSED)?,
                audit::by_request(c, id, &rid, &during, CAUSED)?,
                record,
            )))
        })
        .await?;
    // Not recorded (another tenant's, pruned, or not written yet: a second at most).
    let Some((tokens, caused, audit, record)) = found else {
        return Err(UiError::NotFound);
    };
    let slug = &tenant.slug;
    let events = caused
        .iter()
        .map(|e| {
            let kind = e.kind.as_str();
            let area = if kind.starts_with("group.") {
                "groups"
            } else {
                "people"
            };
            Caused {
                kind: kind.to_string(),
                subject: e.subject.clone(),
                href: format!("/t/{slug}/{area}/{}", e.subject),
            }
        })
        .collect();
    let root = crate::http::public_root(&state.config, &req.headers, req.tls);
    let curl = curl(&root, &record);
    let page = RequestPage {
        layout: layout(state, req, Some(tenant), "requests").await?,
        request_body: record.entry.request_body.as_deref().map(pretty),
        response_body: record.entry.response_body.as_deref().map(pretty),
        row: Row::of(record, &tokens),
        events,
        audit,
        curl,
    };
    html(StatusCode::OK, &page)
}

/// JSON indented for reading (members in the order sent); anything else as stored.
fn pretty(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| body.to_string())
}

/// The request as a curl command against `root`, the token left to `$SCIMD_TOKEN` (the
/// stored body is the redacted one: a password reads `[redacted]`).
fn curl(root: &str, r: &Record) -> String {
    let e = &r.entry;
    // Any token is a method to HTTP (RFC 9110 §9.1), backquotes and `|` too: only letters
    // go unquoted into a line the admin pastes into a shell.
    let method = if e.method.bytes().all(|b| b.is_ascii_alphabetic()) {
        e.method.clone()
    } else {
        quote(&e.method)
    };
    // `-g`: a filter's brackets and braces (`emails[type eq "work"]`) are the URL's own,
    // not ranges for curl to expand.
    let mut out = format!(
        "curl -g -X {method} {}",
        quote(&format!("{root}{}", e.path))
    );
    out.push_str(" \\\n  -H \"Authorization: Bearer $SCIMD_TOKEN\"");
    if !e.user_agent.is_empty() {
        out.push_str(&format!(
            " \\\n  -H {}",
            quote(&format!("User-Agent: {}", e.user_agent))
        ));
    }
    if let Some(body) = &e.request_body {
        out.push_str(" \\\n  -H 'Content-Type: application/scim+json'");
        out.push_str(&format!(" \\\n  --data-raw {}", quote(body)));
    }
    out
}

/// `s` as one single-quoted shell word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::requests::Entry;

    #[test]
    fn curl_leaves_the_token_out_and_quotes_for_the_shell() {
        let r = Record {
            id: 1,
            entry: Entry {
                tenant_id: 1,
                request_id: "abc".into(),
                at: "2026-01-01T00:00:00.000000Z".into(),
                method: "POST".into(),
                path: "/scim/v2/Users?aadOptscim062020".into(),
                resource: "Users".into(),
                status: 201,
                duration_us: 1,
                actor: "token:1".into(),
                user_agent: "Okta SCIM Client 1.0.0".into(),
                idp: Idp::Okta,
                dialect: None,
                evidence: String::new(),
                request_body: Some(
                    r#"{"userName":"o'brien@example.com","password":"[redacted]"}"#.into(),
                ),
                response_body: None,
                request_truncated: false,
                response_truncated: false,
                error: None,
                scim_type: None,
            },
        };
        let c = curl("https://scim.example.com", &r);
        assert_eq!(
            c,
            "curl -g -X POST 'https://scim.example.com/scim/v2/Users?aadOptscim062020' \\\n  \
             -H \"Authorization: Bearer $SCIMD_TOKEN\" \\\n  -H 'User-Agent: Okta SCIM Client 1.0.0' \\\n  \
             -H 'Content-Type: application/scim+json' \\\n  \
             --data-raw '{\"userName\":\"o'\\''brien@example.com\",\"password\":\"[redacted]\"}'"
        );
        let mut hostile = r;
        hostile.entry.method = "GET`touch$IFS.pwned`|sh".into();
        hostile.entry.request_body = None;
        assert!(
            curl("https://scim.example.com", &hostile)
                .starts_with("curl -g -X 'GET`touch$IFS.pwned`|sh' 'https://"),
            "a method that is not letters is one quoted word"
        );
    }
}
