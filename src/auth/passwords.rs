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

/// The names an admin account may have: 1 to 64 letters, digits and `.` `_` `-` `@` `+`
/// (an email address fits). A name is shown in pages, audit targets (`admin/<name>`) and
/// logs, where slashes, spaces and markup would only mislead.
pub fn check_username(name: &str) -> Result<(), String> {
    let fits = |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+');
    if name.is_empty() || name.chars().count() > 64 || !name.chars().all(fits) {
        return Err(format!(
            "{name:?} is not a usable admin name: use 1 to 64 letters, digits and . _ - @ +"
        ));
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
    fn admin_names_are_plain_words_or_addresses() {
        for ok in ["alice", "a.b-c_d", "ops+scim@example.com", "Zoë"] {
            assert!(check_username(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "bad name/<x>",
            "a b",
            "x/y",
            &"a".repeat(65),
            "<script>",
        ] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
    }

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
