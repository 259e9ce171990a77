//! Directory sync end to end: the real server driven the way Okta and Entra drive it, and
//! the `scimd` binary the way an admin does; asserting members, roles, audit rows and events.

mod common;

use std::process::Command;

use common::*;
use serde_json::{Value, json};

use scimd::db::{self, audit, events, members, settings};
use scimd::model::{Actor, Who};
use scimd::ops::{self, block_on};
use scimd::sync::{DeactivatePolicy, MemberStatus, Report};

const DEFAULT: i64 = 1;

fn members_of(s: &TestServer) -> Vec<members::MemberRow> {
    members::list(&s.db.conn().unwrap(), DEFAULT).unwrap()
}

fn member(s: &TestServer, email: &str) -> members::MemberRow {
    members::by_email(&s.db.conn().unwrap(), DEFAULT, email)
        .unwrap()
        .unwrap_or_else(|| panic!("no member {email}"))
}

fn event_types(s: &TestServer, after: i64) -> Vec<String> {
    events::after(&s.db.conn().unwrap(), DEFAULT, after, 10_000)
        .unwrap()
        .into_iter()
        .map(|e| e.kind.as_str().to_string())
        .collect()
}

fn last_cursor(s: &TestServer) -> i64 {
    events::after(&s.db.conn().unwrap(), DEFAULT, 0, 10_000)
        .unwrap()
        .last()
        .map_or(0, |e| e.cursor)
}

fn audit_of(s: &TestServer, target: &str) -> Vec<audit::Record> {
    audit::list(
        &s.db.conn().unwrap(),
        &audit::Filter {
            target: Some(target.to_string()),
            ..Default::default()
        },
    )
    .unwrap()
}

fn edit_settings(s: &TestServer, edit: impl FnOnce(&mut scimd::sync::Settings)) {
    let conn = s.db.conn().unwrap();
    let mut settings = settings::get(&conn, DEFAULT).unwrap();
    edit(&mut settings);
    settings::save(&conn, DEFAULT, &settings).unwrap();
}

fn okta_user(email: &str) -> Value {
    json!({"schemas":[USER_URN],"userName":email,"name":{"givenName":"Test","familyName":"User"},
        "emails":[{"primary":true,"value":email,"type":"work"}],"displayName":"Test User",
        "externalId":"00ujl29u0le5T6Aj10h7","groups":[],"password":"1mz050nq","active":true})
}

fn patch_op(ops: Value) -> Value {
    json!({"schemas":[PATCH_URN],"Operations":ops})
}

