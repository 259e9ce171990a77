//! PATCH target paths (RFC 7644 §3.5.2, Figure 7: `PATH = attrPath / valuePath [subAttr]`),
//! resolved against a resource type's schemas.
//!
//! Accepted forms, names in any case (RFC 7643 §2.1):
//! `userName`, `name.givenName`, `emails[type eq "work"]`, `emails[type eq "work"].value`,
//! each optionally qualified by its schema URN
//! (`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber`), and a whole
//! extension URN on its own. Two IdP habits are accepted on top of the grammar:
//! a bare extension attribute name (Entra's `manager`, which the RFC would read as a core
//! attribute and reject), and a value filter on a single-valued complex attribute
//! (Entra's `manager[value eq "id"]`).
//!
//! The bracketed filter is parsed by [`filter::parse`], so PATCH and query filters share one
//! grammar; a malformed filter is `invalidFilter` (RFC 7644 Table 9 lists it for PATCH path
//! filters), everything else that is wrong with a path is `invalidPath`.

use super::error::ScimError;
use super::filter::{self, Filter};
use super::schema::{
    AttrRef, AttrType, Attribute, ResourceType, Schema, Unresolved, is_attribute_name,
};

/// What a PATCH operation's `path` points at.
#[derive(Debug, Clone)]
pub enum PatchPath {
    /// A whole extension object, e.g. `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`.
    Extension(&'static Schema),
    /// An attribute, possibly narrowed by a value filter and/or a sub-attribute.
    Attribute(AttrPath),
    /// In an extension of the client's own ([`ResourceType::is_client_extension`]),
    /// whose values are kept as sent.
    Client(ClientPath),
}

/// `urn` (the client's extension, whole), `urn:attr` or `urn:attr.sub`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPath {
    pub urn: String,
    pub attr: Option<String>,
    pub sub: Option<String>,
}

impl ClientPath {
    /// `urn:attr` as the whole extension of that URN when `holds` says the resource has
    /// one (`urn:okta:custom:Space`, whose URN does not end with the resource type's name),
    /// or, holding neither it nor `urn`, when the value is an `object` (which a POST reads
    /// as a whole extension); else as it was parsed, attribute `attr` of extension `urn`.
    /// Only a URN a POST would take as an extension of the client's is read whole.
    pub fn whole(
        self,
        rt: &ResourceType,
        holds: impl Fn(&str) -> bool,
        object: bool,
    ) -> ClientPath {
        let (Some(attr), None) = (&self.attr, &self.sub) else {
            return self;
        };
        let joined = format!("{}:{attr}", self.urn);
        if rt.is_client_extension(&joined) && (holds(&joined) || (object && !holds(&self.urn))) {
            ClientPath {
                urn: joined,
                attr: None,
                sub: None,
            }
        } else {
            self
        }
    }
}

/// `path` as a [`ClientPath`] when it names a client's extension; `None` when it names no
/// such thing (an ordinary path, or a URN this server defines). The URN of a whole
/// extension ends with the resource type's name (`…:2.0:User`), or is a path whose last
/// part is no attribute name (`…:custom:1.0`) or whose part before it is no extension
/// (`urn:ietf:params:scim:schemas:extension:Space`); in any other path the attribute
/// follows the last `:`, and a PATCH tells `urn:okta:custom:Space` whole from attribute
/// `Space` by what the resource holds ([`ClientPath::whole`]).
fn client_path(path: &str, rt: &ResourceType) -> Result<Option<ClientPath>, ScimError> {
    let whole = || {
        Some(ClientPath {
            urn: path.to_string(),
            attr: None,
            sub: None,
        })
    };
    if rt.is_whole_client_extension(path) {
        return Ok(whole());
    }
    let Some((urn, rest)) = path.rsplit_once(':') else {
        return Ok(None);
    };
    if !rt.is_client_extension(urn) {
        return Ok(if rt.is_client_extension(path) {
            whole()
        } else {
            None
        });
    }
    let (attr, sub) = match rest.split_once('.') {
        Some((attr, sub)) => (attr, Some(sub)),
        None => (rest, None),
    };
    let names = is_attribute_name(attr) && sub.is_none_or(is_attribute_name);
    // `…:custom:1.0` is a URN, not attribute `1` of `…:custom`; under a URN that ends with
    // the resource type's name, it is a bad path.
    if !names && !rt.is_whole_client_extension(urn) && rt.is_client_extension(path) {
        return Ok(whole());
    }
    if !names {
        return Err(ScimError::invalid_path(format!(
            "\"{path}\": in an extension this server does not define, a path is URN:attribute \
             or URN:attribute.subAttribute (no value filters)"
        )));
    }
    Ok(Some(ClientPath {
        urn: urn.to_string(),
        attr: Some(attr.to_string()),
        sub: sub.map(str::to_string),
    }))
}

