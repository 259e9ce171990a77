//! Safety for admins, as an IdP and an admin see it: the guard against mass deprovisioning
//! (a burst that trips it, approval, rejection, a burst under it, force sync), the deletion
//! grace period (suspend now, restore within it, delete after it with the clock moved) and
//! the retention of archived members and audit entries.

mod common;

use common::*;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use scimd::auth::chain;
use scimd::db::{self, audit, members::MemberRow};
use scimd::model::{Actor, DeactivatePolicy, DeletePolicy, MemberStatus};
use scimd::ops;
use scimd::ops::settings::{Edit, Update};

const PASSWORD: &str = "correct horse battery";

async fn set(s: &TestServer, update: Update) {
    ops::settings::edit(&s.db, &Actor::cli(), 1, Edit::Update(update))
        .await
        .unwrap();
}

/// `n` users provisioned by the IdP (each becomes an active member); their SCIM ids.
async fn provision(s: &TestServer, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(s.create_user(&format!("person{i}@example.com")).await);
    }
    ids
}

/// The IdP sets `active` on a user, as Okta and Entra do; the IdP always sees a 200.
async fn set_active(s: &TestServer, id: &str, active: bool) {
    let r = s
        .patch(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "active", "value": active}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["active"], active,
        "the IdP's write is stored as sent"
    );
}

fn member_of(s: &TestServer, user_id: &str) -> Option<MemberRow> {
    db::members::by_user_id(&s.db.conn().unwrap(), Some(1), user_id).unwrap()
}

fn status_of(s: &TestServer, user_id: &str) -> MemberStatus {
    member_of(s, user_id).expect("a member").status
}

fn audit_actions(s: &TestServer) -> Vec<String> {
    audit::list(&s.db.conn().unwrap(), &audit::Filter::default())
        .unwrap()
        .into_iter()
        .map(|r| r.entry.action.as_str().to_string())
        .collect()
}

fn events_of(s: &TestServer, kind: &str) -> Vec<Value> {
    let conn = s.db.conn().unwrap();
    let mut stmt = conn
        .prepare("SELECT payload FROM events WHERE type = ?1 ORDER BY seq")
        .unwrap();
    stmt.query_map([kind], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|p| serde_json::from_str(&p.unwrap()).unwrap())
        .collect()
}

/// 20 members; the guard allows 5 deprovisionings an hour (10 % of 20 is 2, the minimum 5).
async fn guarded_tenant() -> (TestServer, Admin, Vec<String>) {
    let s = TestServer::start().await;
    set(
        &s,
        Update {
            guard_percent: Some(10),
            guard_minimum: Some(5),
            ..Update::default()
        },
    )
    .await;
    s.create_admin("alice", PASSWORD);
    let admin = Admin::login(&s, "alice", PASSWORD).await;
    let ids = provision(&s, 20).await;
    (s, admin, ids)
}

