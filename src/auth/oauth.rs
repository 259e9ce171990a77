//! OAuth 2.0 vocabulary, pure: grant types, generated credentials, PKCE (RFC 7636), HTTP
//! Basic client authentication (RFC 6749 §2.3.1), redirect URI rules and scopes.
//!
//! scimd is the authorization server of its own SCIM API. Its credentials are opaque random
//! strings stored as SHA-256 hashes, like SCIM tokens: client secrets, authorization codes,
//! access tokens and refresh tokens each carry a recognisable prefix.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use super::tokens::{self, NewToken};

/// How long an access token lives: one hour (Entra's gallery validator expects 60–360
/// minutes; Okta refreshes when it expires).
pub const ACCESS_TOKEN_SECS: i64 = 3600;
/// How long a refresh token lives. Every refresh issues a new one, so an IdP that keeps
/// provisioning never sees it expire; a connection idle for longer must be re-approved.
pub const REFRESH_TOKEN_DAYS: i64 = 90;
/// A spent refresh token presented again this soon after its rotation, when nothing the
/// rotation issued has been used yet, is a client retrying after a lost answer: it works
/// once more (the lost tokens are revoked) instead of revoking the grant.
pub const REFRESH_RETRY_GRACE_SECS: i64 = 60;
/// How long an authorization code may wait for its exchange.
pub const CODE_SECS: i64 = 300;

/// The one scope scimd grants: the tenant's SCIM API.
pub const SCOPE: &str = "scim";

/// Prefixes of the generated credentials, after [`tokens::TOKEN_PREFIX`]. Access tokens
/// start with `scimd_` like SCIM tokens, so a bare token in the Authorization header (as
/// some IdP forms send it) is recognised as either.
const CLIENT_SECRET_PREFIX: &str = "scimd_cs_";
const ACCESS_TOKEN_PREFIX: &str = "scimd_at_";
const REFRESH_TOKEN_PREFIX: &str = "scimd_rt_";
const CODE_PREFIX: &str = "scimd_ac_";

/// A grant type of the token endpoint (RFC 6749 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }

    /// The grant types a client can be registered for; `refresh_token` comes with
    /// `authorization_code`.
    pub const REGISTRABLE: [GrantType; 2] =
        [GrantType::AuthorizationCode, GrantType::ClientCredentials];
}

impl FromStr for GrantType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "authorization_code" => Ok(GrantType::AuthorizationCode),
            "refresh_token" => Ok(GrantType::RefreshToken),
            "client_credentials" => Ok(GrantType::ClientCredentials),
            other => Err(format!(
                "unknown grant type {other:?}: expected authorization_code or client_credentials"
            )),
        }
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The two kinds of token the token endpoint issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }
}

impl FromStr for TokenKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "access" => Ok(TokenKind::Access),
            "refresh" => Ok(TokenKind::Refresh),
            other => Err(format!("unknown token kind {other:?}")),
        }
    }
}

/// The error codes of RFC 6749 §4.1.2.1 and §5.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    AccessDenied,
    UnsupportedResponseType,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
        }
    }
}

/// A new client identifier: public, so it only needs to be unique and unguessable enough
/// not to collide.
pub fn generate_client_id() -> String {
    format!("scimd-{}", super::random_hex(12))
}

fn generate(prefix: &str) -> NewToken {
    let secret = format!("{prefix}{}", super::random_hex(32));
    NewToken {
        prefix: secret[..prefix.len() + 6].to_string(),
        hash: tokens::hash(&secret),
        secret,
    }
}

/// A client secret: 256 random bits, shown once.
pub fn generate_client_secret() -> NewToken {
    generate(CLIENT_SECRET_PREFIX)
}

pub fn generate_code() -> NewToken {
    generate(CODE_PREFIX)
}

pub fn generate_token(kind: TokenKind) -> NewToken {
    generate(match kind {
        TokenKind::Access => ACCESS_TOKEN_PREFIX,
        TokenKind::Refresh => REFRESH_TOKEN_PREFIX,
    })
}

// --- PKCE (RFC 7636) ------------------------------------------------------------------------

/// Whether `s` is 43 to 128 characters of the unreserved set, the syntax of both a code
/// verifier (§4.1) and a code challenge (§4.2).
fn pkce_syntax(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Checks an authorization request's PKCE parameters. Only `S256` is offered: `plain`
/// (also the default when the method is omitted) protects nothing that S256 does not.
pub fn check_challenge(challenge: Option<&str>, method: Option<&str>) -> Result<(), String> {
    match (challenge, method) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err("code_challenge_method without code_challenge".into()),
        (Some(_), None | Some("plain")) => {
            Err("code_challenge_method must be S256; plain is not supported".into())
        }
        (Some(c), Some("S256")) if pkce_syntax(c) => Ok(()),
        (Some(_), Some("S256")) => Err("malformed code_challenge".into()),
        (Some(_), Some(m)) => Err(format!("unsupported code_challenge_method {m:?}")),
    }
}

