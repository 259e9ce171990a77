//! People, Groups and the Audit log in a real headless Chromium: what an admin clicks
//! through to import members, find them, see why they have their role, keep one away
//! from provisioning, browse groups, and read the log of all of it.

mod common;

use common::browser::Browser;
use common::*;
use fantoccini::Locator;
use serde_json::json;

const PASSWORD: &str = "correct horse battery staple";

async fn log_in(s: &TestServer, b: &Browser) {
    s.create_admin("alice", PASSWORD);
    b.goto(&s.url("/login")).await;
    b.fill("input[name=username]", "alice").await;
    b.fill("input[name=password]", PASSWORD).await;
    b.click("button[type=submit]").await;
}

/// Uploads `csv` as a file through the import form and waits for the preview.
async fn upload(b: &Browser, dir: &std::path::Path, name: &str, csv: &str) {
    let path = dir.join(name);
    std::fs::write(&path, csv).unwrap();
    b.find("input[type=file]")
        .await
        .send_keys(path.to_str().unwrap())
        .await
        .unwrap();
    b.click("#preview-import").await;
}

async fn rows(b: &Browser) -> Vec<String> {
    let mut out = Vec::new();
    for row in b
        .client
        .find_all(Locator::Css("main table tbody tr"))
        .await
        .unwrap()
    {
        out.push(row.text().await.unwrap());
    }
    out
}

async fn choose(b: &Browser, select: &str, value: &str) {
    b.find(select).await.select_by_value(value).await.unwrap();
}

