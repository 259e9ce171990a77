//! The `scimd` binary as an operator uses it: first start, tokens, tenants, signals.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn scimd(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scimd"));
    c.current_dir(dir)
        .env_remove("SCIMD_DB")
        .env_remove("SCIMD_LISTEN")
        .env_remove("SCIMD_BASE_URL")
        .env_remove("SCIMD_METRICS")
        .env_remove("SCIMD_METRICS_LISTEN");
    c
}

fn run(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = scimd(dir).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn token_create_prints_only_the_token_and_stores_only_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, _) = run(dir.path(), &["token", "create", "--name", "Okta prod"]);
    assert!(ok);
    let token = out.trim_end_matches('\n');
    assert_eq!(out.lines().count(), 1);
    assert!(token.starts_with("scimd_") && token.len() == 70, "{token}");
    assert!(
        dir.path().join("scimd.db").exists(),
        "the default database is created beside"
    );

    let (ok, list, _) = run(dir.path(), &["token", "list"]);
    assert!(ok);
    assert!(
        list.contains("Okta prod") && list.contains(&token[..12]),
        "{list}"
    );
    assert!(!list.contains(token), "the secret is never shown again");
    let raw = std::fs::read(dir.path().join("scimd.db")).unwrap();
    let wal = std::fs::read(dir.path().join("scimd.db-wal")).unwrap_or_default();
    for bytes in [raw, wal] {
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "the secret is not stored"
        );
    }

    let (ok, out, _) = run(dir.path(), &["token", "revoke", "1"]);
    assert!(ok, "{out}");
    assert!(run(dir.path(), &["token", "list"]).1.contains("revoked"));
    let (ok, _, err) = run(dir.path(), &["token", "revoke", "1"]);
    assert!(!ok && err.contains("no active token"), "{err}");
}

#[test]
fn tenants_are_created_listed_and_required_for_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("custom.db");
    let db = db.to_str().unwrap();
    assert!(
        run(
            dir.path(),
            &["--db", db, "tenant", "create", "acme", "--name", "Acme Inc"]
        )
        .0
    );
    let (_, out, _) = run(dir.path(), &["--db", db, "tenant", "list"]);
    assert!(
        out.contains("default") && out.contains("acme\tAcme Inc"),
        "{out}"
    );
    let (ok, _, err) = run(dir.path(), &["--db", db, "tenant", "create", "acme"]);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = run(dir.path(), &["--db", db, "tenant", "create", "Bad Slug"]);
    assert!(!ok && err.contains("invalid tenant slug"), "{err}");
    // As long a name as a rename allows, and no longer.
    let long = "n".repeat(101);
    let (ok, _, err) = run(
        dir.path(),
        &["--db", db, "tenant", "create", "big", "--name", &long],
    );
    assert!(!ok && err.contains("1 to 100 characters"), "{err}");
    let (ok, _, err) = run(
        dir.path(),
        &["--db", db, "tenant", "create", "tab", "--name", "A\tB"],
    );
    assert!(!ok && err.contains("control characters"), "{err}");
    // A mapping to a role that does not exist says so, and how to mend it.
    let (ok, _, err) = run(
        dir.path(),
        &["--db", db, "roles", "map", "Ops", "superuser"],
    );
    assert!(
        !ok && err
            .contains("there is no role superuser: choose one of owner, admin, member, viewer"),
        "{err}"
    );
    assert!(
        run(
            dir.path(),
            &["--db", db, "token", "create", "--tenant", "acme"]
        )
        .0
    );
    let (ok, _, err) = run(
        dir.path(),
        &["--db", db, "token", "create", "--tenant", "nope"],
    );
    assert!(!ok && err.contains("no tenant"), "{err}");
}

/// `scimd admin create`, the password typed on its standard input.
fn create_admin(dir: &std::path::Path, username: &str, password: &str) {
    use std::io::Write;
    let mut admin = scimd(dir)
        .args(["admin", "create", username])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(admin.stdin.take().unwrap(), "{password}").unwrap();
    assert!(admin.wait().unwrap().success());
}

/// Starts `scimd serve` in `dir` on a free port: the process, its address, and the rest of
/// what it prints.
fn serve(
    dir: &std::path::Path,
) -> (
    std::process::Child,
    String,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    let mut child = scimd(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (addr, lines) = listening(&mut child);
    (child, addr, lines)
}

/// The address a starting `serve` says it listens on, and the rest of what it prints.
fn listening(
    child: &mut std::process::Child,
) -> (String, std::io::Lines<BufReader<std::process::ChildStdout>>) {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first.rsplit("http://").next().unwrap().to_string();
    (addr, lines)
}

#[test]
fn serve_starts_on_the_default_database_answers_health_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr, mut lines) = serve(dir.path());
    let second = lines.next().unwrap().unwrap();
    assert_eq!(second, format!("SCIM base URL: http://{addr}/scim/v2"));
    assert!(dir.path().join("scimd.db").exists());

    let (ok, out, _) = run(dir.path(), &["healthcheck", "--listen", &addr]);
    assert!(ok && out.trim() == "ok");
    // The container's SCIMD_LISTEN=0.0.0.0:PORT: asked on loopback.
    let port = addr.rsplit(':').next().unwrap();
    let every = format!("0.0.0.0:{port}");
    let (ok, out, err) = run(dir.path(), &["healthcheck", "--listen", &every]);
    assert!(ok && out.trim() == "ok", "{err}");
    let named = format!("localhost:{port}");
    let (ok, _, err) = run(dir.path(), &["healthcheck", "--listen", &named]);
    assert!(ok, "localhost is 127.0.0.1: {err}");
    let (ok, _, err) = run(dir.path(), &["healthcheck", "--listen", port]);
    assert!(
        !ok && err.contains("is not IP:PORT: e.g. 127.0.0.1:8080"),
        "{err}"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
    let (ok, _, _) = run(dir.path(), &["healthcheck", "--listen", &addr]);
    assert!(!ok, "healthcheck fails once the server is gone");
}

/// Behind a proxy that gives scimd a path (`--base-url https://…/scimd`), the URLs for IdPs
/// carry it, but the first-run link is the listener's: the admin UI lives at a host's root.
#[test]
fn the_first_run_link_is_the_admin_uis_when_the_base_url_has_a_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = scimd(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--base-url", "https://scim.example.com/scimd"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .take_while(|l| !l.starts_with("no SCIM token"))
        .collect();
    child.kill().unwrap();
    child.wait().unwrap();
    let addr = lines[0].rsplit("http://").next().unwrap();
    assert_eq!(
        lines[1],
        "SCIM base URL: https://scim.example.com/scimd/scim/v2"
    );
    let setup = lines.iter().find(|l| l.starts_with("first run")).unwrap();
    assert!(
        setup.contains(&format!("at http://{addr}/setup?token=")),
        "{lines:?}"
    );
}

/// An app following the events feed (a stream, a long poll) does not hold a shutdown to
/// its drain timeout: the stream ends and the poll is answered at once.
#[test]
fn sigterm_ends_event_streams_and_long_polls_at_once() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let (ok, key, err) = run(dir.path(), &["apikey", "create", "--name", "app"]);
    assert!(ok, "{err}");
    let key = key.lines().last().unwrap().to_string();
    let (mut child, addr, _) = serve(dir.path());
    let open = |path: &str, accept: &str| {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            c,
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        c
    };
    let mut stream = open("/api/v1/events", "text/event-stream");
    let mut poll = open("/api/v1/events?wait=25", "application/json");
    // The stream has started (its head is out) and the poll is waiting.
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(5),
        "shutdown took {took:?}"
    );
    let mut answer = String::new();
    poll.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
}

/// The status line of `GET path` on `addr`, over a bare TCP connection.
fn status_of(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    answer.lines().next().unwrap_or_default().to_string()
}

