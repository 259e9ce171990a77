//! Members that existed before provisioning (CSV or manual) are findable by the IdP's
//! lookups and listings, and the IdP's first write adopts them (DESIGN.md, sync rules).

mod common;

use common::*;
use scimd::db;
use scimd::model::Actor;
use serde_json::json;

async fn import(s: &TestServer, csv: &str) {
    let bytes = csv.as_bytes().to_vec();
    scimd::ops::members::import(&s.db, &Actor::cli(), 1, bytes, None)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e:?}"));
}

fn member(s: &TestServer, email: &str) -> db::members::MemberRow {
    db::members::by_email(&s.db.conn().unwrap(), 1, email)
        .unwrap()
        .unwrap()
}

fn lookup(email: &str) -> String {
    format!(
        "/scim/v2/Users?filter=userName%20eq%20%22{}%22",
        email.replace('@', "%40")
    )
}

#[tokio::test]
async fn imported_members_are_found_by_lookups_and_adopted_by_the_first_idp_write() {
    let s = TestServer::start().await;
    import(
        &s,
        "email,userName,givenName,familyName,role,Provisioning Managed\n\
         ada@example.com,ada@example.com,Ada,Lovelace,admin,true\n\
         bob@example.com,,Bob,Byte,,true\n\
         carol@example.com,,Carol,Cole,,true\n\
         dan@example.com,,Dan,Dee,,false\n",
    )
    .await;

    // Okta's import walk and lookups find the managed members, not the unmanaged one.
    let all = s.get("/scim/v2/Users?startIndex=1&count=100").await;
    assert_eq!(all.json["totalResults"], 3, "{}", all.text);
    let ada = s.get(&lookup("ADA@example.com")).await;
    assert_eq!(ada.json["totalResults"], 1);
    let seed = &ada.json["Resources"][0];
    assert_eq!(
        seed["name"],
        json!({"givenName":"Ada","familyName":"Lovelace"})
    );
    assert_eq!(seed["emails"][0]["value"], "ada@example.com");
    assert_eq!(seed["active"], true);
    assert_eq!(
        s.get(&lookup("dan@example.com")).await.json["totalResults"],
        0
    );
    let ada_id = seed["id"].as_str().unwrap().to_string();
    assert!(
        member(&s, "ada@example.com").user_id.is_none(),
        "not linked before the IdP writes"
    );

    // Okta links to the user it found and pushes the profile with a PUT: adopted.
    let r = s
        .put(&format!("/scim/v2/Users/{ada_id}"), &json!({"userName":"ada@example.com","name":{"givenName":"Ada","familyName":"King"},
            "emails":[{"value":"ada@example.com","primary":true,"type":"work"}],"externalId":"00u1","active":true}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let m = member(&s, "ada@example.com");
    assert_eq!(
        m.user_id.as_deref(),
        Some(ada_id.as_str()),
        "the member is linked to the user the IdP adopted"
    );
    assert_eq!(
        m.profile.family_name.as_deref(),
        Some("King"),
        "once linked, the IdP's values win"
    );

    // An IdP that POSTs without looking up first adopts the seed too (same id, 201).
    let bob_seed = s.get(&lookup("bob@example.com")).await.json["Resources"][0]["id"].clone();
    let r = s.post("/scim/v2/Users", &json!({"userName":"bob@example.com","emails":[{"value":"bob@example.com"}],"active":true})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["id"], bob_seed);
    assert_eq!(
        member(&s, "bob@example.com").user_id.as_deref(),
        bob_seed.as_str()
    );
    // Now the userName is the IdP's: a second POST conflicts as usual.
    s.post("/scim/v2/Users", &json!({"userName":"bob@example.com"}))
        .await
        .assert_error(409, Some("uniqueness"));

    // Carol is still only a seed; a group push that includes her adopts her.
    let carol_seed = s.get(&lookup("carol@example.com")).await.json["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"displayName":"scimd-role-member","members":[{"value":carol_seed}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let carol = member(&s, "carol@example.com");
    assert_eq!(carol.user_id.as_deref(), Some(carol_seed.as_str()));
    assert_eq!(carol.role.to_string(), "member");

    // Marking a member not managed withdraws its seed; managed again brings it back.
    import(
        &s,
        "email,givenName,familyName\nerin@example.com,Erin,Eve\n",
    )
    .await;
    assert_eq!(
        s.get(&lookup("erin@example.com")).await.json["totalResults"],
        1
    );
    let erin = member(&s, "erin@example.com");
    scimd::ops::members::set_managed(&s.db, &Actor::cli(), 1, erin.id.clone(), false)
        .await
        .unwrap();
    assert_eq!(
        s.get(&lookup("erin@example.com")).await.json["totalResults"],
        0
    );
    scimd::ops::members::set_managed(&s.db, &Actor::cli(), 1, erin.id.clone(), true)
        .await
        .unwrap();
    assert_eq!(
        s.get(&lookup("erin@example.com")).await.json["totalResults"],
        1
    );
}

#[tokio::test]
async fn seeds_never_stand_in_for_people_the_idp_already_has() {
    let s = TestServer::start().await;
    s.create_user("ada@example.com").await;
    import(
        &s,
        "email,userName\nada@example.com,ada@example.com\nzed@example.com,zed@example.com\n",
    )
    .await;
    // Ada came from the IdP; only Zed needs a seed.
    assert_eq!(s.get("/scim/v2/Users").await.json["totalResults"], 2);
    assert_eq!(
        s.get(&lookup("zed@example.com")).await.json["totalResults"],
        1
    );
    // Re-importing with a new name refreshes the seed in place.
    let before = s.get(&lookup("zed@example.com")).await.json["Resources"][0].clone();
    import(
        &s,
        "email,userName,givenName\nzed@example.com,zed@example.com,Zed\n",
    )
    .await;
    let after = s.get(&lookup("zed@example.com")).await.json["Resources"][0].clone();
    assert_eq!(after["id"], before["id"]);
    assert_eq!(after["name"]["givenName"], "Zed");
}

/// Entra matches an existing person, sends only its `active: "True"` (which changes
/// nothing), and later deletes the user: both writes reach the member. The deletion
/// archives it and apps hear of it; nothing is acknowledged and dropped.
#[tokio::test]
async fn a_no_op_write_adopts_a_seed_and_a_delete_of_a_seed_archives_its_member() {
    let s = TestServer::start().await;
    import(
        &s,
        "email,userName,givenName,familyName,role,Provisioning Managed\n\
         ann@example.com,,Ann,Lee,admin,true\n\
         ben@example.com,,Ben,Ode,admin,true\n",
    )
    .await;
    let patch = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations":[{"op":"Replace","path":"active","value":"True"}]});

    // Ann: the no-op PATCH adopts her, then the DELETE archives her.
    let ann = s.get(&lookup("ann@example.com")).await.json["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.patch(&format!("/scim/v2/Users/{ann}"), &patch).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        member(&s, "ann@example.com").user_id.as_deref(),
        Some(ann.as_str()),
        "the first write, even one that changes nothing, adopts the seed"
    );
    let r = s.delete(&format!("/scim/v2/Users/{ann}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(member(&s, "ann@example.com").status.to_string(), "archived");

    // Ben: deleted with no write before it, still archived.
    let ben = s.get(&lookup("ben@example.com")).await.json["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.delete(&format!("/scim/v2/Users/{ben}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(member(&s, "ben@example.com").status.to_string(), "archived");
    assert_eq!(
        s.get(&lookup("ben@example.com")).await.json["totalResults"],
        0,
        "an archived member stands for nobody the IdP could match"
    );
    let events: Vec<(String, String)> = {
        let conn = s.db.conn().unwrap();
        let mut stmt = conn
            .prepare("SELECT type, subject FROM events WHERE type = 'member.archived' ORDER BY seq")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(events.len(), 2, "{events:?}");
}
