//! Webhook secrets and signatures (Standard Webhooks 1.0), and the rule for which addresses
//! a webhook may reach. Pure: the sender in `http::webhooks` applies them.
//!
//! A secret is `whsec_` followed by 32 random bytes in base64; the key is those bytes. A
//! request is signed by `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")); during a
//! rotation's overlap both signatures are sent, separated by a space.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// What every webhook secret starts with, as the Standard Webhooks libraries expect.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new secret: 32 random bytes from the CSPRNG.
pub fn generate_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", B64.encode(key))
}

/// A secret that is not `whsec_` + base64.
#[derive(Debug, thiserror::Error)]
#[error("a webhook secret is whsec_ followed by base64")]
pub struct BadSecret;

/// The `webhook-signature` value of one secret: `v1,<base64 HMAC-SHA256>`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, BadSecret> {
    let mut mac = mac(secret)?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Ok(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
}

/// The `WorkOS-Signature` value for a WorkOS-format endpoint: `t=<unix ms>, v1=<lowercase
/// hex HMAC-SHA256 of "{t}.{body}">`, keyed with the secret's UTF-8 bytes, as the WorkOS
/// SDKs' `verify_event` / `constructEvent` check it.
pub fn sign_workos(secret: &str, timestamp_ms: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any size");
    mac.update(format!("{timestamp_ms}.").as_bytes());
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={timestamp_ms}, v1={hex}")
}

fn mac(secret: &str) -> Result<Hmac<Sha256>, BadSecret> {
    let key = B64
        .decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
        .map_err(|_| BadSecret)?;
    Hmac::<Sha256>::new_from_slice(&key).map_err(|_| BadSecret)
}

/// Whether `header` (space-separated `v1,…` signatures) holds a valid signature of
/// `id`, `timestamp` and `body` by `secret`, compared in constant time. (The receiver's
/// side, for tests and for anyone checking a captured request.)
pub fn verify(secret: &str, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let Ok(expected) = sign(secret, id, timestamp, body) else {
        return false;
    };
    header
        .split(' ')
        .any(|candidate| super::constant_time_eq(candidate, &expected))
}

/// Whether a webhook must never reach `ip`: link-local addresses (169.254.0.0/16, where
/// cloud metadata services answer, and fe80::/10) and the other metadata addresses
/// (AWS's fd00:ec2::254, Alibaba's 100.100.100.200). Loopback and private ranges stay
/// allowed: receivers often run on the same host or LAN. An IPv6 address that carries an
/// IPv4 one (mapped, compatible, NAT64's prefixes, 6to4) is judged by the IPv4 address a
/// gateway would reach.
pub fn forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local() || v4.octets() == [100, 100, 100, 200],
        IpAddr::V6(v6) => {
            if embedded_ipv4(v6)
                .into_iter()
                .any(|v4| forbidden_ip(IpAddr::V4(v4)))
            {
                return true;
            }
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    == "fd00:ec2::254"
                        .parse::<std::net::Ipv6Addr>()
                        .expect("an address")
        }
    }
}

/// The IPv4 addresses an IPv6 address may carry: `::ffff:a.b.c.d` (mapped),
/// `::ffff:0:a.b.c.d` (translated), `::a.b.c.d` (compatible, not `::` nor `::1`), NAT64's
/// `64:ff9b::/96` (RFC 6052) and `64:ff9b:1::/48` (RFC 8215, in the /96 and /48 layouts),
/// 6to4's `2002:AABB:CCDD::/48` (RFC 3056), and Teredo's server and client (RFC 4380).
fn embedded_ipv4(v6: std::net::Ipv6Addr) -> Vec<std::net::Ipv4Addr> {
    use std::net::Ipv4Addr;
    let s = v6.segments();
    let bits = u128::from(v6);
    let last = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    let of = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] => vec![last],
        [0, 0, 0, 0, 0, 0, hi, _] if hi != 0 => vec![last],
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => vec![last],
        // /48: the address's first half in bits 48–63, its second in bits 72–87.
        [0x64, 0xff9b, 1, a, b, c, _, _] => vec![last, of(a, (b << 8) | (c >> 8))],
        [0x2002, hi, lo, ..] => vec![of(hi, lo)],
        [0x2001, 0, hi, lo, ..] => vec![of(hi, lo), Ipv4Addr::from(!((bits & 0xffff_ffff) as u32))],
        _ => Vec::new(),
    }
}

/// The longest receiver URL, in characters: what browsers and proxies take, and what
/// pages that list endpoints can show.
pub const MAX_URL: usize = 2000;

/// Why a webhook URL is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadUrl {
    #[error("a webhook URL is an absolute http:// or https:// URL")]
    NotHttp,
    #[error("a webhook URL is at most {MAX_URL} characters")]
    TooLong,
    #[error("webhooks may not reach link-local or cloud metadata addresses ({0})")]
    Forbidden(IpAddr),
}

