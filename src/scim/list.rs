//! List and search parameters (RFC 7644 §3.4.2, §3.4.3; RFC 9865 cursors): parsed once
//! from a query string or a SearchRequest body into the same struct.

use serde_json::{Map, Value, json};

use super::discovery::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use super::error::{ScimError, ScimType};
use super::filter::{self, Filter};
use super::schema::{AttrRef, LIST_RESPONSE_URN, ResourceType};

/// A list request, validated.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub filter: Option<Filter>,
    pub sort_by: Option<AttrRef>,
    pub descending: bool,
    /// 1-based (values below 1 mean 1, RFC 7644 §3.4.2.4).
    pub start_index: u64,
    /// Capped at [`MAX_PAGE_SIZE`]; 0 asks for `totalResults` only.
    pub count: u64,
    /// RFC 9865: `Some(Cursor::First)` starts cursor paging (`cursor=`), `Some(After(p))`
    /// continues after position `p`, decoded from a cursor issued for this same order.
    pub cursor: Option<Cursor>,
    pub attributes: Option<String>,
    pub excluded_attributes: Option<String>,
}

impl ListParams {
    /// From decoded query pairs; parameter names are matched in any case and unknown
    /// parameters (such as Entra's `aadOptscim062020` flag) are ignored.
    pub fn from_query<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        rt: &'static ResourceType,
    ) -> Result<ListParams, ScimError> {
        let mut raw = Raw::default();
        for (k, v) in pairs {
            raw.set(k, Some(v.to_string()));
        }
        raw.validate(rt)
    }

    /// From a `POST /.search` SearchRequest body (RFC 7644 §3.4.3).
    pub fn from_search(body: &Value, rt: &'static ResourceType) -> Result<ListParams, ScimError> {
        let Value::Object(fields) = body else {
            return Err(ScimError::invalid_syntax(
                "a SearchRequest must be a JSON object",
            ));
        };
        let mut raw = Raw::default();
        for (k, v) in fields {
            let text = match v {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Array(items) => Some(
                    items
                        .iter()
                        .map(|i| {
                            i.as_str().map(str::to_string).ok_or_else(|| {
                                ScimError::invalid_value(format!(
                                    "\"{k}\" must be an array of strings"
                                ))
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?
                        .join(","),
                ),
                _ => {
                    return Err(ScimError::invalid_value(format!(
                        "\"{k}\" has the wrong type"
                    )));
                }
            };
            raw.set(k, text);
        }
        raw.validate(rt)
    }
}

#[derive(Default)]
struct Raw {
    filter: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    start_index: Option<String>,
    count: Option<String>,
    cursor: Option<String>,
    attributes: Option<String>,
    excluded: Option<String>,
}

impl Raw {
    /// Records parameter `name` (any case); unknown parameters are ignored.
    fn set(&mut self, name: &str, value: Option<String>) {
        let slot = match name.to_ascii_lowercase().as_str() {
            "filter" => &mut self.filter,
            "sortby" => &mut self.sort_by,
            "sortorder" => &mut self.sort_order,
            "startindex" => &mut self.start_index,
            "count" => &mut self.count,
            "cursor" => &mut self.cursor,
            "attributes" => &mut self.attributes,
            "excludedattributes" => &mut self.excluded,
            _ => return,
        };
        *slot = value;
    }

    fn validate(self, rt: &'static ResourceType) -> Result<ListParams, ScimError> {
        let filter = match self.filter.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(f) => Some(filter::parse(f, rt)?),
        };
        let sort_by = match self.sort_by.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(name) => Some(rt.resolve(name).map_err(|_| {
                ScimError::invalid_value(format!("cannot sort by {name:?}: no such attribute"))
            })?),
        };
        let descending = match self.sort_order.as_deref().map(str::trim) {
            None | Some("") => false,
            Some(o) if o.eq_ignore_ascii_case("ascending") => false,
            Some(o) if o.eq_ignore_ascii_case("descending") => true,
            Some(o) => {
                return Err(ScimError::invalid_value(format!(
                    "sortOrder must be \"ascending\" or \"descending\", got {o:?}"
                )));
            }
        };
        let start_index =
            integer("startIndex", self.start_index.as_deref())?.map_or(1, |n| n.max(1) as u64);
        let count = integer("count", self.count.as_deref())?
            .map_or(DEFAULT_PAGE_SIZE, |n| (n.max(0) as u64).min(MAX_PAGE_SIZE));
        let cursor = match self.cursor.as_deref().map(str::trim) {
            None => None,
            Some("") => Some(Cursor::First),
            Some(c) => Some(Cursor::After(decode_cursor(
                c,
                sort_by.as_ref(),
                descending,
            )?)),
        };
        Ok(ListParams {
            filter,
            sort_by,
            descending,
            start_index,
            count,
            cursor,
            attributes: self.attributes,
            excluded_attributes: self.excluded,
        })
    }
}

fn integer(name: &str, v: Option<&str>) -> Result<Option<i64>, ScimError> {
    match v.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse::<i64>()
            .map(Some)
            .or_else(|_| s.parse::<f64>().map(|f| Some(f as i64)).map_err(|_| ()))
            .map_err(|()| {
                ScimError::invalid_value(format!("{name} must be an integer, got {s:?}"))
            }),
    }
}

