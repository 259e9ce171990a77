//! Times one whole-tenant plan (what the test mode & sync page and force sync make) on an
//! existing database: first its parts one after another (reading the directory users,
//! reading the members, planning, building the report), then as the page makes it, with
//! the users and the members read at once on two connections.
//!
//! `cargo run --release --example planbench -- scimd.db [tenant id] [rounds]`
//! Reads only (opening the database migrates it, as `scimd serve` would); run it on a
//! copy of a server's database, or beside a running server.
use std::time::Instant;

use scimd::db::{Db, Durability, members, settings, tenants, users};
use scimd::model::Directory;
use scimd::ops::reconcile;
use scimd::sync::Report;

/// The server's allocator (`src/main.rs`), so that the times are the server's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: planbench DB [TENANT] [ROUNDS]");
    let tenant: i64 = args.next().map_or(1, |t| t.parse().expect("a tenant id"));
    let rounds: usize = args
        .next()
        .map_or(3, |r| r.parse().expect("a number of rounds"));
    let db = Db::open(path.as_ref(), Durability::Full).expect("the database opens");
    let conn = db.conn().expect("a connection");
    let settings = settings::get(&conn, tenant).expect("the tenant's settings");
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
        let directory = Directory {
            users: users::all_directory_users(&conn, tenant).expect("directory users"),
            deleted: Vec::new(),
            complete: true,
        };
        let read_users = lap();
        let members = members::for_plan(&conn, tenant).expect("members");
        let read_members = lap();
        let changes = scimd::sync::plan(&directory, &members, &settings);
        let planned = lap();
        let report = Report::new(&changes);
        let reported = lap();
        let in_all = started.elapsed().as_secs_f64() * 1e3;
        drop((directory, members, changes));
        let dropped = lap();
        println!(
            "round {round}: users {read_users:.1} ms, members {read_members:.1} ms, plan \
             {planned:.1} ms, report {reported:.1} ms: {in_all:.1} ms in all (then {dropped:.1} \
             ms to free it); {} changes",
            report.counts.changes()
        );
        if round == rounds {
            at_once(&db, &conn, tenant, &settings, rounds, &report);
        }
    }
}

/// Times the plan as the page makes it, `rounds` times, each after the last one's
/// directory was freed in the background.
fn at_once(
    db: &Db,
    conn: &rusqlite::Connection,
    tenant: i64,
    settings: &scimd::model::Settings,
    rounds: usize,
    serial: &Report,
) {
    let mut times: Vec<f64> = (0..rounds)
        .map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(200));
            let started = Instant::now();
            let version = tenants::plan_version(conn, tenant).expect("the tenant");
            let changes =
                reconcile::plan_at_once(db, conn, tenant, &version, settings).expect("a plan");
            let report = Report::new(&changes);
            let ms = started.elapsed().as_secs_f64() * 1e3;
            assert_eq!(report.counts, serial.counts, "both ways plan alike");
            ms
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "as the page plans, reading users and members at once: median {:.1} ms, fastest \
         {:.1}, slowest {:.1} ({rounds} rounds)",
        times[rounds / 2],
        times[0],
        times[rounds - 1]
    );
}
