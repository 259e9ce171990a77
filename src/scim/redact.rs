//! Redaction of what the request inspector keeps: passwords and secrets never reach the
//! database, whatever shape the IdP sent them in.
//!
//! A JSON body is redacted structurally ([`json`]): any member whose name is a secret's
//! (`password`, `client_secret`, `clientSecret`, tokens…, also URN-qualified or dotted, in
//! any case), and
//! the `value` of any PATCH operation whose `path` names one (`"path":"password"`,
//! `"path":"urn:…:User:password"`), after a UTF-8 byte order mark too. A body that is not
//! JSON (the IdP sent something malformed, which is exactly when an admin looks) keeps its
//! start, cut before anything that could name or hide a secret ([`body`]). Other text (an
//! answer) is scrubbed textually ([`text`]): the value after every quoted secret name and
//! a colon or equals sign. A URL's query loses
//! the values of secret parameters (`access_token=` is allowed by RFC 6750 §2.3).
//! The Authorization header is never passed in at all.

use serde_json::Value;

/// What a secret's value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// How the names of secrets end, lowercase, once `_` and `-` are dropped: `password`,
/// `newPassword`, `client_secret`, `clientSecret`, `access_token`, `apiToken`, `api-key`,
/// `Authorization`, `code_verifier`.
const SECRET_ENDINGS: &[&str] = &[
    "password",
    "secret",
    "token",
    "authorization",
    "apikey",
    "codeverifier",
];

/// What text must hold, lowercase, for any name in it to be a secret's: a cheap test
/// before a closer look.
const SECRET_HINTS: &[&str] = &[
    "password",
    "secret",
    "token",
    "authorization",
    "apikey",
    "api_key",
    "api-key",
    "verifier",
];

/// Whether the attribute or parameter `name` holds a secret: its last component (after a
/// URN's `:` or a dotted path's `.`, before a value filter `[…]`), in any case and with
/// `_` and `-` dropped, ends like one of [`SECRET_ENDINGS`].
pub fn is_secret_name(name: &str) -> bool {
    let name = name.split('[').next().unwrap_or(name);
    let last = name.rsplit([':', '.']).next().unwrap_or(name).trim();
    is_secret_word(last)
}

fn is_secret_word(word: &str) -> bool {
    let folded: String = word
        .chars()
        .filter(|c| !matches!(c, '_' | '-'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    SECRET_ENDINGS.iter().any(|e| folded.ends_with(e))
}

/// Redacts `value` in place; returns whether anything was redacted.
pub fn json(value: &mut Value) -> bool {
    match value {
        Value::Object(map) => {
            let mut changed = false;
            // A PATCH operation (or anything shaped like one) whose path names a secret:
            // its value is the secret, whatever its type.
            let secret_path = map.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("path") && v.as_str().is_some_and(is_secret_name)
            });
            for (k, v) in map.iter_mut() {
                let secret = is_secret_name(k)
                    || (secret_path && k.eq_ignore_ascii_case("value"))
                    || (k.eq_ignore_ascii_case("filter") && filter_names_a_secret(v));
                if secret {
                    if *v != Value::String(REDACTED.into()) {
                        *v = Value::String(REDACTED.into());
                    }
                    changed = true;
                } else {
                    changed |= json(v);
                }
            }
            changed
        }
        Value::Array(items) => items.iter_mut().fold(false, |c, v| json(v) | c),
        _ => false,
    }
}

/// A body as the inspector keeps it: JSON redacted structurally (the original bytes kept
/// when nothing needed redacting, so the admin sees exactly what arrived), the JSON after
/// a UTF-8 byte order mark too (the SCIM handlers skip one). A body that is not JSON keeps
/// its start, up to the first thing that could hide a secret ([`malformed`]). `None` for an
/// empty body.
pub fn body(bytes: &[u8]) -> Option<String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    // Neither redaction changes a body in which no secret's name appears, and only a
    // `\u` escape could spell one: most bodies (every answer to a lookup), kept as they
    // are without a parse. (Other escapes stand for no letter: `\"` in an ETag, `\/`.)
    // Bytes that are not UTF-8 text (UTF-16, say) could spell a name unseen: a closer look.
    if let Ok(kept) = std::str::from_utf8(bytes) {
        let lower = kept.to_ascii_lowercase();
        if !lower.contains("\\u") && !names_a_secret(&lower) && !kept.contains(unlike_json) {
            return Some(kept.to_string());
        }
    }
    let unmarked = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Ok(mut value) = serde_json::from_slice::<Value>(unmarked) {
        if json(&mut value) {
            return Some(value.to_string());
        }
        return Some(String::from_utf8_lossy(bytes).into_owned());
    }
    Some(malformed(bytes))
}

