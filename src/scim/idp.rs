//! Which identity provider sent a request, and in which dialect: what the request
//! inspector shows beside each request, so "why did my push fail?" starts from who spoke
//! and how.
//!
//! [`detect`] reads the User-Agent first (Okta: `Okta SCIM Client 1.0.0`, its spec suite
//! `OKTA SCIM Integration`; Entra: `Microsoft Azure Active Directory SCIM Client`…), then
//! the request's shape, which also decides Entra's dialect (see
//! `reference/idp-behaviour.md` §2.4–2.7):
//!
//! - `aadOptscim062020` in the query: the Tenant URL carries the flag, so every request
//!   of that connection has it. The flag gives lowercase ops, real booleans, the filter
//!   path for member removal and pathless replaces with dotted keys.
//! - Without it (the default), ops are capitalised (`Replace`, `Add`, `Remove`), booleans
//!   are strings (`"False"`), members are removed by a value array on `path: "members"`.
//!   A default-shaped body wins over the flag: on-demand provisioning ignores the flag.
//!
//! Shapes alone (no telling User-Agent) name Entra by the markers above or its group
//! schema URI, OneLogin by `emails` sent as one object or a SCIM 1.1 schema, PingOne by
//! its `username Eq` filter, Okta by a create carrying `password` with `groups: []` or a
//! pathless group replace carrying `id`. Anything else is `generic`.

use serde_json::Value;

use crate::text_enum::text_enum;

text_enum! {
    /// A SCIM client scimd recognises.
    pub enum Idp ("identity provider") {
        Okta => "okta",
        Entra => "entra",
        OneLogin => "onelogin",
        JumpCloud => "jumpcloud",
        PingOne => "pingone",
        Generic => "generic",
    }
}

impl Idp {
    /// How the UI names it.
    pub fn label(self) -> &'static str {
        match self {
            Idp::Okta => "Okta",
            Idp::Entra => "Entra ID",
            Idp::OneLogin => "OneLogin",
            Idp::JumpCloud => "JumpCloud",
            Idp::PingOne => "PingOne",
            Idp::Generic => "Generic client",
        }
    }
}

text_enum! {
    /// Entra ID's two wire dialects.
    pub enum Dialect ("dialect") {
        /// Without the compatibility flag: capitalised ops, string booleans, value-array
        /// member removal.
        EntraDefault => "default",
        /// With `?aadOptscim062020` in the Tenant URL: RFC-conformant shapes.
        EntraFlag => "aadOptscim062020",
    }
}

/// What [`detect`] concluded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    pub idp: Idp,
    /// Entra's dialect, when the request shows one.
    pub dialect: Option<Dialect>,
    /// The markers that decided, for the admin: "User-Agent", "op \"Replace\"", …
    pub evidence: Vec<String>,
}

/// The Entra compatibility flag as it appears in the query.
const ENTRA_FLAG: &str = "aadoptscim062020";
/// The non-RFC second schema of Entra's group creates.
const ENTRA_GROUP_SCHEMA: &str =
    "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";

/// Detects the client of one request from its User-Agent, its query string (without the
/// `?`) and its JSON body (`None` when absent or not JSON).
pub fn detect(user_agent: &str, query: &str, body: Option<&Value>) -> Detection {
    let mut evidence = Vec::new();
    let by_agent = from_user_agent(user_agent);
    if by_agent.is_some() {
        evidence.push(format!("User-Agent \"{}\"", shorten(user_agent)));
    }
    let flag = query.split('&').any(|p| {
        p.split('=')
            .next()
            .unwrap_or("")
            .eq_ignore_ascii_case(ENTRA_FLAG)
    });
    let entra_default = body.map(entra_default_markers).unwrap_or_default();
    let by_shape = match by_agent {
        Some(_) => None,
        None if flag || !entra_default.is_empty() => Some(Idp::Entra),
        None if pingone_filter(query) => {
            evidence.push("filter operator \"Eq\"".into());
            Some(Idp::PingOne)
        }
        None => body.and_then(|b| shape_of(b, &mut evidence)),
    };
    let idp = by_agent.or(by_shape).unwrap_or(Idp::Generic);
    let dialect = if idp == Idp::Entra {
        if !entra_default.is_empty() {
            evidence.extend(entra_default);
            if flag {
                evidence.push(
                    "aadOptscim062020 in the URL, but a default-shaped body (on-demand provisioning ignores the flag)"
                        .into(),
                );
            }
            Some(Dialect::EntraDefault)
        } else if flag {
            evidence.push("aadOptscim062020 in the URL".into());
            Some(Dialect::EntraFlag)
        } else {
            Some(Dialect::EntraDefault)
        }
    } else {
        None
    };
    if idp == Idp::Entra
        && by_agent.is_none()
        && body.is_some_and(|b| has_schema(b, ENTRA_GROUP_SCHEMA))
    {
        evidence.push("Entra's ADSCIM group schema".into());
    }
    Detection {
        idp,
        dialect,
        evidence,
    }
}

