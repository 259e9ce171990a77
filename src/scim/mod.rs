//! The SCIM protocol, pure: schemas, resources, filters, PATCH, errors, discovery.
//! Nothing here performs I/O; `http` parses requests into these types and `db` stores them.

pub mod datetime;
pub mod discovery;
pub mod error;
pub mod filter;
pub mod idp;
pub mod list;
pub mod patch;
pub mod path;
pub mod projection;
pub mod redact;
pub mod resource;
pub mod schema;

pub use error::{ScimError, ScimType};
