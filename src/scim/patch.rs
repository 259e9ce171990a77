//! PATCH (RFC 7644 §3.5.2): parsing a PatchOp message and applying its operations, in
//! order, to a resource's canonical data (see [`super::resource`]). Pure: no I/O.
//!
//! Group `members` never live in the data: a group may have 100 000 of them, and adding or
//! removing one must not read or rewrite the list. Operations on `members` are therefore
//! returned as [`MemberOp`]s, in request order, for the storage layer to run against the
//! membership table.
//!
//! Decisions where the RFC is silent or real IdPs disagree with it (idp-behaviour.md §9):
//! - `op` is case-insensitive (`Add`, `Replace`, `REMOVE`); `Operations`, `op`, `path` and
//!   `value` keys are too. A missing PatchOp URN in `schemas` is tolerated.
//! - A pathless `add`/`replace` applies each key of its value object as if it were a path, so
//!   Entra's dotted and URN-qualified keys (`name.givenName`,
//!   `urn:…:enterprise:2.0:User:employeeNumber`) land where they belong and never become
//!   literal keys. Read-only attributes in such a value are ignored like in a PUT
//!   (RFC 7644 §3.5.1), `id` included (Okta's group rename echoes it; it never changes); an
//!   explicit `path` to a read-only attribute is `mutability`.
//! - `add`/`replace` through a value filter that matches nothing creates exactly one element
//!   from the filter's `eq` conditions plus the value (Entra's
//!   `emails[type eq "work"].value`), where the RFC would answer `noTarget` for `replace`. A
//!   filter that is not a conjunction of `eq` cannot describe an element and stays `noTarget`,
//!   and so does a write that would leave the new element without a `value` (or, for
//!   `addresses`, without anything beyond `type`/`primary`/`display`):
//!   `emails[type eq "other"].primary` matching nothing does not invent an email.
//! - `primary: true` through an unfiltered path (`emails.primary`) on a list of several is
//!   `invalidValue`: it names every element, and only one may be primary.
//! - `remove` through a value filter that matches nothing is `noTarget` on a multi-valued
//!   attribute (RFC 7644 Table 9) but a no-op on a single-valued one, because Entra removes
//!   `manager[value eq "id"]` whether or not that manager is still set.
//! - `null` unassigns (RFC 7643 §2.5). An empty string is stored as sent on a simple
//!   attribute (Entra's `SCIM_Null_Update_Test` reads back "null or empty"), but a complex
//!   value whose `value` sub-attribute is `""` is unassigned: that is how Entra clears
//!   `manager` ("Replace with empty").
//! - Removing or nulling a required attribute (`userName`, group `displayName`) is
//!   `mutability` (RFC 7644 §3.5.2.2); setting it to a blank string is `invalidValue`.
//! - `password` is validated and dropped; removing it is a no-op. `schemas` is server-owned:
//!   ignored in a value object (also inside a whole extension's value), `mutability` as a path.
//! - Setting `primary: true` on one element clears it on the others (RFC 7643 §2.4).
//! - `add` of an element equal to an existing one (same `value` and `type`) merges into it
//!   instead of duplicating.
//! - Members: `type` defaults to `User`; `display` may be `null` or spelled `displayName`;
//!   `$ref` and unknown keys are ignored; a bare string is taken as the member's id (the same
//!   tolerance [`coerce`] gives `"manager": "id"`; the storage layer still checks the id
//!   exists). `remove` on `members` with a value removes only the listed members (Entra);
//!   without one it clears the group (RFC); a `"members": null` inside a pathless value is
//!   ignored rather than read as "empty the group". MemberValue sub-attributes are immutable, so a path
//!   into a member (`members[…].display`) or a filtered add/replace is `mutability`.

use std::collections::HashMap;
use std::str::FromStr;

use serde_json::{Map, Value};

use super::error::ScimError;
use super::filter::{self, CompareOp, Filter};
use super::path::{self, AttrPath, ClientPath, PatchPath};
use super::resource::{self, coerce, describe};
use super::schema::{AttrType, Attribute, Mutability, ResourceType, Schema};

/// A PATCH operation verb (RFC 7644 §3.5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Replace,
    Remove,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Replace => "replace",
            Op::Remove => "remove",
        }
    }
}

impl FromStr for Op {
    type Err = ScimError;

    /// Case-insensitive: Entra sends `Add`, `Replace`, `Remove`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Op::Add, Op::Replace, Op::Remove]
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                ScimError::invalid_syntax(format!(
                    "\"op\" must be \"add\", \"replace\" or \"remove\", got \"{s}\""
                ))
            })
    }
}

/// One entry of a PatchOp's `Operations`.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub op: Op,
    /// The unparsed target; `None` targets the resource itself. Parsed in [`apply`], where
    /// the resource type is known.
    pub path: Option<String>,
    /// `None` when the key is absent; `Some(Value::Null)` when it was sent as `null`, which
    /// `replace` reads as "unassign".
    pub value: Option<Value>,
}

/// Parses a PatchOp message (RFC 7644 §3.5.2) into its operations, in order.
/// The most operations one PATCH may carry. IdPs send a handful (Entra batches member
/// changes, Okta sends one operation with many values); a body with thousands of them would
/// hold the write lock that every tenant's writes wait on.
pub const MAX_OPERATIONS: usize = 1000;

pub fn parse(body: Value) -> Result<Vec<Operation>, ScimError> {
    let Value::Object(fields) = body else {
        return Err(ScimError::invalid_syntax(
            "a PATCH body must be a PatchOp JSON object",
        ));
    };
    let ops = get_ignore_case(&fields, "Operations").ok_or_else(|| {
        ScimError::invalid_syntax("a PatchOp message needs an \"Operations\" array")
    })?;
    let Value::Array(ops) = ops else {
        return Err(ScimError::invalid_syntax("\"Operations\" must be an array"));
    };
    if ops.is_empty() {
        return Err(ScimError::invalid_syntax(
            "\"Operations\" must hold at least one operation",
        ));
    }
    if ops.len() > MAX_OPERATIONS {
        return Err(ScimError::invalid_value(format!(
            "a PATCH may carry at most {MAX_OPERATIONS} operations, not {}: split it",
            ops.len()
        )));
    }
    ops.iter()
        .enumerate()
        .map(|(i, op)| parse_operation(op).map_err(|e| in_operation(i, e)))
        .collect()
}