/// `[urn:]attr[.sub]` or `[urn:]attr[filter][.sub]`.
#[derive(Debug, Clone)]
pub struct AttrPath {
    /// The extension schema owning `attr`; `None` for core and common attributes. Decides
    /// where the value lives in the canonical data (under the URN key or at the top level).
    pub extension: Option<&'static Schema>,
    pub attr: &'static Attribute,
    /// The value filter selecting elements of `attr`; its attribute references are relative
    /// to one element (`type eq "work"` refers to `emails.type`).
    pub filter: Option<Filter>,
    /// The sub-attribute operated on within `attr` (or within each selected element).
    pub sub: Option<&'static Attribute>,
}

impl AttrPath {
    /// The path as the client would spell it canonically, for error messages.
    pub fn display(&self) -> String {
        let mut out = match self.extension {
            Some(ext) => format!("{}:{}", ext.id, self.attr.name),
            None => self.attr.name.to_string(),
        };
        if self.filter.is_some() {
            out.push_str("[…]");
        }
        if let Some(sub) = self.sub {
            out.push('.');
            out.push_str(sub.name);
        }
        out
    }
}

/// Parses and resolves a PATCH `path` for resources of type `rt`.
pub fn parse(path: &str, rt: &'static ResourceType) -> Result<PatchPath, ScimError> {
    let trimmed = path.trim();
    if trimmed.is_empty() {
        return Err(ScimError::invalid_path("the \"path\" is empty"));
    }
    if let Some(ext) = rt.extension(trimmed) {
        return Ok(PatchPath::Extension(ext));
    }
    if trimmed.eq_ignore_ascii_case(rt.schema.id) {
        return Err(ScimError::invalid_path(format!(
            "\"{trimmed}\" names the core schema, not an attribute"
        )));
    }
    if let Some(client) = client_path(trimmed, rt)? {
        return Ok(PatchPath::Client(client));
    }

    // A schema URN holds no '[', so the value filter starts at the first one; the
    // filter itself may hold ':' and '.', which is why it is cut off before resolving.
    let (head, mut tail) = trimmed.split_at(trimmed.find('[').unwrap_or(trimmed.len()));
    let AttrRef {
        extension,
        attr,
        mut sub,
    } = rt
        .resolve(head)
        .map_err(|e| ScimError::invalid_path(unresolved(trimmed, e, rt)))?;

    let mut value_filter = None;
    if tail.starts_with('[') {
        let close = closing_bracket(tail).ok_or_else(|| {
            ScimError::invalid_path(format!(
                "\"{trimmed}\": the value filter has no closing ']'"
            ))
        })?;
        if sub.is_some() || attr.ty != AttrType::Complex {
            return Err(ScimError::invalid_path(format!(
                "\"{trimmed}\": a value filter needs a complex attribute, and \"{head}\" is not one"
            )));
        }
        value_filter = Some(parse_value_filter(extension, attr, &tail[1..close], rt)?);
        tail = &tail[close + 1..];
        if let Some(sub_name) = tail.strip_prefix('.') {
            sub = Some(attr.sub(sub_name).ok_or_else(|| {
                ScimError::invalid_path(unresolved(
                    trimmed,
                    Unresolved::UnknownSubAttribute {
                        attr,
                        name: sub_name,
                    },
                    rt,
                ))
            })?);
        } else if !tail.is_empty() {
            return Err(ScimError::invalid_path(format!(
                "\"{trimmed}\" is not a valid attribute path (unexpected \"{tail}\")"
            )));
        }
    }

    Ok(PatchPath::Attribute(AttrPath {
        extension,
        attr,
        filter: value_filter,
        sub,
    }))
}

