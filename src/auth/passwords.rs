//! Admin passwords: argon2id hashes in PHC format; the password is never stored or logged.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;

/// Shortest password accepted for an admin account.
pub const MIN_LENGTH: usize = 10;
/// Longest password accepted (hashing cost must stay bounded).
pub const MAX_LENGTH: usize = 1024;

/// Why a new password is refused, in words for the admin.
pub fn check_policy(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_LENGTH {
        return Err(format!(
            "the password must have at least {MIN_LENGTH} characters"
        ));
    }
    if password.len() > MAX_LENGTH {
        return Err(format!("the password must have at most {MAX_LENGTH} bytes"));
    }
    Ok(())
}

/// The argon2id hash of `password` with a fresh random salt.
pub fn hash(password: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let salt = SaltString::encode_b64(&bytes).expect("16 bytes is a valid salt length");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters and a valid salt cannot fail")
        .to_string()
}

/// Whether `password` matches `phc`. Pass `None` for an unknown user: the same work is
/// done against a fixed hash, so response time does not reveal which usernames exist.
pub fn verify(password: &str, phc: Option<&str>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash("not-a-real-password-for-timing"));
    let (phc, real) = match phc {
        Some(p) => (p, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && real
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_by_salt() {
        let a = hash("correct horse battery");
        let b = hash("correct horse battery");
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", Some(&a)));
        assert!(!verify("wrong horse battery", Some(&a)));
        assert!(!verify("correct horse battery", None));
        assert!(check_policy("short").is_err());
        assert!(check_policy("long enough password").is_ok());
    }
}