/// BASE64URL(SHA256(verifier)) = challenge (RFC 7636 §4.6), compared in constant time.
pub fn verify_pkce(verifier: &str, challenge: &str) -> bool {
    if !pkce_syntax(verifier) {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    super::constant_time_eq(&computed, challenge)
}

/// The S256 challenge of `verifier`: what a client sends (tests use it).
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

// --- Client authentication ------------------------------------------------------------------

/// Client id and secret from an `Authorization: Basic …` value (RFC 6749 §2.3.1: each
/// form-urlencoded, then joined by `:` and base64-encoded). `None` when the header uses
/// another scheme; `Some(Err)` when it is Basic but malformed.
pub fn parse_basic(value: &str) -> Option<Result<(String, String), ()>> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let parsed = (|| {
        let decoded = STANDARD.decode(rest.trim()).map_err(|_| ())?;
        let decoded = String::from_utf8(decoded).map_err(|_| ())?;
        let (id, secret) = decoded.split_once(':').ok_or(())?;
        let (id, secret) = (form_decode(id)?, form_decode(secret)?);
        if id.is_empty() {
            return Err(());
        }
        Ok((id, secret))
    })();
    Some(parsed)
}

/// Decodes one application/x-www-form-urlencoded component.
fn form_decode(s: &str) -> Result<String, ()> {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| ())
}

/// Whether a presented client secret hashes to the stored hash, in constant time.
pub fn secret_matches(presented: &str, stored_hash: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    let h = tokens::hash(presented);
    h.len() == stored_hash.len() && bool::from(h.ct_eq(stored_hash))
}

// --- Redirect URIs --------------------------------------------------------------------------

/// Longest redirect URI accepted at registration.
const MAX_REDIRECT_URI: usize = 2000;

/// Checks a redirect URI for registration: absolute, `https` (or `http` to a loopback
/// host, for tests and local tools), no fragment (RFC 6749 §3.1.2), no user info.
pub fn validate_redirect_uri(uri: &str) -> Result<(), String> {
    if uri.len() > MAX_REDIRECT_URI {
        return Err(format!(
            "redirect URI longer than {MAX_REDIRECT_URI} characters"
        ));
    }
    if !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "redirect URI {uri:?} must be ASCII without spaces (percent-encode the rest)"
        ));
    }
    let parsed =
        url::Url::parse(uri).map_err(|e| format!("redirect URI {uri:?} is not a URL: {e}"))?;
    let loopback = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(format!(
                "redirect URI {uri:?} must use https (http only to localhost)"
            ));
        }
    }
    if parsed.fragment().is_some() || uri.contains('#') {
        return Err(format!("redirect URI {uri:?} must not contain a fragment"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!("redirect URI {uri:?} must not contain user info"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("redirect URI {uri:?} has no host"));
    }
    // URL parsers forgive `https:/host` and `https:host`, but it is matched as written,
    // character for character: written as IdPs send it, or refused.
    if !uri[parsed.scheme().len()..].starts_with("://") {
        return Err(format!(
            "redirect URI {uri:?} must start with {}://",
            parsed.scheme()
        ));
    }
    Ok(())
}

/// Which redirect URI an authorization request means: the one it names, if registered
/// exactly (character for character); the only registered one when it names none.
pub fn resolve_redirect_uri<'a>(
    registered: &'a [String],
    requested: Option<&str>,
) -> Option<&'a String> {
    match requested {
        Some(r) => registered.iter().find(|u| u.as_str() == r),
        None if registered.len() == 1 => registered.first(),
        None => None,
    }
}

/// `uri` with `params` appended to its query, keeping any query it already has.
pub fn with_params(uri: &str, params: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        query.append_pair(k, v);
    }
    let sep = match uri.find('?') {
        None => "?",
        Some(_) if uri.ends_with('?') || uri.ends_with('&') => "",
        Some(_) => "&",
    };
    format!("{uri}{sep}{}", query.finish())
}

/// The origin (`scheme://host[:port]`) of a redirect URI, as a CSP source expression.
pub fn origin(uri: &str) -> Option<String> {
    let o = url::Url::parse(uri).ok()?.origin();
    o.is_tuple().then(|| o.ascii_serialization())
}

