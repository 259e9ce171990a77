//! Member lists on a database with many members: pages come from indexes, walk every
//! member once, and exports match `scimd members export`.

use rusqlite::Connection;

use super::*;
use crate::db::paging::{Direction, plan_of};
use crate::db::{scratch_db as fresh_db, tenants};

const MANY: i64 = 20_000;

/// `MANY` members in tenant 1 (and a few in a second tenant), statuses, roles and
/// `managed` spread over them, then ANALYZE as production's `PRAGMA optimize` would.
fn many_members() -> Connection {
    let conn = fresh_db();
    tenants::create(&conn, "other", "Other").unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    {
        let mut stmt = tx
            .prepare(
                "INSERT INTO members (tenant_id, id, email, email_fold, user_name, user_name_fold,
                    given_name, family_name, role, role_reason, status, managed, source,
                    created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?3, ?4, ?4, ?5, 'Lovelace', ?6, 'x', ?7, ?8, 'csv', 't', 't')",
            )
            .unwrap();
        let roles = ["owner", "admin", "member", "viewer"];
        let statuses = ["active", "active", "active", "suspended", "archived"];
        for i in 0..MANY {
            let tenant = if i % 1000 == 999 { 2 } else { 1 };
            stmt.execute(rusqlite::params![
                tenant,
                format!("m{i}"),
                format!("person{i}@example.com"),
                format!("person{i}"),
                if i == 12_345 { "Ådå" } else { "Ada" },
                roles[(i % 4) as usize],
                statuses[(i % 5) as usize],
                i % 7 != 0,
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
    conn.execute_batch("ANALYZE").unwrap();
    conn
}

fn filters() -> Vec<ListFilter> {
    let role: Role = "admin".parse().unwrap();
    vec![
        ListFilter::default(),
        ListFilter {
            status: Some(MemberStatus::Suspended),
            ..ListFilter::default()
        },
        ListFilter {
            status: Some(MemberStatus::Archived),
            ..ListFilter::default()
        },
        ListFilter {
            status: Some(MemberStatus::Active),
            ..ListFilter::default()
        },
        ListFilter {
            role: Some(role.clone()),
            ..ListFilter::default()
        },
        ListFilter {
            managed: Some(true),
            ..ListFilter::default()
        },
        ListFilter {
            managed: Some(false),
            ..ListFilter::default()
        },
        ListFilter {
            status: Some(MemberStatus::Active),
            role: Some(role),
            managed: Some(true),
            ..ListFilter::default()
        },
        ListFilter {
            search: Some("PERSON12".into()),
            ..ListFilter::default()
        },
    ]
}

/// The page query of every filter and cursor walks an index of the tenant in pk order:
/// no full scan of members, no sort of the matches.
#[test]
fn member_pages_are_read_from_indexes_without_a_scan_or_a_sort() {
    let conn = many_members();
    for filter in filters() {
        for cursor in [Cursor::First, Cursor::After(5_000), Cursor::Before(15_000)] {
            let (sql, params) = page_query(1, &filter, InGroup::Listed, cursor, 50);
            let plan = plan_of(&conn, &sql, &params);
            // An index of the tenant, or (when one tenant holds nearly every member) the
            // pk range itself: both start at the cursor and stop after a page.
            assert!(
                plan.contains("SEARCH m USING INDEX members_")
                    || plan.contains("SEARCH m USING INTEGER PRIMARY KEY"),
                "{filter:?} {cursor:?}\n{plan}"
            );
            assert!(
                !plan.contains("SCAN m") && !plan.contains("TEMP B-TREE"),
                "{filter:?} {cursor:?}\n{plan}"
            );
        }
    }
}

/// Walking next links visits every matching member once, in order; walking back from
/// the end returns the same pages; the counts agree (and stop at their cap).
#[test]
fn pages_walk_every_matching_member_once_both_ways() {
    let conn = many_members();
    for filter in filters() {
        let want: Vec<i64> = conn
            .prepare(&format!(
                "SELECT m.pk FROM members m WHERE {} ORDER BY m.pk",
                filter.conditions(1, InGroup::Listed).0
            ))
            .unwrap()
            .query_map(
                params_from_iter(filter.conditions(1, InGroup::Listed).1),
                |r| r.get(0),
            )
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(!want.is_empty(), "{filter:?}");
        let mut seen = Vec::new();
        let mut pages = Vec::new();
        let mut cursor = Cursor::First;
        loop {
            let p = page(&conn, 1, &filter, cursor, 500).unwrap();
            pages.push(p.items.iter().map(|m| m.pk).collect::<Vec<_>>());
            seen.extend(p.items.iter().map(|m| m.pk));
            match p.next {
                Some(k) => cursor = Cursor::After(k),
                None => break,
            }
        }
        assert_eq!(seen, want, "{filter:?}");
        // Back from the last page.
        let mut back = pages.len() - 1;
        let mut prev = page(&conn, 1, &filter, Cursor::First, 500).unwrap().prev;
        assert_eq!(prev, None);
        let last_first = pages[back][0];
        prev = Some(last_first);
        while let Some(k) = prev {
            back -= 1;
            let p = page(&conn, 1, &filter, Cursor::Before(k), 500).unwrap();
            assert_eq!(
                p.items.iter().map(|m| m.pk).collect::<Vec<_>>(),
                pages[back]
            );
            prev = p.prev;
        }
        assert_eq!(back, 0, "{filter:?}");
        assert_eq!(count(&conn, 1, &filter, usize::MAX).unwrap(), want.len());
        assert_eq!(count(&conn, 1, &filter, 3).unwrap(), want.len().min(3));
    }
}

#[test]
fn search_folds_case_and_reads_names() {
    let conn = many_members();
    let find = |term: &str| {
        let filter = ListFilter {
            search: Some(term.into()),
            ..ListFilter::default()
        };
        page(&conn, 1, &filter, Cursor::First, 5)
            .unwrap()
            .items
            .iter()
            .map(|m| m.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(find("PERSON12345@"), ["m12345"]);
    assert_eq!(
        find("ådå"),
        ["m12345"],
        "Unicode names fold like SCIM values"
    );
    assert_eq!(
        find("ada lovelace").len(),
        5,
        "given and family name together"
    );
    assert!(find("person999@").is_empty(), "another tenant's member");
}

/// An inserted member is returned as it was stored, without reading it back: what
/// `get_by_pk` reads, whether or not its directory user exists.
#[test]
fn an_inserted_member_is_what_reading_it_back_gives() {
    let conn = fresh_db();
    conn.execute(
        "INSERT INTO users (tenant_id, id, user_name, user_name_fold, data, created, last_modified, version)
         VALUES (1, 'u1', 'ada', 'ada', '{}', 't', 't', 1)",
        [],
    )
    .unwrap();
    for (email, user_id, exists) in [
        ("ada@x.io", Some("u1"), true),
        ("bob@x.io", Some("gone"), false),
        ("cy@x.io", None, false),
    ] {
        let new = NewMember {
            profile: Profile {
                email: Some(email.into()),
                user_name: Some(email.into()),
                given_name: Some("Ådå".into()),
                family_name: None,
                display_name: Some("A".into()),
            },
            role: "admin".parse().unwrap(),
            role_reason: "why".into(),
            status: MemberStatus::Suspended,
            managed: false,
            source: MemberSource::Csv,
            user_id: user_id.map(str::to_string),
        };
        let row = insert(&conn, 1, &new).unwrap();
        assert_eq!(row.user_exists, exists);
        assert_eq!(
            Some(row),
            get_by_pk(&conn, conn.last_insert_rowid()).unwrap()
        );
    }
}

/// Ids are time-ordered UUIDs (version 7): a new member's id sorts after the ones before
/// it, so its unique index grows at one end and a batch of writes shares its pages
/// instead of dirtying a random page each.
#[test]
fn new_ids_sort_in_creation_order() {
    let conn = fresh_db();
    let ids: Vec<String> = (0..50)
        .map(|i| {
            let new = NewMember {
                profile: Profile {
                    email: Some(format!("p{i}@x.io")),
                    ..Profile::default()
                },
                role: "viewer".parse().unwrap(),
                role_reason: String::new(),
                status: MemberStatus::Active,
                managed: true,
                source: MemberSource::Manual,
                user_id: None,
            };
            insert(&conn, 1, &new).unwrap().id
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(
        ids.iter()
            .all(|id| uuid::Uuid::parse_str(id).unwrap().get_version_num() == 7)
    );
}

/// The members a write's plan looks at: by email or userName, folded, in the tenant only;
/// the same whether the keys are few (looked up one by one) or many (in lists).
#[test]
fn members_for_users_are_found_by_any_key_in_the_tenant() {
    let conn = many_members();
    let ids = |keys: &[String]| -> Vec<String> {
        let mut ids: Vec<String> = for_users(&conn, 1, &[], keys)
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        ids.sort();
        ids
    };
    let few: Vec<String> = [
        "PERSON5@example.com",
        "person7",
        "person7",
        "person999@example.com",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(ids(&few), ["m5", "m7"], "m999 is the other tenant's");

    let many: Vec<String> = (100..100 + 3 * FEW_KEYS as i64)
        .map(|i| match i % 2 {
            0 => format!("Person{i}@Example.com"),
            _ => format!("person{i}"),
        })
        .collect();
    assert!(many.len() > FEW_KEYS);
    let one_by_one: Vec<String> = many
        .iter()
        .flat_map(|k| ids(std::slice::from_ref(k)))
        .collect();
    assert_eq!(ids(&many), one_by_one);
    assert_eq!(one_by_one.len(), many.len());
}

/// An app walking the directory users (the WorkOS drop-in) seeks to its cursor, in a
/// tenant or across them: a page costs the same at the end of the list as at the start.
#[test]
fn a_linked_page_seeks_to_its_cursor() {
    let conn = many_members();
    // As after a sync: every member linked to a directory user.
    conn.execute_batch("UPDATE members SET user_id = 'u' || pk; ANALYZE")
        .unwrap();
    for greater in [true, false] {
        let direction = Direction {
            greater,
            ascending: greater,
        };
        let cmp = if greater { ">" } else { "<" };
        let first_step = |tenant| {
            let (sql, values) = linked_query(
                tenant,
                None,
                InGroup::Listed,
                &Only::default(),
                Some(10_000),
                direction,
                10,
            );
            let plan = plan_of(&conn, &sql, &values);
            plan.lines().next().unwrap_or_default().to_string()
        };
        assert_eq!(
            first_step(Some(1)),
            format!("SEARCH m USING INDEX members_tenant (tenant_id=? AND rowid{cmp}?)")
        );
        assert_eq!(
            first_step(None),
            format!("SEARCH m USING INTEGER PRIMARY KEY (rowid{cmp}?)")
        );
    }
}

/// A group's members, page after page: a group past [`InGroup::LISTED`] members is asked
/// member by member, walking members in pk order with no sort, and both tests find the
/// same members in the same order, through the WorkOS pages and the API's filter alike.
#[test]
fn a_big_groups_pages_ask_each_member_and_find_what_the_list_finds() {
    use crate::db::groups::{self, MemberKind, ResolvedMember};
    use crate::db::users;
    use crate::scim::resource::normalize;
    use crate::scim::schema::{GROUP_RESOURCE, USER_RESOURCE};
    use serde_json::json;

    let conn = fresh_db();
    let tx = conn.unchecked_transaction().unwrap();
    let mut people = Vec::new();
    for i in 0..3000 {
        let data = normalize(&USER_RESOURCE, json!({"userName": format!("p{i}")})).unwrap();
        let user = users::create(&tx, 1, &data).unwrap();
        tx.execute(
            "INSERT INTO members (tenant_id, id, user_id, email, email_fold, role, role_reason,
                status, managed, source, created_at, updated_at)
             VALUES (1, ?1, ?2, ?3, ?3, 'member', 'x', 'active', 1, 'scim', 't', 't')",
            rusqlite::params![format!("m{i}"), user.id, format!("p{i}@example.com")],
        )
        .unwrap();
        people.push(user.pk);
    }
    let group = |name: &str, pks: Vec<i64>| {
        let data = normalize(&GROUP_RESOURCE, json!({"displayName": name})).unwrap();
        let g = groups::create(&tx, 1, &data).unwrap();
        let members: Vec<ResolvedMember> = pks
            .into_iter()
            .map(|pk| ResolvedMember {
                kind: MemberKind::User,
                pk,
                display: None,
            })
            .collect();
        groups::add_members(&tx, g.pk, &members).unwrap();
        g.id
    };
    // Added out of pk order, as an IdP pushes them.
    let big = group("Big", people.iter().rev().step_by(2).copied().collect());
    let small = group("Small", people[100..110].to_vec());
    tx.commit().unwrap();
    conn.execute_batch("ANALYZE").unwrap();

    assert_eq!(InGroup::of(&conn, Some(&big)).unwrap(), InGroup::Asked);
    assert_eq!(InGroup::of(&conn, Some(&small)).unwrap(), InGroup::Listed);
    assert_eq!(InGroup::of(&conn, None).unwrap(), InGroup::Listed);

    let forward = Direction {
        greater: true,
        ascending: true,
    };
    let walk = |group: &str, in_group: InGroup| {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let (sql, values) = linked_query(
                Some(1),
                Some(group),
                in_group,
                &Only::default(),
                cursor,
                forward,
                100,
            );
            let page: Vec<i64> = conn
                .prepare(&sql)
                .unwrap()
                .query_map(params_from_iter(&values), |r| r.get::<_, i64>(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let Some(&last) = page.last() else { break };
            cursor = Some(last);
            seen.extend(page);
        }
        seen
    };
    for (group, size) in [(&big, 1500), (&small, 10)] {
        let listed = walk(group, InGroup::Listed);
        assert_eq!(listed.len(), size);
        assert!(listed.is_sorted());
        assert_eq!(walk(group, InGroup::Asked), listed);
        // The API's filter, through `InGroup::of`, pages to the same members.
        let filter = ListFilter {
            group: Some(group.to_string()),
            ..ListFilter::default()
        };
        let mut pages = Vec::new();
        let mut cursor = Cursor::First;
        loop {
            let page = super::page(&conn, 1, &filter, cursor, 100).unwrap();
            pages.extend(page.items.iter().map(|m| m.pk));
            match page.next {
                Some(pk) => cursor = Cursor::After(pk),
                None => break,
            }
        }
        assert_eq!(pages, listed);
        assert_eq!(super::count(&conn, 1, &filter, 10_000).unwrap(), size);
    }
    // Asking walks the tenant's members in pk order from the cursor: no list, no sort.
    let (sql, values) = linked_query(
        Some(1),
        Some(&big),
        InGroup::Asked,
        &Only::default(),
        Some(5),
        forward,
        100,
    );
    let plan = plan_of(&conn, &sql, &values);
    let first = plan.lines().next().unwrap();
    assert!(
        first.starts_with("SEARCH m USING") && first.ends_with("rowid>?)"),
        "{plan}"
    );
    for walked in ["TEMP B-TREE", "LIST SUBQUERY", "SCAN"] {
        assert!(!plan.contains(walked), "{plan}");
    }
}

/// The counts the triggers keep (active, and by status and role) are what counting the
/// rows gives, through inserts, status and role changes each way, deletes and another
/// tenant's writes.
#[test]
fn the_kept_counts_follow_every_write() {
    let conn = many_members();
    let counted = |tenant: i64| -> Vec<(String, String, i64)> {
        let mut stmt = conn
            .prepare(
                "SELECT status, role, count(*) FROM members WHERE tenant_id = ?1
                 GROUP BY status, role ORDER BY status, role",
            )
            .unwrap();
        stmt.query_map([tenant], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let check = || {
        for tenant in [1, 2, 3] {
            let rows = counted(tenant);
            let kept: Vec<(String, String, i64)> = counts_by_status_and_role(&conn, tenant)
                .unwrap()
                .into_iter()
                .map(|(s, r, n)| (s.as_str().to_string(), r.to_string(), n))
                .collect();
            assert_eq!(kept, rows, "tenant {tenant}");
            let active: i64 = rows.iter().filter(|r| r.0 == "active").map(|r| r.2).sum();
            assert_eq!(count_active(&conn, tenant).unwrap(), active as u64);
        }
    };
    check();
    assert!(count_active(&conn, 1).unwrap() > 1_000);
    let pks = |status: &str| -> Vec<i64> {
        let mut stmt = conn
            .prepare("SELECT pk FROM members WHERE tenant_id = 1 AND status = ?1 LIMIT 3")
            .unwrap();
        stmt.query_map([status], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    for (from, to) in [
        ("active", "suspended"),
        ("suspended", "active"),
        ("archived", "suspended"),
        ("active", "active"),
    ] {
        for pk in pks(from) {
            set_status(&conn, pk, to.parse().unwrap()).unwrap();
        }
        check();
    }
    for pk in pks("active") {
        set_role(&conn, pk, &"owner".parse().unwrap(), "why").unwrap();
    }
    check();
    for status in ["active", "archived"] {
        for pk in pks(status) {
            delete(&conn, pk).unwrap();
        }
        check();
    }
    // A bulk apply writes with triggers off, and moves the counts by what it tallied.
    let batch = crate::db::tenants::member_batch(&conn, 1).unwrap();
    let mut moves = CountMoves::default();
    let row = |pk: i64| get_by_pk(&conn, pk).unwrap().unwrap();
    for pk in pks("active") {
        moves.left(&row(pk));
        set_status(&conn, pk, MemberStatus::Archived).unwrap();
        moves.joined(&row(pk));
    }
    for pk in pks("suspended") {
        moves.left(&row(pk));
        delete(&conn, pk).unwrap();
    }
    batch.finish(&moves).unwrap();
    check();
}
