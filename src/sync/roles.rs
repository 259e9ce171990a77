//! Group-to-role mapping: which role a member's directory groups give, and why.
//!
//! Reserved group names `<prefix><role>` always give their role and no custom mapping can
//! say otherwise; custom mappings name any other group. Among all the roles a member's
//! groups give, the highest-ranked wins; with none, the tenant's default role applies.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

use crate::model::{DirectoryGroup, Role, Settings};
use crate::scim::filter::{fold, fold_cmp};

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
        let group = match &self.reason {
            RoleReason::Retired { old } => {
                return write!(f, "{role}, the default role (role {old} no longer exists)");
            }
            RoleReason::Default => None,
            RoleReason::Reserved { group } => Some((group.as_str(), true)),
            RoleReason::Mapped { group } => Some((group.as_str(), false)),
        };
        Decided { role, group }.fmt(f)
    }
}

/// A decision of [`Decider::decide`], borrowed from the settings and the groups it was
/// made from: a plan compares it with 100 000 members' without copying it.
#[derive(Debug, Clone, Copy)]
pub struct Decided<'a> {
    pub role: &'a Role,
    /// The group it comes from, and whether by its reserved name; none: the default role.
    group: Option<(&'a str, bool)>,
}

impl Decided<'_> {
    pub fn owned(&self) -> RoleDecision {
        let reason = match self.group {
            None => RoleReason::Default,
            Some((group, true)) => RoleReason::Reserved {
                group: group.to_string(),
            },
            Some((group, false)) => RoleReason::Mapped {
                group: group.to_string(),
            },
        };
        RoleDecision {
            role: self.role.clone(),
            reason,
        }
    }

    /// Whether `text` is this decision's explanation (`to_string()`), without writing it.
    pub fn reads(&self, text: &str) -> bool {
        /// Consumes what is written from `rest` while it matches.
        struct Match<'t> {
            rest: &'t str,
        }
        impl fmt::Write for Match<'_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                self.rest = self.rest.strip_prefix(s).ok_or(fmt::Error)?;
                Ok(())
            }
        }
        let mut m = Match { rest: text };
        fmt::write(&mut m, format_args!("{self}")).is_ok() && m.rest.is_empty()
    }
}

impl fmt::Display for Decided<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = self.role;
        match self.group {
            None => write!(f, "{role}, the default role (no group maps to a role)"),
            Some((group, true)) => write!(f, "{role}, from reserved group {group}"),
            Some((group, false)) => write!(f, "{role}, from group {group}"),
        }
    }
}

impl Serialize for RoleDecision {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The role a directory group gives, and whether by its reserved name. Spaces at the edges
/// of a name are not part of it: an IdP that sends `" Sales Team "` means the group a
/// mapping of `Sales Team` names.
pub fn role_of_group<'s>(settings: &'s Settings, group: &str) -> Option<(&'s Role, bool)> {
    if let Some(role) = settings.reserved_role(group) {
        return Some((role, true));
    }
    let name = fold(group.trim());
    settings
        .mappings
        .iter()
        .find(|m| fold(m.group.trim()) == name)
        .map(|m| &m.role)
        .filter(|r| settings.rank(r).is_some())
        .map(|r| (r, false))
}

/// The role `groups` give under `settings`: the highest-ranked mapped role, else the default.
/// Ties go to a reserved group, then to the group name that sorts first, so the explanation
/// does not depend on the order the IdP sent memberships in.
pub fn decide(groups: &[DirectoryGroup], settings: &Settings) -> RoleDecision {
    Decider::new(settings).decide(groups).owned()
}

/// [`decide`] for many people under one tenant's settings, looking each group name up
/// once: a whole-tenant plan decides 100 000 roles from a handful of groups.
pub struct Decider<'s> {
    settings: &'s Settings,
    /// Each group name seen: the rank of the role it gives, whether by its reserved name,
    /// and the role.
    groups: HashMap<String, Option<(usize, bool, &'s Role)>, foldhash::fast::RandomState>,
}

impl<'s> Decider<'s> {
    pub fn new(settings: &'s Settings) -> Self {
        Decider {
            settings,
            groups: HashMap::default(),
        }
    }

    pub fn decide<'g>(&mut self, groups: &'g [DirectoryGroup]) -> Decided<'g>
    where
        's: 'g,
    {
        let mut best: Option<(usize, bool, &Role, &DirectoryGroup)> = None;
        for g in groups {
            let Some((rank, reserved, role)) = self.role_of(&g.display_name) else {
                continue;
            };
            let first = best.is_none_or(|(r, res, _, b)| {
                (rank, !reserved)
                    .cmp(&(r, !res))
                    .then_with(|| fold_cmp(&g.display_name, &b.display_name))
                    .is_lt()
            });
            if first {
                best = Some((rank, reserved, role, g));
            }
        }
        match best {
            Some((_, reserved, role, g)) => Decided {
                role,
                group: Some((&g.display_name, reserved)),
            },
            None => Decided {
                role: &self.settings.default_role,
                group: None,
            },
        }
    }

    fn role_of(&mut self, group: &str) -> Option<(usize, bool, &'s Role)> {
        if let Some(&known) = self.groups.get(group) {
            return known;
        }
        let settings = self.settings;
        let found = role_of_group(settings, group)
            .and_then(|(role, reserved)| Some((settings.rank(role)?, reserved, role)));
        self.groups.insert(group.to_string(), found);
        found
    }
}
