//! Resources on the wire: validating and canonicalising what a client sends
//! (RFC 7643 §2, RFC 7644 §3.3, §3.5.1), and rendering what is stored.
//!
//! The canonical form ("data") is a JSON object holding every client-writable attribute
//! under its canonical name — core attributes at the top level, extension attributes under
//! the extension's URN — and nothing the server owns (`id`, `meta`, `schemas`, `groups`) or
//! must never keep (`password`). Values are stored exactly as sent once they are valid:
//! the tolerance for real IdPs lives in [`coerce`] and is listed there.

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::error::ScimError;
use super::schema::{
    AttrType, Attribute, ENTERPRISE_URN, Mutability, ResourceType, Schema, is_attribute_name,
};

/// Validates one attribute value against its definition and returns it in canonical form,
/// or `None` when the value leaves the attribute unassigned (`null`, `[]`, `{}`).
///
/// Tolerated deviations, all seen from real IdPs (idp-behaviour.md §8, §9):
/// - booleans sent as strings, in any case: `"True"`, `"false"`;
/// - a single value (e.g. OneLogin's `emails` object) where an array is expected;
/// - a one-element array where a single complex value is expected (Entra's `manager`);
/// - a bare string where a complex value with a `value` sub-attribute is expected
///   (Entra's `"manager": "id"`);
/// - sub-attribute names in any case; unknown sub-attributes are dropped, read-only
///   sub-attributes (`manager.displayName`) ignored.
///
/// Everything else of the wrong type is `400 invalidValue` naming the attribute.
pub fn coerce(
    attr: &'static Attribute,
    value: Value,
    path: &str,
) -> Result<Option<Value>, ScimError> {
    if value.is_null() {
        return Ok(None);
    }
    if attr.multi_valued {
        let items = match value {
            Value::Array(items) => items,
            single => vec![single],
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if let Some(v) = coerce_single(attr, item, path)? {
                out.push(v);
            }
        }
        if attr.ty == AttrType::Complex {
            let primaries = out
                .iter()
                .filter(|v| v["primary"] == Value::Bool(true))
                .count();
            if primaries > 1 {
                return Err(ScimError::invalid_value(format!(
                    "{path}: at most one value may have \"primary\": true"
                )));
            }
        }
        return Ok((!out.is_empty()).then_some(Value::Array(out)));
    }
    let value = match value {
        Value::Array(mut items) if attr.ty == AttrType::Complex => match items.len() {
            0 => return Ok(None),
            1 => items.remove(0),
            _ => {
                return Err(ScimError::invalid_value(format!(
                    "{path} is single-valued but an array of {} values was sent",
                    items.len()
                )));
            }
        },
        Value::Array(_) => {
            return Err(ScimError::invalid_value(format!(
                "{path} is single-valued but an array was sent"
            )));
        }
        other => other,
    };
    coerce_single(attr, value, path)
}

