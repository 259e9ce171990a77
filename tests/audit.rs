//! Every SCIM write lands in the audit log: successes inside the write's transaction,
//! failures in their own, both naming the token by id and carrying the request id.

mod common;

use common::*;
use scimd::db::audit::{self, Action, Outcome};
use serde_json::json;

fn entries(s: &TestServer) -> Vec<audit::Record> {
    let conn = s.db.conn().unwrap();
    audit::list(&conn, &audit::Filter::default())
        .unwrap()
        .into_iter()
        .filter(|r| r.entry.action.as_str().starts_with("scim."))
        .collect()
}

#[tokio::test]
async fn scim_writes_are_audited_with_outcome_actor_and_request_id() {
    let s = TestServer::start().await;
    let r = s
        .post("/scim/v2/Users", &json!({"userName":"audited@example.com"}))
        .await;
    let id = r.json["id"].as_str().unwrap().to_string();
    let request_id = r.header("x-request-id").unwrap().to_string();
    s.patch(
        &format!("/scim/v2/Users/{id}"),
        &json!({"Operations":[{"op":"replace","path":"active","value":false}]}),
    )
    .await;
    let g = s
        .post("/scim/v2/Groups", &json!({"displayName":"Audited"}))
        .await;
    let gid = g.json["id"].as_str().unwrap().to_string();
    s.delete(&format!("/scim/v2/Groups/{gid}")).await;
    // Failures: a duplicate POST (409), a PATCH of an unknown user (404).
    let dup = s
        .post("/scim/v2/Users", &json!({"userName":"AUDITED@example.com"}))
        .await;
    s.patch(
        "/scim/v2/Users/nope",
        &json!({"Operations":[{"op":"remove","path":"title"}]}),
    )
    .await;
    // Reads and searches are not audited.
    s.get("/scim/v2/Users").await;
    s.post("/scim/v2/Users/.search", &json!({"filter":"userName pr"}))
        .await;

    let log = entries(&s);
    let summary: Vec<(Action, String, Outcome, Option<u16>)> = log
        .iter()
        .map(|r| {
            (
                r.entry.action,
                r.entry.target.clone().unwrap_or_default(),
                r.entry.outcome,
                r.entry.status,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                Action::ScimPost,
                format!("Users/{id}"),
                Outcome::Success,
                Some(201)
            ),
            (
                Action::ScimPatch,
                format!("Users/{id}"),
                Outcome::Success,
                Some(200)
            ),
            (
                Action::ScimPost,
                format!("Groups/{gid}"),
                Outcome::Success,
                Some(201)
            ),
            (
                Action::ScimDelete,
                format!("Groups/{gid}"),
                Outcome::Success,
                Some(204)
            ),
            (
                Action::ScimPost,
                "Users".to_string(),
                Outcome::Failure,
                Some(409)
            ),
            (
                Action::ScimPatch,
                "Users/nope".to_string(),
                Outcome::Failure,
                Some(404)
            ),
        ]
    );
    let token_id = scimd::db::tokens::list(&s.db.conn().unwrap(), None).unwrap()[0].id;
    assert!(
        log.iter()
            .all(|r| r.entry.actor == format!("token:{token_id}"))
    );
    assert_eq!(
        log[0].entry.request_id.as_deref(),
        Some(request_id.as_str())
    );
    assert_eq!(
        log[4].entry.request_id.as_deref(),
        dup.header("x-request-id")
    );
    assert!(
        log[4].entry.detail.as_ref().unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );
    // Nothing in the log holds the token.
    let all = audit::list(&s.db.conn().unwrap(), &audit::Filter::default()).unwrap();
    assert!(all.iter().all(|r| !r.to_json_line().contains(&s.token)));
}

