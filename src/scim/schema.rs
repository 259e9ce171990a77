//! The SCIM schemas this server speaks (RFC 7643 §4, §7, §8.7.1), as static data.
//!
//! One definition serves everything: `/Schemas` discovery renders it, the resource
//! normaliser validates bodies against it and PATCH checks mutability with it. Attribute
//! paths (`[urn:]attr[.sub]`) in filters, `sortBy`, `attributes` and PATCH are resolved by
//! one function, [`ResourceType::resolve`], into an [`AttrRef`] (case-insensitively,
//! RFC 7643 §2.1).

use serde_json::{Map, Value, json};

pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const LIST_RESPONSE_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const PATCH_OP_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const SEARCH_REQUEST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
pub const SERVICE_PROVIDER_CONFIG_URN: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
pub const RESOURCE_TYPE_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
pub const SCHEMA_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
/// IETF's SCIM schemas namespace, where `extension:` leaves extensions to others (RFC 7643
/// §10.2.2).
const SCIM_SCHEMAS: &str = "urn:ietf:params:scim:schemas:";

/// An attribute's data type (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

impl AttrType {
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Binary => "binary",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        }
    }
}

/// Who may write an attribute (RFC 7643 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

impl Mutability {
    pub fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

/// When an attribute appears in responses (RFC 7643 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

impl Returned {
    pub fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

impl Uniqueness {
    pub fn as_str(self) -> &'static str {
        match self {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        }
    }
}

/// One attribute definition (RFC 7643 §7).
#[derive(Debug)]
pub struct Attribute {
    /// Canonical spelling; lookups ignore case.
    pub name: &'static str,
    pub ty: AttrType,
    pub multi_valued: bool,
    pub description: &'static str,
    pub required: bool,
    /// Whether string comparison (filters, uniqueness) respects case.
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    pub canonical_values: &'static [&'static str],
    /// For `reference` attributes: what they may point at.
    pub reference_types: &'static [&'static str],
    /// For `complex` attributes only.
    pub sub_attributes: &'static [Attribute],
}

impl Attribute {
    /// The sub-attribute called `name`, in any case.
    pub fn sub(&self, name: &str) -> Option<&'static Attribute> {
        find(self.sub_attributes, name)
    }

    fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("name".into(), json!(self.name));
        out.insert("type".into(), json!(self.ty.as_str()));
        out.insert("multiValued".into(), json!(self.multi_valued));
        out.insert("description".into(), json!(self.description));
        out.insert("required".into(), json!(self.required));
        if matches!(
            self.ty,
            AttrType::String | AttrType::Reference | AttrType::Binary
        ) {
            out.insert("caseExact".into(), json!(self.case_exact));
        } else {
            out.insert("caseExact".into(), json!(false));
        }
        if !self.canonical_values.is_empty() {
            out.insert("canonicalValues".into(), json!(self.canonical_values));
        }
        out.insert("mutability".into(), json!(self.mutability.as_str()));
        out.insert("returned".into(), json!(self.returned.as_str()));
        out.insert("uniqueness".into(), json!(self.uniqueness.as_str()));
        if self.ty == AttrType::Reference {
            out.insert("referenceTypes".into(), json!(self.reference_types));
        }
        if self.ty == AttrType::Complex {
            let subs: Vec<Value> = self.sub_attributes.iter().map(|a| a.to_json()).collect();
            out.insert("subAttributes".into(), Value::Array(subs));
        }
        Value::Object(out)
    }
}

/// A schema: the core of a resource type or one of its extensions.
#[derive(Debug)]
pub struct Schema {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [Attribute],
}

impl Schema {
    pub fn attribute(&self, name: &str) -> Option<&'static Attribute> {
        find(self.attributes, name)
    }

    /// The RFC 7643 §7 representation served at `/Schemas/{id}`. A resource type's core
    /// schema also lists `externalId`: RFC 7643 §3.1 makes it common to every resource,
    /// but Entra's gallery validator looks for each attribute it maps (`externalId`
    /// among them) in the schemas' attributes.
    pub fn to_json(&self, base_url: &str) -> Value {
        let core = [USER_URN, GROUP_URN].contains(&self.id);
        let common = COMMON_ATTRIBUTES
            .iter()
            .filter(|a| core && a.name == "externalId");
        let attributes: Vec<Value> = self
            .attributes
            .iter()
            .chain(common)
            .map(Attribute::to_json)
            .collect();
        json!({
            "schemas": [SCHEMA_URN],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": attributes,
            "meta": {
                "resourceType": "Schema",
                "location": format!("{base_url}/Schemas/{}", self.id),
            }
        })
    }
}

