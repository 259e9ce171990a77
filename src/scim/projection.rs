//! `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9): which attributes a
//! response carries. Applied to the rendered resource; [`Projection::wants`] lets the
//! caller skip loading what will not be returned (a huge group's `members`).

use serde_json::{Map, Value};

use super::error::ScimError;
use super::schema::{Attribute, ResourceType, Returned, Schema};

/// One requested attribute: a whole extension, an attribute, or a sub-attribute.
#[derive(Debug, Clone, Copy)]
struct Item {
    extension: Option<&'static Schema>,
    /// `None`: the whole extension.
    attr: Option<&'static Attribute>,
    sub: Option<&'static Attribute>,
}

#[derive(Debug, Clone, Default)]
enum Mode {
    #[default]
    Default,
    Include(Vec<Item>),
    Exclude(Vec<Item>),
}

/// The attribute selection of one request.
#[derive(Debug, Clone, Default)]
pub struct Projection {
    mode: Mode,
    /// What the list names in extensions of the client's own
    /// ([`ResourceType::is_client_extension`]): the URN, and an attribute of it or `None`
    /// for all of it.
    client: Vec<(String, Option<String>)>,
}

impl Projection {
    /// Parses the comma-separated query parameters. Names this resource type does not
    /// define are ignored (a client may ask every resource type for the same list);
    /// a bracketed filter after a name (`emails[type eq "work"]`, seen in Microsoft's test
    /// collection) selects the whole attribute.
    pub fn parse(
        attributes: Option<&str>,
        excluded: Option<&str>,
        rt: &ResourceType,
    ) -> Result<Projection, ScimError> {
        let items = |list: &str| -> Vec<Item> {
            list.split(',')
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .filter_map(|name| {
                    let name = name.split('[').next().unwrap_or(name);
                    if let Some(ext) = rt.extension(name) {
                        return Some(Item {
                            extension: Some(ext),
                            attr: None,
                            sub: None,
                        });
                    }
                    rt.resolve(name).ok().map(|r| Item {
                        extension: r.extension,
                        attr: Some(r.attr),
                        sub: r.sub,
                    })
                })
                .collect()
        };
        // A name may be a whole extension or an attribute of one (`urn:okta:custom:Space`):
        // both are listed, and the resource holds one or the other.
        let client = |list: &str| -> Vec<(String, Option<String>)> {
            let mut out = Vec::new();
            for name in list.split(',').map(|s| s.trim()) {
                if rt.is_whole_client_extension(name) {
                    out.push((name.to_string(), None));
                    continue;
                }
                if let Some((urn, attr)) = name.rsplit_once(':')
                    && rt.is_client_extension(urn)
                {
                    let attr = attr.split(['.', '[']).next().unwrap_or(attr);
                    out.push((urn.to_string(), Some(attr.to_string())));
                }
                if rt.is_client_extension(name) {
                    out.push((name.to_string(), None));
                }
            }
            out
        };
        let (mode, client) = match (attributes, excluded) {
            (Some(list), _) if !list.trim().is_empty() => {
                (Mode::Include(items(list)), client(list))
            }
            (_, Some(list)) if !list.trim().is_empty() => {
                (Mode::Exclude(items(list)), client(list))
            }
            _ => (Mode::Default, Vec::new()),
        };
        Ok(Projection { mode, client })
    }

    /// Whether the core attribute `name` (a computed one like `members` or `groups`)
    /// appears in the response, so the caller knows whether to load it.
    pub fn wants(&self, name: &str) -> bool {
        let names = |items: &[Item]| {
            items
                .iter()
                .any(|i| i.extension.is_none() && i.attr.is_some_and(|a| a.name == name))
        };
        match &self.mode {
            Mode::Default => true,
            Mode::Include(items) => names(items),
            Mode::Exclude(items) => !items.iter().any(|i| {
                i.extension.is_none() && i.sub.is_none() && i.attr.is_some_and(|a| a.name == name)
            }),
        }
    }

    /// Whether the core attribute `name` appears whole, every sub-attribute included, so the
    /// caller may render it without going through [`Projection::apply`].
    pub fn wants_whole(&self, name: &str) -> bool {
        let names = |i: &Item| i.extension.is_none() && i.attr.is_some_and(|a| a.name == name);
        match &self.mode {
            Mode::Default => true,
            Mode::Include(items) => items.iter().any(|i| names(i) && i.sub.is_none()),
            Mode::Exclude(items) => !items.iter().any(names),
        }
    }

    /// Whether every attribute is returned as rendered (no `attributes`, no
    /// `excludedAttributes`): the caller may serialise without [`Projection::apply`].
    pub fn is_default(&self) -> bool {
        matches!(self.mode, Mode::Default)
    }

