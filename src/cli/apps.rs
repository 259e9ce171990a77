//! The apps-side commands: `apikey` (create, list, revoke) and `events` (print the feed as
//! JSON lines, and follow it).

use std::io::Write;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{CliResult, tenant_id};
use crate::db::{Db, api_keys, tenants};
use crate::model::Actor;
use crate::ops::{self, block_on};
use crate::scim::datetime;

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an app API key for `/api/v1` and print it on the last line of stdout, once.
    Create {
        /// Tenant the key reads.
        #[arg(long, default_value = tenants::DEFAULT_SLUG)]
        tenant: String,
        /// A name to recognise the key by (e.g. "billing app").
        #[arg(long)]
        name: String,
        /// Make the key stop working after this many days (at least 1).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        expires_in_days: Option<u32>,
        /// A key that reads every tenant, as a WorkOS environment key does (the WorkOS-
        /// compatible endpoints; `/api/v1` then needs `?tenant=`).
        #[arg(long, conflicts_with = "tenant")]
        all_tenants: bool,
    },
    /// List keys: id, tenant, name, visible prefix, created, last used, expiry, state.
    List {
        /// Only this tenant's keys.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a key by id; it stops working at once.
    Revoke {
        /// The id shown by `scimd apikey list`.
        id: i64,
    },
}

pub fn apikey(db: &Db, cmd: ApiKeyCommand) -> CliResult {
    match cmd {
        ApiKeyCommand::Create {
            tenant,
            name,
            expires_in_days,
            all_tenants,
        } => {
            let id = if all_tenants {
                None
            } else {
                Some(tenant_id(db, &tenant)?)
            };
            let expires_at = expires_in_days.map(|days| datetime::in_days(days.into()));
            let issued = block_on(ops::apikeys::issue(
                db,
                &Actor::cli(),
                id,
                name.clone(),
                expires_at,
            ))?;
            let reach = if all_tenants {
                "every tenant".to_string()
            } else {
                format!("tenant {tenant}")
            };
            eprintln!(
                "API key {} ({name}) created for {reach}; it is shown only this once",
                issued.id
            );
            println!("{}", issued.token.secret);
        }
        ApiKeyCommand::List { tenant } => {
            let filter = tenant.as_deref().map(|t| tenant_id(db, t)).transpose()?;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "ID\tTENANT\tNAME\tPREFIX\tCREATED\tLAST USED\tEXPIRES\tSTATE"
            )?;
            for k in api_keys::list(&*db.conn()?, filter)? {
                let state = k.state();
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}…\t{}\t{}\t{}\t{state}",
                    k.id,
                    k.tenant.as_deref().unwrap_or("*"),
                    k.name,
                    k.prefix,
                    k.created_at,
                    k.last_used_at.as_deref().unwrap_or("never"),
                    k.expires_at.as_deref().unwrap_or("never"),
                )?;
            }
        }
        ApiKeyCommand::Revoke { id } => {
            match block_on(ops::apikeys::revoke(db, &Actor::cli(), None, id)) {
                Ok(()) => println!("API key {id} revoked"),
                Err(crate::db::DbError::NotFound) => {
                    return Err(format!("no active API key with id {id}").into());
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Tenant whose events to print.
    #[arg(long, default_value = tenants::DEFAULT_SLUG)]
    tenant: String,
    /// Print the events after this seq (default: from the oldest event kept).
    #[arg(long)]
    after: Option<i64>,
    /// Keep printing new events as they commit.
    #[arg(long)]
    follow: bool,
}

/// Prints the tenant's events as JSON lines, the objects the feed and webhooks carry.
pub fn events(db: &Db, args: EventsArgs) -> CliResult {
    let tenant = tenant_id(db, &args.tenant)?;
    let mut after = match args.after {
        Some(after) => after,
        None => block_on(ops::events::oldest_kept_after(db, tenant))?,
    };
    loop {
        let wait = if args.follow {
            Duration::from_secs(30)
        } else {
            Duration::ZERO
        };
        let page = block_on(ops::events::wait(db, tenant, after, 1000, Vec::new(), wait))?;
        let mut out = std::io::stdout().lock();
        for e in &page.events {
            writeln!(out, "{}", ops::events::object(e))?;
        }
        out.flush()?;
        after = page.next_after;
        if page.events.is_empty() && !args.follow {
            return Ok(());
        }
    }
}
