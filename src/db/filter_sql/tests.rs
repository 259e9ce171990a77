//! The SQL twin must agree with `filter::matches` exactly: fixed cases, index usage, and a
//! property test over random users and random filters on a real SQLite database.

use std::collections::BTreeSet;

use proptest::prelude::*;
use rusqlite::{Connection, params_from_iter};
use serde_json::{Map, Value, json};

use super::*;
use crate::scim::filter::{matches, parse};
use crate::scim::schema::{ENTERPRISE_URN, GROUP_RESOURCE, USER_RESOURCE};

const MIGRATION: &str = include_str!("../migrations/0001_directory.sql");

fn fresh_db() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(MIGRATION).unwrap();
    register_functions(&conn).unwrap();
    conn.execute_batch(
        "INSERT INTO tenants (id, slug, name, created_at) VALUES
           (1, 't1', 'Tenant 1', '2026-01-01T00:00:00.000000Z'),
           (2, 't2', 'Tenant 2', '2026-01-01T00:00:00.000000Z');",
    )
    .unwrap();
    conn
}

/// A user as stored: `data` without id/meta/groups, plus what the server assigns.
#[derive(Debug, Clone)]
struct StoredUser {
    id: String,
    data: Value,
    created: String,
    last_modified: String,
    version: i64,
}

/// Inserts a user the way `db::users::create` fills its columns.
fn insert_user(conn: &Connection, tenant: i64, u: &StoredUser) -> i64 {
    let text = |k: &str| u.data.get(k).and_then(Value::as_str).map(str::to_owned);
    let user_name = text("userName").unwrap();
    let display_name = text("displayName");
    conn.execute(
        "INSERT INTO users (tenant_id, id, user_name, user_name_fold, external_id, display_name,
                            display_name_fold, active, data, created, last_modified, version)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rusqlite::params![
            tenant,
            u.id,
            user_name,
            filter::fold(&user_name),
            text("externalId"),
            display_name,
            display_name.as_deref().map(filter::fold),
            u.data.get("active").and_then(Value::as_bool),
            u.data.to_string(),
            u.created,
            u.last_modified,
            u.version,
        ],
    )
    .unwrap();
    let pk = conn.last_insert_rowid();
    for email in u
        .data
        .get("emails")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(value) = email.get("value").and_then(Value::as_str) else {
            continue;
        };
        conn.execute(
            "INSERT INTO user_emails (user_pk, tenant_id, value_fold, type_fold, is_primary)
             VALUES (?, ?, ?, ?, ?)",
            rusqlite::params![
                pk,
                tenant,
                filter::fold(value),
                email.get("type").and_then(Value::as_str).map(filter::fold),
                email.get("primary") == Some(&Value::Bool(true)),
            ],
        )
        .unwrap();
    }
    pk
}

fn insert_group(conn: &Connection, tenant: i64, id: &str, display_name: &str) -> i64 {
    conn.execute(
        "INSERT INTO groups (tenant_id, id, display_name, display_name_fold, external_id, data,
                             created, last_modified, version)
         VALUES (?, ?, ?, ?, NULL, ?, '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', 1)",
        rusqlite::params![
            tenant,
            id,
            display_name,
            filter::fold(display_name),
            json!({"displayName": display_name}).to_string()
        ],
    )
    .unwrap();
    conn.last_insert_rowid()
}

fn add_user_member(conn: &Connection, group_pk: i64, user_pk: i64, display: Option<&str>) {
    conn.execute(
        "INSERT INTO group_members (group_pk, member_user_pk, display) VALUES (?, ?, ?)",
        rusqlite::params![group_pk, user_pk, display],
    )
    .unwrap();
}

fn add_group_member(conn: &Connection, group_pk: i64, member_pk: i64) {
    conn.execute(
        "INSERT INTO group_members (group_pk, member_group_pk) VALUES (?, ?)",
        rusqlite::params![group_pk, member_pk],
    )
    .unwrap();
}

/// The user as a client would GET it.
fn render_user(u: &StoredUser, groups: &[(&str, &str)]) -> Value {
    let mut r = u.data.clone();
    r["id"] = json!(u.id);
    r["meta"] = json!({
        "resourceType": "User",
        "created": u.created,
        "lastModified": u.last_modified,
        "version": format!("W/\"{}\"", u.version),
    });
    if !groups.is_empty() {
        r["groups"] = groups
            .iter()
            .map(|(id, name)| json!({"value": id, "display": name, "type": "direct"}))
            .collect();
    }
    r
}

