//! Webhooks: endpoints that receive a tenant's events as Standard Webhooks 1.0 requests.
//!
//! The admin's operations (add, remove, enable, disable, replay, rotate the secret, test,
//! resend) and the sender's state machine live here; the sender itself, which knows HTTP,
//! is `http::webhooks`. Each endpoint follows its tenant's events in `seq` order from its
//! `cursor`, which moves only after a 2xx (or past events its type filter skips), so
//! delivery is at least once and resumes where it stopped after any restart:
//!
//! - [`next`] reads what to send: a batch of signed-to-be messages, or when to look again.
//! - [`report`] records what the sender observed in one transaction: the attempts, the new
//!   cursor; on a failure the next retry from the schedule (or `Retry-After`), and past the
//!   schedule (or on a 410) the endpoint is disabled with an audit entry by scimd itself.
//! - [`enable`] resumes a disabled endpoint from its cursor; [`replay`] moves it back.

use std::time::Duration;

use rand::Rng;
use serde_json::json;
use time::OffsetDateTime;

use crate::auth::webhooks::{self as signing, BadUrl};
use crate::db::audit::{self, Action as AuditAction};
use crate::db::events::{self, EventType};
use crate::db::webhooks::{self, Attempt, Endpoint};
use crate::db::{Db, DbError};
use crate::model::Actor;
use crate::scim::datetime;

/// How long the old secret keeps signing after a rotation.
pub const ROTATION_OVERLAP: time::Duration = time::Duration::days(1);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How much of a receiver's answer is kept per attempt.
pub const RESPONSE_KEPT: usize = 1024;

/// Why an admin's webhook operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Url(#[from] BadUrl),
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error(
        "{0:?} is never sent to a tenant's webhooks: their endpoints go with the tenant \
         (apps that read every tenant get it from /events)"
    )]
    NotOfATenant(String),
    #[error("event {0} is not kept (any more)")]
    NoSuchEvent(i64),
    #[error("there is no event {0} yet (the newest is {1})")]
    FutureEvent(i64, i64),
    #[error(
        "a replay delivers again, it does not skip: this endpoint has not received event {first} \
         yet, so replay from event {first} at most"
    )]
    ReplaySkips { first: i64 },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A new endpoint and its secret, shown once.
#[derive(Debug)]
pub struct Created {
    pub id: i64,
    pub secret: String,
}

crate::model::text_enum! {
    /// What an endpoint receives: Standard Webhooks 1.0 requests carrying scimd's event
    /// objects, or WorkOS Directory Sync webhooks (`dsync.*` events, `WorkOS-Signature`).
    pub enum Format ("webhook format") {
        Standard => "standard",
        Workos => "workos",
    }
}

fn target(id: i64) -> Option<String> {
    Some(format!("webhook/{id}"))
}

/// Adds an endpoint of `tenant_id` for `url`, receiving events of `types` (all when empty)
/// from the next event on, and audits it (the URL and types, never the secret).
pub async fn add(
    db: &Db,
    actor: &Actor,
    tenant_id: i64,
    url: String,
    types: Vec<String>,
    format: Format,
) -> Result<Created, Error> {
    let url = signing::check_url(&url)?.to_string();
    for t in &types {
        // A WorkOS endpoint also takes the WorkOS names of what it receives.
        let workos = format == Format::Workos && super::workos::native_kinds(t).is_some();
        if t.parse::<EventType>().is_err() && !workos {
            return Err(Error::UnknownType(t.clone()));
        }
        if t == EventType::TenantDeleted.as_str() || t == "dsync.deleted" {
            return Err(Error::NotOfATenant(t.clone()));
        }
    }
    let actor = actor.clone();
    db.write(move |tx| {
        let secret = signing::generate_secret();
        let (last, _) = events::bounds(tx, tenant_id)?;
        let id = webhooks::insert(tx, tenant_id, &url, &types, format.as_str(), &secret, last)?;
        let entry = audit::Entry::new(
            &actor,
            Some(tenant_id),
            AuditAction::WebhookCreated,
            target(id),
        )
        .with_detail(json!({"url": signing::shown_url(&url), "types": types, "format": format, "from_seq": last + 1}));
        audit::append(tx, &entry)?;
        Ok(Created { id, secret })
    })
    .await
}