/// Checks a receiver URL: http(s), with a host, and not a forbidden literal address (a
/// name is checked again after every DNS resolution, when the sender connects).
pub fn check_url(raw: &str) -> Result<url::Url, BadUrl> {
    if raw.trim().chars().count() > MAX_URL {
        return Err(BadUrl::TooLong);
    }
    let url = url::Url::parse(raw.trim()).map_err(|_| BadUrl::NotHttp)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(BadUrl::NotHttp);
    }
    match url.host() {
        None => Err(BadUrl::NotHttp),
        Some(url::Host::Ipv4(ip)) if forbidden_ip(ip.into()) => Err(BadUrl::Forbidden(ip.into())),
        Some(url::Host::Ipv6(ip)) if forbidden_ip(ip.into()) => Err(BadUrl::Forbidden(ip.into())),
        Some(_) => Ok(url),
    }
}

/// A receiver URL split for sending: the URL without `user:password@`, and those
/// credentials as an HTTP Basic `Authorization` value (RFC 7617), as curl and browsers
/// send them. A receiver behind basic auth is configured by its URL alone.
pub fn split_credentials(raw: &str) -> (String, Option<String>) {
    let Ok(mut url) = url::Url::parse(raw) else {
        return (raw.to_string(), None);
    };
    if url.username().is_empty() && url.password().is_none() {
        return (raw.to_string(), None);
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let user = decode(url.username());
    let password = url.password().map(decode).unwrap_or_default();
    // Cannot fail on an http(s) URL with a host, which is all `check_url` lets in.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let basic = format!("Basic {}", B64.encode(format!("{user}:{password}")));
    (url.to_string(), Some(basic))
}

/// A receiver URL as the admin pages, the CLI, the audit log and the server's log show it:
/// a password in it replaced by `****`, so it is never shown or kept anywhere but the
/// endpoint's own row.
pub fn shown_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("****"));
            url.to_string()
        }
        _ => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_url_become_basic_auth_and_are_never_shown() {
        let (url, auth) = split_credentials("https://hook%20user:p%40ss:w@example.com:8443/in?x=1");
        assert_eq!(url, "https://example.com:8443/in?x=1");
        // base64("hook user:p@ss:w")
        assert_eq!(auth.as_deref(), Some("Basic aG9vayB1c2VyOnBAc3M6dw=="));
        assert_eq!(
            split_credentials("https://example.com/in"),
            ("https://example.com/in".into(), None)
        );
        assert_eq!(
            shown_url("https://hook:s3cret@example.com/in"),
            "https://hook:****@example.com/in"
        );
        assert_eq!(
            shown_url("https://hook@example.com/in"),
            "https://hook@example.com/in"
        );
        assert_eq!(shown_url("not a url"), "not a url");
    }

    /// The vector of the Standard Webhooks reference libraries (and of
    /// `standardwebhooks.Webhook(secret).sign(...)` in Python).
    #[test]
    fn signs_the_standard_webhooks_reference_vector() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let (id, ts, body) = (
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        let sig = sign(secret, id, ts, body).unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(secret, id, ts, body, &format!("v1,bm90IGl0 {sig}")));
        assert!(!verify(secret, id, ts + 1, body, &sig));
        assert!(!verify(secret, id, ts, b"{}", &sig));
    }

    #[test]
    fn secrets_are_32_random_bytes() {
        let (a, b) = (generate_secret(), generate_secret());
        assert_ne!(a, b);
        let key = B64.decode(a.strip_prefix(SECRET_PREFIX).unwrap()).unwrap();
        assert_eq!(key.len(), 32);
        assert!(sign("whsec_not base64!", "x", 1, b"").is_err());
    }

    #[test]
    fn link_local_and_metadata_addresses_are_refused_private_ones_allowed() {
        for bad in [
            "http://169.254.169.254/latest/meta-data",
            "http://169.254.1.1:8080/",
            "http://[fe80::1]/",
            "http://[fd00:ec2::254]/",
            "http://100.100.100.200/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::169.254.169.254]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[64:ff9b:1::a9fe:a9fe]/",
            "http://[2002:a9fe:a9fe::1]/",
            "http://[64:ff9b:1:a9fe:a9:fe00::]/",
            "http://[::ffff:0:a9fe:a9fe]/",
            "http://[2001:0:a9fe:a9fe::1]/",
            "http://[2001:0:4136:e378:8000:63bf:5601:5601]/",
        ] {
            assert!(matches!(check_url(bad), Err(BadUrl::Forbidden(_))), "{bad}");
        }
        for bad in ["ftp://x/", "not a url", "file:///etc/passwd"] {
            assert_eq!(check_url(bad), Err(BadUrl::NotHttp), "{bad}");
        }
        let long = format!("https://hooks.example.com/{}", "a".repeat(MAX_URL));
        assert_eq!(check_url(&long), Err(BadUrl::TooLong));
        assert!(check_url(&long[..MAX_URL]).is_ok());
        for ok in [
            "http://127.0.0.1:9000/hook",
            "http://10.0.0.5/",
            "http://192.168.1.2/",
            "https://hooks.example.com/scimd",
            "http://[::1]:8080/",
            "http://[64:ff9b::a00:5]/",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
    }
}