/// Where cursor paging starts (RFC 9865 §2).
#[derive(Debug, Clone, PartialEq)]
pub enum Cursor {
    /// `cursor=` (empty): the first page.
    First,
    /// The page after this position.
    After(Position),
}

/// A row's place in a list's order: its sort value and its row key, which breaks ties.
///
/// A cursor is a position, not an offset or a server-side snapshot, so it never expires and
/// rows deleted or added before or after it meanwhile never shift the next page: the next
/// page is simply the rows that sort after this (key, pk) pair now.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    /// The sort value of the row (`null` when it has none, and always in the default order):
    /// a JSON string, number or null, as the storage layer's sort expression gave it.
    pub key: Value,
    pub pk: i64,
}

/// The order a cursor belongs to: `sortBy`'s canonical path (or `-`, the default order by
/// creation) and the direction. A cursor names it, so one used with another order is refused.
fn order_tag(sort_by: Option<&AttrRef>, descending: bool) -> String {
    let path = sort_by.map_or_else(|| "-".to_string(), AttrRef::path);
    format!("{path} {}", if descending { "desc" } else { "asc" })
}

/// The `nextCursor` for the page that ends at `pos`, in the order of `sort_by`/`descending`.
///
/// Cursors are opaque to clients. The default ascending order, which most clients use, keeps
/// the short `c<hex pk>` form; any other order carries its tag, the sort value and the row
/// key as base64url JSON (`s…`).
pub fn encode_cursor(sort_by: Option<&AttrRef>, descending: bool, pos: &Position) -> String {
    use base64::Engine;
    if sort_by.is_none() && !descending {
        return format!("c{:x}", pos.pk);
    }
    let doc = json!({"o": order_tag(sort_by, descending), "k": pos.key, "p": pos.pk});
    format!(
        "s{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(doc.to_string())
    )
}

/// The position a cursor names, if this server issued it for the same order; otherwise
/// 400 `invalidCursor` (RFC 9865 §2.2): a malformed or edited cursor, or one issued for
/// another `sortBy`/`sortOrder` (stale for this request).
pub fn decode_cursor(
    cursor: &str,
    sort_by: Option<&AttrRef>,
    descending: bool,
) -> Result<Position, ScimError> {
    use base64::Engine;
    let invalid = |why: &str| {
        ScimError::bad_request(
            ScimType::InvalidCursor,
            format!(
                "cursor {cursor:?} {why}; start again with cursor= (empty) and follow nextCursor"
            ),
        )
    };
    let (tag, key, pk) = if let Some(hex) = cursor.strip_prefix('c') {
        let pk = i64::from_str_radix(hex, 16)
            .ok()
            .filter(|pk| *pk >= 0)
            .ok_or_else(|| invalid("is not one this server issued"))?;
        (order_tag(None, false), Value::Null, pk)
    } else if let Some(b64) = cursor.strip_prefix('s') {
        let doc: Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| invalid("is not one this server issued"))?;
        let (Some(tag), Some(key), Some(pk)) = (
            doc["o"].as_str(),
            doc.get("k")
                .filter(|k| k.is_null() || k.is_string() || k.is_number()),
            doc["p"].as_i64().filter(|pk| *pk >= 0),
        ) else {
            return Err(invalid("is not one this server issued"));
        };
        (tag.to_string(), key.clone(), pk)
    } else {
        return Err(invalid("is not one this server issued"));
    };
    if tag != order_tag(sort_by, descending) {
        return Err(invalid(&format!(
            "was issued for another order ({tag}), not for this request's sortBy/sortOrder"
        )));
    }
    Ok(Position { key, pk })
}

