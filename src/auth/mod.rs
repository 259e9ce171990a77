//! Credentials: SCIM bearer tokens (and, later, admin passwords, sessions and OAuth grants).
//! Pure: generating and hashing secrets; `db` stores only the hashes.

pub mod tokens;
