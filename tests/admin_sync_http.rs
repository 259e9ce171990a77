//! The test mode & sync, roles and settings pages over plain HTTP: CSRF on every POST,
//! the exports' content types, validation errors, and previews that save nothing.

mod common;

use common::*;
use hyper::Method;
use serde_json::json;

use scimd::db;

const PASSWORD: &str = "correct horse battery";

/// Logs alice in and reads the CSRF token of a page, as her browser holds them.
async fn login(s: &TestServer) -> Admin {
    s.create_admin("alice", PASSWORD);
    Admin::login(s, "alice", PASSWORD).await
}

fn settings(s: &TestServer) -> scimd::sync::Settings {
    let conn = s.db.conn().unwrap();
    db::settings::get(&conn, db::tenants::by_slug(&conn, "default").unwrap().id).unwrap()
}

fn runs(s: &TestServer) -> usize {
    let conn = s.db.conn().unwrap();
    let id = db::tenants::by_slug(&conn, "default").unwrap().id;
    db::sync_runs::recent(&conn, id, 100).unwrap().len()
}

fn roles_of_members(s: &TestServer) -> Vec<String> {
    let conn = s.db.conn().unwrap();
    let id = db::tenants::by_slug(&conn, "default").unwrap().id;
    db::members::list(&conn, id)
        .unwrap()
        .into_iter()
        .map(|m| m.role.to_string())
        .collect()
}

#[tokio::test]
async fn every_post_needs_the_csrf_token() {
    let s = TestServer::start().await;
    let admin = login(&s).await;
    let before = settings(&s);
    let posts = [
        ("/t/default/sync/test-mode", "test_mode=on"),
        ("/t/default/sync/run", ""),
        (
            "/t/default/roles",
            "roles=boss%0Aviewer&default_role=viewer&role_prefix=x-&action=save",
        ),
        (
            "/t/default/roles/map",
            "group_other=Eng&role=admin&action=save",
        ),
        ("/t/default/roles/unmap", "group=Eng&action=save"),
        (
            "/t/default/settings",
            "name=Evil&on_deactivate=delete&on_delete=delete&absent=archive&match_by=username",
        ),
    ];
    for (path, body) in posts {
        let r = admin.post_raw(&s, path, body.to_string()).await;
        assert_eq!(r.status, 403, "{path} without a token");
        let r = admin
            .post_raw(&s, path, format!("csrf=forged&{body}"))
            .await;
        assert_eq!(r.status, 403, "{path} with a forged token");
        // Without a session, the login page.
        let r = s
            .raw(
                Method::POST,
                path,
                &[("content-type", "application/x-www-form-urlencoded")],
                format!("csrf={}&{body}", admin.csrf),
            )
            .await;
        assert_eq!(r.status, 303, "{path} without a session");
    }
    assert_eq!(settings(&s), before, "nothing changed");
    assert_eq!(runs(&s), 0, "no sync ran");
    let conn = s.db.conn().unwrap();
    assert_eq!(
        db::tenants::by_slug(&conn, "default").unwrap().name,
        "Default"
    );
    let mut audit = db::audit::list(&conn, &db::audit::Filter::default()).unwrap();
    // Logins are audited too; these tests look at what the pages changed.
    audit.retain(|r| !r.entry.action.as_str().starts_with("admin."));
    assert!(audit.is_empty(), "{audit:?}");
}