/// Checks a client registration: a name, at least one grant type, and valid redirect URIs
/// (at least one for the authorization-code grant). Returns the distinct URIs in order.
pub fn check_registration(
    name: &str,
    grants: &[GrantType],
    redirect_uris: &[String],
) -> Result<Vec<String>, String> {
    if name.trim().is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err("give the app a name of 1 to 100 characters".into());
    }
    if grants.is_empty() {
        return Err("choose at least one grant type".into());
    }
    if grants.contains(&GrantType::RefreshToken) {
        return Err("refresh_token comes with authorization_code; register that instead".into());
    }
    let mut uris: Vec<String> = Vec::new();
    for uri in redirect_uris {
        validate_redirect_uri(uri)?;
        if !uris.contains(uri) {
            uris.push(uri.clone());
        }
    }
    if uris.len() > 10 {
        return Err("register at most 10 redirect URIs".into());
    }
    if grants.contains(&GrantType::AuthorizationCode) && uris.is_empty() {
        return Err(
            "the authorization-code grant needs a redirect URI (Okta's is \
             https://system-admin.okta.com/admin/app/cpc/<instance>_<app>/oauth/callback)"
                .into(),
        );
    }
    Ok(uris)
}

// --- Scopes ---------------------------------------------------------------------------------

/// The scope granted for any requested `scope` parameter: `scim`, the only one there is.
/// Scopes scimd does not know are ignored, as RFC 6749 §3.3 lets a server do: IdPs let an
/// admin type any (PingOne, comma-separated), and a connection refused over a word in that
/// field reads, at the IdP, like a bad secret. Nothing more is granted than `scim`, and the
/// token answer says so (`scope`), so a client that asked for more learns it did not get it.
pub fn grant_scope(_requested: Option<&str>) -> String {
    SCOPE.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_the_rfc_7636_example() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(s256(verifier), challenge);
        assert!(verify_pkce(verifier, challenge));
        assert!(!verify_pkce(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
            challenge
        ));
        assert!(!verify_pkce("short", &s256("short")), "verifier too short");
        assert!(!verify_pkce(&"a".repeat(129), &s256(&"a".repeat(129))));
        assert!(!verify_pkce(
            "dBjftJeZ4CVP-mJ0kTpXAQRsh8sQ5WJZKqhTmRZAJY+",
            &s256("dBjftJeZ4CVP-mJ0kTpXAQRsh8sQ5WJZKqhTmRZAJY+")
        ));
    }

    #[test]
    fn only_s256_challenges_are_accepted() {
        let c = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(check_challenge(None, None).is_ok());
        assert!(check_challenge(Some(c), Some("S256")).is_ok());
        assert!(check_challenge(Some(c), None).is_err(), "plain by default");
        assert!(check_challenge(Some(c), Some("plain")).is_err());
        assert!(check_challenge(Some(c), Some("s256")).is_err());
        assert!(check_challenge(Some("x"), Some("S256")).is_err());
        assert!(check_challenge(None, Some("S256")).is_err());
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let b = |s: &str| format!("Basic {}", STANDARD.encode(s));
        assert_eq!(
            parse_basic(&b("scimd-abc:scimd_cs_123")),
            Some(Ok(("scimd-abc".into(), "scimd_cs_123".into())))
        );
        // RFC 6749 §2.3.1: id and secret are form-urlencoded before joining.
        assert_eq!(
            parse_basic(&b("a%3Ab:p%40ss+word%25")),
            Some(Ok(("a:b".into(), "p@ss word%".into())))
        );
        // The secret may contain a colon; only the first one separates.
        assert_eq!(
            parse_basic(&b("id:se:cret")),
            Some(Ok(("id".into(), "se:cret".into())))
        );
        assert_eq!(
            parse_basic(&format!("basic   {}", STANDARD.encode("id:s"))),
            Some(Ok(("id".into(), "s".into())))
        );
        assert_eq!(parse_basic("Bearer xyz"), None);
        assert_eq!(parse_basic("Basic !!!"), Some(Err(())));
        assert_eq!(parse_basic(&b("no-colon")), Some(Err(())));
        assert_eq!(parse_basic(&b(":secret")), Some(Err(())));
        assert_eq!(parse_basic(&b("id:%ZZ%FF")), Some(Err(())));
    }

    #[test]
    fn redirect_uris_match_exactly() {
        let okta = "https://system-admin.okta.com/admin/app/cpc/mycompany_knak_1/oauth/callback";
        assert!(validate_redirect_uri(okta).is_ok());
        assert!(validate_redirect_uri("http://127.0.0.1:9999/cb").is_ok());
        assert!(validate_redirect_uri("http://localhost/cb").is_ok());
        assert!(validate_redirect_uri("http://example.com/cb").is_err());
        assert!(validate_redirect_uri("https://example.com/cb#x").is_err());
        assert!(validate_redirect_uri("https://u:p@example.com/cb").is_err());
        assert!(validate_redirect_uri("/relative").is_err());
        assert!(validate_redirect_uri("javascript:alert(1)").is_err());
        assert!(validate_redirect_uri("https://example.com/caf\u{e9}").is_err());
        assert!(validate_redirect_uri("https://example.com/a b").is_err());
        assert!(validate_redirect_uri("https:/example.com/cb").is_err());
        assert!(validate_redirect_uri("https:example.com/cb").is_err());
        assert!(validate_redirect_uri("HTTPS://example.com/cb").is_ok());

        let registered = vec![okta.to_string(), "https://b.example/cb".to_string()];
        assert_eq!(
            resolve_redirect_uri(&registered, Some(okta)),
            Some(&registered[0])
        );
        for near in [
            "https://system-admin.okta.com/admin/app/cpc/mycompany_knak_1/oauth/callback/",
            "https://SYSTEM-ADMIN.okta.com/admin/app/cpc/mycompany_knak_1/oauth/callback",
            "https://system-admin.okta.com/admin/app/cpc/mycompany_knak_1/oauth/callback?x=1",
            "https://system-admin.okta.com/admin/app/cpc/mycompany_knak_2/oauth/callback",
        ] {
            assert_eq!(
                resolve_redirect_uri(&registered, Some(near)),
                None,
                "{near}"
            );
        }
        assert_eq!(
            resolve_redirect_uri(&registered, None),
            None,
            "two registered"
        );
        assert_eq!(
            resolve_redirect_uri(&registered[..1], None),
            Some(&registered[0])
        );
        assert_eq!(resolve_redirect_uri(&[], None), None);
    }

    #[test]
    fn redirects_keep_the_registered_query_and_origins_are_csp_sources() {
        assert_eq!(
            with_params("https://a.example/cb", &[("code", "c 1"), ("state", "s&t")]),
            "https://a.example/cb?code=c+1&state=s%26t"
        );
        assert_eq!(
            with_params("https://a.example/cb?tenant=1", &[("code", "c")]),
            "https://a.example/cb?tenant=1&code=c"
        );
        assert_eq!(
            origin("https://system-admin.okta.com/admin/app/cpc/x_y/oauth/callback").as_deref(),
            Some("https://system-admin.okta.com")
        );
        assert_eq!(
            origin("http://127.0.0.1:8123/cb").as_deref(),
            Some("http://127.0.0.1:8123")
        );
    }

    #[test]
    fn registrations_need_a_name_a_grant_and_redirect_uris_for_codes() {
        let okta =
            "https://system-admin.okta.com/admin/app/cpc/acme_app/oauth/callback".to_string();
        let code = [GrantType::AuthorizationCode];
        assert_eq!(
            check_registration("Okta", &code, &[okta.clone(), okta.clone()]).unwrap(),
            vec![okta.clone()]
        );
        assert!(check_registration("Okta", &code, &[]).is_err());
        assert!(check_registration("", &code, std::slice::from_ref(&okta)).is_err());
        assert!(check_registration("Entra", &[], &[]).is_err());
        assert!(check_registration("Entra", &[GrantType::ClientCredentials], &[]).is_ok());
        assert!(
            check_registration("x", &[GrantType::RefreshToken], std::slice::from_ref(&okta))
                .is_err()
        );
        assert!(check_registration("Okta", &code, &["http://example.com/cb".to_string()]).is_err());
    }

    #[test]
    fn scim_is_the_only_scope() {
        for requested in [
            None,
            Some(""),
            Some("scim"),
            Some("scim,scim"),
            Some("scim admin"),
            Some("openid"),
        ] {
            assert_eq!(grant_scope(requested), "scim", "{requested:?}");
        }
    }

    #[test]
    fn generated_credentials_are_prefixed_and_distinct() {
        let a = generate_token(TokenKind::Access);
        let r = generate_token(TokenKind::Refresh);
        assert!(a.secret.starts_with("scimd_at_") && r.secret.starts_with("scimd_rt_"));
        assert!(a.secret.starts_with(tokens::TOKEN_PREFIX));
        assert!(a.secret.starts_with(&a.prefix) && a.prefix.len() == 15);
        let s = generate_client_secret();
        assert!(secret_matches(&s.secret, &s.hash));
        assert!(!secret_matches("scimd_cs_nope", &s.hash));
        assert_ne!(generate_client_id(), generate_client_id());
    }
}