/// A resource type (RFC 7643 §6): its core schema and the extensions it may carry.
#[derive(Debug)]
pub struct ResourceType {
    pub name: &'static str,
    pub endpoint: &'static str,
    pub description: &'static str,
    pub schema: &'static Schema,
    pub extensions: &'static [&'static Schema],
}

impl ResourceType {
    /// The extension schema whose URN is `urn`, in any case.
    pub fn extension(&self, urn: &str) -> Option<&'static Schema> {
        self.extensions
            .iter()
            .copied()
            .find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// Whether `key` names a schema extension of the client's own, which this server does
    /// not define: a URN (`urn:` then letters, digits and `:._-`) that is not one of
    /// SCIM's own nor a path under one (`…:enterprise:2.0:User:manager`). Under IETF's
    /// SCIM namespace, `urn:ietf:params:scim:schemas:extension:<name>:…` qualifies but for
    /// the name `enterprise`, and so does another name under `…:schemas:` (Okta's support
    /// pages map custom attributes into `urn:ietf:params:scim:schemas:custom:…`) unless
    /// it reads as a misspelt schema this server defines: one starting `core` or
    /// `extension`, or naming `enterprise` (Entra's old `…:enterprise:2.0User`,
    /// `…:core-2.0:User`), whose data would otherwise miss where it was meant to go. An
    /// IdP admin maps custom attributes into one (Entra's
    /// `urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User`, an Okta
    /// namespace); its object is kept as sent, shown back and given to apps.
    pub fn is_client_extension(&self, key: &str) -> bool {
        // The keys stored most (the enterprise extension's) first, byte for byte: every
        // user of a list page asks this of each of its keys.
        if self.extensions.iter().any(|e| e.id == key) {
            return false;
        }
        // By `get`: a key is the client's text, and may cut a character where a prefix ends.
        let starts = |prefix: &str| {
            key.get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
        };
        let ours = std::iter::once(self.schema).chain(self.extensions.iter().copied());
        let under_ietf = || {
            let Some(rest) = key
                .get(SCIM_SCHEMAS.len()..)
                .filter(|_| starts(SCIM_SCHEMAS))
            else {
                return false;
            };
            let lower = rest.to_ascii_lowercase();
            let mut names = lower.split(':');
            let first = names.next().unwrap_or_default();
            if first == "extension" {
                let name = names.next().unwrap_or_default();
                return !name.is_empty() && name != "enterprise";
            }
            !first.is_empty()
                && !first.starts_with("core")
                && !first.starts_with("extension")
                && !lower.split(':').any(|n| n.starts_with("enterprise"))
        };
        key.len() > 4
            && starts("urn:")
            && key[4..].contains(':')
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'_' | b'-'))
            && !key.ends_with(':')
            && (!starts("urn:ietf:params:scim:") || under_ietf())
            && !ours.into_iter().any(|schema| {
                starts(schema.id)
                    && matches!(key.as_bytes().get(schema.id.len()), None | Some(b':'))
            })
    }

    /// Whether `key` names a whole extension of the client's own rather than one of its
    /// attributes: such a URN ends with the resource type's name (`…:2.0:User`).
    pub fn is_whole_client_extension(&self, key: &str) -> bool {
        key.rsplit_once(':')
            .is_some_and(|(_, last)| last.eq_ignore_ascii_case(self.name))
            && self.is_client_extension(key)
    }

    /// The common attribute (`id`, `externalId`, `meta`) or core attribute named `name`.
    pub fn core_attribute(&self, name: &str) -> Option<&'static Attribute> {
        find(COMMON_ATTRIBUTES, name).or_else(|| find(self.schema.attributes, name))
    }

    pub fn to_json(&self, base_url: &str) -> Value {
        json!({
            "schemas": [RESOURCE_TYPE_URN],
            "id": self.name,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": self.description,
            "schema": self.schema.id,
            "schemaExtensions": self.extensions.iter()
                .map(|s| json!({"schema": s.id, "required": false}))
                .collect::<Vec<_>>(),
            "meta": {
                "resourceType": "ResourceType",
                "location": format!("{base_url}/ResourceTypes/{}", self.name),
            }
        })
    }
}

