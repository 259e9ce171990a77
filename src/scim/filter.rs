//! SCIM filter expressions (RFC 7644 §3.4.2.2): parsing into a resolved AST, and
//! evaluation against a resource held in memory.
//!
//! Attribute names are resolved against the resource type's schemas while parsing, so the
//! rest of the server (in-memory evaluation here, SQL compilation in `db::filter_sql`, PATCH
//! value paths) sees canonical attribute definitions with their type and `caseExact`.
//!
//! # Semantics
//!
//! `db::filter_sql` compiles the same AST to SQL and must agree with [`matches`] on every
//! resource, so the rules are written down once, here:
//!
//! - **Values of a path.** `attr` yields the attribute's value; `attr.sub` yields the
//!   sub-attribute; on a multi-valued attribute both yield one value per element. JSON
//!   `null` is the same as absent (RFC 7643 §2.5). A comparison matches if **any** value
//!   matches (RFC 7644 §3.4.2.2); an absent attribute has no values and so never matches
//!   `eq`, `co`, `sw`, `ew`, `gt`, `ge`, `lt` or `le`.
//! - **`ne` on a single value is `not eq`:** `title ne "x"` matches users whose title is
//!   not `x`, including users without a title (an absent value is not identical to `x`).
//! - **`ne` on a multi-valued attribute follows the any-value rule like every other
//!   operator:** `emails.type ne "work"` matches a user with a work and a home email,
//!   because one value (home) is not `work`. A user with no value at all matches too, as an
//!   absent single value does. A user all of whose values are `x` does not.
//! - **`not` negates the whole expression** (RFC 7644 Table 4: a match only if the inner
//!   expression is false): `not (emails.type eq "work")` matches users with no work email,
//!   which is what a reader wanting "not a work email" means; `emails.type ne "work"` is
//!   "some email that is not work". The two differ exactly on users with a work email and
//!   another.
//! - **`pr`** matches if the value holds at least one scalar that is neither `null` nor the
//!   empty string: `""`, `[]`, `{}`, `[{}]` and `{"value": null}` are all "not present".
//! - **`null` literals.** `attr eq null` is `not (attr pr)`; `attr ne null` is `attr pr`.
//!   Other operators reject `null`.
//! - **Strings** compare after [`fold`] unless the attribute is `caseExact`; `gt`/`ge`/`lt`/`le`
//!   order strings by their UTF-8 bytes (SQLite's BINARY collation), `dateTime`s by instant.
//! - **Implicit `value`.** A complex attribute compared without a sub-attribute means its
//!   `value` sub-attribute (`emails co "@example.com"`, as in RFC 7644's own examples);
//!   complex attributes without one (`name eq "x"`) are rejected.
//! - **Literals** are normalised while parsing: a bare word (`externalId eq jyoung`) is a
//!   string, numbers and `true`/`false` compared with a string attribute keep their text,
//!   `"True"`/`"false"` strings compared with a boolean become booleans (IdPs send them), and
//!   `dateTime` literals are stored in [`datetime::canonical`] form.
//!
//! Attribute names in resources are looked up with their canonical spelling: resources are
//! normalised before they are stored, and SQLite's JSON paths are case-sensitive too.

use std::borrow::Cow;

use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

use super::datetime;
use super::error::ScimError;
use super::schema::{self, AttrType, Attribute, ResourceType, Unresolved};

use super::schema::AttrRef;

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

