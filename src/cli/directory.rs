//! The directory-sync commands: `sync`, `members`, `roles`, `audit` and `tenant set`/`show`.
//!
//! Each write is one use case of `ops` (actor `cli`), the same the admin UI calls: one
//! transaction with its audit entry, and a change to roles, mappings or the role prefix
//! re-evaluates the tenant's roles in that same transaction (applied unless the tenant is
//! in test mode).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::{CliResult, for_stdout, printable, tenant_id};
use crate::auth::chain;
use crate::db::audit::{self, Action as AuditAction};
use crate::db::{Db, settings, tenants};
use crate::model::Actor;
use crate::ops::members::{self, AdminStatus, ExportFormat, ImportProblem};
use crate::ops::reconcile::{self, SyncRun};
use crate::ops::settings::{Edit, Saved, Update};
use crate::ops::{block_on, guard};
use crate::scim::datetime;
use crate::sync::{
    AbsentPolicy, DeactivatePolicy, DeletePolicy, MatchBy, Role, Settings, TextEnum,
};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Subcommand};

/// A value parser listing an enum's spellings in `--help` and in errors.
fn choice<T>() -> impl TypedValueParser<Value = T>
where
    T: TextEnum + std::str::FromStr + Clone + Send + Sync,
    T::Err: std::fmt::Debug,
{
    PossibleValuesParser::new(T::ALL.iter().map(|v| v.as_str()))
        .map(|s| s.parse::<T>().expect("one of the listed spellings"))
}

fn on_off() -> impl TypedValueParser<Value = bool> {
    PossibleValuesParser::new(["on", "off"]).map(|s| s == "on")
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

/// `scimd sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Tenant to sync.
    #[arg(long, default_value = tenants::DEFAULT_SLUG)]
    tenant: String,
    /// Report the plan and record the run, but apply nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the run and its report as JSON.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print the report as CSV, one row per changed field.
    #[arg(long)]
    csv: bool,
}

#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// Import members from a CSV file (columns: email, userName, givenName, familyName, role,
    /// Provisioning Managed). Nothing is imported unless every row is valid.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// Tenant to import into.
        #[arg(long, default_value = tenants::DEFAULT_SLUG)]
        tenant: String,
    },
    /// Add one person by hand, as the admin UI's "Add a person" does.
    Add {
        /// Their email.
        email: String,
        #[arg(long)]
        given_name: Option<String>,
        #[arg(long)]
        family_name: Option<String>,
        /// One of the tenant's roles; the default role when omitted.
        #[arg(long)]
        role: Option<String>,
        /// Provisioning does not manage them: the IdP's user with the same email does not
        /// link to them.
        #[arg(long)]
        unmanaged: bool,
        /// Tenant to add to.
        #[arg(long, default_value = tenants::DEFAULT_SLUG)]
        tenant: String,
    },
    /// Suspend a member the IdP does not decide for (added by hand or by CSV and not
    /// provisioned yet, or not managed), as the member's page does: apps are told
    /// (`member.suspended`).
    Suspend(MemberArg),
    /// Reactivate a suspended or archived member the IdP does not decide for.
    Reactivate(MemberArg),
    /// Archive a member the IdP does not decide for: gone for apps, kept as history.
    Archive(MemberArg),
    /// Delete a member the IdP does not decide for, with everything hanging off it.
    Delete(MemberArg),
    /// Print every member of the tenant.
    Export {
        /// Tenant to export.
        #[arg(long, default_value = tenants::DEFAULT_SLUG)]
        tenant: String,
        /// `csv`: the import format. `json`: every attribute, including status and source.
        #[arg(long, default_value = "csv", value_parser = PossibleValuesParser::new(["csv", "json"]))]
        format: String,
    },
}

/// The member a status change is for.
#[derive(Debug, Args)]
pub struct MemberArg {
    /// The member's id or email.
    member: String,
    /// The member's tenant.
    #[arg(long, default_value = tenants::DEFAULT_SLUG)]
    tenant: String,
}