/// An attribute path resolved against a resource type: `[urn:]attr[.sub]`. Filters,
/// `sortBy`, `attributes` and PATCH paths all hold one, made by [`ResourceType::resolve`].
#[derive(Debug, Clone, Copy)]
pub struct AttrRef {
    /// The extension schema owning `attr`, or `None` for core and common attributes. Decides
    /// where the value lives: under the extension's URN key or at the top level.
    pub extension: Option<&'static Schema>,
    pub attr: &'static Attribute,
    /// The sub-attribute, for `name.familyName` or `emails.value`.
    pub sub: Option<&'static Attribute>,
}

/// Definitions are static, so two references are equal when they point at the same ones.
impl PartialEq for AttrRef {
    fn eq(&self, other: &Self) -> bool {
        self.extension.map(|s| s.id) == other.extension.map(|s| s.id)
            && std::ptr::eq(self.attr, other.attr)
            && self.sub.map(|a| a as *const Attribute) == other.sub.map(|a| a as *const Attribute)
    }
}

impl AttrRef {
    /// The attribute a comparison or a sort applies to: the sub-attribute if any.
    pub fn leaf(&self) -> &'static Attribute {
        self.sub.unwrap_or(self.attr)
    }

    /// The path in canonical spelling, for error messages and logs
    /// (`name.familyName`, `urn:…:enterprise:2.0:User:manager.value`).
    pub fn path(&self) -> String {
        let mut out = String::new();
        if let Some(ext) = self.extension {
            out.push_str(ext.id);
            out.push(':');
        }
        out.push_str(self.attr.name);
        if let Some(sub) = self.sub {
            out.push('.');
            out.push_str(sub.name);
        }
        out
    }
}

/// Why [`ResourceType::resolve`] found no attribute. Each caller words its own error
/// from it (`invalidFilter` for filters, `invalidPath` for PATCH, `invalidValue` for sortBy).
#[derive(Debug, Clone, Copy)]
pub enum Unresolved<'p> {
    /// The path is qualified (it holds a `:`) by no schema of this resource type. `urn` is
    /// the text before the last `:`, the best guess at where a URN we do not know ends.
    UnknownSchema { urn: &'p str },
    /// What follows the URN is not `attr[.sub]`: an empty or ill-formed name, or a second `.`.
    Malformed,
    /// No attribute `name` in the extension named by the URN or, for `None`, among the
    /// common and core attributes (and, for an unqualified name, the extensions).
    UnknownAttribute {
        extension: Option<&'static Schema>,
        name: &'p str,
    },
    /// `attr` has no sub-attribute `name` (perhaps no sub-attributes at all).
    UnknownSubAttribute {
        attr: &'static Attribute,
        name: &'p str,
    },
}

