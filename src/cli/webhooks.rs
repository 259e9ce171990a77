//! `scimd webhook`: endpoints that receive a tenant's events. Each write is one
//! `ops::webhooks` call; `test` sends through the same client as the server.

use std::io::Write;

use clap::Subcommand;

use super::{CliResult, tenant_id};
use crate::db::{Db, tenants};
use crate::model::Actor;
use crate::ops::{self, block_on};

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Add an endpoint; prints `id=…` and `secret=whsec_…` (the secret only once). It
    /// receives the events that follow; `replay` sends older ones.
    Add {
        /// Where to POST events: an http:// or https:// URL.
        url: String,
        /// Tenant whose events it receives.
        #[arg(long, default_value = tenants::DEFAULT_SLUG)]
        tenant: String,
        /// Only these event types, comma-separated (e.g. member.suspended,member.deleted).
        #[arg(long, value_delimiter = ',')]
        types: Vec<String>,
        /// `standard` (Standard Webhooks 1.0, scimd's events) or `workos` (WorkOS Directory
        /// Sync webhooks: dsync.* events signed with WorkOS-Signature).
        #[arg(long, default_value = "standard")]
        format: ops::webhooks::Format,
    },
    /// List endpoints: id, tenant, URL, types, state, last event delivered.
    List {
        /// Only this tenant's endpoints.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Remove an endpoint and its delivery log.
    Remove { id: i64 },
    /// Enable a disabled endpoint: it resumes after the last event it delivered.
    Enable { id: i64 },
    /// Stop delivering to an endpoint until it is enabled again.
    Disable { id: i64 },
    /// Send a test event now and print the outcome.
    Test { id: i64 },
    /// Deliver the tenant's events again from SEQ on, in order.
    Replay {
        id: i64,
        /// The first event to deliver again (its `seq`).
        #[arg(long)]
        from: i64,
    },
    /// Replace the signing secret and print the new one, once; the old one also signs
    /// for a day (a WorkOS-format endpoint switches at once: its signature holds one).
    RotateSecret { id: i64 },
}

pub fn run(db: &Db, cmd: WebhookCommand) -> CliResult {
    let cli = Actor::cli();
    match cmd {
        WebhookCommand::Add {
            url,
            tenant,
            types,
            format,
        } => {
            let tenant_id = tenant_id(db, &tenant)?;
            let created = block_on(ops::webhooks::add(db, &cli, tenant_id, url, types, format))?;
            println!("id={}", created.id);
            println!("secret={}", created.secret);
            eprintln!(
                "webhook {} added for tenant {tenant}; the secret is shown only this once",
                created.id
            );
        }
        WebhookCommand::List { tenant } => {
            let filter = tenant.as_deref().map(|t| tenant_id(db, t)).transpose()?;
            let slugs: std::collections::HashMap<i64, String> = tenants::list(&*db.conn()?)?
                .into_iter()
                .map(|t| (t.id, t.slug))
                .collect();
            let mut out = std::io::stdout().lock();
            writeln!(out, "ID\tTENANT\tURL\tTYPES\tSTATE\tDELIVERED THROUGH")?;
            for e in block_on(ops::webhooks::list(db, filter))? {
                let state = match (&e.disabled_reason, e.enabled, &e.next_attempt_at) {
                    (_, true, Some(at)) => format!("retrying at {at} ({} failures)", e.failures),
                    (_, true, None) => "enabled".into(),
                    (Some(why), false, _) => format!("disabled: {why}"),
                    (None, false, _) => "disabled".into(),
                };
                let types = if e.types.is_empty() {
                    "*".into()
                } else {
                    e.types.join(",")
                };
                let slug = slugs.get(&e.tenant_id).map_or("?", String::as_str);
                writeln!(
                    out,
                    "{}\t{slug}\t{}\t{types}\t{state}\t{}",
                    e.id,
                    crate::auth::webhooks::shown_url(&e.url),
                    e.cursor
                )?;
            }
        }
        WebhookCommand::Remove { id } => {
            block_on(ops::webhooks::remove(db, &cli, None, id))?;
            println!("webhook {id} removed");
        }
        WebhookCommand::Enable { id } => {
            let lost = block_on(ops::webhooks::enable(db, &cli, None, id))?;
            println!("webhook {id} enabled");
            if let Some(lost) = lost {
                eprintln!("scimd: {}", lost.note());
            }
        }
        WebhookCommand::Disable { id } => {
            block_on(ops::webhooks::disable(db, &cli, None, id))?;
            println!("webhook {id} disabled");
        }
        WebhookCommand::Test { id } => {
            let sent = block_on(async {
                let (target, m) = ops::webhooks::test(db, &cli, None, id).await?;
                let sent = crate::http::webhooks::send_once(db, &target, &m).await?;
                Ok::<_, Box<dyn std::error::Error>>(sent)
            })?;
            let ms = sent.duration.as_millis();
            if sent.accepted() {
                println!(
                    "delivered: HTTP {} in {ms} ms",
                    sent.status.unwrap_or_default()
                );
            } else {
                let body = sent.response.as_deref().unwrap_or("");
                return Err(format!(
                    "not delivered: {} in {ms} ms {body}",
                    ops::webhooks::describe(&sent)
                )
                .into());
            }
        }
        WebhookCommand::Replay { id, from } => {
            block_on(ops::webhooks::replay(db, &cli, None, id, from))?;
            println!("webhook {id} will deliver again from event {from} on");
        }
        WebhookCommand::RotateSecret { id } => {
            let rotated = block_on(ops::webhooks::rotate_secret(db, &cli, None, id))?;
            println!("secret={}", rotated.secret);
            eprintln!("{}", rotated.note());
        }
    }
    Ok(())
}