#[derive(Debug, Subcommand)]
pub enum RolesCommand {
    /// Set the tenant's roles, highest first (e.g. owner,admin,member,viewer).
    Set {
        /// Comma-separated roles, highest-ranked first.
        #[arg(value_delimiter = ',', required = true, value_parser = parse_role)]
        roles: Vec<Role>,
        /// The role of members no mapped group gives a role to; must be one of the roles.
        #[arg(long, value_parser = parse_role)]
        default_role: Option<Role>,
        /// Tenant to change.
        #[arg(long, default_value = tenants::DEFAULT_SLUG)]
        tenant: String,
    },
    /// Give members of a directory group (by displayName, any case) a role.
    Map {
        /// The group's displayName.
        group: String,
        /// The role its members get (the highest of all their groups' roles wins).
        #[arg(value_parser = parse_role)]
        role: Role,
        /// Tenant to change.
        #[arg(long, default_value = tenants::DEFAULT_SLUG)]
        tenant: String,
    },
    /// Remove a group's mapping.
    Unmap {
        /// The group's displayName.
        group: String,
        /// Tenant to change.
        #[arg(long, default_value = tenants::DEFAULT_SLUG)]
        tenant: String,
    },
    /// Show the roles, the default role, the reserved prefix and the mappings.
    List {
        /// Tenant to show.
        #[arg(long, default_value = tenants::DEFAULT_SLUG)]
        tenant: String,
    },
}

/// `scimd tenant set`.
#[derive(Debug, Args)]
pub struct TenantSetArgs {
    /// Tenant to change.
    #[arg(long, default_value = tenants::DEFAULT_SLUG)]
    tenant: String,
    /// `on`: SCIM writes still land in the directory but change no member; `scimd sync`
    /// reports instead of applying. Turning it off applies nothing by itself.
    #[arg(long, value_parser = on_off())]
    test_mode: Option<bool>,
    /// What `active: false` from the IdP does to a member.
    #[arg(long, value_parser = choice::<DeactivatePolicy>())]
    on_deactivate: Option<DeactivatePolicy>,
    /// What DELETE /Users/{id} from the IdP does to a member.
    #[arg(long, value_parser = choice::<DeletePolicy>())]
    on_delete: Option<DeletePolicy>,
    /// What a full sync does to members the IdP does not have.
    #[arg(long, value_parser = choice::<AbsentPolicy>())]
    absent: Option<AbsentPolicy>,
    /// How a directory user is matched to an existing member.
    #[arg(long, value_parser = choice::<MatchBy>())]
    match_by: Option<MatchBy>,
    /// The role of members no mapped group gives a role to.
    #[arg(long, value_parser = parse_role)]
    default_role: Option<Role>,
    /// Groups named <prefix><role> always give that role (default scimd-role-).
    #[arg(long)]
    role_prefix: Option<String>,
    /// Keep events (the apps' feed, webhook replays) for this many days (default 90).
    #[arg(long)]
    event_retention_days: Option<u32>,
    /// With a number of days, a `delete` policy suspends the member now and deletes it after
    /// that many days unless it is reactivated first; `off` (the default) deletes at once.
    #[arg(long)]
    delete_grace_days: Option<Days>,
    /// Delete archived members this many days after they were archived; `never` (default).
    #[arg(long)]
    archived_retention_days: Option<Days>,
    /// Purge audit entries older than this many days (at least 30); `never` (default).
    #[arg(long)]
    audit_retention_days: Option<Days>,
    /// The guard against mass deprovisioning (on by default).
    #[arg(long, value_parser = on_off())]
    guard: Option<bool>,
    /// The guard trips past this share of active members within an hour (default 10)…
    #[arg(long)]
    guard_percent: Option<u32>,
    /// …or past this many people, whichever is larger (default 5).
    #[arg(long)]
    guard_minimum: Option<u32>,
}

/// A number of days, or `off` / `never` for none.
#[derive(Debug, Clone, Copy)]
struct Days(Option<u32>);

