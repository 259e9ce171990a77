//! The apps area of a tenant: app API keys (created and shown once, listed, revoked) and
//! the events page, which browses the feed apps follow, by type and by member or group.

use askama::Template;
use hyper::StatusCode;

use super::filters;
use super::{Layout, PageResult, Req, UiError, html, layout, redirect_with_flash};
use crate::db::events::{self, EventType};
use crate::db::webhooks as webhooks_db;
use crate::db::{api_keys, tenants::Tenant};
use crate::http::State;
use crate::ops;

/// A key shown once, right after it was made.
pub(super) struct NewKey {
    pub name: String,
    pub secret: String,
}

#[derive(Template)]
#[template(path = "apps.html")]
struct AppsPage {
    layout: Layout,
    csrf: String,
    api_url: String,
    keys: Vec<api_keys::ApiKey>,
    new_key: Option<NewKey>,
    endpoints: Vec<EndpointRow>,
    new_secret: Option<NewSecret>,
    types: Vec<&'static str>,
    latest: i64,
    error: Option<Refused>,
}

impl AppsPage {
    /// What the admin typed in field `name` of a refused form, to show it again.
    fn typed(&self, name: &str) -> &str {
        self.error.as_ref().map_or("", |r| r.typed(name))
    }
}

/// What the page says went wrong, shown beside the form it came from (`form`: `key`,
/// `webhook`, or empty for the page's own actions), with what the admin typed in it.
#[derive(Default)]
struct Refused {
    form: &'static str,
    message: String,
    typed: Option<super::form::Form>,
}

impl Refused {
    /// A refusal of form `form`, whose fields come back as `typed`.
    fn of_form(form: &'static str, message: String, typed: super::form::Form) -> Refused {
        Refused {
            form,
            message,
            typed: Some(typed),
        }
    }

    /// What was typed in field `name` of the refused form.
    fn typed(&self, name: &str) -> &str {
        self.typed.as_ref().map_or("", |f| f.trimmed(name))
    }

    /// The message, if it belongs to `form`.
    fn of(&self, form: &str) -> Option<&str> {
        (self.form == form).then_some(self.message.as_str())
    }
}

async fn render(
    state: &State,
    req: &Req,
    tenant: &Tenant,
    new_key: Option<NewKey>,
    error: Option<Refused>,
) -> PageResult {
    render_with(state, req, tenant, new_key, None, error).await
}

async fn render_with(
    state: &State,
    req: &Req,
    tenant: &Tenant,
    new_key: Option<NewKey>,
    new_secret: Option<NewSecret>,
    error: Option<Refused>,
) -> PageResult {
    let s = req.session()?;
    let id = tenant.id;
    let keys = state.db.read(move |c| api_keys::list(c, Some(id))).await?;
    let page = AppsPage {
        layout: layout(state, req, Some(tenant), "apps").await?,
        csrf: s.session.csrf.clone(),
        api_url: format!(
            "{}/api/v1",
            crate::http::public_root(&state.config, &req.headers, req.tls)
        ),
        keys,
        new_key,
        endpoints: endpoint_rows(state, tenant).await?,
        new_secret,
        types: EventType::of_a_tenant().map(EventType::as_str).collect(),
        latest: ops::events::latest(&state.db, tenant.id).await?,
        error,
    };
    let status = if page.error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    html(status, &page)
}

pub(super) async fn page(state: &State, req: &Req, tenant: &Tenant) -> PageResult {
    render(state, req, tenant, None, None).await
}

/// Creates a key and shows it once, in this response only.
pub(super) async fn create_key(state: &State, req: &mut Req, tenant: &Tenant) -> PageResult {
    let form = req.form_once(state).await?;
    let name = form.trimmed("name").to_string();
    let checked = if name.is_empty() || name.chars().count() > 100 {
        Err("Give the key a name of 1 to 100 characters.".to_string())
    } else {
        super::expiry(form.get("expires_in_days"))
    };
    let expires_at = match checked {
        Ok(e) => e,
        Err(error) => {
            return render(
                state,
                req,
                tenant,
                None,
                Some(Refused::of_form("key", error, form)),
            )
            .await;
        }
    };
    let actor = req.actor()?;
    let issued =
        ops::apikeys::issue(&state.db, &actor, Some(tenant.id), name.clone(), expires_at).await?;
    let new_key = NewKey {
        name,
        secret: issued.token.secret,
    };
    render(state, req, tenant, Some(new_key), None).await
}

