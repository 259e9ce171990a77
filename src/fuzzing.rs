//! The properties the fuzz targets (`tests/fuzz/`, cargo-fuzz on nightly) check, one
//! function per target, each taking the raw input and panicking when a property fails.
//!
//! They live in the library so the fuzz targets and `tests/fuzz_corpora.rs` (which replays
//! every corpus file on the stable toolchain under plain `cargo test`) run the same code.
//! Nothing here is part of scimd's API; it only calls the pure layers (`scim`, `sync`, and
//! the admin UI's form parsing, which is kept free of hyper for this reason).

use serde_json::{Map, Value, json};

use crate::db::filter_sql;
use crate::http::{Form, roles_of, settings_update_of};
use crate::model::{Profile, Role, Settings};
use crate::scim::filter::{self, Filter};
use crate::scim::patch;
use crate::scim::path::{self, PatchPath};
use crate::scim::resource;
use crate::scim::schema::{GROUP_RESOURCE, ResourceType, USER_RESOURCE};
use crate::sync::member_csv;

/// The resource type an input is checked against: its first byte picks one, so one corpus
/// covers both.
fn resource_type(data: &[u8]) -> (&'static ResourceType, &[u8]) {
    match data.split_first() {
        Some((b, rest)) if b % 2 == 1 => (&GROUP_RESOURCE, rest),
        Some((_, rest)) => (&USER_RESOURCE, rest),
        None => (&USER_RESOURCE, data),
    }
}

/// A stored user with something in every kind of attribute, for filters and PATCH to act on.
pub fn sample_user() -> Map<String, Value> {
    let body = json!({
        "userName": "bjensen@example.com",
        "externalId": "00u1",
        "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Ms. Barbara J Jensen"},
        "displayName": "Babs Jensen",
        "title": "Tour Guide",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "phoneNumbers": [{"value": "555-555-8377", "type": "work"}],
        "addresses": [{"type": "work", "streetAddress": "100 Universal City Plaza", "country": "USA"}],
        "roles": [{"value": "admin"}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984",
            "department": "Tour Operations",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
        }
    });
    resource::normalize(&USER_RESOURCE, body).expect("the sample user is valid")
}

/// A stored group (members live in their own table, so its data is small).
pub fn sample_group() -> Map<String, Value> {
    resource::normalize(
        &GROUP_RESOURCE,
        json!({"displayName": "Tour Guides", "externalId": "g-1"}),
    )
    .expect("the sample group is valid")
}

fn sample(rt: &'static ResourceType) -> Map<String, Value> {
    if std::ptr::eq(rt, &GROUP_RESOURCE) {
        sample_group()
    } else {
        sample_user()
    }
}

// ---------------------------------------------------------------------------------------
// Filters

/// Writes `f` back as filter text that [`filter::parse`] reads as the same filter. Inside a
/// value path (`element`), attribute references are relative to one element.
pub fn render_filter(f: &Filter) -> String {
    let mut out = String::new();
    render(f, false, &mut out);
    out
}

fn render(f: &Filter, element: bool, out: &mut String) {
    let path = |a: &crate::scim::schema::AttrRef| {
        if element {
            a.attr.name.to_string()
        } else {
            a.path()
        }
    };
    match f {
        Filter::Compare { attr, op, value } => {
            out.push_str(&path(attr));
            out.push(' ');
            out.push_str(op.as_str());
            out.push(' ');
            out.push_str(&value.to_string());
        }
        Filter::Present(attr) => {
            out.push_str(&path(attr));
            out.push_str(" pr");
        }
        // `or` binds loosest and both chain to the left, so only a right operand of the
        // same kind, or an `or` inside an `and`, needs parentheses.
        Filter::Or(a, b) => {
            render(a, element, out);
            out.push_str(" or ");
            render_operand(b, matches!(**b, Filter::Or(..)), element, out);
        }
        Filter::And(a, b) => {
            render_operand(a, matches!(**a, Filter::Or(..)), element, out);
            out.push_str(" and ");
            render_operand(
                b,
                matches!(**b, Filter::Or(..) | Filter::And(..)),
                element,
                out,
            );
        }
        Filter::Not(inner) => {
            out.push_str("not (");
            render(inner, element, out);
            out.push(')');
        }
        Filter::ValuePath { attr, filter } => {
            out.push_str(&path(attr));
            out.push('[');
            render(filter, true, out);
            out.push(']');
        }
    }
}