impl CompareOp {
    /// All operators, in RFC order.
    pub const ALL: [CompareOp; 9] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    /// The operator spelled `word`, in any case.
    pub fn from_word(word: &str) -> Option<CompareOp> {
        CompareOp::ALL
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(word))
    }

    /// `gt`, `ge`, `lt`, `le`.
    pub fn is_ordering(self) -> bool {
        matches!(
            self,
            CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
        )
    }

    /// `co`, `sw`, `ew`: defined on strings only.
    pub fn is_substring(self) -> bool {
        matches!(self, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
    }
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

/// Longest filter accepted, in characters. Real IdP lookups are well under 200.
pub const MAX_LENGTH: usize = 4096;
/// Deepest nesting of parentheses, `not` and value paths accepted.
pub const MAX_DEPTH: usize = 50;
/// Most comparisons in one filter; keeps the compiled SQL well inside SQLite's limits.
pub const MAX_TERMS: usize = 200;

/// Case folding for `caseExact: false` comparisons, everywhere: in memory here, in SQL
/// through `scim_fold()`, and in the `*_fold` columns.
///
/// Text is first put in Unicode's canonical composition (NFC), so that canonically
/// equivalent spellings fold alike: `José` typed with a precomposed `é` and with `e` and a
/// combining accent (as macOS writes file names, and CSVs saved there) are one userName,
/// one email, one group name. Each character is then lowercased on its own (Unicode
/// simple-context lowercase, no final-sigma rule) so that folding commutes with
/// concatenation, `fold(a + b) == fold(a) + fold(b)`, which `co`, `sw` and `ew` on folded
/// text rely on; composition keeps that but where `b` starts with a combining mark.
pub fn fold(s: &str) -> String {
    fold_cow(s).into_owned()
}

/// [`fold`], borrowing `s` when it is folded already (ASCII without capitals: most emails
/// and userNames), so that a lookup by a folded key allocates nothing.
pub fn fold_cow(s: &str) -> Cow<'_, str> {
    // ASCII without a char iterator: a full sync folds every email and userName of the
    // tenant. ASCII is already composed.
    if s.is_ascii() {
        return match s.bytes().any(|b| b.is_ascii_uppercase()) {
            true => Cow::Owned(s.to_ascii_lowercase()),
            false => Cow::Borrowed(s),
        };
    }
    Cow::Owned(folded_chars(s).collect())
}

/// The characters of `fold(s)` for non-ASCII `s`.
fn folded_chars(s: &str) -> impl Iterator<Item = char> + '_ {
    s.nfc().flat_map(char::to_lowercase)
}

/// `fold(a).cmp(&fold(b))` by UTF-8 bytes, without building either string: comparisons
/// run once per element per PATCH operation, so they must not allocate. (UTF-8 byte order
/// is code point order, so comparing the folded characters is the same.)
pub fn fold_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    if a.is_ascii() && b.is_ascii() {
        let (a, b) = (a.bytes(), b.bytes());
        return a
            .map(|c| c.to_ascii_lowercase())
            .cmp(b.map(|c| c.to_ascii_lowercase()));
    }
    folded_chars(a).cmp(folded_chars(b))
}

/// `fold(a) == fold(b)`, without allocating.
pub fn fold_eq(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    fold_cmp(a, b).is_eq()
}

// ---------------------------------------------------------------------------------------
// Parsing

