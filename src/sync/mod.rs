//! Directory sync, pure: from what the IdP pushed (the directory), the organisation's
//! members and the tenant's settings to the list of changes that brings the members in line
//! — DESIGN.md's "Sync rules", pinned one by one by the tests beside this module.
//!
//! Nothing here does I/O. `db::sync` loads the inputs (for the people one SCIM write
//! affects, or for the whole tenant), calls [`plan`], and applies the changes with their
//! audit entries and events in the write's transaction — or, in test mode, only reports
//! them.
//!
//! The vocabulary it plans with (statuses, policies, roles, settings, the two sides compared)
//! is [`crate::model`], which `db` shares.
//! - [`roles`]: which role a member's groups give, and the sentence that explains it.
//! - [`plan`]: matching, policies, the changes.
//! - [`report`]: a plan grouped by kind with counts and detail, as JSON, CSV or text.
//! - [`member_csv`]: the members CSV admins import and export (validation with line numbers).

pub mod member_csv;
pub mod plan;
pub mod report;
pub mod roles;

pub use crate::model::{
    AbsentPolicy, DeactivatePolicy, DeletePolicy, Directory, DirectoryGroup, DirectoryUser, Link,
    MatchBy, Member, MemberSource, MemberStatus, Profile, Role, RoleMapping, Settings, TextEnum,
};
pub use plan::{
    Action, Cause, Change, ChangeKind, Field, FieldChange, Indexed, is_settled, plan,
    plan_streamed, reason_of, roles_only,
};
pub use report::Report;
pub use roles::{RoleDecision, RoleReason};

#[cfg(test)]
mod tests;
