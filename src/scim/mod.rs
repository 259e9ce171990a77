//! The SCIM protocol, pure: schemas, resources, filters, PATCH, errors, discovery.
//! Nothing here performs I/O; `http` parses requests into these types and `db` stores them.

pub mod datetime;
pub mod error;
pub mod filter;
pub mod patch;
pub mod path;
pub mod resource;
pub mod schema;

pub use error::{ScimError, ScimType};