fn parse_operation(op: &Value) -> Result<Operation, ScimError> {
    let Value::Object(fields) = op else {
        return Err(ScimError::invalid_syntax(
            "each operation must be an object",
        ));
    };
    let verb = match get_ignore_case(fields, "op") {
        Some(Value::String(s)) => s.trim().parse::<Op>()?,
        Some(_) => return Err(ScimError::invalid_syntax("\"op\" must be a string")),
        None => return Err(ScimError::invalid_syntax("an operation needs an \"op\"")),
    };
    let path = match get_ignore_case(fields, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.trim().to_string()),
        Some(_) => return Err(ScimError::invalid_path("\"path\" must be a string")),
    };
    let value = get_ignore_case(fields, "value").cloned();
    if value.is_none() && verb != Op::Remove {
        return Err(ScimError::invalid_syntax(format!(
            "\"{}\" needs a \"value\"",
            verb.as_str()
        )));
    }
    Ok(Operation {
        op: verb,
        path,
        value,
    })
}

fn get_ignore_case<'a>(fields: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    fields.get(key).or_else(|| {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn in_operation(index: usize, mut e: ScimError) -> ScimError {
    e.detail = format!("Operations[{index}]: {}", e.detail);
    e
}

/// A group member as an IdP sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    /// The member resource's `id`.
    pub value: String,
    /// The IdP's display string; informational, the stored resource is authoritative.
    pub display: Option<String>,
    pub kind: MemberKind,
}

/// `members.type` (RFC 7643 §4.2); `User` when the IdP leaves it out (Okta, Entra do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum MemberKind {
    #[default]
    User,
    Group,
}

impl MemberKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberKind::User => "User",
            MemberKind::Group => "Group",
        }
    }
}

/// One change to a group's membership, for the storage layer, which runs them in order.
/// Removing or adding a member that is already absent or present is not an error there:
/// IdPs retry, and Okta re-sends memberships on every push.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberOp {
    /// Add these members (no duplicates: an existing membership stays as is).
    Add(Vec<MemberValue>),
    /// Remove the members with these ids.
    Remove(Vec<String>),
    /// Remove the members matching this element filter (e.g. `type eq "Group"`); attribute
    /// references are relative to one member, as in a value path.
    RemoveMatching(Filter),
    /// Remove every member.
    Clear,
    /// Make the membership exactly this list.
    Replace(Vec<MemberValue>),
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    /// Membership changes, in request order.
    pub members: Vec<MemberOp>,
    /// Whether the data differs from before, so an `add` of a value already present need
    /// not bump `meta.lastModified` (RFC 7644 §3.5.2.1).
    pub data_changed: bool,
}

/// Applies `ops` in order to `data`, the canonical data of a resource of type `rt`.
///
/// All or nothing: the operations run on a copy that replaces `data` only when every one
/// of them succeeded, so on error `data` is untouched and no [`MemberOp`] is returned.
pub fn apply(
    rt: &'static ResourceType,
    data: &mut Map<String, Value>,
    ops: &[Operation],
) -> Result<Outcome, ScimError> {
    let mut work = data.clone();
    let mut patcher = Patcher {
        rt,
        data: &mut work,
        members: Vec::new(),
        appended: None,
        at: 0,
        unfinished: Vec::new(),
        budget: filter::FilterBudget::default(),
    };
    for (i, op) in ops.iter().enumerate() {
        patcher.at = i;
        patcher.operation(op).map_err(|e| in_operation(i, e))?;
    }
    patcher.check_unfinished()?;
    let members = patcher.members;
    resource::check_names(&work)?;
    let data_changed = work != *data;
    if data_changed {
        resource::check_size(&work)?;
    }
    *data = work;
    Ok(Outcome {
        members,
        data_changed,
    })
}

/// The state of one `apply` call.
struct Patcher<'a> {
    rt: &'static ResourceType,
    data: &'a mut Map<String, Value>,
    members: Vec<MemberOp>,
    /// The elements of the attribute the previous operation appended to, by identity, so
    /// a run of `add`s to one list (1000 `add emails` operations) finds an equal element
    /// without scanning the list each time. Any other operation drops it.
    appended: Option<AppendIndex>,
    /// The index of the operation running.
    at: usize,
    /// Elements an operation created that could not stand alone yet (an email with only
    /// `primary`): a later operation of the same request may complete them (Entra does not
    /// promise to send `.value` before `.primary`), so they are judged once all have run.
    unfinished: Vec<Unfinished>,
    /// What the request's value filters may still cost.
    budget: filter::FilterBudget,
}

/// An element created without what makes it one (see [`stands_alone`]), and where.
struct Unfinished {
    at: usize,
    path: AttrPath,
    shown: String,
}

/// An element's identity for [`same_element`]: its `value` and `type`, folded unless the
/// sub-attribute is `caseExact`, strings and other JSON kept apart.
type ElementKey = (Option<String>, Option<String>);

/// Where each element of one multi-valued attribute sits, by [`ElementKey`].
struct AppendIndex {
    extension: Option<&'static str>,
    attr: &'static Attribute,
    /// How many elements the list had when the index was last updated: a list of another
    /// length is not the one indexed.
    len: usize,
    positions: HashMap<ElementKey, usize>,
}

impl AppendIndex {
    /// The index of `elements`, all assigned, when every one has a key.
    fn build(p: &AttrPath, elements: &[Value]) -> Option<AppendIndex> {
        let mut positions = HashMap::with_capacity(elements.len());
        for (i, e) in elements.iter().enumerate() {
            positions.entry(element_key(p.attr, e)?).or_insert(i);
        }
        Some(AppendIndex {
            extension: p.extension.map(|s| s.id),
            attr: p.attr,
            len: elements.len(),
            positions,
        })
    }

    fn indexes(&self, p: &AttrPath, len: usize) -> bool {
        std::ptr::eq(self.attr, p.attr)
            && self.extension == p.extension.map(|s| s.id)
            && self.len == len
    }
}

/// The key under which [`same_element`] finds `element` of `attr`; `None` for shapes it
/// compares whole (no `value` sub-attribute, or not an object).
fn element_key(attr: &'static Attribute, element: &Value) -> Option<ElementKey> {
    let value_attr = attr.sub("value").filter(|_| attr.ty == AttrType::Complex)?;
    let Value::Object(fields) = element else {
        return None;
    };
    let part = |sub: &Attribute, v: Option<&Value>| match v {
        None => None,
        Some(Value::String(s)) if !sub.case_exact => Some(format!("s{}", filter::fold(s))),
        Some(other) => Some(format!("j{other}")),
    };
    let kind = attr.sub("type").and_then(|t| part(t, fields.get("type")));
    Some((part(value_attr, fields.get("value")), kind))
}

