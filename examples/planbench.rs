//! Times the parts of one whole-tenant plan (what the test mode & sync page and force sync
//! make) on an existing database: reading the directory users, reading the members,
//! copying them for the planner, planning, and building the report.
//!
//! `cargo run --release --example planbench -- scimd.db [tenant id] [rounds]`
//! Read only; run it on a copy of a server's database, or beside a running server.
use std::time::Instant;

use scimd::db::{members, settings, users};
use scimd::model::Directory;
use scimd::sync::Report;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: planbench DB [TENANT] [ROUNDS]");
    let tenant: i64 = args.next().map_or(1, |t| t.parse().expect("a tenant id"));
    let rounds: usize = args
        .next()
        .map_or(3, |r| r.parse().expect("a number of rounds"));
    let conn =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("the database opens");
    for round in 1..=rounds {
        let started = Instant::now();
        let mut lap = {
            let mut last = Instant::now();
            move || {
                let now = Instant::now();
                let ms = (now - last).as_secs_f64() * 1e3;
                last = now;
                ms
            }
        };
        let settings = settings::get(&conn, tenant).expect("the tenant's settings");
        let directory = Directory {
            users: users::all_directory_users(&conn, tenant).expect("directory users"),
            deleted: Vec::new(),
            complete: true,
        };
        let read_users = lap();
        let rows = members::list(&conn, tenant).expect("members");
        let read_members = lap();
        let synced: Vec<_> = rows.iter().map(|m| m.to_sync()).collect();
        let copied = lap();
        let changes = scimd::sync::plan(&directory, &synced, &settings);
        let planned = lap();
        let report = Report::new(&changes);
        let reported = lap();
        println!(
            "round {round}: {} users, {} members: users {read_users:.1} ms, members \
             {read_members:.1} ms, copy {copied:.1} ms, plan {planned:.1} ms, report \
             {reported:.1} ms; {:.1} ms in all, {} changes",
            directory.users.len(),
            rows.len(),
            started.elapsed().as_secs_f64() * 1e3,
            report.counts.changes()
        );
    }
}
