//! SCIM filters and sort orders as SQL: the only place a [`Filter`] becomes SQL text.
//!
//! [`compile`] turns a parsed filter into a boolean expression over the table alias `u`
//! (users) or `g` (groups); the caller ANDs it with its tenant condition and adds ORDER BY
//! and LIMIT. The result must select exactly the resources [`filter::matches`] accepts, so
//! the rules in `scim::filter`'s module docs apply here verbatim. Three invariants make
//! that tractable:
//!
//! - Every compiled sub-expression evaluates to 0 or 1, never NULL (`IS`, `COALESCE`,
//!   `EXISTS`), so `NOT` and SQL's three-valued logic cannot disagree with Rust's `!`.
//! - Filter values are always bound parameters. Only names from the static schema (JSON
//!   paths, column names) are written into the SQL text.
//! - Case-insensitive comparisons fold both sides with [`filter::fold`]: the bound value in
//!   Rust, the stored one with the `scim_fold()` SQL function or a `*_fold` column. Never
//!   `LIKE` or `COLLATE NOCASE`, which fold ASCII only and treat `%`/`_` as wildcards.
//!
//! Lookups IdPs make on every sync (`userName`, `externalId`, `id`, `displayName`,
//! `emails.value`, `emails[type eq "work"].value`, `members.value`) use indexed columns; the
//! rest reads `data` with SQLite's JSON functions. The email and member lookups are `pk IN
//! (subquery)`; SQLite drives the query from them only once `sqlite_stat1` tells it that
//! `tenant_id = ?` alone is unselective, so the pool should run `PRAGMA optimize`
//! (SQLite's own advice: on closing connections, or periodically). Stored `data` is assumed to conform to the
//! schema's types (the resource normaliser guarantees it): a string attribute holds a JSON
//! string, a multi-valued one an array of objects, and timestamps are canonical.
//!
//! Not filterable in SQL (rejected with `invalidFilter`): `meta.location` and every `$ref`,
//! which are derived from the server's base URL at response time. `meta.location pr` is
//! answered (always true).

use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::{Value as SqlValue, ValueRef};
use serde_json::Value;

use crate::scim::ScimError;
use crate::scim::filter::{self, CompareOp, Filter};
use crate::scim::schema::AttrRef;
use crate::scim::schema::{AttrType, Attribute, ResourceType};

/// Registers `scim_fold(text)`: [`filter::fold`] in SQL. Deterministic, so it may appear in
/// indexes; NULL and non-text values give NULL (a number is not a case-insensitive string).
pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "scim_fold",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| match ctx.get_raw(0) {
            ValueRef::Text(bytes) => {
                let text = std::str::from_utf8(bytes)
                    .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
                Ok(Some(filter::fold(text)))
            }
            _ => Ok(None),
        },
    )
}

/// A filter as a boolean SQL expression and the values to bind to its `?`s, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    pub sql: String,
    pub params: Vec<SqlValue>,
    /// The filter is answered by probing an index for the few resources it names (see
    /// [`is_lookup`]): its cost does not grow with the directory.
    pub lookup: bool,
}

/// Compiles `filter` for resources of type `rt` (users as `u`, groups as `g`).
pub fn compile(filter: &Filter, rt: &ResourceType) -> Result<Compiled, ScimError> {
    let mut c = Compiler {
        table: Table::of(rt),
        params: Vec::new(),
        aliases: 0,
    };
    let sql = c.filter(filter)?;
    Ok(Compiled {
        sql,
        params: c.params,
        lookup: is_lookup(filter, c.table),
    })
}

/// Whether `filter` names resources by what identifies them, so that an index finds its
/// few matches: `eq` with a non-empty string on `id`, a user's `userName` or `emails.value`
/// (alone or with its `type`), a group's `displayName`, or an `and` with such a side. These
/// are the lookups IdPs make before each write (idp-behaviour.md). `id`, `userName` and a
/// group's `displayName` are unique in a tenant; an email names a person or a shared
/// mailbox. `externalId` is indexed but nothing keeps it unique: an IdP mapping that sends
/// one value for everyone would make its lookup read the whole tenant.
fn is_lookup(filter: &Filter, table: Table) -> bool {
    let named = |v: &Value| v.as_str().is_some_and(|s| !s.is_empty());
    let identifies = |attr: &AttrRef| {
        attr.extension.is_none()
            && matches!(
                (table, attr.attr.name, attr.sub.map(|s| s.name)),
                (_, "id", None)
                    | (Table::Users, "userName", None)
                    | (Table::Users, "emails", Some("value"))
                    | (Table::Groups, "displayName", None)
            )
    };
    match filter {
        Filter::Compare {
            attr,
            op: CompareOp::Eq,
            value,
        } => named(value) && identifies(attr),
        Filter::And(a, b) => is_lookup(a, table) || is_lookup(b, table),
        Filter::ValuePath { attr, filter } => {
            matches!(table, Table::Users)
                && attr.extension.is_none()
                && attr.attr.name == "emails"
                && eq_conjunction(filter)
                    .is_some_and(|c| c.iter().any(|(name, v)| *name == "value" && named(v)))
        }
        _ => false,
    }
}