async fn create_group(s: &TestServer, name: &str) -> String {
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas":[GROUP_URN],"displayName":name,"members":[]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

/// idp-behaviour.md §1.3–1.7: Okta creates, pushes groups, deactivates and reactivates.
#[tokio::test]
async fn okta_provisioning_makes_members_with_roles_from_pushed_groups() {
    let s = TestServer::start().await;
    edit_settings(&s, |st| {
        st.mappings.push(scimd::sync::RoleMapping {
            group: "Eng-Admins".into(),
            role: "owner".parse().unwrap(),
        })
    });
    let r = s
        .post("/scim/v2/Users", &okta_user("test.user@okta.local"))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let uid = r.json["id"].as_str().unwrap().to_string();
    let m = member(&s, "test.user@okta.local");
    assert_eq!(
        (
            m.role.as_str(),
            m.status,
            m.user_id.as_deref(),
            m.profile.given_name.as_deref()
        ),
        (
            "viewer",
            MemberStatus::Active,
            Some(uid.as_str()),
            Some("Test")
        )
    );
    let id = m.id.clone();

    // Group Push: create, Okta's pathless replace carrying the id, then a membership PATCH.
    let admins = create_group(&s, "scimd-role-admin").await;
    let r = s
        .patch(
            &format!("/scim/v2/Groups/{admins}"),
            &patch_op(
                json!([{"op":"replace","value":{"id":admins,"displayName":"scimd-role-admin"}}]),
            ),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    let r = s
        .patch(
            &format!("/scim/v2/Groups/{admins}"),
            &patch_op(
                json!([{"op":"add","path":"members","value":[{"value":uid,"display":"test.user@okta.local"}]}]),
            ),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    let m = member(&s, "test.user@okta.local");
    assert_eq!(
        (m.role.as_str(), m.role_reason.as_str()),
        ("admin", "admin, from reserved group scimd-role-admin")
    );

    // A custom mapping to a higher role wins; leaving it falls back.
    let eng = create_group(&s, "Eng-Admins").await;
    s.patch(
        &format!("/scim/v2/Groups/{eng}"),
        &patch_op(json!([{"op":"add","path":"members","value":[{"value":uid}]}])),
    )
    .await;
    assert_eq!(
        member(&s, "test.user@okta.local").role_reason,
        "owner, from group Eng-Admins"
    );
    s.patch(
        &format!("/scim/v2/Groups/{eng}"),
        &patch_op(json!([{"op":"remove","path":format!("members[value eq \"{uid}\"]")}])),
    )
    .await;
    assert_eq!(member(&s, "test.user@okta.local").role.as_str(), "admin");

    // Deactivate and reactivate (§1.5): suspended, then the same member restored.
    let cursor = last_cursor(&s);
    for (active, status) in [
        (false, MemberStatus::Suspended),
        (true, MemberStatus::Active),
    ] {
        let r = s
            .patch(
                &format!("/scim/v2/Users/{uid}"),
                &patch_op(json!([{"op":"replace","value":{"active":active}}])),
            )
            .await;
        assert!(r.status.is_success(), "{}", r.text);
        let m = member(&s, "test.user@okta.local");
        assert_eq!((m.status, m.id.as_str()), (status, id.as_str()));
    }
    assert_eq!(
        event_types(&s, cursor),
        ["member.suspended", "member.reactivated"]
    );

    // Every member change is audited under the token that caused it, with the request id.
    let log = audit_of(&s, &format!("member/{id}"));
    let actions: Vec<&str> = log.iter().map(|r| r.entry.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "member.created",
            "member.role_changed",
            "member.role_changed",
            "member.role_changed",
            "member.suspended",
            "member.reactivated"
        ]
    );
    assert!(
        log.iter()
            .all(|r| r.entry.actor.starts_with("token:") && r.entry.request_id.is_some())
    );
    let all = event_types(&s, 0);
    assert!(
        !all.iter().any(|e| e == "group.updated"),
        "Okta's replace repeating the name changes nothing: {all:?}"
    );
    for t in [
        "group.created",
        "group.member_added",
        "group.member_removed",
    ] {
        assert!(all.iter().any(|e| e == t), "{t} in {all:?}");
    }
    s.stop().await;
}

/// idp-behaviour.md §2.5, §2.7: Entra's string "False", value-array member removal, DELETE.
#[tokio::test]
async fn entra_deprovisioning_follows_the_tenant_policies() {
    let s = TestServer::start().await;
    let uid = s.create_user("alice@contoso.com").await;
    let gid = create_group(&s, "scimd-role-member").await;
    let r = s
        .patch(
            &format!("/scim/v2/Groups/{gid}"),
            &patch_op(json!([{"op":"Add","path":"members","value":[{"$ref":null,"value":uid}]}])),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    assert_eq!(member(&s, "alice@contoso.com").role.as_str(), "member");
    // A rename re-evaluates the group's members.
    let cursor = last_cursor(&s);
    let r = s
        .patch(
            &format!("/scim/v2/Groups/{gid}"),
            &patch_op(json!([{"op":"Replace","path":"displayName","value":"scimd-role-admin"}])),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    assert_eq!(member(&s, "alice@contoso.com").role.as_str(), "admin");
    assert_eq!(
        event_types(&s, cursor),
        ["group.updated", "member.role_changed"]
    );
    // The rename says what the group was called.
    let renamed = scimd::db::events::after(&s.db.conn().unwrap(), 1, cursor, 1).unwrap();
    let renamed = scimd::ops::events::object(&renamed[0]);
    assert_eq!(renamed["data"]["display_name"], "scimd-role-admin");
    assert_eq!(
        renamed["previous"],
        json!({"display_name": "scimd-role-member"})
    );
    s.patch(
        &format!("/scim/v2/Groups/{gid}"),
        &patch_op(json!([{"op":"Remove","path":"members","value":[{"value":uid}]}])),
    )
    .await;
    assert_eq!(member(&s, "alice@contoso.com").role.as_str(), "viewer");

    // Disable: suspended by default.
    let disable = patch_op(json!([{"op":"Replace","path":"active","value":"False"}]));
    let r = s.patch(&format!("/scim/v2/Users/{uid}"), &disable).await;
    assert!(r.status.is_success(), "{}", r.text);
    assert_eq!(
        member(&s, "alice@contoso.com").status,
        MemberStatus::Suspended
    );
    // Hard delete: archived, with the link kept as history.
    assert_eq!(s.delete(&format!("/scim/v2/Users/{uid}")).await.status, 204);
    let m = member(&s, "alice@contoso.com");
    assert_eq!(m.status, MemberStatus::Archived);
    assert_eq!(m.user_id.as_deref(), Some(uid.as_str()));

    // With the delete policy, disabling removes the member and says so.
    edit_settings(&s, |st| st.on_deactivate = DeactivatePolicy::Delete);
    let bob = s.create_user("bob@contoso.com").await;
    let bob_member = member(&s, "bob@contoso.com").id;
    let cursor = last_cursor(&s);
    s.patch(&format!("/scim/v2/Users/{bob}"), &disable).await;
    assert!(
        members::by_email(&s.db.conn().unwrap(), DEFAULT, "bob@contoso.com")
            .unwrap()
            .is_none()
    );
    assert_eq!(event_types(&s, cursor), ["member.deleted"]);
    let log = audit_of(&s, &format!("member/{bob_member}"));
    assert_eq!(
        log.last().unwrap().entry.action,
        audit::Action::MemberDeleted
    );
    // The directory still answers the IdP with what it sent.
    let r = s.get(&format!("/scim/v2/Users/{bob}")).await;
    assert_eq!(r.json["active"], false);
    s.stop().await;
}

/// A member that existed before provisioning is linked, not duplicated, and not touched
/// at all when it is not managed.
#[tokio::test]
async fn pre_existing_members_are_linked_by_email_unless_unmanaged() {
    let s = TestServer::start().await;
    let csv = b"email,givenName,role,Provisioning Managed\nAda@Example.com,Augusta,admin,true\nbob@example.com,Robert,owner,false\n";
    ops::members::import(&s.db, &Actor::cli(), DEFAULT, csv.to_vec(), None)
        .await
        .unwrap()
        .unwrap();
    let ada = member(&s, "ada@example.com");
    let bob = member(&s, "bob@example.com");
    s.create_user("ada@example.com").await;
    s.create_user("bob@example.com").await;
    assert_eq!(members_of(&s).len(), 2, "linked, not duplicated");
    let linked = member(&s, "ada@example.com");
    assert_eq!(linked.id, ada.id);
    assert!(linked.user_id.is_some());
    assert_eq!(
        linked.profile.given_name.as_deref(),
        Some("G"),
        "the IdP wins"
    );
    assert_eq!(linked.role.as_str(), "viewer");
    assert_eq!(
        member(&s, "bob@example.com"),
        bob,
        "not managed: never touched"
    );
    let report = ops::reconcile::report(&s.db, DEFAULT).await.unwrap().0;
    assert_eq!(report.summary(), "skip 1");
    s.stop().await;
}

/// Test mode: the IdP gets normal answers, members do not move, and the report is exactly
/// what force sync applies once test mode is off.
#[tokio::test]
async fn test_mode_reports_what_force_sync_then_applies() {
    let s = TestServer::start().await;
    let kept = s.create_user("kept@example.com").await;
    s.create_user("leaver@example.com").await;
    edit_settings(&s, |st| st.test_mode = true);
    let before = members_of(&s);
    let cursor = last_cursor(&s);

    s.create_user("new@example.com").await;
    let admins = create_group(&s, "scimd-role-admin").await;
    let r = s
        .patch(
            &format!("/scim/v2/Groups/{admins}"),
            &patch_op(json!([{"op":"add","path":"members","value":[{"value":kept}]}])),
        )
        .await;
    assert!(r.status.is_success());
    let leaver = s
        .get("/scim/v2/Users?filter=userName%20eq%20%22leaver%40example.com%22")
        .await
        .json["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .patch(
            &format!("/scim/v2/Users/{leaver}"),
            &patch_op(json!([{"op":"replace","path":"active","value":false}])),
        )
        .await;
    assert_eq!(
        r.json["active"], false,
        "the directory still takes the write"
    );

    // Nothing a sync decides moved; Kept's `updated_at` did, for Kept joined a group and
    // apps read a member's groups live (test mode does not hold that back).
    let untimed = |mut all: Vec<members::MemberRow>| {
        all.iter_mut().for_each(|m| m.updated_at.clear());
        all
    };
    assert_eq!(
        untimed(members_of(&s)),
        untimed(before.clone()),
        "members untouched"
    );
    assert!(member(&s, "kept@example.com").updated_at > before[0].updated_at);
    let before = members_of(&s);
    assert!(
        event_types(&s, cursor)
            .iter()
            .all(|t| t.starts_with("group.")),
        "no member events in test mode"
    );
    let report: Report = ops::reconcile::report(&s.db, DEFAULT).await.unwrap().0;
    assert_eq!(report.summary(), "create 1, role_change 1, suspend 1");

    edit_settings(&s, |st| st.test_mode = false);
    assert_eq!(
        members_of(&s),
        before,
        "turning test mode off applies nothing"
    );
    let run = ops::reconcile::force(&s.db, &Actor::cli(), DEFAULT, false)
        .await
        .unwrap();
    assert!(!run.dry_run);
    assert_eq!(run.report, report, "change for change");
    assert_eq!(member(&s, "kept@example.com").role.as_str(), "admin");
    assert_eq!(
        member(&s, "leaver@example.com").status,
        MemberStatus::Suspended
    );
    assert_eq!(members_of(&s).len(), 3);
    let again = ops::reconcile::report(&s.db, DEFAULT).await.unwrap().0;
    assert_eq!(again.applicable(), 0, "a second sync changes nothing");
    s.stop().await;
}

// --- The binary -------------------------------------------------------------------------

fn scimd(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scimd"))
        .current_dir(dir)
        .env_remove("SCIMD_DB")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// A directory user pushed the way the SCIM layer writes one, then groups holding it.
fn push_user(db: &db::Db, email: &str, groups: &[&str]) {
    let idp = Actor::new(Who::ScimToken(1), None);
    let body =
        json!({"userName": email, "emails": [{"value": email, "primary": true}], "active": true});
    let user = block_on(ops::users::create(db, &idp, DEFAULT, body)).unwrap();
    for g in groups {
        let body = json!({"displayName": g, "members": [{"value": user.row.id}]});
        block_on(ops::groups::create(db, &idp, DEFAULT, body)).unwrap();
    }
}

#[test]
fn an_admin_imports_maps_tests_and_syncs_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    std::fs::write(
        path.join("bad.csv"),
        "email,role,Provisioning Managed\n,admin,\nada@x.io,boss,perhaps\n",
    )
    .unwrap();
    let (ok, _, err) = scimd(path, &["members", "import", "bad.csv"]);
    assert!(!ok);
    assert!(err.contains("bad.csv: line 2: email is required"), "{err}");
    assert!(err.contains("line 3: role boss is not one of"), "{err}");
    assert!(
        err.contains("Provisioning Managed must be true or false"),
        "{err}"
    );
    assert!(err.contains("nothing imported"), "{err}");
    let (_, out, _) = scimd(path, &["members", "export", "--format", "json"]);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!([]));

    std::fs::write(
        path.join("people.csv"),
        "email,userName,givenName,familyName,role,Provisioning Managed\n\
         ada@x.io,ada,Ada,Lovelace,member,true\n\
         ceo@x.io,,Grace,,owner,false\n\
         old@x.io,,,,,\n",
    )
    .unwrap();
    let (ok, out, err) = scimd(path, &["members", "import", "people.csv"]);
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        "imported 3 row(s): 3 created, 0 updated, 0 unchanged"
    );

    let (ok, out, err) = scimd(
        path,
        &["tenant", "set", "--test-mode", "on", "--absent", "archive"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("test mode:     on") && out.contains("absent:        archive"));
    let (ok, out, _) = scimd(path, &["roles", "map", "Engineering", "admin"]);
    assert!(
        ok && out.contains("\"Engineering\" get role admin"),
        "{out}"
    );
    let (ok, _, err) = scimd(path, &["roles", "map", "scimd-role-owner", "member"]);
    assert!(!ok && err.contains("reserved"), "{err}");

    // The IdP pushes Ada in Engineering while the tenant is in test mode.
    {
        let db = db::Db::open(&path.join("scimd.db"), db::Durability::Normal).unwrap();
        push_user(&db, "ada@x.io", &["Engineering"]);
    }
    let (ok, out, _) = scimd(path, &["sync", "--json"]);
    assert!(ok);
    let dry: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["testMode"], true);
    assert_eq!(
        dry["report"]["changes"]["role_change"][0]["reason"],
        "admin, from group Engineering"
    );
    let (_, out, _) = scimd(path, &["sync", "--dry-run"]);
    assert!(out.starts_with("test mode is on: nothing applied"), "{out}");
    assert!(
        out.contains("update 1, role_change 1, archive 1, skip 1"),
        "{out}"
    );
    let (_, csv, _) = scimd(path, &["sync", "--dry-run", "--csv"]);
    assert!(csv.starts_with("kind,memberId,subject,userId,field,before,after,reason\n"));
    assert!(csv.contains("role_change,"), "{csv}");

    let (ok, out, _) = scimd(path, &["tenant", "set", "--test-mode", "off"]);
    assert!(
        ok && out.contains("nothing was applied by turning it off"),
        "{out}"
    );
    let (ok, out, _) = scimd(path, &["sync", "--json"]);
    assert!(ok);
    let applied: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(applied["dryRun"], false);
    assert_eq!(
        applied["report"], dry["report"],
        "the report is what sync applies"
    );
    // What the run took inside its transaction, and what the caller waited for it to be
    // durable (the commit and its flush too).
    let (inside, durable) = (
        applied["durationMs"].as_u64().unwrap(),
        applied["durableMs"].as_u64().unwrap(),
    );
    assert!(
        durable >= inside,
        "{inside} ms inside, durable after {durable} ms"
    );

    let (_, out, _) = scimd(path, &["members", "export", "--format", "json"]);
    let list: Value = serde_json::from_str(&out).unwrap();
    let find = |email: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|m| m["email"] == email)
            .unwrap()
            .clone()
    };
    let ada = find("ada@x.io");
    assert_eq!(
        (
            &ada["role"],
            &ada["status"],
            &ada["managed"],
            &ada["source"]
        ),
        (
            &json!("admin"),
            &json!("active"),
            &json!(true),
            &json!("csv")
        )
    );
    assert_eq!(find("old@x.io")["status"], "archived");
    assert_eq!(find("ceo@x.io")["status"], "active", "not managed");
    let (_, csv, _) = scimd(path, &["members", "export"]);
    assert!(csv.contains("ceo@x.io,,Grace,,owner,false"), "{csv}");

    // Unmapping re-evaluates roles at once (test mode is off).
    let (ok, out, _) = scimd(path, &["roles", "unmap", "engineering"]);
    assert!(
        ok && out.contains("roles re-evaluated: role_change 1"),
        "{out}"
    );

    let (ok, out, _) = scimd(path, &["audit", "--limit", "100"]);
    assert!(ok);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let cli_actions: Vec<&str> = lines
        .iter()
        .filter(|l| l["actor"] == "cli")
        .map(|l| l["action"].as_str().unwrap())
        .collect();
    for action in [
        "members.imported",
        "tenant.settings_changed",
        "roles.mapped",
        "roles.unmapped",
        "sync.run",
        "member.archived",
    ] {
        assert!(cli_actions.contains(&action), "{action} in {cli_actions:?}");
    }
    let (_, out, _) = scimd(path, &["audit", "--action", "roles.unmapped"]);
    assert_eq!(out.lines().count(), 1, "{out}");
}