/// Which schema a path's URN prefix names.
#[derive(Clone, Copy)]
enum Qualifier {
    /// No URN: core first, then the extensions.
    Unqualified,
    Core,
    Extension(&'static Schema),
}

impl ResourceType {
    /// Resolves `[urn:]attr[.sub]`, names and URN in any case (RFC 7643 §2.1): the one
    /// resolver behind filters, `sortBy`, `attributes` and PATCH paths.
    ///
    /// The URN is split off by matching this resource type's schema ids as prefixes
    /// followed by `:`, the longest first, never at the last `:` or the first `.`: the ids
    /// hold both (`urn:…:enterprise:2.0:User:manager.value`). A qualified name is looked up
    /// in its schema only; an unqualified one as [`ResourceType::attribute`] does.
    pub fn resolve<'p>(&self, path: &'p str) -> Result<AttrRef, Unresolved<'p>> {
        let (qualifier, rest) = self.split_urn(path)?;
        let (name, sub) = match rest.split_once('.') {
            Some((name, sub)) => (name, Some(sub)),
            None => (rest, None),
        };
        if !is_attribute_name(name) || sub.is_some_and(|s| !is_attribute_name(s)) {
            return Err(Unresolved::Malformed);
        }
        let found = match qualifier {
            Qualifier::Unqualified => self.attribute(name),
            Qualifier::Core => self.core_attribute(name).map(|attr| AttrRef {
                extension: None,
                attr,
                sub: None,
            }),
            Qualifier::Extension(ext) => ext.attribute(name).map(|attr| AttrRef {
                extension: Some(ext),
                attr,
                sub: None,
            }),
        };
        let Some(found) = found else {
            let extension = match qualifier {
                Qualifier::Extension(ext) => Some(ext),
                Qualifier::Unqualified | Qualifier::Core => None,
            };
            return Err(Unresolved::UnknownAttribute { extension, name });
        };
        let Some(sub) = sub else {
            return Ok(found);
        };
        let attr = found.attr;
        match attr.sub(sub) {
            Some(sub) => Ok(AttrRef {
                sub: Some(sub),
                ..found
            }),
            None => Err(Unresolved::UnknownSubAttribute { attr, name: sub }),
        }
    }

    /// The attribute an unqualified `name` (any case) means: a common or core attribute,
    /// else the first extension's. Lenient on purpose: Entra sends the enterprise `manager`
    /// without its URN, in PATCH paths, filters and create bodies alike.
    pub fn attribute(&self, name: &str) -> Option<AttrRef> {
        let (extension, attr) = match self.core_attribute(name) {
            Some(attr) => (None, attr),
            None => self
                .extensions
                .iter()
                .find_map(|&ext| ext.attribute(name).map(|attr| (Some(ext), attr)))?,
        };
        Some(AttrRef {
            extension,
            attr,
            sub: None,
        })
    }

    /// Splits the schema URN off `path`, returning the rest after its `:`. A `:` with no
    /// schema of this resource type before it is an unknown schema: attribute names
    /// cannot hold one (RFC 7643 §2.1).
    fn split_urn<'p>(&self, path: &'p str) -> Result<(Qualifier, &'p str), Unresolved<'p>> {
        let schemas = std::iter::once((Qualifier::Core, self.schema)).chain(
            self.extensions
                .iter()
                .map(|&e| (Qualifier::Extension(e), e)),
        );
        let qualified = schemas
            .filter(|(_, schema)| {
                let id = schema.id;
                path.as_bytes().get(id.len()) == Some(&b':')
                    && path[..id.len()].eq_ignore_ascii_case(id)
            })
            .max_by_key(|(_, schema)| schema.id.len());
        match (qualified, path.rfind(':')) {
            (Some((qualifier, schema)), _) => Ok((qualifier, &path[schema.id.len() + 1..])),
            (None, Some(colon)) => Err(Unresolved::UnknownSchema {
                urn: &path[..colon],
            }),
            (None, None) => Ok((Qualifier::Unqualified, path)),
        }
    }
}

/// Whether `name` is spelled as an attribute name may be: `ALPHA *(nameChar)`
/// (RFC 7643 §2.1), with a leading `$` for `$ref`.
pub fn is_attribute_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The attribute called `name` (any case) among `attrs`.
pub fn find(attrs: &'static [Attribute], name: &str) -> Option<&'static Attribute> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

// ---------------------------------------------------------------------------------------
// Definitions. `attr` keeps each one to a line; the builder methods below adjust the
// handful of characteristics that differ from the RFC 7643 §2.2 defaults.

const fn attr(name: &'static str, ty: AttrType, description: &'static str) -> Attribute {
    Attribute {
        name,
        ty,
        multi_valued: false,
        description,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        uniqueness: Uniqueness::None,
        canonical_values: &[],
        reference_types: &[],
        sub_attributes: &[],
    }
}

impl Attribute {
    const fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }
    const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    const fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    const fn mutability(mut self, m: Mutability) -> Self {
        self.mutability = m;
        self
    }
    const fn returned(mut self, r: Returned) -> Self {
        self.returned = r;
        self
    }
    const fn unique(mut self, u: Uniqueness) -> Self {
        self.uniqueness = u;
        self
    }
    const fn canonical(mut self, values: &'static [&'static str]) -> Self {
        self.canonical_values = values;
        self
    }
    const fn refs(mut self, types: &'static [&'static str]) -> Self {
        self.reference_types = types;
        self
    }
    const fn subs(mut self, subs: &'static [Attribute]) -> Self {
        self.sub_attributes = subs;
        self
    }
}

use AttrType::{Binary, Boolean, Complex, DateTime, Reference, String as Str};