impl std::str::FromStr for Days {
    type Err = String;
    fn from_str(s: &str) -> Result<Days, String> {
        if s.eq_ignore_ascii_case("off") || s.eq_ignore_ascii_case("never") {
            return Ok(Days(None));
        }
        s.parse::<u32>()
            .map(|d| Days(Some(d)))
            .map_err(|_| format!("{s:?} is neither a number of days nor off/never"))
    }
}

/// `scimd audit`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: Option<AuditCommand>,
    /// Only this tenant's entries.
    #[arg(long, default_value = tenants::DEFAULT_SLUG)]
    tenant: String,
    /// The entries outside any tenant instead: admin accounts created, deleted and given
    /// new passwords, sign-ins, sign-outs and failed sign-ins.
    #[arg(long, conflicts_with = "tenant")]
    outside_tenants: bool,
    /// The entries of a deleted tenant instead, by the id `tenant delete` printed (the
    /// `tenantId` of its `tenant.deleted` entry, outside tenants).
    #[arg(long, value_name = "ID", conflicts_with_all = ["tenant", "outside_tenants"])]
    deleted_tenant: Option<i64>,
    /// How many of the newest entries to print.
    #[arg(long, default_value_t = 50)]
    limit: u64,
    /// Every matching entry, oldest first, instead of the newest `--limit` (an export).
    #[arg(long, conflicts_with = "limit")]
    all: bool,
    /// Only this actor (`cli`, `token:<id>`, `admin:<name>`), or every actor of a kind or
    /// name (`admin`, `alice`).
    #[arg(long)]
    actor: Option<String>,
    /// Only this action (e.g. member.created, scim.patch, sync.run).
    #[arg(long, value_parser = choice::<AuditAction>())]
    action: Option<AuditAction>,
    /// Only this target (`member/<id>`, `Users/<id>`), or every target under a prefix
    /// ending in `/` (`Users/`).
    #[arg(long)]
    target: Option<String>,
    /// Only entries at or after this RFC 3339 time.
    #[arg(long, value_parser = parse_time)]
    since: Option<String>,
    /// Only entries before this RFC 3339 time.
    #[arg(long, value_parser = parse_time)]
    until: Option<String>,
    /// Keep printing new entries as they are written (Ctrl-C stops).
    #[arg(long)]
    follow: bool,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the log's hash chains and name the first entry that was changed, removed or
    /// inserted; prints each chain's newest hash (keep them elsewhere to compare later).
    Verify {
        /// Only this tenant's chain (default: the whole log, every tenant's chain and the
        /// entries outside any tenant).
        #[arg(long)]
        tenant: Option<String>,
        /// Verify an export (`scimd audit`, the UI's download) instead of the database.
        #[arg(long, conflicts_with = "tenant")]
        file: Option<PathBuf>,
    },
}

fn parse_time(s: &str) -> Result<String, String> {
    datetime::canonical(s).ok_or_else(|| format!("{s:?} is not an RFC 3339 date-time"))
}