#[test]
fn metrics_listen_serves_metrics_apart_and_metrics_off_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = scimd(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .take(4)
        .map(Result::unwrap)
        .collect();
    let main = lines[0].rsplit("http://").next().unwrap().to_string();
    let metrics = lines[3]
        .strip_prefix("metrics: http://")
        .and_then(|l| l.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("{lines:?}"))
        .to_string();
    assert_eq!(status_of(&metrics, "/metrics"), "HTTP/1.1 200 OK");
    assert_eq!(status_of(&metrics, "/healthz"), "HTTP/1.1 404 Not Found");
    assert_eq!(status_of(&main, "/metrics"), "HTTP/1.1 404 Not Found");
    assert_eq!(status_of(&main, "/healthz"), "HTTP/1.1 200 OK");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());

    let (ok, _, err) = run(
        dir.path(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "off",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    assert!(!ok && err.contains("--metrics-listen"), "{err}");
}

#[test]
fn a_database_from_a_newer_scimd_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &["tenant", "list"]).0);
    let conn = rusqlite::Connection::open(dir.path().join("scimd.db")).unwrap();
    conn.pragma_update(None, "user_version", 9999).unwrap();
    drop(conn);
    let (ok, _, err) = run(dir.path(), &["tenant", "list"]);
    assert!(!ok && err.contains("newer scimd"), "{err}");
}

#[test]
fn backup_writes_a_consistent_copy_that_opens_as_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, token, _) = run(dir.path(), &["token", "create", "--name", "kept"]);
    assert!(ok);
    let (ok, out, err) = run(dir.path(), &["backup", "copy.db"]);
    assert!(ok, "{err}");
    assert!(out.contains("backed up"), "{out}");
    // A file on its own, in rollback-journal mode (read-only media can open it), and
    // nothing of its making left beside it.
    let header = std::fs::read(dir.path().join("copy.db")).unwrap();
    assert_eq!((header[18], header[19]), (1, 1), "not in WAL mode");
    let beside: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("copy.db") && n != "copy.db")
        .collect();
    assert!(beside.is_empty(), "{beside:?}");
    // The copy is a whole scimd database: the token is there (by prefix), usable as --db.
    let (ok, list, _) = run(dir.path(), &["--db", "copy.db", "token", "list"]);
    assert!(
        ok && list.contains("kept") && list.contains(&token[..12]),
        "{list}"
    );
    let (ok, _, err) = run(dir.path(), &["backup", "copy.db"]);
    assert!(!ok && err.contains("exists already"), "{err}");
}

/// A server that cannot have its address (a port in use) says so and stops before it
/// makes or changes a database; bad limits and SCIMD_LOG values are said too.
#[test]
fn serve_refuses_a_busy_port_before_touching_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (ok, _, err) = run(
        dir.path(),
        &["--db", "new.db", "serve", "--listen", addr.as_str()],
    );
    assert!(!ok && err.contains("cannot listen on"), "{err}");
    assert!(!dir.path().join("new.db").exists(), "no database was made");
    // A database in a directory that does not exist: said, with the directory.
    for command in [
        &["serve", "--listen", "127.0.0.1:0"][..],
        &["tenant", "list"],
    ] {
        let args = [&["--db", "nodir/x.db"][..], command].concat();
        let (ok, _, err) = run(dir.path(), &args);
        assert!(
            !ok && err.contains("the directory nodir does not exist"),
            "{command:?}: {err}"
        );
    }
    for (flag, value) in [
        ("--max-requests", "0"),
        ("--max-connections", "0"),
        ("--max-body-bytes", "10"),
    ] {
        let (ok, _, err) = run(dir.path(), &["serve", flag, value]);
        assert!(!ok && err.contains("at least"), "{flag} {value}: {err}");
    }
}

/// A database reached through a symlink (to a data volume, say) works like any other:
/// SQLite keeps its log beside the file the link points to, and that is the log flushed.
#[cfg(unix)]
#[test]
fn a_database_behind_a_symlink_takes_writes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("volume")).unwrap();
    let (ok, _, err) = run(dir.path(), &["--db", "volume/real.db", "tenant", "list"]);
    assert!(ok, "{err}");
    std::os::unix::fs::symlink(
        dir.path().join("volume/real.db"),
        dir.path().join("link.db"),
    )
    .unwrap();
    let (ok, token, err) = run(
        dir.path(),
        &["--db", "link.db", "token", "create", "--name", "linked"],
    );
    assert!(ok && token.starts_with("scimd_"), "{err}");
    let (ok, list, err) = run(dir.path(), &["--db", "volume/real.db", "token", "list"]);
    assert!(ok && list.contains("linked"), "{err}");
}

/// The database and its backups hold webhook secrets and credential hashes: only their
/// owner may read them, whatever the umask. A command that creates the database says so,
/// so a mistyped `--db` does not quietly act on a new, empty one.
#[cfg(unix)]
#[test]
fn the_database_and_its_backups_are_private_and_a_new_one_is_announced() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mode = |name: &str| {
        let meta = std::fs::metadata(dir.path().join(name)).unwrap();
        meta.permissions().mode() & 0o777
    };
    let (ok, _, err) = run(dir.path(), &["--db", "scimd.db", "tenant", "list"]);
    assert!(ok, "{err}");
    assert!(err.contains("created a new database at scimd.db"), "{err}");
    let (ok, _, err) = run(dir.path(), &["tenant", "list"]);
    assert!(
        ok && err.is_empty(),
        "an existing database is not announced: {err}"
    );
    assert_eq!(mode("scimd.db"), 0o600);
    let (ok, _, err) = run(dir.path(), &["backup", "copy.db"]);
    assert!(ok, "{err}");
    assert_eq!(mode("copy.db"), 0o600);
    // A restore into a new place makes a private database too, its log with it.
    let (ok, _, err) = run(dir.path(), &["--db", "fresh.db", "restore", "copy.db"]);
    assert!(ok, "{err}");
    for file in ["fresh.db", "fresh.db-wal", "fresh.db-shm"] {
        if dir.path().join(file).exists() {
            assert_eq!(mode(file), 0o600, "{file}");
        }
    }
}

#[test]
fn apikey_and_events_commands_issue_list_revoke_and_print_the_feed() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, _) = run(dir.path(), &["apikey", "create", "--name", "billing"]);
    assert!(ok);
    let key = out.lines().last().unwrap();
    assert!(key.starts_with("scimd_key_") && key.len() == 74, "{key}");
    let (ok, list, _) = run(dir.path(), &["apikey", "list"]);
    assert!(ok);
    assert!(
        list.contains("billing") && list.contains(&key[..14]),
        "{list}"
    );
    assert!(!list.contains(key), "the key itself is never shown again");
    let id = list.lines().nth(1).unwrap().split('\t').next().unwrap();
    let (ok, out, _) = run(dir.path(), &["apikey", "revoke", id]);
    assert!(ok, "{out}");
    let (_, list, _) = run(dir.path(), &["apikey", "list"]);
    assert!(list.contains("revoked"), "{list}");
    let (ok, _, err) = run(dir.path(), &["apikey", "revoke", id]);
    assert!(!ok && err.contains("no active API key"), "{err}");

    // A CSV import makes two events; `events` prints them as JSON lines, oldest first.
    std::fs::write(dir.path().join("m.csv"), "email\nada@x.io\nbob@x.io\n").unwrap();
    assert!(run(dir.path(), &["members", "import", "m.csv"]).0);
    let (ok, out, _) = run(dir.path(), &["events"]);
    assert!(ok);
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["seq"], 1);
    assert_eq!(events[1]["data"]["email"], "bob@x.io");
    assert_eq!(events[1]["context"]["via"], "csv_import");
    assert_eq!(events[1]["context"]["actor"], "cli");
    let (_, out, _) = run(dir.path(), &["events", "--after", "1"]);
    assert_eq!(out.lines().count(), 1);

    // One person by hand: a third event; the same email again is refused with the reason.
    let add = [
        "members",
        "add",
        "cy@x.io",
        "--given-name",
        "Cy",
        "--role",
        "admin",
    ];
    let (ok, out, err) = run(dir.path(), &add);
    assert!(ok && out.starts_with("added cy@x.io"), "{out}{err}");
    let (ok, _, err) = run(dir.path(), &add);
    assert!(!ok && err.contains("already a member"), "{err}");
    let (ok, _, err) = run(
        dir.path(),
        &["members", "add", "dee@x.io", "--role", "wizard"],
    );
    assert!(!ok && err.contains("wizard"), "{err}");
    let (_, out, _) = run(dir.path(), &["events", "--after", "2"]);
    let added: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(added["type"], "member.created");
    assert_eq!(added["data"]["role"], "admin");
    assert_eq!(added["data"]["source"], "manual");
    assert_eq!(added["context"]["via"], "admin");

    // The member's status, by email or id, as the member's page changes it.
    for (change, now) in [
        ("suspend", "suspended"),
        ("reactivate", "active"),
        ("archive", "archived"),
    ] {
        let (ok, out, err) = run(dir.path(), &["members", change, "cy@x.io"]);
        assert!(ok && out.starts_with("cy@x.io ("), "{change}: {out}{err}");
        let (_, out, _) = run(dir.path(), &["members", "export", "--format", "json"]);
        let all: serde_json::Value = serde_json::from_str(&out).unwrap();
        let cy = all
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["email"] == "cy@x.io");
        assert_eq!(cy.unwrap()["status"], now, "{change}: {out}");
    }
    let (ok, _, err) = run(dir.path(), &["members", "archive", "cy@x.io"]);
    assert!(!ok && err.contains("already archived"), "{err}");
    let id = added["data"]["id"].as_str().unwrap();
    let (ok, out, err) = run(dir.path(), &["members", "delete", id]);
    assert!(ok && out.contains("deleted"), "{out}{err}");
    let (ok, _, err) = run(dir.path(), &["members", "suspend", "cy@x.io"]);
    assert!(!ok && err.contains("no member cy@x.io"), "{err}");
    let (_, out, _) = run(dir.path(), &["events", "--after", "3"]);
    let types: Vec<String> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["type"].to_string())
        .collect();
    assert_eq!(
        types,
        [
            "\"member.suspended\"",
            "\"member.reactivated\"",
            "\"member.archived\"",
            "\"member.deleted\""
        ]
    );
}