/// Endpoint `id` of `tenant_id` (any tenant's when `None`).
pub async fn get(db: &Db, tenant_id: Option<i64>, id: i64) -> Result<Endpoint, DbError> {
    db.read(move |c| webhooks::get(c, tenant_id, id)).await
}

/// The endpoints of `tenant_id` (every tenant's when `None`).
pub async fn list(db: &Db, tenant_id: Option<i64>) -> Result<Vec<Endpoint>, DbError> {
    db.read(move |c| webhooks::list(c, tenant_id)).await
}

/// The newest `limit` delivery attempts of endpoint `id`, newest first.
pub async fn attempts(db: &Db, id: i64, limit: u32) -> Result<Vec<Attempt>, DbError> {
    db.read(move |c| webhooks::attempts(c, id, limit)).await
}

/// Runs `f` on endpoint `id` (of `tenant_id`, when given) in a write, auditing `action`.
async fn change<T: Send + 'static>(
    db: &Db,
    actor: &Actor,
    tenant_id: Option<i64>,
    id: i64,
    action: AuditAction,
    f: impl FnOnce(&rusqlite::Transaction, &Endpoint) -> Result<(T, serde_json::Value), Error>
    + Send
    + 'static,
) -> Result<T, Error> {
    let actor = actor.clone();
    db.write(move |tx| {
        let e = webhooks::get(tx, tenant_id, id)?;
        let (out, detail) = f(tx, &e)?;
        let entry =
            audit::Entry::new(&actor, Some(e.tenant_id), action, target(id)).with_detail(detail);
        audit::append(tx, &entry)?;
        Ok(out)
    })
    .await
}

/// Removes endpoint `id` and its attempts.
pub async fn remove(db: &Db, actor: &Actor, tenant_id: Option<i64>, id: i64) -> Result<(), Error> {
    change(
        db,
        actor,
        tenant_id,
        id,
        AuditAction::WebhookRemoved,
        |tx, e| {
            webhooks::delete(tx, e.id)?;
            Ok(((), json!({"url": signing::shown_url(&e.url)})))
        },
    )
    .await
}

/// Events of an endpoint's tenant it never received and no longer kept: the event
/// retention purged them while the endpoint was disabled (an enabled one holds them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotKept {
    pub from: i64,
    pub through: i64,
}

impl NotKept {
    /// What an admin enabling the endpoint must know.
    pub fn note(&self) -> String {
        format!(
            "Events {} to {} went past the event retention while the endpoint was disabled and \
             are no longer kept: those it takes were not delivered. It resumes with event {}.",
            self.from,
            self.through,
            self.through + 1
        )
    }
}

/// Enables endpoint `id` again: it resumes after the last event it delivered, with a fresh
/// retry schedule. Events an enabled endpoint has not received outlive the event retention
/// ([`crate::ops::retention`]); a disabled one's do not, and those it lost that way are
/// returned (and audited) rather than passed over in silence.
pub async fn enable(
    db: &Db,
    actor: &Actor,
    tenant_id: Option<i64>,
    id: i64,
) -> Result<Option<NotKept>, Error> {
    change(
        db,
        actor,
        tenant_id,
        id,
        AuditAction::WebhookEnabled,
        |tx, e| {
            webhooks::enable(tx, e.id)?;
            let (_, purged) = events::bounds(tx, e.tenant_id)?;
            let lost = (e.cursor < purged).then_some(NotKept {
                from: e.cursor + 1,
                through: purged,
            });
            let mut detail = json!({"url": signing::shown_url(&e.url), "from_seq": e.cursor + 1});
            if let Some(l) = lost {
                detail["not_kept"] = json!({"from_seq": l.from, "through_seq": l.through});
            }
            Ok((lost, detail))
        },
    )
    .await
}

/// Stops deliveries to endpoint `id` (an admin's decision); [`enable`] resumes them.
pub async fn disable(db: &Db, actor: &Actor, tenant_id: Option<i64>, id: i64) -> Result<(), Error> {
    change(
        db,
        actor,
        tenant_id,
        id,
        AuditAction::WebhookDisabled,
        |tx, e| {
            webhooks::disable(tx, e.id, "disabled by an admin")?;
            Ok((
                (),
                json!({"url": signing::shown_url(&e.url), "reason": "disabled by an admin"}),
            ))
        },
    )
    .await
}