fn render_operand(f: &Filter, parens: bool, element: bool, out: &mut String) {
    if parens {
        out.push('(');
    }
    render(f, element, out);
    if parens {
        out.push(')');
    }
}

/// Filter parser: never panics; what it accepts renders back to text it reads as the same
/// filter; SQL compilation and in-memory evaluation accept every filter it produces.
pub fn check_filter(data: &[u8]) {
    let (rt, data) = resource_type(data);
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = match filter::parse(input, rt) {
        Ok(f) => f,
        Err(e) => {
            assert_eq!(e.status, 400, "a bad filter is a client error: {e:?}");
            return;
        }
    };
    let rendered = render_filter(&parsed);
    if rendered.chars().count() <= filter::MAX_LENGTH {
        let again = filter::parse(&rendered, rt).unwrap_or_else(|e| {
            panic!("{input:?} parsed, its rendering {rendered:?} did not: {e:?}")
        });
        assert_eq!(again, parsed, "{input:?} rendered as {rendered:?}");
    }
    filter_sql::compile(&parsed, rt)
        .unwrap_or_else(|e| panic!("{input:?} parsed but does not compile to SQL: {e:?}"));
    let resource = Value::Object(sample(rt));
    let yes = filter::matches(&parsed, &resource);
    let negated = Filter::Not(Box::new(parsed));
    assert_eq!(filter::matches(&negated, &resource), !yes);
}

// ---------------------------------------------------------------------------------------
// PATCH paths