/// §9.19 for a person without an email (Entra sends none for a user without `mail`): the
/// IdP deletes them and creates them again, and they get their member back, linked to the
/// new directory user and active, with `member.reactivated`. Before, the new user was
/// skipped ("another member already has this userName") behind a 201.
#[tokio::test]
async fn a_user_without_email_deleted_and_created_again_gets_their_member_back() {
    let s = TestServer::start().await;
    let body = json!({"schemas":[USER_URN],"userName":"kiosk-07","externalId":"k7",
                      "name":{"givenName":"Kiosk","familyName":"Seven"}});
    let r = s.post("/scim/v2/Users", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let old = r.json["id"].as_str().unwrap().to_string();
    let before = members_of(&s);
    assert_eq!(before.len(), 1);
    assert_eq!(s.delete(&format!("/scim/v2/Users/{old}")).await.status, 204);
    assert_eq!(members_of(&s)[0].status, MemberStatus::Archived);
    let cursor = last_cursor(&s);

    let r = s.post("/scim/v2/Users", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let new = r.json["id"].as_str().unwrap().to_string();
    let after = members_of(&s);
    assert_eq!(after.len(), 1, "no second member");
    assert_eq!(after[0].id, before[0].id, "the same member");
    assert_eq!(after[0].status, MemberStatus::Active);
    assert_eq!(after[0].user_id.as_deref(), Some(new.as_str()));
    assert!(
        event_types(&s, cursor).contains(&"member.reactivated".to_string()),
        "{:?}",
        event_types(&s, cursor)
    );
}
