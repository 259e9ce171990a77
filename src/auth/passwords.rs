//! Admin passwords: argon2id hashes in PHC format; the password is never stored or logged.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;

/// Shortest password accepted for an admin account.
pub const MIN_LENGTH: usize = 10;
/// Longest password accepted (hashing cost must stay bounded).
pub const MAX_LENGTH: usize = 1024;

/// Runs of keys and letters that make long passwords quick to guess (a password that is
/// a piece of one, read either way, is refused).
const SEQUENCES: [&str; 5] = [
    "01234567890",
    "abcdefghijklmnopqrstuvwxyz",
    "qwertyuiopasdfghjklzxcvbnm",
    "qwertzuiopasdfghjklyxcvbnm",
    "azertyuiopqsdfghjklmwxcvbn",
];

/// Words that guessers try first: with digits and symbols around them, still first.
const FIRST_GUESSES: [&str; 12] = [
    "password",
    "passwort",
    "admin",
    "administrator",
    "welcome",
    "letmein",
    "changeme",
    "iloveyou",
    "qwerty",
    "secret",
    "scimd",
    "monkey",
];

/// Why a new password for admin `username` is refused, in words for the admin. Beyond
/// its length, the checks NIST SP 800-63B §3.1.1.2 asks for without a breach corpus at
/// hand: no repetition of a few characters, no run of the keyboard or the alphabet, not
/// the account's name, not a first-guess word dressed up with digits.
pub fn check_policy(username: &str, password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_LENGTH {
        return Err(format!(
            "the password must have at least {MIN_LENGTH} characters"
        ));
    }
    if password.len() > MAX_LENGTH {
        return Err(format!("the password must have at most {MAX_LENGTH} bytes"));
    }
    let lower = password.to_lowercase();
    let distinct: std::collections::HashSet<char> = lower.chars().collect();
    let guessable = distinct.len() < 5
        || SEQUENCES.iter().any(|run| {
            let back: String = run.chars().rev().collect();
            run.contains(&lower) || back.contains(&lower)
        })
        || {
            let letters: String = lower.chars().filter(|c| c.is_alphabetic()).collect();
            FIRST_GUESSES.contains(&letters.as_str())
        }
        || {
            let name = username.trim().to_lowercase();
            name.chars().count() >= 3 && lower.contains(&name)
        };
    if guessable {
        return Err(
            "the password is too easy to guess: avoid repeated characters, keyboard runs, \
             the account's name and common words; a few unrelated words make a good one"
                .into(),
        );
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
        assert!(check_policy("ada", "short").is_err());
        assert!(check_policy("ada", "long enough sentence").is_ok());
        assert!(check_policy("ada", "correct horse battery").is_ok());
        for weak in [
            "aaaaaaaaaa",
            "abababababab",
            "1234567890",
            "0987654321",
            "qwertyuiop",
            "QWERTYUIOPASDF",
            "Password123!",
            "admin2026!!",
            "ada-lovelace-1815",
        ] {
            assert!(check_policy("ada", weak).is_err(), "{weak}");
        }
    }
}