/// Parses a `filter` query parameter for resources of type `rt`.
pub fn parse(input: &str, rt: &'static ResourceType) -> Result<Filter, ScimError> {
    if input.chars().count() > MAX_LENGTH {
        return Err(ScimError::invalid_filter(format!(
            "the filter is longer than {MAX_LENGTH} characters"
        )));
    }
    let tokens = tokenize(input)?;
    if tokens.is_empty() {
        return Err(ScimError::invalid_filter("the filter is empty"));
    }
    let mut parser = Parser {
        tokens,
        next: 0,
        rt,
        depth: 0,
        terms: 0,
    };
    let filter = parser.or_expr(None)?;
    match parser.peek() {
        None => Ok(filter),
        Some(t) => Err(parser.error_at(t, "expected 'and', 'or' or the end of the filter")),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    /// A run of characters up to whitespace, a bracket, a parenthesis or a quote: an
    /// attribute path, an operator, a keyword or a bare (unquoted) value.
    Word(String),
    /// A JSON string literal, decoded.
    Str(String),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// 1-based character position, for error messages.
    pos: usize,
}

impl Token {
    fn describe(&self) -> String {
        match &self.tok {
            Tok::Open => "'('".into(),
            Tok::Close => "')'".into(),
            Tok::OpenBracket => "'['".into(),
            Tok::CloseBracket => "']'".into(),
            Tok::Word(w) => format!("'{w}'"),
            Tok::Str(s) => format!("the string {}", Value::String(s.clone())),
        }
    }
}

fn tokenize(input: &str) -> Result<Vec<Token>, ScimError> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let pos = i + 1;
        let single = match c {
            '(' => Some(Tok::Open),
            ')' => Some(Tok::Close),
            '[' => Some(Tok::OpenBracket),
            ']' => Some(Tok::CloseBracket),
            _ => None,
        };
        if let Some(tok) = single {
            tokens.push(Token { tok, pos });
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '"' {
            // Find the closing quote, skipping escaped characters, then let serde_json
            // decode the escapes exactly as JSON defines them.
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '"' {
                if chars[j] == '\\' {
                    j += 1;
                }
                j += 1;
            }
            if j >= chars.len() {
                return Err(ScimError::invalid_filter(format!(
                    "unterminated string starting at character {pos}"
                )));
            }
            let inside = &chars[i + 1..j];
            // Without escapes or control characters, JSON's decoding is the text itself.
            let s: String = if inside.iter().all(|&c| c != '\\' && c >= ' ') {
                inside.iter().collect()
            } else {
                let raw: String = chars[i..=j].iter().collect();
                serde_json::from_str(&raw).map_err(|e| {
                    ScimError::invalid_filter(format!(
                        "invalid string starting at character {pos}: {e}"
                    ))
                })?
            };
            tokens.push(Token {
                tok: Tok::Str(s),
                pos,
            });
            i = j + 1;
        } else {
            let start = i;
            while i < chars.len()
                && !chars[i].is_whitespace()
                && !matches!(chars[i], '(' | ')' | '[' | ']' | '"')
            {
                i += 1;
            }
            tokens.push(Token {
                tok: Tok::Word(chars[start..i].iter().collect()),
                pos,
            });
        }
    }
    Ok(tokens)
}

/// The value path whose elements attribute names are resolved in; the parser passes
/// `None` at the resource level.
#[derive(Clone, Copy)]
struct Element {
    /// The multi-valued (or complex) attribute the bracketed filter applies to.
    parent: AttrRef,
}