/// Delivers the tenant's events again from `from_seq` on, in order, then the newer ones. A
/// `from_seq` past the first event the endpoint has not received is refused: it would skip
/// events never delivered.
pub async fn replay(
    db: &Db,
    actor: &Actor,
    tenant_id: Option<i64>,
    id: i64,
    from_seq: i64,
) -> Result<(), Error> {
    change(
        db,
        actor,
        tenant_id,
        id,
        AuditAction::WebhookReplayed,
        move |tx, e| {
            let (last, purged) = events::bounds(tx, e.tenant_id)?;
            if from_seq > last + 1 {
                return Err(Error::FutureEvent(from_seq, last));
            }
            if from_seq < 1 || from_seq <= purged {
                return Err(Error::NoSuchEvent(from_seq));
            }
            let first = e.cursor.max(purged) + 1;
            if from_seq > first {
                return Err(Error::ReplaySkips { first });
            }
            webhooks::rewind(tx, e.id, from_seq - 1)?;
            Ok((
                (),
                json!({"url": signing::shown_url(&e.url), "from_seq": from_seq}),
            ))
        },
    )
    .await
}

/// A new signing secret, shown once.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub secret: String,
    /// Whether the previous secret signs too, for [`ROTATION_OVERLAP`].
    pub overlap: bool,
}

impl Rotated {
    /// What the admin must know of the switch.
    pub fn note(&self) -> &'static str {
        if self.overlap {
            "The previous secret also signs for one more day: the receiver can switch at leisure."
        } else {
            "A WorkOS signature carries one secret: the new one signs from now on. Deliveries the app refuses until it has it are retried."
        }
    }
}

/// Replaces the secret of endpoint `id` and returns the new one, shown once. For
/// [`ROTATION_OVERLAP`] the old secret signs too (each Standard Webhooks request carries a
/// signature per secret), so the receiver can switch at leisure; a WorkOS signature holds
/// one, and the SDKs read only the first, so a WorkOS endpoint switches at once.
pub async fn rotate_secret(
    db: &Db,
    actor: &Actor,
    tenant_id: Option<i64>,
    id: i64,
) -> Result<Rotated, Error> {
    change(
        db,
        actor,
        tenant_id,
        id,
        AuditAction::WebhookSecretRotated,
        |tx, e| {
            let secret = signing::generate_secret();
            let overlap = e.format.parse() != Ok(Format::Workos);
            let now = OffsetDateTime::now_utc();
            let until = datetime::format(if overlap { now + ROTATION_OVERLAP } else { now });
            webhooks::rotate(tx, e.id, &secret, &until)?;
            let detail = json!({"url": signing::shown_url(&e.url), "previous_valid_until": until});
            Ok((Rotated { secret, overlap }, detail))
        },
    )
    .await
}

/// Where and how to send: an endpoint's URL and the secrets that sign for it now.
#[derive(Clone)]
pub struct Target {
    pub endpoint_id: i64,
    pub url: String,
    pub format: Format,
    secrets: Vec<String>,
    /// The endpoint's types (empty: all), scimd's or, for a WorkOS endpoint, WorkOS's.
    types: Vec<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("endpoint_id", &self.endpoint_id)
            .field("url", &signing::shown_url(&self.url))
            .finish_non_exhaustive()
    }
}

impl Target {
    fn of(e: &Endpoint, now: OffsetDateTime) -> Target {
        let mut secrets = vec![e.secret.clone()];
        let overlap = e.previous_until.as_deref().and_then(datetime::parse);
        if let (Some(old), Some(until)) = (&e.previous_secret, overlap)
            && until > now
        {
            secrets.push(old.clone());
        }
        Target {
            endpoint_id: e.id,
            url: e.url.clone(),
            format: e.format.parse().unwrap_or(Format::Standard),
            secrets,
            types: e.types.clone(),
        }
    }