/// Ids of tenant 1's resources the compiled filter selects.
fn select(conn: &Connection, rt: &ResourceType, f: &Filter) -> BTreeSet<String> {
    let compiled = compile(f, rt).unwrap();
    let table = if rt.name == "Group" {
        "groups g"
    } else {
        "users u"
    };
    let alias = Table::of(rt).alias();
    let sql = format!(
        "SELECT {alias}.id FROM {table} WHERE {alias}.tenant_id = ? AND ({})",
        compiled.sql
    );
    let mut params = vec![SqlValue::Integer(1)];
    params.extend(compiled.params);
    let mut stmt = conn.prepare(&sql).unwrap_or_else(|e| panic!("{e}: {sql}"));
    stmt.query_map(params_from_iter(params), |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn plan(conn: &Connection, rt: &ResourceType, filter: &str) -> String {
    let f = parse(
        filter,
        if rt.name == "Group" {
            &GROUP_RESOURCE
        } else {
            &USER_RESOURCE
        },
    )
    .unwrap();
    let compiled = compile(&f, rt).unwrap();
    let table = if rt.name == "Group" {
        "groups g"
    } else {
        "users u"
    };
    let alias = Table::of(rt).alias();
    let sql = format!(
        "EXPLAIN QUERY PLAN SELECT {alias}.id FROM {table} WHERE {alias}.tenant_id = ? AND ({})",
        compiled.sql
    );
    let mut params = vec![SqlValue::Integer(1)];
    params.extend(compiled.params);
    let mut stmt = conn.prepare(&sql).unwrap();
    let rows: Vec<String> = stmt
        .query_map(params_from_iter(params), |row| row.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows.join("\n")
}

#[test]
fn scim_fold_matches_rust_fold() {
    let conn = fresh_db();
    for s in ["ÉCOLE", "Straße", "İstanbul", "ΑΣ", "plain", ""] {
        let folded: String = conn
            .query_row("SELECT scim_fold(?)", [s], |r| r.get(0))
            .unwrap();
        assert_eq!(folded, filter::fold(s));
    }
    let null: Option<String> = conn
        .query_row("SELECT scim_fold(NULL)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(null, None);
    let number: Option<String> = conn
        .query_row("SELECT scim_fold(42)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(number, None);
}

/// Plans depend on statistics: without `sqlite_stat1` SQLite guesses that `tenant_id = ?`
/// alone is selective and walks the tenant's rows. Production runs `PRAGMA optimize`, so
/// the test plans against a populated, analysed database.
fn analysed_db() -> Connection {
    let conn = fresh_db();
    // The lookup indexes as they are now (the rest of the tests keep the first schema).
    for migration in [
        include_str!("../migrations/0015_partial_external_id.sql"),
        include_str!("../migrations/0017_covering_groups_of.sql"),
        include_str!("../migrations/0018_covering_email_lookup.sql"),
    ] {
        conn.execute_batch(migration).unwrap();
    }
    for i in 0..300 {
        let user = StoredUser {
            id: format!("id{i}"),
            data: json!({
                "userName": format!("user{i}"), "displayName": format!("User {i}"),
                "externalId": format!("ext{i}"),
                "emails": [{"value": format!("user{i}@example.com"), "type": "work", "primary": true}],
            }),
            created: TIMES[0].into(),
            last_modified: TIMES[0].into(),
            version: 1,
        };
        let pk = insert_user(&conn, 1, &user);
        let g = insert_group(&conn, 1, &format!("g{i}"), &format!("Group {i}"));
        add_user_member(&conn, g, pk, None);
    }
    conn.execute_batch("ANALYZE").unwrap();
    conn
}

#[test]
fn lookups_idps_make_use_an_index() {
    let conn = analysed_db();
    let cases: &[(&ResourceType, &str, &str)] = &[
        (
            &USER_RESOURCE,
            r#"userName eq "Bjensen""#,
            "users_user_name",
        ),
        (&USER_RESOURCE, r#"USERNAME EQ "X""#, "users_user_name"),
        (&USER_RESOURCE, "externalId eq jyoung", "users_external_id"),
        (
            &USER_RESOURCE,
            r#"id eq "2819c223""#,
            "sqlite_autoindex_users",
        ),
        (
            &USER_RESOURCE,
            r#"DisplayName eq "BobIsAmazing""#,
            "users_display_name",
        ),
        (
            &USER_RESOURCE,
            r#"emails.value eq "a@x.org""#,
            "COVERING INDEX user_emails_value",
        ),
        (
            &USER_RESOURCE,
            r#"emails[type eq "work"].value eq "user@contoso.com""#,
            "COVERING INDEX user_emails_value",
        ),
        (
            &USER_RESOURCE,
            r#"emails[type eq "work" and value eq "user@contoso.com"]"#,
            "COVERING INDEX user_emails_value",
        ),
        (
            &GROUP_RESOURCE,
            r#"displayName eq "Admins""#,
            "groups_display_name",
        ),
        (
            &GROUP_RESOURCE,
            r#"externalId eq "e1""#,
            "groups_external_id",
        ),
        (
            &GROUP_RESOURCE,
            r#"members.value eq "u1""#,
            "group_members_by_user",
        ),
        (
            &GROUP_RESOURCE,
            r#"members[value eq "u1"]"#,
            "group_members_by_user",
        ),
    ];
    for (rt, filter, index) in cases {
        let plan = plan(&conn, rt, filter);
        assert!(
            plan.contains(index),
            "{filter}: expected index {index} in plan:\n{plan}"
        );
        // The outer table is reached through the lookup, not by walking the tenant.
        let first = plan.lines().next().unwrap_or_default();
        assert!(
            !first.starts_with("SCAN") && !first.ends_with("(tenant_id=?)"),
            "{filter}: the outer table is scanned:\n{plan}"
        );
    }
}

/// What the server runs without a trip to the blocking pool (`Compiled::lookup`) must be
/// found through an index, and nothing that may read the whole tenant counts as a lookup.
#[test]
fn only_filters_an_index_answers_are_lookups() {
    let conn = analysed_db();
    let lookups: &[(&ResourceType, &str)] = &[
        (&USER_RESOURCE, r#"userName eq "Bjensen""#),
        (&USER_RESOURCE, r#"id eq "2819c223""#),
        (&USER_RESOURCE, r#"emails.value eq "a@x.org""#),
        (
            &USER_RESOURCE,
            r#"emails[type eq "work"].value eq "a@x.org""#,
        ),
        (
            &USER_RESOURCE,
            r#"emails[type eq "work" and value eq "a@x.org"]"#,
        ),
        (&USER_RESOURCE, r#"userName eq "a" and title co "b""#),
        (&USER_RESOURCE, r#"title co "b" and id eq "e""#),
        (&GROUP_RESOURCE, r#"displayName eq "Admins""#),
        (&GROUP_RESOURCE, r#"id eq "g1""#),
    ];
    for (rt, filter) in lookups {
        let f = parse(filter, rt).unwrap();
        assert!(compile(&f, rt).unwrap().lookup, "{filter}: a lookup");
        let plan = plan(&conn, rt, filter);
        let first = plan.lines().next().unwrap_or_default();
        assert!(
            !first.starts_with("SCAN") && !first.ends_with("(tenant_id=?)"),
            "{filter}: a lookup that walks the tenant:\n{plan}"
        );
    }
    // Filters that walk the tenant, and indexed ones whose matches nothing bounds.
    let others: &[(&ResourceType, &str)] = &[
        (&USER_RESOURCE, r#"userName co "a""#),
        (&USER_RESOURCE, "externalId eq jyoung"),
        (&GROUP_RESOURCE, r#"externalId eq "e1""#),
        (&USER_RESOURCE, r#"userName eq "a" or title eq "b""#),
        (&USER_RESOURCE, r#"not (userName eq "a")"#),
        (&USER_RESOURCE, r#"userName ne "a""#),
        (&USER_RESOURCE, r#"emails.value eq """#),
        (&USER_RESOURCE, r#"emails[type eq "work"]"#),
        (&USER_RESOURCE, r#"displayName eq "Same Name For Many""#),
        (&USER_RESOURCE, "active eq true"),
        (&GROUP_RESOURCE, r#"displayName sw "A""#),
        (&GROUP_RESOURCE, r#"members.value eq "u1""#),
    ];
    for (rt, filter) in others {
        let f = parse(filter, rt).unwrap();
        assert!(!compile(&f, rt).unwrap().lookup, "{filter}: not a lookup");
    }
}

#[test]
fn values_are_bound_never_spliced() {
    let f = parse(
        r#"title eq "'; DROP TABLE users; --" or userName co "%_""#,
        &USER_RESOURCE,
    )
    .unwrap();
    let c = compile(&f, &USER_RESOURCE).unwrap();
    assert!(!c.sql.contains("DROP"), "{}", c.sql);
    assert!(!c.sql.contains("%_"), "{}", c.sql);
    assert!(!c.sql.to_lowercase().contains(" like "), "{}", c.sql);
    assert_eq!(c.params.len(), 2);
}

#[test]
fn unsupported_attributes_are_invalid_filters() {
    for f in [
        r#"meta.location eq "https://x/Users/1""#,
        r#"groups.$ref eq "x""#,
    ] {
        let parsed = parse(f, &USER_RESOURCE).unwrap();
        let err = compile(&parsed, &USER_RESOURCE).unwrap_err();
        assert_eq!(
            err.scim_type,
            Some(crate::scim::ScimType::InvalidFilter),
            "{f}"
        );
        assert!(err.detail.contains("not supported"), "{f}: {}", err.detail);
    }
    let parsed = parse("meta.location pr", &USER_RESOURCE).unwrap();
    assert_eq!(compile(&parsed, &USER_RESOURCE).unwrap().sql, "1");
}

/// A small fixed directory used by the table-driven tests below.
struct Fixture {
    conn: Connection,
    users: Vec<Value>,
    groups: Vec<Value>,
}

fn fixture() -> Fixture {
    let conn = fresh_db();
    let stored = [
        StoredUser {
            id: "u1".into(),
            data: json!({
                "userName": "Bjensen@Example.com", "externalId": "bjensen",
                "displayName": "Babs Jensen", "active": true, "title": "",
                "name": {"familyName": "Jensen", "givenName": "Barbara"},
                "emails": [
                    {"value": "bjensen@example.com", "type": "work", "primary": true},
                    {"value": "babs@home.org", "type": "home"}
                ],
                ENTERPRISE_URN: {"employeeNumber": "701984", "manager": {"value": "u2"}},
            }),
            created: "2020-01-01T00:00:00.000000Z".into(),
            last_modified: "2021-06-01T12:00:00.000000Z".into(),
            version: 3,
        },
        StoredUser {
            id: "u2".into(),
            data: json!({
                "userName": "ÉMILE", "active": false,
                "name": {"familyName": "Zola"},
                "emails": [{"value": "emile@Example.com", "type": "Work"}, {"type": "home"}],
                "phoneNumbers": [{"value": "555", "type": "work"}],
            }),
            created: "2019-05-05T05:05:05.500000Z".into(),
            last_modified: "2019-05-05T05:05:05.500000Z".into(),
            version: 10,
        },
        StoredUser {
            id: "u3".into(),
            data: json!({"userName": "carol", "displayName": "carol", "nickName": "C"}),
            created: "2022-02-02T02:02:02.000000Z".into(),
            last_modified: "2022-02-02T02:02:02.000000Z".into(),
            version: 1,
        },
    ];
    let pks: Vec<i64> = stored.iter().map(|u| insert_user(&conn, 1, u)).collect();
    // Another tenant's user with the same email must never leak in.
    insert_user(
        &conn,
        2,
        &StoredUser {
            id: "other".into(),
            data: json!({"userName": "carol", "emails": [{"value": "babs@home.org"}]}),
            created: "2022-02-02T02:02:02.000000Z".into(),
            last_modified: "2022-02-02T02:02:02.000000Z".into(),
            version: 1,
        },
    );
    let admins = insert_group(&conn, 1, "g1", "Admins");
    let eng = insert_group(&conn, 1, "g2", "Engineering");
    let empty = insert_group(&conn, 1, "g3", "Empty");
    add_user_member(&conn, admins, pks[0], Some("Babs"));
    add_user_member(&conn, eng, pks[1], None);
    add_group_member(&conn, eng, admins);
    let _ = empty;
    let users = vec![
        render_user(&stored[0], &[("g1", "Admins")]),
        render_user(&stored[1], &[("g2", "Engineering")]),
        render_user(&stored[2], &[]),
    ];
    let group = |id: &str, name: &str, members: Value| {
        json!({"id": id, "displayName": name, "members": members,
               "meta": {"resourceType": "Group", "created": "2026-01-01T00:00:00.000000Z",
                        "lastModified": "2026-01-01T00:00:00.000000Z", "version": "W/\"1\""}})
    };
    let groups = vec![
        group(
            "g1",
            "Admins",
            json!([{"value": "u1", "display": "Babs", "type": "User"}]),
        ),
        group(
            "g2",
            "Engineering",
            // Without a stored display, a member shows its displayName, else its userName.
            json!([
                {"value": "u2", "display": "ÉMILE", "type": "User"},
                {"value": "g1", "display": "Admins", "type": "Group"}
            ]),
        ),
        group("g3", "Empty", json!([])),
    ];
    Fixture {
        conn,
        users,
        groups,
    }
}

fn expected(resources: &[Value], f: &Filter) -> BTreeSet<String> {
    resources
        .iter()
        .filter(|r| matches(f, r))
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn sql_agrees_with_matches_on_fixed_cases() {
    let fx = fixture();
    let user_filters = [
        r#"userName eq "bjensen@example.com""#,
        r#"userName eq "émile""#,
        "userName sw É",
        "userName ew .COM",
        "userName co ILE",
        "userName gt c",
        "userName le CAROL",
        "externalId eq bjensen",
        "externalId ne bjensen",
        "externalId pr",
        "displayName eq CAROL",
        "displayName ne carol",
        "displayName eq null",
        "title pr",
        "title eq null",
        r#"title eq """#,
        "nickName co c",
        "active eq true",
        r#"active eq "False""#,
        "active ne true",
        "active pr",
        "name.familyName sw j",
        "name pr",
        "name[familyName eq zola]",
        "name[not (givenName pr)]",
        "emails.value eq BJENSEN@example.com",
        "emails.value eq babs@home.org",
        "emails.value ne babs@home.org",
        "emails co example.com",
        r#"emails[type eq "work"].value eq "emile@example.com""#,
        r#"emails[type eq "work" and value eq "babs@home.org"]"#,
        r#"emails[type eq "home" and value pr]"#,
        "emails[primary eq true]",
        "emails[not (primary eq true)]",
        "emails[primary ne true]",
        "emails.primary eq false",
        "emails pr",
        "emails.value pr",
        "emails.type eq work",
        "phoneNumbers pr",
        "phoneNumbers[type eq work and value sw 5]",
        "employeeNumber eq 701984",
        "employeeNumber ne 701984",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq U2",
        "manager eq u2",
        "manager pr",
        "manager[value eq u2]",
        "meta.created gt 2019-12-31T23:00:00-02:00",
        "meta.created eq 2019-05-05T05:05:05.5Z",
        "meta.lastModified le 2021-06-01T12:00:00Z",
        "meta.version eq \"W/\\\"10\\\"\"",
        "meta.version gt \"W/\\\"2\\\"\"",
        "meta.resourceType eq User",
        "meta pr",
        "id eq u1",
        "id eq U1",
        "id ne u1",
        "groups.value eq G1",
        "groups.display co eng",
        "groups[display eq admins]",
        "groups.type eq DIRECT",
        "groups[type eq direct and value eq g2]",
        "groups pr",
        "not (groups pr)",
        "groups eq g2",
        "userName sw b or (active eq false and not (emails[type eq home]))",
        "not (userName sw b) and not (displayName pr)",
    ];
    for text in user_filters {
        let f = parse(text, &USER_RESOURCE).unwrap();
        assert_eq!(
            select(&fx.conn, &USER_RESOURCE, &f),
            expected(&fx.users, &f),
            "{text}\n{}",
            compile(&f, &USER_RESOURCE).unwrap().sql
        );
    }
    let group_filters = [
        "displayName eq admins",
        "displayName sw E",
        "members.value eq u1",
        "members.value eq U1",
        "members.value eq g1",
        "members[value eq u2]",
        "members[type eq group]",
        "members[value eq u1 and display eq babs]",
        "members.display pr",
        "members.display eq émile",
        "members[display eq admins and type eq group]",
        "members pr",
        "not (members pr)",
        "members.value ne u1",
        "members.type eq USER",
        "meta.resourceType eq Group",
        "id eq g2",
        "externalId pr",
    ];
    for text in group_filters {
        let f = parse(text, &GROUP_RESOURCE).unwrap();
        assert_eq!(
            select(&fx.conn, &GROUP_RESOURCE, &f),
            expected(&fx.groups, &f),
            "{text}\n{}",
            compile(&f, &GROUP_RESOURCE).unwrap().sql
        );
    }
}

/// RFC 7644 §3.4.2.2 on multi-valued attributes, pinned per operator: a comparison matches
/// when any value satisfies it (`ne` too: some value differs, or there is none); `not`
/// negates the whole expression. SQL and `matches` must both give exactly these.
#[test]
fn multi_valued_comparisons_match_when_any_value_does() {
    let fx = fixture();
    // u1: emails bjensen@example.com (work, primary), babs@home.org (home); group g1.
    // u2: emails emile@Example.com (Work), one with type home and no value; phone 555 work; group g2.
    // u3: no emails, no phones, no groups.
    let users: &[(&str, &[&str])] = &[
        ("emails.type eq work", &["u1", "u2"]),
        ("emails.type ne work", &["u1", "u2", "u3"]),
        ("emails.type ne home", &["u1", "u2", "u3"]),
        ("not (emails.type eq work)", &["u3"]),
        ("not (emails.type ne work)", &[]),
        ("emails.value ne bjensen@example.com", &["u1", "u2", "u3"]),
        ("emails.value ne EMILE@example.com", &["u1", "u3"]),
        ("not (emails.value ne emile@example.com)", &["u2"]),
        ("emails ne emile@example.com", &["u1", "u3"]),
        ("emails.value co home", &["u1"]),
        ("emails.value sw EMILE", &["u2"]),
        ("emails.value ew .org", &["u1"]),
        ("emails.value gt c", &["u2"]),
        ("emails.value ge emile@example.com", &["u2"]),
        ("emails.value lt bb", &["u1"]),
        ("emails.value le babs@home.org", &["u1"]),
        ("emails.type pr", &["u1", "u2"]),
        ("emails.value pr", &["u1", "u2"]),
        ("phoneNumbers.value eq 555", &["u2"]),
        ("phoneNumbers.value ne 555", &["u1", "u3"]),
        ("phoneNumbers.type ne mobile", &["u1", "u2", "u3"]),
        ("phoneNumbers.value sw 5", &["u2"]),
        ("groups.value ne g1", &["u2", "u3"]),
        ("groups.display ne ADMINS", &["u2", "u3"]),
        ("groups.value gt g1", &["u2"]),
    ];
    let groups: &[(&str, &[&str])] = &[
        // g1: member u1; g2: members u2 and group g1; g3: none.
        ("members.value eq u2", &["g2"]),
        ("members.value ne u1", &["g2", "g3"]),
        ("members.value ne u2", &["g1", "g2", "g3"]),
        ("not (members.value eq u2)", &["g1", "g3"]),
        ("members.type ne user", &["g2", "g3"]),
        ("members.value co 1", &["g1", "g2"]),
        ("members.value sw u", &["g1", "g2"]),
        ("members.value ew 2", &["g2"]),
        ("members.value gt u1", &["g2"]),
        ("members.value ge u2", &["g2"]),
        ("members.value lt u", &["g2"]),
        ("members.value le u1", &["g1", "g2"]),
        ("members pr", &["g1", "g2"]),
    ];
    for (rt, resources, cases) in [
        (&USER_RESOURCE, &fx.users, users),
        (&GROUP_RESOURCE, &fx.groups, groups),
    ] {
        for (text, want) in cases {
            let f = parse(text, rt).unwrap();
            let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
            let sql = compile(&f, rt).unwrap().sql;
            assert_eq!(select(&fx.conn, rt, &f), want, "SQL: {text}\n{sql}");
            assert_eq!(expected(resources, &f), want, "matches: {text}");
        }
    }
}

fn sorted_ids(
    conn: &Connection,
    rt: &ResourceType,
    sort: Option<&str>,
    descending: bool,
) -> Vec<String> {
    let attr = sort.map(|s| rt.resolve(s).unwrap());
    let alias = Table::of(rt).alias();
    let table = if rt.name == "Group" {
        "groups g"
    } else {
        "users u"
    };
    let sql = format!(
        "SELECT {alias}.id FROM {table} WHERE {alias}.tenant_id = 1 {}",
        order_by(attr.as_ref(), descending, rt)
    );
    let mut stmt = conn.prepare(&sql).unwrap_or_else(|e| panic!("{e}: {sql}"));
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn sorting() {
    let fx = fixture();
    let ids = |sort: Option<&str>, desc: bool| sorted_ids(&fx.conn, &USER_RESOURCE, sort, desc);
    assert_eq!(ids(None, false), ["u1", "u2", "u3"]);
    assert_eq!(ids(None, true), ["u3", "u2", "u1"]);
    // Case-insensitive: "bjensen…" < "carol" < "émile".
    assert_eq!(ids(Some("userName"), false), ["u1", "u3", "u2"]);
    assert_eq!(ids(Some("userName"), true), ["u2", "u3", "u1"]);
    // Unassigned values last when ascending, first when descending.
    assert_eq!(ids(Some("displayName"), false), ["u1", "u3", "u2"]);
    assert_eq!(ids(Some("displayName"), true), ["u2", "u3", "u1"]);
    // "" title counts as unassigned: ties broken by pk.
    assert_eq!(ids(Some("title"), false), ["u1", "u2", "u3"]);
    assert_eq!(ids(Some("name.familyName"), false), ["u1", "u2", "u3"]);
    assert_eq!(ids(Some("meta.created"), false), ["u2", "u1", "u3"]);
    assert_eq!(ids(Some("meta.lastModified"), true), ["u3", "u1", "u2"]);
    assert_eq!(ids(Some("active"), false), ["u2", "u1", "u3"]);
    // Multi-valued: the primary email of u1 is bjensen@…; u2 has no primary, its first is emile@….
    assert_eq!(ids(Some("emails"), false), ["u1", "u2", "u3"]);
    // Both "work" once folded (u2's is "Work"): ties go by pk.
    assert_eq!(ids(Some("emails.type"), false), ["u1", "u2", "u3"]);
    assert_eq!(ids(Some("emails.type"), true), ["u3", "u2", "u1"]);
    assert_eq!(ids(Some("employeeNumber"), false), ["u1", "u2", "u3"]);
    assert_eq!(ids(Some("groups.display"), true), ["u3", "u2", "u1"]);
    assert_eq!(ids(Some("meta.location"), true), ["u3", "u2", "u1"]);
    // Nothing sortable in `name` itself: creation order.
    assert_eq!(ids(Some("name"), true), ["u3", "u2", "u1"]);
    let groups = |sort: Option<&str>| sorted_ids(&fx.conn, &GROUP_RESOURCE, sort, false);
    assert_eq!(groups(Some("displayName")), ["g1", "g3", "g2"]);
    // g2's smallest member id is the nested group "g1".
    assert_eq!(groups(Some("members.value")), ["g2", "g1", "g3"]);
}

// ---------------------------------------------------------------------------------------
// Property test: random users, random filters, SQL ≡ matches.

const GROUPS: [(&str, &str); 3] = [("g1", "Admins"), ("g2", "admins-2"), ("G3", "Émile team")];

/// Strings that filters and users both draw from, so comparisons often hit.
const WORDS: &[&str] = &[
    "",
    "a",
    "A",
    "ali",
    "alice0",
    "ALICE1",
    "bob",
    "Bob2",
    "é",
    "É",
    "émile3",
    "ÉMILE",
    "example.com",
    "@EXAMPLE.com",
    "alice@example.com",
    "Bob@Example.COM",
    "work",
    "Work",
    "home",
    "Smith",
    "smith",
    "Jensen",
    "Boss",
    "boss",
    "ext1",
    "EXT1",
    "42",
    "0042",
    "m1",
    "M1",
    "g1",
    "G3",
    "g3",
    "admins",
    "Admins",
    "team",
    "z",
    "0",
    "u1",
    "U1",
    "W/\"3\"",
    "User",
    "user",
];

const TIMES: &[&str] = &[
    "2020-01-01T00:00:00.000000Z",
    "2020-01-01T00:00:00.000001Z",
    "2021-06-15T08:30:00.000000Z",
    "2023-03-03T03:03:03.300000Z",
];

fn pick<T: Clone + std::fmt::Debug + 'static>(items: &'static [T]) -> impl Strategy<Value = T> {
    prop::sample::select(items)
}

fn case_variant(s: &str, mask: u32) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 32) & 1 == 1 {
                c.to_uppercase().collect::<String>()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn arb_email() -> impl Strategy<Value = Value> {
    (
        prop::option::weighted(
            0.9,
            pick(
                &[
                    "alice@example.com",
                    "Bob@Example.COM",
                    "é@x.org",
                    "carol@x.org",
                ][..],
            ),
        ),
        prop::option::of(pick(&["work", "Work", "home", "other"][..])),
        prop::option::of(any::<bool>()),
        prop::option::weighted(0.2, pick(WORDS)),
    )
        .prop_map(|(value, ty, primary, display)| {
            let mut e = Map::new();
            if let Some(v) = value {
                e.insert("value".into(), json!(v));
            }
            if let Some(t) = ty {
                e.insert("type".into(), json!(t));
            }
            if let Some(p) = primary {
                e.insert("primary".into(), json!(p));
            }
            if let Some(d) = display {
                e.insert("display".into(), json!(d));
            }
            Value::Object(e)
        })
}

/// The data of user number `i` plus its group memberships (indexes into `GROUPS`).
fn arb_user() -> impl Strategy<Value = (Value, String, String, i64, Vec<bool>)> {
    let names = (
        pick(&["alice", "bob", "émile", "carol"][..]),
        any::<u32>(),
        prop::option::of(pick(
            &["Smith", "smith", "SMITH", "Jensen", "", "Émile"][..],
        )),
        prop::option::of(pick(&["Alice", "b"][..])),
        prop::option::of(pick(WORDS)),
        prop::option::of(pick(&["ext1", "EXT1", "42", "x"][..])),
    );
    let rest = (
        prop::option::of(any::<bool>()),
        prop::option::of(pick(&["Boss", "boss", "", "Engineer", "z"][..])),
        prop::collection::vec(arb_email(), 0..3),
        prop::option::of(pick(&["42", "0042", "7"][..])),
        prop::option::of(pick(&["m1", "M1", "m2"][..])),
        prop::option::weighted(
            0.2,
            prop::collection::vec(prop::option::of(pick(&["555", "work"][..])), 0..2),
        ),
    );
    let meta = (
        pick(TIMES),
        pick(TIMES),
        1..12i64,
        prop::collection::vec(any::<bool>(), 3),
    );
    (names, rest, meta).prop_map(
        |(
            (base, mask, family, given, display, external),
            (active, title, emails, employee, manager, phones),
            (created, modified, version, groups),
        )| {
            let mut d = Map::new();
            d.insert("userName".into(), json!(case_variant(base, mask)));
            let mut name = Map::new();
            if let Some(f) = family {
                name.insert("familyName".into(), json!(f));
            }
            if let Some(g) = given {
                name.insert("givenName".into(), json!(g));
            }
            if !name.is_empty() {
                d.insert("name".into(), Value::Object(name));
            }
            if let Some(v) = display {
                d.insert("displayName".into(), json!(v));
            }
            if let Some(v) = external {
                d.insert("externalId".into(), json!(v));
            }
            if let Some(v) = active {
                d.insert("active".into(), json!(v));
            }
            if let Some(v) = title {
                d.insert("title".into(), json!(v));
            }
            if !emails.is_empty() {
                d.insert("emails".into(), Value::Array(emails));
            }
            if let Some(phones) = phones {
                let items = phones
                    .into_iter()
                    .map(|p| match p {
                        Some(v) => json!({"value": v, "type": "work"}),
                        None => json!({"type": "home"}),
                    })
                    .collect();
                d.insert("phoneNumbers".into(), Value::Array(items));
            }
            let mut ent = Map::new();
            if let Some(v) = employee {
                ent.insert("employeeNumber".into(), json!(v));
            }
            if let Some(v) = manager {
                ent.insert("manager".into(), json!({"value": v}));
            }
            if !ent.is_empty() {
                d.insert(ENTERPRISE_URN.into(), Value::Object(ent));
            }
            let (created, modified) = if created <= modified {
                (created, modified)
            } else {
                (modified, created)
            };
            (
                Value::Object(d),
                created.to_owned(),
                modified.to_owned(),
                version,
                groups,
            )
        },
    )
}

fn quoted(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// A literal for a string comparison: usually a quoted word, sometimes bare, sometimes null.
fn arb_string_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => pick(WORDS).prop_map(quoted),
        1 => pick(&["alice0", "bob", "42", "z", "é"][..]).prop_map(str::to_owned),
        1 => Just("null".to_owned()),
    ]
}

fn op_for(op: CompareOp, literal: &str) -> Option<String> {
    // Only eq and ne accept null.
    if literal == "null" && !matches!(op, CompareOp::Eq | CompareOp::Ne) {
        return None;
    }
    Some(op.as_str().to_owned())
}

fn string_compare(attrs: &'static [&'static str]) -> impl Strategy<Value = String> {
    (pick(attrs), pick(&CompareOp::ALL[..]), arb_string_literal()).prop_map(|(a, op, lit)| {
        match op_for(op, &lit) {
            Some(op) => format!("{a} {op} {lit}"),
            None => format!("{a} pr"),
        }
    })
}

fn bool_compare(attrs: &'static [&'static str]) -> impl Strategy<Value = String> {
    (
        pick(attrs),
        pick(&["eq", "ne", "EQ"][..]),
        pick(&["true", "false", "\"True\"", "\"false\"", "null"][..]),
    )
        .prop_map(|(a, op, lit)| format!("{a} {op} {lit}"))
}

fn time_compare() -> impl Strategy<Value = String> {
    (
        pick(&["meta.created", "meta.lastModified", "meta.Created"][..]),
        pick(&["eq", "ne", "gt", "ge", "lt", "le"][..]),
        prop_oneof![
            pick(TIMES).prop_map(str::to_owned),
            Just("2020-01-01T01:00:00+01:00".to_owned()),
            Just("2021-06-15T08:30:00Z".to_owned()),
        ],
    )
        .prop_map(|(a, op, t)| format!("{a} {op} {}", quoted(&t)))
}

const USER_STRING_ATTRS: &[&str] = &[
    "userName",
    "UserName",
    "displayName",
    "title",
    "externalId",
    "id",
    "name.familyName",
    "name.givenName",
    "emails.value",
    "emails.type",
    "emails.display",
    "emails",
    "phoneNumbers.value",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    "manager",
    "groups.value",
    "groups.display",
    "groups.type",
    "groups",
    "meta.version",
    "meta.resourceType",
    "nickName",
];

const PRESENT_ATTRS: &[&str] = &[
    "userName",
    "displayName",
    "title",
    "externalId",
    "name",
    "name.familyName",
    "emails",
    "emails.value",
    "emails.type",
    "emails.primary",
    "phoneNumbers",
    "phoneNumbers.value",
    "active",
    "manager",
    "employeeNumber",
    "groups",
    "groups.display",
    "meta",
    "meta.created",
    "nickName",
    "ims",
];

/// A filter on one element inside `emails[…]` / `phoneNumbers[…]`.
fn arb_element_filter() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        4 => string_compare(&["value", "type", "display", "Value"]),
        2 => bool_compare(&["primary"]),
        1 => pick(&["value", "type", "primary", "display"][..]).prop_map(|a| format!("{a} pr")),
    ];
    leaf.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} or {b})")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

fn arb_user_filter() -> impl Strategy<Value = String> {
    let value_path = (
        pick(&["emails", "phoneNumbers", "Emails"][..]),
        arb_element_filter(),
        prop::option::weighted(0.3, string_compare(&["value", "type"])),
    )
        .prop_map(|(attr, inner, trailing)| match trailing {
            Some(t) => format!("{attr}[{inner}].{t}"),
            None => format!("{attr}[{inner}]"),
        });
    let email_lookup = (pick(&["work", "Work", "home"][..]), pick(WORDS))
        .prop_map(|(t, v)| format!("emails[type eq {}].value eq {}", quoted(t), quoted(v)));
    let leaf = prop_oneof![
        6 => string_compare(USER_STRING_ATTRS),
        2 => bool_compare(&["active", "emails.primary"]),
        2 => time_compare(),
        2 => pick(PRESENT_ATTRS).prop_map(|a| format!("{a} pr")),
        3 => value_path,
        1 => email_lookup,
        1 => pick(WORDS).prop_map(|v| format!("groups[value eq {} or display co {}]", quoted(v), quoted(v))),
        1 => pick(WORDS).prop_map(|v| format!("manager[value eq {}]", quoted(v))),
        1 => pick(WORDS).prop_map(|v| format!("name[familyName ne {}]", quoted(v))),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} or {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} or {b}")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

type Directory = Vec<(Value, String, String, i64, Vec<bool>)>;

fn load(conn: &Connection, directory: &Directory) -> Vec<Value> {
    let group_pks: Vec<i64> = GROUPS
        .iter()
        .map(|(id, name)| insert_group(conn, 1, id, name))
        .collect();
    let mut rendered = Vec::new();
    for (i, (data, created, modified, version, member_of)) in directory.iter().enumerate() {
        let mut data = data.clone();
        // userName must be unique per tenant; the suffix keeps case variants colliding in
        // interesting ways ("alice0", "ALICE1").
        let user_name = format!("{}{i}", data["userName"].as_str().unwrap());
        data["userName"] = json!(user_name);
        let user = StoredUser {
            id: format!("u{i}"),
            data,
            created: created.clone(),
            last_modified: modified.clone(),
            version: *version,
        };
        let pk = insert_user(conn, 1, &user);
        let mut groups = Vec::new();
        for (g, member) in member_of.iter().enumerate() {
            if *member {
                add_user_member(conn, group_pks[g], pk, None);
                groups.push(GROUPS[g]);
            }
        }
        rendered.push(render_user(&user, &groups));
    }
    rendered
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn sql_selects_exactly_what_matches_accepts(
        directory in prop::collection::vec(arb_user(), 2..12),
        filters in prop::collection::vec(arb_user_filter(), 12),
    ) {
        let conn = fresh_db();
        let users = load(&conn, &directory);
        for text in &filters {
            let f = parse(text, &USER_RESOURCE)
                .map_err(|e| TestCaseError::fail(format!("{text:?} did not parse: {}", e.detail)))?;
            let sql = select(&conn, &USER_RESOURCE, &f);
            let mem = expected(&users, &f);
            prop_assert_eq!(
                &sql, &mem,
                "filter {}\nsql {}\nusers {}", text, compile(&f, &USER_RESOURCE).unwrap().sql,
                serde_json::to_string_pretty(&users).unwrap()
            );
        }
    }
}

fn arb_group_filter() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        4 => string_compare(&["displayName", "members.value", "members.display", "members.type", "members", "id", "externalId", "meta.resourceType"]),
        1 => pick(&["displayName", "members", "members.display", "externalId", "meta"][..]).prop_map(|a| format!("{a} pr")),
        2 => (string_compare(&["value", "display", "type"]), string_compare(&["value", "display", "type"]))
            .prop_map(|(a, b)| format!("members[{a} or not ({b})]")),
        1 => pick(WORDS).prop_map(|v| format!("members[value eq {}]", quoted(v))),
    ];
    leaf.prop_recursive(2, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} or {b})")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Groups: members are users ("u1", "U1") or nested groups, with or without `display`.
    #[test]
    fn group_sql_selects_exactly_what_matches_accepts(
        names in prop::collection::vec(pick(&["Admins", "admins", "Émile team", "team", "z"][..]), 1..5),
        user_members in prop::collection::vec((0..5usize, 0..3usize, prop::option::of(pick(WORDS))), 0..8),
        group_members in prop::collection::vec((0..5usize, 0..5usize), 0..4),
        filters in prop::collection::vec(arb_group_filter(), 12),
    ) {
        let conn = fresh_db();
        let user_ids = ["u1", "U1", "a"];
        let user_pks: Vec<i64> = user_ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let user = StoredUser {
                    id: (*id).into(),
                    data: json!({ "userName": format!("user{i}") }),
                    created: TIMES[0].into(),
                    last_modified: TIMES[0].into(),
                    version: 1,
                };
                insert_user(&conn, 1, &user)
            })
            .collect();
        let ids: Vec<String> = (0..names.len()).map(|i| format!("g{i}")).collect();
        let pks: Vec<i64> = names.iter().zip(&ids).map(|(n, id)| insert_group(&conn, 1, id, n)).collect();
        let mut members: Vec<Vec<Value>> = vec![Vec::new(); names.len()];
        let mut seen = BTreeSet::new();
        for (g, u, display) in user_members {
            let g = g % names.len();
            if seen.insert((g, "u", u)) {
                add_user_member(&conn, pks[g], user_pks[u], display);
                let display = display.map_or_else(|| format!("user{u}"), str::to_owned);
                members[g].push(json!({"value": user_ids[u], "type": "User", "display": display}));
            }
        }
        for (g, h) in group_members {
            let (g, h) = (g % names.len(), h % names.len());
            if g != h && seen.insert((g, "g", h)) {
                add_group_member(&conn, pks[g], pks[h]);
                members[g].push(json!({"value": ids[h], "type": "Group", "display": names[h]}));
            }
        }
        let groups: Vec<Value> = names.iter().zip(&ids).zip(members).map(|((n, id), m)| json!({
            "id": id, "displayName": n, "members": m,
            "meta": {"resourceType": "Group", "created": "2026-01-01T00:00:00.000000Z",
                     "lastModified": "2026-01-01T00:00:00.000000Z", "version": "W/\"1\""},
        })).collect();
        for text in &filters {
            let f = parse(text, &GROUP_RESOURCE)
                .map_err(|e| TestCaseError::fail(format!("{text:?} did not parse: {}", e.detail)))?;
            prop_assert_eq!(
                select(&conn, &GROUP_RESOURCE, &f), expected(&groups, &f),
                "filter {}\nsql {}\ngroups {}", text, compile(&f, &GROUP_RESOURCE).unwrap().sql,
                serde_json::to_string_pretty(&groups).unwrap()
            );
        }
    }
}

#[test]
fn the_largest_accepted_filter_runs() {
    let fx = fixture();
    let term = r#"emails[type eq "work" and not (value co "x")]"#;
    let half = crate::scim::filter::MAX_TERMS / 3;
    let text = vec![term; half].join(" or ");
    let f = parse(&text, &USER_RESOURCE).unwrap();
    assert_eq!(
        select(&fx.conn, &USER_RESOURCE, &f),
        expected(&fx.users, &f)
    );
    let nested = format!("{}userName pr{}", "not (".repeat(48), ")".repeat(48));
    let f = parse(&nested, &USER_RESOURCE).unwrap();
    assert_eq!(
        select(&fx.conn, &USER_RESOURCE, &f),
        expected(&fx.users, &f)
    );
}