/// `id`, `externalId` and `meta` (RFC 7643 §3.1). Known to filters, sorting and
/// projection; of them only `externalId` is listed in `/Schemas` ([`Schema::to_json`]), as
/// the RFC's own §8.7.1 representation lists none.
pub static COMMON_ATTRIBUTES: &[Attribute] = &[
    attr(
        "id",
        Str,
        "Unique identifier for the resource, assigned by the service provider.",
    )
    .case_exact()
    .mutability(Mutability::ReadOnly)
    .returned(Returned::Always)
    .unique(Uniqueness::Server),
    attr(
        "externalId",
        Str,
        "Identifier of the resource as defined by the provisioning client.",
    )
    .case_exact(),
    attr("meta", Complex, "Resource metadata.")
        .mutability(Mutability::ReadOnly)
        .subs(&[
            attr(
                "resourceType",
                Str,
                "Name of the resource type of the resource.",
            )
            .case_exact()
            .mutability(Mutability::ReadOnly),
            attr(
                "created",
                DateTime,
                "When the resource was added to the service provider.",
            )
            .mutability(Mutability::ReadOnly),
            attr(
                "lastModified",
                DateTime,
                "When the resource was last updated.",
            )
            .mutability(Mutability::ReadOnly),
            attr("location", Reference, "URI of the resource.")
                .case_exact()
                .mutability(Mutability::ReadOnly)
                .refs(&["uri"]),
            attr("version", Str, "Version (weak entity tag) of the resource.")
                .case_exact()
                .mutability(Mutability::ReadOnly),
        ]),
];

/// `value`, `display`, `type`, `primary`: the shape shared by most multi-valued attributes.
macro_rules! multi_value_subs {
    ($value_desc:expr, $types:expr) => {
        &[
            attr("value", Str, $value_desc),
            attr(
                "display",
                Str,
                "A human-readable name, primarily used for display purposes.",
            ),
            attr("type", Str, "A label indicating the attribute's function.").canonical($types),
            attr(
                "primary",
                Boolean,
                "Whether this is the primary or preferred value; at most one may be true.",
            ),
        ]
    };
}