pub(super) async fn revoke_key(
    state: &State,
    req: &mut Req,
    tenant: &Tenant,
    id: &str,
) -> PageResult {
    req.form(state).await?;
    let id: i64 = id.parse().map_err(|_| UiError::NoSuchPage)?;
    ops::apikeys::revoke(&state.db, &req.actor()?, Some(tenant.id), id).await?;
    Ok(redirect_with_flash(
        req,
        &format!("/t/{}/apps", tenant.slug),
        "API key revoked. It stopped working immediately.",
    ))
}

/// One event as the events page lists it.
struct EventRow {
    seq: i64,
    kind: String,
    at: String,
    subject: String,
    actor: String,
    via: String,
    json: String,
}

#[derive(Template)]
#[template(path = "events.html")]
struct EventsPage {
    layout: Layout,
    types: Vec<&'static str>,
    kind: String,
    subject: String,
    rows: Vec<EventRow>,
    /// The `before` of the next (older) page, when there is one.
    older: Option<i64>,
    /// The events a filtered page looked at, when it stopped before a page of matches.
    searched: Option<Searched>,
    latest: i64,
}

/// The `seq`s a filtered events page searched, both included.
struct Searched {
    lowest: i64,
    newest: i64,
}

/// Events per page.
const EVENTS_PAGE: u32 = 50;

pub(super) async fn events_page(state: &State, req: &Req, tenant: &Tenant) -> PageResult {
    let kind_text = req.query("type").unwrap_or("").to_string();
    let kind = match kind_text.as_str() {
        "" => None,
        k => Some(
            k.parse::<EventType>()
                .map_err(|e| UiError::BadRequest(e.to_string()))?,
        ),
    };
    let subject = req.query("subject").unwrap_or("").trim().to_string();
    let before = req.query("before").and_then(|b| b.parse::<i64>().ok());
    let (id, who) = (tenant.id, subject.clone());
    let (found, (latest, _)) = state
        .db
        .read(move |c| {
            let page = events::Browse {
                before,
                limit: EVENTS_PAGE + 1,
                kind,
                subject: Some(who.as_str()).filter(|s| !s.is_empty()),
            };
            let found = events::recent(c, id, &page, events::SEARCHED_PER_PAGE)?;
            Ok::<_, crate::db::DbError>((found, events::bounds(c, id)?))
        })
        .await?;
    let list = found.events;
    let more = list.len() > EVENTS_PAGE as usize;
    let rows: Vec<EventRow> = list
        .iter()
        .take(EVENTS_PAGE as usize)
        .map(|e| {
            let object = ops::events::object(e);
            EventRow {
                seq: e.seq,
                kind: e.kind.as_str().to_string(),
                at: e.created_at.clone(),
                subject: e.subject.clone(),
                actor: e.actor.clone().unwrap_or_default(),
                via: object["context"]["via"].as_str().unwrap_or("").to_string(),
                json: serde_json::to_string_pretty(&object).unwrap_or_default(),
            }
        })
        .collect();
    let page = EventsPage {
        layout: layout(state, req, Some(tenant), "apps").await?,
        types: EventType::of_a_tenant().map(EventType::as_str).collect(),
        kind: kind_text,
        subject,
        older: if more {
            rows.last().map(|r| r.seq)
        } else {
            found.searched_to
        },
        searched: found.searched_to.map(|lowest| Searched {
            lowest,
            newest: before.map_or(latest, |b| b - 1).min(latest),
        }),
        rows,
        latest,
    };
    html(StatusCode::OK, &page)
}

// --- Webhooks ----------------------------------------------------------------------------

