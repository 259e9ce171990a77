//! The use cases: one function for each operation an IdP, an admin or an app can trigger,
//! and the one place that says what it does.
//!
//! A door (`http`, `cli`) parses a request, calls one function here with the database and
//! the [`Actor`](crate::model::Actor), and renders what comes back; it holds no rule and no
//! transaction. A function here opens the one transaction its operation needs, runs the
//! pure rules (`scim`, `sync`), writes rows through `db` (the tables, SQL only), and appends
//! the audit entries and events in that same transaction, so they commit with the change
//! or not at all.
//!
//! - [`users`], [`groups`]: the SCIM writes of Users and Groups, membership operations
//!   included; each ends in a [`reconcile`] hook and is audited.
//! - [`reconcile`]: members follow the directory: the hooks every SCIM write calls, force
//!   sync, the test-mode report and the preview of a settings change.
//! - [`members`]: CSV import and its preview, marking a member (not) managed, exports, and
//!   [`members::record`], the event and audit entry of every member write.
//! - [`settings`]: settings and role-mapping changes, followed by the role re-evaluation.
//! - [`tokens`]: SCIM tokens: issue, revoke, authenticate.
//! - [`oauth`]: OAuth clients and grants: codes, token issue, refresh, revocation.
//! - [`inspector`]: the request inspector's recorder: SCIM requests redacted, their
//!   client detected, written in batches off the request path and pruned.
//!
//! - [`lists`]: where the next `startIndex` page of a directory walk starts.
//!
//! A new feature adds a function here (and the tables it needs in `db`), never a second
//! copy of a write in a door.

pub mod admins;
pub mod apikeys;
pub mod apps;
pub mod events;
pub mod groups;
pub mod guard;
pub mod inspector;
pub mod lists;
pub mod members;
pub mod oauth;
pub mod reconcile;
pub mod resource;
pub mod retention;
pub mod settings;
pub mod throttle;
pub mod tokens;
pub mod users;
pub mod webhooks;
pub mod workos;

use crate::db::DbError;
use crate::scim::ScimError;

/// Why a SCIM write was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request cannot be carried out as sent: the SCIM error the client sees.
    #[error(transparent)]
    Scim(#[from] ScimError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Runs a use case to completion for a synchronous caller (the command line, tests), on a
/// runtime of its own: the same code the server runs, without a server.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime starts")
        .block_on(f)
}