/// `ORDER BY …` for `sortBy`/`sortOrder` (RFC 7644 §3.4.2.3).
///
/// Strings sort folded unless `caseExact`; a multi-valued attribute sorts by its primary
/// element's value, else its first element's. Resources without a value (absent, null or
/// empty string) come last when ascending and first when descending, as the RFC requires;
/// `pk` breaks ties in the same direction, so a descending order is the exact reverse of the
/// ascending one and paging is stable. Without `sort`, or for an attribute with no sortable
/// value (`name`, a complex attribute without a `value`), the order is `pk` alone
/// (creation order), which is what `pk > ?` keyset pagination walks.
pub fn order_by(sort: Option<&AttrRef>, descending: bool, rt: &ResourceType) -> String {
    let key = sort.and_then(|a| sort_key(a, rt));
    order_by_key(key.as_deref(), descending, rt)
}

/// [`order_by`] for a sort key already computed by [`sort_key`] (or selected under a
/// column alias, so the query computes it once and a cursor can keep it).
pub fn order_by_key(key: Option<&str>, descending: bool, rt: &ResourceType) -> String {
    let t = Table::of(rt).alias();
    let dir = if descending { "DESC" } else { "ASC" };
    match key {
        Some(key) => {
            let nulls = if descending { "FIRST" } else { "LAST" };
            format!("ORDER BY {key} {dir} NULLS {nulls}, {t}.pk {dir}")
        }
        None => format!("ORDER BY {t}.pk {dir}"),
    }
}

/// The SQL expression `order_by` sorts on (before `pk`), NULL for resources without a value;
/// `None` if the attribute has no sortable value. Parameter-free, so a cursor can select it
/// alongside `pk` and resume with `(key, pk)` comparisons.
pub fn sort_key(sort: &AttrRef, rt: &ResourceType) -> Option<String> {
    let mut c = Compiler {
        table: Table::of(rt),
        params: Vec::new(),
        // Distinct from the aliases compiled filters use, so both can share a query.
        aliases: 1000,
    };
    c.sort_key(sort)
}

/// The table a resource type lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Users,
    Groups,
}

impl Table {
    fn of(rt: &ResourceType) -> Table {
        if rt.name == "Group" {
            Table::Groups
        } else {
            Table::Users
        }
    }

    fn alias(self) -> &'static str {
        match self {
            Table::Users => "u",
            Table::Groups => "g",
        }
    }

    fn resource_type(self) -> &'static str {
        match self {
            Table::Users => "User",
            Table::Groups => "Group",
        }
    }
}

/// Where one value lives, as SQL.
#[derive(Debug, Clone)]
enum Slot {
    /// A JSON value: `json_extract(doc, path)`; `path` is an SQL expression.
    Json { doc: String, path: String },
    /// A column or derived SQL value (text or integer, NULL when absent).
    Column {
        expr: String,
        /// An equivalent of `scim_fold(expr)` that is stored, and often indexed.
        folded: Option<String>,
        nullable: bool,
    },
}

impl Slot {
    fn column(expr: impl Into<String>, nullable: bool) -> Slot {
        Slot::Column {
            expr: expr.into(),
            folded: None,
            nullable,
        }
    }

    fn raw(&self) -> String {
        match self {
            Slot::Json { doc, path } => format!("json_extract({doc}, {path})"),
            Slot::Column { expr, .. } => expr.clone(),
        }
    }

    fn folded(&self) -> String {
        match self {
            Slot::Column {
                folded: Some(f), ..
            } => f.clone(),
            _ => format!("scim_fold({})", self.raw()),
        }
    }