#[tokio::test]
async fn the_report_exports_as_csv_and_json_downloads() {
    let s = TestServer::start().await;
    let admin = login(&s).await;
    assert_eq!(
        admin
            .post(&s, "/t/default/sync/test-mode", "test_mode=on")
            .await
            .status,
        303
    );
    let id = s.create_user("grace@example.com").await;
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas":[GROUP_URN],"displayName":"scimd-role-member","members":[{"value":id}]}),
        )
        .await;
    assert_eq!(r.status, 201);

    let csv = admin.get(&s, "/t/default/sync/report.csv").await;
    assert_eq!(csv.status, 200);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let disposition = csv.header("content-disposition").unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"scimd-default-sync-report-")
            && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    assert_eq!(csv.header("x-content-type-options"), Some("nosniff"));
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(
        lines[0],
        "kind,memberId,subject,userId,field,before,after,reason"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("create,,grace@example.com,")
                && l.contains(",role,,member,")
                && l.ends_with("\"role member, from reserved group scimd-role-member\"")),
        "{}",
        csv.text
    );

    let export = admin.get(&s, "/t/default/sync/report.json").await;
    assert_eq!(export.status, 200);
    assert_eq!(export.header("content-type"), Some("application/json"));
    assert!(
        export
            .header("content-disposition")
            .unwrap()
            .ends_with(".json\"")
    );
    assert_eq!(export.json["tenant"], "default");
    assert_eq!(export.json["testMode"], true);
    assert_eq!(export.json["counts"]["create"], 1);
    assert_eq!(export.json["counts"]["delete"], 0);
    let entry = &export.json["changes"]["create"][0];
    assert_eq!(entry["subject"], "grace@example.com");
    assert_eq!(entry["userId"], id);

    // The exports need a login like every page.
    let r = s
        .raw(Method::GET, "/t/default/sync/report.csv", &[], "")
        .await;
    assert_eq!(r.status, 303);
    // A dry run in test mode is recorded and changes no member.
    let r = admin.post(&s, "/t/default/sync/run", "").await;
    assert_eq!(r.status, 303);
    assert!(
        r.header("location")
            .unwrap()
            .starts_with("/t/default/sync?run=")
    );
    assert_eq!(runs(&s), 1);
    assert!(roles_of_members(&s).is_empty());
    let page = admin.get(&s, r.header("location").unwrap()).await;
    assert!(page.text.contains("Dry run recorded"), "{}", page.text);
}

#[tokio::test]
async fn role_edits_preview_without_saving_and_refuse_invalid_settings() {
    let s = TestServer::start().await;
    let admin = login(&s).await;
    let id = s.create_user("linus@example.com").await;
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas":[GROUP_URN],"displayName":"Eng","members":[{"value":id}]}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(roles_of_members(&s), ["viewer"]);

    // The picker offers the directory's groups, and no role until one is chosen: a
    // group mapped in haste does not make its members owners.
    let page = admin.get(&s, "/t/default/roles").await;
    assert!(page.text.contains("<option value=\"Eng\""), "{}", page.text);
    assert!(
        page.text
            .contains("<option value=\"\">Choose a role…</option>"),
        "{}",
        page.text
    );
    assert!(!page.text.contains("<option value=\"owner\" selected"));
    for (body, error) in [
        (
            "group=Eng&role=&action=save",
            "Choose the role the group gives.",
        ),
        (
            "group=Eng&role=boss&action=save",
            "there is no role boss: choose one of owner, admin, member, viewer",
        ),
    ] {
        let r = admin.post(&s, "/t/default/roles/map", body).await;
        assert_eq!(r.status, 400, "{body}");
        assert!(r.text.contains(error), "{body}: {}", r.text);
    }
    let long = "G".repeat(1025);
    let r = admin
        .post(
            &s,
            "/t/default/roles/map",
            &format!("group_other={long}&role=member&action=save"),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("at most 1024 characters"), "{}", r.text);
    assert!(settings(&s).mappings.is_empty());

    // A preview lists the consequence and saves nothing.
    let r = admin
        .post(
            &s,
            "/t/default/roles/map",
            "group=Eng&role=member&action=preview",
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("linus@example.com"), "{}", r.text);
    assert!(r.text.contains("member, from group Eng"), "{}", r.text);
    assert!(settings(&s).mappings.is_empty());
    assert_eq!(roles_of_members(&s), ["viewer"]);

    // Reserved names cannot be mapped; the error is on the page.
    let r = admin
        .post(
            &s,
            "/t/default/roles/map",
            "group_other=scimd-role-owner&role=viewer&action=save",
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("is reserved"), "{}", r.text);
    assert!(
        r.text.contains("value=\"scimd-role-owner\""),
        "kept: {}",
        r.text
    );

    // Save applies, as `scimd roles map` does.
    let r = admin
        .post(
            &s,
            "/t/default/roles/map",
            "group=Eng&role=member&action=save",
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(roles_of_members(&s), ["member"]);

    // A role list without the default role is refused, with what was typed kept.
    let r = admin
        .post(
            &s,
            "/t/default/roles",
            "roles=owner%0Amember&default_role=viewer&role_prefix=scimd-role-&action=preview",
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.text
            .contains("the default role viewer is not one of the roles")
    );
    assert!(r.text.contains("owner\nmember</textarea>"), "{}", r.text);
    let r = admin
        .post(
            &s,
            "/t/default/roles",
            "roles=owner%0AAd+min&default_role=owner&role_prefix=x&action=save",
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("invalid role"), "{}", r.text);

    // A new prefix shows its reserved names; unmapping reverts the role.
    let r = admin
        .post(
            &s,
            "/t/default/roles",
            "roles=owner%0Aadmin%0Amember%0Aviewer&default_role=viewer&role_prefix=acme-&action=save",
        )
        .await;
    assert_eq!(r.status, 303);
    let page = admin.get(&s, "/t/default/roles").await;
    assert!(
        page.text.contains("<code>acme-admin</code>"),
        "{}",
        page.text
    );
    let r = admin
        .post(&s, "/t/default/roles/unmap", "group=Eng&action=preview")
        .await;
    assert!(
        r.text.contains("Group Eng no longer gives a role"),
        "{}",
        r.text
    );
    assert_eq!(roles_of_members(&s), ["member"]);
    let r = admin
        .post(&s, "/t/default/roles/unmap", "group=Eng&action=save")
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(roles_of_members(&s), ["viewer"]);
    let r = admin
        .post(&s, "/t/default/roles/unmap", "group=Eng&action=save")
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("has no mapping"));
}

