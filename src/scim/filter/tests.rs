//! Table-driven tests for the filter grammar and its in-memory semantics.

use serde_json::json;

use super::*;
use crate::scim::ScimType;
use crate::scim::schema::{GROUP_RESOURCE, USER_RESOURCE};

fn user(f: &str) -> Filter {
    parse(f, &USER_RESOURCE).unwrap_or_else(|e| panic!("{f:?} should parse: {}", e.detail))
}

fn user_err(f: &str) -> String {
    match parse(f, &USER_RESOURCE) {
        Ok(parsed) => panic!("{f:?} should be rejected, parsed as {parsed:?}"),
        Err(e) => {
            assert_eq!(e.status, 400);
            assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{f:?}");
            e.detail
        }
    }
}

/// A compact rendering of the AST, so expectations read like the filters they test.
fn show(f: &Filter) -> String {
    match f {
        Filter::Compare { attr, op, value } => {
            format!("{} {} {}", attr.path(), op.as_str(), value)
        }
        Filter::Present(attr) => format!("{} pr", attr.path()),
        Filter::And(a, b) => format!("({} and {})", show(a), show(b)),
        Filter::Or(a, b) => format!("({} or {})", show(a), show(b)),
        Filter::Not(a) => format!("not {}", show(a)),
        Filter::ValuePath { attr, filter } => format!("{}[{}]", attr.path(), show(filter)),
    }
}

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

