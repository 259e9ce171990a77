//! Test mode, the sync report, Force sync, roles and settings in a real headless Chromium:
//! an admin checks what the IdP's pushes would do before letting them change anyone.

mod common;

use common::browser::Browser;
use common::*;
use hyper::Method;
use serde_json::json;

use scimd::db;
use scimd::sync::{DeactivatePolicy, MemberStatus};

const PASSWORD: &str = "correct horse battery staple";

async fn log_in(s: &TestServer, b: &Browser) {
    b.goto(&s.url("/login")).await;
    b.fill("input[name=username]", "alice").await;
    b.fill("input[name=password]", PASSWORD).await;
    b.click("button[type=submit]").await;
}

/// The default tenant's members, as (email, role, status).
fn members(s: &TestServer) -> Vec<(String, String, MemberStatus)> {
    let conn = s.db.conn().unwrap();
    let tenant = db::tenants::by_slug(&conn, "default").unwrap();
    db::members::list(&conn, tenant.id)
        .unwrap()
        .into_iter()
        .map(|m| {
            (
                m.profile.email.unwrap_or_default(),
                m.role.to_string(),
                m.status,
            )
        })
        .collect()
}

async fn push_group(s: &TestServer, name: &str, user_id: &str) {
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas":[GROUP_URN],"displayName":name,"members":[{"value":user_id}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn test_mode_report_export_force_sync_roles_and_settings() {
    let s = TestServer::start().await;
    s.create_admin("alice", PASSWORD);
    let Some(b) = Browser::start().await else {
        return;
    };
    log_in(&s, &b).await;

    // Turn test mode on: the banner says so everywhere.
    b.goto(&s.url("/t/default/sync")).await;
    assert!(b.title().await.starts_with("Test mode & sync"));
    b.click("//form[contains(@action,'/sync/test-mode')]//button")
        .await;
    let body = b.body().await;
    assert!(body.contains("Test mode is on."), "{body}");
    assert!(body.contains("members stay as they are"), "{body}");
    b.goto(&s.url("/t/default/")).await;
    assert!(b.text(".banner.warn").await.contains("Test mode is on."));

    // The IdP pushes a person and a reserved role group: the directory takes it, the
    // members do not change.
    let ada = s.create_user("ada@example.com").await;
    push_group(&s, "scimd-role-admin", &ada).await;
    push_group(&s, "Owners", &ada).await;
    assert!(members(&s).is_empty(), "test mode changes no member");

    // The report says what a sync would do, with the role and its reason.
    b.goto(&s.url("/t/default/sync")).await;
    let report = b.text("#kind-create").await;
    assert!(report.contains("New members (1)"), "{report}");
    assert!(report.contains("ada@example.com"), "{report}");
    assert!(
        report.contains("role admin, from reserved group scimd-role-admin"),
        "{report}"
    );
    assert!(b.text("ul.counts").await.contains("1 Create"));
    b.client
        .execute("document.getElementById('report').scrollIntoView()", vec![])
        .await
        .unwrap();
    b.screenshot("sync-report").await;

    // Export it, as a browser would download it: with the session cookie.
    let cookie = b.client.get_named_cookie("scimd_session").await.unwrap();
    let cookie = format!("scimd_session={}", cookie.value());
    let href = b
        .find("//a[text()='CSV']")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let csv = s
        .raw(Method::GET, &href, &[("cookie", cookie.as_str())], "")
        .await;
    assert_eq!(csv.status, 200);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    assert!(
        csv.header("content-disposition")
            .unwrap()
            .starts_with("attachment; filename=\"scimd-default-sync-report-")
    );
    assert!(
        csv.text
            .starts_with("kind,memberId,subject,userId,field,before,after,reason")
    );
    assert!(csv.text.contains("create,,ada@example.com"), "{}", csv.text);
    let href = b
        .find("//a[text()='JSON']")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let export = s
        .raw(Method::GET, &href, &[("cookie", cookie.as_str())], "")
        .await;
    assert_eq!(export.header("content-type"), Some("application/json"));
    assert_eq!(export.json["testMode"], true);
    assert_eq!(export.json["counts"]["create"], 1);
    assert_eq!(
        export.json["changes"]["create"][0]["subject"],
        "ada@example.com"
    );

    // Force sync in test mode records a dry run and changes nothing.
    b.click("#force-sync").await;
    let body = b.body().await;
    assert!(body.contains("Dry run recorded"), "{body}");
    assert!(b.text("#run-result").await.contains("1 Create"));
    assert!(members(&s).is_empty());

    // Turning test mode off (after a confirmation) applies nothing by itself.
    b.click_and_confirm("//form[contains(@action,'/sync/test-mode')]//button")
        .await;
    let body = b.body().await;
    assert!(
        body.contains("Nothing was applied by turning it off"),
        "{body}"
    );
    assert!(
        b.client
            .find(fantoccini::Locator::Css(".banner.warn"))
            .await
            .is_err()
    );
    assert!(members(&s).is_empty());

    // Force sync applies the report (after a confirmation).
    b.click_and_confirm("#force-sync").await;
    let body = b.body().await;
    assert!(body.contains("Sync applied"), "{body}");
    assert_eq!(
        members(&s),
        vec![(
            "ada@example.com".to_string(),
            "admin".to_string(),
            MemberStatus::Active
        )]
    );
    let history = b.text("#history + .table-wrap").await;
    assert!(
        history.contains("dry run") && history.contains("applied"),
        "{history}"
    );
    assert_eq!(history.matches("admin:alice").count(), 2, "{history}");
    assert!(
        b.text("#report + p")
            .await
            .contains("Nothing: members match the directory.")
    );
    b.screenshot("sync").await;

    // The dashboard shows the members and the last run.
    b.goto(&s.url("/t/default/")).await;
    let sync_panel = b.text("section[aria-labelledby='sync-h']").await;
    assert!(
        sync_panel.contains("force sync by admin:alice"),
        "{sync_panel}"
    );
    assert!(sync_panel.contains("applied"), "{sync_panel}");
    let members_panel = b.text("section[aria-labelledby='members-h']").await;
    assert!(members_panel.contains("admin 1"), "{members_panel}");

    // Roles: map the Owners group to owner, preview, then save.
    b.goto(&s.url("/t/default/roles")).await;
    assert!(b.title().await.starts_with("Roles"));
    assert!(b.body().await.contains("scimd-role-owner"));
    b.find("select[name=group]")
        .await
        .select_by_value("Owners")
        .await
        .unwrap();
    b.find("form[action$='/roles/map'] select[name=role]")
        .await
        .select_by_value("owner")
        .await
        .unwrap();
    b.click("form[action$='/roles/map'] button[value=preview]")
        .await;
    let preview = b.text("#preview").await;
    assert!(
        preview.contains("Members of group Owners get role owner"),
        "{preview}"
    );
    assert!(preview.contains("ada@example.com"), "{preview}");
    assert!(preview.contains("owner, from group Owners"), "{preview}");
    assert_eq!(members(&s)[0].1, "admin", "a preview saves nothing");
    b.screenshot("roles").await;
    b.click("#save-preview").await;
    let body = b.body().await;
    assert!(
        body.contains("Saved; roles re-evaluated: Role change 1"),
        "{body}"
    );
    assert_eq!(members(&s)[0].1, "owner");
    let mapping = b
        .find("//tr[td[text()='Owners']]")
        .await
        .text()
        .await
        .unwrap();
    assert!(mapping.contains("owner"), "{mapping}");

    // Settings: a policy, saved and shown.
    b.goto(&s.url("/t/default/settings")).await;
    assert!(b.title().await.starts_with("Settings"));
    b.find("input[name=on_deactivate][value=delete]")
        .await
        .click()
        .await
        .unwrap();
    b.fill("input[name=name]", "Acme").await;
    b.screenshot("settings").await;
    b.click("form[action$='/settings'] button[type=submit]")
        .await;
    assert!(b.body().await.contains("Settings saved."));
    assert!(
        b.find("input[name=on_deactivate][value=delete]")
            .await
            .prop("checked")
            .await
            .unwrap()
            .as_deref()
            == Some("true")
    );
    assert!(b.body().await.contains("Tenant: Acme"));
    {
        let conn = s.db.conn().unwrap();
        let tenant = db::tenants::by_slug(&conn, "default").unwrap();
        assert_eq!(tenant.name, "Acme");
        let settings = db::settings::get(&conn, tenant.id).unwrap();
        assert_eq!(settings.on_deactivate, DeactivatePolicy::Delete);

        // Every admin action is in the audit log under the admin's name.
        let audit = db::audit::list(
            &conn,
            &db::audit::Filter {
                actor: Some("admin:alice".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let actions: Vec<&str> = audit.iter().map(|r| r.entry.action.as_str()).collect();
        for action in [
            "tenant.settings_changed",
            "sync.run",
            "member.created",
            "roles.mapped",
            "member.role_changed",
        ] {
            assert!(actions.contains(&action), "{action} in {actions:?}");
        }
        assert!(audit.iter().all(|r| r.entry.request_id.is_some()));
    }

    // At phone width the pages fit: wide tables scroll inside their frame, not the page.
    b.fits_a_phone(
        &s.url(""),
        &[
            "/t/default/",
            "/t/default/roles",
            "/t/default/settings",
            "/t/default/sync",
        ],
    )
    .await;
    b.client.set_window_size(390, 844).await.unwrap();
    b.screenshot("sync-phone").await;
    b.close().await;
}