/// The guard's defaults protect a small organisation, and the Settings page says when the
/// guard, as set, would let every active member be deprovisioned without a hold.
#[tokio::test]
async fn the_settings_page_warns_when_the_guard_would_hold_nothing() {
    let s = TestServer::start().await;
    let admin = login(&s).await;
    assert_eq!(settings(&s).guard.minimum, 5);
    for i in 0..6 {
        s.create_user(&format!("u{i}@example.com")).await;
    }
    let warned = |page: &str| page.contains("id=\"guard-lets-all-go\"");
    let page = admin.get(&s, "/t/default/settings").await;
    assert!(!warned(&page.text), "5 of 6 at most: {}", page.text);
    let form = |minimum: u32| {
        format!(
            "name=Default&on_deactivate=suspend&on_delete=archive&absent=retain&match_by=email\
             &event_retention_days=90&guard=on&guard_percent=10&guard_minimum={minimum}"
        )
    };
    let r = admin.post(&s, "/t/default/settings", &form(50)).await;
    assert_eq!(r.status, 303, "{}", r.text);
    let page = admin.get(&s, "/t/default/settings").await;
    assert!(warned(&page.text), "{}", page.text);
    assert!(
        page.text
            .contains("With 6 active members, the guard holds nothing until more than 50"),
        "{}",
        page.text
    );
    let r = admin.post(&s, "/t/default/settings", &form(5)).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert!(!warned(&admin.get(&s, "/t/default/settings").await.text));
}

#[tokio::test]
async fn settings_validate_and_save_like_the_cli() {
    let s = TestServer::start().await;
    let admin = login(&s).await;
    let page = admin.get(&s, "/t/default/settings").await;
    assert!(
        page.text
            .contains("<title>Settings — Default · scimd</title>")
    );
    assert!(
        page.text
            .contains("name=\"on_deactivate\" value=\"suspend\" checked"),
        "{}",
        page.text
    );

    let r = admin
        .post(
            &s,
            "/t/default/settings",
            "name=Acme&on_deactivate=explode&on_delete=archive&absent=retain&match_by=email",
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("invalid deactivation policy"), "{}", r.text);
    let long = "x".repeat(101);
    let r = admin
        .post(
            &s,
            "/t/default/settings",
            &format!(
                "name={long}&on_deactivate=suspend&on_delete=archive&absent=retain&match_by=email"
            ),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("1 to 100 characters"), "{}", r.text);
    assert_eq!(settings(&s), scimd::sync::Settings::default());

    let r = admin
        .post(
            &s,
            "/t/default/settings",
            "name=Acme&on_deactivate=delete&on_delete=delete&absent=archive&match_by=username",
        )
        .await;
    assert_eq!(r.status, 303);
    let saved = settings(&s);
    assert_eq!(saved.on_deactivate.as_str(), "delete");
    assert_eq!(saved.on_delete.as_str(), "delete");
    assert_eq!(saved.absent.as_str(), "archive");
    assert_eq!(saved.match_by.as_str(), "username");
    let conn = s.db.conn().unwrap();
    let mut audit = db::audit::list(&conn, &db::audit::Filter::default()).unwrap();
    // Logins are audited too; these tests look at what the pages changed.
    audit.retain(|r| !r.entry.action.as_str().starts_with("admin."));
    assert_eq!(audit.len(), 1);
    let entry = &audit[0].entry;
    assert_eq!(entry.actor, "admin:alice");
    assert_eq!(entry.action.as_str(), "tenant.settings_changed");
    let changes = &entry.detail.as_ref().unwrap()["changes"];
    assert_eq!(
        changes["name"],
        json!({"before": "Default", "after": "Acme"})
    );
    assert_eq!(changes["on_deactivate"]["after"], "delete");
}