#[test]
fn parses_the_rfc_grammar_and_what_idps_send() {
    let cases: &[(&str, String)] = &[
        // RFC 7644 §3.4.2.2 examples.
        (r#"userName eq "bjensen""#, r#"userName eq "bjensen""#.into()),
        (r#"name.familyName co "O'Malley""#, r#"name.familyName co "O'Malley""#.into()),
        (r#"userName sw "J""#, r#"userName sw "J""#.into()),
        (
            r#"urn:ietf:params:scim:schemas:core:2.0:User:name.familyName co "O'Malley""#,
            r#"name.familyName co "O'Malley""#.into(),
        ),
        ("title pr", "title pr".into()),
        (
            r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified gt "2011-05-13T04:42:34.000000Z""#.into(),
        ),
        (
            r#"title pr and userType eq "Employee""#,
            r#"(title pr and userType eq "Employee")"#.into(),
        ),
        (
            r#"title pr or userType eq "Intern""#,
            r#"(title pr or userType eq "Intern")"#.into(),
        ),
        (
            r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
            r#"(userType eq "Employee" and (emails.value co "example.com" or emails.value co "example.org"))"#.into(),
        ),
        (
            r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
            r#"(userType ne "Employee" and not (emails.value co "example.com" or emails.value co "example.org"))"#.into(),
        ),
        (
            r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
            r#"(userType eq "Employee" and emails[(type eq "work" and value co "@example.com")])"#.into(),
        ),
        (
            r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
            r#"(emails[(type eq "work" and value co "@example.com")] or ims[(type eq "xmpp" and value co "@foo.com")])"#.into(),
        ),
        // IdP forms (reference/idp-behaviour.md §2.3, §2.10, §9 items 12 and 14).
        ("externalId eq jyoung", r#"externalId eq "jyoung""#.into()),
        ("externalId eq 00123", r#"externalId eq "00123""#.into()),
        (
            r#"emails[type eq "work"].value eq "user@contoso.com""#,
            r#"emails[(type eq "work" and value eq "user@contoso.com")]"#.into(),
        ),
        (
            "name.FamilyName eq Employee and (emails.Value co example.com or emails.Value co example.org)",
            r#"(name.familyName eq "Employee" and (emails.value co "example.com" or emails.value co "example.org"))"#.into(),
        ),
        ("userName sw O", r#"userName sw "O""#.into()),
        (
            "meta.Created gt 2015-10-10T14:38:21.8617979-07:00",
            r#"meta.created gt "2015-10-10T21:38:21.861797Z""#.into(),
        ),
        (r#"DisplayName eq "BobIsAmazing""#, r#"displayName eq "BobIsAmazing""#.into()),
        (r#"USERNAME EQ "X""#, r#"userName eq "X""#.into()),
        (
            &format!(r#"{ENT}:employeeNumber eq "42""#),
            format!(r#"{ENT}:employeeNumber eq "42""#),
        ),
        (
            &format!(r#"{ENT}:manager.value eq "m1""#),
            format!(r#"{ENT}:manager.value eq "m1""#),
        ),
        (r#"employeeNumber eq "7""#, format!(r#"{ENT}:employeeNumber eq "7""#)),
        (
            "urn:ietf:params:scim:schemas:core:2.0:User:userName eq x",
            r#"userName eq "x""#.into(),
        ),
        // Literals and coercions.
        ("active eq true", "active eq true".into()),
        ("active eq False", "active eq false".into()),
        (r#"active eq "False""#, "active eq false".into()),
        (r#"active ne "true""#, "active ne true".into()),
        ("title eq null", "title eq null".into()),
        ("title ne null", "title ne null".into()),
        (r#"title eq "a \"quoted\" \u00e9\n""#, r#"title eq "a \"quoted\" é\n""#.into()),
        ("title eq 12.5", r#"title eq "12.5""#.into()),
        ("title eq true", r#"title eq "true""#.into()),
        // Whitespace, parentheses and `not` without a space.
        ("  userName   eq   x  ", r#"userName eq "x""#.into()),
        ("not(title pr)", "not title pr".into()),
        ("NOT (title pr)", "not title pr".into()),
        ("((title pr))", "title pr".into()),
        ("emails [type eq work]", r#"emails[type eq "work"]"#.into()),
        ("emails[not (type eq work)]", r#"emails[not type eq "work"]"#.into()),
        ("emails[type eq work].primary eq true", r#"emails[(type eq "work" and primary eq true)]"#.into()),
        ("emails[type eq work].value pr", r#"emails[(type eq "work" and value pr)]"#.into()),
        ("emails pr", "emails pr".into()),
        ("name pr", "name pr".into()),
        (&format!("{ENT}:manager pr"), format!("{ENT}:manager pr")),
        (&format!(r#"{ENT}:manager eq "m""#), format!(r#"{ENT}:manager.value eq "m""#)),
        // Inside brackets references keep the parent's extension (the AST's contract).
        ("manager[value eq m]", format!(r#"{ENT}:manager[{ENT}:value eq "m"]"#)),
        ("groups.value eq g1", r#"groups.value eq "g1""#.into()),
        ("meta.version eq \"W/\\\"3\\\"\"", r#"meta.version eq "W/\"3\"""#.into()),
        // JSON's escapes are decoded; text without them is taken as it stands.
        (r#"userName eq "caf\u00e9\\x""#, r#"userName eq "café\\x""#.into()),
        (r#"userName eq "café x""#, r#"userName eq "café x""#.into()),
        ("id eq 2819c223-7f76-453a-919d-413861904646", r#"id eq "2819c223-7f76-453a-919d-413861904646""#.into()),
    ];
    for (input, expected) in cases {
        assert_eq!(&show(&user(input)), expected, "parsing {input:?}");
    }
}

#[test]
fn precedence_is_not_then_and_then_or() {
    assert_eq!(
        show(&user("title pr or nickName pr and locale pr")),
        "(title pr or (nickName pr and locale pr))"
    );
    assert_eq!(
        show(&user("title pr and nickName pr or locale pr")),
        "((title pr and nickName pr) or locale pr)"
    );
    assert_eq!(
        show(&user("not (title pr) and nickName pr or locale pr")),
        "((not title pr and nickName pr) or locale pr)"
    );
    assert_eq!(
        show(&user("title pr and (nickName pr or locale pr)")),
        "(title pr and (nickName pr or locale pr))"
    );
    assert_eq!(
        show(&user("title pr or nickName pr or locale pr")),
        "((title pr or nickName pr) or locale pr)"
    );
}

#[test]
fn group_filters() {
    let g = |f: &str| show(&parse(f, &GROUP_RESOURCE).unwrap());
    assert_eq!(
        g(r#"displayName eq "Admins""#),
        r#"displayName eq "Admins""#
    );
    assert_eq!(g(r#"members.value eq "id1""#), r#"members.value eq "id1""#);
    assert_eq!(
        g(r#"members[value eq "id1"]"#),
        r#"members[value eq "id1"]"#
    );
    assert_eq!(g(r#"members eq "id1""#), r#"members.value eq "id1""#);
    let e = parse("userName eq x", &GROUP_RESOURCE).unwrap_err();
    assert!(
        e.detail.contains("unknown attribute 'userName'"),
        "{}",
        e.detail
    );
}

#[test]
fn rejects_invalid_filters_with_a_pointed_message() {
    let cases: &[(&str, &str)] = &[
        (
            "RUNSCOPE300HFLUAKLAB151@EXAMPLE.COM",
            "not an attribute path",
        ),
        (
            "userName",
            "expected a comparison operator after 'userName' at the end",
        ),
        (
            r#"userName "x""#,
            "expected a comparison operator after 'userName' at character 10",
        ),
        (
            "userName is x",
            "expected a comparison operator after 'userName' (eq, ne",
        ),
        ("userName eq", "expected a value after 'eq' at the end"),
        ("", "empty"),
        ("   ", "empty"),
        (
            r#"userName eq "x"#,
            "unterminated string starting at character 13",
        ),
        (r#"userName eq "\q""#, "invalid string"),
        ("userName eq \"a\tb\"", "invalid string"),
        ("nosuch eq x", "unknown attribute 'nosuch'"),
        ("name.nosuch eq x", "'name' has no sub-attribute 'nosuch'"),
        (
            "urn:example:Foo:bar eq x",
            "unknown schema 'urn:example:Foo'",
        ),
        ("name.familyName.x eq y", "not an attribute path"),
        (r#"name eq "x""#, "'name' is complex"),
        (r#"name co "x""#, "'name' is complex"),
        ("active gt true", "boolean and cannot be compared with 'gt'"),
        ("active co true", "boolean"),
        (r#"active eq "yes""#, "'active' is boolean"),
        ("active eq 1", "'active' is boolean"),
        ("meta.created gt yesterday", "not an RFC 3339 date-time"),
        (
            "meta.created co 2015",
            "dateTime and cannot be compared with 'co'",
        ),
        ("title gt null", "cannot be used with null"),
        (
            "title pr and",
            "expected an attribute, 'not' or '(' at the end",
        ),
        ("title pr or or", "unknown attribute 'or' (at character 13)"),
        ("(title pr", "expected ')' at the end"),
        (
            "title pr)",
            "expected 'and', 'or' or the end of the filter at character 9",
        ),
        ("not title pr", "expected '(' after 'not' at character 5"),
        ("emails[type eq work", "expected ']' at the end"),
        (
            "emails[emails[type eq work]]",
            "'emails' has no sub-attribute",
        ),
        ("emails[value[x eq y]]", "nested"),
        ("title[value eq x]", "'title' is not a complex attribute"),
        ("emails.value[type eq x]", "not a complex attribute"),
        (
            "emails[type eq work].nosuch eq x",
            "no sub-attribute 'nosuch'",
        ),
        (
            "emails[type eq work].value",
            "expected a comparison operator",
        ),
        (
            "emails[nosuch eq x]",
            "'emails' has no sub-attribute 'nosuch'",
        ),
        ("x509Certificates.value gt x", "binary"),
        (
            "userName eq x y",
            "expected 'and', 'or' or the end of the filter at character 15",
        ),
    ];
    for (input, expected) in cases {
        let detail = user_err(input);
        assert!(
            detail.contains(expected),
            "{input:?}: {detail:?} should contain {expected:?}"
        );
    }
}

#[test]
fn limits_size_and_depth() {
    let deep = format!("{}title pr{}", "(".repeat(60), ")".repeat(60));
    assert!(user_err(&deep).contains("deeper than"));
    let nots = format!("{}title pr{}", "not (".repeat(60), ")".repeat(60));
    assert!(user_err(&nots).contains("deeper than"));
    let long = format!("title eq \"{}\"", "x".repeat(MAX_LENGTH));
    assert!(user_err(&long).contains("longer than"));
    let many = vec!["title pr"; MAX_TERMS + 1].join(" or ");
    assert!(user_err(&many).contains("more than"));
    let ok = format!("{}title pr{}", "(".repeat(40), ")".repeat(40));
    user(&ok);
}

#[test]
fn fold_is_unicode_and_compositional() {
    assert_eq!(fold("ÉCOLE Straße"), "école straße");
    assert_eq!(fold("İ"), "i\u{307}");
    // No final-sigma special case: folding a concatenation folds each part.
    assert_eq!(fold("ΑΣ"), format!("{}{}", fold("Α"), fold("Σ")));
    // The ASCII shortcut lowercases exactly what the Unicode rule does.
    let ascii: String = (0u8..128).map(char::from).collect();
    let by_char: String = ascii.chars().flat_map(char::to_lowercase).collect();
    assert_eq!(fold(&ascii), by_char);
    // Canonically equivalent spellings fold alike: a precomposed letter, and a letter
    // with a combining mark (NFD, as macOS writes).
    assert_eq!(fold("Jos\u{e9}"), fold("Jose\u{301}"));
    assert_eq!(fold("JOSE\u{301}"), "jos\u{e9}");
    assert_eq!(fold("\u{c9}quipe"), fold("E\u{301}QUIPE"));
    assert_ne!(fold("Jose"), fold("Jos\u{e9}"));
}

fn bjensen() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT],
        "id": "2819c223",
        "externalId": "bjensen-ext",
        "userName": "Bjensen@Example.com",
        "name": {"familyName": "Jensen", "givenName": "Barbara"},
        "displayName": "Babs Jensen",
        "title": "",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "phoneNumbers": [{"type": "work"}],
        "groups": [{"value": "g1", "display": "Admins"}],
        ENT: {"employeeNumber": "701984", "manager": {"value": "m1", "displayName": "John"}},
        "meta": {
            "resourceType": "User",
            "created": "2010-01-23T04:56:22.000000Z",
            "lastModified": "2011-05-13T04:42:34.000000Z",
            "version": "W/\"3\"",
            "location": "https://example.com/v2/Users/2819c223"
        }
    })
}

#[test]
fn evaluates_against_a_resource() {
    let r = bjensen();
    let cases: &[(&str, bool)] = &[
        // Case-insensitive userName, caseExact id and externalId.
        (r#"userName eq "BJENSEN@example.COM""#, true),
        (r#"userName eq "bjensen""#, false),
        (r#"id eq "2819c223""#, true),
        (r#"id eq "2819C223""#, false),
        ("externalId eq bjensen-ext", true),
        ("externalId eq BJENSEN-EXT", false),
        // Substrings and ordering.
        ("userName sw bjen", true),
        ("userName ew EXAMPLE.COM", true),
        ("userName co SEN@", true),
        ("userName co nobody", false),
        (r#"userName co """#, true),
        ("name.familyName gt j", true),
        ("name.familyName gt k", false),
        ("name.familyName ge jensen", true),
        ("name.familyName le JENSEN", true),
        ("name.familyName lt JENSEN", false),
        // Multi-valued: any element matches.
        ("emails.value eq babs@jensen.org", true),
        ("emails co jensen.org", true),
        ("emails.type eq home", true),
        (
            r#"emails[type eq "work"].value eq "bjensen@example.com""#,
            true,
        ),
        (
            r#"emails[type eq "home"].value eq "bjensen@example.com""#,
            false,
        ),
        (r#"emails[type eq "work" and primary eq true]"#, true),
        (r#"emails[type eq "home" and primary eq true]"#, false),
        (r#"emails[primary eq false]"#, false),
        (r#"emails[not (primary eq true)]"#, true),
        // ne on a single value is `not eq`; on a multi-valued attribute, any value that
        // differs (emails.value ne babs@…: bjensen@… differs). Pinned per operator in
        // `multi_valued_attributes_match_when_any_value_does`.
        ("emails.value ne babs@jensen.org", true),
        ("emails.value ne nobody@x", true),
        ("nickName ne x", true),
        ("nickName eq x", false),
        ("not (nickName eq x)", true),
        // pr and null.
        ("title pr", false),
        ("title eq null", true),
        ("nickName eq null", true),
        ("nickName pr", false),
        ("displayName ne null", true),
        ("emails pr", true),
        ("phoneNumbers pr", true),
        ("phoneNumbers.value pr", false),
        ("phoneNumbers[type eq work]", true),
        ("phoneNumbers[value pr]", false),
        ("ims pr", false),
        ("name pr", true),
        ("active pr", true),
        // Booleans, string booleans.
        ("active eq true", true),
        (r#"active eq "True""#, true),
        ("active eq false", false),
        ("active ne false", true),
        // Enterprise extension, with and without the URN.
        (&format!("{ENT}:employeeNumber eq 701984"), true),
        ("employeeNumber sw 70", true),
        (&format!("{ENT}:manager.value eq m1"), true),
        ("manager eq m1", true),
        ("manager[value eq m1]", true),
        ("manager[value eq m2]", false),
        ("manager.displayName eq john", true),
        // meta, dateTimes compare as instants.
        ("meta.resourceType eq User", true),
        ("meta.resourceType eq user", false),
        ("meta.created gt 2010-01-23T04:56:21Z", true),
        ("meta.created eq 2010-01-22T23:56:22-05:00", true),
        ("meta.created lt 2010-01-22T23:56:22-05:00", false),
        ("meta.Created gt 2015-10-10T14:38:21.8617979-07:00", false),
        ("meta.lastModified ge 2011-05-13T04:42:34Z", true),
        ("meta.version eq \"W/\\\"3\\\"\"", true),
        ("meta.location pr", true),
        // groups on the user.
        ("groups.value eq G1", true),
        ("groups[display eq admins]", true),
        // Logic.
        ("title pr or userName sw b", true),
        ("title pr and userName sw b", false),
        ("not (title pr) and userName sw b", true),
        ("not (userName sw b or nickName pr)", false),
    ];
    for (input, expected) in cases {
        assert_eq!(matches(&user(input), &r), *expected, "{input}");
    }
}

/// RFC 7644 §3.4.2.2: on a multi-valued attribute a comparison matches when any value
/// satisfies it, for every operator; `not` negates the whole expression.
#[test]
fn multi_valued_attributes_match_when_any_value_does() {
    let r = bjensen();
    let two = json!({"emails": [{"value": "a@x.org", "type": "work"}, {"value": "b@y.org", "type": "home"}],
                     "phoneNumbers": [{"value": "+1 555", "type": "work"}, {"value": "+2 666", "type": "mobile"}]});
    let work_only = json!({"emails": [{"value": "a@x.org", "type": "work"}, {"value": "c@x.org", "type": "WORK"}]});
    let none = json!({"userName": "n"});
    let no_types = json!({"emails": [{"value": "a@x.org"}]});
    // (filter, two, work_only, none, no_types)
    let cases: &[(&str, [bool; 4])] = &[
        (r#"emails.type eq "work""#, [true, true, false, false]),
        (r#"emails.type eq "home""#, [true, false, false, false]),
        (r#"emails.type ne "work""#, [true, false, true, true]),
        (r#"emails.type ne "home""#, [true, true, true, true]),
        (r#"not (emails.type eq "work")"#, [false, false, true, true]),
        (
            r#"not (emails.type ne "work")"#,
            [false, true, false, false],
        ),
        (r#"emails.value co "@y""#, [true, false, false, false]),
        (r#"emails.value sw "b@""#, [true, false, false, false]),
        (r#"emails.value ew "x.org""#, [true, true, false, true]),
        (r#"emails.value gt "b""#, [true, true, false, false]),
        (r#"emails.value gt "c@x.org""#, [false, false, false, false]),
        (r#"emails.value ge "b@y.org""#, [true, true, false, false]),
        (r#"emails.value lt "b""#, [true, true, false, true]),
        (r#"emails.value le "a@x.org""#, [true, true, false, true]),
        (r#"emails.value ne "a@x.org""#, [true, true, true, false]),
        (r#"emails ne "a@x.org""#, [true, true, true, false]),
        ("emails.type pr", [true, true, false, false]),
        ("emails pr", [true, true, false, true]),
        (r#"phoneNumbers.type ne "work""#, [true, true, true, true]),
        (r#"phoneNumbers.value sw "+2""#, [true, false, false, false]),
        (
            r#"phoneNumbers.value eq "+1 555""#,
            [true, false, false, false],
        ),
        (
            r#"phoneNumbers.value ne "+1 555""#,
            [true, true, true, true],
        ),
    ];
    for (input, expected) in cases {
        let f = user(input);
        let got = [&two, &work_only, &none, &no_types].map(|u| matches(&f, u));
        assert_eq!(got, *expected, "{input}");
    }
    // groups: bjensen is in g1 only.
    assert!(!matches(&user("groups.value ne g1"), &r));
    assert!(matches(&user("groups.value ne g2"), &r));
}

#[test]
fn values_of_the_wrong_json_type_never_match() {
    let r = json!({"userName": 42, "active": "true", "title": ["a"]});
    for f in [
        "userName eq 42",
        "active eq true",
        r#"title eq "a""#,
        "userName co 4",
    ] {
        assert!(!matches(&user(f), &r), "{f}");
    }
    assert!(matches(&user("userName pr"), &r));
}

#[test]
fn element_matching_for_value_paths() {
    let Filter::ValuePath { filter, .. } = user(r#"emails[type eq "work" and value co "@x.org"]"#)
    else {
        panic!("a value path")
    };
    assert!(matches_element(
        &filter,
        &json!({"type": "Work", "value": "a@X.org"})
    ));
    assert!(!matches_element(
        &filter,
        &json!({"type": "home", "value": "a@x.org"})
    ));
    assert!(!matches_element(&filter, &json!({"value": "a@x.org"})));

    let Filter::ValuePath { filter, .. } =
        parse(r#"members[value eq "u1"]"#, &GROUP_RESOURCE).unwrap()
    else {
        panic!("a value path")
    };
    assert!(matches_element(&filter, &json!({"value": "u1"})));
    // members.value is caseExact.
    assert!(!matches_element(&filter, &json!({"value": "U1"})));
}

#[test]
fn group_members() {
    let g = json!({
        "id": "g1", "displayName": "Admins",
        "members": [{"value": "u1", "display": "Babs", "type": "User"}, {"value": "g2", "type": "Group"}],
    });
    let m = |f: &str| matches(&parse(f, &GROUP_RESOURCE).unwrap(), &g);
    assert!(m("displayName eq admins"));
    assert!(m("members.value eq u1"));
    assert!(!m("members.value eq U1"));
    assert!(m("members[type eq group]"));
    assert!(m("members[value eq u1 and display sw b]"));
    assert!(!m("members[value eq g2 and display pr]"));
}

#[test]
fn folded_comparisons_agree_with_comparing_folded_strings() {
    let words = [
        "",
        "a",
        "A",
        "ab",
        "aB",
        "b",
        "é",
        "É",
        "\u{212A}",
        "k",
        "K",
        "ß",
        "ẞ",
        "İ",
        "i̇",
        "Σσ",
        "zz",
        "Z",
        "a\u{0}",
        "ǅ",
        "ǆ",
        "e\u{301}",
        "E\u{301}x",
        "\u{e9}x",
        "\u{1e9b}\u{323}",
    ];
    for a in words {
        for b in words {
            assert_eq!(fold_eq(a, b), fold(a) == fold(b), "{a:?} {b:?}");
            assert_eq!(
                fold_cmp(a, b),
                fold(a).as_bytes().cmp(fold(b).as_bytes()),
                "{a:?} {b:?}"
            );
        }
    }
}