    /// Reduces a rendered resource to the selected attributes.
    pub fn apply(&self, rt: &ResourceType, resource: &mut Value) {
        let Value::Object(fields) = resource else {
            return;
        };
        match &self.mode {
            Mode::Default => return,
            Mode::Include(items) => include(rt, fields, items, &self.client),
            Mode::Exclude(items) => exclude(rt, fields, items, &self.client),
        }
        // `schemas` names the extensions the resource holds (RFC 7643 §3): not one whose
        // attributes were all left out.
        let Some(Value::Array(schemas)) = fields.get("schemas") else {
            return;
        };
        let kept: Vec<Value> = schemas
            .iter()
            .filter(|s| {
                s.as_str().is_none_or(|urn| {
                    (rt.extension(urn).is_none() && !rt.is_client_extension(urn))
                        || fields.contains_key(urn)
                })
            })
            .cloned()
            .collect();
        fields.insert("schemas".into(), Value::Array(kept));
    }
}

/// The definition and extension of a top-level key of a rendered resource.
fn key_of(
    rt: &ResourceType,
    key: &str,
) -> Option<(Option<&'static Schema>, Option<&'static Attribute>)> {
    if let Some(ext) = rt.extension(key) {
        return Some((Some(ext), None));
    }
    rt.core_attribute(key).map(|a| (None, Some(a)))
}

/// The items of a client's extension `key` in `client` ([`Projection::client`]).
fn client_items<'c>(
    client: &'c [(String, Option<String>)],
    key: &str,
) -> impl Iterator<Item = &'c Option<String>> {
    client
        .iter()
        .filter(move |(urn, _)| urn.eq_ignore_ascii_case(key))
        .map(|(_, attr)| attr)
}

fn include(
    rt: &ResourceType,
    fields: &mut Map<String, Value>,
    items: &[Item],
    client: &[(String, Option<String>)],
) {
    fields.retain(|key, value| {
        if key == "schemas" {
            return true;
        }
        if rt.is_client_extension(key) {
            let asked: Vec<&Option<String>> = client_items(client, key).collect();
            if asked.iter().any(|a| a.is_none()) {
                return true;
            }
            let Value::Object(inner) = value else {
                return false;
            };
            inner.retain(|k, _| {
                asked
                    .iter()
                    .flat_map(|a| a.as_deref())
                    .any(|a| a.eq_ignore_ascii_case(k))
            });
            return !inner.is_empty();
        }
        match key_of(rt, key) {
            Some((None, Some(attr))) => {
                if attr.returned == Returned::Always {
                    return true;
                }
                let wanted: Vec<&Item> = items
                    .iter()
                    .filter(|i| {
                        i.extension.is_none() && i.attr.is_some_and(|a| std::ptr::eq(a, attr))
                    })
                    .collect();
                keep_subs(value, &wanted)
            }
            Some((Some(ext), None)) => {
                let Value::Object(inner) = value else {
                    return false;
                };
                if items
                    .iter()
                    .any(|i| i.extension.is_some_and(|e| e.id == ext.id) && i.attr.is_none())
                {
                    return true;
                }
                inner.retain(|k, v| {
                    let Some(attr) = ext.attribute(k) else {
                        return false;
                    };
                    let wanted: Vec<&Item> = items
                        .iter()
                        .filter(|i| {
                            i.extension.is_some_and(|e| e.id == ext.id)
                                && i.attr.is_some_and(|a| std::ptr::eq(a, attr))
                        })
                        .collect();
                    keep_subs(v, &wanted)
                });
                !inner.is_empty()
            }
            _ => false,
        }
    });
}

/// Keeps `value` if any item asks for it; when every asking item names a sub-attribute,
/// keeps only those sub-attributes (in each element of a multi-valued attribute).
fn keep_subs(value: &mut Value, wanted: &[&Item]) -> bool {
    if wanted.is_empty() {
        return false;
    }
    if wanted.iter().any(|i| i.sub.is_none()) {
        return true;
    }
    let keep = |obj: &mut Map<String, Value>| {
        obj.retain(|k, _| wanted.iter().any(|i| i.sub.is_some_and(|s| s.name == k)));
    };
    match value {
        Value::Object(obj) => {
            keep(obj);
            !obj.is_empty()
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                if let Value::Object(obj) = item {
                    keep(obj);
                }
            }
            items.retain(|v| !matches!(v, Value::Object(o) if o.is_empty()));
            !items.is_empty()
        }
        _ => true,
    }
}