/// How a target was named: by an explicit `path`, or as a key of a pathless value object,
/// which is read like a resource representation (read-only attributes ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Path,
    ValueKey,
}

impl Patcher<'_> {
    fn operation(&mut self, op: &Operation) -> Result<(), ScimError> {
        let value = op.value.clone();
        match &op.path {
            None if op.op == Op::Remove => Err(ScimError::no_target(
                "\"remove\" needs a \"path\" naming what to remove",
            )),
            None => self.pathless(op.op, value.unwrap_or(Value::Null)),
            Some(p) if p.eq_ignore_ascii_case("schemas") => Err(ScimError::mutability(
                "\"schemas\" is maintained by the server",
            )),
            Some(p) => {
                let target = path::parse(p, self.rt)?;
                self.target(op.op, target, value, Origin::Path)
            }
        }
    }

    /// `add` or `replace` without a path: the value is a set of attributes (RFC 7644
    /// §3.5.2.1, §3.5.2.3), each applied as if its key were the path.
    fn pathless(&mut self, op: Op, value: Value) -> Result<(), ScimError> {
        let Value::Object(fields) = value else {
            return Err(ScimError::invalid_value(format!(
                "a pathless \"{}\" needs an object of attributes as its value",
                op.as_str()
            )));
        };
        for (key, value) in fields {
            if key.eq_ignore_ascii_case("schemas") {
                continue;
            }
            if key.eq_ignore_ascii_case(self.rt.schema.id) {
                // Core attributes wrapped in their own URN (RFC 7644 §3.10).
                let Value::Object(inner) = value else {
                    return Err(ScimError::invalid_value(format!(
                        "\"{key}\" must be an object"
                    )));
                };
                self.pathless(op, Value::Object(inner))?;
                continue;
            }
            let target = path::parse(&key, self.rt)?;
            self.target(op, target, Some(value), Origin::ValueKey)?;
        }
        Ok(())
    }

    fn target(
        &mut self,
        op: Op,
        target: PatchPath,
        value: Option<Value>,
        origin: Origin,
    ) -> Result<(), ScimError> {
        match target {
            PatchPath::Extension(ext) => self.extension(op, ext, value),
            PatchPath::Attribute(p) => {
                self.attribute(op, p, value, origin)?;
                self.drop_empty_extensions();
                Ok(())
            }
            PatchPath::Client(p) => self.client(op, p, value),
        }
    }

    /// A target in an extension of the client's own, whose values are kept as sent: a whole
    /// extension (`remove` drops it, `add` and `replace` set each key of an object), an
    /// attribute, or a sub-attribute. `add` appends to a list what it does not hold yet;
    /// `remove` with a value takes those values out of a list.
    fn client(&mut self, op: Op, p: ClientPath, value: Option<Value>) -> Result<(), ScimError> {
        self.appended = None;
        let data = &*self.data;
        // Naming neither reading the user holds, an object is a whole extension, as a POST
        // reads such a key, whether a path or a pathless value's key names it.
        let object = matches!(value, Some(Value::Object(_)));
        let p = p.whole(
            self.rt,
            |urn| resource::same_key(data, urn).is_some(),
            object,
        );
        if p.attr.as_deref().is_some_and(|a| {
            a.eq_ignore_ascii_case("password") || a.eq_ignore_ascii_case("schemas")
        }) {
            // Never stored, in an extension of the client's either: a `password` is
            // dropped, and `schemas` is server-owned (ignored as inside a PUT's object).
            return Ok(());
        }
        let shown = match (&p.attr, &p.sub) {
            (None, _) => p.urn.clone(),
            (Some(attr), None) => format!("{}:{attr}", p.urn),
            (Some(attr), Some(sub)) => format!("{}:{attr}.{sub}", p.urn),
        };
        let key = resource::same_key(self.data, &p.urn).unwrap_or(p.urn);
        let mut slot = match self.data.remove(&key) {
            Some(Value::Object(fields)) => fields,
            _ => Map::new(),
        };
        let needed = |value: Option<Value>| {
            value.ok_or_else(|| {
                ScimError::invalid_value(format!(
                    "\"{}\" of \"{shown}\" needs a \"value\"",
                    op.as_str()
                ))
            })
        };
        match (p.attr, p.sub, op) {
            (None, _, Op::Remove) => slot.clear(),
            (None, _, _) => match needed(value)? {
                Value::Object(fields) => {
                    for (k, v) in fields {
                        if !k.eq_ignore_ascii_case("schemas") && !k.eq_ignore_ascii_case("password")
                        {
                            client_set(&mut slot, k, v, op);
                        }
                    }
                }
                Value::Null => slot.clear(),
                other => {
                    return Err(ScimError::invalid_value(format!(
                        "\"{shown}\" must be an object, got {}",
                        describe(&other)
                    )));
                }
            },
            (Some(attr), None, Op::Remove) => client_remove(&mut slot, &attr, value),
            (Some(attr), None, _) => client_set(&mut slot, attr, needed(value)?, op),
            (Some(attr), Some(sub), _) => {
                let attr = resource::same_key(&slot, &attr).unwrap_or(attr);
                let mut inner = match slot.remove(&attr) {
                    Some(Value::Object(fields)) => fields,
                    None => Map::new(),
                    Some(other) if op == Op::Remove => {
                        // No sub-attribute to remove from a value that has none.
                        slot.insert(attr.clone(), other);
                        Map::new()
                    }
                    Some(other) => {
                        return Err(ScimError::invalid_path(format!(
                            "\"{shown}\": \"{attr}\" holds {}, not sub-attributes",
                            describe(&other)
                        )));
                    }
                };
                match op {
                    Op::Remove => client_remove(&mut inner, &sub, value),
                    _ => client_set(&mut inner, sub, needed(value)?, op),
                }
                if !inner.is_empty() {
                    slot.insert(attr, Value::Object(inner));
                }
            }
        }
        if !slot.is_empty() {
            self.data.insert(key, Value::Object(slot));
        }
        Ok(())
    }

    /// A whole extension as the target: `remove` drops it, `add`/`replace` apply each of
    /// its attributes (merging, as for any complex value).
    fn extension(
        &mut self,
        op: Op,
        ext: &'static Schema,
        value: Option<Value>,
    ) -> Result<(), ScimError> {
        match (op, value) {
            (Op::Remove, _) | (_, None | Some(Value::Null)) => {
                self.appended = None;
                self.data.remove(ext.id);
                Ok(())
            }
            (_, Some(Value::Object(fields))) => {
                // Keys are paths within the extension, so `manager.value` works here too.
                for (key, value) in fields {
                    if key.eq_ignore_ascii_case("schemas") {
                        // Server-owned, as in a pathless value; scim2-models sends the
                        // extension's own URN here.
                        continue;
                    }
                    match path::parse(&format!("{}:{key}", ext.id), self.rt)? {
                        PatchPath::Attribute(p) => {
                            self.attribute(op, p, Some(value), Origin::ValueKey)?
                        }
                        PatchPath::Extension(_) | PatchPath::Client(_) => {
                            return Err(ScimError::invalid_path(format!(
                                "\"{key}\" is not an attribute of {}",
                                ext.id
                            )));
                        }
                    }
                }
                self.drop_empty_extensions();
                Ok(())
            }
            (_, Some(_)) => Err(ScimError::invalid_value(format!(
                "\"{}\" must be an object",
                ext.id
            ))),
        }
    }

    fn attribute(
        &mut self,
        op: Op,
        p: AttrPath,
        value: Option<Value>,
        origin: Origin,
    ) -> Result<(), ScimError> {
        if p.extension.is_none() && p.attr.name == "members" && self.rt.name == "Group" {
            // A `"members": null` echoed in a value object is not a request to empty the
            // group: clearing by accident costs far more than ignoring it (hard case 6).
            if origin == Origin::ValueKey && matches!(value, None | Some(Value::Null)) {
                return Ok(());
            }
            return self.members(op, p, value);
        }
        let appends = op == Op::Add && p.attr.multi_valued && p.filter.is_none() && p.sub.is_none();
        if !appends {
            self.appended = None;
        }
        let shown = p.display();
        match p.attr.mutability {
            Mutability::ReadOnly => return Self::read_only(&p, origin),
            Mutability::WriteOnly => {
                // `password`: validated so a client learns of a malformed value, never kept.
                if op != Op::Remove {
                    coerce(p.attr, value.unwrap_or(Value::Null), &shown)?;
                }
                return Ok(());
            }
            Mutability::Immutable
                if op != Op::Add || self.container_for(p.extension).contains_key(p.attr.name) =>
            {
                return Err(ScimError::mutability(format!("\"{shown}\" is immutable")));
            }
            Mutability::Immutable | Mutability::ReadWrite => {}
        }
        if let Some(sub) = p.sub.filter(|s| s.mutability == Mutability::ReadOnly) {
            return match origin {
                Origin::ValueKey => Ok(()),
                Origin::Path => Err(ScimError::mutability(format!(
                    "\"{shown}\" is read-only ({} is set by the server)",
                    sub.name
                ))),
            };
        }
        match op {
            Op::Add | Op::Replace => self.write(op, &p, value.unwrap_or(Value::Null), &shown),
            Op::Remove => self.remove(&p, value, &shown),
        }
    }

    /// A read-only target (`id`, `meta`, `groups`): an error when named by `path`, ignored
    /// in a value object, as in a PUT (RFC 7644 §3.5.1). Okta's group rename echoes the
    /// `id`; a replayed or copied body may carry another one, which changes nothing either.
    fn read_only(p: &AttrPath, origin: Origin) -> Result<(), ScimError> {
        match origin {
            Origin::ValueKey => Ok(()),
            Origin::Path => Err(ScimError::mutability(format!(
                "\"{}\" is read-only",
                p.display()
            ))),
        }
    }

    /// `add` or `replace` at an attribute path.
    fn write(&mut self, op: Op, p: &AttrPath, value: Value, shown: &str) -> Result<(), ScimError> {
        let attr = p.attr;
        if let Some(filter) = &p.filter {
            return self.write_filtered(op, p, filter, value, shown);
        }
        match (p.sub, attr.multi_valued) {
            (None, true) if op == Op::Add => self.append(p, value, shown),
            (None, true) => {
                match coerce(attr, value, shown)? {
                    Some(list) => self
                        .container_for(p.extension)
                        .insert(attr.name.to_string(), list),
                    None => self.container_for(p.extension).remove(attr.name),
                };
                Ok(())
            }
            (None, false) if attr.ty == AttrType::Complex => {
                // RFC 7644 §3.5.2.1/§3.5.2.3: sub-attributes not given are left unchanged.
                let mut current = self.take_elements(p);
                let mut obj = current.pop().unwrap_or_else(|| Value::Object(Map::new()));
                match complex_fields(attr, value, shown)? {
                    Some(fields) => merge_fields(&mut obj, attr, fields, shown)?,
                    None => obj = Value::Null,
                }
                self.put_elements(p, vec![obj]);
                Ok(())
            }
            (None, false) => self.set_simple(p, value, shown),
            (Some(sub), false) => {
                let mut current = self.take_elements(p);
                let mut obj = current.pop().unwrap_or_else(|| Value::Object(Map::new()));
                if sub.name == "value" {
                    retarget(&mut obj, attr, Some(&value));
                }
                write_sub(&mut obj, sub, value, shown)?;
                self.put_elements(p, vec![obj]);
                Ok(())
            }
            (Some(sub), true) => {
                // `emails.value` without a filter: every element, or a first one.
                let mut elements = self.take_elements(p);
                if sub.name == "primary" && elements.len() > 1 && value_is_true(&value) {
                    return Err(ScimError::invalid_value(format!(
                        "\"{shown}\" names every value of \"{}\", and only one may be primary; \
                         pick one with a filter, e.g. {}[value eq \"…\"].primary",
                        attr.name, attr.name
                    )));
                }
                if elements.is_empty() {
                    let mut element = Value::Object(Map::new());
                    write_sub(&mut element, sub, value, shown)?;
                    if is_assigned(&element) && !stands_alone(attr, &element) {
                        self.unfinished(p, shown);
                    }
                    self.put_elements(p, vec![element]);
                    return Ok(());
                }
                for element in &mut elements {
                    write_sub(element, sub, value.clone(), shown)?;
                }
                let touched: Vec<usize> = (0..elements.len()).collect();
                enforce_single_primary(&mut elements, &touched);
                self.put_elements(p, elements);
                Ok(())
            }
        }
    }

    /// `add` to a multi-valued attribute: append, merging into an equal element rather than
    /// duplicating it. Costs what it adds, not the length of the list: equal elements are
    /// found through [`AppendIndex`], kept from one `add` to the next.
    fn append(&mut self, p: &AttrPath, value: Value, shown: &str) -> Result<(), ScimError> {
        let attr = p.attr;
        let Some(Value::Array(new)) = coerce(attr, value, shown)? else {
            return Ok(());
        };
        let mut elements = self.take_elements(p);
        let mut index = match self.appended.take() {
            Some(ix) if ix.indexes(p, elements.len()) => Some(ix),
            _ => {
                // What `put_elements` would drop anyway, so positions stay valid.
                elements.retain(is_assigned);
                AppendIndex::build(p, &elements)
            }
        };
        let mut touched = Vec::with_capacity(new.len());
        for item in new.into_iter().filter(is_assigned) {
            let key = element_key(attr, &item);
            let found = match (&index, &key) {
                (Some(ix), Some(k)) => ix.positions.get(k).copied(),
                // Not an object: equal to no element of an indexed list.
                (Some(_), None) => None,
                (None, _) => elements.iter().position(|e| same_element(attr, e, &item)),
            };
            match found {
                Some(i) => {
                    if let (Value::Object(existing), Value::Object(fields)) =
                        (&mut elements[i], item)
                    {
                        // The stored `value` and `type` identify it and stay as they were.
                        existing.extend(
                            fields
                                .into_iter()
                                .filter(|(k, _)| k != "value" && k != "type"),
                        );
                    }
                    touched.push(i);
                }
                None => {
                    elements.push(item);
                    let i = elements.len() - 1;
                    touched.push(i);
                    match (&mut index, key) {
                        (Some(ix), Some(k)) => {
                            ix.positions.entry(k).or_insert(i);
                        }
                        _ => index = None,
                    }
                }
            }
        }
        enforce_single_primary(&mut elements, &touched);
        if let Some(ix) = &mut index {
            ix.len = elements.len();
        }
        if !elements.is_empty() {
            self.container_for(p.extension)
                .insert(attr.name.to_string(), Value::Array(elements));
        }
        self.appended = index;
        Ok(())
    }

    fn set_simple(&mut self, p: &AttrPath, value: Value, shown: &str) -> Result<(), ScimError> {
        let attr = p.attr;
        match coerce(attr, value, shown)? {
            Some(Value::String(s)) if attr.required && s.trim().is_empty() => Err(
                ScimError::invalid_value(format!("\"{shown}\" is required and must not be empty")),
            ),
            Some(v) => {
                self.container_for(p.extension)
                    .insert(attr.name.to_string(), v);
                Ok(())
            }
            None if attr.required => Err(required(shown)),
            None => {
                self.container_for(p.extension).remove(attr.name);
                Ok(())
            }
        }
    }

    /// `add`/`replace` through a value filter (RFC 7644 §3.5.2.1, §3.5.2.3).
    fn write_filtered(
        &mut self,
        op: Op,
        p: &AttrPath,
        filter: &Filter,
        value: Value,
        shown: &str,
    ) -> Result<(), ScimError> {
        let attr = p.attr;
        let mut elements = self.take_elements(p);
        self.budget.spend(filter, elements.len())?;
        let matched: Vec<usize> = (0..elements.len())
            .filter(|&i| filter::matches_element(filter, &elements[i]))
            .collect();
        let touched = if matched.is_empty() {
            if matches!(&value, Value::Null) || value.as_str() == Some("") {
                // Unassigning what is not there (Entra's SCIM_Null_Update_Test sends `""`,
                // then `null`, to `phoneNumbers[type eq "mobile"].value`): nothing to do.
                self.put_elements(p, elements);
                return Ok(());
            }
            // Entra: no element matches, so create the one the filter describes.
            let Some(mut element) = element_from_filter(filter) else {
                return Err(ScimError::no_target(format!(
                    "no value of \"{}\" matches the filter in \"{shown}\", and the filter does not describe a new one",
                    attr.name
                )));
            };
            match p.sub {
                Some(sub) => write_sub(&mut element, sub, value, shown)?,
                None => match complex_fields(attr, value, shown)? {
                    Some(fields) => merge_fields(&mut element, attr, fields, shown)?,
                    None => element = Value::Null,
                },
            }
            if is_assigned(&element) && !stands_alone(attr, &element) {
                self.unfinished(p, shown);
            }
            if !attr.multi_valued {
                elements.clear();
            }
            elements.push(element);
            vec![elements.len() - 1]
        } else {
            for &i in &matched {
                match (p.sub, op) {
                    (Some(sub), _) => write_sub(&mut elements[i], sub, value.clone(), shown)?,
                    (None, Op::Replace) => {
                        // Replace the element but keep what the filter pinned (its `type`),
                        // so it still answers to the same filter.
                        let mut element = element_from_filter(filter)
                            .unwrap_or_else(|| Value::Object(Map::new()));
                        match complex_fields(attr, value.clone(), shown)? {
                            Some(fields) => merge_fields(&mut element, attr, fields, shown)?,
                            None => element = Value::Null,
                        }
                        elements[i] = element;
                    }
                    (None, _) => match complex_fields(attr, value.clone(), shown)? {
                        Some(fields) => merge_fields(&mut elements[i], attr, fields, shown)?,
                        None => elements[i] = Value::Null,
                    },
                }
                // Clearing a sub-attribute may leave nothing of the element but its `type`
                // and `primary` (Entra's SCIM_Null_Update_Test empties every field of a
                // work address): it goes, as an email whose address is cleared does.
                let clears = value.is_null() || value.as_str() == Some("");
                if clears && p.sub.is_some() && !stands_alone(attr, &elements[i]) {
                    elements[i] = Value::Null;
                }
            }
            matched
        };
        enforce_single_primary(&mut elements, &touched);
        self.put_elements(p, elements);
        Ok(())
    }

    /// `remove` at an attribute path (RFC 7644 §3.5.2.2).
    fn remove(&mut self, p: &AttrPath, value: Option<Value>, shown: &str) -> Result<(), ScimError> {
        let attr = p.attr;
        if attr.required && p.sub.is_none() && p.filter.is_none() {
            return Err(required(shown));
        }
        if let Some(filter) = &p.filter {
            let mut elements = self.take_elements(p);
            self.budget.spend(filter, elements.len())?;
            let matched: Vec<usize> = (0..elements.len())
                .filter(|&i| filter::matches_element(filter, &elements[i]))
                .collect();
            if matched.is_empty() && attr.multi_valued {
                return Err(ScimError::no_target(format!(
                    "no value of \"{}\" matches the filter in \"{shown}\"",
                    attr.name
                )));
            }
            for &i in &matched {
                match p.sub {
                    Some(sub) => {
                        if let Value::Object(fields) = &mut elements[i] {
                            fields.remove(sub.name);
                        }
                        // Nothing left but `type` and `primary`: the element goes, as a
                        // cleared one does ([`Self::write_filtered`]).
                        if !stands_alone(attr, &elements[i]) {
                            elements[i] = Value::Null;
                        }
                    }
                    None => elements[i] = Value::Null,
                }
            }
            self.put_elements(p, elements);
            return Ok(());
        }
        match (p.sub, value) {
            // `manager.value` with a value: only when it is the one set, as above.
            (Some(sub), Some(Value::String(named)))
                if sub.name == "value"
                    && !attr.multi_valued
                    && !named.is_empty()
                    && !equal_as(
                        sub,
                        self.container_for(p.extension)
                            .get(attr.name)
                            .and_then(|v| v.get("value")),
                        Some(&Value::String(named.clone())),
                    ) => {}
            (Some(sub), _) => {
                let mut elements = self.take_elements(p);
                for element in &mut elements {
                    if let Value::Object(fields) = element {
                        fields.remove(sub.name);
                    }
                }
                self.put_elements(p, elements);
            }
            // Entra's habit for members, applied to any multi-valued attribute: a value
            // lists the elements to remove.
            (None, Some(value)) if attr.multi_valued && !value.is_null() => {
                let doomed = match coerce(attr, value, shown)? {
                    Some(Value::Array(items)) => items,
                    _ => Vec::new(),
                };
                let elements = self
                    .take_elements(p)
                    .into_iter()
                    .filter(|e| !doomed.iter().any(|d| contains_fields(attr, e, d)))
                    .collect();
                self.put_elements(p, elements);
            }
            // The same habit on a single-valued reference (`manager`): a value naming one
            // removes only that one, as `manager[value eq "id"]` does. Entra's "change
            // manager" may add the new one before removing the old one by value.
            (None, Some(value)) if !value.is_null() => {
                // `[]` names nothing to remove, as it does for members.
                if value.as_array().is_some_and(Vec::is_empty) {
                    return Ok(());
                }
                let named = coerce(attr, value, shown)?
                    .and_then(|v| v.get("value").and_then(Value::as_str).map(str::to_string))
                    .filter(|id| !id.is_empty());
                let container = self.container_for(p.extension);
                let current = container.get(attr.name).and_then(|v| v.get("value"));
                let other = match (&named, attr.sub("value")) {
                    (Some(named), Some(sub)) => {
                        !equal_as(sub, current, Some(&Value::String(named.clone())))
                    }
                    _ => false,
                };
                if !other {
                    container.remove(attr.name);
                }
            }
            (None, _) => {
                self.container_for(p.extension).remove(attr.name);
            }
        }
        Ok(())
    }

    /// `members` of a group: turned into [`MemberOp`]s, never written to the data.
    fn members(&mut self, op: Op, p: AttrPath, value: Option<Value>) -> Result<(), ScimError> {
        if let Some(sub) = p.sub {
            return Err(ScimError::mutability(format!(
                "\"members.{}\" is immutable: add or remove whole members instead",
                sub.name
            )));
        }
        let member_op = match (op, p.filter, value) {
            (Op::Remove, Some(filter), _) => match member_ids(&filter) {
                Some(ids) => MemberOp::Remove(ids),
                None => MemberOp::RemoveMatching(filter),
            },
            (_, Some(_), _) => {
                return Err(ScimError::mutability(
                    "members are immutable: add or remove whole members instead of changing them through a filter",
                ));
            }
            (Op::Add, None, value) => {
                let added = parse_members(value.unwrap_or(Value::Null))?;
                if added.is_empty() {
                    return Ok(());
                }
                MemberOp::Add(added)
            }
            (Op::Replace, None, value) => match parse_members(value.unwrap_or(Value::Null))? {
                list if list.is_empty() => MemberOp::Clear,
                list => MemberOp::Replace(list),
            },
            (Op::Remove, None, None | Some(Value::Null)) => MemberOp::Clear,
            (Op::Remove, None, Some(value)) => {
                let ids: Vec<String> = parse_members(value)?.into_iter().map(|m| m.value).collect();
                if ids.is_empty() {
                    return Ok(());
                }
                MemberOp::Remove(ids)
            }
        };
        self.members.push(member_op);
        Ok(())
    }

    /// The object holding top-level attributes of the schema `extension` (or the core).
    fn container_for(&mut self, extension: Option<&'static Schema>) -> &mut Map<String, Value> {
        let Some(ext) = extension else {
            return self.data;
        };
        let slot = self
            .data
            .entry(ext.id.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        match slot {
            Value::Object(fields) => fields,
            _ => unreachable!("just made an object"),
        }
    }

    /// Takes the current value(s) of `p.attr` out of the data, as a list of elements: a
    /// single-valued complex attribute is a list of at most one, so value filters and
    /// sub-attribute writes treat both shapes alike.
    /// Notes an element just created at `p` that cannot stand alone yet.
    fn unfinished(&mut self, p: &AttrPath, shown: &str) {
        self.unfinished.push(Unfinished {
            at: self.at,
            path: p.clone(),
            shown: shown.to_string(),
        });
    }

    /// `noTarget` for the first operation that created an element no later operation
    /// completed (RFC 7644 §3.5.2.3): an email with no address is never stored.
    fn check_unfinished(&mut self) -> Result<(), ScimError> {
        for u in std::mem::take(&mut self.unfinished) {
            let attr = u.path.attr;
            let elements = self.take_elements(&u.path);
            let whole = elements
                .iter()
                .all(|e| !is_assigned(e) || stands_alone(attr, e));
            self.put_elements(&u.path, elements);
            if !whole {
                return Err(in_operation(u.at, no_element(attr, &u.shown)));
            }
        }
        self.drop_empty_extensions();
        Ok(())
    }

    fn take_elements(&mut self, p: &AttrPath) -> Vec<Value> {
        match self.container_for(p.extension).remove(p.attr.name) {
            Some(Value::Array(items)) => items,
            Some(Value::Null) | None => Vec::new(),
            Some(single) => vec![single],
        }
    }

    /// Puts elements back, dropping unassigned ones; an attribute left with none is removed.
    fn put_elements(&mut self, p: &AttrPath, elements: Vec<Value>) {
        let mut kept: Vec<Value> = elements.into_iter().filter(is_assigned).collect();
        let value = if p.attr.multi_valued {
            (!kept.is_empty()).then_some(Value::Array(kept))
        } else {
            kept.pop()
        };
        if let Some(value) = value {
            self.container_for(p.extension)
                .insert(p.attr.name.to_string(), value);
        }
    }

    fn drop_empty_extensions(&mut self) {
        for ext in self.rt.extensions {
            if matches!(self.data.get(ext.id), Some(Value::Object(m)) if m.is_empty()) {
                self.data.remove(ext.id);
            }
        }
    }
}

