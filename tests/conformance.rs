//! Regressions found by the public checker scim2-tester (`.ci/conformance.sh`), replayed
//! over HTTP with the bodies it sends, so they stay fixed without Python installed.

mod common;

use common::*;
use serde_json::json;

/// scim2-tester `check_add_attribute` / `check_replace_attribute`: a PATCH whose path is the
/// whole enterprise extension and whose value, as scim2-models serialises it, repeats the
/// extension's URN in `schemas`. `schemas` is server-owned: ignored, never stored.
#[tokio::test]
async fn a_whole_extension_patched_with_its_own_schemas() {
    let s = TestServer::start().await;
    let id = s.create_user("ext@example.com").await;
    let manager = s.create_user("boss@example.com").await;
    let path = format!("/scim/v2/Users/{id}");
    for (op, number) in [("add", "42"), ("replace", "43")] {
        let value = json!({
            "schemas": [ENTERPRISE_URN],
            "employeeNumber": number,
            "costCenter": "cc",
            "manager": {"value": manager, "$ref": s.url(&format!("/scim/v2/Users/{manager}"))}
        });
        let r = s
            .patch(
                &path,
                &json!({"schemas": [PATCH_URN],
                        "Operations": [{"op": op, "path": ENTERPRISE_URN, "value": value}]}),
            )
            .await;
        assert_eq!(r.status, 200, "{op}: {}", r.text);
        let ext = &s.get(&path).await.json[ENTERPRISE_URN];
        assert_eq!(ext["employeeNumber"], number, "{op}");
        assert_eq!(ext["manager"]["value"], manager.as_str(), "{op}");
        assert!(ext.get("schemas").is_none(), "{op}: {ext}");
    }

    // The same object in a PUT body is read the same way.
    let r = s
        .put(
            &path,
            &json!({"schemas": [USER_URN, ENTERPRISE_URN], "userName": "ext@example.com",
                    ENTERPRISE_URN: {"schemas": [ENTERPRISE_URN], "department": "R&D"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json[ENTERPRISE_URN], json!({"department": "R&D"}));
    s.stop().await;
}