/// The ListResponse envelope; numbers are JSON integers (Okta rejects strings).
pub fn list_response(
    total: u64,
    start_index: u64,
    resources: Vec<Value>,
    next_cursor: Option<String>,
) -> Value {
    let mut out = Map::new();
    out.insert("schemas".into(), json!([LIST_RESPONSE_URN]));
    out.insert("totalResults".into(), json!(total));
    out.insert("startIndex".into(), json!(start_index));
    out.insert("itemsPerPage".into(), json!(resources.len()));
    if let Some(c) = next_cursor {
        out.insert("nextCursor".into(), json!(c));
    }
    out.insert("Resources".into(), Value::Array(resources));
    Value::Object(out)
}

/// [`list_response`] serialised, from resources already serialised each: the same bytes,
/// without a `Value` tree for the page or its envelope.
pub fn write_list_response(
    total: u64,
    start_index: u64,
    resources: &[Vec<u8>],
    next_cursor: Option<String>,
) -> Vec<u8> {
    let size = resources.iter().map(|r| r.len() + 1).sum::<usize>();
    let mut out = list_response_head(total, start_index, resources.len(), next_cursor.as_deref());
    out.reserve(size + 2);
    for (i, r) in resources.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(r);
    }
    out.extend_from_slice(LIST_RESPONSE_TAIL);
    out
}

/// What closes a list answer after its last resource.
pub const LIST_RESPONSE_TAIL: &[u8] = b"]}";

