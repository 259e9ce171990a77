//! Lists over HTTP: cursor pagination with every order (RFC 9865 with RFC 7644 §3.4.2.3),
//! and filters on multi-valued attributes (RFC 7644 §3.4.2.2: any value satisfies).

mod common;

use common::{TestServer, USER_URN, sorted};
use hyper::Method;
use serde_json::{Value, json};

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Users with a userName and optionally a family name and display name (ties and nulls).
async fn user(
    s: &TestServer,
    user_name: &str,
    family: Option<&str>,
    display: Option<&str>,
) -> String {
    let mut body = json!({"schemas": [common::USER_URN], "userName": user_name});
    if let Some(f) = family {
        body["name"] = json!({"familyName": f});
    }
    if let Some(d) = display {
        body["displayName"] = json!(d);
    }
    let r = s.post("/scim/v2/Users", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

/// Walks a list by cursor (`query` without cursor/count), returning the ids in order;
/// `between` runs after each page with the page's ids.
async fn walk(s: &TestServer, path: &str, query: &str, count: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    for _ in 0..100 {
        let r = s
            .get_owned(format!(
                "{path}?{query}&count={count}&cursor={}",
                enc(&cursor)
            ))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let page = r.json["Resources"].as_array().unwrap();
        assert!(page.len() <= count);
        out.extend(page.iter().map(|u| u["id"].as_str().unwrap().to_string()));
        match r.json["nextCursor"].as_str() {
            Some(next) => {
                assert_eq!(page.len(), count, "a page before the last is full");
                cursor = next.to_string();
            }
            None => return out,
        }
    }
    panic!("the walk does not end");
}

/// The ids in the order startIndex paging gives (one big page).
async fn all(s: &TestServer, path: &str, query: &str) -> Vec<String> {
    let r = s.get_owned(format!("{path}?{query}&count=1000")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn cursors_walk_every_order_exactly_once() {
    let s = TestServer::start().await;
    // Created out of alphabetical order; families tie, some have none; one userName differs
    // only in case from the display of another.
    let specs: [(&str, Option<&str>, Option<&str>); 9] = [
        ("mallory", Some("Smith"), Some("Team B")),
        ("alice", Some("Jones"), None),
        ("Zoë", Some("smith"), Some("Team A")),
        ("bob", None, Some("Team B")),
        ("carol", Some("Jones"), Some("")),
        ("Émile", Some("Abel"), Some("team a")),
        ("dave", None, None),
        ("erin", Some("Smith"), Some("Team B")),
        ("frank", Some("Jones"), Some("Zed")),
    ];
    let mut ids = Vec::new();
    for (u, f, d) in specs {
        ids.push(user(&s, u, f, d).await);
    }
    for sort in [
        "userName",
        "name.familyName",
        "displayName",
        "meta.created",
        "emails",
        "name",
    ] {
        for order in ["ascending", "descending"] {
            let query = format!("sortBy={sort}&sortOrder={order}");
            let expected = all(&s, "/scim/v2/Users", &query).await;
            assert_eq!(expected.len(), ids.len());
            for count in [1, 2, 4, 9] {
                let walked = walk(&s, "/scim/v2/Users", &query, count).await;
                assert_eq!(walked, expected, "{query} count={count}");
            }
        }
    }
    // The orders themselves: userName case-insensitively, ties on the family name broken by
    // creation (pk), unassigned values last ascending and first descending.
    let by = |idx: &[usize]| idx.iter().map(|&i| ids[i].clone()).collect::<Vec<_>>();
    assert_eq!(
        walk(&s, "/scim/v2/Users", "sortBy=userName", 2).await,
        by(&[1, 3, 4, 6, 7, 8, 0, 2, 5]),
    );
    assert_eq!(
        walk(
            &s,
            "/scim/v2/Users",
            "sortBy=userName&sortOrder=descending",
            2
        )
        .await,
        by(&[5, 2, 0, 8, 7, 6, 4, 3, 1]),
    );
    assert_eq!(
        walk(&s, "/scim/v2/Users", "sortBy=name.familyName", 2).await,
        by(&[5, 1, 4, 8, 0, 2, 7, 3, 6]),
    );
    assert_eq!(
        walk(
            &s,
            "/scim/v2/Users",
            "sortBy=name.familyName&sortOrder=descending",
            3
        )
        .await,
        by(&[6, 3, 7, 2, 0, 8, 4, 1, 5]),
    );
    assert_eq!(
        walk(&s, "/scim/v2/Users", "sortBy=displayName", 2).await,
        by(&[2, 5, 0, 3, 7, 8, 1, 4, 6]),
    );
    // Default order, both directions.
    assert_eq!(walk(&s, "/scim/v2/Users", "", 4).await, ids);
    let mut rev = ids.clone();
    rev.reverse();
    assert_eq!(
        walk(&s, "/scim/v2/Users", "sortOrder=descending", 4).await,
        rev
    );
    // A filter narrows the walk; the same cursor rules hold.
    let jones = walk(
        &s,
        "/scim/v2/Users",
        &format!(
            "filter={}&sortBy=userName&sortOrder=descending",
            enc("name.familyName eq \"jones\"")
        ),
        1,
    )
    .await;
    assert_eq!(jones, by(&[8, 4, 1]));
}

#[tokio::test]
async fn sorted_cursors_survive_deletions_and_insertions_around_them() {
    let s = TestServer::start().await;
    let mut by_name = std::collections::BTreeMap::new();
    for name in ["a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"] {
        // Same family for all: every order position is decided by the pk tiebreak.
        by_name.insert(name, user(&s, name, Some("Same"), None).await);
    }
    for (sort, desc) in [
        ("userName", false),
        ("userName", true),
        ("name.familyName", false),
        ("name.familyName", true),
    ] {
        let order = if desc { "descending" } else { "ascending" };
        let q = format!("sortBy={sort}&sortOrder={order}&count=3");
        let r = s.get_owned(format!("/scim/v2/Users?{q}&cursor=")).await;
        let first: Vec<String> = r.json["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_string())
            .collect();
        let next = r.json["nextCursor"].as_str().unwrap().to_string();
        let rest_before = all(
            &s,
            "/scim/v2/Users",
            &format!("sortBy={sort}&sortOrder={order}"),
        )
        .await[3..]
            .to_vec();
        // Delete the last row of the page (the cursor's own row), one before it, and the
        // first row after it.
        for id in [&first[2], &first[0], &rest_before[0]] {
            assert_eq!(s.delete(&format!("/scim/v2/Users/{id}")).await.status, 204);
        }
        let r = s
            .get_owned(format!("/scim/v2/Users?{q}&cursor={}", enc(&next)))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let got: Vec<String> = r.json["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            got,
            rest_before[1..4.min(rest_before.len())].to_vec(),
            "{q}: nothing skipped, nothing repeated"
        );
        // Restore eight users for the next order.
        for name in ["a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"] {
            let r = s
                .get_owned(format!(
                    "/scim/v2/Users?filter={}",
                    enc(&format!("userName eq \"{name}\""))
                ))
                .await;
            if r.json["totalResults"] == 0 {
                by_name.insert(name, user(&s, name, Some("Same"), None).await);
            }
        }
    }
    // A user added after the cursor's position shows up; one added before does not.
    let r = s
        .get("/scim/v2/Users?sortBy=userName&count=2&cursor=")
        .await;
    let next = r.json["nextCursor"].as_str().unwrap().to_string();
    let early = user(&s, "a0", None, None).await;
    let late = user(&s, "zz", None, None).await;
    let r = s
        .get_owned(format!(
            "/scim/v2/Users?sortBy=userName&count=100&cursor={}",
            enc(&next)
        ))
        .await;
    let got: Vec<&str> = r.json["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert!(got.contains(&late.as_str()) && !got.contains(&early.as_str()));
    assert_eq!(got.len(), 7);
}

#[tokio::test]
async fn bad_and_stale_cursors_are_invalid_cursor() {
    let s = TestServer::start().await;
    for n in ["u1", "u2", "u3"] {
        user(&s, n, None, None).await;
    }
    for bad in [
        "bogus",
        "c",
        "c-1",
        "s",
        "s!!",
        "snot-base64",
        "%00",
        "c1c1c1c1c1c1c1c1c1c1c1c1",
    ] {
        s.get_owned(format!("/scim/v2/Users?sortBy=userName&cursor={bad}"))
            .await
            .assert_error(400, Some("invalidCursor"));
    }
    // A cursor issued for one order is stale for another: sortBy, sortOrder or none.
    let r = s
        .get("/scim/v2/Users?sortBy=userName&count=1&cursor=")
        .await;
    let by_name = enc(r.json["nextCursor"].as_str().unwrap());
    let r = s.get("/scim/v2/Users?count=1&cursor=").await;
    let default = enc(r.json["nextCursor"].as_str().unwrap());
    for q in [
        format!("sortBy=userName&sortOrder=descending&cursor={by_name}"),
        format!("sortBy=displayName&cursor={by_name}"),
        format!("cursor={by_name}"),
        format!("sortBy=userName&cursor={default}"),
        format!("sortOrder=descending&cursor={default}"),
    ] {
        s.get_owned(format!("/scim/v2/Users?{q}"))
            .await
            .assert_error(400, Some("invalidCursor"));
    }
    // The same through POST /Users/.search and POST /Groups/.search.
    s.post(
        "/scim/v2/Users/.search",
        &json!({"sortBy":"userName","cursor":"bogus"}),
    )
    .await
    .assert_error(400, Some("invalidCursor"));
    s.post(
        "/scim/v2/Users/.search",
        &json!({"sortBy":"displayName","cursor": r.json["nextCursor"]}),
    )
    .await
    .assert_error(400, Some("invalidCursor"));
    s.post(
        "/scim/v2/Groups/.search",
        &json!({"sortBy":"displayName","cursor":"c1"}),
    )
    .await
    .assert_error(400, Some("invalidCursor"));
}

#[tokio::test]
async fn search_bodies_page_by_cursor_with_sorting() {
    let s = TestServer::start().await;
    for name in ["delta", "alpha", "charlie", "bravo", "echo"] {
        let r = s
            .post(
                "/scim/v2/Groups",
                &json!({"schemas":[common::GROUP_URN],"displayName":name}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let mut names = Vec::new();
    let mut cursor = Value::from("");
    loop {
        let r = s
            .post(
                "/scim/v2/Groups/.search",
                &json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                        "sortBy":"displayName","sortOrder":"descending","count":2,
                        "cursor":cursor,"attributes":["displayName"]}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        for g in r.json["Resources"].as_array().unwrap() {
            names.push(g["displayName"].as_str().unwrap().to_string());
        }
        match r.json.get("nextCursor") {
            Some(c) => cursor = c.clone(),
            None => break,
        }
    }
    assert_eq!(names, ["echo", "delta", "charlie", "bravo", "alpha"]);
}

/// The userNames (or displayNames) a filter selects, sorted.
async fn selected(s: &TestServer, rt: &str, filter: &str) -> Vec<String> {
    let r = s
        .get_owned(format!("/scim/v2/{rt}?count=1000&filter={}", enc(filter)))
        .await;
    assert_eq!(r.status, 200, "{filter}: {}", r.text);
    let key = if rt == "Users" {
        "userName"
    } else {
        "displayName"
    };
    let mut out: Vec<String> = r.json["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u[key].as_str().unwrap().to_string())
        .collect();
    out.sort();
    // POST /.search selects the same.
    let r = s
        .post(
            &format!("/scim/v2/{rt}/.search"),
            &json!({"filter": filter, "count": 1000}),
        )
        .await;
    assert_eq!(r.json["totalResults"], out.len(), "{filter}: {}", r.text);
    out
}

/// RFC 7644 §3.4.2.2 over HTTP: every operator on a multi-valued attribute matches when any
/// value satisfies it; `not (…)` negates the whole expression.
#[tokio::test]
async fn multi_valued_filters_match_when_any_value_does() {
    let s = TestServer::start().await;
    let mk = |name: &str, emails: Value, phones: Value| json!({"schemas":[common::USER_URN],"userName":name,"emails":emails,"phoneNumbers":phones});
    let mut ids = std::collections::HashMap::new();
    for body in [
        mk(
            "both",
            json!([{"value":"w@corp.example","type":"work","primary":true},{"value":"h@home.example","type":"home"}]),
            json!([{"value":"+1 555 0100","type":"work"},{"value":"+1 555 0199","type":"mobile"}]),
        ),
        mk(
            "work",
            json!([{"value":"only@corp.example","type":"work"}]),
            json!([{"value":"+1 555 0100","type":"work"}]),
        ),
        mk("none", json!([]), json!([])),
    ] {
        let r = s.post("/scim/v2/Users", &body).await;
        assert_eq!(r.status, 201, "{}", r.text);
        ids.insert(
            body["userName"].as_str().unwrap().to_string(),
            r.json["id"].as_str().unwrap().to_string(),
        );
    }
    let users: &[(&str, &[&str])] = &[
        (r#"emails.type eq "work""#, &["both", "work"]),
        (r#"emails.type ne "work""#, &["both", "none"]),
        (r#"not (emails.type eq "work")"#, &["none"]),
        (r#"emails.type ne "home""#, &["both", "work", "none"]),
        (r#"emails.value ne "only@corp.example""#, &["both", "none"]),
        (r#"emails.value co "@home""#, &["both"]),
        (r#"emails.value sw "ONLY""#, &["work"]),
        (r#"emails.value ew "corp.example""#, &["both", "work"]),
        (r#"emails.value gt "o""#, &["both", "work"]),
        (r#"emails.value ge "w@corp.example""#, &["both"]),
        (r#"emails.value lt "i""#, &["both"]),
        (r#"emails.value le "only@corp.example""#, &["both", "work"]),
        ("emails.value pr", &["both", "work"]),
        ("not (emails pr)", &["none"]),
        (r#"emails[type eq "home" and value co "home"]"#, &["both"]),
        (r#"phoneNumbers.type ne "work""#, &["both", "none"]),
        (r#"phoneNumbers.value eq "+1 555 0199""#, &["both"]),
        (r#"phoneNumbers.value ne "+1 555 0100""#, &["both", "none"]),
        (r#"phoneNumbers.value sw "+1 555 01""#, &["both", "work"]),
        (r#"phoneNumbers.value ew "99""#, &["both"]),
        ("phoneNumbers.type pr", &["both", "work"]),
    ];
    for (filter, want) in users {
        assert_eq!(
            selected(&s, "Users", filter).await,
            sorted(want),
            "{filter}"
        );
    }
    // Groups: members.value, and users' groups.value.
    let group = |name: &str, members: &[&str]| {
        json!({"schemas":[common::GROUP_URN],"displayName":name,
               "members": members.iter().map(|m| json!({"value": ids[*m]})).collect::<Vec<_>>()})
    };
    for g in [
        group("pair", &["both", "work"]),
        group("solo", &["both"]),
        group("empty", &[]),
    ] {
        let r = s.post("/scim/v2/Groups", &g).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let (both, work) = (&ids["both"], &ids["work"]);
    let groups: Vec<(String, &[&str])> = vec![
        (format!("members.value eq \"{work}\""), &["pair"]),
        (format!("members.value ne \"{both}\""), &["empty", "pair"]),
        (format!("not (members.value eq \"{both}\")"), &["empty"]),
        (
            format!("members.value ne \"{work}\""),
            &["empty", "pair", "solo"],
        ),
        ("members pr".into(), &["pair", "solo"]),
    ];
    for (filter, want) in &groups {
        assert_eq!(
            selected(&s, "Groups", filter).await,
            sorted(want),
            "{filter}"
        );
    }
    let users: &[(&str, &[&str])] = &[
        (r#"groups.display eq "solo""#, &["both"]),
        (r#"groups.display ne "pair""#, &["both", "none"]),
        (r#"not (groups.display eq "pair")"#, &["none"]),
        (r#"groups.display co "O""#, &["both"]),
        (r#"groups.display sw "p""#, &["both", "work"]),
        (r#"groups.display gt "q""#, &["both"]),
    ];
    for (filter, want) in users {
        assert_eq!(
            selected(&s, "Users", filter).await,
            sorted(want),
            "{filter}"
        );
    }
}

/// The ids of one `startIndex` page and its totalResults.
async fn page(s: &TestServer, token: &str, path: &str, query: &str) -> (Vec<String>, u64) {
    let r = s
        .call(hyper::Method::GET, &format!("{path}?{query}"), token, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ids = r.json["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect();
    (ids, r.json["totalResults"].as_u64().unwrap())
}

/// What Okta and Entra do: `startIndex` pages of the default order, walked one after the
/// other, give every user exactly once, in the order of one big page, whatever page size,
/// before and after deletions and insertions; pages past the end are empty; a filtered
/// walk and the descending order agree with their big page too.
#[tokio::test]
async fn start_index_pages_agree_with_one_big_page_through_deletions() {
    let s = TestServer::start().await;
    for i in 0..23 {
        let family = if i % 3 == 0 { "Even" } else { "Odd" };
        user(&s, &format!("p{i:02}@example.com"), Some(family), None).await;
    }
    let token = s.token.clone();
    let walk_by_index = |query: String, count: usize| {
        let (s, token) = (&s, &token);
        async move {
            let mut out = Vec::new();
            let mut start = 1;
            let mut totals = std::collections::BTreeSet::new();
            loop {
                let q = format!("{query}&startIndex={start}&count={count}");
                let (ids, total) = page(s, token, "/scim/v2/Users", &q).await;
                totals.insert(total);
                assert_eq!(
                    totals.len(),
                    1,
                    "every page of {query} counts the same total"
                );
                if ids.is_empty() {
                    assert!(start as u64 > total, "an empty page before the end");
                    return (out, total);
                }
                start += ids.len();
                out.extend(ids);
            }
        }
    };
    for round in 0..2 {
        let everyone = all(&s, "/scim/v2/Users", "x=1").await;
        for count in [1, 4, 7, 100] {
            let (walked, total) = walk_by_index("x=1".into(), count).await;
            assert_eq!(walked, everyone, "round {round}, pages of {count}");
            assert_eq!(total, everyone.len() as u64);
        }
        let descending = all(&s, "/scim/v2/Users", "sortOrder=descending").await;
        let mut reversed = everyone.clone();
        reversed.reverse();
        assert_eq!(descending, reversed);
        let (walked, _) = walk_by_index("sortOrder=descending".into(), 5).await;
        assert_eq!(walked, descending);
        let filter = format!("filter={}", enc("name.familyName eq \"Even\""));
        let evens = all(&s, "/scim/v2/Users", &filter).await;
        let (walked, total) = walk_by_index(filter.clone(), 2).await;
        assert_eq!((walked, total), (evens.clone(), evens.len() as u64));
        // A filtered first page tells the whole total, whether it holds every match, one
        // short of them, exactly them or none (count=0), by index or by cursor.
        let n = evens.len();
        for count in [0, 1, n - 1, n, n + 1] {
            for paging in ["startIndex=1", "cursor="] {
                let q = format!("{filter}&count={count}&{paging}");
                let (ids, total) = page(&s, &token, "/scim/v2/Users", &q).await;
                assert_eq!(ids, evens[..count.min(n)], "{q}");
                assert_eq!(total, n as u64, "{q}");
            }
        }
        // A page far past the end is empty and still counts everyone.
        let (ids, total) = page(&s, &token, "/scim/v2/Users", "startIndex=500&count=10").await;
        assert!(ids.is_empty());
        assert_eq!(total, everyone.len() as u64);
        // Delete every third user (among them the first and the last), add two.
        for (i, id) in everyone.iter().enumerate() {
            if i % 3 == 0 || i == everyone.len() - 1 {
                let r = s.delete(&format!("/scim/v2/Users/{id}")).await;
                assert_eq!(r.status, 204, "{}", r.text);
            }
        }
        user(&s, &format!("late{round}a@example.com"), Some("Even"), None).await;
        user(&s, &format!("late{round}b@example.com"), None, None).await;
    }
    // Walks interleaved with creations only (the server may start a page where the one
    // before it ended): still every user once, in order.
    for i in 0..3 {
        let (before, _) = walk_by_index("x=1".into(), 4).await;
        assert_eq!(before, all(&s, "/scim/v2/Users", "x=1").await);
        user(&s, &format!("more{i}@example.com"), None, None).await;
        let (after, total) = walk_by_index("x=1".into(), 4).await;
        assert_eq!(after, all(&s, "/scim/v2/Users", "x=1").await);
        assert_eq!(total as usize, before.len() + 1);
        // A page read twice (an IdP retrying) is the same page.
        let q = "startIndex=5&count=4";
        assert_eq!(
            page(&s, &token, "/scim/v2/Users", q).await,
            page(&s, &token, "/scim/v2/Users", q).await
        );
    }
    // And one deletion in the middle of a walk shifts the rest, as offsets do.
    let everyone = all(&s, "/scim/v2/Users", "x=1").await;
    let (first, _) = page(&s, &token, "/scim/v2/Users", "startIndex=1&count=4").await;
    assert_eq!(first, everyone[..4]);
    let r = s.delete(&format!("/scim/v2/Users/{}", everyone[1])).await;
    assert_eq!(r.status, 204);
    let (second, _) = page(&s, &token, "/scim/v2/Users", "startIndex=5&count=4").await;
    assert_eq!(second, everyone[5..9]);
}

/// `totalResults` of an unfiltered list follows every create and delete of the tenant,
/// users and groups alike, and never counts another tenant's.
#[tokio::test]
async fn unfiltered_totals_follow_creates_and_deletes_and_stay_in_their_tenant() {
    let s = TestServer::start().await;
    let other = s.token_for("other");
    let total = |token: String, path: &'static str| {
        let s = &s;
        async move {
            let (_, all) = page(s, &token, path, "count=0").await;
            let (_, paged) = page(s, &token, path, "startIndex=2&count=1").await;
            assert_eq!(all, paged);
            all
        }
    };
    let mine = s.token.clone();
    assert_eq!(total(mine.clone(), "/scim/v2/Users").await, 0);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(user(&s, &format!("t{i}@example.com"), None, None).await);
    }
    for i in 0..3 {
        let r = s
            .call(
                hyper::Method::POST,
                "/scim/v2/Users",
                &other,
                Some(&json!({"schemas": [common::USER_URN], "userName": format!("o{i}@example.com")})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let g = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas": [common::GROUP_URN], "displayName": "Counted"}),
        )
        .await;
    assert_eq!(g.status, 201, "{}", g.text);
    assert_eq!(total(mine.clone(), "/scim/v2/Users").await, 5);
    assert_eq!(total(other.clone(), "/scim/v2/Users").await, 3);
    assert_eq!(total(mine.clone(), "/scim/v2/Groups").await, 1);
    assert_eq!(total(other.clone(), "/scim/v2/Groups").await, 0);
    for id in &ids[..2] {
        assert_eq!(s.delete(&format!("/scim/v2/Users/{id}")).await.status, 204);
    }
    // A failed create (a taken userName) counts nothing.
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"schemas": [common::USER_URN], "userName": "t4@example.com"}),
        )
        .await;
    assert_eq!(r.status, 409);
    let gid = g.json["id"].as_str().unwrap();
    assert_eq!(
        s.delete(&format!("/scim/v2/Groups/{gid}")).await.status,
        204
    );
    assert_eq!(total(mine.clone(), "/scim/v2/Users").await, 3);
    assert_eq!(total(other.clone(), "/scim/v2/Users").await, 3);
    assert_eq!(total(mine, "/scim/v2/Groups").await, 0);
    // The same numbers as counting the rows.
    let r = s.get("/scim/v2/Users?count=1000").await;
    assert_eq!(r.json["Resources"].as_array().unwrap().len(), 3);
}

/// A lookup (an indexed `eq`, what an IdP sends before each write) that matches several
/// users: every first page tells the whole total, whether it holds every match, one short
/// of them or none, and shows each user's own groups, or none when they are left out.
#[tokio::test]
async fn a_lookup_matching_several_users_counts_them_all_with_their_groups() {
    let s = TestServer::start().await;
    let mut shared = Vec::new();
    for name in ["s1", "s2", "s3"] {
        let body = json!({"schemas": [common::USER_URN], "userName": name,
            "emails": [{"value": "Shared@example.com", "type": "work"}]});
        let r = s.post("/scim/v2/Users", &body).await;
        assert_eq!(r.status, 201, "{}", r.text);
        shared.push(r.json["id"].as_str().unwrap().to_string());
    }
    user(&s, "other", None, None).await;
    let group = json!({"schemas": [common::GROUP_URN], "displayName": "ops",
        "members": [{"value": shared[1]}]});
    let r = s.post("/scim/v2/Groups", &group).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let filter = format!("filter={}", enc(r#"emails.value eq "shared@example.com""#));
    for count in [0, 1, 2, 3, 4, 100] {
        for extra in ["", "&attributes=userName"] {
            let q = format!("{filter}&count={count}{extra}");
            let r = s.get_owned(format!("/scim/v2/Users?{q}")).await;
            assert_eq!(r.status, 200, "{}", r.text);
            assert_eq!(r.json["totalResults"], 3, "{q}");
            let listed = r.json["Resources"].as_array().cloned().unwrap_or_default();
            let ids: Vec<&str> = listed.iter().map(|u| u["id"].as_str().unwrap()).collect();
            assert_eq!(ids, shared[..count.min(3)], "{q}");
            for user in &listed {
                let groups: Vec<&str> = user["groups"]
                    .as_array()
                    .map(|g| g.iter().map(|g| g["display"].as_str().unwrap()).collect())
                    .unwrap_or_default();
                let want: &[&str] = match (user["id"] == shared[1].as_str(), extra) {
                    (true, "") => &["ops"],
                    _ => &[],
                };
                assert_eq!(groups, want, "{q}: {user}");
            }
        }
    }
    let r = s
        .get_owned(format!(
            "/scim/v2/Users?filter={}",
            enc(r#"userName eq "S2""#)
        ))
        .await;
    assert_eq!(r.json["totalResults"], 1, "{}", r.text);
    assert_eq!(r.json["Resources"][0]["groups"][0]["display"], "ops");
}

/// Every parameter of a SearchRequest is optional (RFC 7644 §3.4.3): a client with none to
/// give may send no body at all (scim2-client's `search()` does), and gets what `{}` gets.
/// A body that is there must still be JSON.
#[tokio::test]
async fn a_search_without_a_body_lists_everything() {
    let s = TestServer::start().await;
    let id = s.create_user("ada@example.com").await;
    let auth = format!("Bearer {}", s.token);
    for path in ["/scim/v2/Users/.search", "/scim/v2/.search"] {
        let r = s
            .raw(Method::POST, path, &[("authorization", auth.as_str())], "")
            .await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert_eq!(r.json["totalResults"], 1, "{path}");
        assert_eq!(r.json["Resources"][0]["id"], id.as_str(), "{path}");
        let r = s
            .raw(
                Method::POST,
                path,
                &[
                    ("authorization", auth.as_str()),
                    ("content-type", "application/scim+json"),
                ],
                "{\"count\":",
            )
            .await;
        r.assert_error(400, Some("invalidSyntax"));
    }
}

/// A binary value is compared byte for byte (RFC 7643 §2.3.6), as `/Schemas` says: the
/// base64 of two certificates may differ only in case.
#[tokio::test]
async fn certificates_are_filtered_case_exactly() {
    let s = TestServer::start().await;
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"schemas": [USER_URN], "userName": "cert@example.com",
                    "x509Certificates": [{"value": "TUlJQ0lq"}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let found = |value: &str| {
        let q = format!("/scim/v2/Users?filter=x509Certificates.value%20eq%20%22{value}%22");
        let s = &s;
        async move { s.get_owned(q).await.json["totalResults"].clone() }
    };
    assert_eq!(found("TUlJQ0lq").await, 1);
    assert_eq!(found("tuljq0lq").await, 0);
    let schema = s
        .get("/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")
        .await;
    let certs = schema.json["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "x509Certificates")
        .unwrap();
    assert_eq!(certs["subAttributes"][0]["name"], "value");
    assert_eq!(certs["subAttributes"][0]["caseExact"], true);
}

/// A `dateTime` literal finer than a microsecond (stored times are whole microseconds)
/// compares as the instant it names: no stored time equals it, and the microsecond it
/// falls in is before it (RFC 7644 §3.4.2.2 compares dateTimes chronologically).
#[tokio::test]
async fn a_datetime_literal_between_two_microseconds_compares_as_its_instant() {
    let s = TestServer::start().await;
    let id = s.create_user("ann@example.com").await;
    let created = s.get(&format!("/scim/v2/Users/{id}")).await.json["meta"]["created"]
        .as_str()
        .unwrap()
        .to_string();
    let (micros, z) = created.split_at(created.len() - 1);
    assert_eq!((micros.len(), z), ("2026-01-01T00:00:00.000000".len(), "Z"));
    // Half a microsecond after `created`, and a tenth of a nanosecond after it (past the
    // nine digits a parse keeps).
    for later in [format!("{micros}5Z"), format!("{micros}0001Z")] {
        for (op, matches) in [
            ("eq", false),
            ("ne", true),
            ("gt", false),
            ("ge", false),
            ("lt", true),
            ("le", true),
        ] {
            let filter = format!("meta.created {op} \"{later}\"");
            let r = s
                .get(&format!("/scim/v2/Users?filter={}", enc(&filter)))
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            assert_eq!(r.json["totalResults"], u64::from(matches), "{filter}");
        }
    }
}