pub fn sync(db: &Db, args: SyncArgs) -> CliResult {
    let tenant = tenant_id(db, &args.tenant)?;
    let run = block_on(reconcile::force(db, &Actor::cli(), tenant, args.dry_run))?;
    // What the guard would make of a report not applied, as the sync page warns of it.
    let n = run.report.deprovisionings();
    let forecast = match run.dry_run {
        true => block_on(guard::would_trip(db, tenant, n))?,
        false => None,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut json = serde_json::to_value(&run)?;
        if run.dry_run {
            json["guard"] = match forecast {
                Some(guard::Forecast::Threshold(threshold)) => serde_json::json!(
                    {"would_hold": n, "reason": "threshold", "threshold": threshold}
                ),
                Some(guard::Forecast::OpenHold) => {
                    serde_json::json!({"would_hold": n, "reason": "open_hold"})
                }
                None => serde_json::Value::Null,
            };
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
    } else if args.csv {
        write!(out, "{}", for_stdout(&run.report.to_csv()))?;
    } else {
        writeln!(out, "{}", run_headline(&run))?;
        match forecast {
            Some(guard::Forecast::Threshold(threshold)) => writeln!(
                out,
                "the guard against mass deprovisioning would hold this: its {n} \
                 deprovisionings, with those applied in the last hour, are more than it \
                 allows ({threshold})"
            )?,
            Some(guard::Forecast::OpenHold) => writeln!(
                out,
                "the guard against mass deprovisioning would hold this: a hold is open \
                 (`scimd guard show`), and it holds every deprovisioning, these {n} too"
            )?,
            None => {}
        }
        write!(out, "{}", printable(&run.report.to_text()))?;
    }
    Ok(())
}

fn run_headline(run: &SyncRun) -> String {
    if run.test_mode {
        "test mode is on: nothing applied (the report is what a sync would do; \
         `scimd tenant set --test-mode off` then `scimd sync` applies it)"
            .to_string()
    } else if run.dry_run {
        "dry run: nothing applied".to_string()
    } else if run.held > 0 && run.applied() == 0 {
        format!(
            "nothing applied: the guard against mass deprovisioning holds all {} \
             deprovisionings of this report: `scimd guard show` lists them, `scimd guard approve` applies them",
            run.held
        )
    } else if run.held > 0 {
        format!(
            "{}, but the guard against mass deprovisioning holds {} of these \
             deprovisionings: `scimd guard show` lists them, `scimd guard approve` applies them",
            run.applied_in(),
            run.held
        )
    } else {
        run.applied_in()
    }
}

/// `scimd guard`.
#[derive(Debug, Subcommand)]
pub enum GuardCommand {
    /// What the guard against mass deprovisioning holds, if it tripped.
    Show {
        #[arg(long, default_value = tenants::DEFAULT_SLUG)]
        tenant: String,
    },
    /// Apply every held deprovisioning (as the directory now says) and end the hold.
    Approve {
        #[arg(long, default_value = tenants::DEFAULT_SLUG)]
        tenant: String,
    },
    /// Keep members as they are; deprovisionings stay held until the directory changes back.
    Reject {
        #[arg(long, default_value = tenants::DEFAULT_SLUG)]
        tenant: String,
    },
}

pub fn guard_cmd(db: &Db, cmd: GuardCommand) -> CliResult {
    let (GuardCommand::Show { tenant }
    | GuardCommand::Approve { tenant }
    | GuardCommand::Reject { tenant }) = &cmd;
    let id = tenant_id(db, tenant)?;
    let Some(status) = block_on(guard::status(db, id, 1000))? else {
        println!("nothing is held");
        return Ok(());
    };
    let hold = status.hold.id;
    match cmd {
        GuardCommand::Show { .. } => {
            println!(
                "hold {hold} ({}), since {}: {} deprovisionings held (threshold {} an hour, {} active members then)",
                status.hold.state,
                status.hold.opened_at,
                status.held,
                status.hold.threshold,
                status.hold.active_members
            );
            for h in &status.first {
                let reason = h.reason.as_deref().unwrap_or("");
                let line = format!("{}\t{}\t{}\t{reason}", h.member_id, h.subject, h.action);
                println!("{}", printable(&line));
            }
        }
        GuardCommand::Approve { .. } => {
            let n = block_on(guard::approve(db, &Actor::cli(), id, hold, None))?;
            println!("approved: {n} changes applied");
        }
        GuardCommand::Reject { .. } => {
            block_on(guard::reject(db, &Actor::cli(), id, hold))?;
            println!("rejected: members stay as they are; held until the directory changes back");
        }
    }
    Ok(())
}

pub fn members_cmd(db: &Db, cmd: MembersCommand) -> CliResult {
    match cmd {
        MembersCommand::Import { file, tenant } => {
            let tenant = tenant_id(db, &tenant)?;
            let bytes =
                std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let cli = Actor::cli();
            let (rows, summary) = match block_on(members::import(db, &cli, tenant, bytes, None))? {
                Ok(done) => done,
                Err(ImportProblem::Rows(errors)) => {
                    for e in &errors {
                        eprintln!("{}: {e}", file.display());
                    }
                    return Err(format!(
                        "{} problem(s) in {}; nothing imported",
                        errors.len(),
                        file.display()
                    )
                    .into());
                }
                Err(ImportProblem::Conflict(m)) => {
                    return Err(format!("{}: {m}; nothing imported", file.display()).into());
                }
                Err(ImportProblem::Changed(_)) => {
                    return Err(format!(
                        "{}: the members changed meanwhile; nothing imported",
                        file.display()
                    )
                    .into());
                }
            };
            println!(
                "imported {rows} row(s): {} created, {} updated, {} unchanged",
                summary.created, summary.updated, summary.unchanged
            );
        }
        MembersCommand::Add {
            email,
            given_name,
            family_name,
            role,
            unmanaged,
            tenant,
        } => {
            let person = members::NewPerson {
                email,
                given_name,
                family_name,
                role,
                managed: !unmanaged,
            };
            let tenant = tenant_id(db, &tenant)?;
            let member = block_on(members::add(db, &Actor::cli(), tenant, person))??;
            println!(
                "added {} ({}, role {})",
                member.profile.email.unwrap_or_default(),
                member.id,
                member.role
            );
        }
        MembersCommand::Suspend(who) => set_status(db, who, AdminStatus::Suspend, "suspended")?,
        MembersCommand::Reactivate(who) => {
            set_status(db, who, AdminStatus::Reactivate, "reactivated")?
        }
        MembersCommand::Archive(who) => set_status(db, who, AdminStatus::Archive, "archived")?,
        MembersCommand::Delete(who) => set_status(db, who, AdminStatus::Delete, "deleted")?,
        MembersCommand::Export { tenant, format } => {
            let format = if format == "json" {
                ExportFormat::Json
            } else {
                ExportFormat::Csv
            };
            let text = block_on(members::export(db, tenant_id(db, &tenant)?, format))?;
            std::io::stdout()
                .lock()
                .write_all(for_stdout(&text).as_bytes())?;
        }
    }
    Ok(())
}

/// An admin's status change of one member, found by id or email.
fn set_status(db: &Db, who: MemberArg, change: AdminStatus, done: &str) -> CliResult {
    let tenant = tenant_id(db, &who.tenant)?;
    let key = who.member.clone();
    let conn = db.conn()?;
    let found = match crate::db::members::get(&conn, tenant, &key)? {
        Some(m) => Some(m),
        None => crate::db::members::by_email(&conn, tenant, &key)?,
    };
    drop(conn);
    let m = found.ok_or_else(|| format!("no member {} in tenant {}", who.member, who.tenant))?;
    block_on(members::set_status(
        db,
        &Actor::cli(),
        tenant,
        m.id.clone(),
        change,
    ))?;
    println!("{} ({}) {done}", m.profile.email.unwrap_or_default(), m.id);
    Ok(())
}

/// Saves a settings edit the way the admin UI does (`ops::settings::edit`, actor `cli`).
fn save_settings(db: &Db, tenant: i64, edit: Edit) -> Result<Saved, Box<dyn std::error::Error>> {
    Ok(block_on(crate::ops::settings::edit(
        db,
        &Actor::cli(),
        tenant,
        edit,
    ))?)
}

fn print_reevaluation(run: Option<&SyncRun>) {
    let Some(run) = run else { return };
    if run.test_mode {
        println!(
            "roles re-evaluated in test mode, nothing applied: {}",
            run.report.summary()
        );
    } else {
        println!("roles re-evaluated: {}", run.report.summary());
    }
}

pub fn tenant_set(db: &Db, args: TenantSetArgs) -> CliResult {
    let tenant = tenant_id(db, &args.tenant)?;
    let update = Update {
        test_mode: args.test_mode,
        on_deactivate: args.on_deactivate,
        on_delete: args.on_delete,
        absent: args.absent,
        match_by: args.match_by,
        default_role: args.default_role,
        role_prefix: args.role_prefix,
        event_retention_days: args.event_retention_days,
        delete_grace_days: args.delete_grace_days.map(|d| d.0),
        archived_retention_days: args.archived_retention_days.map(|d| d.0),
        audit_retention_days: args.audit_retention_days.map(|d| d.0),
        guard_enabled: args.guard,
        guard_percent: args.guard_percent,
        guard_minimum: args.guard_minimum,
        ..Update::default()
    };
    let saved = save_settings(db, tenant, Edit::Update(update))?;
    let turned_off = saved.before.test_mode && !saved.after.test_mode;
    print_settings(&args.tenant, &saved.after);
    if turned_off {
        println!(
            "test mode is off: nothing was applied by turning it off; `scimd sync` applies the report"
        );
    }
    print_reevaluation(saved.run.as_ref());
    Ok(())
}

pub fn tenant_show(db: &Db, tenant: &str) -> CliResult {
    let s = settings::get(&*db.conn()?, tenant_id(db, tenant)?)?;
    print_settings(tenant, &s);
    Ok(())
}

fn print_settings(tenant: &str, s: &Settings) {
    let roles: Vec<&str> = s.roles.iter().map(Role::as_str).collect();
    println!("tenant:        {tenant}");
    println!("test mode:     {}", if s.test_mode { "on" } else { "off" });
    println!("on deactivate: {}", s.on_deactivate);
    println!("on delete:     {}", s.on_delete);
    println!("absent:        {}", s.absent);
    println!("match by:      {}", s.match_by);
    println!("roles:         {}", roles.join(" > "));
    println!("default role:  {}", s.default_role);
    println!("role prefix:   {}", s.role_prefix);
    println!("events kept:   {} days", s.event_retention_days);
    let days = |d: Option<u32>, none: &str| d.map_or(none.to_string(), |d| format!("{d} days"));
    println!("delete grace:  {}", days(s.delete_grace_days, "off"));
    println!(
        "archived kept: {}",
        days(s.archived_retention_days, "forever")
    );
    println!("audit kept:    {}", days(s.audit_retention_days, "forever"));
    if s.guard.enabled {
        println!(
            "guard:         holds more than {} % of active members or {} people an hour, whichever is larger",
            s.guard.percent, s.guard.minimum
        );
    } else {
        println!("guard:         off");
    }
    for m in &s.mappings {
        println!("mapping:       {} -> {}", printable(&m.group), m.role);
    }
}

pub fn roles(db: &Db, cmd: RolesCommand) -> CliResult {
    match cmd {
        RolesCommand::Set {
            roles,
            default_role,
            tenant,
        } => {
            let id = tenant_id(db, &tenant)?;
            let update = Update {
                roles: Some(roles),
                default_role,
                ..Update::default()
            };
            let saved = save_settings(db, id, Edit::Update(update))?;
            print_settings(&tenant, &settings::get(&*db.conn()?, id)?);
            print_reevaluation(saved.run.as_ref());
        }
        RolesCommand::Map {
            group,
            role,
            tenant,
        } => {
            let id = tenant_id(db, &tenant)?;
            let edit = Edit::Map {
                group: group.clone(),
                role: role.clone(),
            };
            let saved = save_settings(db, id, edit)?;
            println!("members of group {group:?} get role {role}");
            print_reevaluation(saved.run.as_ref());
        }
        RolesCommand::Unmap { group, tenant } => {
            let id = tenant_id(db, &tenant)?;
            let edit = Edit::Unmap {
                group: group.clone(),
            };
            let saved =
                save_settings(db, id, edit).map_err(|e| format!("{e} (see `scimd roles list`)"))?;
            println!("group {group:?} no longer maps to a role");
            print_reevaluation(saved.run.as_ref());
        }
        RolesCommand::List { tenant } => return tenant_show(db, &tenant),
    }
    Ok(())
}

/// `scimd audit`; `open` opens the database, which verifying an export does not need.
pub fn audit_cmd(
    open: impl Fn() -> Result<Db, Box<dyn std::error::Error>>,
    args: AuditArgs,
) -> CliResult {
    if let Some(AuditCommand::Verify { tenant, file }) = args.command {
        return audit_verify(open, tenant, file);
    }
    let db = &open()?;
    let conn = db.conn()?;
    let mut filter = audit::Filter {
        tenant_id: Some(match (args.outside_tenants, args.deleted_tenant) {
            (true, _) => None,
            (false, Some(id)) => {
                // Gone, or on its way: its deletion is on record either way.
                if audit::tenant_deletion(&conn, id)?.is_none() {
                    return Err(match tenants::get(&conn, id) {
                        Ok(t) => format!("tenant {id} is not deleted: use --tenant {}", t.slug),
                        Err(_) => format!(
                            "no tenant {id} was deleted (`scimd audit --outside-tenants --action tenant.deleted` lists those that were)"
                        ),
                    }
                    .into());
                }
                Some(id)
            }
            (false, None) => Some(tenant_id(db, &args.tenant)?),
        }),
        actor: args.actor,
        action: args.action,
        target: args.target,
        since: args.since,
        until: args.until,
        after_id: None,
        last: Some(args.limit),
    };
    // With `--all`, printed a chunk at a time; `--follow` then goes on after the last one.
    let mut filter_after = None;
    if args.all {
        let mut out = std::io::stdout().lock();
        audit::each(&conn, &filter, |r| -> CliResult {
            writeln!(out, "{}", r.to_json_line())?;
            filter_after = Some(r.id);
            Ok(())
        })?;
        out.flush()?;
        if !args.follow {
            return Ok(());
        }
        filter.after_id = filter_after;
        filter.last = None;
    }
    loop {
        let records = audit::list(&conn, &filter)?;
        let mut out = std::io::stdout().lock();
        for r in &records {
            writeln!(out, "{}", r.to_json_line())?;
        }
        out.flush()?;
        if !args.follow {
            return Ok(());
        }
        if let Some(last) = records.last() {
            filter.after_id = Some(last.id);
        }
        filter.last = None;
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn audit_verify(
    open: impl Fn() -> Result<Db, Box<dyn std::error::Error>>,
    tenant: Option<String>,
    file: Option<PathBuf>,
) -> CliResult {
    let mut verifier;
    let outcome = match (&tenant, file) {
        (_, Some(path)) => {
            verifier = chain::Verifier::export();
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let mut outcome = Ok(());
            for (n, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let bad =
                    |e: String| format!("{}:{}: not an audit entry: {e}", path.display(), n + 1);
                let value: serde_json::Value =
                    serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
                if let Err(b) = verifier.feed(&audit::exported_link(&value).map_err(bad)?) {
                    outcome = Err(b);
                    break;
                }
            }
            outcome
        }
        (Some(slug), None) => {
            verifier = chain::Verifier::one_chain();
            let db = &open()?;
            let id = tenant_id(db, slug)?;
            audit::verify(&*db.conn()?, Some(Some(id)), &mut verifier)?
        }
        (None, None) => {
            verifier = chain::Verifier::whole_log();
            audit::verify(&*open()?.conn()?, None, &mut verifier)?
        }
    };
    let mut out = std::io::stdout().lock();
    let mut heads: Vec<_> = verifier.heads().collect();
    heads.sort_by_key(|(t, _)| *t);
    for (t, head) in heads {
        let chain = t.map_or("outside tenants".to_string(), |t| format!("tenant {t}"));
        writeln!(
            out,
            "{chain}: {} entries, newest {} with hash {}",
            head.entries, head.id, head.hash
        )?;
    }
    match outcome {
        Ok(()) => {
            writeln!(out, "ok: {} entries verified", verifier.entries())?;
            Ok(())
        }
        Err(b) => Err(format!("the audit log does not verify: {b}").into()),
    }
}