pub static USER: Schema = Schema {
    id: USER_URN,
    name: "User",
    description: "User Account",
    attributes: &[
        attr(
            "userName",
            Str,
            "Unique identifier for the User, used to authenticate; case-insensitive.",
        )
        .required()
        .unique(Uniqueness::Server),
        attr("name", Complex, "The components of the user's real name.").subs(&[
            attr("formatted", Str, "The full name, formatted for display."),
            attr(
                "familyName",
                Str,
                "The family name of the User (last name).",
            ),
            attr("givenName", Str, "The given name of the User (first name)."),
            attr("middleName", Str, "The middle name(s) of the User."),
            attr(
                "honorificPrefix",
                Str,
                "The honorific prefix(es) of the User (e.g. 'Ms.').",
            ),
            attr(
                "honorificSuffix",
                Str,
                "The honorific suffix(es) of the User (e.g. 'III').",
            ),
        ]),
        attr(
            "displayName",
            Str,
            "The name of the User, suitable for display to end-users.",
        ),
        attr("nickName", Str, "The casual way to address the user."),
        attr(
            "profileUrl",
            Reference,
            "A fully qualified URL pointing to the User's online profile.",
        )
        .refs(&["external"]),
        attr("title", Str, "The user's title, such as 'Vice President'."),
        attr(
            "userType",
            Str,
            "The relationship between the organization and the user (e.g. 'Employee').",
        ),
        attr(
            "preferredLanguage",
            Str,
            "The User's preferred written or spoken language (e.g. 'en-US').",
        ),
        attr(
            "locale",
            Str,
            "The User's default location for localization (e.g. 'en-US').",
        ),
        attr(
            "timezone",
            Str,
            "The User's time zone in IANA format (e.g. 'America/Los_Angeles').",
        ),
        attr("active", Boolean, "The User's administrative status."),
        attr(
            "password",
            Str,
            "The User's cleartext password; accepted on write, never returned or stored.",
        )
        .mutability(Mutability::WriteOnly)
        .returned(Returned::Never),
        attr("emails", Complex, "Email addresses for the user.")
            .multi()
            .subs(multi_value_subs!(
                "Email address for the user.",
                &["work", "home", "other"]
            )),
        attr("phoneNumbers", Complex, "Phone numbers for the User.")
            .multi()
            .subs(multi_value_subs!(
                "Phone number of the User.",
                &["work", "home", "mobile", "fax", "pager", "other"]
            )),
        attr("ims", Complex, "Instant messaging addresses for the User.")
            .multi()
            .subs(multi_value_subs!(
                "Instant messaging address for the User.",
                &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]
            )),
        attr("photos", Complex, "URLs of photos of the User.")
            .multi()
            .subs(&[
                attr("value", Reference, "URL of a photo of the User.").refs(&["external"]),
                attr(
                    "display",
                    Str,
                    "A human-readable name, primarily used for display purposes.",
                ),
                attr("type", Str, "A label indicating the attribute's function.")
                    .canonical(&["photo", "thumbnail"]),
                attr(
                    "primary",
                    Boolean,
                    "Whether this is the primary photo; at most one may be true.",
                ),
            ]),
        attr(
            "addresses",
            Complex,
            "A physical mailing address for this User.",
        )
        .multi()
        .subs(&[
            attr(
                "formatted",
                Str,
                "The full mailing address, formatted for display.",
            ),
            attr("streetAddress", Str, "The full street address component."),
            attr("locality", Str, "The city or locality component."),
            attr("region", Str, "The state or region component."),
            attr("postalCode", Str, "The zip code or postal code component."),
            attr(
                "country",
                Str,
                "The country name component (ISO 3166-1 alpha-2).",
            ),
            attr("type", Str, "A label indicating the attribute's function.")
                .canonical(&["work", "home", "other"]),
            attr(
                "primary",
                Boolean,
                "Whether this is the primary address; at most one may be true.",
            ),
        ]),
        attr(
            "groups",
            Complex,
            "Groups to which the user belongs; managed through the Group resource.",
        )
        .multi()
        .mutability(Mutability::ReadOnly)
        .subs(&[
            attr("value", Str, "The identifier of the User's group.")
                .mutability(Mutability::ReadOnly),
            attr(
                "$ref",
                Reference,
                "The URI of the corresponding Group resource.",
            )
            .mutability(Mutability::ReadOnly)
            .refs(&["User", "Group"]),
            attr(
                "display",
                Str,
                "A human-readable name, primarily used for display purposes.",
            )
            .mutability(Mutability::ReadOnly),
            attr(
                "type",
                Str,
                "How the membership was derived: direct or indirect.",
            )
            .canonical(&["direct", "indirect"])
            .mutability(Mutability::ReadOnly),
        ]),
        attr(
            "entitlements",
            Complex,
            "A list of entitlements for the User.",
        )
        .multi()
        .subs(multi_value_subs!("The value of an entitlement.", &[])),
        attr("roles", Complex, "A list of roles for the User.")
            .multi()
            .subs(multi_value_subs!("The value of a role.", &[])),
        attr(
            "x509Certificates",
            Complex,
            "A list of certificates issued to the User.",
        )
        .multi()
        .subs(&[
            // Binary values are compared byte for byte (RFC 7643 §2.3.6): two
            // certificates' base64 differing in case are different certificates.
            attr(
                "value",
                Binary,
                "The value of an X.509 certificate (base64 DER).",
            )
            .case_exact(),
            attr(
                "display",
                Str,
                "A human-readable name, primarily used for display purposes.",
            ),
            attr("type", Str, "A label indicating the attribute's function."),
            attr(
                "primary",
                Boolean,
                "Whether this is the primary certificate; at most one may be true.",
            ),
        ]),
    ],
};

pub static ENTERPRISE_USER: Schema = Schema {
    id: ENTERPRISE_URN,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: &[
        attr(
            "employeeNumber",
            Str,
            "Numeric or alphanumeric identifier assigned to a person by the organization.",
        ),
        attr("costCenter", Str, "Identifies the name of a cost center."),
        attr(
            "organization",
            Str,
            "Identifies the name of an organization.",
        ),
        attr("division", Str, "Identifies the name of a division."),
        attr("department", Str, "Identifies the name of a department."),
        attr("manager", Complex, "The User's manager.").subs(&[
            attr(
                "value",
                Str,
                "The id of the SCIM resource representing the User's manager.",
            ),
            attr(
                "$ref",
                Reference,
                "The URI of the SCIM resource representing the User's manager.",
            )
            .refs(&["User"]),
            attr("displayName", Str, "The displayName of the User's manager.")
                .mutability(Mutability::ReadOnly),
        ]),
    ],
};