fn required(shown: &str) -> ScimError {
    ScimError::mutability(format!("\"{shown}\" is required and cannot be removed"))
}

/// Whether an element the server creates (a value filter that matched nothing, or a
/// sub-attribute path into an empty list) holds something of its own: a `value` where the
/// attribute has one, else a field beyond `type`, `primary` and `display`. Without this,
/// `emails[type eq "other"].primary` would create an email with no address.
fn stands_alone(attr: &'static Attribute, element: &Value) -> bool {
    let Value::Object(fields) = element else {
        return true;
    };
    if attr.sub("value").is_some() {
        return fields.get("value").is_some_and(|v| !v.is_null());
    }
    fields
        .keys()
        .any(|k| !matches!(k.as_str(), "type" | "primary" | "display"))
}

/// `noTarget` for a write that matched no element and cannot make one (RFC 7644 §3.5.2.3).
fn no_element(attr: &'static Attribute, shown: &str) -> ScimError {
    ScimError::no_target(format!(
        "no value of \"{}\" matches \"{shown}\", and what it sets cannot stand as a new one",
        attr.name
    ))
}

fn value_is_true(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// Whether a stored element still carries information. A complex value whose `value`
/// sub-attribute is `""` counts as unassigned: Entra clears `manager` that way.
fn is_assigned(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Object(fields) => {
            !fields.is_empty() && fields.get("value") != Some(&Value::String(String::new()))
        }
        _ => true,
    }
}