struct Parser {
    tokens: Vec<Token>,
    next: usize,
    rt: &'static ResourceType,
    depth: usize,
    terms: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn bump(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.next).cloned();
        self.next += 1;
        t
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Word(w), .. }) if w.eq_ignore_ascii_case(keyword))
    }

    fn error_at(&self, t: &Token, expected: &str) -> ScimError {
        ScimError::invalid_filter(format!(
            "{expected} at character {}, found {}",
            t.pos,
            t.describe()
        ))
    }

    fn error_at_end(&self, expected: &str) -> ScimError {
        ScimError::invalid_filter(format!("{expected} at the end of the filter"))
    }

    fn enter(&mut self) -> Result<(), ScimError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ScimError::invalid_filter(format!(
                "the filter nests deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(())
    }

    /// `and_expr ("or" and_expr)*`: `or` binds loosest.
    fn or_expr(&mut self, element: Option<Element>) -> Result<Filter, ScimError> {
        let mut left = self.and_expr(element)?;
        while self.peek_keyword("or") {
            self.bump();
            let right = self.and_expr(element)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// `unary ("and" unary)*`
    fn and_expr(&mut self, element: Option<Element>) -> Result<Filter, ScimError> {
        let mut left = self.unary(element)?;
        while self.peek_keyword("and") {
            self.bump();
            let right = self.unary(element)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// `"not" "(" filter ")"`, `"(" filter ")"` or an attribute expression.
    fn unary(&mut self, element: Option<Element>) -> Result<Filter, ScimError> {
        let Some(t) = self.peek().cloned() else {
            return Err(self.error_at_end("expected an attribute, 'not' or '('"));
        };
        match &t.tok {
            Tok::Word(w)
                if w.eq_ignore_ascii_case("not")
                    && matches!(
                        self.tokens.get(self.next + 1),
                        Some(Token { tok: Tok::Open, .. })
                    ) =>
            {
                self.bump();
                let inner = self.group(element)?;
                Ok(Filter::Not(Box::new(inner)))
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("not") => match self.tokens.get(self.next + 1) {
                Some(next) => Err(self.error_at(next, "expected '(' after 'not'")),
                None => Err(self.error_at_end("expected '(' after 'not'")),
            },
            Tok::Open => self.group(element),
            Tok::Word(_) => self.attr_expr(element),
            _ => Err(self.error_at(&t, "expected an attribute, 'not' or '('")),
        }
    }

    /// `"(" filter ")"`
    fn group(&mut self, element: Option<Element>) -> Result<Filter, ScimError> {
        self.enter()?;
        self.bump(); // '('
        let inner = self.or_expr(element)?;
        match self.bump() {
            Some(Token {
                tok: Tok::Close, ..
            }) => {}
            Some(t) => return Err(self.error_at(&t, "expected ')'")),
            None => return Err(self.error_at_end("expected ')'")),
        }
        self.depth -= 1;
        Ok(inner)
    }

    /// `attrPath "pr"`, `attrPath op value`, or `attrPath "[" valFilter "]" ["." sub (op value | "pr")]`.
    fn attr_expr(&mut self, element: Option<Element>) -> Result<Filter, ScimError> {
        let t = self.bump().expect("caller peeked a word");
        let Tok::Word(path) = &t.tok else {
            unreachable!("caller checked for a word")
        };
        let attr = match element {
            None => resolve_path(path, self.rt),
            Some(el) => resolve_in_element(path, el.parent),
        }
        .map_err(|e| ScimError::invalid_filter(format!("{e} (at character {})", t.pos)))?;

        if matches!(
            self.peek(),
            Some(Token {
                tok: Tok::OpenBracket,
                ..
            })
        ) {
            return self.value_path(attr, element, &t);
        }
        self.comparison(attr, path, element.is_some())
    }

    /// After an attribute path: `"pr"` or `op value`.
    fn comparison(
        &mut self,
        attr: AttrRef,
        shown: &str,
        in_element: bool,
    ) -> Result<Filter, ScimError> {
        let expected = || format!("expected a comparison operator after '{shown}'");
        let op_token = match self.bump() {
            Some(t) => t,
            None => return Err(self.error_at_end(&expected())),
        };
        let op_word = match &op_token.tok {
            Tok::Word(w) => w.as_str(),
            _ => return Err(self.error_at(&op_token, &expected())),
        };
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(ScimError::invalid_filter(format!(
                "the filter has more than {MAX_TERMS} comparisons"
            )));
        }
        if op_word.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(attr));
        }
        let Some(op) = CompareOp::from_word(op_word) else {
            return Err(self.error_at(
                &op_token,
                &format!("{} (eq, ne, co, sw, ew, gt, ge, lt, le or pr)", expected()),
            ));
        };
        let value_token = match self.bump() {
            Some(t) => t,
            None => {
                return Err(self.error_at_end(&format!("expected a value after '{op_word}'")));
            }
        };
        let literal = match value_token.tok {
            Tok::Str(s) => Literal::Str(s),
            Tok::Word(w) => Literal::Bare(w),
            _ => {
                return Err(
                    self.error_at(&value_token, &format!("expected a value after '{op_word}'"))
                );
            }
        };
        let attr = implicit_value(attr, in_element)?;
        let finer = finer_than_a_microsecond(&attr, &literal);
        let value = check_literal(&attr, op, literal).map_err(|e| {
            ScimError::invalid_filter(format!("{e} (at character {})", value_token.pos))
        })?;
        Ok(match finer {
            None => Filter::Compare { attr, op, value },
            Some(text) => within_a_microsecond(attr, op, value, text),
        })
    }

    /// `attr "[" valFilter "]"`, optionally followed by `.sub op value` (Entra's
    /// `emails[type eq "work"].value eq "x"`), which becomes one more condition on the
    /// same element.
    fn value_path(
        &mut self,
        attr: AttrRef,
        element: Option<Element>,
        at: &Token,
    ) -> Result<Filter, ScimError> {
        if element.is_some() {
            return Err(ScimError::invalid_filter(format!(
                "value paths cannot be nested (at character {})",
                at.pos
            )));
        }
        if attr.sub.is_some() || attr.attr.ty != AttrType::Complex {
            return Err(ScimError::invalid_filter(format!(
                "'{}' is not a complex attribute, so it cannot take a [filter] (at character {})",
                attr.path(),
                at.pos
            )));
        }
        self.enter()?;
        self.bump(); // '['
        let mut inner = self.or_expr(Some(Element { parent: attr }))?;
        match self.bump() {
            Some(Token {
                tok: Tok::CloseBracket,
                ..
            }) => {}
            Some(t) => return Err(self.error_at(&t, "expected ']'")),
            None => return Err(self.error_at_end("expected ']'")),
        }
        self.depth -= 1;
        let trailing_sub = match self.peek() {
            Some(Token {
                tok: Tok::Word(w),
                pos,
            }) if w.starts_with('.') => Some((w.clone(), *pos)),
            _ => None,
        };
        if let Some((w, pos)) = trailing_sub {
            let sub_name = &w[1..];
            self.bump();
            let sub = resolve_in_element(sub_name, attr)
                .map_err(|e| ScimError::invalid_filter(format!("{e} (at character {pos})")))?;
            let shown = format!("{}[…]{w}", at_word(at));
            let condition = self.comparison(sub, &shown, true)?;
            inner = Filter::And(Box::new(inner), Box::new(condition));
        }
        Ok(Filter::ValuePath {
            attr,
            filter: Box::new(inner),
        })
    }
}

fn at_word(t: &Token) -> &str {
    match &t.tok {
        Tok::Word(w) => w,
        _ => "",
    }
}

/// A compare value as written: quoted, or a bare word (`jyoung`, `true`, `42`,
/// `2015-10-10T14:38:21.8617979-07:00`).
enum Literal {
    Str(String),
    Bare(String),
}

/// Resolves `[urn:]attr[.sub]` against `rt`, wording the filter's errors: plain messages,
/// to which the caller adds the position.
fn resolve_path(path: &str, rt: &ResourceType) -> Result<AttrRef, String> {
    rt.resolve(path).map_err(|e| match e {
        Unresolved::UnknownSchema { urn } => format!("unknown schema '{urn}' in '{path}'"),
        Unresolved::Malformed => format!("'{path}' is not an attribute path"),
        Unresolved::UnknownAttribute { .. } => format!("unknown attribute '{path}'"),
        Unresolved::UnknownSubAttribute { attr, name } => {
            format!("'{}' has no sub-attribute '{name}'", attr.name)
        }
    })
}

/// Resolves a sub-attribute name inside `parent[...]`.
fn resolve_in_element(name: &str, parent: AttrRef) -> Result<AttrRef, String> {
    if !schema::is_attribute_name(name) {
        return Err(format!(
            "'{name}' is not a sub-attribute name of '{}'",
            parent.attr.name
        ));
    }
    let sub = parent
        .attr
        .sub(name)
        .ok_or_else(|| format!("'{}' has no sub-attribute '{name}'", parent.attr.name))?;
    Ok(AttrRef {
        extension: parent.extension,
        attr: sub,
        sub: None,
    })
}

/// A complex attribute compared without a sub-attribute means its `value`.
fn implicit_value(attr: AttrRef, in_element: bool) -> Result<AttrRef, ScimError> {
    if attr.leaf().ty != AttrType::Complex {
        return Ok(attr);
    }
    match attr.attr.sub("value") {
        Some(value) if !in_element && attr.sub.is_none() => Ok(AttrRef {
            sub: Some(value),
            ..attr
        }),
        _ => Err(ScimError::invalid_filter(format!(
            "'{0}' is complex: compare one of its sub-attributes (e.g. {0}.{1})",
            attr.path(),
            attr.leaf()
                .sub_attributes
                .first()
                .map_or("value", |a| a.name)
        ))),
    }
}

/// The text of `literal` when, compared with a dateTime, it names an instant between two
/// microseconds. Stored times are whole microseconds, and a literal's canonical form is
/// cut to the microsecond it falls in ([`within_a_microsecond`] compares as the instant
/// would).
fn finer_than_a_microsecond(attr: &AttrRef, literal: &Literal) -> Option<String> {
    let (Literal::Str(text) | Literal::Bare(text)) = literal;
    (attr.leaf().ty == AttrType::DateTime
        && datetime::parse(text).is_some()
        && datetime::finer_than_a_microsecond(text))
    .then(|| text.clone())
}

/// `attr op L`, for an instant `L` sent as `text`, inside microsecond `t` (canonical), as a
/// comparison stored times (whole microseconds) answer as they would with `L`: after `L` is
/// after `t`, before `L` is at or before `t`, and `eq`/`ne` compare with `text` itself,
/// which no stored time's canonical form equals. One comparison for one, so the filter's
/// depth and size stay as parsed, and its rendering reads back as the same filter.
fn within_a_microsecond(attr: AttrRef, op: CompareOp, t: Value, text: String) -> Filter {
    let (op, value) = match op {
        CompareOp::Gt | CompareOp::Ge => (CompareOp::Gt, t),
        CompareOp::Lt | CompareOp::Le => (CompareOp::Le, t),
        // `eq` and `ne`, the rest an ordered type takes.
        op => (op, Value::String(text)),
    };
    Filter::Compare { attr, op, value }
}

/// Checks that `op` applies to `attr`'s type and turns the literal into the value
/// evaluation compares with (see the module docs).
fn check_literal(attr: &AttrRef, op: CompareOp, literal: Literal) -> Result<Value, String> {
    let leaf = attr.leaf();
    let path = attr.path();
    let ty = leaf.ty.as_str();
    // A bare word: JSON keywords and numbers, else an unquoted string.
    let (value, text) = match literal {
        Literal::Str(s) => (Value::String(s.clone()), s),
        Literal::Bare(w) => {
            let v = if w.eq_ignore_ascii_case("true") {
                Value::Bool(true)
            } else if w.eq_ignore_ascii_case("false") {
                Value::Bool(false)
            } else if w.eq_ignore_ascii_case("null") {
                Value::Null
            } else if let Ok(n) = serde_json::from_str::<serde_json::Number>(&w) {
                Value::Number(n)
            } else {
                Value::String(w.clone())
            };
            (v, w)
        }
    };
    if value.is_null() {
        return match op {
            CompareOp::Eq | CompareOp::Ne => Ok(Value::Null),
            _ => Err(format!("'{}' cannot be used with null", op.as_str())),
        };
    }
    match leaf.ty {
        AttrType::String | AttrType::Reference | AttrType::Binary => {
            if leaf.ty == AttrType::Binary && op.is_ordering() {
                return Err(format!(
                    "'{path}' is binary and cannot be compared with '{}'",
                    op.as_str()
                ));
            }
            Ok(Value::String(text))
        }
        AttrType::Boolean => {
            if op.is_ordering() || op.is_substring() {
                return Err(format!(
                    "'{path}' is boolean and cannot be compared with '{}'",
                    op.as_str()
                ));
            }
            match &value {
                Value::Bool(_) => Ok(value),
                Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
                Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
                _ => Err(format!(
                    "'{path}' is boolean; expected true or false, found {value}"
                )),
            }
        }
        AttrType::Integer | AttrType::Decimal => {
            if op.is_substring() {
                return Err(format!(
                    "'{path}' is a number and cannot be compared with '{}'",
                    op.as_str()
                ));
            }
            let n = match &value {
                Value::Number(n) => Some(n.clone()),
                Value::String(s) => serde_json::from_str::<serde_json::Number>(s.trim()).ok(),
                _ => None,
            };
            match n {
                Some(n) if leaf.ty == AttrType::Decimal || n.is_i64() || n.is_u64() => {
                    Ok(Value::Number(n))
                }
                _ => Err(format!(
                    "'{path}' is {ty}; expected a number, found {value}"
                )),
            }
        }
        AttrType::DateTime => {
            if op.is_substring() {
                return Err(format!(
                    "'{path}' is a dateTime and cannot be compared with '{}'",
                    op.as_str()
                ));
            }
            match datetime::canonical(&text) {
                Some(t) if !matches!(value, Value::Bool(_)) => Ok(Value::String(t)),
                _ => Err(format!(
                    "'{path}' is a dateTime; '{text}' is not an RFC 3339 date-time"
                )),
            }
        }
        AttrType::Complex => Err(format!("'{path}' is complex and cannot be compared")),
    }
}

// ---------------------------------------------------------------------------------------
// Evaluation

/// Whether `resource`, as a client would GET it, matches `filter`.
pub fn matches(filter: &Filter, resource: &Value) -> bool {
    eval(filter, resource, RelativeTo::Resource)
}

/// Whether one element of a multi-valued attribute matches the inner filter of a value
/// path (`type eq "work"` in `emails[type eq "work"]`).
/// How many comparisons one write may make between value filters and the elements they
/// select (elements × the filter's comparisons, summed over its operations). Writes run
/// one at a time, so this bounds how long one request holds back every other write
/// (a fraction of a second here); past it the request is refused as `tooMany`.
pub const WRITE_FILTER_BUDGET: usize = 2_000_000;

/// What is left of a write's [`WRITE_FILTER_BUDGET`].
#[derive(Debug, Clone, Copy)]
pub struct FilterBudget(usize);

impl Default for FilterBudget {
    fn default() -> Self {
        FilterBudget(WRITE_FILTER_BUDGET)
    }
}

impl FilterBudget {
    /// Takes what matching `filter` against `elements` elements costs, or refuses.
    pub fn spend(&mut self, filter: &Filter, elements: usize) -> Result<(), ScimError> {
        let cost = elements.saturating_mul(filter.comparisons());
        match self.0.checked_sub(cost) {
            Some(left) => {
                self.0 = left;
                Ok(())
            }
            None => Err(ScimError::new(
                400,
                Some(super::error::ScimType::TooMany),
                format!(
                    "the request's value filters would make more than {WRITE_FILTER_BUDGET} comparisons with the elements they select: send fewer operations, simpler filters, or filter by value"
                ),
            )),
        }
    }
}

impl Filter {
    /// How many comparisons (`pr` included) the filter holds.
    pub fn comparisons(&self) -> usize {
        match self {
            Filter::Compare { .. } | Filter::Present(_) => 1,
            Filter::And(a, b) | Filter::Or(a, b) => a.comparisons() + b.comparisons(),
            Filter::Not(f) | Filter::ValuePath { filter: f, .. } => f.comparisons(),
        }
    }
}

pub fn matches_element(filter: &Filter, element: &Value) -> bool {
    eval(filter, element, RelativeTo::Element)
}

/// What a filter's attribute references are relative to.
#[derive(Clone, Copy)]
enum RelativeTo {
    /// A whole resource: extension attributes live under their URN key.
    Resource,
    /// One element of a value path: references name keys of the element.
    Element,
}

fn eval(filter: &Filter, node: &Value, relative_to: RelativeTo) -> bool {
    match filter {
        Filter::Compare { attr, op, value } => {
            let mut values = values_of(attr, node, relative_to);
            if attr.attr.multi_valued && *op == CompareOp::Ne && !value.is_null() {
                // Any value that is not the literal, or no value at all (see the module docs).
                return values.clone().next().is_none()
                    || values.any(|v| !compare_one(v, attr.leaf(), CompareOp::Eq, value));
            }
            compare_values(values, attr.leaf(), *op, value)
        }
        Filter::Present(attr) => values_of(attr, node, relative_to).any(present),
        Filter::And(a, b) => eval(a, node, relative_to) && eval(b, node, relative_to),
        Filter::Or(a, b) => eval(a, node, relative_to) || eval(b, node, relative_to),
        Filter::Not(inner) => !eval(inner, node, relative_to),
        Filter::ValuePath { attr, filter } => {
            let Some(v) = attribute_value(attr, node, relative_to) else {
                return false;
            };
            let elements: &[Value] = match v {
                Value::Array(items) => items,
                other => std::slice::from_ref(other),
            };
            elements
                .iter()
                .filter(|e| e.is_object())
                .any(|e| eval(filter, e, RelativeTo::Element))
        }
    }
}

/// The raw value of `attr.attr` (ignoring `sub`) in `node`; `null` counts as absent.
fn attribute_value<'v>(
    attr: &AttrRef,
    node: &'v Value,
    relative_to: RelativeTo,
) -> Option<&'v Value> {
    let container = match (relative_to, attr.extension) {
        (RelativeTo::Resource, Some(ext)) => node.get(ext.id)?,
        _ => node,
    };
    container.get(attr.attr.name).filter(|v| !v.is_null())
}

