//! SCIM filter expressions (RFC 7644 §3.4.2.2): parsing into a resolved AST, and
//! evaluation against a resource held in memory.
//!
//! Attribute names are resolved against the resource type's schemas while parsing, so the
//! rest of the server (in-memory evaluation here, SQL compilation in `db::filter_sql`, PATCH
//! value paths) sees canonical attribute definitions with their type and `caseExact`.

use serde_json::Value;

use super::error::ScimError;
use super::schema::{Attribute, ResourceType, Schema};

/// A resolved attribute path: `[urn:]attr[.sub]`.
#[derive(Debug, Clone, Copy)]
pub struct AttrRef {
    /// The extension schema owning `attr`, or `None` for core and common attributes.
    pub extension: Option<&'static Schema>,
    pub attr: &'static Attribute,
    /// The sub-attribute, for `name.familyName` or `emails.value`.
    pub sub: Option<&'static Attribute>,
}

impl PartialEq for AttrRef {
    fn eq(&self, other: &Self) -> bool {
        self.extension.map(|s| s.id) == other.extension.map(|s| s.id)
            && std::ptr::eq(self.attr, other.attr)
            && self.sub.map(|a| a as *const Attribute) == other.sub.map(|a| a as *const Attribute)
    }
}

impl AttrRef {
    /// The attribute the comparison applies to: the sub-attribute if any.
    pub fn leaf(&self) -> &'static Attribute {
        self.sub.unwrap_or(self.attr)
    }
}

/// Comparison operators (RFC 7644 Table 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A parsed filter. Inside a `ValuePath`, attribute references are relative to one element
/// of the multi-valued attribute: `attr` is the sub-attribute, `sub` is `None`.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `attr op value`; `value` is a JSON string, number, boolean or null.
    Compare {
        attr: AttrRef,
        op: CompareOp,
        value: Value,
    },
    /// `attr pr`
    Present(AttrRef),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `emails[type eq "work" and value co "@x"]`
    ValuePath {
        attr: AttrRef,
        filter: Box<Filter>,
    },
}

/// Parses a `filter` query parameter for resources of type `rt`.
pub fn parse(input: &str, rt: &'static ResourceType) -> Result<Filter, ScimError> {
    let _ = (input, rt);
    Err(ScimError::invalid_filter("filters are not implemented yet"))
}

/// The case folding used for every `caseExact: false` comparison, in memory and in SQL.
pub fn fold(s: &str) -> String {
    s.to_lowercase()
}