/// An endpoint as the apps page lists it.
pub(super) struct EndpointRow {
    pub e: webhooks_db::Endpoint,
    /// The newest attempt: when, and its status or error.
    pub last: Option<webhooks_db::Attempt>,
}

impl EndpointRow {
    fn state(&self) -> String {
        match (&self.e.disabled_reason, self.e.enabled) {
            (_, true) if self.e.failures > 0 => format!(
                "retrying ({} failures{})",
                self.e.failures,
                self.e
                    .next_attempt_at
                    .as_deref()
                    .map(|t| format!(", next at {}", super::short_time(t)))
                    .unwrap_or_default()
            ),
            (_, true) => "enabled".into(),
            (Some(why), false) => format!("disabled: {why}"),
            (None, false) => "disabled".into(),
        }
    }

    fn last_delivery(&self) -> String {
        match &self.last {
            None => "never".into(),
            Some(a) => format!(
                "{} — {}",
                super::short_time(&a.at),
                match (a.status, &a.error) {
                    (Some(s), _) => s.to_string(),
                    (None, Some(e)) => e.clone(),
                    (None, None) => "no answer".into(),
                }
            ),
        }
    }
}

/// A webhook secret shown once, right after it was made.
pub(super) struct NewSecret {
    pub url: String,
    pub secret: String,
    /// For a rotated secret: whether the previous one still signs.
    pub note: Option<&'static str>,
}

async fn endpoint_rows(state: &State, tenant: &Tenant) -> Result<Vec<EndpointRow>, UiError> {
    let mut rows = Vec::new();
    for e in ops::webhooks::list(&state.db, Some(tenant.id)).await? {
        let last = ops::webhooks::attempts(&state.db, e.id, 1)
            .await?
            .into_iter()
            .next();
        rows.push(EndpointRow { e, last });
    }
    Ok(rows)
}

fn webhook_error(e: ops::webhooks::Error) -> UiError {
    match e {
        ops::webhooks::Error::Db(e) => e.into(),
        other => UiError::BadRequest(other.to_string()),
    }
}

fn back(req: &Req, tenant: &Tenant, message: &str) -> PageResult {
    Ok(redirect_with_flash(
        req,
        &format!("/t/{}/apps", tenant.slug),
        message,
    ))
}

/// Adds an endpoint and shows its secret once.
pub(super) async fn add_webhook(state: &State, req: &mut Req, tenant: &Tenant) -> PageResult {
    let form = req.form_once(state).await?;
    let url = form.trimmed("url").to_string();
    let types: Vec<String> = form
        .get("types")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let format = match form.get("format").parse::<ops::webhooks::Format>() {
        Ok(f) => f,
        Err(e) => {
            let refused = Refused::of_form("webhook", e.to_string(), form);
            return render(state, req, tenant, None, Some(refused)).await;
        }
    };
    let actor = req.actor()?;
    match ops::webhooks::add(&state.db, &actor, tenant.id, url.clone(), types, format).await {
        Ok(created) => {
            let shown = NewSecret {
                url,
                secret: created.secret,
                note: None,
            };
            render_with(state, req, tenant, None, Some(shown), None).await
        }
        Err(ops::webhooks::Error::Db(e)) => Err(e.into()),
        Err(e) => {
            let refused = Refused::of_form("webhook", e.to_string(), form);
            render(state, req, tenant, None, Some(refused)).await
        }
    }
}

