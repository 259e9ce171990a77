//! Group-to-role mapping: which role a member's directory groups give, and why.
//!
//! Reserved group names `<prefix><role>` always give their role and no custom mapping can
//! say otherwise; custom mappings name any other group. Among all the roles a member's
//! groups give, the highest-ranked wins; with none, the tenant's default role applies.

use std::fmt;

use serde::Serialize;

use crate::model::{DirectoryGroup, Role, Settings};
use crate::scim::filter::fold;

/// Why a member has its role, in words an admin reads beside the role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleReason {
    /// No group of the member maps to a role.
    Default,
    /// From a reserved `<prefix><role>` group.
    Reserved { group: String },
    /// From a custom mapping of this group.
    Mapped { group: String },
    /// The member's role was removed from the tenant's roles; it falls back to the default.
    Retired { old: Role },
}

/// A role and its explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleDecision {
    pub role: Role,
    pub reason: RoleReason,
}

impl fmt::Display for RoleDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = &self.role;
        match &self.reason {
            RoleReason::Default => write!(f, "{role}, the default role (no group maps to a role)"),
            RoleReason::Reserved { group } => write!(f, "{role}, from reserved group {group}"),
            RoleReason::Mapped { group } => write!(f, "{role}, from group {group}"),
            RoleReason::Retired { old } => {
                write!(f, "{role}, the default role (role {old} no longer exists)")
            }
        }
    }
}

impl Serialize for RoleDecision {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The role a directory group gives, and whether by its reserved name.
pub fn role_of_group<'s>(settings: &'s Settings, group: &str) -> Option<(&'s Role, bool)> {
    if let Some(role) = settings.reserved_role(group) {
        return Some((role, true));
    }
    let name = fold(group);
    settings
        .mappings
        .iter()
        .find(|m| fold(&m.group) == name)
        .map(|m| &m.role)
        .filter(|r| settings.rank(r).is_some())
        .map(|r| (r, false))
}

/// The role `groups` give under `settings`: the highest-ranked mapped role, else the default.
/// Ties go to a reserved group, then to the group name that sorts first, so the explanation
/// does not depend on the order the IdP sent memberships in.
pub fn decide(groups: &[DirectoryGroup], settings: &Settings) -> RoleDecision {
    groups
        .iter()
        .filter_map(|g| {
            let (role, reserved) = role_of_group(settings, &g.display_name)?;
            let rank = settings.rank(role)?;
            Some(((rank, !reserved, fold(&g.display_name)), role, reserved, g))
        })
        .min_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, role, reserved, g)| RoleDecision {
            role: role.clone(),
            reason: if reserved {
                RoleReason::Reserved {
                    group: g.display_name.clone(),
                }
            } else {
                RoleReason::Mapped {
                    group: g.display_name.clone(),
                }
            },
        })
        .unwrap_or_else(|| RoleDecision {
            role: settings.default_role.clone(),
            reason: RoleReason::Default,
        })
}