/// Every value `attr` denotes in `node`: one per element for multi-valued attributes.
/// An iterator, not a list: PATCH evaluates a value filter once per element per operation.
fn values_of<'v>(
    attr: &AttrRef,
    node: &'v Value,
    relative_to: RelativeTo,
) -> impl Iterator<Item = &'v Value> + Clone + use<'v> {
    let items: &'v [Value] = match attribute_value(attr, node, relative_to) {
        None => &[],
        Some(Value::Array(items)) if attr.attr.multi_valued => items,
        Some(other) => std::slice::from_ref(other),
    };
    let sub = attr.sub;
    items
        .iter()
        .filter_map(move |item| match sub {
            None => Some(item),
            Some(sub) => item.get(sub.name),
        })
        .filter(|v| !v.is_null())
}

/// `pr`: holds a scalar that is neither null nor the empty string.
fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => items.iter().any(present),
        Value::Object(members) => members.values().any(present),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

fn compare_values<'v>(
    mut values: impl Iterator<Item = &'v Value> + Clone,
    leaf: &Attribute,
    op: CompareOp,
    literal: &Value,
) -> bool {
    if literal.is_null() {
        let any_present = values.any(present);
        return match op {
            CompareOp::Ne => any_present,
            _ => !any_present,
        };
    }
    if op == CompareOp::Ne {
        return !compare_values(values, leaf, CompareOp::Eq, literal);
    }
    values.any(|v| compare_one(v, leaf, op, literal))
}