    /// Event `ev` as this endpoint receives it; `None` when its format has no such event
    /// (a WorkOS endpoint hears nothing of members the IdP never had).
    fn message(
        &self,
        conn: &crate::db::Conn,
        ev: &events::Event,
    ) -> Result<Option<Message>, DbError> {
        let (id, object) = match self.format {
            Format::Standard => (super::events::event_id(ev), super::events::object(ev)),
            Format::Workos => {
                let tenant = crate::db::tenants::get(conn, ev.tenant_id)?;
                match super::workos::event_object(conn, &tenant, ev)? {
                    Some(o) if self.wants(ev, &o) => {
                        (o["id"].as_str().unwrap_or_default().to_string(), o)
                    }
                    _ => return Ok(None),
                }
            }
        };
        Ok(Some(Message {
            seq: ev.seq,
            id,
            body: serde_json::to_vec(&object).expect("JSON serialises"),
        }))
    }

    /// Whether a WorkOS endpoint takes `ev`, rendered as `workos`: no types, its scimd
    /// type, or its WorkOS name.
    fn wants(&self, ev: &events::Event, workos: &serde_json::Value) -> bool {
        self.types.is_empty()
            || self
                .types
                .iter()
                .any(|t| *t == ev.kind.as_str() || workos["event"] == t.as_str())
    }

    /// The headers that sign `m` sent at `at`. Standard Webhooks: `webhook-id`,
    /// `webhook-timestamp` (unix seconds) and one signature per live secret, space-separated.
    /// WorkOS: `WorkOS-Signature` with the current secret (its SDKs read one signature).
    pub fn headers(&self, m: &Message, at: OffsetDateTime) -> Vec<(&'static str, String)> {
        match self.format {
            Format::Standard => {
                let timestamp = at.unix_timestamp();
                let signatures: Vec<String> = self
                    .secrets
                    .iter()
                    .filter_map(|s| signing::sign(s, &m.id, timestamp, &m.body).ok())
                    .collect();
                vec![
                    ("webhook-id", m.id.clone()),
                    ("webhook-timestamp", timestamp.to_string()),
                    ("webhook-signature", signatures.join(" ")),
                ]
            }
            Format::Workos => {
                let ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
                vec![(
                    "WorkOS-Signature",
                    signing::sign_workos(&self.secrets[0], ms, &m.body),
                )]
            }
        }
    }
}

/// One event to send.
#[derive(Debug, Clone)]
pub struct Message {
    /// The event's `seq`; 0 for a test event.
    pub seq: i64,
    /// The event id: `webhook-id`, the same on every retry.
    pub id: String,
    /// The event object, exactly as the feed returns it.
    pub body: Vec<u8>,
}

/// The ids of the enabled endpoints of every tenant: what the sender follows.
pub async fn enabled_ids(db: &Db) -> Result<Vec<i64>, DbError> {
    db.read(webhooks::enabled_ids).await
}

/// What a sender should do next for one endpoint.
#[derive(Debug)]
pub enum Next {
    /// The endpoint is gone or disabled: stop following it.
    Stop,
    /// Nothing new: wait for a commit.
    Idle,
    /// A failed event waits for its retry.
    RetryAt(OffsetDateTime),
    /// Send these, in order, stopping at the first that is not accepted.
    Send(Batch),
}

/// Events to send to one endpoint.
#[derive(Debug)]
pub struct Batch {
    pub target: Target,
    /// The endpoint's cursor this batch starts after.
    pub after: i64,
    pub messages: Vec<Message>,
    /// Where the cursor goes once every message is accepted (past events the filter skips).
    pub through: i64,
}

/// What to send next to endpoint `id`: up to `limit` events after its cursor.
pub async fn next(db: &Db, id: i64, limit: u32) -> Result<Next, DbError> {
    let upto = db.durable_cursor();
    db.snapshot(move |c| {
        let e = match webhooks::get(c, None, id) {
            Err(DbError::NotFound) => return Ok(Next::Stop),
            other => other?,
        };
        if !e.enabled {
            return Ok(Next::Stop);
        }
        let now = OffsetDateTime::now_utc();
        if let Some(at) = e.next_attempt_at.as_deref().and_then(datetime::parse)
            && at > now
        {
            return Ok(Next::RetryAt(at));
        }
        let (last, _) = events::shown_bounds(c, e.tenant_id, upto)?;
        if last <= e.cursor {
            return Ok(Next::Idle);
        }
        let types: Vec<EventType> = e
            .types
            .iter()
            .flat_map(|t| match t.parse::<EventType>() {
                Ok(kind) => vec![kind],
                Err(_) => super::workos::native_kinds(t).unwrap_or_default(),
            })
            .collect();
        let found = events::after_of_types(c, e.tenant_id, e.cursor, limit, &types, upto)?;
        let through = match found.last() {
            Some(ev) if found.len() as u32 >= limit => ev.seq,
            _ => last,
        };
        let target = Target::of(&e, now);
        let mut messages = Vec::with_capacity(found.len());
        for ev in &found {
            if let Some(m) = target.message(c, ev)? {
                messages.push(m);
            }
        }
        Ok(Next::Send(Batch {
            target,
            after: e.cursor,
            messages,
            through,
        }))
    })
    .await
}