/// Words why `path` did not resolve, for an `invalidPath` error.
fn unresolved(path: &str, why: Unresolved, rt: &ResourceType) -> String {
    match why {
        Unresolved::UnknownSchema { .. } => format!(
            "\"{path}\" does not start with a schema URN of the {} resource",
            rt.name
        ),
        Unresolved::Malformed => format!("\"{path}\" is not a valid attribute path"),
        Unresolved::UnknownAttribute {
            extension: Some(ext),
            name,
        } => format!("attribute \"{name}\" is not defined in schema {}", ext.id),
        Unresolved::UnknownAttribute {
            extension: None,
            name,
        } => format!(
            "attribute \"{name}\" is not defined for the {} resource",
            rt.name
        ),
        Unresolved::UnknownSubAttribute { attr, .. } if attr.ty != AttrType::Complex => {
            format!("\"{path}\": \"{}\" has no sub-attributes", attr.name)
        }
        Unresolved::UnknownSubAttribute { attr, name } => format!(
            "\"{path}\": \"{}\" has no sub-attribute \"{name}\"",
            attr.name
        ),
    }
}

/// The index of the `]` closing the value filter that `s` opens with `[`, skipping
/// brackets inside quoted strings (`emails[value eq "a]b"]`).
fn closing_bracket(s: &str) -> Option<usize> {
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            ']' if !in_string => return Some(i),
            _ => {}
        }
    }
    None
}