pub static GROUP: Schema = Schema {
    id: GROUP_URN,
    name: "Group",
    description: "Group",
    attributes: &[
        // Unique within a tenant, case-insensitively: Entra requires it (idp-behaviour.md §11).
        attr("displayName", Str, "A human-readable name for the Group.")
            .required()
            .unique(Uniqueness::Server),
        attr("members", Complex, "A list of members of the Group.")
            .multi()
            .subs(&[
                attr("value", Str, "Identifier of the member of this Group.")
                    .case_exact()
                    .mutability(Mutability::Immutable),
                attr(
                    "$ref",
                    Reference,
                    "The URI corresponding to a SCIM resource that is a member of this Group.",
                )
                .mutability(Mutability::Immutable)
                .refs(&["User", "Group"]),
                attr(
                    "display",
                    Str,
                    "A human-readable name, primarily used for display purposes.",
                )
                .mutability(Mutability::Immutable),
                attr("type", Str, "The type of the member: User or Group.")
                    .canonical(&["User", "Group"])
                    .mutability(Mutability::Immutable),
            ]),
    ],
};

pub static USER_RESOURCE: ResourceType = ResourceType {
    name: "User",
    endpoint: "/Users",
    description: "User Account",
    schema: &USER,
    extensions: &[&ENTERPRISE_USER],
};

pub static GROUP_RESOURCE: ResourceType = ResourceType {
    name: "Group",
    endpoint: "/Groups",
    description: "Group",
    schema: &GROUP,
    extensions: &[],
};

/// Every schema, in the order `/Schemas` lists them.
pub static ALL_SCHEMAS: &[&Schema] = &[&USER, &ENTERPRISE_USER, &GROUP];