fn exclude(
    rt: &ResourceType,
    fields: &mut Map<String, Value>,
    items: &[Item],
    client: &[(String, Option<String>)],
) {
    fields.retain(|key, value| {
        if !rt.is_client_extension(key) {
            return true;
        }
        let left: Vec<&Option<String>> = client_items(client, key).collect();
        if left.iter().any(|a| a.is_none()) {
            return false;
        }
        if let Value::Object(inner) = value {
            inner.retain(|k, _| {
                !left
                    .iter()
                    .flat_map(|a| a.as_deref())
                    .any(|a| a.eq_ignore_ascii_case(k))
            });
            return !inner.is_empty();
        }
        true
    });
    for item in items {
        match (item.extension, item.attr) {
            (Some(ext), None) => {
                fields.shift_remove(ext.id);
            }
            (ext, Some(attr)) => {
                if attr.returned == Returned::Always {
                    continue;
                }
                let container = match ext {
                    None => Some(&mut *fields),
                    Some(ext) => fields.get_mut(ext.id).and_then(Value::as_object_mut),
                };
                let Some(container) = container else { continue };
                match item.sub {
                    None => {
                        container.shift_remove(attr.name);
                    }
                    Some(sub) => {
                        if let Some(v) = container.get_mut(attr.name) {
                            let drop_sub = |o: &mut Value| {
                                if let Value::Object(o) = o {
                                    o.shift_remove(sub.name);
                                }
                            };
                            match v {
                                Value::Array(elems) => elems.iter_mut().for_each(drop_sub),
                                other => drop_sub(other),
                            }
                        }
                    }
                }
                if let Some(ext) = ext
                    && fields
                        .get(ext.id)
                        .and_then(Value::as_object)
                        .is_some_and(Map::is_empty)
                {
                    fields.shift_remove(ext.id);
                }
            }
            (None, None) => {}
        }
    }
    let _ = rt;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::{ENTERPRISE_URN, GROUP_RESOURCE, USER_RESOURCE};
    use serde_json::json;

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_URN],
            "id": "1", "userName": "bjensen", "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "b@x.io", "type": "work"}, {"value": "b@home.io", "type": "home"}],
            ENTERPRISE_URN: {"department": "R&D", "manager": {"value": "2"}},
            "meta": {"resourceType": "User"}
        })
    }

    fn project(attrs: Option<&str>, excluded: Option<&str>) -> Value {
        let p = Projection::parse(attrs, excluded, &USER_RESOURCE).unwrap();
        let mut u = user();
        p.apply(&USER_RESOURCE, &mut u);
        u
    }

    #[test]
    fn attributes_keep_only_what_is_asked_plus_id() {
        let u = project(
            Some(
                "userName,emails.value,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
            ),
            None,
        );
        assert_eq!(
            u,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_URN], "id": "1",
                   "userName": "bjensen", "emails": [{"value": "b@x.io"}, {"value": "b@home.io"}],
                   ENTERPRISE_URN: {"department": "R&D"}})
        );
        let u = project(Some("USERNAME,emails[type eq \"work\"]"), None);
        assert!(u.get("emails").is_some() && u.get("name").is_none() && u.get("meta").is_none());
        // An extension left out entirely is not named in `schemas` either.
        assert_eq!(
            u["schemas"],
            json!(["urn:ietf:params:scim:schemas:core:2.0:User"])
        );
        let u = project(None, Some(ENTERPRISE_URN));
        assert_eq!(
            u["schemas"],
            json!(["urn:ietf:params:scim:schemas:core:2.0:User"])
        );
    }

    #[test]
    fn excluded_attributes_drop_what_is_named_but_never_id() {
        let u = project(None, Some("emails,name.givenName,id,manager"));
        assert!(u.get("emails").is_none());
        assert_eq!(u["name"], json!({"familyName": "Jensen"}));
        assert_eq!(u["id"], "1");
        assert_eq!(u[ENTERPRISE_URN], json!({"department": "R&D"}));
    }

    #[test]
    fn wants_tells_whether_members_must_be_loaded() {
        let p = Projection::parse(None, Some("members"), &GROUP_RESOURCE).unwrap();
        assert!(!p.wants("members"));
        let p = Projection::parse(Some("displayName"), None, &GROUP_RESOURCE).unwrap();
        assert!(!p.wants("members"));
        let p = Projection::parse(Some("members.value"), None, &GROUP_RESOURCE).unwrap();
        assert!(p.wants("members") && !p.wants_whole("members"));
        let p = Projection::parse(None, Some("members.display"), &GROUP_RESOURCE).unwrap();
        assert!(p.wants("members") && !p.wants_whole("members"));
        let p = Projection::parse(Some("displayName,members"), None, &GROUP_RESOURCE).unwrap();
        assert!(p.wants_whole("members"));
        assert!(Projection::default().wants_whole("members"));
        assert!(Projection::default().wants("members"));
    }
}
