//! SCIM bearer tokens: 256 random bits, shown once, stored as SHA-256.
//!
//! A presented token is hashed and looked up by its hash through a unique index, so the
//! secret itself is never compared byte by byte and a timing difference could only reveal
//! something about a SHA-256 digest, which is useless to an attacker.

use sha2::{Digest, Sha256};

/// Every token starts with this, so secret scanners and humans recognise it.
pub const TOKEN_PREFIX: &str = "scimd_";

/// How many leading characters of a token are kept in clear for recognition.
const VISIBLE_CHARS: usize = TOKEN_PREFIX.len() + 6;

/// A freshly generated token. `secret` is shown to the admin once and then dropped.
pub struct NewToken {
    pub secret: String,
    pub prefix: String,
    pub hash: [u8; 32],
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("secret", &"<redacted>")
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// Every app API key starts with this: recognisable, and never mistaken for a SCIM token.
pub const API_KEY_PREFIX: &str = "scimd_key_";

/// Generates a SCIM token from the operating system's CSPRNG.
pub fn generate() -> NewToken {
    generate_with(TOKEN_PREFIX)
}

/// Generates an app API key.
pub fn generate_api_key() -> NewToken {
    generate_with(API_KEY_PREFIX)
}

/// 256 random bits after `prefix`, with the first characters kept in clear.
fn generate_with(prefix: &str) -> NewToken {
    let secret = format!("{prefix}{}", super::random_hex(32));
    NewToken {
        prefix: secret[..prefix.len() + VISIBLE_CHARS - TOKEN_PREFIX.len()].to_string(),
        hash: hash(&secret),
        secret,
    }
}

/// The stored form of a token.
pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hash_to_what_is_stored() {
        let a = generate();
        let b = generate();
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.secret.len(), TOKEN_PREFIX.len() + 64);
        assert!(a.secret.starts_with(&a.prefix));
        assert_eq!(hash(&a.secret), a.hash);
        assert!(!format!("{a:?}").contains(&a.secret));
    }
}