    fn nullable(&self) -> bool {
        match self {
            Slot::Json { .. } => true,
            Slot::Column { nullable, .. } => *nullable,
        }
    }

    /// `pr` on a simple value: neither NULL nor the empty string.
    fn present(&self) -> String {
        format!("COALESCE({} <> '', 0)", self.raw())
    }
}

/// How to reach the sub-attributes of one element of a multi-valued attribute (or of a
/// singular complex attribute, for `manager[value eq "x"]`).
#[derive(Debug, Clone)]
enum Elem {
    /// A singular complex attribute in JSON; `path` is an SQL string literal.
    Json { doc: String, path: String },
    /// An item of a JSON array iterated by `json_each(doc, …) {alias}`.
    Item { doc: String, alias: String },
    /// A `groups` element of a user: a `group_members` row joined to its group (`gg`).
    UserGroup { gg: String },
    /// A `members` element of a group: a `group_members` row (`gm`) joined to the member
    /// user (`mu`) or group (`mg`).
    Member { gm: String, mu: String, mg: String },
}

impl Elem {
    /// The slot of sub-attribute `sub` in this element; `None` for the element itself (the
    /// items of a multi-valued simple attribute).
    fn slot(&self, owner: &Attribute, sub: Option<&Attribute>) -> Result<Slot, ScimError> {
        let unsupported = |name: &str| {
            Err(ScimError::invalid_filter(format!(
                "filtering on '{}.{name}' is not supported",
                owner.name
            )))
        };
        let json = |doc: &str, path: String| {
            Ok(Slot::Json {
                doc: doc.to_owned(),
                path: match sub {
                    Some(s) => format!("{path} || {}", sql_str(&format!(".{}", json_key(s.name)))),
                    None => path,
                },
            })
        };
        match self {
            Elem::Json { doc, path } => json(doc, path.clone()),
            // `fullkey` is the item's own path (`$.emails[1]`), so sub-attribute reads stay
            // valid paths whatever the item holds.
            Elem::Item { doc, alias } => json(doc, format!("{alias}.fullkey")),
            Elem::UserGroup { gg } => match sub.map(|s| s.name) {
                Some("value") => Ok(Slot::column(format!("{gg}.id"), false)),
                Some("display") => Ok(Slot::Column {
                    expr: format!("{gg}.display_name"),
                    folded: Some(format!("{gg}.display_name_fold")),
                    nullable: false,
                }),
                // Only direct memberships are listed, and rendered as such.
                Some("type") => Ok(Slot::Column {
                    expr: "'direct'".into(),
                    folded: Some("'direct'".into()),
                    nullable: false,
                }),
                Some(other) => unsupported(other),
                None => unsupported("(element)"),
            },
            Elem::Member { gm, mu, mg } => match sub.map(|s| s.name) {
                Some("value") => Ok(Slot::column(format!("COALESCE({mu}.id, {mg}.id)"), false)),
                // As rendered: the display the IdP sent, else the member's own name.
                Some("display") => Ok(Slot::column(
                    format!(
                        "COALESCE({gm}.display, {mu}.display_name, {mu}.user_name, {mg}.display_name)"
                    ),
                    false,
                )),
                Some("type") => Ok(Slot::Column {
                    expr: format!(
                        "CASE WHEN {gm}.member_user_pk IS NOT NULL THEN 'User' ELSE 'Group' END"
                    ),
                    folded: Some(format!(
                        "CASE WHEN {gm}.member_user_pk IS NOT NULL THEN 'user' ELSE 'group' END"
                    )),
                    nullable: false,
                }),
                Some(other) => unsupported(other),
                None => unsupported("(element)"),
            },
        }
    }
}

/// The elements of a multi-valued attribute: `FROM … WHERE …` for an `EXISTS` subquery.
#[derive(Debug, Clone)]
struct Source {
    from: String,
    /// Conditions every element satisfies (correlation, array items only).
    condition: String,
    elem: Elem,
}

impl Source {
    fn exists(&self, predicate: &str) -> String {
        format!(
            "EXISTS (SELECT 1 FROM {} WHERE {} AND {predicate})",
            self.from, self.condition
        )
    }
}