async fn sync_page(s: &TestServer, admin: &Admin) -> String {
    admin.get(s, "/t/default/sync").await.text
}

/// The sync page plans once per directory change and keeps the plan between loads; what
/// an admin sees must still be the plan of the directory as it is now, after a change by
/// any road: a SCIM write, a role mapping, a setting, a write by another process (the
/// CLI), and Force sync must apply the current plan, not the one the page last showed.
#[tokio::test]
async fn the_sync_page_shows_the_current_plan_after_every_kind_of_change() {
    let s = TestServer::start().await;
    let admin = login(&s).await;
    let on = admin
        .post(&s, "/t/default/sync/test-mode", "test_mode=on")
        .await;
    assert_eq!(on.status, 303);
    let page = || sync_page(&s, &admin);
    let first = page().await;
    assert!(
        first.contains("Nothing: members match the directory."),
        "{first}"
    );
    // Loaded twice with nothing changed: the same plan.
    assert!(
        page()
            .await
            .contains("Nothing: members match the directory.")
    );

    // A SCIM write (test mode: the member is not created, the plan says it would be).
    let id = s.create_user("grace@example.com").await;
    let text = page().await;
    assert!(text.contains("1 change to apply."), "{text}");
    assert!(text.contains("grace@example.com"), "{text}");
    assert!(text.contains("viewer, the default role"), "{text}");

    // A SCIM group write puts her in a group; a role mapping of that group (a settings
    // write, planned as a dry run in test mode) gives her its role.
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas":[GROUP_URN],"displayName":"Eng","members":[{"value":id}]}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert!(page().await.contains("viewer, the default role"));
    let r = admin
        .post(
            &s,
            "/t/default/roles/map",
            "group=Eng&role=admin&action=save",
        )
        .await;
    assert_eq!(r.status, 303);
    let text = page().await;
    assert!(text.contains("admin, from group Eng"), "{text}");

    // A SCIM PATCH of her name.
    let r = s
        .patch(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations":[{"op":"replace","path":"name.givenName","value":"Gracie"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let text = page().await;
    assert!(text.contains("Gracie"), "{text}");

    // A write that bypasses every use case, as another process could make: the plan
    // still follows (the plan version is kept by the database, not by this server).
    {
        let conn = s.db.conn().unwrap();
        conn.execute(
            "UPDATE role_mappings SET role = 'member' WHERE group_name = 'Eng'",
            [],
        )
        .unwrap();
    }
    let text = page().await;
    assert!(text.contains("member, from group Eng"), "{text}");
    assert!(!text.contains("admin, from group Eng"), "{text}");

    // Test mode off applies nothing; Force sync applies what the directory says at that
    // moment, although the page last showed an older plan.
    let text = page().await;
    assert!(text.contains("Gracie"), "{text}");
    let r = s
        .patch(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations":[{"op":"replace","path":"name.givenName","value":"Grace"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let off = admin
        .post(&s, "/t/default/sync/test-mode", "test_mode=off")
        .await;
    assert_eq!(off.status, 303);
    assert!(roles_of_members(&s).is_empty());
    let r = admin.post(&s, "/t/default/sync/run", "").await;
    assert_eq!(r.status, 303);
    assert_eq!(roles_of_members(&s), ["member"]);
    let given: Option<String> = {
        let conn = s.db.conn().unwrap();
        conn.query_row("SELECT given_name FROM members", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(given.as_deref(), Some("Grace"));
    // And the page then has nothing left to do.
    let text = page().await;
    assert!(
        text.contains("Nothing: members match the directory."),
        "{text}"
    );
}