/// One value against the literal; the literal has already been checked and normalised
/// for `leaf`'s type by the parser.
fn compare_one(value: &Value, leaf: &Attribute, op: CompareOp, literal: &Value) -> bool {
    use std::cmp::Ordering;
    let ordering_matches = |o: Ordering| match op {
        CompareOp::Eq => o == Ordering::Equal,
        CompareOp::Gt => o == Ordering::Greater,
        CompareOp::Ge => o != Ordering::Less,
        CompareOp::Lt => o == Ordering::Less,
        CompareOp::Le => o != Ordering::Greater,
        CompareOp::Ne | CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    };
    match leaf.ty {
        AttrType::String | AttrType::Reference | AttrType::Binary => {
            let (Value::String(v), Value::String(lit)) = (value, literal) else {
                return false;
            };
            if leaf.case_exact {
                return match op {
                    CompareOp::Co => v.contains(lit.as_str()),
                    CompareOp::Sw => v.starts_with(lit.as_str()),
                    CompareOp::Ew => v.ends_with(lit.as_str()),
                    _ => ordering_matches(v.as_bytes().cmp(lit.as_bytes())),
                };
            }
            match op {
                CompareOp::Co => fold(v).contains(&fold(lit)),
                CompareOp::Sw => fold(v).starts_with(&fold(lit)),
                CompareOp::Ew => fold(v).ends_with(&fold(lit)),
                _ => ordering_matches(fold_cmp(v, lit)),
            }
        }
        AttrType::Boolean => {
            matches!((value, literal), (Value::Bool(a), Value::Bool(b)) if a == b && op == CompareOp::Eq)
        }
        AttrType::Integer | AttrType::Decimal => match (value.as_f64(), literal.as_f64()) {
            (Some(a), Some(b)) => a.partial_cmp(&b).is_some_and(ordering_matches),
            _ => false,
        },
        AttrType::DateTime => {
            let (Some(v), Some(lit)) = (
                value.as_str().and_then(datetime::canonical),
                literal.as_str(),
            ) else {
                return false;
            };
            ordering_matches(v.as_str().cmp(lit))
        }
        AttrType::Complex => false,
    }
}

#[cfg(test)]
mod tests;