/// `scimd audit` prints a tenant's newest 50 entries; `--all` every entry, oldest first;
/// `--outside-tenants` what belongs to no tenant (admin accounts and sign-ins), which no
/// tenant's log shows.
#[test]
fn audit_prints_every_entry_with_all_and_the_admins_log_outside_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    create_admin(d, "alice", "correct horse battery staple 42");
    for n in 0..53 {
        let (ok, _, err) = run(d, &["token", "create", "--name", &format!("t{n}")]);
        assert!(ok, "{err}");
    }
    let ids = |out: &str| -> Vec<i64> {
        out.lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                    .as_i64()
                    .unwrap()
            })
            .collect()
    };
    let (ok, newest, err) = run(d, &["audit"]);
    assert!(ok, "{err}");
    assert_eq!(ids(&newest).len(), 50);
    let (ok, all, err) = run(d, &["audit", "--all"]);
    assert!(ok, "{err}");
    let all_ids = ids(&all);
    assert_eq!(all_ids.len(), 53, "{all}");
    assert!(all_ids.windows(2).all(|w| w[0] < w[1]), "oldest first");
    assert!(
        all.ends_with(&newest),
        "the newest 50 are the last 50 of all"
    );
    assert!(!all.contains("admin.created"), "no tenant's entry");
    let (ok, outside, err) = run(d, &["audit", "--outside-tenants", "--all"]);
    assert!(ok, "{err}");
    assert_eq!(outside.lines().count(), 1, "{outside}");
    assert!(
        outside.contains("\"action\":\"admin.created\""),
        "{outside}"
    );
    assert!(outside.contains("\"target\":\"admin/alice\""), "{outside}");
    let (ok, _, err) = run(d, &["audit", "--all", "--limit", "3"]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");
    let (ok, _, err) = run(d, &["audit", "--outside-tenants", "--tenant", "default"]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");

    // `admin delete`, audited outside tenants too; never the last admin.
    let (ok, _, err) = run(d, &["admin", "delete", "alice"]);
    assert!(!ok && err.contains("last admin"), "{err}");
    create_admin(d, "bob", "correct horse battery staple 42");
    let (ok, out, err) = run(d, &["admin", "delete", "alice"]);
    assert!(ok && out.contains("admin alice deleted"), "{out}{err}");
    let (ok, _, err) = run(d, &["admin", "delete", "alice"]);
    assert!(!ok && err.contains("no admin called"), "{err}");
    let (_, outside, _) = run(d, &["audit", "--outside-tenants", "--all"]);
    assert!(
        outside.contains("\"action\":\"admin.deleted\""),
        "{outside}"
    );
    let (_, list, _) = run(d, &["admin", "list"]);
    assert!(list.contains("bob") && !list.contains("alice"), "{list}");

    // A deleted tenant's entries stay, read by its id.
    assert!(run(d, &["tenant", "create", "acme"]).0);
    assert!(run(d, &["token", "create", "--tenant", "acme"]).0);
    let (ok, out, err) = run(d, &["tenant", "delete", "acme", "--yes"]);
    assert!(ok, "{err}");
    let id = out.split("(id ").nth(1).unwrap().split(')').next().unwrap();
    let (ok, kept, err) = run(d, &["audit", "--deleted-tenant", id]);
    assert!(ok, "{err}");
    assert!(kept.contains("\"action\":\"tenant.created\""), "{kept}");
    assert!(kept.contains("\"action\":\"token.created\""), "{kept}");
    let (_, outside, _) = run(
        d,
        &["audit", "--outside-tenants", "--action", "tenant.deleted"],
    );
    assert!(outside.contains(&format!("\"tenantId\":{id}")), "{outside}");
    let (ok, _, err) = run(d, &["audit", "--deleted-tenant", "1"]);
    assert!(!ok && err.contains("--tenant default"), "{err}");
    let (ok, _, err) = run(d, &["audit", "--deleted-tenant", "99"]);
    assert!(!ok && err.contains("no tenant 99 was deleted"), "{err}");
}

/// Opens the test database directly, as someone with a shell on the VM would.
fn tamper(dir: &std::path::Path, sql: &str) {
    let conn = rusqlite::Connection::open(dir.join("scimd.db")).unwrap();
    conn.execute_batch(
        "DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete;",
    )
    .unwrap();
    conn.execute_batch(sql).unwrap();
}

#[test]
fn audit_verify_names_the_entry_changed_removed_or_inserted_in_the_database_and_in_an_export() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(run(d, &["tenant", "create", "globex", "--name", "Globex"]).0);
    for tenant in ["default", "globex", "default", "globex", "default"] {
        let (ok, _, err) = run(d, &["token", "create", "--name", "t", "--tenant", tenant]);
        assert!(ok, "{err}");
    }
    let (ok, out, err) = run(d, &["audit", "verify"]);
    assert!(ok, "{err}");
    assert!(out.contains("ok: 6 entries verified"), "{out}");
    assert!(out.contains("tenant 2: 3 entries"), "{out}");
    let (ok, out, err) = run(d, &["audit", "verify", "--tenant", "globex"]);
    assert!(ok && out.contains("ok: 3 entries verified"), "{out}{err}");

    // An export verifies offline, with scimd and with the documented Python script.
    let (ok, export, _) = run(d, &["audit", "--limit", "100"]);
    assert!(
        ok && export.lines().all(|l| l.contains("\"hash\":\"")),
        "{export}"
    );
    std::fs::write(d.join("export.jsonl"), &export).unwrap();
    let (ok, out, err) = run(d, &["audit", "verify", "--file", "export.jsonl"]);
    assert!(ok && out.contains("ok: 3 entries verified"), "{out}{err}");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/verify-audit.py");
    let py = Command::new("python3")
        .args([script, "export.jsonl"])
        .current_dir(d)
        .output()
        .unwrap();
    let py_out = String::from_utf8_lossy(&py.stdout);
    assert!(
        py.status.success() && py_out.contains("ok: 3 entries verified"),
        "{py_out}"
    );
    // An exported line edited afterwards is named.
    let edited = export.replacen("\"actor\":\"cli\"", "\"actor\":\"admin:mallory\"", 1);
    std::fs::write(d.join("edited.jsonl"), edited).unwrap();
    let (ok, _, err) = run(d, &["audit", "verify", "--file", "edited.jsonl"]);
    assert!(!ok && err.contains("entry 2 was changed"), "{err}");
    let py = Command::new("python3")
        .args([script, "edited.jsonl"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        !py.status.success() && String::from_utf8_lossy(&py.stderr).contains("entry 2 was changed")
    );

    // Entries written before the chain existed are sealed once, when the database opens.
    tamper(
        d,
        "UPDATE audit_log SET hash = NULL, prev_hash = NULL;
         INSERT INTO audit_chain_pending SELECT max(id) FROM audit_log;",
    );
    let (ok, out, err) = run(d, &["audit", "verify"]);
    assert!(ok && out.contains("ok: 6 entries verified"), "{out}{err}");

    // A row edited with sqlite is named …
    tamper(
        d,
        "UPDATE audit_log SET actor = 'admin:mallory' WHERE id = 4",
    );
    let (ok, _, err) = run(d, &["audit", "verify"]);
    assert!(!ok && err.contains("entry 4 was changed"), "{err}");
    tamper(d, "UPDATE audit_log SET actor = 'cli' WHERE id = 4");
    assert!(run(d, &["audit", "verify"]).0);
    // … so is a removed one …
    tamper(d, "DELETE FROM audit_log WHERE id = 4");
    let (ok, _, err) = run(d, &["audit", "verify"]);
    assert!(!ok && err.contains("entry 4 was removed"), "{err}");
    let (ok, _, err) = run(d, &["audit", "verify", "--tenant", "default"]);
    assert!(
        !ok && err.contains("entry 6 does not follow entry 2"),
        "{err}"
    );
    // … and one inserted without scimd, whether or not it carries a hash.
    tamper(
        d,
        "INSERT INTO audit_log (id, tenant_id, at, actor, action, outcome)
         SELECT 4, tenant_id, at, actor, action, outcome FROM audit_log WHERE id = 2",
    );
    let (ok, _, err) = run(d, &["audit", "verify"]);
    assert!(!ok && err.contains("entry 4 has no hash"), "{err}");
}

/// A `scimd serve` child on a free port, killed if the test fails before it stops it (a
/// leftover server would keep the test's inherited file descriptors open).
struct Serving {
    child: std::process::Child,
    addr: String,
}

impl Serving {
    fn start(dir: &std::path::Path, extra: &[&str], stderr: Stdio) -> Serving {
        let mut command = scimd(dir);
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra);
        Serving::spawn(command, stderr)
    }

    fn spawn(mut command: Command, stderr: Stdio) -> Serving {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let addr = first.rsplit("http://").next().unwrap().to_string();
        // Keep reading what it prints, as a terminal would.
        std::thread::spawn(move || lines.for_each(drop));
        Serving { child, addr }
    }

    /// SIGTERM, and the graceful exit it must lead to.
    fn stop(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request over a fresh connection; the whole answer as text.
fn http(addr: &str, request: &str) -> String {
    try_http(addr, request).unwrap()
}

fn try_http(addr: &str, request: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.write_all(request.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn request(method: &str, path: &str, headers: &[&str], body: &str) -> String {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: scimd\r\nConnection: close\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    format!("{r}Content-Length: {}\r\n\r\n{body}", body.len())
}

#[test]
fn json_logs_have_one_line_per_request_and_never_a_secret() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = run(d, &["token", "create", "--name", "okta"])
        .1
        .trim()
        .to_string();
    let key = run(d, &["apikey", "create", "--name", "billing"])
        .1
        .lines()
        .last()
        .unwrap()
        .to_string();
    let out = run(
        d,
        &[
            "oauth",
            "create",
            "--name",
            "entra",
            "--grant-type",
            "client_credentials",
        ],
    )
    .1;
    let field = |out: &str, k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap()
            .trim()
            .to_string()
    };
    let (client_id, client_secret) = (field(&out, "client_id="), field(&out, "client_secret="));
    let out = run(d, &["webhook", "add", "http://127.0.0.1:9/hook"]).1;
    let webhook_secret = field(&out, "secret=");
    let admin_password = "correct horse battery staple 42";
    create_admin(d, "alice", admin_password);

    let log = std::fs::File::create(d.join("scimd.log")).unwrap();
    let mut child = scimd(d)
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = lines
        .next()
        .unwrap()
        .unwrap()
        .rsplit("http://")
        .next()
        .unwrap()
        .to_string();

    let user_password = "Pa55word-never-logged";
    let bearer = format!("Authorization: Bearer {token}");
    let body = format!(
        r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"logged@example.com","password":"{user_password}"}}"#
    );
    let r = http(
        &addr,
        &request(
            "POST",
            "/scim/v2/Users",
            &[&bearer, "Content-Type: application/scim+json"],
            &body,
        ),
    );
    assert!(r.starts_with("HTTP/1.1 201"), "{r}");
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{client_secret}"));
    let r = http(
        &addr,
        &request(
            "POST",
            "/oauth/token",
            &[
                &format!("Authorization: Basic {basic}"),
                "Content-Type: application/x-www-form-urlencoded",
            ],
            "grant_type=client_credentials",
        ),
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let access = r
        .split("\"access_token\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let r = http(
        &addr,
        &request(
            "GET",
            "/scim/v2/Users?filter=userName%20eq%20%22logged@example.com%22",
            &[&format!("Authorization: Bearer {access}")],
            "",
        ),
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let r = http(
        &addr,
        &request(
            "GET",
            "/api/v1/members",
            &[&format!("Authorization: Bearer {key}")],
            "",
        ),
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let form = format!(
        "username=alice&password={}",
        admin_password.replace(' ', "+")
    );
    http(
        &addr,
        &request(
            "POST",
            "/login",
            &["Content-Type: application/x-www-form-urlencoded"],
            &form,
        ),
    );
    http(
        &addr,
        &request(
            "GET",
            "/scim/v2/Users",
            &["Authorization: Bearer scimd_wrong"],
            "",
        ),
    );

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let log = std::fs::read_to_string(d.join("scimd.log")).unwrap();
    let entries: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let requests: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 6, "{log}");
    let post = requests
        .iter()
        .find(|e| e["method"] == "POST" && e["route"] == "scim")
        .unwrap();
    assert_eq!(
        (post["status"].as_u64(), post["tenant"].as_i64()),
        (Some(201), Some(1))
    );
    assert!(post["request_id"].is_string() && post["ms"].is_u64() && post["level"] == "INFO");
    assert!(requests.iter().any(|e| e["route"] == "oauth"));
    assert!(
        requests
            .iter()
            .any(|e| e["route"] == "api" && e["tenant"] == 1)
    );
    let secrets: [&str; 8] = [
        &token,
        &key,
        &client_secret,
        &webhook_secret,
        &access,
        user_password,
        admin_password,
        "correct+horse",
    ];
    for secret in secrets {
        assert!(!log.contains(secret), "{secret} is in the log:\n{log}");
    }
    // Nor the token's or key's random part alone.
    assert!(!log.contains(&token[12..]) && !log.contains(&key[14..]));
}

#[test]
fn a_backup_under_write_load_restores_every_write_acknowledged_before_it_began() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let token = run(&d, &["token", "create"]).1.trim().to_string();
    let server = Serving::start(&d, &[], Stdio::null());
    let addr = server.addr.clone();

    // Two IdP connections writing as fast as they can; each name is noted once acknowledged.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (acked, stop, addr) = (acked.clone(), stop.clone(), addr.clone());
            let bearer = format!("Authorization: Bearer {token}");
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("w{w}-{i}@example.com");
                    let body = format!(r#"{{"userName":"{name}"}}"#);
                    let r = http(
                        &addr,
                        &request(
                            "POST",
                            "/scim/v2/Users",
                            &[&bearer, "Content-Type: application/scim+json"],
                            &body,
                        ),
                    );
                    if r.starts_with("HTTP/1.1 201") {
                        acked.lock().unwrap().push(name);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(400));
    let before: Vec<String> = acked.lock().unwrap().clone();
    let (ok, out, err) = run(&d, &["backup", "copy.db"]);
    assert!(ok, "{err}");
    assert!(out.contains("backed up"), "{out}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let total = acked.lock().unwrap().len();
    assert!(
        before.len() > 10 && total > before.len(),
        "{} then {total}",
        before.len()
    );

    // Not while the server holds the database; nor a second server beside it.
    let (ok, _, err) = run(&d, &["restore", "copy.db"]);
    assert!(!ok && err.contains("a scimd server is using"), "{err}");
    let (ok, _, err) = run(&d, &["serve", "--listen", "127.0.0.1:0"]);
    assert!(!ok && err.contains("another scimd server"), "{err}");
    server.stop();
    // What apps and webhook receivers saw before the restore: event ids and seqs.
    let numbers = |out: &str| -> Vec<(i64, i64)> {
        out.lines()
            .map(|l| {
                let e: serde_json::Value = serde_json::from_str(l).unwrap();
                let id = e["id"].as_str().unwrap().trim_start_matches("evt_");
                (id.parse().unwrap(), e["seq"].as_i64().unwrap())
            })
            .collect()
    };
    let (ok, out, err) = run(&d, &["events"]);
    assert!(ok, "{err}");
    let seen = numbers(&out);
    let (newest_id, newest_seq) = *seen.last().unwrap();

    // A file that is not a sound backup restores nothing.
    std::fs::write(d.join("junk.db"), b"not a database at all").unwrap();
    let (ok, _, err) = run(&d, &["restore", "junk.db"]);
    assert!(!ok && err.contains("not a"), "{err}");

    let (ok, out, err) = run(&d, &["restore", "copy.db"]);
    assert!(ok, "{err}");
    assert!(out.contains("restored"), "{out}");
    // What it replaced is kept whole, in case the backup was the wrong one.
    let kept = out
        .split("the database replaced is kept as ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .expect("where the replaced database went");
    let conn = rusqlite::Connection::open(d.join(kept)).unwrap();
    let replaced: i64 = conn
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert!(replaced >= total as i64, "{replaced} of {total}");
    drop(conn);
    let (ok, out, err) = run(&d, &["check"]);
    assert!(ok && out.starts_with("ok"), "{out}{err}");
    let conn = rusqlite::Connection::open(d.join("scimd.db")).unwrap();
    let count = |name: &str| -> i64 {
        conn.query_row(
            "SELECT count(*) FROM users WHERE user_name_fold = ?1",
            [name],
            |r| r.get(0),
        )
        .unwrap()
    };
    for name in &before {
        assert_eq!(
            count(name),
            1,
            "{name} was acknowledged before the backup began"
        );
    }
    // The restored database has fewer events than were handed out; its next ones repeat
    // no id a receiver dedupes on and no seq an app resumes from, and an app that read
    // past the backup hears it must list again.
    let server = Serving::start(&d, &[], Stdio::null());
    let r = http(
        &server.addr,
        &request(
            "POST",
            "/scim/v2/Users",
            &[
                &format!("Authorization: Bearer {token}"),
                "Content-Type: application/scim+json",
            ],
            r#"{"userName":"after-the-restore@example.com"}"#,
        ),
    );
    assert!(r.starts_with("HTTP/1.1 201"), "{r}");
    server.stop();
    let (ok, out, err) = run(&d, &["events", "--after", &(newest_seq + 1).to_string()]);
    assert!(ok, "{err}");
    let new = numbers(&out);
    assert!(!new.is_empty());
    for (id, seq) in &new {
        assert!(
            *id > newest_id && *seq > newest_seq,
            "{id} {seq} vs {newest_id} {newest_seq}"
        );
    }
    let (ok, _, err) = run(&d, &["events", "--after", &newest_seq.to_string()]);
    assert!(!ok && err.contains("no longer kept"), "{err}");
    let audited: i64 = conn
        .query_row(
            "SELECT count(*) FROM audit_log WHERE action = 'scim.post'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(audited >= before.len() as i64);
}

#[test]
fn a_full_disk_answers_503_keeps_reads_working_writes_nothing_half_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = run(d, &["token", "create"]).1.trim().to_string();
    // The server as it runs on a disk about to fill up: file writes past a size limit fail
    // (EFBIG, with SIGXFSZ ignored as a service manager would), like ENOSPC.
    let mut command = Command::new("sh");
    command.current_dir(d).env_remove("SCIMD_DB").args([
        "-c",
        &format!(
            "trap '' XFSZ; exec {} serve --listen 127.0.0.1:0",
            env!("CARGO_BIN_EXE_scimd")
        ),
    ]);
    let server = Serving::spawn(command, Stdio::null());
    let addr = server.addr.clone();
    let bearer = format!("Authorization: Bearer {token}");
    let json = "Content-Type: application/scim+json";
    let post = |name: &str| {
        // Near the 64 KiB a resource's attributes may take.
        let big = "x".repeat(60_000);
        let body = format!(r#"{{"userName":"{name}","name":{{"formatted":"{big}"}}}}"#);
        http(
            &addr,
            &request("POST", "/scim/v2/Users", &[&bearer, json], &body),
        )
    };
    let r = post("kept@example.com");
    assert!(r.starts_with("HTTP/1.1 201"), "{r}");
    let kept = r
        .split("\"id\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();

    let size = |f: &str| std::fs::metadata(d.join(f)).map(|m| m.len()).unwrap_or(0);
    let limit = size("scimd.db").max(size("scimd.db-wal")) + 600_000;
    let pid = server.child.id().to_string();
    let prlimit = |value: &str| {
        let s = Command::new("prlimit")
            .args(["--pid", &pid, &format!("--fsize={value}:")])
            .status()
            .unwrap();
        assert!(s.success());
    };
    prlimit(&limit.to_string());
    let mut refused = None;
    for i in 0..20 {
        let name = format!("filler{i}@example.com");
        let r = post(&name);
        if !r.starts_with("HTTP/1.1 201") {
            refused = Some((name, r));
            break;
        }
    }
    let (name, r) = refused.expect("the disk fills up");
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");
    assert!(r.to_ascii_lowercase().contains("retry-after: 30"), "{r}");
    assert!(
        r.contains("\"status\":\"503\"") && r.contains("retry later"),
        "{r}"
    );

    // Health says so, with the reason, and `scimd healthcheck` fails: a supervisor notices.
    let health = http(&addr, &request("GET", "/healthz", &[], ""));
    assert!(
        health.starts_with("HTTP/1.1 503") && health.contains("\r\n\r\ndatabase not writable: "),
        "{health}"
    );
    let (ok, _, err) = run(d, &["healthcheck", "--listen", &addr]);
    assert!(
        !ok && err.contains("503 Service Unavailable: database not writable: "),
        "{err}"
    );

    // Reads keep working; the refused write left nothing behind.
    let get = |path: &str| http(&addr, &request("GET", path, &[&bearer], ""));
    let r = get(&format!("/scim/v2/Users/{kept}"));
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let filter = format!("/scim/v2/Users?filter=userName%20eq%20%22{name}%22");
    let r = get(&filter);
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains("\"totalResults\":0"),
        "{r}"
    );

    // Space returns: the same write succeeds, once.
    prlimit("unlimited");
    let r = post(&name);
    assert!(r.starts_with("HTTP/1.1 201"), "{r}");
    let r = get(&filter);
    assert!(r.contains("\"totalResults\":1"), "{r}");
    // Not healthy yet: that takes a minute without a failure (a small write, such as the
    // refused write's audit entry, fitted while the disk was full).
    let health = http(&addr, &request("GET", "/healthz", &[], ""));
    assert!(health.starts_with("HTTP/1.1 503"), "{health}");
    server.stop();
    let (ok, out, err) = run(d, &["check"]);
    assert!(ok && out.starts_with("ok"), "{out}{err}");
}

/// What one client saw acknowledged before the server was killed.
#[derive(Default)]
struct Acked {
    /// (SCIM id, userName) of users created.
    users: Vec<(String, String)>,
    /// The last `title` version acknowledged per user id (PATCHes, in order, per user).
    titles: std::collections::HashMap<String, u32>,
    /// (group id, user id) memberships added.
    memberships: Vec<(String, String)>,
}

fn json_field(r: &str, field: &str) -> Option<String> {
    let marker = format!("\"{field}\":\"");
    Some(r.split(&marker).nth(1)?.split('"').next()?.to_string())
}

/// One IdP connection writing until the server dies: creates users, PATCHes their title
/// to rising versions, adds them to its own group; notes every 2xx.
fn crash_client(addr: String, token: String, client: usize, cycle: usize) -> Acked {
    let bearer = format!("Authorization: Bearer {token}");
    let json = "Content-Type: application/scim+json";
    let send = |method: &str, path: &str, body: &str| {
        try_http(&addr, &request(method, path, &[&bearer, json], body)).unwrap_or_default()
    };
    let mut acked = Acked::default();
    let r = send(
        "POST",
        "/scim/v2/Groups",
        &format!(r#"{{"displayName":"crash-{cycle}-{client}"}}"#),
    );
    let Some(group) = r
        .starts_with("HTTP/1.1 201")
        .then(|| json_field(&r, "id"))
        .flatten()
    else {
        return acked;
    };
    for i in 0.. {
        let name = format!("c{cycle}-{client}-{i}@example.com");
        let r = send(
            "POST",
            "/scim/v2/Users",
            &format!(r#"{{"userName":"{name}"}}"#),
        );
        if !r.starts_with("HTTP/1.1 201") {
            return acked;
        }
        let id = json_field(&r, "id").unwrap();
        acked.users.push((id.clone(), name));
        for v in 1..=2u32 {
            let body =
                format!(r#"{{"Operations":[{{"op":"replace","path":"title","value":"v{v}"}}]}}"#);
            if !send("PATCH", &format!("/scim/v2/Users/{id}"), &body).starts_with("HTTP/1.1 200") {
                return acked;
            }
            acked.titles.insert(id.clone(), v);
        }
        let body = format!(
            r#"{{"Operations":[{{"op":"add","path":"members","value":[{{"value":"{id}"}}]}}]}}"#
        );
        let r = send("PATCH", &format!("/scim/v2/Groups/{group}"), &body);
        if !(r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.1 204")) {
            return acked;
        }
        acked.memberships.push((group.clone(), id));
    }
    acked
}

/// Crash consistency: `scimd serve` is killed with SIGKILL at random moments under
/// concurrent creates, PATCHes and group changes, and restarted; every write that got a
/// 2xx must be there (with its member, audit entry and event), the database must pass
/// its integrity check, and no event number may be missing. A few cycles here; set
/// SCIMD_CRASH_CYCLES for the long run (RELIABILITY.md).
#[test]
fn every_acknowledged_write_survives_kill_9_at_random_moments() {
    let cycles: usize = std::env::var("SCIMD_CRASH_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = run(d, &["token", "create"]).1.trim().to_string();
    let mut all = Acked::default();
    let mut seed: u64 = std::process::id() as u64 * 2654435761;
    for cycle in 0..cycles {
        let server = Serving::start(d, &[], Stdio::null());
        let clients: Vec<_> = (0..4)
            .map(|c| {
                let (addr, token) = (server.addr.clone(), token.clone());
                std::thread::spawn(move || crash_client(addr, token, c, cycle))
            })
            .collect();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(std::time::Duration::from_millis(150 + seed % 400));
        drop(server); // SIGKILL
        for c in clients {
            let a = c.join().unwrap();
            all.users.extend(a.users);
            all.titles.extend(a.titles);
            all.memberships.extend(a.memberships);
        }
    }
    assert!(
        all.users.len() > cycles * 4,
        "the clients got writes through"
    );

    let (ok, out, err) = run(d, &["check"]);
    assert!(ok && out.starts_with("ok"), "{out}{err}");
    let conn = rusqlite::Connection::open(d.join("scimd.db")).unwrap();
    let one = |sql: &str, p: &str| -> i64 { conn.query_row(sql, [p], |r| r.get(0)).unwrap() };
    for (id, name) in &all.users {
        assert_eq!(
            one("SELECT count(*) FROM users WHERE id = ?1", id),
            1,
            "{name}"
        );
        assert_eq!(
            one("SELECT count(*) FROM members WHERE user_id = ?1", id),
            1,
            "{name}'s member"
        );
        assert_eq!(
            one(
                "SELECT count(*) FROM audit_log WHERE action = 'scim.post' AND target = 'Users/' || ?1",
                id
            ),
            1,
            "{name}'s audit entry"
        );
        assert_eq!(
            one(
                "SELECT count(*) FROM events e JOIN members m ON m.id = e.subject
                 WHERE e.type = 'member.created' AND m.user_id = ?1",
                id
            ),
            1,
            "{name}'s event"
        );
    }
    for (id, v) in &all.titles {
        let title: String = conn
            .query_row(
                "SELECT json_extract(data, '$.title') FROM users WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        let stored: u32 = title.trim_start_matches('v').parse().unwrap();
        assert!(
            stored >= *v,
            "{id}: title v{v} was acknowledged, v{stored} is stored"
        );
    }
    for (group, user) in &all.memberships {
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM group_members gm JOIN groups g ON g.pk = gm.group_pk
                 JOIN users u ON u.pk = gm.member_user_pk WHERE g.id = ?1 AND u.id = ?2",
                [group, user],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "{user} in {group}");
    }
    let (count, min, max): (i64, i64, i64) = conn
        .query_row(
            "SELECT count(*), min(seq), max(seq) FROM events WHERE tenant_id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((min, count), (1, max), "event numbers have no gap");
    eprintln!(
        "crash test: {cycles} kill -9 cycles; {} creations, {} PATCHes, {} group adds acknowledged \
         and found; {count} events without a gap; integrity ok",
        all.users.len(),
        all.titles.values().map(|v| *v as usize).sum::<usize>(),
        all.memberships.len()
    );
}

/// A packaged install runs the service as a dynamic user owning /var/lib/scimd; an admin's
/// root shell running `scimd token create` there must not leave root-owned files the
/// service then cannot write.
#[test]
fn a_root_shell_leaves_the_database_to_the_owner_of_its_directory() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
        eprintln!("skipped: needs root to act as the service's user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
    let db = state.join("scimd.db");
    let db = db.to_str().unwrap();
    let (ok, _, err) = run(dir.path(), &["--db", db, "token", "create"]);
    assert!(ok, "{err}");
    for f in std::fs::read_dir(&state).unwrap() {
        let f = f.unwrap();
        assert_eq!(
            f.metadata().unwrap().uid(),
            65534,
            "{:?} is the service's",
            f.path()
        );
    }
    // The service's user can read and write it.
    let as_service = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_scimd"))
            .args(["--db", db])
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = as_service(&["token", "create", "--name", "service"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = as_service(&["token", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("service"));
}

/// The server remembers tokens it has seen, so a request needs no lookup: a revocation by
/// `scimd token revoke`, another process, must still reach it (within a second or two),
/// and one made through the server itself at once.
#[test]
fn a_token_revoked_on_the_command_line_stops_working_for_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let token = run(&d, &["token", "create"]).1.trim().to_string();
    let server = Serving::start(&d, &[], Stdio::null());
    let bearer = format!("Authorization: Bearer {token}");
    let get = || {
        http(
            &server.addr,
            &request("GET", "/scim/v2/Users", &[&bearer], ""),
        )
    };
    for _ in 0..3 {
        assert!(get().starts_with("HTTP/1.1 200"), "the token works");
    }
    let (ok, _, err) = run(&d, &["token", "revoke", "1"]);
    assert!(ok, "{err}");
    let revoked = std::time::Instant::now();
    loop {
        let r = get();
        if r.starts_with("HTTP/1.1 401") {
            break;
        }
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(
            revoked.elapsed() < std::time::Duration::from_secs(5),
            "the revoked token still works after 5 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for _ in 0..3 {
        assert!(get().starts_with("HTTP/1.1 401"), "and stays revoked");
    }
    server.stop();
}

/// A damaged database gets its problems listed by `scimd check` rather than the first
/// error met, and `scimd serve` says at start that a page does not read, before anything
/// reads it; a missing database is not created by a check.
#[test]
fn check_lists_what_is_damaged_and_serve_says_so_at_start_and_in_its_health() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok, _, err) = run(d, &["check"]);
    assert!(!ok && err.contains("no database at"), "{err}");
    assert!(!d.join("scimd.db").exists());
    assert!(run(d, &["token", "create"]).0);
    let path = d.join("scimd.db");
    let root: i64 = {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.query_row(
            "SELECT rootpage FROM sqlite_master WHERE name = 'audit_log'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    // The first cell of the audit log's page now points into the page's own header.
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(SeekFrom::Start(4096 * (root as u64 - 1) + 8))
            .unwrap();
        f.write_all(&[0, 5]).unwrap();
    }
    let (ok, out, err) = run(d, &["check"]);
    assert!(!ok, "{out}");
    assert!(out.contains(&format!("page {root} cell 0")), "{out}{err}");
    assert!(err.contains("problems found"), "{err}");

    let log = d.join("serve.log");
    let server = Serving::start(d, &[], Stdio::from(std::fs::File::create(&log).unwrap()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.contains("the database is damaged") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // And so does a metric, for the alerting that never reads the log.
    let metrics = http(&server.addr, &request("GET", "/metrics", &[], ""));
    assert!(
        metrics.lines().any(|l| l == "scimd_database_damaged 1"),
        "{metrics}"
    );
    // And the health check a supervisor or a load balancer reads.
    let health = http(&server.addr, &request("GET", "/healthz", &[], ""));
    assert!(health.starts_with("HTTP/1.1 503"), "{health}");
    assert!(
        health.contains("database damaged: run `scimd check`"),
        "{health}"
    );
    drop(server);
}

/// `scimd … | head -1`: a reader that stops reading ends scimd as it ends a C program, with
/// no message and 141 (128 + SIGPIPE), whether the command prints with `println!` or writes.
#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(run(d, &["token", "create"]).0);
    for args in [&["audit"][..], &["token", "list"], &["guard", "show"]] {
        let mut child = scimd(d)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(141), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args:?}");
    }
}

/// A mistyped `--db` is no database to create and read empty: the commands that only read
/// one refuse a path where there is none, and `check` calls an empty file what it is.
#[test]
fn reading_commands_refuse_a_database_that_is_not_there() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--db", "nope.db", "backup", "copy.db"][..],
        &["--db", "nope.db", "audit", "verify"],
        &["--db", "nope.db", "events"],
        &["--db", "nope.db", "check"],
    ] {
        let (ok, _, err) = run(dir.path(), args);
        assert!(
            !ok && err.contains("no database at nope.db"),
            "{args:?}: {err}"
        );
    }
    assert!(!dir.path().join("nope.db").exists());
    assert!(!dir.path().join("copy.db").exists());
    std::fs::write(dir.path().join("empty.db"), b"").unwrap();
    for command in [&["check"][..], &["events"], &["audit"], &["backup", "e.db"]] {
        let args: Vec<&str> = ["--db", "empty.db"]
            .iter()
            .chain(command)
            .copied()
            .collect();
        let (ok, _, err) = run(dir.path(), &args);
        assert!(
            !ok && err.contains("empty: not a database"),
            "{command:?}: {err}"
        );
    }
    assert_eq!(
        std::fs::metadata(dir.path().join("empty.db"))
            .unwrap()
            .len(),
        0
    );
    // A sound one checks, and a single problem is "1 problem".
    let (ok, _, err) = run(dir.path(), &["tenant", "list"]);
    assert!(ok, "{err}");
    let (ok, out, err) = run(dir.path(), &["check"]);
    assert!(ok && out.starts_with("ok: "), "{out}{err}");
}

/// A token or key past its expiry is refused, and listed as what it is: expired.
#[test]
fn credentials_past_their_expiry_are_listed_as_expired() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, table, create) in [
        ("token", "scim_tokens", &["token", "create"][..]),
        ("apikey", "api_keys", &["apikey", "create", "--name", "k"]),
    ] {
        // One that would expire as it is made is refused.
        let at_once: Vec<&str> = create
            .iter()
            .chain(&["--expires-in-days", "0"])
            .copied()
            .collect();
        let (ok, _, _) = run(dir.path(), &at_once);
        assert!(!ok, "{kind}: --expires-in-days 0");
        let in_a_day: Vec<&str> = create
            .iter()
            .chain(&["--expires-in-days", "1"])
            .copied()
            .collect();
        let (ok, _, err) = run(dir.path(), &in_a_day);
        assert!(ok, "{err}");
        let state = || {
            let (ok, out, err) = run(dir.path(), &[kind, "list"]);
            assert!(ok, "{err}");
            out.lines()
                .nth(1)
                .unwrap_or_default()
                .rsplit('\t')
                .next()
                .unwrap()
                .to_string()
        };
        assert_eq!(state(), "active");
        // A day on: its expiry is past.
        let conn = rusqlite::Connection::open(dir.path().join("scimd.db")).unwrap();
        conn.execute(
            &format!("UPDATE {table} SET expires_at = '2000-01-01T00:00:00.000000Z'"),
            [],
        )
        .unwrap();
        assert_eq!(state(), "expired", "{kind}");
    }
}

/// `--mmap-mib`: a server reading through a mapping of its file answers what it wrote, by
/// id and by lookup, as one without does; past SQLite's limit the option is refused.
#[test]
fn a_server_reading_through_a_mapping_answers_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let token = run(&d, &["token", "create"]).1.trim().to_string();
    let bearer = format!("Authorization: Bearer {token}");
    let json = "Content-Type: application/scim+json";
    let (ok, _, err) = run(&d, &["serve", "--mmap-mib", "4096"]);
    assert!(!ok && err.contains("mmap-mib"), "{err}");
    let server = Serving::start(&d, &["--mmap-mib", "64"], Stdio::null());
    let mut ids = Vec::new();
    for i in 0..50 {
        let body = format!(
            r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"m{i}@example.com","emails":[{{"value":"m{i}@example.com"}}]}}"#
        );
        let r = http(
            &server.addr,
            &request("POST", "/scim/v2/Users", &[&bearer, json], &body),
        );
        assert!(r.starts_with("HTTP/1.1 201"), "{r}");
        ids.push(json_field(&r, "id").unwrap());
    }
    for (i, id) in ids.iter().enumerate().step_by(7) {
        let r = http(
            &server.addr,
            &request("GET", &format!("/scim/v2/Users/{id}"), &[&bearer], ""),
        );
        assert!(
            r.contains(&format!("\"userName\":\"m{i}@example.com\"")),
            "{r}"
        );
        let filter = format!("/scim/v2/Users?filter=emails.value%20eq%20%22M{i}@example.com%22");
        let r = http(&server.addr, &request("GET", &filter, &[&bearer], ""));
        assert!(
            r.contains("\"totalResults\":1") && r.contains(id.as_str()),
            "{r}"
        );
    }
    server.stop();
}

/// One HTTP/1.1 exchange on an open keep-alive connection: the status line and headers,
/// and the body by its length.
fn exchange(s: &mut std::net::TcpStream, request: &str) -> String {
    use std::io::{Read, Write};
    s.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "the connection closed");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|n| n.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).unwrap();
    head + &String::from_utf8(body).unwrap()
}

/// Under a low open-files limit (`ulimit -n`, `LimitNOFILE`), `serve` raises the soft
/// limit to the hard one and takes fewer connections than `--max-connections` when even
/// that leaves too little room: connections past it are refused, while the database's own
/// files stay open, so a write is answered 201 rather than committed and then failed.
#[test]
fn a_low_open_files_limit_takes_fewer_connections_not_the_databases_files() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, token, err) = run(dir.path(), &["token", "create", "--name", "t"]);
    assert!(ok, "{err}");
    let token = token.trim().to_string();
    let mut child = Command::new("sh")
        .args([
            "-c",
            &format!(
                "ulimit -n 200 && exec {} serve --listen 127.0.0.1:0",
                env!("CARGO_BIN_EXE_scimd")
            ),
        ])
        .current_dir(dir.path())
        .env_remove("SCIMD_DB")
        .env_remove("SCIMD_LISTEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (addr, _lines) = listening(&mut child);
    let mut working = std::net::TcpStream::connect(&addr).unwrap();
    // Idle connections from eight addresses, more than the limit leaves room for.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let idle = runtime.block_on(async {
        let mut idle = Vec::new();
        for i in 0..240 {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket
                .bind(format!("127.0.0.{}:0", 2 + i % 8).parse().unwrap())
                .unwrap();
            if let Ok(c) = socket.connect(addr.parse().unwrap()).await {
                idle.push(c);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        idle
    });
    for i in 0..5 {
        let body = format!(r#"{{"userName":"fd{i}@example.com"}}"#);
        let answer = exchange(
            &mut working,
            &format!(
                "POST /scim/v2/Users HTTP/1.1\r\nHost: scimd\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    }
    runtime.block_on(async move { drop(idle) });
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut log = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    child.wait().unwrap();
    assert!(
        log.contains("the open-files limit leaves room for fewer connections"),
        "{log}"
    );
}

/// A restart hands out request ids of its own, however soon it comes after the last
/// start: the ids name requests in the inspector, the audit log and events, which outlive
/// the process (two starts within one second used to count from the same id).
#[test]
fn request_ids_do_not_repeat_across_a_quick_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (mut child, addr, _lines) = serve(dir.path());
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        let answer = exchange(&mut s, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        let id = answer
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("x-request-id: ")
                    .map(str::to_string)
            })
            .unwrap_or_else(|| panic!("no request id: {answer}"));
        ids.push(u64::from_str_radix(id.trim(), 16).unwrap());
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert!(ids[1] > ids[0], "{ids:x?}");
}

/// A clean stop leaves the database whole in its one file: the log is copied into it and
/// emptied, so `scimd.db` copied alone (to another machine, or as a backup of a stopped
/// server) holds every write the server acknowledged.
#[test]
fn a_clean_stop_leaves_every_write_in_the_database_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = run(d, &["token", "create", "--name", "okta"])
        .1
        .trim()
        .to_string();
    let server = Serving::start(d, &[], Stdio::null());
    let auth = format!("Authorization: Bearer {token}");
    for i in 0..50 {
        let body = format!(
            r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"u{i}@example.com"}}"#
        );
        let answer = http(
            &server.addr,
            &request(
                "POST",
                "/scim/v2/Users",
                &[&auth, "Content-Type: application/scim+json"],
                &body,
            ),
        );
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    }
    server.stop();

    let log = std::fs::metadata(d.join("scimd.db-wal")).map_or(0, |m| m.len());
    assert_eq!(
        log, 0,
        "the log is emptied into the database at a clean stop"
    );
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::copy(d.join("scimd.db"), elsewhere.path().join("scimd.db")).unwrap();
    let conn = rusqlite::Connection::open(elsewhere.path().join("scimd.db")).unwrap();
    let users: i64 = conn
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 50);
}