/// A character no JSON text holds outside a string, and none inside one unescaped: a
/// control character other than whitespace (UTF-16 text is full of NULs), or a byte
/// order mark.
fn unlike_json(c: char) -> bool {
    (c.is_control() && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{feff}'
}

/// A body that is not JSON, as kept: its start, cut before the first secret's name (a
/// PATCH's `"path":"password"` names the secret that follows it, under any name), the
/// first `\u` escape (which can spell one), or the first byte that is not plain UTF-8
/// text. The admin still sees where it went wrong in most cases (the answer says where),
/// and no value of a secret reaches the database, however the body is broken.
fn malformed(bytes: &[u8]) -> String {
    let (text, all_text) = match std::str::from_utf8(bytes) {
        Ok(text) => (text, true),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            (std::str::from_utf8(valid).unwrap_or_default(), false)
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut end = text.find(unlike_json).unwrap_or(text.len());
    let lower = text[..end].to_ascii_lowercase();
    for hint in SECRET_HINTS.iter().chain(&["\\u"]) {
        if let Some(at) = lower.find(hint) {
            end = end.min(at);
        }
    }
    if end == text.len() && all_text {
        return text.to_string();
    }
    format!(
        "{}{REDACTED} (the rest is not kept: not valid JSON, and it may hold a secret)",
        &text[..end]
    )
}

/// Whether a filter (a `.search` body's, a query's) compares a secret: `password eq "…"`
/// carries the password. SCIM refuses such a filter, after the request was recorded.
fn filter_names_a_secret(filter: &Value) -> bool {
    filter
        .as_str()
        .is_some_and(|f| names_a_secret(&f.to_ascii_lowercase()))
}

/// Whether lowercase `text` holds a secret's name anywhere: one search per name, not a
/// comparison with every name at every byte.
fn names_a_secret(lower: &str) -> bool {
    SECRET_HINTS.iter().any(|hint| lower.contains(hint))
}

/// Scrubs text that may hold secrets but is not JSON: after every secret name in quotes
/// (`"password"`, `'client_secret'`) or bare before `=` (`password=…`) and followed by
/// `:` or `=`, the value up to the next `,`, `}`, `&`, newline or closing quote is
/// replaced.
pub fn text(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    if !names_a_secret(&lower) {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let Some((name_end, quoted)) = secret_name_at(&lower, i) else {
            i += 1;
            continue;
        };
        // After the name: optional closing quote, spaces, then ':' or '='.
        let mut j = name_end;
        if quoted {
            j += 1;
        }
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if j >= bytes.len() || !(bytes[j] == b':' || bytes[j] == b'=') {
            i = name_end;
            continue;
        }
        j += 1;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        let (start, end) = value_span(bytes, j);
        out.push_str(&s[copied..start]);
        out.push_str(REDACTED);
        copied = end;
        i = end.max(i + 1);
    }
    out.push_str(&s[copied..]);
    out
}

/// If a secret's name starts at `i` (as a whole word, possibly opening with a quote),
/// where it ends and whether it was quoted.
fn secret_name_at(lower: &str, i: usize) -> Option<(usize, bool)> {
    let bytes = lower.as_bytes();
    let quoted = matches!(bytes[i], b'"' | b'\'');
    let start = if quoted { i + 1 } else { i };
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    if !quoted && i > 0 && (word(bytes[i - 1]) || bytes[i - 1] == b'"') {
        return None;
    }
    let end = start + bytes[start..].iter().take_while(|&&b| word(b)).count();
    let hit = end > start
        && is_secret_word(&lower[start..end])
        && (!quoted || bytes.get(end) == Some(&bytes[i]));
    hit.then_some((end, quoted))
}

/// The span of the value starting at `j`: a quoted string (to its closing quote, escapes
/// honoured), else everything up to a delimiter.
fn value_span(bytes: &[u8], j: usize) -> (usize, usize) {
    if j < bytes.len() && matches!(bytes[j], b'"' | b'\'') {
        let quote = bytes[j];
        let mut k = j + 1;
        while k < bytes.len() {
            match bytes[k] {
                b'\\' => k += 2,
                b if b == quote => return (j, k + 1),
                _ => k += 1,
            }
        }
        return (j, bytes.len());
    }
    let mut k = j;
    while k < bytes.len() && !matches!(bytes[k], b',' | b'}' | b']' | b'&' | b'\n' | b'\r' | b' ') {
        k += 1;
    }
    (j, k)
}

/// A path and query with the values of secret query parameters replaced.
pub fn path_and_query(pq: &str) -> String {
    let Some((path, query)) = pq.split_once('?') else {
        return pq.to_string();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_name(&decode(k)) => format!("{k}={REDACTED}"),
            Some((k, v))
                if decode(k).eq_ignore_ascii_case("filter")
                    && names_a_secret(&decode(v).to_ascii_lowercase()) =>
            {
                format!("{k}={REDACTED}")
            }
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

fn decode(s: &str) -> String {
    form_urlencoded::parse(s.as_bytes())
        .next()
        .map(|(k, _)| k.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "1mz050nq";

    fn redacted(v: Value) -> String {
        let out = body(v.to_string().as_bytes()).unwrap();
        assert!(!out.contains(SECRET), "{out}");
        out
    }

    #[test]
    fn okta_create_loses_its_password_and_keeps_the_rest() {
        let out = redacted(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "test.user@okta.local",
            "groups": [], "password": SECRET, "active": true
        }));
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["password"], REDACTED);
        assert_eq!(v["userName"], "test.user@okta.local");
        assert_eq!(v["groups"], json!([]));
    }

    #[test]
    fn passwords_anywhere_in_any_spelling() {
        redacted(json!({"Password": SECRET}));
        redacted(json!({"urn:ietf:params:scim:schemas:core:2.0:User:password": SECRET}));
        redacted(json!({"nested": [{"deep": {"PASSWORD": SECRET}}]}));
        redacted(json!({"client_secret": SECRET, "refresh_token": SECRET}));
        redacted(json!({"password": {"value": SECRET}}));
        // Whatever the casing convention of the sender.
        redacted(json!({"clientSecret": SECRET, "apiToken": SECRET}));
        redacted(json!({"x-api-key": SECRET, "newPassword": SECRET, "codeVerifier": SECRET}));
    }

    #[test]
    fn patch_operations_on_the_password() {
        for path in [
            "password",
            "Password",
            "urn:ietf:params:scim:schemas:core:2.0:User:password",
        ] {
            let out = redacted(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "Replace", "path": path, "value": SECRET}]
            }));
            assert!(out.contains(path), "the path stays: {out}");
        }
        // Entra's capitalised keys, and a value object carrying the password.
        redacted(json!({"Operations": [{"Op": "replace", "Path": "password", "Value": [SECRET]}]}));
        redacted(
            json!({"Operations": [{"op": "replace", "value": {"password": SECRET, "active": true}}]}),
        );
        // Other operations keep their values.
        let out = redacted(
            json!({"Operations": [{"op": "Replace", "path": "active", "value": "False"}]}),
        );
        assert!(out.contains("\"False\""), "{out}");
    }

    #[test]
    fn bodies_without_secrets_are_kept_byte_for_byte() {
        let raw = b"{ \"userName\" : \"a\",\n  \"active\": true }";
        assert_eq!(body(raw).unwrap().as_bytes(), raw);
        assert_eq!(body(b"  \n"), None);
        // A secret's name as a value, or escapes naming none: parsed, and still kept.
        for raw in [
            &br#"{"displayName": "Token Team", "title": "Password reset"}"#[..],
            br#"{"displayName": "caf\u00e9 \"bar\""}"#,
            br#"{"meta": {"version": "W/\"3\"", "location": "https:\/\/x\/Users\/1"}}"#,
        ] {
            assert_eq!(body(raw).unwrap().as_bytes(), raw);
        }
    }

    /// A name spelled with escapes is the same name once parsed: the search for names in
    /// the raw bytes must not let it through.
    #[test]
    fn secrets_named_with_escapes_are_redacted() {
        for raw in [
            &br#"{"userName": "a", "p\u0061ssword": "hunter2"}"#[..],
            br#"{"Operations": [{"op": "replace", "path": "\u0070assword", "value": "hunter2"}]}"#,
        ] {
            let out = body(raw).unwrap();
            assert!(!out.contains("hunter2"), "{out}");
            assert!(out.contains(REDACTED), "{out}");
        }
    }

    #[test]
    fn malformed_bodies_are_scrubbed_as_text() {
        for raw in [
            format!("{{\"userName\":\"a\",\"password\":\"{SECRET}\",,}}"),
            format!("{{\"password\": \"{SECRET}\"  "),
            format!("{{'password': '{SECRET}'}}"),
            format!("password={SECRET}&user=a"),
            format!("{{\"userName\":\"a\", \"PASSWORD\" :{SECRET}}}"),
            format!("{{\"client_secret\":\"{SECRET}\\\"more\"}}"),
            format!("{{\"clientSecret\":\"{SECRET}\",,"),
            format!("{{\"apiToken\": \"{SECRET}\""),
            format!("x-api-key={SECRET}&a=b"),
        ] {
            let out = body(raw.as_bytes()).unwrap();
            assert!(!out.contains(SECRET), "{raw} → {out}");
            assert!(out.contains(REDACTED), "{raw} → {out}");
        }
        // Names that merely contain a secret's name are left alone.
        assert_eq!(text("{\"passwordHint\":\"x\""), "{\"passwordHint\":\"x\"");
        assert_eq!(text("{\"userName\":\"token\"}"), "{\"userName\":\"token\"}");
    }

    /// What the probe found: a byte order mark (which the SCIM handlers skip, so the write
    /// succeeds), and broken bodies that hide the secret from a textual scrub.
    #[test]
    fn no_secret_survives_a_byte_order_mark_or_a_broken_body() {
        let patch = format!(
            "{{\"schemas\":[\"urn:ietf:params:scim:api:messages:2.0:PatchOp\"],\"Operations\":[{{\"op\":\"replace\",\"path\":\"password\",\"value\":\"{SECRET}\"}}]}}"
        );
        let marked = [&b"\xEF\xBB\xBF"[..], patch.as_bytes()].concat();
        let out = body(&marked).unwrap();
        assert!(!out.contains(SECRET) && out.contains(REDACTED), "{out}");
        let utf16: Vec<u8> = format!("{{\"password\":\"{SECRET}\"}}")
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        for raw in [
            format!("{patch},").into_bytes(),
            patch.as_bytes()[..patch.len() - 4].to_vec(),
            format!("{{\"urn:ietf:params:scim:schemas:core:2.0:User:password\":\"{SECRET}\",")
                .into_bytes(),
            format!("{{\"pass\\u0077ord\":\"{SECRET}\",").into_bytes(),
            format!("{{\"password\":[\"x\",\"{SECRET}\"],").into_bytes(),
            utf16,
            [&b"\xff\xfe"[..], SECRET.as_bytes()].concat(),
        ] {
            let out = body(&raw).unwrap();
            assert!(
                !out.contains(SECRET),
                "{} → {out}",
                String::from_utf8_lossy(&raw)
            );
        }
        // A broken body with no secret in it is kept whole.
        let raw = b"{\"userName\": \"a\",, }";
        assert_eq!(body(raw).unwrap().as_bytes(), raw);
    }

    /// SCIM refuses a filter on the password, but the request is recorded first.
    #[test]
    fn filters_comparing_a_secret_are_redacted() {
        redacted(
            json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                        "filter": format!("password eq \"{SECRET}\"")}),
        );
        let pq = format!("/scim/v2/Users?filter=password%20eq%20%22{SECRET}%22&count=1");
        let out = path_and_query(&pq);
        assert!(!out.contains(SECRET) && out.ends_with("&count=1"), "{out}");
        // Other filters stay as they are.
        let pq = "/scim/v2/Users?filter=userName%20eq%20%22ada%22";
        assert_eq!(path_and_query(pq), pq);
    }

    #[test]
    fn secret_query_parameters() {
        assert_eq!(
            path_and_query("/scim/v2/Users?access_token=abc&filter=userName%20eq%20%22x%22"),
            format!("/scim/v2/Users?access_token={REDACTED}&filter=userName%20eq%20%22x%22")
        );
        assert_eq!(
            path_and_query("/scim/v2/Users?aadOptscim062020"),
            "/scim/v2/Users?aadOptscim062020"
        );
        assert_eq!(path_and_query("/scim/v2/Users"), "/scim/v2/Users");
    }
}