/// Where an attribute path's values come from.
enum Target {
    /// One value: a singular attribute or a sub-attribute of a singular complex one.
    One(Slot),
    /// A whole singular complex attribute stored in JSON (`name`, `manager`), for `pr` and
    /// value paths.
    Complex { doc: String, path: String },
    /// One value per element.
    Each(Source),
    /// `meta` and `meta.location`: always present, not comparable in SQL.
    AlwaysPresent,
}

struct Compiler {
    table: Table,
    params: Vec<SqlValue>,
    /// Counter for subquery aliases, so nested subqueries never shadow each other.
    aliases: usize,
}

impl Compiler {
    fn bind(&mut self, v: SqlValue) -> &'static str {
        self.params.push(v);
        "?"
    }

    fn alias(&mut self, prefix: &str) -> String {
        self.aliases += 1;
        format!("{prefix}{}", self.aliases)
    }

    fn filter(&mut self, f: &Filter) -> Result<String, ScimError> {
        match f {
            Filter::Compare { attr, op, value } => self.compare(attr, *op, value),
            Filter::Present(attr) => self.present(attr),
            Filter::And(a, b) => Ok(format!("({} AND {})", self.filter(a)?, self.filter(b)?)),
            Filter::Or(a, b) => Ok(format!("({} OR {})", self.filter(a)?, self.filter(b)?)),
            Filter::Not(inner) => Ok(format!("NOT {}", paren(&self.filter(inner)?))),
            Filter::ValuePath { attr, filter } => self.value_path(attr, filter),
        }
    }

    fn compare(
        &mut self,
        attr: &AttrRef,
        op: CompareOp,
        value: &Value,
    ) -> Result<String, ScimError> {
        if value.is_null() {
            let present = self.present(attr)?;
            return Ok(match op {
                CompareOp::Ne => present,
                _ => format!("NOT {}", paren(&present)),
            });
        }
        if op == CompareOp::Ne {
            if let Target::Each(source) = self.target(attr)? {
                // Any value that is not the literal, or no value at all (`scim::filter`).
                let slot = source.elem.slot(attr.attr, attr.sub)?;
                let eq = self.compare_slot(&slot, attr.leaf(), CompareOp::Eq, value);
                let has = format!("{} IS NOT NULL", slot.raw());
                return Ok(format!(
                    "(NOT {} OR {})",
                    source.exists(&has),
                    source.exists(&format!("{has} AND NOT {}", paren(&eq)))
                ));
            }
            let eq = self.compare(attr, CompareOp::Eq, value)?;
            return Ok(format!("NOT {}", paren(&eq)));
        }
        if op == CompareOp::Eq
            && let Some(sql) = self.indexed_lookup(attr, &[(attr.leaf().name, value)])
        {
            return Ok(sql);
        }
        let leaf = attr.leaf();
        match self.target(attr)? {
            Target::One(slot) => Ok(self.compare_slot(&slot, leaf, op, value)),
            Target::Each(source) => {
                let slot = source.elem.slot(attr.attr, attr.sub)?;
                let predicate = self.compare_slot(&slot, leaf, op, value);
                Ok(source.exists(&predicate))
            }
            Target::Complex { .. } | Target::AlwaysPresent => Err(ScimError::invalid_filter(
                format!("filtering on '{}' is not supported", attr.path()),
            )),
        }
    }

    fn present(&mut self, attr: &AttrRef) -> Result<String, ScimError> {
        match self.target(attr)? {
            Target::One(slot) => Ok(slot.present()),
            Target::AlwaysPresent => Ok("1".into()),
            Target::Complex { doc, path } => Ok(json_tree_present(&doc, &path)),
            Target::Each(source) => match (&source.elem, attr.sub) {
                (Elem::Item { doc, .. }, None) if attr.attr.ty == AttrType::Complex => {
                    let path =
                        sql_str(&self.json_path(attr.extension.map(|e| e.id), attr.attr, None));
                    Ok(json_tree_present(doc, &path))
                }
                // Membership rows always have a value (the member's or group's id).
                (Elem::UserGroup { .. } | Elem::Member { .. }, None) => Ok(source.exists("1")),
                _ => {
                    let slot = source.elem.slot(attr.attr, attr.sub)?;
                    Ok(source.exists(&slot.present()))
                }
            },
        }
    }

    fn value_path(&mut self, attr: &AttrRef, inner: &Filter) -> Result<String, ScimError> {
        if let Some(sql) = eq_conjunction(inner).and_then(|c| self.indexed_lookup(attr, &c)) {
            return Ok(sql);
        }
        match self.target(attr)? {
            Target::Each(source) => {
                let predicate = self.element_filter(inner, attr.attr, &source.elem)?;
                let predicate = match &source.elem {
                    // Like `matches`, a value path only looks at object items.
                    Elem::Item { alias, .. } => format!("{alias}.type = 'object' AND {predicate}"),
                    _ => predicate,
                };
                Ok(source.exists(&predicate))
            }
            Target::Complex { doc, path } => {
                let elem = Elem::Json {
                    doc: doc.clone(),
                    path: path.clone(),
                };
                let predicate = self.element_filter(inner, attr.attr, &elem)?;
                Ok(format!(
                    "(json_type({doc}, {path}) IS 'object' AND {})",
                    paren(&predicate)
                ))
            }
            Target::One(_) | Target::AlwaysPresent => Err(ScimError::invalid_filter(format!(
                "filtering inside '{}[…]' is not supported",
                attr.path()
            ))),
        }
    }

    /// The inner filter of a value path, on one element whose sub-attributes `elem` reaches.
    fn element_filter(
        &mut self,
        f: &Filter,
        owner: &Attribute,
        elem: &Elem,
    ) -> Result<String, ScimError> {
        match f {
            Filter::Compare { attr, op, value } => {
                let slot = elem.slot(owner, Some(attr.leaf()))?;
                if value.is_null() {
                    let present = slot.present();
                    return Ok(match op {
                        CompareOp::Ne => present,
                        _ => format!("NOT {present}"),
                    });
                }
                Ok(match op {
                    CompareOp::Ne => {
                        let eq = self.compare_slot(&slot, attr.leaf(), CompareOp::Eq, value);
                        format!("NOT {}", paren(&eq))
                    }
                    _ => self.compare_slot(&slot, attr.leaf(), *op, value),
                })
            }
            Filter::Present(attr) => Ok(elem.slot(owner, Some(attr.leaf()))?.present()),
            Filter::And(a, b) => Ok(format!(
                "({} AND {})",
                self.element_filter(a, owner, elem)?,
                self.element_filter(b, owner, elem)?
            )),
            Filter::Or(a, b) => Ok(format!(
                "({} OR {})",
                self.element_filter(a, owner, elem)?,
                self.element_filter(b, owner, elem)?
            )),
            Filter::Not(inner) => Ok(format!(
                "NOT {}",
                paren(&self.element_filter(inner, owner, elem)?)
            )),
            Filter::ValuePath { .. } => {
                Err(ScimError::invalid_filter("value paths cannot be nested"))
            }
        }
    }

    /// One value against a non-null literal with a positive operator (not `ne`): the SQL
    /// twin of `filter::compare_one`. Always 0 or 1.
    fn compare_slot(
        &mut self,
        slot: &Slot,
        leaf: &Attribute,
        op: CompareOp,
        value: &Value,
    ) -> String {
        match leaf.ty {
            AttrType::Boolean => {
                let want = value.as_bool().unwrap_or_default();
                match slot {
                    Slot::Json { doc, path } => {
                        let ty = if want { "'true'" } else { "'false'" };
                        format!("json_type({doc}, {path}) IS {ty}")
                    }
                    Slot::Column { expr, .. } => format!("{expr} IS {}", i32::from(want)),
                }
            }
            AttrType::Integer | AttrType::Decimal => {
                let n = match value.as_i64() {
                    Some(i) => SqlValue::Integer(i),
                    None => SqlValue::Real(value.as_f64().unwrap_or_default()),
                };
                let p = self.bind(n);
                format!("COALESCE({} {} {p}, 0)", slot.raw(), sql_op(op))
            }
            AttrType::DateTime => {
                let p = self.bind(SqlValue::Text(value.as_str().unwrap_or_default().into()));
                self.ordered(&slot.raw(), slot.nullable(), op, p)
            }
            AttrType::String | AttrType::Reference | AttrType::Binary | AttrType::Complex => {
                let text = value.as_str().unwrap_or_default();
                let (lhs, text) = if leaf.case_exact {
                    (slot.raw(), text.to_owned())
                } else {
                    (slot.folded(), filter::fold(text))
                };
                if op.is_substring() && text.is_empty() {
                    // Every string contains, starts and ends with "".
                    return format!("typeof({lhs}) = 'text'");
                }
                match op {
                    CompareOp::Co => {
                        let p = self.bind(SqlValue::Text(text));
                        format!("COALESCE(instr({lhs}, {p}) > 0, 0)")
                    }
                    CompareOp::Sw => {
                        let p1 = self.bind(SqlValue::Text(text.clone()));
                        let p2 = self.bind(SqlValue::Text(text));
                        format!("COALESCE(substr({lhs}, 1, length({p1})) = {p2}, 0)")
                    }
                    CompareOp::Ew => {
                        let p1 = self.bind(SqlValue::Text(text.clone()));
                        let p2 = self.bind(SqlValue::Text(text));
                        format!("COALESCE(substr({lhs}, -length({p1})) = {p2}, 0)")
                    }
                    _ => {
                        let p = self.bind(SqlValue::Text(text));
                        self.ordered(&lhs, slot.nullable(), op, p)
                    }
                }
            }
        }
    }

    /// `eq`/`gt`/`ge`/`lt`/`le` on text; `=` alone on a NOT NULL column so indexes apply.
    fn ordered(&self, lhs: &str, nullable: bool, op: CompareOp, p: &str) -> String {
        match (op, nullable) {
            (CompareOp::Eq, false) => format!("{lhs} = {p}"),
            // Never NULL (so `not (…)` holds where the value is missing), and still an
            // equality the planner can answer from an index, a partial one included.
            (CompareOp::Eq, true) => format!("({lhs} = {p} AND {lhs} IS NOT NULL)"),
            _ => format!("COALESCE({lhs} {} {p}, 0)", sql_op(op)),
        }
    }

    /// Index-backed forms of equality lookups on multi-valued attributes IdPs make on every
    /// sync: `emails.value eq`, `emails[type eq … and value eq …]` (through `user_emails`)
    /// and `members.value eq`, `members[value eq …]` (through `group_members`).
    /// `conditions` are (sub-attribute, value) pairs that must hold on one element.
    fn indexed_lookup(&mut self, attr: &AttrRef, conditions: &[(&str, &Value)]) -> Option<String> {
        let t = self.table.alias();
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        match (self.table, attr.extension, attr.attr.name) {
            (Table::Users, None, "emails") => {
                // user_emails holds the folded value and type of every email that has a value;
                // only equality on those two is answered by it exactly.
                let mut values = Vec::new();
                let mut types = Vec::new();
                for (name, v) in conditions {
                    match *name {
                        "value" => values.push(filter::fold(&text(v)?)),
                        "type" => types.push(filter::fold(&text(v)?)),
                        _ => return None,
                    }
                }
                if values.is_empty() {
                    return None;
                }
                // Uncorrelated on purpose: SQLite evaluates the subquery once through the
                // value index, whatever statistics it has; the outer query keeps the tenant.
                let mut sql = format!("{t}.pk IN (SELECT user_pk FROM user_emails WHERE ");
                for (i, v) in values.into_iter().enumerate() {
                    let p = self.bind(SqlValue::Text(v));
                    if i > 0 {
                        sql.push_str(" AND ");
                    }
                    sql.push_str(&format!("value_fold = {p}"));
                }
                for v in types {
                    let p = self.bind(SqlValue::Text(v));
                    sql.push_str(&format!(" AND type_fold = {p}"));
                }
                sql.push(')');
                Some(sql)
            }
            (Table::Groups, None, "members") => {
                let [("value", v)] = conditions else {
                    return None;
                };
                let id = text(v)?;
                let p1 = self.bind(SqlValue::Text(id.clone()));
                let p2 = self.bind(SqlValue::Text(id));
                Some(format!(
                    "{t}.pk IN (SELECT gm.group_pk FROM group_members gm JOIN users mu ON mu.pk = gm.member_user_pk WHERE mu.id = {p1} \
                     UNION ALL SELECT gm.group_pk FROM group_members gm JOIN groups mg ON mg.pk = gm.member_group_pk WHERE mg.id = {p2})"
                ))
            }
            _ => None,
        }
    }

    /// The JSON path of `attr[.sub]` inside `data`.
    fn json_path(
        &self,
        extension: Option<&str>,
        attr: &Attribute,
        sub: Option<&Attribute>,
    ) -> String {
        let mut path = String::from("$");
        if let Some(urn) = extension {
            path.push('.');
            path.push_str(&json_key(urn));
        }
        path.push('.');
        path.push_str(&json_key(attr.name));
        if let Some(sub) = sub {
            path.push('.');
            path.push_str(&json_key(sub.name));
        }
        path
    }

    fn target(&mut self, attr: &AttrRef) -> Result<Target, ScimError> {
        let t = self.table.alias();
        let unsupported = || {
            Err(ScimError::invalid_filter(format!(
                "filtering on '{}' is not supported",
                attr.path()
            )))
        };
        if attr.extension.is_none() {
            let column = |expr: &str, folded: Option<&str>, nullable: bool| {
                Ok(Target::One(Slot::Column {
                    expr: expr.replace("{t}", t),
                    folded: folded.map(|f| f.replace("{t}", t)),
                    nullable,
                }))
            };
            match (self.table, attr.attr.name, attr.sub.map(|s| s.name)) {
                (_, "id", None) => return column("{t}.id", None, false),
                (_, "externalId", None) => return column("{t}.external_id", None, true),
                (Table::Users, "userName", None) => {
                    return column("{t}.user_name", Some("{t}.user_name_fold"), false);
                }
                (Table::Users, "displayName", None) => {
                    return column("{t}.display_name", Some("{t}.display_name_fold"), true);
                }
                (Table::Groups, "displayName", None) => {
                    return column("{t}.display_name", Some("{t}.display_name_fold"), false);
                }
                (Table::Users, "active", None) => return column("{t}.active", None, true),
                (_, "meta", None) => return Ok(Target::AlwaysPresent),
                (_, "meta", Some("created")) => return column("{t}.created", None, false),
                (_, "meta", Some("lastModified")) => {
                    return column("{t}.last_modified", None, false);
                }
                (_, "meta", Some("version")) => {
                    return column("('W/\"' || {t}.version || '\"')", None, false);
                }
                (_, "meta", Some("resourceType")) => {
                    let name = sql_str(self.table.resource_type());
                    return column(&name, None, false);
                }
                // `meta.location` is built from the base URL at response time: always
                // present, never compared.
                (_, "meta", Some(_)) => return Ok(Target::AlwaysPresent),
                (Table::Users, "groups", _) => {
                    let gm = self.alias("gm");
                    let gg = self.alias("gg");
                    if matches!(attr.sub.map(|s| s.name), Some("$ref")) {
                        return unsupported();
                    }
                    return Ok(Target::Each(Source {
                        from: format!(
                            "group_members {gm} JOIN groups {gg} ON {gg}.pk = {gm}.group_pk"
                        ),
                        condition: format!("{gm}.member_user_pk = {t}.pk"),
                        elem: Elem::UserGroup { gg },
                    }));
                }
                (Table::Groups, "members", _) => {
                    if matches!(attr.sub.map(|s| s.name), Some("$ref")) {
                        return unsupported();
                    }
                    let gm = self.alias("gm");
                    let mu = self.alias("mu");
                    let mg = self.alias("mg");
                    return Ok(Target::Each(Source {
                        from: format!(
                            "group_members {gm} LEFT JOIN users {mu} ON {mu}.pk = {gm}.member_user_pk \
                             LEFT JOIN groups {mg} ON {mg}.pk = {gm}.member_group_pk"
                        ),
                        condition: format!("{gm}.group_pk = {t}.pk"),
                        elem: Elem::Member { gm, mu, mg },
                    }));
                }
                _ => {}
            }
        }
        if attr.sub.is_some_and(|s| s.name == "$ref") {
            return unsupported();
        }
        let doc = format!("{t}.data");
        let ext = attr.extension.map(|e| e.id);
        if attr.attr.multi_valued {
            let e = self.alias("e");
            let path = sql_str(&self.json_path(ext, attr.attr, None));
            return Ok(Target::Each(Source {
                from: format!("json_each({doc}, {path}) {e}"),
                condition: format!("typeof({e}.key) = 'integer'"),
                elem: Elem::Item { doc, alias: e },
            }));
        }
        if attr.attr.ty == AttrType::Complex && attr.sub.is_none() {
            let path = sql_str(&self.json_path(ext, attr.attr, None));
            return Ok(Target::Complex { doc, path });
        }
        let path = sql_str(&self.json_path(ext, attr.attr, attr.sub));
        Ok(Target::One(Slot::Json { doc, path }))
    }

    fn sort_key(&mut self, attr: &AttrRef) -> Option<String> {
        let t = self.table.alias();
        // A complex attribute sorts by its `value`, as it filters.
        let attr = match (attr.sub, attr.attr.ty) {
            (None, AttrType::Complex) => AttrRef {
                sub: Some(attr.attr.sub("value")?),
                ..*attr
            },
            _ => *attr,
        };
        if attr.sub.is_some_and(|s| s.name == "$ref") {
            // `…/Groups/{value}` for every element: ordering by value is the same order.
            return self.sort_key(&AttrRef {
                sub: attr.attr.sub("value"),
                ..attr
            });
        }
        if attr.extension.is_none()
            && attr.attr.name == "meta"
            && attr.sub.is_some_and(|s| s.name == "location")
        {
            // `{base}/{Users|Groups}/{id}`: the same order as id.
            return Some(format!("{t}.id"));
        }
        let leaf = attr.leaf();
        let key = |slot: &Slot| -> String {
            let expr = match leaf.ty {
                AttrType::String | AttrType::Reference | AttrType::Binary if !leaf.case_exact => {
                    slot.folded()
                }
                AttrType::Boolean => match slot {
                    // true/false as 1/0, like the `active` column.
                    Slot::Json { doc, path } => format!(
                        "CASE json_type({doc}, {path}) WHEN 'true' THEN 1 WHEN 'false' THEN 0 END"
                    ),
                    Slot::Column { expr, .. } => expr.clone(),
                },
                _ => slot.raw(),
            };
            format!("NULLIF({expr}, '')")
        };
        match self.target(&attr).ok()? {
            Target::One(slot) => Some(key(&slot)),
            Target::Complex { .. } | Target::AlwaysPresent => None,
            Target::Each(source) => {
                let slot = source.elem.slot(attr.attr, attr.sub).ok()?;
                let value = key(&slot);
                Some(match &source.elem {
                    // The primary element's value, else the first element's.
                    Elem::Item { doc, alias } => {
                        let primary =
                            format!("json_type({doc}, {alias}.fullkey || '.primary') IS 'true'");
                        format!(
                            "(SELECT {value} FROM {} WHERE {} ORDER BY {primary} DESC, {alias}.key LIMIT 1)",
                            source.from, source.condition
                        )
                    }
                    // Memberships have no order or primary: the smallest value.
                    _ => format!(
                        "(SELECT MIN({value}) FROM {} WHERE {})",
                        source.from, source.condition
                    ),
                })
            }
        }
    }
}