/// An admin session on a running `scimd serve`: the login page's CSRF cookie, then the
/// login form, as a browser sends them. The session cookie.
fn admin_session(addr: &str, username: &str, password: &str) -> String {
    let page = http(addr, &request("GET", "/login", &[], ""));
    let cookie = |text: &str, name: &str| {
        text.lines()
            .filter_map(|l| {
                l.strip_prefix("set-cookie: ")
                    .or(l.strip_prefix("Set-Cookie: "))
            })
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(|c| c.split(';').next().unwrap().to_string())
            .unwrap_or_else(|| panic!("no {name} cookie: {text}"))
    };
    let csrf_cookie = cookie(&page, "scimd_login_csrf");
    let csrf = csrf_cookie.split_once('=').unwrap().1;
    let form = format!(
        "csrf={csrf}&next=/&username={username}&password={}",
        password.replace(' ', "+")
    );
    let answer = http(
        addr,
        &request(
            "POST",
            "/login",
            &[
                "Content-Type: application/x-www-form-urlencoded",
                &format!("Cookie: {csrf_cookie}"),
            ],
            &form,
        ),
    );
    cookie(&answer, "scimd_session")
}

/// The test mode & sync page's plan outlives a restart: the server started again serves
/// the plan the last one stored while nothing the plan reads changed, instead of planning
/// the whole tenant on the first load, and plans again once something did.
#[test]
fn the_sync_page_serves_its_stored_plan_after_a_restart_until_the_directory_changes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let password = "correct horse battery staple";
    create_admin(d, "alice", password);
    let sync_page = |server: &Serving| {
        let session = admin_session(&server.addr, "alice", password);
        let page = http(
            &server.addr,
            &request(
                "GET",
                "/t/default/sync",
                &[&format!("Cookie: {session}")],
                "",
            ),
        );
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        page
    };

    let server = Serving::start(d, &[], Stdio::null());
    assert!(sync_page(&server).contains("Nothing: members match the directory."));
    server.stop();
    // What the stored plan says is what the next server shows: a stand-in proves it read
    // the stored one rather than planning again.
    let conn = rusqlite::Connection::open(d.join("scimd.db")).unwrap();
    let stand_in = serde_json::json!([{"kind": "create", "memberId": null,
        "subject": "stand-in@example.com", "userId": "u1", "fields": [], "reason": null}]);
    let stored = conn
        .execute(
            "UPDATE stored_plans SET report = ?1",
            [stand_in.to_string()],
        )
        .unwrap();
    assert_eq!(stored, 1, "the plan was stored");

    let server = Serving::start(d, &[], Stdio::null());
    let page = sync_page(&server);
    assert!(page.contains("stand-in@example.com"), "{page}");
    server.stop();

    // A change while no server ran, by another process, that may move anyone.
    conn.execute(
        "INSERT INTO tenant_settings (tenant_id, on_delete, updated_at) VALUES (1, 'delete', 't')
         ON CONFLICT (tenant_id) DO UPDATE SET on_delete = 'delete'",
        [],
    )
    .unwrap();
    let server = Serving::start(d, &[], Stdio::null());
    let page = sync_page(&server);
    assert!(!page.contains("stand-in@example.com"), "{page}");
    assert!(
        page.contains("Nothing: members match the directory."),
        "{page}"
    );
    server.stop();
}