/// The fields of a complex value as sent, before per-sub-attribute coercion, or `None` when
/// the value unassigns the attribute (`null`, `""`, `[]`). Tolerates what [`coerce`] does:
/// a one-element array (Entra's `manager`) and a bare string standing for `value`.
fn complex_fields(
    attr: &'static Attribute,
    value: Value,
    shown: &str,
) -> Result<Option<Map<String, Value>>, ScimError> {
    let value = match value {
        Value::Array(mut items) if items.len() <= 1 => match items.pop() {
            Some(item) => item,
            None => return Ok(None),
        },
        other => other,
    };
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::Object(fields) => Ok(Some(fields)),
        other => match coerce(attr, other, shown)? {
            Some(Value::Object(fields)) => Ok(Some(fields)),
            Some(Value::Array(mut items)) if items.len() == 1 => match items.pop() {
                Some(Value::Object(fields)) => Ok(Some(fields)),
                _ => Ok(None),
            },
            Some(_) => Err(ScimError::invalid_value(format!(
                "\"{shown}\" takes a single object"
            ))),
            None => Ok(None),
        },
    }
}

/// Merges sent fields into a complex value, one sub-attribute at a time: `null` unassigns a
/// sub-attribute, unknown and read-only ones (`manager.displayName`) are ignored as in a
/// POST body.
fn merge_fields(
    target: &mut Value,
    attr: &'static Attribute,
    fields: Map<String, Value>,
    shown: &str,
) -> Result<(), ScimError> {
    let new_value = fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("value"))
        .map(|(_, v)| v);
    retarget(target, attr, new_value);
    for (key, value) in fields {
        let Some(sub) = attr.sub(&key) else { continue };
        if sub.mutability == Mutability::ReadOnly {
            continue;
        }
        write_sub(target, sub, value, &format!("{shown}.{}", sub.name))?;
    }
    Ok(())
}

