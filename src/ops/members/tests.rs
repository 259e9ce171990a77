//! Imports, their previews and exports on a fresh SQLite file.

use super::*;
use crate::db::{Durability, tenants};
use crate::ops::block_on;

struct Fixture {
    db: Db,
    tenant: i64,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("t.db"), Durability::Normal).unwrap();
    let tenant = tenants::by_slug(&db.conn().unwrap(), "default").unwrap().id;
    Fixture {
        db,
        tenant,
        _dir: dir,
    }
}

/// How many members, audit entries and events the database holds.
fn traces(f: &Fixture) -> (i64, i64, i64) {
    f.db.conn()
        .unwrap()
        .query_row(
            "SELECT (SELECT count(*) FROM members), (SELECT count(*) FROM audit_log),
                (SELECT count(*) FROM events)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
}

#[test]
fn exports_are_what_the_whole_list_serialises_to() {
    let f = fixture();
    assert_eq!(
        block_on(export(&f.db, f.tenant, ExportFormat::Json)).unwrap(),
        "[]\n"
    );
    assert_eq!(
        block_on(export(&f.db, f.tenant, ExportFormat::Csv)).unwrap(),
        "email,userName,givenName,familyName,role,Provisioning Managed,status\n"
    );
    let csv = (0..2500)
        .map(|i| format!("p{i}@x.io,p{i},P,{i},{}\n", ["admin", "member", ""][i % 3]))
        .collect::<String>();
    let csv = format!("email,userName,givenName,familyName,role\n{csv}");
    block_on(import(
        &f.db,
        &Actor::cli(),
        f.tenant,
        csv.into_bytes(),
        None,
    ))
    .unwrap()
    .unwrap();
    let all = members::list(&f.db.conn().unwrap(), f.tenant).unwrap();
    assert_eq!(all.len(), 2500);
    let json = block_on(export(&f.db, f.tenant, ExportFormat::Json)).unwrap();
    assert_eq!(json, serde_json::to_string_pretty(&all).unwrap() + "\n");
    let csv = block_on(export(&f.db, f.tenant, ExportFormat::Csv)).unwrap();
    assert_eq!(
        csv,
        member_csv::export(
            all.iter()
                .map(|m| (&m.profile, &m.role, m.managed, m.status))
        )
    );
}

/// A preview says what each row would do and what the import would meet, and leaves
/// no trace: no member, no audit entry, no event.
#[test]
fn an_import_preview_changes_nothing() {
    let f = fixture();
    let actor = Actor::cli();
    block_on(import(
        &f.db,
        &actor,
        f.tenant,
        b"email,userName,role\nada@x.io,ada,admin\n".to_vec(),
        None,
    ))
    .unwrap()
    .unwrap();
    let traces = || traces(&f);
    let before = traces();

    let csv =
        b"email,userName,role,Provisioning Managed\nADA@x.io,ada,owner,false\nbob@x.io,bob,,\n";
    let p = block_on(preview_import(&f.db, &actor, f.tenant, csv.to_vec()))
        .unwrap()
        .unwrap();
    assert_eq!(p.error, None);
    assert_eq!((p.summary.created, p.summary.updated), (1, 1));
    match &p.rows[0].1 {
        RowOutcome::Update { changes, .. } => assert_eq!(
            changes.iter().map(Planned::name).collect::<Vec<_>>(),
            ["managed", "role"]
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(p.rows[1].1, RowOutcome::Create));
    assert_eq!(traces(), before);

    // A userName another member holds: only the database sees it; the preview says so.
    let csv = b"email,userName\ncy@x.io,ADA\n";
    match block_on(preview_import(&f.db, &actor, f.tenant, csv.to_vec())).unwrap() {
        Err(ImportProblem::Conflict(m)) => assert_eq!(
            m,
            "line 2: another member already has this userName \"ADA\""
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(traces(), before);
}

/// An import whose later row meets another member's userName imports nothing, the rows
/// before it included: no member, audit entry or event stays, and the next write's event
/// takes the next number (found by a black-box probe: the earlier rows' events stayed,
/// the tenant's event counter did not move, and every later event failed).
#[test]
fn an_import_that_meets_a_conflict_leaves_nothing_of_its_earlier_rows() {
    let f = fixture();
    let actor = Actor::cli();
    let imported = |csv: &[u8]| block_on(import(&f.db, &actor, f.tenant, csv.to_vec(), None));
    imported(b"email,userName\nada@x.io,ua\n").unwrap().unwrap();
    let traces = || traces(&f);
    let before = traces();
    match imported(b"email,userName\nbob@x.io,\ncy@x.io,UA\n").unwrap() {
        Err(ImportProblem::Conflict(m)) => {
            assert_eq!(m, "line 3: another member already has this userName \"UA\"")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(traces(), before, "nothing imported");
    imported(b"email\ndee@x.io\n").unwrap().unwrap();
    assert_eq!(traces().2, before.2 + 1, "the next event is written");
}

/// Every entry and event an import writes carries its actor and request id.
#[test]
fn an_import_is_recorded_with_its_request() {
    let f = fixture();
    let actor = Actor::admin("ada", "req-42");
    let csv = b"email,userName\nbob@x.io,bob\ncy@x.io,cy\n".to_vec();
    block_on(import(&f.db, &actor, f.tenant, csv, None))
        .unwrap()
        .unwrap();
    let conn = f.db.conn().unwrap();
    let entries = audit::list(&conn, &audit::Filter::default()).unwrap();
    assert_eq!(entries.len(), 3);
    assert!(
        entries.iter().all(
            |r| r.entry.actor == "admin:ada" && r.entry.request_id.as_deref() == Some("req-42")
        )
    );
    let events = events::after(&conn, f.tenant, 0, 10).unwrap();
    assert_eq!(events.len(), 2);
    assert!(
        events
            .iter()
            .all(|e| e.actor.as_deref() == Some("admin:ada")
                && e.request_id.as_deref() == Some("req-42"))
    );
    // One journal for the import: its events are numbered without a gap, its entries
    // chained, and a write after it continues both.
    let csv = b"email,userName\ndee@x.io,dee\n".to_vec();
    block_on(import(&f.db, &actor, f.tenant, csv, None))
        .unwrap()
        .unwrap();
    let seqs: Vec<i64> = events::after(&conn, f.tenant, 0, 10)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    let mut verifier = crate::auth::chain::Verifier::default();
    assert_eq!(audit::verify(&conn, None, &mut verifier).unwrap(), Ok(()));
}

/// The member object events carry is serialised from borrowed fields; it is byte for byte
/// the JSON tree the read API builds from it, and the object `json!` built before.
#[test]
fn a_member_object_is_the_json_apps_always_read() {
    let row = MemberRow {
        pk: 1,
        tenant_id: 1,
        id: "m1".into(),
        profile: Profile {
            email: Some("ada@x.io".into()),
            user_name: None,
            given_name: Some("Ada \"the first\"".into()),
            family_name: Some("Lovelace".into()),
            display_name: None,
        },
        role: "admin".parse().unwrap(),
        role_reason: "from group Eng".into(),
        status: MemberStatus::Suspended,
        managed: true,
        source: MemberSource::Scim,
        user_id: Some("u1".into()),
        user_exists: true,
        created_at: "2026-12-04T10:00:00.000000Z".into(),
        updated_at: "2026-12-04T11:00:00.000000Z".into(),
        delete_after: Some("2026-12-11T11:00:00.000000Z".into()),
    };
    let linked = LinkedUser {
        user_id: Some("u1".into()),
        external_id: Some(json!("ext-1")),
        attributes: json!({"title": "Lead", "manager": "u0"})
            .as_object()
            .unwrap()
            .clone(),
        groups: vec![LinkedGroup {
            id: "g1".into(),
            display_name: "Eng".into(),
        }],
    };
    let before = json!({
        "object": "member",
        "id": row.id,
        "email": row.profile.email,
        "user_name": row.profile.user_name,
        "given_name": row.profile.given_name,
        "family_name": row.profile.family_name,
        "display_name": row.profile.display_name,
        "role": row.role,
        "role_reason": row.role_reason,
        "status": row.status,
        "managed": row.managed,
        "source": row.source,
        "directory_user_id": row.user_id,
        "external_id": "ext-1",
        "attributes": {"title": "Lead", "manager": "u0"},
        "groups": [{"id": "g1", "display_name": "Eng"}],
        "delete_after": row.delete_after,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    });
    let typed = serde_json::to_string(&linked.object(&row)).unwrap();
    assert_eq!(typed, before.to_string());
    assert_eq!(typed, linked.api_object(&row).to_string());
}