/// One value of `attr` (one element, for a multi-valued attribute).
fn coerce_single(
    attr: &'static Attribute,
    value: Value,
    path: &str,
) -> Result<Option<Value>, ScimError> {
    if value.is_null() {
        return Ok(None);
    }
    let wrong = |expected: &str| {
        ScimError::invalid_value(format!(
            "{path} must be {expected}, got {}",
            describe(&value)
        ))
    };
    let ok = match attr.ty {
        AttrType::String | AttrType::Reference | AttrType::Binary => {
            if !value.is_string() {
                return Err(wrong("a string"));
            }
            value
        }
        AttrType::DateTime => match value.as_str() {
            Some(s) if super::datetime::parse(s).is_some() => value,
            _ => return Err(wrong("an RFC 3339 date-time string")),
        },
        AttrType::Boolean => match &value {
            Value::Bool(_) => value,
            Value::String(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
            _ => return Err(wrong("a boolean")),
        },
        AttrType::Integer => {
            if !(value.is_i64() || value.is_u64()) {
                return Err(wrong("an integer"));
            }
            value
        }
        AttrType::Decimal => {
            if !value.is_number() {
                return Err(wrong("a number"));
            }
            value
        }
        AttrType::Complex => {
            // A reference (`manager`) whose `value` is `""` is unassigned, as a PATCH's
            // "replace with an empty value" clears it (Entra sends both).
            let reference = !attr.multi_valued && attr.sub("$ref").is_some();
            let fields = match value {
                Value::String(s) if reference && s.is_empty() => return Ok(None),
                Value::Object(fields) => fields,
                Value::String(_) if attr.sub("value").is_some() => {
                    let mut fields = Map::new();
                    fields.insert("value".into(), value);
                    fields
                }
                _ => return Err(wrong("an object")),
            };
            let mut out = Map::new();
            for (key, v) in fields {
                let Some(sub) = attr.sub(&key) else { continue };
                if sub.mutability == Mutability::ReadOnly {
                    continue;
                }
                if let Some(v) = coerce(sub, v, &format!("{path}.{}", sub.name))? {
                    out.insert(sub.name.to_string(), v);
                }
            }
            if out.is_empty() || (reference && out.get("value") == Some(&json!(""))) {
                return Ok(None);
            }
            Value::Object(out)
        }
    };
    Ok(Some(ok))
}

pub(crate) fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Canonicalises a POST or PUT body for resource type `rt` (RFC 7644 §3.3, §3.5.1).
///
/// Read-only attributes the client echoes back (`id`, `meta`, `groups`, as Okta's
/// read-modify-write PUT does) are ignored, `password` is validated and dropped, `schemas`
/// is not enforced (OneLogin templates may carry SCIM 1.1 URNs, Entra adds its own), and an
/// attribute this server does not define is `400 invalidSyntax` rather than silently lost.
pub fn normalize(rt: &'static ResourceType, body: Value) -> Result<Map<String, Value>, ScimError> {
    let Value::Object(fields) = body else {
        return Err(ScimError::invalid_syntax(format!(
            "the request body must be a JSON object, got {}",
            describe(&body)
        )));
    };
    let mut out = Map::new();
    for (key, value) in fields {
        if key.eq_ignore_ascii_case("schemas") {
            if !matches!(&value, Value::Array(items) if items.iter().all(Value::is_string)) {
                return Err(ScimError::invalid_syntax(
                    "\"schemas\" must be an array of URI strings",
                ));
            }
        } else if let Some(ext) = rt.extension(&key) {
            put_extension(&mut out, ext, value)?;
        } else if key.eq_ignore_ascii_case(rt.schema.id) {
            // Core attributes wrapped in their own URN: legal (RFC 7644 §3.10), rare.
            let Value::Object(inner) = value else {
                return Err(ScimError::invalid_syntax(format!(
                    "\"{key}\" must be an object"
                )));
            };
            for (k, v) in inner {
                let attr = rt
                    .core_attribute(&k)
                    .ok_or_else(|| unknown(&k, rt.schema))?;
                put(&mut out, attr, v, attr.name)?;
            }
        } else if let Some(found) = rt.attribute(&key) {
            // An extension attribute may come unqualified, as in Entra's older create body
            // (`"department": null, "manager": null`): the bare-name rule of PATCH paths and
            // filters, which lands it in its extension.
            let slot = match found.extension {
                Some(ext) => extension_slot(&mut out, ext),
                None => &mut out,
            };
            put(slot, found.attr, value, &found.path())?;
        } else if rt.is_client_extension(&key) {
            let qualified = !value.is_object() && !rt.is_whole_client_extension(&key);
            match key.rsplit_once(':').filter(|(urn, attr)| {
                qualified && rt.is_client_extension(urn) && is_attribute_name(attr)
            }) {
                // One attribute of it, qualified by its URN, as a top-level key.
                Some((urn, attr)) => {
                    let fields = Map::from_iter([(attr.to_string(), value)]);
                    put_client_extension(&mut out, urn.to_string(), Value::Object(fields))?;
                }
                None => put_client_extension(&mut out, key, value)?,
            }
        } else {
            return Err(unknown(&key, rt.schema));
        }
    }
    out.retain(|k, v| !(rt.extension(k).is_some() && v.as_object().is_some_and(Map::is_empty)));
    for attr in rt.schema.attributes.iter().filter(|a| a.required) {
        if is_blank(out.get(attr.name)) {
            return Err(ScimError::invalid_value(format!(
                "\"{}\" is required and must not be empty",
                attr.name
            )));
        }
    }
    check_names(&out)?;
    check_size(&out)?;
    Ok(out)
}

/// The longest a name may be, in characters: a `userName`, a `displayName`, an
/// `externalId`, a member's `display`. Names are copied wherever a resource is named (a
/// group's into every member's `groups`, a user's into the `members` of its groups), so a
/// long one multiplies into every answer that lists them: a 1 MB group name made a page of
/// 1 000 users a gigabyte. Directories cap names far below this (Entra and Okta at 256).
pub const MAX_NAME_CHARS: usize = 1024;

/// Refuses a name longer than [`MAX_NAME_CHARS`] (`invalidValue`).
pub fn check_name(name: &str, value: &str) -> Result<(), ScimError> {
    if value.len() > MAX_NAME_CHARS && value.chars().count() > MAX_NAME_CHARS {
        return Err(ScimError::invalid_value(format!(
            "\"{name}\" is longer than {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(())
}

/// The most a resource's attributes may take, as JSON: a user of any real directory takes a
/// few KiB (a long list of entitlements or certificates a few tens). Every answer that
/// lists resources (a SCIM page of up to 1 000, the apps' and WorkOS's pages, which repeat
/// some of them) is built in memory, so without this one client's page of 1 MiB users was
/// a gigabyte held while it read slowly.
pub const MAX_RESOURCE_BYTES: usize = 64 * 1024;

/// Refuses data whose JSON is longer than [`MAX_RESOURCE_BYTES`] (`invalidValue`).
pub fn check_size(data: &Map<String, Value>) -> Result<(), ScimError> {
    struct Counted(usize);
    impl std::io::Write for Counted {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut size = Counted(0);
    // Writing to a counter cannot fail.
    let _ = serde_json::to_writer(&mut size, data);
    if size.0 > MAX_RESOURCE_BYTES {
        return Err(ScimError::invalid_value(format!(
            "the resource's attributes take {} KiB; at most {} KiB are kept",
            size.0.div_ceil(1024),
            MAX_RESOURCE_BYTES / 1024
        )));
    }
    Ok(())
}

/// [`check_name`] for the names of a resource's data.
pub fn check_names(data: &Map<String, Value>) -> Result<(), ScimError> {
    for name in ["userName", "displayName", "externalId"] {
        if let Some(Value::String(value)) = data.get(name) {
            check_name(name, value)?;
        }
    }
    Ok(())
}

/// Keeps the object of an extension of the client's own (`urn`) as sent, merged into what
/// `out` already holds of it (the same URN in another case is the same extension).
fn put_client_extension(
    out: &mut Map<String, Value>,
    urn: String,
    value: Value,
) -> Result<(), ScimError> {
    let Some(fields) = extension_fields(&urn, value)? else {
        return Ok(());
    };
    let key = same_key(out, &urn).unwrap_or(urn);
    let slot = out
        .entry(key.clone())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(slot) = slot {
        for (k, v) in fields {
            if k.eq_ignore_ascii_case("schemas")
                || k.eq_ignore_ascii_case("password")
                || v.is_null()
            {
                // A `password` is never stored, in an extension of the client's either.
                continue;
            }
            let k = same_key(slot, &k).unwrap_or(k);
            slot.insert(k, v);
        }
    }
    if out
        .get(&key)
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty)
    {
        out.remove(&key);
    }
    Ok(())
}

/// The attributes an extension `urn` is sent with: `None` for `null`, an error unless an
/// object.
fn extension_fields(urn: &str, value: Value) -> Result<Option<Map<String, Value>>, ScimError> {
    match value {
        Value::Null => Ok(None),
        Value::Object(fields) => Ok(Some(fields)),
        other => Err(ScimError::invalid_value(format!(
            "\"{urn}\" must be an object, got {}",
            describe(&other)
        ))),
    }
}

/// The key of `map` equal to `name` in any case (attribute names and URNs are
/// case-insensitive, RFC 7643 §2.1).
pub fn same_key(map: &Map<String, Value>, name: &str) -> Option<String> {
    map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

fn put_extension(
    out: &mut Map<String, Value>,
    ext: &'static Schema,
    value: Value,
) -> Result<(), ScimError> {
    let Some(fields) = extension_fields(ext.id, value)? else {
        return Ok(());
    };
    let inner = extension_slot(out, ext);
    for (k, v) in fields {
        if k.eq_ignore_ascii_case("schemas") {
            // Not an extension attribute (RFC 7643 §3.3): some clients (scim2-models)
            // repeat the extension's URN inside it. Ignored like the top-level `schemas`.
            continue;
        }
        let attr = ext.attribute(&k).ok_or_else(|| unknown(&k, ext))?;
        put(inner, attr, v, &format!("{}:{}", ext.id, attr.name))?;
    }
    Ok(())
}

/// The object holding extension `ext`'s attributes in `out`, created empty if absent
/// ([`normalize`] drops it again if it stays empty).
fn extension_slot<'a>(
    out: &'a mut Map<String, Value>,
    ext: &'static Schema,
) -> &'a mut Map<String, Value> {
    let slot = out
        .entry(ext.id.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    match slot {
        Value::Object(fields) => fields,
        _ => unreachable!("only normalize writes extension slots, always as objects"),
    }
}

fn put(
    out: &mut Map<String, Value>,
    attr: &'static Attribute,
    value: Value,
    path: &str,
) -> Result<(), ScimError> {
    match attr.mutability {
        Mutability::ReadOnly => Ok(()),
        Mutability::WriteOnly => coerce(attr, value, path).map(drop),
        Mutability::ReadWrite | Mutability::Immutable => {
            match coerce(attr, value, path)? {
                Some(v) => out.insert(attr.name.to_string(), v),
                None => out.remove(attr.name),
            };
            Ok(())
        }
    }
}

fn unknown(name: &str, schema: &Schema) -> ScimError {
    let what = if name.starts_with("urn:") {
        format!("schema extension \"{name}\" is not supported by this server")
    } else {
        format!(
            "attribute \"{name}\" is not defined in schema {}",
            schema.id
        )
    };
    ScimError::invalid_syntax(what)
}

fn is_blank(v: Option<&Value>) -> bool {
    match v {
        None => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(_) => false,
    }
}

/// Server-owned metadata of a stored resource.
#[derive(Debug, Clone)]
pub struct Meta {
    pub created: String,
    pub last_modified: String,
    /// Bumped on every write; the ETag is `W/"<version>"`.
    pub version: i64,
    /// Absolute URL of the resource.
    pub location: String,
}

impl Meta {
    pub fn etag(&self) -> String {
        etag(self.version)
    }
}

/// The weak entity tag for a resource version (RFC 7644 §3.14).
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Whether an `If-Match`/`If-None-Match` list names `version` (weak comparison, RFC 7232
/// §2.3.2; `*` matches any).
pub fn etag_matches(list: &str, version: i64) -> bool {
    let ours = etag(version);
    let strip = |t: &str| {
        t.trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .to_string()
    };
    list.split(',')
        .any(|t| t.trim() == "*" || strip(t) == strip(&ours))
}

/// What a request's `If-Match` and `If-None-Match` ask of a resource's version (RFC 7644
/// §3.14, RFC 9110 §13.1.1–2): the first must name it, the second must not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preconditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
}

/// Whether a request may go on with a resource at some version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    Holds,
    /// `If-None-Match` names the version: a read answers 304, a write 412.
    Unchanged,
}

impl Preconditions {
    /// 412 when `If-Match` names another version; [`Precondition::Unchanged`] when
    /// `If-None-Match` names this one (`*`: any).
    pub fn evaluate(&self, version: i64) -> Result<Precondition, ScimError> {
        if let Some(list) = &self.if_match
            && !etag_matches(list, version)
        {
            return Err(ScimError::new(
                412,
                None,
                format!(
                    "the resource has changed: its version is {}, not {list}",
                    etag(version)
                ),
            ));
        }
        match &self.if_none_match {
            Some(list) if etag_matches(list, version) => Ok(Precondition::Unchanged),
            _ => Ok(Precondition::Holds),
        }
    }

    /// A write's preconditions: 412 unless both hold.
    pub fn check_write(&self, version: i64) -> Result<(), ScimError> {
        match self.evaluate(version)? {
            Precondition::Holds => Ok(()),
            Precondition::Unchanged => Err(ScimError::new(
                412,
                None,
                format!(
                    "If-None-Match names the resource's version {}: nothing was written",
                    etag(version)
                ),
            )),
        }
    }
}

/// The full resource as a client reads it: `schemas`, `id`, the stored attributes, any
/// server-computed attributes (`groups` of a user, `members` of a group) and `meta`.
pub fn render(
    rt: &ResourceType,
    id: &str,
    data: &Map<String, Value>,
    computed: Vec<(&str, Value)>,
    meta: &Meta,
) -> Value {
    let mut schemas = vec![json!(rt.schema.id)];
    schemas.extend(
        rt.extensions
            .iter()
            .filter(|ext| data.contains_key(ext.id))
            .map(|ext| json!(ext.id)),
    );
    schemas.extend(
        data.keys()
            .filter(|k| rt.is_client_extension(k))
            .map(|k| json!(k)),
    );
    let mut out = Map::with_capacity(data.len() + 4);
    out.insert("schemas".into(), Value::Array(schemas));
    out.insert("id".into(), json!(id));
    for (k, v) in data {
        out.insert(k.clone(), v.clone());
    }
    for (k, v) in computed {
        out.insert(k.to_string(), v);
    }
    out.insert(
        "meta".into(),
        json!({
            "resourceType": rt.name,
            "created": meta.created,
            "lastModified": meta.last_modified,
            "location": meta.location,
            "version": meta.etag(),
        }),
    );
    Value::Object(out)
}

/// A resource's stored data as its members, for [`write_rendered`]: parsed
/// (`Map<String, Value>`) or as stored ([`StoredMembers`]).
pub trait Members {
    fn has(&self, key: &str) -> bool;
    /// Calls `f` with each key, in order.
    fn each_key(&self, f: &mut dyn FnMut(&str));
    /// Each member as `,"key":value`.
    fn write_members(&self, out: &mut Vec<u8>);
}

impl Members for Map<String, Value> {
    fn has(&self, key: &str) -> bool {
        self.contains_key(key)
    }

    fn each_key(&self, f: &mut dyn FnMut(&str)) {
        self.keys().for_each(|k| f(k));
    }

    fn write_members(&self, out: &mut Vec<u8>) {
        for (k, v) in self {
            out.push(b',');
            erased::Json::write(k.as_str(), out);
            out.push(b':');
            erased::Json::write(v, out);
        }
    }
}

/// A stored resource's data (the JSON object scimd itself wrote, so in canonical order
/// and compact) read member by member without parsing the values: what a list page
/// writes out as stored, byte for byte what serialising the parsed data would give.
pub struct StoredMembers<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'a> StoredMembers<'a> {
    /// `None` unless `text` is a JSON object whose keys need no unescaping (every key
    /// scimd stores); the caller then parses it whole.
    pub fn parse(text: &'a str) -> Option<StoredMembers<'a>> {
        serde_json::from_str(text).ok()
    }

    fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// `manager.value` of the enterprise extension, as [`manager_id`] of the parsed data.
    pub fn manager_id(&self) -> Option<String> {
        let enterprise: Value = serde_json::from_str(self.get(ENTERPRISE_URN)?.get()).ok()?;
        manager_id(&Map::from_iter([(ENTERPRISE_URN.to_string(), enterprise)])).map(str::to_owned)
    }
}

impl Members for StoredMembers<'_> {
    fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    fn each_key(&self, f: &mut dyn FnMut(&str)) {
        self.0.iter().for_each(|(k, _)| f(k));
    }

    fn write_members(&self, out: &mut Vec<u8>) {
        for (k, v) in &self.0 {
            out.push(b',');
            erased::Json::write(*k, out);
            out.push(b':');
            out.extend_from_slice(v.get().as_bytes());
        }
    }
}

impl<'de> serde::Deserialize<'de> for StoredMembers<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = StoredMembers<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(member) = map.next_entry::<&'de str, &'de RawValue>()? {
                    members.push(member);
                }
                Ok(StoredMembers(members))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// [`render`] serialised straight into `out`: the same bytes as serialising its `Value`,
/// without copying `data` into a new tree first. `computed` values come serialised. What a
/// list page does for each of its resources.
pub fn write_rendered(
    out: &mut Vec<u8>,
    rt: &ResourceType,
    id: &str,
    data: &impl Members,
    computed: &[(&str, &[u8])],
    meta: &Meta,
) {
    let json = |out: &mut Vec<u8>, v: &dyn erased::Json| v.write(out);
    out.extend_from_slice(br#"{"schemas":["#);
    json(out, &rt.schema.id);
    for ext in rt.extensions.iter().filter(|ext| data.has(ext.id)) {
        out.push(b',');
        json(out, &ext.id);
    }
    data.each_key(&mut |key| {
        if rt.is_client_extension(key) {
            out.push(b',');
            json(out, &key);
        }
    });
    out.extend_from_slice(br#"],"id":"#);
    json(out, &id);
    data.write_members(out);
    for (k, v) in computed {
        out.push(b',');
        json(out, k);
        out.push(b':');
        out.extend_from_slice(v);
    }
    out.extend_from_slice(br#","meta":{"resourceType":"#);
    json(out, &rt.name);
    out.extend_from_slice(br#","created":"#);
    json(out, &meta.created.as_str());
    out.extend_from_slice(br#","lastModified":"#);
    json(out, &meta.last_modified.as_str());
    out.extend_from_slice(br#","location":"#);
    json(out, &meta.location.as_str());
    out.extend_from_slice(br#","version":"#);
    json(out, &meta.etag().as_str());
    out.extend_from_slice(b"}}");
}

/// Serialising into a byte buffer, for [`write_rendered`].
mod erased {
    pub trait Json {
        fn write(&self, out: &mut Vec<u8>);
    }

    impl<T: serde::Serialize + ?Sized> Json for T {
        fn write(&self, out: &mut Vec<u8>) {
            serde_json::to_writer(out, self).expect("JSON values and strings always serialise");
        }
    }
}

/// The attributes of a user's canonical data that describe the person in the organisation
/// (title, employee type, the enterprise extension's values, the manager's id), named as
/// SCIM names them: what apps read of a directory user besides its member (WorkOS
/// `custom_attributes`). Absent ones are left out.
pub fn profile_attributes(data: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for name in ["title", "userType"] {
        if let Some(v) = data.get(name).filter(|v| !v.is_null()) {
            out.insert(name.to_string(), v.clone());
        }
    }
    if let Some(ext) = data.get(ENTERPRISE_URN).and_then(Value::as_object) {
        let names = [
            "employeeNumber",
            "costCenter",
            "organization",
            "division",
            "department",
        ];
        for name in names {
            if let Some(v) = ext.get(name).filter(|v| !v.is_null()) {
                out.insert(name.to_string(), v.clone());
            }
        }
    }
    if let Some(id) = manager_id(data) {
        out.insert("manager".to_string(), Value::String(id.to_string()));
    }
    out
}

/// `manager.value` of a user's canonical data (enterprise extension), when set.
pub fn manager_id(data: &Map<String, Value>) -> Option<&str> {
    data.get(ENTERPRISE_URN)?
        .get("manager")?
        .get("value")?
        .as_str()
}

/// Keeps the stored `$ref` of an unchanged manager in a user's new `data`. A client that
/// writes back what it read (Okta's read-modify-write PUT) sends the `$ref` that
/// [`show_manager`] rendered from the request's host; storing it would move the version of
/// a PUT that changes nothing, and outlive the manager with a host the server was once
/// reached by. A new manager keeps whatever `$ref` the client sent with it.
pub fn keep_manager_ref(data: &mut Map<String, Value>, stored: &Map<String, Value>) {
    let Some(old) = stored
        .get(ENTERPRISE_URN)
        .and_then(|ext| ext.get("manager"))
        .and_then(Value::as_object)
    else {
        return;
    };
    let Some(new) = data
        .get_mut(ENTERPRISE_URN)
        .and_then(|ext| ext.get_mut("manager"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if new.get("value") != old.get("value") {
        return;
    }
    match old.get("$ref") {
        Some(r) => new.insert("$ref".to_string(), r.clone()),
        None => new.remove("$ref"),
    };
}

/// Completes a rendered user's manager when it is a user of this directory: `{value, $ref}`
/// with `$ref` its location, whatever `$ref` the client made up (Microsoft's example sends
/// `http://.../scim/Users/…`). Entra reads the manager back as an object under the extension
/// key (idp-behaviour.md §2.6); a manager the directory does not hold is left as sent.
/// `displayName` is not filled in: the RFC lets a server do it (it is read-only), but the
/// public conformance checker compares a PATCH answer with what it sent, and a label
/// computed on read would also not move the ETags of the manager's reports on a rename.
pub fn show_manager(user: &mut Value, location: String) {
    let Some(manager) = user
        .get_mut(ENTERPRISE_URN)
        .and_then(|ext| ext.get_mut("manager"))
    else {
        return;
    };
    let value = manager.get("value").cloned().unwrap_or(Value::Null);
    *manager = json!({"value": value, "$ref": location});
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::{GROUP_RESOURCE, USER_RESOURCE};

    #[test]
    fn written_rendering_is_the_rendered_value_byte_for_byte() {
        let data = normalize(
            &USER_RESOURCE,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                            ENTERPRISE_URN],
                "userName": "a\"b@example.com",
                "name": {"givenName": "Zoë", "familyName": "O'Brien"},
                "emails": [{"value": "a@example.com", "primary": true}],
                "active": true,
                (ENTERPRISE_URN): {"employeeNumber": "7", "manager": {"value": "m1"}}
            }),
        )
        .unwrap();
        let meta = Meta {
            created: "2026-12-03T10:00:00.000000Z".into(),
            last_modified: "2026-12-03T10:00:01.000000Z".into(),
            version: 3,
            location: "https://h/scim/v2/Users/u1".into(),
        };
        let groups = json!([{"value": "g1", "$ref": "https://h/scim/v2/Groups/g1",
                             "display": "Ops \\ Dev", "type": "direct"}]);
        for computed in [vec![], vec![("groups", groups)]] {
            let want = render(&USER_RESOURCE, "u1", &data, computed.clone(), &meta).to_string();
            let bytes: Vec<(&str, Vec<u8>)> = computed
                .iter()
                .map(|(k, v)| (*k, serde_json::to_vec(v).unwrap()))
                .collect();
            let refs: Vec<(&str, &[u8])> = bytes.iter().map(|(k, v)| (*k, v.as_slice())).collect();
            let mut got = Vec::new();
            write_rendered(&mut got, &USER_RESOURCE, "u1", &data, &refs, &meta);
            assert_eq!(String::from_utf8(got).unwrap(), want);
            // And from the data as stored, without parsing its values.
            let stored = Value::Object(data.clone()).to_string();
            let members = StoredMembers::parse(&stored).unwrap();
            assert_eq!(members.manager_id().as_deref(), manager_id(&data));
            let mut got = Vec::new();
            write_rendered(&mut got, &USER_RESOURCE, "u1", &members, &refs, &meta);
            assert_eq!(String::from_utf8(got).unwrap(), want);
        }
    }

    fn user(body: Value) -> Result<Value, ScimError> {
        normalize(&USER_RESOURCE, body).map(Value::Object)
    }

    #[test]
    fn okta_create_body_keeps_every_attribute_and_drops_password_and_groups() {
        let data = user(json!({
            "schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"test.user@okta.local",
            "name":{"givenName":"Test","familyName":"User"},
            "emails":[{"primary":true,"value":"test.user@okta.local","type":"work"}],
            "displayName":"Test User","locale":"en-US","externalId":"00ujl29u0le5T6Aj10h7",
            "groups":[],"password":"1mz050nq","active":true
        }))
        .unwrap();
        assert_eq!(
            data,
            json!({"userName":"test.user@okta.local","name":{"givenName":"Test","familyName":"User"},
                "emails":[{"primary":true,"value":"test.user@okta.local","type":"work"}],
                "displayName":"Test User","locale":"en-US","externalId":"00ujl29u0le5T6Aj10h7","active":true})
        );
    }

    #[test]
    fn entra_extras_nulls_and_string_booleans_are_tolerated() {
        let data = user(json!({
            "schemas":["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User","urn:ietf:params:scim:schemas:core:2.0:User"],
            "UserName":"bob","active":"True","meta":{"resourceType":"User"},"roles":[],
            "addresses":null,"title":null,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":null,"Manager":{"Value":"SuzzyQ"}},
            "emails":[{"Primary":true,"value":"b@x.io"}]
        }))
        .unwrap();
        assert_eq!(data["userName"], "bob");
        assert_eq!(data["active"], true);
        assert!(data.get("roles").is_none() && data.get("title").is_none());
        assert_eq!(data[ENTERPRISE_URN], json!({"manager":{"value":"SuzzyQ"}}));
        assert_eq!(data["emails"], json!([{"primary":true,"value":"b@x.io"}]));
    }

    #[test]
    fn an_extension_object_may_repeat_its_schemas() {
        // scim2-models sends this; `schemas` is server-owned, so it is not stored.
        let data = user(json!({
            "userName":"a",
            ENTERPRISE_URN:{"schemas":[ENTERPRISE_URN],"department":"R&D"}
        }))
        .unwrap();
        assert_eq!(data[ENTERPRISE_URN], json!({"department":"R&D"}));
    }

    #[test]
    fn unqualified_extension_attributes_land_in_their_extension() {
        // Entra's older create body: enterprise attributes at the top level, as nulls.
        let data =
            user(json!({"userName":"a","department":null,"manager":null,"title":null})).unwrap();
        assert_eq!(data, json!({"userName":"a"}));
        let data = user(json!({"userName":"a","Department":"Sales",
            ENTERPRISE_URN:{"costCenter":"4"},"manager":"m"}))
        .unwrap();
        assert_eq!(
            data,
            json!({"userName":"a",ENTERPRISE_URN:{"department":"Sales","costCenter":"4","manager":{"value":"m"}}})
        );
    }

    #[test]
    fn a_manager_in_the_directory_shows_its_location_and_name() {
        let data = user(json!({"userName":"a",ENTERPRISE_URN:{"manager":{"value":"m","$ref":"x","displayName":"Forged"}}}))
            .unwrap();
        let data = data.as_object().unwrap();
        assert_eq!(manager_id(data), Some("m"));
        let meta = Meta {
            created: "c".into(),
            last_modified: "m".into(),
            version: 1,
            location: "http://h/scim/v2/Users/1".into(),
        };
        let mut out = render(&USER_RESOURCE, "1", data, vec![], &meta);
        assert_eq!(
            out[ENTERPRISE_URN]["manager"],
            json!({"value":"m","$ref":"x"})
        );
        show_manager(&mut out, "http://h/scim/v2/Users/m".into());
        assert_eq!(
            out[ENTERPRISE_URN]["manager"],
            json!({"value":"m","$ref":"http://h/scim/v2/Users/m"})
        );
    }

    #[test]
    fn shape_deviations_are_coerced() {
        let data = user(json!({
            "userName":"a",
            "emails":{"value":"a@x.io","type":"work"},
            ENTERPRISE_URN:{"manager":"m-1"}
        }))
        .unwrap();
        assert_eq!(data["emails"], json!([{"value":"a@x.io","type":"work"}]));
        assert_eq!(data[ENTERPRISE_URN]["manager"], json!({"value":"m-1"}));
        let data = user(
            json!({"userName":"a", ENTERPRISE_URN:{"manager":[{"$ref":"../Users/m","value":"m"}]}}),
        )
        .unwrap();
        assert_eq!(
            data[ENTERPRISE_URN]["manager"],
            json!({"$ref":"../Users/m","value":"m"})
        );
    }

    #[test]
    fn bad_input_is_rejected_precisely() {
        let cases = [
            (json!([1]), "invalidSyntax"),
            (json!({"displayName":"x"}), "invalidValue"),
            (json!({"userName":"  "}), "invalidValue"),
            (json!({"userName":42}), "invalidValue"),
            (json!({"userName":"a","active":"yes"}), "invalidValue"),
            (json!({"userName":"a","name":"Bob"}), "invalidValue"),
            (
                json!({"userName":"a","displayName":["x","y"]}),
                "invalidValue",
            ),
            (
                json!({"userName":"a","favouriteColour":"blue"}),
                "invalidSyntax",
            ),
            (
                json!({"userName":"a","urn:example:custom":"x"}),
                "invalidValue",
            ),
            (
                json!({"userName":"a","urn:example:a b":{"x":1}}),
                "invalidSyntax",
            ),
            (
                json!({"userName":"a","emails":[{"value":"a","primary":true},{"value":"b","primary":"True"}]}),
                "invalidValue",
            ),
            (json!({"userName":"a","schemas":"urn:x"}), "invalidSyntax"),
        ];
        for (body, scim_type) in cases {
            let err = user(body.clone()).unwrap_err();
            assert_eq!(err.status, 400, "{body}");
            assert_eq!(
                err.scim_type.unwrap().as_str(),
                scim_type,
                "{body}: {}",
                err.detail
            );
        }
    }

    #[test]
    fn groups_require_a_display_name_and_accept_entra_schema_uris() {
        let data = normalize(
            &GROUP_RESOURCE,
            json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group","http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                   "externalId":"8aa1","displayName":"Eng","meta":{"resourceType":"Group"}}),
        )
        .unwrap();
        assert_eq!(
            Value::Object(data),
            json!({"externalId":"8aa1","displayName":"Eng"})
        );
        assert!(normalize(&GROUP_RESOURCE, json!({"members":[]})).is_err());
    }

    #[test]
    fn render_puts_schemas_id_first_and_meta_last() {
        let data = user(json!({"userName":"a", ENTERPRISE_URN:{"department":"R&D"}})).unwrap();
        let meta = Meta {
            created: "c".into(),
            last_modified: "m".into(),
            version: 3,
            location: "http://h/scim/v2/Users/1".into(),
        };
        let out = render(
            &USER_RESOURCE,
            "1",
            data.as_object().unwrap(),
            vec![],
            &meta,
        );
        let keys: Vec<&str> = out
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["schemas", "id", "userName", ENTERPRISE_URN, "meta"]);
        assert_eq!(
            out["schemas"],
            json!([crate::scim::schema::USER_URN, ENTERPRISE_URN])
        );
        assert_eq!(out["meta"]["version"], "W/\"3\"");
    }
}