/// Clears a reference (`manager`) that is about to point at another resource: its other
/// sub-attributes (`$ref`, `displayName`) described the old one. Entra changes a manager by
/// sending only the new `value`.
fn retarget(target: &mut Value, attr: &'static Attribute, new_value: Option<&Value>) {
    if attr.sub("$ref").is_none() {
        return;
    }
    if let (Some(new), Some(old)) = (new_value, target.get("value"))
        && new != old
    {
        *target = Value::Object(Map::new());
    }
}

/// Sets (or with `null`, unassigns) one sub-attribute of a complex value; `shown` is the
/// sub-attribute's path, for error messages.
fn write_sub(
    target: &mut Value,
    sub: &'static Attribute,
    value: Value,
    shown: &str,
) -> Result<(), ScimError> {
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(fields) = target else {
        unreachable!("just made an object")
    };
    match coerce(sub, value, shown)? {
        Some(v) => fields.insert(sub.name.to_string(), v),
        None => fields.remove(sub.name),
    };
    Ok(())
}

/// Whether `a` and `b` are the same element of `attr`, so that adding `b` again must not
/// duplicate it: same `value` and `type` for the usual shape (compared as the schema says),
/// otherwise equal apart from `primary`.
fn same_element(attr: &'static Attribute, a: &Value, b: &Value) -> bool {
    if attr.ty != AttrType::Complex {
        return a == b;
    }
    let (Value::Object(a), Value::Object(b)) = (a, b) else {
        return a == b;
    };
    if let Some(value_attr) = attr.sub("value") {
        return equal_as(value_attr, a.get("value"), b.get("value"))
            && attr
                .sub("type")
                .is_none_or(|t| equal_as(t, a.get("type"), b.get("type")));
    }
    let strip = |m: &Map<String, Value>| -> Map<String, Value> {
        m.iter()
            .filter(|(k, _)| k.as_str() != "primary")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    strip(a) == strip(b)
}

/// Whether `element` holds every field of `probe` (Entra's remove-by-value).
fn contains_fields(attr: &'static Attribute, element: &Value, probe: &Value) -> bool {
    match (element, probe) {
        (Value::Object(e), Value::Object(p)) => p.iter().all(|(k, v)| match attr.sub(k) {
            Some(sub) => equal_as(sub, e.get(k), Some(v)),
            None => false,
        }),
        _ => element == probe,
    }
}

/// Equality of two optional values of `attr`, ignoring case unless `caseExact`.
fn equal_as(attr: &Attribute, a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(Value::String(a)), Some(Value::String(b))) if !attr.case_exact => {
            filter::fold_eq(a, b)
        }
        _ => a == b,
    }
}