/// The endpoint actions of the apps page and of an endpoint's page.
pub(super) async fn webhook_action(
    state: &State,
    req: &mut Req,
    tenant: &Tenant,
    id: &str,
    action: &str,
) -> PageResult {
    let form = req.form(state).await?;
    let id: i64 = id.parse().map_err(|_| UiError::NoSuchPage)?;
    let actor = req.actor()?;
    let (db, t) = (&state.db, Some(tenant.id));
    let message = match action {
        "enable" => {
            match ops::webhooks::enable(db, &actor, t, id)
                .await
                .map_err(webhook_error)?
            {
                None => "Endpoint enabled: it resumes from the first event it has not received."
                    .to_string(),
                Some(lost) => format!("Endpoint enabled. {}", lost.note()),
            }
        }
        "disable" => {
            ops::webhooks::disable(db, &actor, t, id)
                .await
                .map_err(webhook_error)?;
            "Endpoint disabled; events wait for it.".to_string()
        }
        "remove" => {
            ops::webhooks::remove(db, &actor, t, id)
                .await
                .map_err(webhook_error)?;
            "Endpoint removed.".to_string()
        }
        "rotate" => {
            super::sent_once(state, &form)?;
            let rotated = ops::webhooks::rotate_secret(db, &actor, t, id)
                .await
                .map_err(webhook_error)?;
            let url = ops::webhooks::get(db, t, id).await?.url;
            let secret = NewSecret {
                url,
                note: Some(rotated.note()),
                secret: rotated.secret,
            };
            return render_with(state, req, tenant, None, Some(secret), None).await;
        }
        "test" => {
            let (target, m) = ops::webhooks::test(db, &actor, t, id)
                .await
                .map_err(webhook_error)?;
            let sent = crate::http::webhooks::send_once(db, &target, &m).await?;
            let answer = ops::webhooks::describe(&sent);
            // Either way to the endpoint's page, where the attempt is listed: a reload
            // must not send another test event.
            if !sent.status.is_some_and(|s| (200..300).contains(&s)) {
                return Ok(super::redirect_with_failure(
                    req,
                    &format!("/t/{}/webhooks/{id}", tenant.slug),
                    &format!(
                        "The test event was not accepted: {answer}. The endpoint must answer 2xx; its attempts below show what it said."
                    ),
                ));
            }
            format!("Test event delivered: {answer}.")
        }
        "replay" => {
            let from: i64 = form
                .trimmed("from")
                .parse()
                .map_err(|_| UiError::BadRequest("Give the event number to replay from.".into()))?;
            ops::webhooks::replay(db, &actor, t, id, from)
                .await
                .map_err(webhook_error)?;
            format!("Events from #{from} on will be delivered again, in order.")
        }
        "resend" => {
            let seq: i64 = form
                .trimmed("seq")
                .parse()
                .map_err(|_| UiError::BadRequest("Choose an event to resend.".into()))?;
            let (target, m) = ops::webhooks::resend(db, &actor, t, id, seq)
                .await
                .map_err(webhook_error)?;
            let sent = crate::http::webhooks::send_once(db, &target, &m).await?;
            format!(
                "Event #{seq} sent again: {}.",
                ops::webhooks::describe(&sent)
            )
        }
        _ => return Err(UiError::NoSuchPage),
    };
    match action {
        "remove" | "enable" | "disable" => back(req, tenant, &message),
        _ => Ok(redirect_with_flash(
            req,
            &format!("/t/{}/webhooks/{id}", tenant.slug),
            &message,
        )),
    }
}

#[derive(Template)]
#[template(path = "webhook.html")]
struct WebhookPage {
    layout: Layout,
    csrf: String,
    row: EndpointRow,
    attempts: Vec<webhooks_db::Attempt>,
    latest: i64,
}

/// How many attempts an endpoint's page lists.
const ATTEMPTS_SHOWN: u32 = 100;

pub(super) async fn webhook_page(
    state: &State,
    req: &Req,
    tenant: &Tenant,
    id: &str,
) -> PageResult {
    let id: i64 = id.parse().map_err(|_| UiError::NoSuchPage)?;
    let e = ops::webhooks::get(&state.db, Some(tenant.id), id).await?;
    let attempts = ops::webhooks::attempts(&state.db, id, ATTEMPTS_SHOWN).await?;
    let latest = ops::events::latest(&state.db, tenant.id).await?;
    let page = WebhookPage {
        layout: layout(state, req, Some(tenant), "apps").await?,
        csrf: req.session()?.session.csrf.clone(),
        row: EndpointRow {
            e,
            last: attempts.first().cloned(),
        },
        attempts,
        latest,
    };
    html(StatusCode::OK, &page)
}