fn from_user_agent(ua: &str) -> Option<Idp> {
    let ua = ua.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| ua.contains(n));
    if has(&["okta"]) {
        Some(Idp::Okta)
    } else if has(&[
        "azure active directory",
        "azuread",
        "microsoft",
        "entra",
        "aad",
    ]) {
        Some(Idp::Entra)
    } else if has(&["onelogin"]) {
        Some(Idp::OneLogin)
    } else if has(&["jumpcloud"]) {
        Some(Idp::JumpCloud)
    } else if has(&["pingone", "pingfederate", "ping identity", "pingidentity"]) {
        Some(Idp::PingOne)
    } else {
        None
    }
}

/// Markers of Entra's default dialect in a body: capitalised ops, `active` as a string,
/// members removed by a value array.
fn entra_default_markers(body: &Value) -> Vec<String> {
    let mut found = Vec::new();
    for op in operations(body) {
        let name = field(op, "op").and_then(Value::as_str).unwrap_or("");
        if matches!(name, "Add" | "Replace" | "Remove")
            && !found.iter().any(|f: &String| f.starts_with("op "))
        {
            found.push(format!("op \"{name}\""));
        }
        let path = field(op, "path").and_then(Value::as_str).unwrap_or("");
        let value = field(op, "value");
        if path.eq_ignore_ascii_case("active") && value.is_some_and(Value::is_string) {
            found.push("active sent as a string".into());
        }
        if name.eq_ignore_ascii_case("remove")
            && path.eq_ignore_ascii_case("members")
            && value.is_some_and(Value::is_array)
        {
            found.push("members removed by a value array".into());
        }
    }
    if body.get("active").is_some_and(Value::is_string) {
        found.push("active sent as a string".into());
    }
    found.dedup();
    found
}

/// A client recognised by its request's shape alone (Entra is handled by the caller).
fn shape_of(body: &Value, evidence: &mut Vec<String>) -> Option<Idp> {
    if has_schema(body, ENTRA_GROUP_SCHEMA) {
        return Some(Idp::Entra);
    }
    if body.get("emails").is_some_and(Value::is_object) {
        evidence.push("emails sent as one object".into());
        return Some(Idp::OneLogin);
    }
    if has_schema(body, "urn:scim:schemas:core:1.0") {
        evidence.push("SCIM 1.1 core schema".into());
        return Some(Idp::OneLogin);
    }
    if body.get("password").is_some()
        && body
            .get("groups")
            .is_some_and(|g| g == &Value::Array(vec![]))
    {
        evidence.push("a create carrying password and groups: []".into());
        return Some(Idp::Okta);
    }
    let pathless_id = operations(body).any(|op| {
        field(op, "op").and_then(Value::as_str) == Some("replace")
            && field(op, "path").is_none()
            && field(op, "value").is_some_and(|v| v.get("id").is_some())
    });
    if pathless_id {
        evidence.push("a pathless replace carrying id".into());
        return Some(Idp::Okta);
    }
    None
}

/// PingOne matches users with `filter=username Eq "…"`: the operator capitalised so.
fn pingone_filter(query: &str) -> bool {
    form_urlencoded::parse(query.as_bytes())
        .any(|(k, v)| k.eq_ignore_ascii_case("filter") && v.contains(" Eq "))
}

fn operations(body: &Value) -> impl Iterator<Item = &Value> {
    field(body, "Operations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// A member of an object by case-insensitive name (Entra capitalises some).
fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn has_schema(body: &Value, urn: &str) -> bool {
    body.get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter()
                .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(urn)))
        })
}

