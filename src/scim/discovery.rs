//! Discovery (RFC 7644 §4): ServiceProviderConfig, ResourceTypes and Schemas, all rendered
//! from the same static definitions the server validates with.

use serde_json::{Value, json};

use super::error::ScimError;
use super::schema::{
    ALL_RESOURCE_TYPES, ALL_SCHEMAS, LIST_RESPONSE_URN, SERVICE_PROVIDER_CONFIG_URN,
};

/// Largest page a list request returns; larger `count`s are capped to it.
pub const MAX_PAGE_SIZE: u64 = 1000;
/// Page size when the client sends no `count`.
pub const DEFAULT_PAGE_SIZE: u64 = 100;

/// `/ServiceProviderConfig`. Every sub-object is filled, including bulk limits although
/// bulk is not offered (Okta's conformance suite asserts they are present).
pub fn service_provider_config(base: &str, max_body_bytes: usize) -> Value {
    json!({
        "schemas": [SERVICE_PROVIDER_CONFIG_URN],
        "documentationUri": "https://www.rfc-editor.org/rfc/rfc7644",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 1000, "maxPayloadSize": max_body_bytes},
        "filter": {"supported": true, "maxResults": MAX_PAGE_SIZE},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "pagination": {
            "cursor": true,
            "index": true,
            "defaultPaginationMethod": "index",
            "defaultPageSize": DEFAULT_PAGE_SIZE,
            "maxPageSize": MAX_PAGE_SIZE,
        },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a bearer token issued by this scimd (scimd token create, or the admin UI).",
            "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
            "primary": true,
        }, {
            "type": "oauth2",
            "name": "OAuth 2.0",
            "description": "Access tokens from this scimd's authorization server (authorization code or client credentials; metadata at /.well-known/oauth-authorization-server).",
            "specUri": "https://www.rfc-editor.org/rfc/rfc6749",
        }, {
            "type": "httpbasic",
            "name": "HTTP Basic",
            "description": "A SCIM token as the password, with any user name.",
            "specUri": "https://www.rfc-editor.org/rfc/rfc7617",
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        }
    })
}

fn list(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_URN],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// `/ResourceTypes`
pub fn resource_types(base: &str) -> Value {
    list(
        ALL_RESOURCE_TYPES
            .iter()
            .map(|rt| rt.to_json(base))
            .collect(),
    )
}

/// `/ResourceTypes/{name}`
pub fn resource_type(base: &str, name: &str) -> Result<Value, ScimError> {
    ALL_RESOURCE_TYPES
        .iter()
        .find(|rt| rt.name.eq_ignore_ascii_case(name))
        .map(|rt| rt.to_json(base))
        .ok_or_else(|| ScimError::not_found(format!("no resource type {name:?}")))
}

/// `/Schemas`
pub fn schemas(base: &str) -> Value {
    list(ALL_SCHEMAS.iter().map(|s| s.to_json(base)).collect())
}

/// `/Schemas/{id}`
pub fn schema(base: &str, id: &str) -> Result<Value, ScimError> {
    ALL_SCHEMAS
        .iter()
        .find(|s| s.id.eq_ignore_ascii_case(id))
        .map(|s| s.to_json(base))
        .ok_or_else(|| ScimError::not_found(format!("no schema {id:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_schemas_list_external_id_for_validators_that_look_for_it() {
        let listed = schemas("https://x/scim/v2");
        let names = |id: &str| -> Vec<String> {
            let s = listed["Resources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["id"] == id)
                .unwrap();
            s["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["name"].as_str().unwrap().to_string())
                .collect()
        };
        for core in [
            crate::scim::schema::USER_URN,
            crate::scim::schema::GROUP_URN,
        ] {
            let names = names(core);
            assert_eq!(
                names.iter().filter(|n| *n == "externalId").count(),
                1,
                "{core}"
            );
            assert!(!names.iter().any(|n| n == "id" || n == "meta"), "{core}");
        }
        assert!(!names(crate::scim::schema::ENTERPRISE_URN).contains(&"externalId".to_string()));
    }

    #[test]
    fn every_attribute_definition_is_complete() {
        fn check(a: &Value) {
            for key in [
                "name",
                "type",
                "multiValued",
                "description",
                "required",
                "caseExact",
                "mutability",
                "returned",
                "uniqueness",
            ] {
                assert!(a.get(key).is_some(), "{key} missing in {a}");
            }
            if a["type"] == "complex" {
                a["subAttributes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .for_each(check);
            }
            if a["type"] == "reference" {
                assert!(!a["referenceTypes"].as_array().unwrap().is_empty());
            }
        }
        let all = schemas("http://h/scim/v2");
        assert_eq!(all["totalResults"], 3);
        for s in all["Resources"].as_array().unwrap() {
            s["attributes"].as_array().unwrap().iter().for_each(check);
        }
    }

    #[test]
    fn lookups_by_id_ignore_case_and_miss_with_404() {
        assert!(schema("b", "URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:GROUP").is_ok());
        assert_eq!(schema("b", "nope").unwrap_err().status, 404);
        assert_eq!(resource_type("b", "user").unwrap()["endpoint"], "/Users");
    }
}