/// At most one element may be `primary` (RFC 7643 §2.4): when several are, the one this
/// operation touched last wins and the others are set to `false`. Every operation keeps
/// that true, so only one that made a touched element primary needs to look at the rest.
fn enforce_single_primary(elements: &mut [Value], touched: &[usize]) {
    if !touched
        .iter()
        .any(|&i| elements[i].get("primary") == Some(&Value::Bool(true)))
    {
        return;
    }
    let primaries: Vec<usize> = (0..elements.len())
        .filter(|&i| elements[i].get("primary") == Some(&Value::Bool(true)))
        .collect();
    if primaries.len() <= 1 {
        return;
    }
    let keep = touched
        .iter()
        .rev()
        .copied()
        .find(|i| primaries.contains(i))
        .or(primaries.last().copied());
    for i in primaries {
        if Some(i) != keep
            && let Value::Object(fields) = &mut elements[i]
        {
            fields.insert("primary".into(), Value::Bool(false));
        }
    }
}

/// The element a value filter describes, when it is a conjunction of `eq` comparisons on
/// sub-attributes (`type eq "work"`, `type eq "work" and primary eq true`).
fn element_from_filter(filter: &Filter) -> Option<Value> {
    fn collect(filter: &Filter, out: &mut Map<String, Value>) -> bool {
        match filter {
            Filter::Compare {
                attr,
                op: CompareOp::Eq,
                value,
            } if attr.sub.is_none() && attr.extension.is_none() => {
                match coerce(attr.attr, value.clone(), attr.attr.name) {
                    Ok(Some(v)) => {
                        out.insert(attr.attr.name.to_string(), v);
                        true
                    }
                    _ => false,
                }
            }
            Filter::And(a, b) => collect(a, out) && collect(b, out),
            _ => false,
        }
    }
    let mut fields = Map::new();
    (collect(filter, &mut fields) && !fields.is_empty()).then_some(Value::Object(fields))
}