fn shorten(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const OKTA_UA: &str = "Okta SCIM Client 1.0.0";
    const ENTRA_UA: &str = "Microsoft Azure Active Directory SCIM Client";

    fn idp(ua: &str, query: &str, body: Value) -> (Idp, Option<Dialect>) {
        let body = (!body.is_null()).then_some(body);
        let d = detect(ua, query, body.as_ref());
        (d.idp, d.dialect)
    }

    #[test]
    fn user_agents() {
        let cases = [
            (OKTA_UA, Idp::Okta),
            ("OKTA SCIM Integration", Idp::Okta),
            (ENTRA_UA, Idp::Entra),
            ("OneLogin SCIM", Idp::OneLogin),
            ("JumpCloud SCIM Client", Idp::JumpCloud),
            ("PingOne-Provisioning/1.0", Idp::PingOne),
            ("PingFederate SCIM Connector", Idp::PingOne),
            ("curl/8.5.0", Idp::Generic),
            ("", Idp::Generic),
        ];
        for (ua, want) in cases {
            assert_eq!(detect(ua, "", None).idp, want, "{ua}");
        }
        let d = detect(OKTA_UA, "", None);
        assert_eq!(d.dialect, None);
        assert!(
            d.evidence[0].contains("Okta SCIM Client"),
            "{:?}",
            d.evidence
        );
    }

    #[test]
    fn entra_default_dialect_from_its_patch_shapes() {
        // §2.5: disable without the flag.
        let disable = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
        assert_eq!(
            idp(ENTRA_UA, "", disable.clone()),
            (Idp::Entra, Some(Dialect::EntraDefault))
        );
        // The same body with no User-Agent is still Entra, by shape.
        let d = detect("", "", Some(&disable));
        assert_eq!(
            (d.idp, d.dialect),
            (Idp::Entra, Some(Dialect::EntraDefault))
        );
        assert!(
            d.evidence.iter().any(|e| e == "op \"Replace\""),
            "{:?}",
            d.evidence
        );
        assert!(
            d.evidence.iter().any(|e| e == "active sent as a string"),
            "{:?}",
            d.evidence
        );
        // §2.7: member removal by a value array.
        let remove = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": "f648f8d5ea4e4cd38e9c"}]}]});
        let d = detect("", "", Some(&remove));
        assert_eq!(
            (d.idp, d.dialect),
            (Idp::Entra, Some(Dialect::EntraDefault))
        );
        assert!(d.evidence.iter().any(|e| e.contains("value array")));
        // A GET from Entra without the flag in its URL: default.
        assert_eq!(
            idp(ENTRA_UA, "filter=userName+eq+%22x%22", Value::Null),
            (Idp::Entra, Some(Dialect::EntraDefault))
        );
    }

    #[test]
    fn entra_with_the_compatibility_flag() {
        // §2.4: lowercase ops and a pathless replace with dotted keys.
        let update = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "TestMhvaes@test.microsoft.com"},
              {"op": "replace", "value": {"displayName": "Bjfe", "name.givenName": "Kkom"}}]});
        assert_eq!(
            idp(ENTRA_UA, "aadOptscim062020", update),
            (Idp::Entra, Some(Dialect::EntraFlag))
        );
        let remove =
            json!({"Operations": [{"op": "remove", "path": "members[value eq \"7f4bc1a3\"]"}]});
        assert_eq!(
            idp("", "aadOptscim062020&x=1", remove),
            (Idp::Entra, Some(Dialect::EntraFlag))
        );
        assert_eq!(
            idp(ENTRA_UA, "filter=x&aadOptscim062020", Value::Null),
            (Idp::Entra, Some(Dialect::EntraFlag))
        );
        // On-demand provisioning ignores the flag: the body's default shape wins.
        let d = detect(
            ENTRA_UA,
            "aadOptscim062020",
            Some(&json!({"Operations": [{"op": "Replace", "path": "active", "value": "True"}]})),
        );
        assert_eq!(d.dialect, Some(Dialect::EntraDefault));
        assert!(
            d.evidence.iter().any(|e| e.contains("on-demand")),
            "{:?}",
            d.evidence
        );
    }

    #[test]
    fn entra_group_create_by_its_schema() {
        let create = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", ENTRA_GROUP_SCHEMA],
            "externalId": "8aa1a0c0", "displayName": "displayName", "meta": {"resourceType": "Group"}});
        assert_eq!(idp("", "", create).0, Idp::Entra);
    }

    #[test]
    fn okta_shapes_without_its_user_agent() {
        // §1.3: the create carries password and groups: [].
        let create = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "test.user@okta.local",
            "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
            "groups": [], "password": "1mz050nq", "active": true});
        assert_eq!(idp("", "", create), (Idp::Okta, None));
        // §1.7: the pathless group replace carrying id.
        let rename = json!({"Operations": [{"op": "replace", "value": {"id": "abf4dd94", "displayName": "Test SCIMv2"}}]});
        assert_eq!(idp("", "", rename), (Idp::Okta, None));
        // Okta's deactivation is lowercase and boolean: not Entra's default dialect.
        let deactivate = json!({"Operations": [{"op": "replace", "value": {"active": false}}]});
        assert_eq!(idp(OKTA_UA, "", deactivate), (Idp::Okta, None));
    }

    #[test]
    fn onelogin_and_generic_shapes() {
        assert_eq!(
            idp("", "", json!({"userName": "a", "emails": {"value": "a@x"}})).0,
            Idp::OneLogin
        );
        assert_eq!(
            idp(
                "",
                "",
                json!({"schemas": ["urn:scim:schemas:core:1.0"], "userName": "a"})
            )
            .0,
            Idp::OneLogin
        );
        assert_eq!(
            idp("", "", json!({"userName": "a", "active": true})),
            (Idp::Generic, None)
        );
        // §11: PingOne's lookup filter.
        assert_eq!(
            idp("", "filter=username+Eq+%22a%22", Value::Null).0,
            Idp::PingOne
        );
        assert_eq!(
            idp("", "filter=userName+eq+%22a%22", Value::Null).0,
            Idp::Generic
        );
    }
}
