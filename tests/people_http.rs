//! The People, Groups and Audit pages over plain HTTP: CSRF on every POST, the export
//! formats and their content types, the import's preview-then-confirm contract.

mod common;

use common::*;
use hyper::Method;
use scimd::db::{self, members};

const PASSWORD: &str = "correct horse battery";

/// Logs alice in the way a browser does; returns the session cookie.
async fn login(s: &TestServer) -> String {
    s.create_admin("alice", PASSWORD);
    s.login_cookie("alice", PASSWORD).await
}

fn multipart(fields: &[(&str, Option<&str>, &str)]) -> (String, String) {
    let boundary = "----scimdtestboundary";
    let mut body = String::new();
    for (name, file, value) in fields {
        body.push_str(&format!("--{boundary}\r\n"));
        match file {
            Some(f) => body.push_str(&format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: text/csv\r\n\r\n"
            )),
            None => body.push_str(&format!(
                "Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"
            )),
        }
        body.push_str(value);
        body.push_str("\r\n");
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn member_count(s: &TestServer) -> usize {
    members::list(&s.db.conn().unwrap(), 1).unwrap().len()
}

async fn seed_member(s: &TestServer, email: &str) -> String {
    let csv = format!("email\n{email}\n").into_bytes();
    scimd::ops::members::import(&s.db, &scimd::model::Actor::cli(), 1, csv, None)
        .await
        .unwrap()
        .unwrap();
    members::by_email(&s.db.conn().unwrap(), 1, email)
        .unwrap()
        .unwrap()
        .id
}

#[tokio::test]
async fn every_people_post_needs_the_session_csrf_token() {
    let s = TestServer::start().await;
    let cookie = login(&s).await;
    let id = seed_member(&s, "ada@example.com").await;
    let form = [
        ("cookie", cookie.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    for (path, body) in [
        (format!("/t/default/people/{id}/managed"), "managed=false"),
        (
            format!("/t/default/people/{id}/managed"),
            "managed=false&csrf=forged",
        ),
        (
            "/t/default/people/import".to_string(),
            "csv=email%0Abob%40example.com",
        ),
        (
            "/t/default/people/import/confirm".to_string(),
            "import=whatever",
        ),
    ] {
        let r = s.raw(Method::POST, &path, &form, body).await;
        assert_eq!(r.status, 403, "{path} {body}: {}", r.text);
    }
    let (ct, body) = multipart(&[
        ("csrf", None, "forged"),
        ("file", Some("people.csv"), "email\nbob@example.com\n"),
    ]);
    let r = s
        .raw(
            Method::POST,
            "/t/default/people/import",
            &[("cookie", &cookie), ("content-type", &ct)],
            body,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    // Without a session, a POST goes to the login page and changes nothing.
    let r = s
        .raw(
            Method::POST,
            &format!("/t/default/people/{id}/managed"),
            &[("content-type", "application/x-www-form-urlencoded")],
            "managed=false",
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(member_count(&s), 1);
    let m = members::get(&s.db.conn().unwrap(), 1, &id)
        .unwrap()
        .unwrap();
    assert!(m.managed, "nothing changed");
}

#[tokio::test]
async fn an_upload_is_previewed_then_imported_only_when_confirmed() {
    let s = TestServer::start().await;
    let cookie = login(&s).await;
    let page = s
        .raw(
            Method::GET,
            "/t/default/people/import",
            &[("cookie", &cookie)],
            "",
        )
        .await;
    let csrf = hidden_field(&page.text, "csrf").unwrap();
    let (ct, body) = multipart(&[
        ("csrf", None, &csrf),
        (
            "file",
            Some("people.csv"),
            "email,role,Provisioning Managed\nada@example.com,admin,\nbob@example.com,,false\n",
        ),
        ("csv", None, ""),
    ]);
    let headers = [("cookie", cookie.as_str()), ("content-type", ct.as_str())];
    let r = s
        .raw(Method::POST, "/t/default/people/import", &headers, body)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("Preview of people.csv"), "{}", r.text);
    assert!(
        r.text.contains("<strong>2</strong> to create"),
        "{}",
        r.text
    );
    assert_eq!(member_count(&s), 0, "a preview writes nothing");
    let pending = hidden_field(&r.text, "import").unwrap();

    let form = [
        ("cookie", cookie.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let r = s
        .raw(
            Method::POST,
            "/t/default/people/import/confirm",
            &form,
            format!("csrf={csrf}&import={pending}"),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.header("location"), Some("/t/default/people"));
    assert_eq!(member_count(&s), 2);
    let confirm_request = r.header("x-request-id").unwrap().to_string();
    let conn = s.db.conn().unwrap();
    let bob = members::by_email(&conn, 1, "bob@example.com")
        .unwrap()
        .unwrap();
    assert!(!bob.managed);
    let log = db::audit::list(
        &conn,
        &db::audit::Filter {
            actor: Some("admin:alice".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let actions: Vec<&str> = log
        .iter()
        .map(|r| r.entry.action.as_str())
        .filter(|a| *a != "admin.login")
        .collect();
    assert_eq!(
        actions,
        ["member.created", "member.created", "members.imported"]
    );
    // Every entry of the import names the request that confirmed it, as do its events.
    for r in log
        .iter()
        .filter(|r| r.entry.action.as_str() != "admin.login")
    {
        assert_eq!(
            r.entry.request_id.as_deref(),
            Some(confirm_request.as_str()),
            "{r:?}"
        );
    }
    let events = db::events::after(&conn, 1, 0, 10).unwrap();
    assert_eq!(events.len(), 2);
    for e in &events {
        assert_eq!(e.actor.as_deref(), Some("admin:alice"));
        assert_eq!(e.request_id.as_deref(), Some(confirm_request.as_str()));
    }

    // A confirmation is used once.
    let r = s
        .raw(
            Method::POST,
            "/t/default/people/import/confirm",
            &form,
            format!("csrf={csrf}&import={pending}"),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("expired or was already imported"));
    assert_eq!(member_count(&s), 2);

    // A role for a member the IdP provides holds only until the IdP's next write: the
    // preview says so; not for one the row takes away from provisioning.
    s.create_user("cy@example.com").await;
    for (managed, warned) in [("", true), ("false", false)] {
        let (ct, body) = multipart(&[
            ("csrf", None, &csrf),
            (
                "file",
                Some("roles.csv"),
                &format!("email,role,Provisioning Managed\ncy@example.com,admin,{managed}\n"),
            ),
            ("csv", None, ""),
        ]);
        let headers = [("cookie", cookie.as_str()), ("content-type", ct.as_str())];
        let r = s
            .raw(Method::POST, "/t/default/people/import", &headers, body)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.text.contains("until the IdP&#39;s next write"),
            warned,
            "{managed:?}: {}",
            r.text
        );
    }
}

#[tokio::test]
async fn exports_are_downloads_with_their_content_types() {
    let s = TestServer::start().await;
    let cookie = login(&s).await;
    seed_member(&s, "ada@example.com").await;
    let get = |path: &'static str| {
        let cookie = cookie.clone();
        let s = &s;
        async move {
            s.raw(Method::GET, path, &[("cookie", cookie.as_str())], "")
                .await
        }
    };

    let csv = get("/t/default/people/export.csv").await;
    assert_eq!(csv.status, 200);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(
        csv.header("content-disposition"),
        Some("attachment; filename=\"members-default.csv\"")
    );
    assert_eq!(
        csv.text,
        "email,userName,givenName,familyName,role,Provisioning Managed,status\nada@example.com,,,,viewer,true,active\n"
    );

    let json = get("/t/default/people/export.json").await;
    assert_eq!(json.header("content-type"), Some("application/json"));
    assert_eq!(json.json[0]["email"], "ada@example.com");
    assert_eq!(json.json[0]["status"], "active");
    assert_eq!(json.json[0]["source"], "csv");

    let lines = get("/t/default/audit/export.jsonl").await;
    assert_eq!(
        lines.header("content-type"),
        Some("application/x-ndjson; charset=utf-8")
    );
    let entries: Vec<serde_json::Value> = lines
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 2, "{}", lines.text);
    assert_eq!(entries[0]["action"], "member.created");
    assert_eq!(entries[1]["action"], "members.imported");

    let filtered = get("/t/default/audit/export.jsonl?action=members.imported").await;
    assert_eq!(filtered.text.lines().count(), 1);
    let bad = get("/t/default/audit/export.jsonl?since=yesterday").await;
    assert_eq!(bad.status, 400);

    // Exports need a login like every page.
    let r = s
        .raw(Method::GET, "/t/default/people/export.csv", &[], "")
        .await;
    assert_eq!(r.status, 303);
}

/// An admin adds a person by hand: a manual member at once, with the role chosen, that apps
/// hear of as `member.created` (via `admin`) and the IdP's lookups find, so the IdP's user
/// with the same email adopts it. A refused form says why and keeps what was typed.
#[tokio::test]
async fn an_admin_adds_a_person_by_hand_and_the_idp_adopts_them() {
    let s = TestServer::start().await;
    s.create_admin("alice", PASSWORD);
    let admin = Admin::login(&s, "alice", PASSWORD).await;
    let page = admin.get(&s, "/t/default/people").await;
    assert!(page.text.contains(r#"href="/t/default/people/new""#));
    let form = admin.get(&s, "/t/default/people/new").await;
    assert_eq!(form.status, 200, "{}", form.text);
    assert!(form.text.contains(r#"name="email""#), "{}", form.text);

    // Without the CSRF token nothing is added.
    let r = admin
        .post_raw(
            &s,
            "/t/default/people/new",
            "email=grace%40example.com".into(),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(member_count(&s), 0);

    let add = "email=grace%40example.com&given_name=Grace&family_name=Hopper&role=admin&managed=1";
    let r = admin.post(&s, "/t/default/people/new", add).await;
    assert_eq!(r.status, 303, "{}", r.text);
    let to = r.header("location").unwrap().to_string();
    let member = admin.get(&s, &to).await;
    assert_eq!(member.status, 200, "{}", member.text);
    assert!(member.text.contains("Grace"), "{}", member.text);

    let key = s.api_key(Some(1)).await;
    let auth = format!("Bearer {key}");
    let events = s
        .raw(
            Method::GET,
            "/api/v1/events",
            &[("authorization", &auth)],
            "",
        )
        .await;
    assert_eq!(events.status, 200, "{}", events.text);
    let created = &events.json["data"][0];
    assert_eq!(created["type"], "member.created", "{}", events.text);
    assert_eq!(created["context"]["via"], "admin", "{}", events.text);
    assert_eq!(created["data"]["email"], "grace@example.com");
    assert_eq!(created["data"]["role"], "admin");
    assert_eq!(created["data"]["source"], "manual");
    let member_id = created["data"]["id"].as_str().unwrap().to_string();
    assert!(to.ends_with(&member_id), "{to}");

    // Refused: the same email again, a role the tenant lacks, not an email; the form
    // comes back with the message and what was typed.
    for (body, says) in [
        (add, "already a member"),
        (
            "email=linus%40example.com&given_name=Linus&role=wizard",
            "wizard",
        ),
        (
            "email=not-an-email&given_name=Linus",
            "not an email address",
        ),
        (
            // U+202E, which shows the address reversed.
            "email=%E2%80%AElinus%40example.com&given_name=Linus",
            "not an email address",
        ),
        (
            "email=linus%40example.com&given_name=Li%00nus",
            "holds a control character",
        ),
        (
            &format!("email=linus%40example.com&given_name={}", "a".repeat(1025)),
            "longer than 1024 characters",
        ),
    ] {
        let r = admin.post(&s, "/t/default/people/new", body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.text.contains(says), "{body}: {}", r.text);
        assert!(r.text.contains(r#"class="error-box""#), "{}", r.text);
    }
    // A field that is not UTF-8 is refused, not stored as U+FFFD.
    let r = admin
        .post(
            &s,
            "/t/default/people/new",
            "email=linus%40example.com&given_name=%FF%FE",
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("not UTF-8"), "{}", r.text);
    let r = admin
        .post(
            &s,
            "/t/default/people/new",
            "email=linus%40example.com&given_name=Linus&role=wizard",
        )
        .await;
    assert!(
        r.text.contains(r#"value="linus@example.com""#),
        "{}",
        r.text
    );
    assert!(r.text.contains(r#"value="Linus""#), "{}", r.text);
    assert_eq!(member_count(&s), 1);

    // The IdP finds Grace by her userName and its POST adopts her: same member.
    let lookup = s
        .get("/scim/v2/Users?filter=userName%20eq%20%22grace@example.com%22")
        .await;
    assert_eq!(lookup.json["totalResults"], 1, "{}", lookup.text);
    let r = s.create_user("grace@example.com").await;
    assert!(!r.is_empty());
    let linked = members::by_email(&s.db.conn().unwrap(), 1, "grace@example.com")
        .unwrap()
        .unwrap();
    assert_eq!(linked.id, member_id);
    assert!(linked.user_id.is_some(), "linked to the IdP's user");
    assert_eq!(member_count(&s), 1);
    s.stop().await;
}

/// A preview confirmed after the members it changes were changed (by another admin in
/// another tab, the IdP, the command line) imports nothing, and shows what the file would
/// do now: the admin never overwrites a value they were not shown.
#[tokio::test]
async fn a_stale_preview_imports_nothing_and_is_shown_again() {
    let s = TestServer::start().await;
    let cookie = login(&s).await;
    seed_member(&s, "ada@example.com").await;
    let page = s
        .raw(
            Method::GET,
            "/t/default/people/import",
            &[("cookie", &cookie)],
            "",
        )
        .await;
    let csrf = hidden_field(&page.text, "csrf").unwrap();
    let preview = |family: &'static str| {
        let (ct, body) = multipart(&[
            ("csrf", None, &csrf),
            (
                "file",
                Some("edit.csv"),
                &format!("email,familyName\nada@example.com,{family}\n"),
            ),
            ("csv", None, ""),
        ]);
        let cookie = cookie.clone();
        let s = &s;
        async move {
            let headers = [("cookie", cookie.as_str()), ("content-type", ct.as_str())];
            s.raw(Method::POST, "/t/default/people/import", &headers, body)
                .await
        }
    };
    let family = || {
        members::by_email(&s.db.conn().unwrap(), 1, "ada@example.com")
            .unwrap()
            .unwrap()
            .profile
            .family_name
    };
    let confirm = |pending: String| {
        let cookie = cookie.clone();
        let csrf = csrf.clone();
        let s = &s;
        async move {
            let form = [
                ("cookie", cookie.as_str()),
                ("content-type", "application/x-www-form-urlencoded"),
            ];
            s.raw(
                Method::POST,
                "/t/default/people/import/confirm",
                &form,
                format!("csrf={csrf}&import={pending}"),
            )
            .await
        }
    };

    // Tab 1 previews "Edited"; tab 2 imports "Tab2" meanwhile.
    let first = preview("Edited").await;
    assert_eq!(first.status, 200, "{}", first.text);
    let stale = hidden_field(&first.text, "import").unwrap();
    let second = preview("Tab2").await;
    let pending = hidden_field(&second.text, "import").unwrap();
    assert_eq!(confirm(pending).await.status, 303);
    assert_eq!(family().as_deref(), Some("Tab2"));

    // Tab 1's confirmation imports nothing and shows the change as it would be now.
    let r = confirm(stale).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.text.contains("Nothing was imported"), "{}", r.text);
    assert!(r.text.contains("Tab2 → Edited"), "{}", r.text);
    assert_eq!(family().as_deref(), Some("Tab2"));
    let fresh = hidden_field(&r.text, "import").unwrap();
    assert_eq!(confirm(fresh).await.status, 303);
    assert_eq!(family().as_deref(), Some("Edited"));

    // A file that changes nothing offers nothing to confirm.
    let same = preview("Edited").await;
    assert!(same.text.contains("id=\"import-nothing\""), "{}", same.text);
    assert!(!same.text.contains("confirm-import"), "{}", same.text);
}

/// An admin suspends, reactivates, archives and deletes a member the IdP does not decide
/// for (added by hand, or marked not managed); apps hear of each change as an event. A
/// member the IdP provisions is refused: the IdP decides its status.
#[tokio::test]
async fn an_admin_changes_the_status_of_a_member_the_idp_does_not_decide_for() {
    let s = TestServer::start().await;
    s.create_admin("alice", PASSWORD);
    let admin = Admin::login(&s, "alice", PASSWORD).await;
    let key = s.api_key(Some(1)).await;
    let auth = format!("Bearer {key}");
    let events = || async {
        let r = s
            .raw(
                Method::GET,
                "/api/v1/events?limit=100",
                &[("authorization", &auth)],
                "",
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json["data"].as_array().unwrap().clone()
    };
    let status = |id: &str| {
        members::get(&s.db.conn().unwrap(), 1, id)
            .unwrap()
            .map(|m| m.status.to_string())
    };

    // A person added by hand, never provisioned.
    let id = seed_member(&s, "ada@example.com").await;
    let page = admin.get(&s, &format!("/t/default/people/{id}")).await;
    assert!(
        page.text.contains(r#"id="status-actions""#),
        "{}",
        page.text
    );
    assert!(page.text.contains(r#"value="suspend""#), "{}", page.text);
    assert!(
        !page.text.contains(r#"value="reactivate""#),
        "already active"
    );
    let path = format!("/t/default/people/{id}/status");
    for (change, now, event) in [
        ("suspend", "suspended", "member.suspended"),
        ("reactivate", "active", "member.reactivated"),
        ("archive", "archived", "member.archived"),
        ("reactivate", "active", "member.reactivated"),
    ] {
        let r = admin.post(&s, &path, &format!("change={change}")).await;
        assert_eq!(r.status, 303, "{change}: {}", r.text);
        assert_eq!(status(&id).as_deref(), Some(now), "{change}");
        let last = events().await.last().unwrap().clone();
        assert_eq!(last["type"], event, "{last}");
        assert_eq!(last["context"]["via"], "admin", "{last}");
        assert_eq!(last["context"]["cause"], "by an admin", "{last}");
        assert_eq!(last["data"]["status"], now, "{last}");
    }
    // A change that does not apply, or no change at all, is refused and changes nothing.
    let r = admin.post(&s, &path, "change=reactivate").await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("already active"), "{}", r.text);
    let r = admin.post(&s, &path, "change=promote").await;
    assert_eq!(r.status, 400, "{}", r.text);
    let before = events().await.len();
    let r = admin.post(&s, &path, "change=delete").await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.header("location"), Some("/t/default/people"));
    assert_eq!(status(&id), None, "deleted");
    let all = events().await;
    assert_eq!(all.len(), before + 1);
    assert_eq!(all.last().unwrap()["type"], "member.deleted");
    let r = admin.post(&s, &path, "change=suspend").await;
    assert_eq!(r.status, 404, "already gone: {}", r.text);

    // A member the IdP provisioned: its status is the IdP's to decide…
    s.create_user("grace@example.com").await;
    let grace = members::by_email(&s.db.conn().unwrap(), 1, "grace@example.com")
        .unwrap()
        .unwrap()
        .id;
    let page = admin.get(&s, &format!("/t/default/people/{grace}")).await;
    assert!(page.text.contains(r#"id="status-by-idp""#), "{}", page.text);
    assert!(!page.text.contains(r#"id="status-actions""#));
    let path = format!("/t/default/people/{grace}/status");
    let r = admin.post(&s, &path, "change=suspend").await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("the IdP decides"), "{}", r.text);
    assert_eq!(status(&grace).as_deref(), Some("active"));
    // …until it is marked not managed.
    let r = admin
        .post(
            &s,
            &format!("/t/default/people/{grace}/managed"),
            "managed=false",
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let r = admin.post(&s, &path, "change=suspend").await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(status(&grace).as_deref(), Some("suspended"));
    // While the IdP still has her, deleting her would only have its next change create
    // her again, managed: not offered, and refused.
    let page = admin.get(&s, &format!("/t/default/people/{grace}")).await;
    assert!(page.text.contains(r#"value="archive""#), "{}", page.text);
    assert!(!page.text.contains(r#"value="delete""#), "{}", page.text);
    let r = admin.post(&s, &path, "change=delete").await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("still provisions"), "{}", r.text);
    assert_eq!(status(&grace).as_deref(), Some("suspended"));
}