/// `scimd sync --dry-run` (and `scimd sync` in test mode) says, as the sync page does, when
/// the guard would hold the report's deprovisionings: here because a hold is open, which
/// holds every one.
#[test]
fn a_dry_run_warns_that_the_guard_would_hold_its_deprovisionings() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = run(d, &["token", "create", "--name", "okta"])
        .1
        .trim()
        .to_string();
    let (ok, _, err) = run(
        d,
        &[
            "tenant",
            "set",
            "--guard-minimum",
            "1",
            "--guard-percent",
            "1",
        ],
    );
    assert!(ok, "{err}");
    let server = Serving::start(d, &[], Stdio::null());
    let scim = |method: &str, path: &str, body: &serde_json::Value| {
        let auth = format!("Authorization: Bearer {token}");
        let answer = http(
            &server.addr,
            &request(
                method,
                path,
                &[&auth, "Content-Type: application/scim+json"],
                &body.to_string(),
            ),
        );
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 20"), "{answer}");
        serde_json::from_str::<serde_json::Value>(body).unwrap_or_default()
    };
    let mut ids = Vec::new();
    for n in 0..3 {
        let user = scim(
            "POST",
            "/scim/v2/Users",
            &serde_json::json!({"userName": format!("u{n}@example.com"), "active": true}),
        );
        ids.push(user["id"].as_str().unwrap().to_string());
    }
    let (_, out, _) = run(d, &["sync", "--dry-run"]);
    assert!(!out.contains("would hold"), "{out}");
    let (_, out, _) = run(d, &["sync", "--dry-run", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["guard"], serde_json::Value::Null, "{out}");
    // One deactivation passes; the next is held, and the hold stays open.
    for id in &ids[..2] {
        scim(
            "PATCH",
            &format!("/scim/v2/Users/{id}"),
            &serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "active", "value": false}]}),
        );
    }
    server.stop();
    let (ok, out, err) = run(d, &["sync", "--dry-run"]);
    assert!(ok, "{err}");
    assert!(out.contains("suspend 1"), "{out}");
    assert!(
        out.contains("would hold this: a hold is open (`scimd guard show`)"),
        "{out}"
    );
    // The same for a script reading the JSON.
    let (ok, out, err) = run(d, &["sync", "--dry-run", "--json"]);
    assert!(ok, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        json["guard"],
        serde_json::json!({"would_hold": 1, "reason": "open_hold"}),
        "{out}"
    );
}