/// Maps group "Admins" to the admin role and puts the user with SCIM id `who` in it: the
/// group's id.
async fn admin_through_a_group(s: &TestServer, who: &str) -> String {
    ops::settings::edit(
        &s.db,
        &Actor::cli(),
        1,
        Edit::Map {
            group: "Admins".into(),
            role: "admin".parse().unwrap(),
        },
    )
    .await
    .unwrap();
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "Admins", "members": [{"value": who}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

/// Test mode off, then a force sync as `scimd sync` runs it: the run.
async fn test_mode_off_and_force_sync(s: &TestServer) -> ops::reconcile::SyncRun {
    set(
        s,
        Update {
            test_mode: Some(false),
            ..Update::default()
        },
    )
    .await;
    ops::reconcile::force(&s.db, &Actor::cli(), 1, false)
        .await
        .unwrap()
}

/// Asserts apps were told member `id` is a viewer now (`member.role_changed`).
fn assert_told_viewer(s: &TestServer, id: &str) {
    let changed = events_of(s, "member.role_changed");
    assert!(
        changed
            .iter()
            .any(|e| e["member"]["id"] == id && e["member"]["role"] == "viewer"),
        "{changed:#?}"
    );
}

fn hold_id(page: &str) -> String {
    let marker = "/guard/";
    let start = page.find(marker).expect("a decision form") + marker.len();
    page[start..].split('/').next().unwrap().to_string()
}

/// The message a decision's redirect carries to the page it sends the admin back to.
fn flash(r: &Resp) -> String {
    let set = r.set_cookie("scimd_flash").expect("a flash message");
    let value = set.split(';').next().unwrap().split_once('=').unwrap().1;
    let query = format!("m={value}");
    form_urlencoded::parse(query.as_bytes())
        .next()
        .unwrap()
        .1
        .into_owned()
}

/// The approve form's body: what the page showed as held.
fn approval(page: &str) -> String {
    let marker = r#"name="held" value=""#;
    let start = page.find(marker).expect("the approve form") + marker.len();
    format!(
        "held={}",
        &page[start..start + page[start..].find('"').unwrap()]
    )
}

#[tokio::test]
async fn a_burst_under_the_threshold_applies_and_one_past_it_is_held_then_rejected_then_released() {
    let (s, admin, ids) = guarded_tenant().await;
    // Five in the hour: under the threshold, applied as usual.
    for id in &ids[..5] {
        set_active(&s, id, false).await;
        assert_eq!(status_of(&s, id), MemberStatus::Suspended);
    }
    let dashboard = admin.get(&s, "/t/default").await;
    assert!(!dashboard.text.contains("Mass deprovisioning held"));

    // The sixth trips the guard: the IdP's write is stored, the member is left alone.
    for id in &ids[5..8] {
        set_active(&s, id, false).await;
        assert_eq!(status_of(&s, id), MemberStatus::Active, "held");
    }
    let user = s.get(&format!("/scim/v2/Users/{}", ids[6])).await;
    assert_eq!(
        user.json["active"], false,
        "the IdP reads back what it wrote"
    );
    assert!(audit_actions(&s).contains(&"deprovisioning.held".to_string()));
    let held = events_of(&s, "deprovisioning.held");
    assert_eq!(held.len(), 1, "one event when the guard trips");
    assert_eq!(held[0]["hold"]["threshold"], 5);

    // Every page says so, in red, and the guard page lists the held changes.
    let dashboard = admin.get(&s, "/t/default").await;
    assert!(
        dashboard.text.contains("Mass deprovisioning held")
            && dashboard.text.contains("3 suspensions"),
        "{}",
        dashboard.text
    );
    let page = admin.get(&s, "/t/default/guard").await;
    assert!(
        page.text.contains("3 deprovisionings held"),
        "{}",
        page.text
    );
    for i in 5..8 {
        assert!(page.text.contains(&format!("person{i}@example.com")));
    }
    // The member's own page says its suspension is held, not just "active".
    let m = member_of(&s, &ids[6]).unwrap();
    let member = admin.get(&s, &format!("/t/default/people/{}", m.id)).await;
    assert!(
        member.text.contains("suspend held by the guard"),
        "{}",
        member.text
    );

    // Rejected: members stay as they are, and later deprovisionings are held too.
    let hold = hold_id(&page.text);
    let r = admin
        .post(&s, &format!("/t/default/guard/{hold}/reject"), "")
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert!(audit_actions(&s).contains(&"deprovisioning.rejected".to_string()));
    let dashboard = admin.get(&s, "/t/default").await;
    assert!(
        dashboard.text.contains("Deprovisionings kept back")
            && !dashboard.text.contains("until you decide"),
        "{}",
        dashboard.text
    );
    // The IdP writing a held person again is no news; a person deactivated now is held
    // too, and puts the hold before the admin again.
    set_active(&s, &ids[7], false).await;
    let page = admin.get(&s, "/t/default/guard").await;
    assert!(page.text.contains("Rejected"), "{}", page.text);
    set_active(&s, &ids[8], false).await;
    assert_eq!(status_of(&s, &ids[8]), MemberStatus::Active);
    let page = admin.get(&s, "/t/default/guard").await;
    assert!(
        page.text.contains("4 deprovisionings held"),
        "{}",
        page.text
    );
    assert!(!page.text.contains("Rejected"), "{}", page.text);
    let dashboard = admin.get(&s, "/t/default").await;
    assert!(dashboard.text.contains("Mass deprovisioning held"));
    let held = events_of(&s, "deprovisioning.held");
    assert_eq!(held.len(), 2);
    assert_eq!(held[1]["hold"]["decided_by"], Value::Null, "{}", held[1]);

    // The directory changes back: each person the IdP reactivates is let go, and the hold
    // ends once nobody is left.
    for id in &ids[5..9] {
        set_active(&s, id, true).await;
        assert_eq!(status_of(&s, id), MemberStatus::Active);
    }
    let page = admin.get(&s, "/t/default/guard").await;
    assert!(page.text.contains("Nothing is held"), "{}", page.text);
    assert!(audit_actions(&s).contains(&"deprovisioning.released".to_string()));
    let resolved = events_of(&s, "deprovisioning.resolved");
    assert_eq!(resolved.last().unwrap()["hold"]["state"], "cleared");
    let dashboard = admin.get(&s, "/t/default").await;
    assert!(!dashboard.text.contains("Mass deprovisioning held"));
}

/// Switching the guard off holds nothing more: a person deactivated afterwards loses
/// access at once, while what the open hold holds still waits for an admin.
#[tokio::test]
async fn switching_the_guard_off_holds_nothing_more() {
    let (s, admin, ids) = guarded_tenant().await;
    for id in &ids[..8] {
        set_active(&s, id, false).await;
    }
    assert_eq!(status_of(&s, &ids[7]), MemberStatus::Active, "held");
    set(
        &s,
        Update {
            guard_enabled: Some(false),
            ..Update::default()
        },
    )
    .await;
    let before = events_of(&s, "member.suspended").len();
    set_active(&s, &ids[8], false).await;
    assert_eq!(status_of(&s, &ids[8]), MemberStatus::Suspended);
    assert_eq!(events_of(&s, "member.suspended").len(), before + 1);
    // A held person the IdP writes again stays held for the admin's decision.
    set_active(&s, &ids[7], false).await;
    assert_eq!(status_of(&s, &ids[7]), MemberStatus::Active);
    let page = admin.get(&s, "/t/default/guard").await;
    assert!(
        page.text.contains("3 deprovisionings held"),
        "{}",
        page.text
    );
}

#[tokio::test]
async fn approving_applies_every_held_deprovisioning_as_the_directory_now_says() {
    let (s, admin, ids) = guarded_tenant().await;
    for id in &ids[..9] {
        set_active(&s, id, false).await;
    }
    // A deletion by the IdP is held as well (archive policy by default).
    let r = s.delete(&format!("/scim/v2/Users/{}", ids[9])).await;
    assert_eq!(r.status, 204);
    assert_eq!(status_of(&s, &ids[9]), MemberStatus::Active);
    let page = admin.get(&s, "/t/default/guard").await;
    assert!(
        page.text.contains("5 deprovisionings held"),
        "{}",
        page.text
    );

    let hold = hold_id(&page.text);
    let shown = approval(&page.text);
    // The IdP holds one more before the admin clicks: the confirmed five were not what is
    // held now, so nothing is applied, and the page says why.
    set_active(&s, &ids[10], false).await;
    let r = admin
        .post(&s, &format!("/t/default/guard/{hold}/approve"), &shown)
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let message = flash(&r);
    assert!(
        message.starts_with("Nothing was applied") && message.contains("(6 held now)"),
        "{message}"
    );
    assert_eq!(status_of(&s, &ids[5]), MemberStatus::Active);
    // The IdP changes back; what the page shows again is what the approval applies.
    set_active(&s, &ids[10], true).await;
    let page = admin.get(&s, "/t/default/guard").await;
    assert_eq!(approval(&page.text), shown, "the same five held");
    let r = admin
        .post(&s, &format!("/t/default/guard/{hold}/approve"), &shown)
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    for id in &ids[5..9] {
        assert_eq!(status_of(&s, id), MemberStatus::Suspended);
    }
    assert_eq!(status_of(&s, &ids[9]), MemberStatus::Archived);
    assert_eq!(events_of(&s, "member.suspended").len(), 9);
    let approved = audit::list(
        &s.db.conn().unwrap(),
        &audit::Filter {
            action: Some(audit::Action::DeprovisioningApproved),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(approved[0].entry.actor, "admin:alice");
    assert_eq!(approved[0].entry.detail.as_ref().unwrap()["applied"], 5);
    // Apps hear the decision was an admin's, not the IdP's.
    let resolved = events_of(&s, "deprovisioning.resolved");
    assert_eq!(resolved.last().unwrap()["context"]["via"], "admin");
    let page = admin.get(&s, "/t/default/guard").await;
    assert!(page.text.contains("Nothing is held"));
    // A decided hold cannot be decided again: the page says so.
    let r = admin
        .post(&s, &format!("/t/default/guard/{hold}/approve"), &shown)
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let message = flash(&r);
    assert!(
        message.starts_with("nothing is held: the hold was decided"),
        "{message}"
    );
    assert_eq!(events_of(&s, "member.suspended").len(), 9);
}

#[tokio::test]
async fn force_sync_after_test_mode_respects_the_guard_and_the_report_warns_first() {
    let (s, admin, ids) = guarded_tenant().await;
    set(
        &s,
        Update {
            test_mode: Some(true),
            ..Update::default()
        },
    )
    .await;
    for id in &ids[..8] {
        set_active(&s, id, false).await;
    }
    let page = admin.get(&s, "/t/default/sync").await;
    assert!(page.text.contains("guard-forecast"), "{}", page.text);
    let run = test_mode_off_and_force_sync(&s).await;
    assert_eq!(run.held, 8);
    for id in &ids[..8] {
        assert_eq!(status_of(&s, id), MemberStatus::Active);
    }
    let page = admin.get(&s, "/t/default/guard").await;
    assert!(
        page.text.contains("8 deprovisionings held"),
        "{}",
        page.text
    );
    // The run's history and the dashboard say what was held, not that all was applied.
    let page = admin.get(&s, "/t/default/sync").await;
    let row = page
        .text
        .split(&format!("id=\"run-{}\"", run.id))
        .nth(1)
        .unwrap();
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("8 held, nothing applied"), "{row}");
    let page = admin.get(&s, "/t/default").await;
    assert!(
        page.text.contains("8 held by the guard, nothing applied"),
        "{}",
        page.text
    );
    // Force sync from the page: it says nothing was changed, not that members were.
    let r = admin.post(&s, "/t/default/sync/run", "").await;
    assert_eq!(r.status, 303, "{}", r.text);
    let r = admin.get(&s, r.header("location").unwrap()).await;
    assert!(
        r.text.contains("Sync held by the guard")
            && r.text.contains("No member was changed")
            && !r.text.contains("Members were changed"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn the_grace_period_suspends_restores_and_deletes_only_after_it_ends() {
    let s = TestServer::start().await;
    set(
        &s,
        Update {
            on_deactivate: Some(DeactivatePolicy::Delete),
            on_delete: Some(DeletePolicy::Delete),
            delete_grace_days: Some(Some(7)),
            ..Update::default()
        },
    )
    .await;
    s.create_admin("alice", PASSWORD);
    let admin = Admin::login(&s, "alice", PASSWORD).await;
    let ids = provision(&s, 3).await;
    let original = member_of(&s, &ids[0]).unwrap();

    // Deactivated: suspended now, with the day it will be deleted.
    set_active(&s, &ids[0], false).await;
    let m = member_of(&s, &ids[0]).unwrap();
    assert_eq!(m.status, MemberStatus::Suspended);
    let due = m.delete_after.clone().expect("a scheduled deletion");
    let in_a_week = OffsetDateTime::now_utc() + Duration::days(7);
    assert!(
        due.starts_with(&scimd::scim::datetime::format(in_a_week)[..10]),
        "{due}"
    );
    let suspended = events_of(&s, "member.suspended");
    assert_eq!(suspended[0]["member"]["delete_after"], json!(due));
    assert_eq!(suspended[0]["context"]["deleteAfter"], json!(due));

    // Reactivated by the IdP within the period: the same member, with everything it had.
    set_active(&s, &ids[0], true).await;
    let back = member_of(&s, &ids[0]).unwrap();
    assert_eq!(back.status, MemberStatus::Active);
    assert_eq!(
        (back.id.clone(), back.role.clone()),
        (original.id.clone(), original.role.clone())
    );
    assert!(back.delete_after.is_none());

    // Restored by an admin within the period.
    set_active(&s, &ids[1], false).await;
    let m1 = member_of(&s, &ids[1]).unwrap();
    let page = admin.get(&s, &format!("/t/default/people/{}", m1.id)).await;
    assert!(page.text.contains("restore-member"), "{}", page.text);
    let r = admin
        .post(&s, &format!("/t/default/people/{}/restore", m1.id), "")
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(status_of(&s, &ids[1]), MemberStatus::Active);
    assert!(audit_actions(&s).contains(&"member.reactivated".to_string()));

    // Deleted by the IdP: suspended too; the clock moves past the period and it is deleted.
    let r = s.delete(&format!("/scim/v2/Users/{}", ids[2])).await;
    assert_eq!(r.status, 204);
    let m2 = member_of(&s, &ids[2]).unwrap();
    assert_eq!(m2.status, MemberStatus::Suspended);
    set_active(&s, &ids[0], false).await;
    let now = OffsetDateTime::now_utc();
    let done = ops::retention::daily(&s.db, now + Duration::days(6))
        .await
        .unwrap();
    assert_eq!(done.deleted_after_grace, 0);
    assert!(member_of(&s, &ids[0]).is_some());
    let done = ops::retention::daily(&s.db, now + Duration::days(8))
        .await
        .unwrap();
    assert_eq!(done.deleted_after_grace, 2);
    assert!(member_of(&s, &ids[0]).is_none() && member_of(&s, &ids[2]).is_none());
    assert!(
        member_of(&s, &ids[1]).is_some(),
        "the restored member stays"
    );
    let deleted = events_of(&s, "member.deleted");
    assert_eq!(deleted.len(), 2);
    assert_eq!(deleted[0]["context"]["via"], "retention");
    let entries = audit::list(&s.db.conn().unwrap(), &audit::Filter::default()).unwrap();
    let retention = entries
        .iter()
        .find(|r| r.entry.action == audit::Action::RetentionApplied)
        .expect("the job is audited");
    assert_eq!(retention.entry.actor, "system");
    assert_eq!(
        retention.entry.detail.as_ref().unwrap()["deletedAfterGrace"],
        2
    );
}

#[tokio::test]
async fn archived_members_and_old_audit_entries_go_after_their_retention_and_the_chain_still_verifies()
 {
    let s = TestServer::start().await;
    set(
        &s,
        Update {
            archived_retention_days: Some(Some(30)),
            audit_retention_days: Some(Some(90)),
            ..Update::default()
        },
    )
    .await;
    let ids = provision(&s, 2).await;
    let r = s.delete(&format!("/scim/v2/Users/{}", ids[0])).await;
    assert_eq!(r.status, 204);
    assert_eq!(status_of(&s, &ids[0]), MemberStatus::Archived);
    let before = audit_actions(&s).len();
    assert!(before > 4);

    let now = OffsetDateTime::now_utc();
    let done = ops::retention::daily(&s.db, now + Duration::days(31))
        .await
        .unwrap();
    assert_eq!((done.archived_purged, done.audit_purged), (1, 0));
    assert!(member_of(&s, &ids[0]).is_none());
    assert_eq!(status_of(&s, &ids[1]), MemberStatus::Active);

    let done = ops::retention::daily(&s.db, now + Duration::days(91))
        .await
        .unwrap();
    assert!(done.audit_purged >= before, "{done:?}");
    let left = audit::list(&s.db.conn().unwrap(), &audit::Filter::default()).unwrap();
    assert!(
        left.iter()
            .all(|r| r.entry.action == audit::Action::RetentionApplied
                || r.entry.tenant_id.is_none())
    );
    // What is left still verifies, from the purged entries' anchor.
    let mut v = chain::Verifier::whole_log();
    let outcome = audit::verify(&s.db.conn().unwrap(), None, &mut v).unwrap();
    assert_eq!(outcome, Ok(()));
    // And entries are still refused any other delete.
    let err =
        s.db.conn()
            .unwrap()
            .execute("DELETE FROM audit_log", [])
            .unwrap_err();
    assert!(err.to_string().contains("append-only"));
}

/// Under the `delete` policy, a deletion the guard holds keeps the person, but not what
/// the IdP took away meanwhile: removed from the group that made them an admin, they are
/// a viewer at once (apps hear `member.role_changed`), with the email the IdP now gives,
/// and stay so when the admin rejects the deletion.
#[tokio::test]
async fn a_held_deletion_still_takes_away_the_role_the_idp_removed() {
    let (s, admin, ids) = guarded_tenant().await;
    set(
        &s,
        Update {
            on_deactivate: Some(DeactivatePolicy::Delete),
            ..Update::default()
        },
    )
    .await;
    let held = &ids[5];
    let group = admin_through_a_group(&s, held).await;
    assert_eq!(member_of(&s, held).unwrap().role.as_str(), "admin");

    // Five deletions go through; the sixth is held.
    for id in &ids[..6] {
        set_active(&s, id, false).await;
    }
    assert!(member_of(&s, &ids[0]).is_none(), "deleted");
    assert_eq!(status_of(&s, held), MemberStatus::Active, "held");

    // The IdP takes the person out of Admins, then changes their email.
    let r = s
        .patch(
            &format!("/scim/v2/Groups/{group}"),
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "remove",
                                    "path": format!("members[value eq \"{held}\"]")}]}),
        )
        .await;
    assert!(r.status == 204 || r.status == 200, "{}", r.text);
    let r = s
        .patch(
            &format!("/scim/v2/Users/{held}"),
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "emails[type eq \"work\"].value",
                                    "value": "person5.new@example.com"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let member = member_of(&s, held).unwrap();
    assert_eq!(
        (member.role.as_str(), member.status),
        ("viewer", MemberStatus::Active),
        "the role goes, the deletion waits"
    );
    assert_eq!(
        member.profile.email.as_deref(),
        Some("person5.new@example.com")
    );
    assert_told_viewer(&s, &member.id);

    // Rejecting the deletion keeps the person, as the IdP now has them.
    let page = admin.get(&s, "/t/default/guard").await;
    let hold = hold_id(&page.text);
    let r = admin
        .post(&s, &format!("/t/default/guard/{hold}/reject"), "")
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let member = member_of(&s, held).unwrap();
    assert_eq!(
        (member.role.as_str(), member.profile.email.as_deref()),
        ("viewer", Some("person5.new@example.com"))
    );
}

/// The IdP's DELETE takes the person out of their groups (apps hear
/// `group.member_removed`): when the guard holds the archive, the person stays, but not with
/// the role those groups gave (found by a black-box probe: they kept `admin` while held).
#[tokio::test]
async fn a_held_idp_deletion_still_takes_away_the_role_of_its_groups() {
    let (s, admin, ids) = guarded_tenant().await;
    let held = &ids[5];
    admin_through_a_group(&s, held).await;
    assert_eq!(member_of(&s, held).unwrap().role.as_str(), "admin");

    // Five deletions go through; the sixth is held.
    for id in &ids[..6] {
        let r = s.delete(&format!("/scim/v2/Users/{id}")).await;
        assert_eq!(r.status, 204, "{}", r.text);
    }
    assert_eq!(status_of(&s, &ids[0]), MemberStatus::Archived);
    let member = member_of(&s, held).unwrap();
    assert_eq!(
        (member.role.as_str(), member.status),
        ("viewer", MemberStatus::Active),
        "the role goes, the archive waits"
    );
    assert_told_viewer(&s, &member.id);

    // Approving the hold archives them, a viewer still.
    let page = admin.get(&s, "/t/default/guard").await;
    let hold = hold_id(&page.text);
    let r = admin
        .post(
            &s,
            &format!("/t/default/guard/{hold}/approve"),
            &approval(&page.text),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let member = member_of(&s, held).unwrap();
    assert_eq!(
        (member.role.as_str(), member.status),
        ("viewer", MemberStatus::Archived)
    );
}

/// While a hold is open, the guard holds every deprovisioning, whatever the threshold says:
/// the test-mode report warns of that too, before Force sync holds them (found by a
/// black-box probe: the report said "3 changes to apply", the sync applied none).
#[tokio::test]
async fn the_report_warns_that_an_open_hold_holds_every_deprovisioning() {
    let (s, admin, ids) = guarded_tenant().await;
    for id in &ids[..6] {
        set_active(&s, id, false).await;
    }
    assert_eq!(status_of(&s, &ids[5]), MemberStatus::Active, "held");
    // A higher threshold, and the IdP deactivates one more while test mode is on.
    set(
        &s,
        Update {
            guard_minimum: Some(50),
            test_mode: Some(true),
            ..Update::default()
        },
    )
    .await;
    set_active(&s, &ids[7], false).await;
    let page = admin.get(&s, "/t/default/sync").await;
    assert!(page.text.contains("2 changes to apply"), "{}", page.text);
    assert!(page.text.contains("A hold is open"), "{}", page.text);

    // Force sync holds both, as the report said.
    let run = test_mode_off_and_force_sync(&s).await;
    assert_eq!((run.held, run.applied()), (2, 0));
}