/// Every resource type, in the order `/ResourceTypes` lists them.
pub static ALL_RESOURCE_TYPES: &[&ResourceType] = &[&USER_RESOURCE, &GROUP_RESOURCE];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_ignore_case() {
        assert_eq!(USER.attribute("USERNAME").unwrap().name, "userName");
        let emails = USER.attribute("Emails").unwrap();
        assert_eq!(emails.sub("VALUE").unwrap().name, "value");
        assert!(
            USER_RESOURCE
                .extension(&ENTERPRISE_URN.to_uppercase())
                .is_some()
        );
        assert_eq!(USER_RESOURCE.core_attribute("ID").unwrap().name, "id");
    }

    #[test]
    fn paths_resolve_with_and_without_urns() {
        let r = USER_RESOURCE.resolve("name.FamilyName").unwrap();
        assert_eq!((r.attr.name, r.sub.unwrap().name), ("name", "familyName"));
        assert_eq!(r.path(), "name.familyName");
        let r = USER_RESOURCE
            .resolve("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value")
            .unwrap();
        assert_eq!(r.extension.unwrap().id, ENTERPRISE_URN);
        assert_eq!(r.sub.unwrap().name, "value");
        assert_eq!(r.path(), format!("{ENTERPRISE_URN}:manager.value"));
        let r = USER_RESOURCE.resolve("manager").unwrap();
        assert_eq!(r.extension.unwrap().id, ENTERPRISE_URN);
        let r = USER_RESOURCE
            .resolve("urn:ietf:params:scim:schemas:core:2.0:User:userName")
            .unwrap();
        assert!(r.extension.is_none() && r.attr.name == "userName");
        assert!(USER_RESOURCE.resolve("nope").is_err());
        assert!(USER_RESOURCE.resolve("nosuch").is_err());
        assert!(USER_RESOURCE.resolve("name.nope").is_err());
        assert!(USER_RESOURCE.resolve("urn:example:x:y").is_err());
        assert!(GROUP_RESOURCE.resolve("members.value").is_ok());
    }

    /// (extension URN, attribute, sub-attribute) of a resolved path.
    fn names(path: &str) -> (Option<&'static str>, &'static str, Option<&'static str>) {
        let r = USER_RESOURCE
            .resolve(path)
            .unwrap_or_else(|e| panic!("{path}: {e:?}"));
        (
            r.extension.map(|s| s.id),
            r.attr.name,
            r.sub.map(|s| s.name),
        )
    }

    #[test]
    fn a_urn_is_split_at_a_known_schema_id_not_at_a_colon_or_dot() {
        let ent = Some(ENTERPRISE_URN);
        let cases = [
            // The core URN qualifies core and common attributes.
            (format!("{USER_URN}:userName"), (None, "userName", None)),
            (
                format!("{USER_URN}:meta.created"),
                (None, "meta", Some("created")),
            ),
            // The enterprise URN holds "2.0": its '.' is not the sub-attribute separator.
            (
                format!("{ENTERPRISE_URN}:manager.value"),
                (ent, "manager", Some("value")),
            ),
            (
                format!("{ENTERPRISE_URN}:employeeNumber"),
                (ent, "employeeNumber", None),
            ),
            // URNs, names and sub-attributes in any case.
            (
                format!("{}:MANAGER.VALUE", ENTERPRISE_URN.to_uppercase()),
                (ent, "manager", Some("value")),
            ),
            (
                format!("{}:username", USER_URN.to_lowercase()),
                (None, "userName", None),
            ),
            // Sub-attributes without a URN.
            ("name.givenName".into(), (None, "name", Some("givenName"))),
            ("emails.VALUE".into(), (None, "emails", Some("value"))),
            // A bare extension name: core first, then the extensions (Entra's `manager`).
            ("manager".into(), (ent, "manager", None)),
            ("department".into(), (ent, "department", None)),
        ];
        for (path, want) in cases {
            assert_eq!(names(&path), want, "{path}");
        }
    }

    #[test]
    fn unresolved_paths_say_why() {
        let unknown_schema = |path: &str| match USER_RESOURCE.resolve(path) {
            Err(Unresolved::UnknownSchema { urn }) => urn.to_string(),
            other => panic!("{path}: {other:?}"),
        };
        assert_eq!(unknown_schema("urn:example:Foo:bar"), "urn:example:Foo");
        assert_eq!(
            unknown_schema("urn:ietf:params:scim:schemas:extension:enterprise:1.0:User:manager"),
            "urn:ietf:params:scim:schemas:extension:enterprise:1.0:User"
        );
        // A schema this resource type does not carry is unknown to it.
        assert!(matches!(
            GROUP_RESOURCE.resolve(&format!("{ENTERPRISE_URN}:manager")),
            Err(Unresolved::UnknownSchema { .. })
        ));

        for path in ["", ".value", "name.familyName.x", "a b", "user@example.com"] {
            assert!(
                matches!(USER_RESOURCE.resolve(path), Err(Unresolved::Malformed)),
                "{path}"
            );
        }
        assert!(matches!(
            USER_RESOURCE.resolve(&format!("{USER_URN}:")),
            Err(Unresolved::Malformed)
        ));

        assert!(matches!(
            USER_RESOURCE.resolve("shoeSize"),
            Err(Unresolved::UnknownAttribute {
                extension: None,
                name: "shoeSize"
            })
        ));
        // A qualified name is looked up in its own schema only.
        assert!(matches!(
            USER_RESOURCE.resolve(&format!("{USER_URN}:manager")),
            Err(Unresolved::UnknownAttribute {
                extension: None,
                name: "manager"
            })
        ));
        match USER_RESOURCE.resolve(&format!("{ENTERPRISE_URN}:userName")) {
            Err(Unresolved::UnknownAttribute {
                extension: Some(ext),
                name: "userName",
            }) => assert_eq!(ext.id, ENTERPRISE_URN),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            GROUP_RESOURCE.resolve("manager"),
            Err(Unresolved::UnknownAttribute { .. })
        ));

        match USER_RESOURCE.resolve("name.nickName") {
            Err(Unresolved::UnknownSubAttribute { attr, name }) => {
                assert_eq!((attr.name, name), ("name", "nickName"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            USER_RESOURCE.resolve("userName.first"),
            Err(Unresolved::UnknownSubAttribute { name: "first", .. })
        ));
    }

    #[test]
    fn every_complex_attribute_has_sub_attributes() {
        fn walk(attrs: &[Attribute]) {
            for a in attrs {
                assert_eq!(a.ty == Complex, !a.sub_attributes.is_empty(), "{}", a.name);
                walk(a.sub_attributes);
            }
        }
        for s in ALL_SCHEMAS {
            walk(s.attributes);
        }
        walk(COMMON_ATTRIBUTES);
    }
}