/// Parses the inside of `attr[...]` with the query filter grammar by handing the parser the
/// fully qualified value path, then keeps the element filter.
fn parse_value_filter(
    extension: Option<&'static Schema>,
    attr: &'static Attribute,
    inner: &str,
    rt: &'static ResourceType,
) -> Result<Filter, ScimError> {
    if inner.trim().is_empty() {
        return Err(ScimError::invalid_filter(format!(
            "the value filter of \"{}\" is empty",
            attr.name
        )));
    }
    let qualified = match extension {
        Some(ext) => format!("{}:{}[{inner}]", ext.id, attr.name),
        None => format!("{}[{inner}]", attr.name),
    };
    match filter::parse(&qualified, rt)? {
        Filter::ValuePath { filter, .. } => Ok(*filter),
        _ => Err(ScimError::invalid_filter(format!(
            "\"{qualified}\" is not a value filter"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::filter::CompareOp;
    use crate::scim::schema::{ENTERPRISE_URN, GROUP_RESOURCE, USER_RESOURCE};
    use serde_json::json;

    fn attr_path(path: &str) -> AttrPath {
        match parse(path, &USER_RESOURCE) {
            Ok(PatchPath::Attribute(p)) => p,
            other => panic!("{path}: {other:?}"),
        }
    }

    /// (extension URN, attribute, sub-attribute) of a resolved path.
    type Names<'a> = (Option<&'a str>, &'a str, Option<&'a str>);

    fn names(p: &AttrPath) -> Names<'_> {
        (
            p.extension.map(|s| s.id),
            p.attr.name,
            p.sub.map(|s| s.name),
        )
    }

    #[test]
    fn simple_paths_resolve_in_any_case() {
        let cases: &[(&str, Names)] = &[
            ("userName", (None, "userName", None)),
            ("USERNAME", (None, "userName", None)),
            ("name.givenName", (None, "name", Some("givenName"))),
            ("Name.GivenName", (None, "name", Some("givenName"))),
            ("emails", (None, "emails", None)),
            ("emails.value", (None, "emails", Some("value"))),
            ("id", (None, "id", None)),
            ("meta.created", (None, "meta", Some("created"))),
            (
                "urn:ietf:params:scim:schemas:core:2.0:User:userName",
                (None, "userName", None),
            ),
            (
                "urn:ietf:params:scim:schemas:core:2.0:User:name.familyName",
                (None, "name", Some("familyName")),
            ),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
                (Some(ENTERPRISE_URN), "employeeNumber", None),
            ),
            (
                "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:manager",
                (Some(ENTERPRISE_URN), "manager", None),
            ),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
                (Some(ENTERPRISE_URN), "manager", Some("value")),
            ),
            // Entra: a bare extension attribute name.
            ("manager", (Some(ENTERPRISE_URN), "manager", None)),
            (
                "manager.value",
                (Some(ENTERPRISE_URN), "manager", Some("value")),
            ),
            (
                "employeeNumber",
                (Some(ENTERPRISE_URN), "employeeNumber", None),
            ),
        ];
        for (path, want) in cases {
            let p = attr_path(path);
            assert_eq!(names(&p), *want, "{path}");
            assert!(p.filter.is_none(), "{path}");
        }
    }

    #[test]
    fn a_whole_extension_is_a_path() {
        for urn in [ENTERPRISE_URN.to_string(), ENTERPRISE_URN.to_lowercase()] {
            match parse(&urn, &USER_RESOURCE) {
                Ok(PatchPath::Extension(ext)) => assert_eq!(ext.id, ENTERPRISE_URN),
                other => panic!("{urn}: {other:?}"),
            }
        }
    }

    #[test]
    fn value_filters_are_parsed_by_the_filter_grammar() {
        let p = attr_path("emails[type eq \"work\"].value");
        assert_eq!(names(&p), (None, "emails", Some("value")));
        let emails = USER_RESOURCE.core_attribute("emails").unwrap();
        assert_eq!(
            p.filter.unwrap(),
            Filter::Compare {
                attr: AttrRef {
                    extension: None,
                    attr: emails.sub("type").unwrap(),
                    sub: None
                },
                op: CompareOp::Eq,
                value: json!("work"),
            }
        );
        let p = attr_path("addresses[type eq \"work\"].streetAddress");
        assert_eq!(names(&p), (None, "addresses", Some("streetAddress")));
        let p = attr_path("emails[value eq \"a]b\"]");
        assert_eq!(names(&p), (None, "emails", None));
        assert!(p.filter.is_some());
        // Entra: a filter on a single-valued complex attribute.
        let p = attr_path("manager[value eq \"id\"]");
        assert_eq!(names(&p), (Some(ENTERPRISE_URN), "manager", None));
        assert!(p.filter.is_some());
        let p = match parse("members[value eq \"x\" or value eq \"y\"]", &GROUP_RESOURCE) {
            Ok(PatchPath::Attribute(p)) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(p.attr.name, "members");
        assert!(matches!(p.filter, Some(Filter::Or(..))));
    }

    #[test]
    fn bad_paths_are_rejected_precisely() {
        let cases = [
            ("", "invalidPath"),
            ("favouriteColour", "invalidPath"),
            ("name.nickname", "invalidPath"),
            ("userName.first", "invalidPath"),
            ("emails[type eq \"work\"", "invalidPath"),
            ("emails[type eq \"work\"]x", "invalidPath"),
            ("active[value eq true]", "invalidPath"),
            (
                "urn:example:custom:1.0:User:x[type eq \"a\"]",
                "invalidPath",
            ),
            ("urn:example:custom:1.0:User:x.y.z", "invalidPath"),
            ("urn:ietf:params:scim:schemas:core:2.0:User", "invalidPath"),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:userName",
                "invalidPath",
            ),
            ("emails[]", "invalidFilter"),
            ("emails[type eq]", "invalidFilter"),
            ("emails[type eq \"work\" and]", "invalidFilter"),
            (".value", "invalidPath"),
        ];
        for (path, scim_type) in cases {
            let err = parse(path, &USER_RESOURCE).unwrap_err();
            assert_eq!(err.status, 400, "{path}");
            assert_eq!(
                err.scim_type.unwrap().as_str(),
                scim_type,
                "{path}: {}",
                err.detail
            );
        }
        assert!(parse("members", &USER_RESOURCE).is_err());
        assert!(parse("manager", &GROUP_RESOURCE).is_err());
    }
}
