//! scimd — a self-hosted SCIM 2.0 provisioning appliance: one binary, one SQLite file.
//!
//! # Layout
//!
//! - [`cli`]: the `scimd` command line (serve, token, tenant, admin, sync, members, roles, audit,
//!   oauth, webhook).
//! - [`config`]: flags and `SCIMD_*` environment, validated once.
//! - [`server`]: the accept loop and graceful shutdown around the HTTP service.
//! - [`http`]: the only module that knows hyper: routing, SCIM endpoints, error bodies.
//! - [`scim`]: the SCIM protocol, pure: schemas, resources, filters, PATCH, discovery, and
//!   what the request inspector needs: which IdP sent a request, and secrets redacted.
//! - [`db`]: the only module that writes SQL: pool, migrations, tenants, tokens, directory,
//!   the recorded SCIM requests.
//! - [`sync`]: directory sync, pure: matching, roles, policies, the plan and its report.
//! - [`auth`]: credentials: token generation and hashing, passwords, OAuth 2.0 (PKCE,
//!   client authentication, redirect URIs).
//! - `fuzzing` (hidden): the properties the fuzz targets in `tests/fuzz/` check, shared with
//!   `tests/fuzz_corpora.rs`, which replays their corpora on stable.

pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod model;
pub mod ops;
pub mod scim;
pub mod server;
pub mod sync;
pub mod text_enum;