#[tokio::test]
async fn admin_actions_are_audited_without_secrets() {
    use hyper::Method;
    let s = TestServer::start().await;
    s.create_admin("alice", "correct horse battery");
    let failed = s.login_response("alice", "wrong password!").await;
    assert_eq!(failed.status, 401);
    let cookie = s.login_cookie("alice", "correct horse battery").await;
    let page = s
        .raw(
            Method::GET,
            "/t/default/connection",
            &[("cookie", &cookie)],
            "",
        )
        .await;
    let csrf = hidden_field(&page.text, "csrf").unwrap();
    let form = [
        ("cookie", cookie.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let r = s
        .raw(
            Method::POST,
            "/t/default/tokens",
            &form,
            format!("csrf={csrf}&name=Okta"),
        )
        .await;
    let at = r
        .text
        .find("value=\"scimd_")
        .expect("the new token is shown once")
        + 7;
    let secret = r.text[at..at + 70].to_string();
    let conn = s.db.conn().unwrap();
    let token_id = scimd::db::tokens::list(&conn, None)
        .unwrap()
        .into_iter()
        .find(|t| t.name == "Okta")
        .unwrap()
        .id;
    let r = s
        .raw(
            Method::POST,
            &format!("/t/default/tokens/{token_id}/regenerate"),
            &form,
            format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(r.status, 200);
    s.raw(
        Method::POST,
        "/tenants",
        &form,
        format!("csrf={csrf}&slug=acme&name=Acme"),
    )
    .await;
    s.raw(Method::POST, "/logout", &form, format!("csrf={csrf}"))
        .await;

    let log = audit::list(&conn, &audit::Filter::default()).unwrap();
    let seen: Vec<(&str, &str, Outcome)> = log
        .iter()
        .map(|r| {
            (
                r.entry.action.as_str(),
                r.entry.actor.as_str(),
                r.entry.outcome,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("admin.login_failed", "anonymous", Outcome::Failure),
            ("admin.login", "admin:alice", Outcome::Success),
            ("token.created", "admin:alice", Outcome::Success),
            ("token.revoked", "admin:alice", Outcome::Success),
            ("token.created", "admin:alice", Outcome::Success),
            ("tenant.created", "admin:alice", Outcome::Success),
            ("admin.logout", "admin:alice", Outcome::Success),
        ]
    );
    for r in &log {
        let line = r.to_json_line();
        assert!(
            !line.contains("correct horse") && !line.contains("wrong password"),
            "{line}"
        );
        assert!(!line.contains(&secret), "{line}");
    }
}

/// Admin accounts and sign-ins belong to no tenant: they have an audit page of their own,
/// linked from the admins page, with the tenant pages' filters, export and verification,
/// and no tenant's page shows them.
#[tokio::test]
async fn sign_ins_and_admin_accounts_have_an_audit_page_of_their_own() {
    use hyper::Method;
    let s = TestServer::start().await;
    s.create_admin("alice", "correct horse battery");
    assert_eq!(
        s.login_response("alice", "wrong password!").await.status,
        401
    );
    let r = s.raw(Method::GET, "/audit", &[], "").await;
    assert_eq!(r.status, 303, "a session is needed");
    let cookie = s.login_cookie("alice", "correct horse battery").await;
    let get = |path: &str| {
        let path = path.to_string();
        let cookie = cookie.clone();
        let s = &s;
        async move { s.raw(Method::GET, &path, &[("cookie", &cookie)], "").await }
    };
    let admins = get("/admins").await;
    assert!(admins.text.contains("href=\"/audit\""), "{}", admins.text);
    let page = get("/audit").await;
    assert_eq!(page.status, 200, "{}", page.text);
    for shown in [
        "<td>admin.login_failed</td>",
        "<td>admin.login</td>",
        "admin/alice",
    ] {
        assert!(page.text.contains(shown), "{shown}: {}", page.text);
    }
    // An actor is found by its whole label, its kind or its name.
    for actor in ["admin:alice", "admin", "alice", "ALICE"] {
        let by = get(&format!("/audit?actor={actor}&action=admin.login")).await;
        assert!(
            by.text.contains("<td>admin.login</td>"),
            "{actor}: {}",
            by.text
        );
    }
    for actor in ["bob", "admin:ali", "lice"] {
        let by = get(&format!("/audit?actor={actor}")).await;
        assert!(by.text.contains("No entries match"), "{actor}: {}", by.text);
    }
    let failed = get("/audit?action=admin.login_failed").await;
    assert!(failed.text.contains("<td>admin.login_failed</td>"));
    assert!(!failed.text.contains("<td>admin.login</td>"));
    let tenant = get("/t/default/audit?action=admin.login").await;
    assert!(tenant.text.contains("No entries match"), "{}", tenant.text);
    let verified = get("/audit?verify=1").await;
    assert!(
        verified
            .text
            .contains("The chain holds: 2 entries verified"),
        "{}",
        verified.text
    );
    let export = get("/audit/export.jsonl").await;
    assert_eq!(export.status, 200);
    let actions: Vec<String> = export
        .text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(actions, ["admin.login_failed", "admin.login"]);

    // A deletion names the admin (ids are reused once one is gone).
    s.create_admin("bob", "correct horse battery");
    let bob = scimd::db::admins::list(&s.db.conn().unwrap())
        .unwrap()
        .into_iter()
        .find(|a| a.username == "bob")
        .unwrap()
        .id;
    let csrf = hidden_field(&admins.text, "csrf").unwrap();
    let r = s
        .raw(
            Method::POST,
            &format!("/admins/{bob}/delete"),
            &[
                ("cookie", &cookie),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            format!("csrf={csrf}&current=correct+horse+battery"),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let deleted = get("/audit?action=admin.deleted").await;
    assert!(deleted.text.contains("admin/bob"), "{}", deleted.text);
}

/// The audit page's "Verify integrity" checks the tenant's chain: intact after real SCIM
/// traffic, and naming the entry once a row is edited with sqlite behind scimd's back.
#[tokio::test]
async fn the_audit_page_verifies_the_chain_and_names_an_edited_entry() {
    let s = TestServer::start().await;
    s.create_admin("alice", "correct horse battery");
    let cookie = s.login_cookie("alice", "correct horse battery").await;
    for i in 0..5 {
        s.create_user(&format!("chain{i}@example.com")).await;
    }
    let verify = || async {
        let r = s
            .raw(
                hyper::Method::GET,
                "/t/default/audit?verify=1",
                &[("cookie", &cookie)],
                bytes::Bytes::new(),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.text
    };
    let page = verify().await;
    assert!(page.contains("The chain holds"), "{page}");
    let target = entries(&s)[2].id;
    let head = entries(&s).last().unwrap().hash.clone().unwrap();
    assert!(
        page.contains(&head),
        "the page shows the head hash to note down"
    );

    let conn = s.db.conn().unwrap();
    conn.execute_batch("DROP TRIGGER audit_log_no_update")
        .unwrap();
    conn.execute(
        "UPDATE audit_log SET detail = '{\"note\":\"nothing happened\"}' WHERE id = ?1",
        [target],
    )
    .unwrap();
    drop(conn);
    let page = verify().await;
    assert!(
        page.contains(&format!("entry {target} was changed after it was written")),
        "{page}"
    );
}

/// An entry's detail reads field by field on the audit page, its JSON a click away.
#[tokio::test]
async fn the_audit_page_reads_a_member_change_field_by_field() {
    let s = TestServer::start().await;
    s.create_admin("alice", "correct horse battery");
    let cookie = s.login_cookie("alice", "correct horse battery").await;
    s.create_user("ada@example.com").await;
    let r = s
        .raw(
            hyper::Method::GET,
            "/t/default/audit?action=member.created",
            &[("cookie", &cookie)],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.text.contains("<div>email: — → ada@example.com</div>"),
        "{}",
        r.text
    );
    assert!(r.text.contains("<summary>JSON</summary>"), "{}", r.text);
    s.stop().await;
}

/// Filtering the audit page by a target (a person's history) reads a bounded window of the
/// log per page, whose size grows for ever, and leads on to the older entries until it
/// finds theirs.
#[tokio::test]
async fn the_audit_page_searches_a_long_log_a_window_at_a_time() {
    let s = TestServer::start().await;
    s.create_admin("alice", "correct horse battery");
    let cookie = s.login_cookie("alice", "correct horse battery").await;
    let ada = s.create_user("ada@example.com").await;
    {
        let mut conn = s.db.conn().unwrap();
        // Immediate: the server may write meanwhile (a token's last use, the inspector),
        // and a deferred transaction that read first cannot wait its turn to write.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        let mut chain = audit::Chain::new(Some(1));
        let entry = audit::Entry::new(
            &scimd::model::Actor::cli(),
            Some(1),
            Action::MemberUpdated,
            Some("member/someone".into()),
        );
        let detail = serde_json::value::RawValue::from_string("{}".into()).unwrap();
        for _ in 0..audit::SEARCHED_PER_PAGE {
            chain.append_raw(&tx, &entry, &detail).unwrap();
        }
        tx.commit().unwrap();
    }
    let page = |path: String| {
        let cookie = cookie.clone();
        let s = &s;
        async move {
            let r = s
                .raw(
                    hyper::Method::GET,
                    &path,
                    &[("cookie", &cookie)],
                    bytes::Bytes::new(),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.text
        }
    };
    let row = format!(">Users/{ada}</");
    let first = page(format!("/t/default/audit?target=Users/{ada}")).await;
    assert!(!first.contains(&row), "not in the newest window");
    assert!(first.contains(r#"id="searched""#), "{first}");
    let older = first
        .split(r#"rel="next""#)
        .next()
        .and_then(|before| before.rsplit("href=\"").next())
        .and_then(|href| href.split('"').next())
        .expect("a link to search on")
        .replace("&#38;", "&");
    assert!(older.contains("&after="), "{older}");
    let next = page(older).await;
    assert!(next.contains(&row), "{next}");

    assert!(
        !next.contains(r#"id="searched""#),
        "nothing older to search"
    );
    // The history verifies as it always did.
    let verified = page("/t/default/audit?verify=1".into()).await;
    assert!(verified.contains("The chain holds"), "{verified}");
}