/// The member ids of a filter made only of `value eq "id"` joined by `or` (Okta's and
/// Entra's `members[value eq "id"]`), which storage can remove by key.
fn member_ids(filter: &Filter) -> Option<Vec<String>> {
    fn collect(filter: &Filter, out: &mut Vec<String>) -> bool {
        match filter {
            Filter::Compare {
                attr,
                op: CompareOp::Eq,
                value: Value::String(id),
            } if attr.attr.name == "value" && attr.sub.is_none() => {
                out.push(id.clone());
                true
            }
            Filter::Or(a, b) => collect(a, out) && collect(b, out),
            _ => false,
        }
    }
    let mut ids = Vec::new();
    collect(filter, &mut ids).then_some(ids)
}

/// Reads the members an IdP sent: an array (or a single one) of member objects or bare id
/// strings. Also used for the `members` of POST and PUT bodies.
pub fn parse_members(value: Value) -> Result<Vec<MemberValue>, ScimError> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        single => vec![single],
    };
    items.into_iter().map(parse_member).collect()
}

fn parse_member(item: Value) -> Result<MemberValue, ScimError> {
    let fields = match item {
        Value::String(id) if !id.trim().is_empty() => {
            return Ok(MemberValue {
                value: id,
                display: None,
                kind: MemberKind::User,
            });
        }
        Value::Object(fields) => fields,
        other => {
            return Err(ScimError::invalid_value(format!(
                "a member must be an object with a \"value\", got {other}"
            )));
        }
    };
    let mut member = MemberValue {
        value: String::new(),
        display: None,
        kind: MemberKind::User,
    };
    for (key, v) in fields {
        match key.to_ascii_lowercase().as_str() {
            "value" => match v {
                Value::String(id) if !id.trim().is_empty() => member.value = id,
                other => {
                    return Err(ScimError::invalid_value(format!(
                        "members.value must be a non-empty string id, got {other}"
                    )));
                }
            },
            "display" | "displayname" => match v {
                Value::String(s) => {
                    resource::check_name("members.display", &s)?;
                    member.display = Some(s);
                }
                Value::Null => {}
                other => {
                    return Err(ScimError::invalid_value(format!(
                        "members.display must be a string, got {other}"
                    )));
                }
            },
            "type" => match v {
                Value::Null => {}
                Value::String(s) if s.eq_ignore_ascii_case("user") => {
                    member.kind = MemberKind::User
                }
                Value::String(s) if s.eq_ignore_ascii_case("group") => {
                    member.kind = MemberKind::Group
                }
                other => {
                    return Err(ScimError::invalid_value(format!(
                        "members.type must be \"User\" or \"Group\", got {other}"
                    )));
                }
            },
            // `$ref` is derived from the id; anything else (Microsoft's "name") is noise.
            _ => {}
        }
    }
    if member.value.is_empty() {
        return Err(ScimError::invalid_value(
            "a member needs a \"value\" (its id)",
        ));
    }
    Ok(member)
}

/// `replace` (or `add` of a single value) of `name` in a client's extension object:
/// `value` as sent, `null` taking it away; `add` of a list to a list appends what the list
/// does not hold yet.
fn client_set(fields: &mut Map<String, Value>, name: String, value: Value, op: Op) {
    let name = resource::same_key(fields, &name).unwrap_or(name);
    match (op, fields.get_mut(&name), value) {
        (_, _, Value::Null) => {
            fields.remove(&name);
        }
        (Op::Add, Some(Value::Array(held)), Value::Array(more)) => {
            for v in more {
                if !held.contains(&v) {
                    held.push(v);
                }
            }
        }
        (_, _, value) => {
            fields.insert(name, value);
        }
    }
}

/// `remove` of `name` in a client's extension object: the values given out of its list,
/// else all of it.
fn client_remove(fields: &mut Map<String, Value>, name: &str, value: Option<Value>) {
    let Some(name) = resource::same_key(fields, name) else {
        return;
    };
    match (fields.get_mut(&name), value) {
        (Some(Value::Array(held)), Some(Value::Array(gone))) => {
            held.retain(|v| !gone.contains(v));
            if held.is_empty() {
                fields.remove(&name);
            }
        }
        (Some(Value::Array(held)), Some(gone)) if !gone.is_null() => {
            held.retain(|v| *v != gone);
            if held.is_empty() {
                fields.remove(&name);
            }
        }
        _ => {
            fields.remove(&name);
        }
    }
}

#[cfg(test)]
mod tests;