/// A list answer up to its first resource, `"Resources":[` included: what
/// [`write_list_response`] writes before the resources, for an answer sent in pieces.
pub fn list_response_head(
    total: u64,
    start_index: u64,
    items: usize,
    next_cursor: Option<&str>,
) -> Vec<u8> {
    /// The envelope's members before `Resources`, in [`list_response`]'s order.
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Head<'a> {
        schemas: [&'static str; 1],
        total_results: u64,
        start_index: u64,
        items_per_page: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        next_cursor: Option<&'a str>,
    }
    let mut out = Vec::with_capacity(160);
    let head = Head {
        schemas: [LIST_RESPONSE_URN],
        total_results: total,
        start_index,
        items_per_page: items,
        next_cursor,
    };
    serde_json::to_writer(&mut out, &head).expect("numbers and strings serialise");
    // `{…}` becomes `{…,"Resources":[…]}`.
    out.pop();
    out.extend_from_slice(b",\"Resources\":[");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::USER_RESOURCE;

    fn q(pairs: &[(&str, &str)]) -> Result<ListParams, ScimError> {
        ListParams::from_query(pairs.iter().copied(), &USER_RESOURCE)
    }

    #[test]
    fn paging_defaults_and_clamps() {
        let p = q(&[]).unwrap();
        assert_eq!((p.start_index, p.count), (1, DEFAULT_PAGE_SIZE));
        let p = q(&[("startIndex", "0"), ("count", "-5")]).unwrap();
        assert_eq!((p.start_index, p.count), (1, 0));
        let p = q(&[("STARTINDEX", "101"), ("count", "100000")]).unwrap();
        assert_eq!((p.start_index, p.count), (101, MAX_PAGE_SIZE));
        assert_eq!(
            q(&[("count", "ten")]).unwrap_err().scim_type,
            Some(ScimType::InvalidValue)
        );
    }

    #[test]
    fn sorting_is_validated() {
        let p = q(&[("sortBy", "name.familyName"), ("sortOrder", "Descending")]).unwrap();
        assert!(p.descending && p.sort_by.unwrap().sub.unwrap().name == "familyName");
        assert!(q(&[("sortBy", "shoeSize")]).is_err());
        assert!(q(&[("sortOrder", "sideways")]).is_err());
    }

    #[test]
    fn cursors_round_trip_and_reject_forgeries() {
        let pos = |key: Value, pk| Position { key, pk };
        // The default order keeps the short form.
        assert_eq!(encode_cursor(None, false, &pos(Value::Null, 42)), "c2a");
        assert_eq!(
            decode_cursor("c2a", None, false).unwrap(),
            pos(Value::Null, 42)
        );
        let user_name = USER_RESOURCE.resolve("userName").ok();
        let family = USER_RESOURCE.resolve("name.familyName").ok();
        for (sort, desc, key) in [
            (user_name, false, json!("alice")),
            (user_name, true, json!("Zoë \"quoted\"")),
            (family, false, Value::Null),
            (None, true, Value::Null),
            (family, true, json!(1.5)),
        ] {
            let c = encode_cursor(sort.as_ref(), desc, &pos(key.clone(), 7));
            assert!(
                c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)),
                "{c}"
            );
            assert_eq!(decode_cursor(&c, sort.as_ref(), desc).unwrap(), pos(key, 7));
            // Another order (or direction) makes the cursor stale for the request.
            assert_eq!(
                decode_cursor(&c, sort.as_ref(), !desc)
                    .unwrap_err()
                    .scim_type,
                Some(ScimType::InvalidCursor)
            );
        }
        let c = encode_cursor(user_name.as_ref(), false, &pos(json!("a"), 1));
        assert!(decode_cursor(&c, None, false).is_err());
        assert!(decode_cursor("c2a", user_name.as_ref(), false).is_err());
        for bad in ["zz", "c", "c-1", "s", "s!!", "sbm90IGpzb24", "seyJvIjoxfQ"] {
            assert_eq!(
                decode_cursor(bad, None, false).unwrap_err().scim_type,
                Some(ScimType::InvalidCursor),
                "{bad}"
            );
        }
        // Parsed with the list parameters, whatever their order in the request.
        let c = encode_cursor(user_name.as_ref(), true, &pos(json!("m"), 3));
        let p = q(&[
            ("cursor", &c),
            ("sortOrder", "descending"),
            ("sortBy", "USERNAME"),
        ])
        .unwrap();
        assert_eq!(p.cursor, Some(Cursor::After(pos(json!("m"), 3))));
        assert_eq!(q(&[("cursor", "")]).unwrap().cursor, Some(Cursor::First));
        assert!(q(&[("cursor", &c)]).is_err());
    }

    #[test]
    fn search_requests_accept_attribute_arrays() {
        let p = ListParams::from_search(&json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"attributes":["userName","emails"],"startIndex":2,"count":10}), &USER_RESOURCE).unwrap();
        assert_eq!(p.attributes.as_deref(), Some("userName,emails"));
        assert_eq!((p.start_index, p.count), (2, 10));
    }

    #[test]
    fn envelope_numbers_are_integers() {
        let items = vec![json!({"id": "a"}), json!({"id": "b", "x": [1]})];
        let bytes: Vec<Vec<u8>> = items
            .iter()
            .map(|v| serde_json::to_vec(v).unwrap())
            .collect();
        for next in [None, Some("c1".to_string())] {
            let want = list_response(9, 3, items.clone(), next.clone()).to_string();
            let got = write_list_response(9, 3, &bytes, next);
            assert_eq!(String::from_utf8(got).unwrap(), want);
        }
        assert_eq!(
            write_list_response(0, 1, &[], None),
            list_response(0, 1, vec![], None).to_string().into_bytes()
        );
        let v = list_response(0, 1, vec![], None);
        assert_eq!(
            v,
            json!({"schemas":[LIST_RESPONSE_URN],"totalResults":0,"startIndex":1,"itemsPerPage":0,"Resources":[]})
        );
    }
}