/// An inner value-path filter that is a conjunction of `sub eq "text"` comparisons, as
/// (sub-attribute name, value) pairs.
fn eq_conjunction(f: &Filter) -> Option<Vec<(&'static str, &Value)>> {
    match f {
        Filter::Compare {
            attr,
            op: CompareOp::Eq,
            value,
        } if value.is_string() => Some(vec![(attr.leaf().name, value)]),
        Filter::And(a, b) => {
            let mut out = eq_conjunction(a)?;
            out.extend(eq_conjunction(b)?);
            Some(out)
        }
        _ => None,
    }
}

/// `pr` on a JSON subtree: some scalar in it is neither null nor "".
fn json_tree_present(doc: &str, path: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM json_tree({doc}, {path}) t WHERE t.atom IS NOT NULL AND t.atom <> '')"
    )
}

fn sql_op(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => "=",
        CompareOp::Ne => "<>",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => {
            unreachable!("substring operators are compiled separately")
        }
    }
}

/// An SQL string literal. Only ever used for schema names and JSON paths built from them.
fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A JSON path key: bare when it is a plain name, else double-quoted (URNs, `$ref`).
fn json_key(name: &str) -> String {
    if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        name.to_owned()
    } else {
        format!("\"{name}\"")
    }
}

/// `sql` in parentheses unless it already is one parenthesised or atomic expression.
fn paren(sql: &str) -> String {
    if sql.starts_with('(') && sql.ends_with(')') && balanced_outer(sql) {
        sql.to_owned()
    } else {
        format!("({sql})")
    }
}

/// Whether the first '(' of `sql` closes at its last character.
fn balanced_outer(sql: &str) -> bool {
    let mut depth = 0;
    let mut in_str = false;
    for (i, c) in sql.char_indices() {
        match c {
            '\'' => in_str = !in_str,
            '(' if !in_str => depth += 1,
            ')' if !in_str => {
                depth -= 1;
                if depth == 0 {
                    return i == sql.len() - 1;
                }
            }
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests;