/// Attribute-path parser: never panics; an accepted path without a value filter is named
/// canonically by `display()`, which parses to the same target.
pub fn check_path(data: &[u8]) {
    let (rt, data) = resource_type(data);
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = match path::parse(input, rt) {
        Ok(p) => p,
        Err(e) => {
            assert_eq!(e.status, 400, "a bad path is a client error: {e:?}");
            return;
        }
    };
    let PatchPath::Attribute(p) = parsed else {
        return;
    };
    if p.filter.is_some() {
        return;
    }
    let shown = p.display();
    match path::parse(&shown, rt) {
        Ok(PatchPath::Attribute(q)) => {
            assert!(
                q.extension.map(|s| s.id) == p.extension.map(|s| s.id)
                    && std::ptr::eq(q.attr, p.attr)
                    && q.sub.map(|a| a.name) == p.sub.map(|a| a.name)
                    && q.filter.is_none(),
                "{input:?} displayed as {shown:?} names another attribute"
            );
        }
        other => panic!("{input:?} displayed as {shown:?} does not parse back: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// PATCH

/// PATCH parse + apply: never panics; a failed apply leaves the resource exactly as it was;
/// a successful one leaves data that is canonical (a PUT of it stores the same thing), and
/// says it changed the data exactly when it did.
pub fn check_patch(data: &[u8]) {
    let (rt, data) = resource_type(data);
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let ops = match patch::parse(body) {
        Ok(ops) => ops,
        Err(e) => {
            assert_eq!(e.status, 400, "a bad PatchOp is a client error: {e:?}");
            return;
        }
    };
    let before = sample(rt);
    let mut data = before.clone();
    match patch::apply(rt, &mut data, &ops) {
        Err(e) => {
            assert!(e.status == 400, "a refused PATCH is a client error: {e:?}");
            assert_eq!(data, before, "a failed PATCH changed the resource");
        }
        Ok(outcome) => {
            assert_eq!(
                outcome.data_changed,
                data != before,
                "data_changed is wrong"
            );
            let again = resource::normalize(rt, Value::Object(data.clone())).unwrap_or_else(|e| {
                panic!("a PATCH left data a PUT would refuse: {e:?}\n{data:#?}")
            });
            assert_eq!(again, data, "a PATCH left data that is not canonical");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Normalisation

/// Resource normalisation (what POST and PUT bodies go through): never panics, and is
/// idempotent: normalising its own output gives it back unchanged.
pub fn check_normalize(data: &[u8]) {
    let (rt, data) = resource_type(data);
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let once = match resource::normalize(rt, body) {
        Ok(d) => d,
        Err(e) => {
            assert_eq!(e.status, 400, "a bad body is a client error: {e:?}");
            return;
        }
    };
    let twice = resource::normalize(rt, Value::Object(once.clone()))
        .unwrap_or_else(|e| panic!("normalised data is refused when sent again: {e:?}\n{once:#?}"));
    assert_eq!(twice, once, "normalisation is not idempotent");
}

// ---------------------------------------------------------------------------------------
// Members CSV

/// Members CSV import: never panics; every accepted row has an email; what it accepts,
/// exported and imported again, gives the same members.
pub fn check_member_csv(data: &[u8]) {
    let settings = Settings::default();
    let rows = match member_csv::parse(data, &settings) {
        Ok(rows) => rows,
        Err(errors) => {
            assert!(!errors.is_empty(), "refused without a reason");
            return;
        }
    };
    let members: Vec<(Profile, Role, bool)> = rows
        .iter()
        .map(|r| {
            (
                Profile {
                    email: Some(r.email.clone()),
                    user_name: r.user_name.clone(),
                    given_name: r.given_name.clone(),
                    family_name: r.family_name.clone(),
                    display_name: None,
                },
                r.role
                    .clone()
                    .unwrap_or_else(|| settings.default_role.clone()),
                r.managed.unwrap_or(true),
            )
        })
        .collect();
    let exported = member_csv::export(
        members
            .iter()
            .map(|(p, r, m)| (p, r, *m, crate::model::MemberStatus::Active)),
    );
    let again = member_csv::parse(exported.as_bytes(), &settings)
        .unwrap_or_else(|e| panic!("an export of accepted rows is refused: {e:?}\n{exported}"));
    assert_eq!(again.len(), rows.len(), "{exported}");
    for ((p, role, managed), row) in members.iter().zip(&again) {
        assert_eq!(p.email.as_ref(), Some(&row.email));
        assert_eq!(p.user_name, row.user_name);
        assert_eq!(p.given_name, row.given_name);
        assert_eq!(p.family_name, row.family_name);
        assert_eq!(Some(role), row.role.as_ref());
        assert_eq!(Some(*managed), row.managed);
    }
}

// ---------------------------------------------------------------------------------------
// Admin forms

/// The admin UI's form bodies: never panic; decoded fields encode back to a body that
/// decodes to the same fields; the settings and roles forms either name what is wrong or
/// give values inside their ranges.
pub fn check_admin_form(data: &[u8]) {
    let Ok(form) = Form::urlencoded(data) else {
        return;
    };
    let mut encoder = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form.pairs() {
        encoder.append_pair(k, v);
    }
    let encoded = encoder.finish();
    let again = Form::urlencoded(encoded.as_bytes())
        .unwrap_or_else(|e| panic!("a re-encoded form does not decode: {e}: {encoded:?}"));
    assert_eq!(again.pairs(), form.pairs(), "{encoded:?}");

    let defaults = Settings::default();
    if let Ok(update) = settings_update_of(&form) {
        let settings = update.applied_to(&defaults);
        let _ = settings.validate();
    }
    if let Ok((roles, default_role, role_prefix)) = roles_of(&form) {
        for role in roles.iter().chain([&default_role]) {
            assert_eq!(role.as_str().parse::<Role>().as_ref(), Ok(role));
        }
        let update = crate::ops::settings::Update {
            roles: Some(roles),
            default_role: Some(default_role),
            role_prefix: Some(role_prefix),
            ..Default::default()
        };
        let _ = update.applied_to(&defaults).validate();
    }
}