/// What one attempt observed.
#[derive(Debug, Clone)]
pub struct Sent {
    pub at: OffsetDateTime,
    /// The HTTP status; `None` when no answer came (refused, timed out, forbidden address).
    pub status: Option<u16>,
    pub duration: Duration,
    pub error: Option<String>,
    /// The first [`RESPONSE_KEPT`] bytes of the answer.
    pub response: Option<String>,
    /// The receiver's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

impl Sent {
    /// Whether the receiver accepted the event: any 2xx, nothing else (3xx included).
    pub fn accepted(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    fn attempt(&self, endpoint_id: i64, m: &Message) -> Attempt {
        Attempt {
            endpoint_id,
            seq: m.seq,
            event_id: m.id.clone(),
            at: datetime::format(self.at),
            status: self.status,
            duration_ms: self.duration.as_millis().min(i64::MAX as u128) as i64,
            error: self.error.clone(),
            response: self.response.clone(),
        }
    }
}

/// What [`report`] did to the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    /// Every message was accepted; the cursor moved to the batch's end.
    Delivered,
    /// An event failed; it is retried at this time.
    RetryAt(OffsetDateTime),
    /// The endpoint was disabled, for this reason.
    Disabled(String),
    /// The cursor was moved meanwhile (a replay): the batch is void, read again.
    Stale,
}

/// Records what the sender observed for `batch`: `sent` holds one result per message sent,
/// in order; only the last may be a failure (the sender stops there). `schedule` is the
/// retry schedule. One transaction: attempts, cursor, retry or disabling, audit entry.
pub async fn report(
    db: &Db,
    batch: &Batch,
    sent: Vec<Sent>,
    schedule: &[Duration],
) -> Result<Reported, DbError> {
    let id = batch.target.endpoint_id;
    let attempts: Vec<Attempt> = sent
        .iter()
        .zip(&batch.messages)
        .map(|(s, m)| s.attempt(id, m))
        .collect();
    let failed = sent
        .last()
        .filter(|s| !s.accepted())
        .map(|s| (s.clone(), batch.messages[sent.len() - 1].seq));
    let complete = failed.is_none() && sent.len() == batch.messages.len();
    let (after, through) = (batch.after, batch.through);
    let schedule = schedule.to_vec();
    db.write_relaxed(move |tx| {
        webhooks::log_attempts(tx, &attempts)?;
        let e = match webhooks::get(tx, None, id) {
            Err(DbError::NotFound) => return Ok(Reported::Stale),
            other => other?,
        };
        if e.cursor != after {
            return Ok(Reported::Stale);
        }
        let Some((sent, seq)) = failed else {
            // Stopped early (shutdown): the cursor moves past what was accepted only.
            let to = if complete {
                through
            } else {
                attempts.last().map_or(after, |a| a.seq)
            };
            if to != after {
                webhooks::advance(tx, id, after, to)?;
            }
            return Ok(Reported::Delivered);
        };
        if seq - 1 != after {
            webhooks::advance(tx, id, after, seq - 1)?;
        }
        let failures = if seq - 1 == after { e.failures } else { 0 } + 1;
        let now = OffsetDateTime::now_utc();
        let reason = if sent.status == Some(410) {
            Some("the receiver answered 410 Gone".to_string())
        } else if failures as usize > schedule.len() {
            let since = if seq - 1 == after {
                e.failing_since.clone()
            } else {
                None
            };
            Some(format!(
                "every retry failed (failing since {}); last error: {}",
                since.unwrap_or_else(|| datetime::format(sent.at)),
                describe(&sent)
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            webhooks::disable(tx, id, &reason)?;
            let entry = audit::Entry::new(
                &Actor::system(),
                Some(e.tenant_id),
                AuditAction::WebhookDisabled,
                target(id),
            )
            .with_detail(json!({"url": signing::shown_url(&e.url), "reason": reason, "seq": seq}));
            audit::append(tx, &entry)?;
            return Ok(Reported::Disabled(reason));
        }
        // A receiver's `Retry-After` may ask for longer than the schedule's step, never
        // less: a proxy answering `503 Retry-After: 0` through a deploy would otherwise
        // spend the whole schedule, and disable the endpoint, within seconds.
        let step = jitter(schedule[failures as usize - 1]);
        let wait = sent
            .retry_after
            .map_or(step, |d| d.min(MAX_RETRY_AFTER).max(step));
        let at = now + wait;
        webhooks::fail(
            tx,
            id,
            seq - 1,
            &datetime::format(now),
            &datetime::format(at),
        )?;
        Ok(Reported::RetryAt(at))
    })
    .await
}

/// `d` give or take a tenth, so endpoints that failed together do not retry together.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::rng().random_range(0.9..1.1))
}

/// One line for an attempt's outcome: the status or the error.
pub fn describe(s: &Sent) -> String {
    match (s.status, &s.error) {
        (Some(status), _) => format!("HTTP {status}"),
        (None, Some(e)) => e.clone(),
        (None, None) => "no answer".into(),
    }
}

/// A test event for endpoint `id`, audited; the caller sends it and logs the attempt with
/// [`log_attempt`].
pub async fn test(
    db: &Db,
    actor: &Actor,
    tenant_id: Option<i64>,
    id: i64,
) -> Result<(Target, Message), Error> {
    let label = actor.label();
    change(
        db,
        actor,
        tenant_id,
        id,
        AuditAction::WebhookTested,
        move |_, e| {
            let t = Target::of(e, OffsetDateTime::now_utc());
            let random = crate::auth::random_hex(8);
            let data = json!({"webhook": e.id, "url": signing::shown_url(&e.url)});
            // In the endpoint's own format, so its verifier and parser see a real shape.
            let (event_id, body) = match t.format {
                Format::Standard => {
                    let id = format!("evt_test_{random}");
                    let body = json!({
                        "object": "event",
                        "id": id,
                        "seq": 0,
                        "type": "webhook.test",
                        "timestamp": datetime::now(),
                        "data": data,
                        "previous": {},
                        "context": {"via": "test", "actor": label, "request_id": null},
                    });
                    (id, body)
                }
                Format::Workos => {
                    let id = format!("event_test_{random}");
                    let body = json!({
                        "object": "event",
                        "id": id,
                        "event": "webhook.test",
                        "data": data,
                        "created_at": datetime::now(),
                    });
                    (id, body)
                }
            };
            let m = Message {
                seq: 0,
                id: event_id.clone(),
                body: serde_json::to_vec(&body).expect("JSON serialises"),
            };
            Ok((
                (t, m),
                json!({"url": signing::shown_url(&e.url), "event_id": event_id}),
            ))
        },
    )
    .await
}

/// Event `seq` for endpoint `id`, to send once more out of order (the cursor does not
/// move), audited; the caller sends it and logs the attempt with [`log_attempt`].
pub async fn resend(
    db: &Db,
    actor: &Actor,
    tenant_id: Option<i64>,
    id: i64,
    seq: i64,
) -> Result<(Target, Message), Error> {
    change(
        db,
        actor,
        tenant_id,
        id,
        AuditAction::WebhookResent,
        move |tx, e| {
            let ev = events::get(tx, e.tenant_id, seq)?.ok_or(Error::NoSuchEvent(seq))?;
            let t = Target::of(e, OffsetDateTime::now_utc());
            let m = t.message(tx, &ev)?.ok_or(Error::NoSuchEvent(seq))?;
            Ok((
                (t, m),
                json!({"url": signing::shown_url(&e.url), "seq": seq}),
            ))
        },
    )
    .await
}

/// Logs one attempt made outside the delivery order (a test, a resend).
pub async fn log_attempt(
    db: &Db,
    target: &Target,
    m: &Message,
    sent: &Sent,
) -> Result<(), DbError> {
    let attempt = sent.attempt(target.endpoint_id, m);
    db.write(move |tx| webhooks::log_attempts(tx, &[attempt]))
        .await
}