#[tokio::test]
async fn import_find_explain_the_role_unmanage_and_audit() {
    let s = TestServer::start().await;
    let Some(b) = Browser::start().await else {
        return;
    };
    let files = tempfile::tempdir().unwrap();
    log_in(&s, &b).await;

    b.goto(&s.url("/t/default/people")).await;
    assert!(b.title().await.starts_with("People"), "{}", b.title().await);
    assert!(b.body().await.contains("No members yet"));

    // A bad file: every problem by line, nothing imported.
    b.click("//a[text()='Import CSV']").await;
    assert!(b.title().await.starts_with("Import members"));
    upload(
        &b,
        files.path(),
        "bad.csv",
        "email,role\nada@example.com,admin\nnot-an-email,\nbob@example.com,superuser\n",
    )
    .await;
    let errors = b.text("#import-errors").await;
    assert!(errors.contains("2 problems in bad.csv"), "{errors}");
    assert!(
        errors.contains("line 3: \"not-an-email\" is not an email address"),
        "{errors}"
    );
    assert!(
        errors.contains("line 4: role superuser is not one of the tenant's roles"),
        "{errors}"
    );
    assert!(
        b.client
            .find(Locator::Css("#confirm-import"))
            .await
            .is_err()
    );
    let conn = s.db.conn().unwrap();
    assert!(scimd::db::members::list(&conn, 1).unwrap().is_empty());

    // A good file: previewed, then imported on confirmation.
    upload(
        &b,
        files.path(),
        "people.csv",
        "email,userName,givenName,familyName,role,Provisioning Managed\n\
         ada@example.com,ada,Ada,Lovelace,admin,\n\
         bob@example.com,bob,Bob,Babbage,,\n\
         carol@example.com,carol,Carol,Shaw,member,false\n",
    )
    .await;
    let preview = b.text("#import-preview").await;
    assert!(
        preview.contains("3 rows: 3 to create, 0 to update"),
        "{preview}"
    );
    assert!(preview.contains("carol@example.com"), "{preview}");
    assert!(scimd::db::members::list(&conn, 1).unwrap().is_empty());
    b.screenshot("import").await;
    b.click("#confirm-import").await;
    assert_eq!(b.path().await, "/t/default/people");
    let body = b.body().await;
    assert!(
        body.contains("Imported 3 row(s) from people.csv: 3 created"),
        "{body}"
    );
    let list = rows(&b).await;
    assert_eq!(list.len(), 3, "{list:?}");
    assert!(list[0].contains("ada@example.com") && list[0].contains("admin"));
    b.screenshot("people").await;

    // Search and filter.
    b.fill("input[name=q]", "SHAW").await;
    b.click("form[role=search] button").await;
    let list = rows(&b).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert!(list[0].contains("carol@example.com"));
    b.fill("input[name=q]", "").await;
    choose(&b, "select[name=managed]", "no").await;
    b.click("form[role=search] button").await;
    let list = rows(&b).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert!(list[0].contains("carol@example.com"));
    choose(&b, "select[name=managed]", "").await;
    choose(&b, "select[name=role]", "viewer").await;
    b.click("form[role=search] button").await;
    let list = rows(&b).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert!(list[0].contains("bob@example.com"));
    assert!(b.text("#member-count").await.contains("1 member match"));

    // The IdP provisions Bob and pushes him in the reserved admin group.
    let bob = s.create_user("bob@example.com").await;
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas": [GROUP_URN], "displayName": "scimd-role-admin",
                    "members": [{"value": bob}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    b.click("//a[text()='bob@example.com']").await;
    assert!(b.title().await.starts_with("bob@example.com"));
    assert_eq!(b.text("#member-role").await, "admin");
    assert_eq!(
        b.text("#role-reason").await,
        "Why: admin, from reserved group scimd-role-admin"
    );
    let record = b.text("#directory-record").await;
    assert!(
        record.contains(&bob) || record.contains("\"userName\": \"bob@example.com\""),
        "{record}"
    );
    assert!(b.body().await.contains("admin (reserved name)"));
    b.screenshot("member").await;

    // Keep Bob away from provisioning (after a confirmation).
    b.click_and_confirm("#toggle-managed").await;
    assert!(b.body().await.contains("Marked as not managed"));
    assert!(b.text("#member-managed").await.starts_with("no"));
    b.goto(b.client.current_url().await.unwrap().as_ref()).await;
    assert!(b.text("#member-managed").await.starts_with("no"), "saved");

    // The audit log has the SCIM writes, the import and the admin's action.
    b.click("//nav[@aria-label='Sections']//a[text()='Audit log']")
        .await;
    assert!(b.title().await.starts_with("Audit log"));
    let body = b.body().await;
    for want in [
        "scim.post",
        "members.imported",
        "member.created",
        "member.updated",
        "admin:alice",
        "token:",
    ] {
        assert!(body.contains(want), "{want}: {body}");
    }
    b.fill("input[name=actor]", "admin:alice").await;
    b.click("form[role=search] button").await;
    let list = rows(&b).await;
    assert!(!list.is_empty());
    assert!(list.iter().all(|r| r.contains("admin:alice")), "{list:?}");
    assert!(!list.iter().any(|r| r.contains("scim.post")), "{list:?}");
    assert!(list[0].contains("member.updated"), "newest first: {list:?}");
    assert!(list.iter().any(|r| r.contains("members.imported")));
    b.screenshot("audit").await;

    let member = format!(
        "/t/default/people/{}",
        scimd::db::members::by_email(&conn, 1, "bob@example.com")
            .unwrap()
            .unwrap()
            .id
    );
    b.fits_a_phone(
        &s.url(""),
        &[
            "/t/default/people",
            "/t/default/people/new",
            "/t/default/people/import",
            &member,
            "/t/default/audit",
        ],
    )
    .await;
    b.close().await;
}

#[tokio::test]
async fn groups_list_and_a_group_paged_through_its_members() {
    let s = TestServer::start().await;
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push(s.create_user(&format!("user{i:02}@example.com")).await);
    }
    let members: Vec<_> = ids.iter().map(|id| json!({"value": id})).collect();
    for (name, members) in [
        ("Everyone", json!(members)),
        ("scimd-role-member", json!(members[..3])),
    ] {
        let r = s
            .post(
                "/scim/v2/Groups",
                &json!({"schemas": [GROUP_URN], "displayName": name, "members": members}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let Some(b) = Browser::start().await else {
        return;
    };
    log_in(&s, &b).await;

    b.goto(&s.url("/t/default/groups")).await;
    assert!(b.title().await.starts_with("Groups"));
    let list = rows(&b).await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(
        list[0].starts_with("Everyone") && list[0].contains("60"),
        "{list:?}"
    );
    assert!(list[1].contains("member (reserved name)"), "{list:?}");
    b.screenshot("groups").await;

    b.fill("input[name=q]", "ROLE").await;
    b.click("form[role=search] button").await;
    assert_eq!(rows(&b).await.len(), 1);

    b.goto(&s.url("/t/default/groups")).await;
    b.click("//a[text()='Everyone']").await;
    assert!(b.title().await.starts_with("Everyone"));
    assert_eq!(b.text("#group-total").await, "60");
    assert!(b.text("#group-role").await.starts_with("none"));
    let first = rows(&b).await;
    assert_eq!(first.len(), 50);
    assert!(first[0].contains("user00@example.com"), "{first:?}");
    b.click("a[rel=next]").await;
    let second = rows(&b).await;
    assert_eq!(second.len(), 10);
    assert!(second[9].contains("user59@example.com"), "{second:?}");
    assert!(b.client.find(Locator::Css("a[rel=next]")).await.is_err());
    b.click("a[rel=prev]").await;
    assert_eq!(rows(&b).await, first);

    // Members link to their member page.
    b.click("//tr[td[text()='user00@example.com']]//a").await;
    assert!(b.title().await.starts_with("user00@example.com"));
    assert_eq!(b.text("#member-role").await, "member");
    b.fits_a_phone(&s.url(""), &["/t/default/groups"]).await;
    b.close().await;
}

/// The webhook pages at phone width: a long URL, a long error and the secret shown once wrap
/// inside their boxes; the dashboard's banner names the disabled endpoint.
#[tokio::test]
async fn webhook_pages_fit_a_phone() {
    let s = TestServer::start().await;
    let Some(b) = Browser::start().await else {
        return;
    };
    log_in(&s, &b).await;
    // Nothing listens on port 9 of 127.0.0.1: the test send fails with a long error.
    let url = format!(
        "http://127.0.0.1:9/hooks/{}?tenant=default&token={}",
        "very-long-path-segment/".repeat(6),
        "0123456789abcdef".repeat(6)
    );
    b.goto(&s.url("/t/default/apps")).await;
    b.client.set_window_size(390, 844).await.unwrap();
    b.fill("form[action$='/webhooks'] input[name=url]", &url)
        .await;
    b.click("form[action$='/webhooks'] button[type=submit]")
        .await;
    let secret = b.value("#new-secret").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    let fits = b
        .client
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        fits,
        json!(true),
        "the new secret's page is wider than a phone"
    );
    b.client.set_window_size(1280, 900).await.unwrap();

    let id = scimd::db::webhooks::list(&s.db.conn().unwrap(), None).unwrap()[0].id;
    let actor = scimd::model::Actor::cli();
    let (target, m) = scimd::ops::webhooks::test(&s.db, &actor, None, id)
        .await
        .unwrap();
    let sent = scimd::http::webhooks::send_once(&s.db, &target, &m)
        .await
        .unwrap();
    assert!(!sent.accepted());
    scimd::ops::webhooks::disable(&s.db, &actor, None, id)
        .await
        .unwrap();
    b.goto(&s.url("/t/default/")).await;
    assert!(b.body().await.contains("Webhook delivery stopped"));
    b.screenshot("webhook-banner").await;
    let page = format!("/t/default/webhooks/{id}");
    b.fits_a_phone(&s.url(""), &["/t/default/apps", &page, "/t/default/"])
        .await;
    b.close().await;
}
