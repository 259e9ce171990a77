//! The product's vocabulary, below every layer but the protocol (`scim`, whose data a
//! directory user is read from, and whose folding names compare by): member statuses,
//! sources and fields, tenant policies, roles and settings, the two sides a sync plan
//! compares (directory users and members), and the [`Actor`] behind every write. `db`
//! stores these types and `sync` plans with them; neither imports the other.
//!
//! Every value that is stored as text or typed on the command line is an enum with
//! `as_str`/`FromStr`, so a misspelt policy is an error at the edge, never a silent default.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::scim::filter::fold;
use crate::scim::resource;

mod actor;
pub use actor::{Actor, Who};

pub(crate) use crate::text_enum::text_enum;
pub use crate::text_enum::{TextEnum, UnknownValue};

text_enum! {
    /// Where a member stands. Only `active` members have access in the organisation's apps.
    pub enum MemberStatus ("member status") {
        Active => "active",
        /// Deactivated in the IdP; reversible, same member.
        Suspended => "suspended",
        /// Deleted by the IdP or gone from it; kept for history, restorable if the person returns.
        Archived => "archived",
    }
}

text_enum! {
    /// How a member came to exist. It never changes: a manual member linked later by the
    /// IdP is still known to have been created by hand.
    pub enum MemberSource ("member source") {
        Scim => "scim",
        Manual => "manual",
        Csv => "csv",
    }
}

text_enum! {
    /// A member attribute a change can set.
    pub enum Field ("field") {
        Email => "email",
        UserName => "userName",
        GivenName => "givenName",
        FamilyName => "familyName",
        DisplayName => "displayName",
        /// The SCIM id of the linked directory user.
        UserId => "userId",
        Role => "role",
        /// The explanation of the role; changes when the group giving it does.
        RoleReason => "roleReason",
        Status => "status",
    }
}

text_enum! {
    /// How much of a sync plan a run applies.
    pub enum SyncScope ("sync scope") {
        /// Everything: force sync, `scimd sync`.
        Full => "full",
        /// Role changes only: the re-evaluation after a role setting changed.
        Roles => "roles",
    }
}

text_enum! {
    /// What `active: false` from the IdP does to a member.
    pub enum DeactivatePolicy ("deactivation policy") {
        /// Reversible: reactivation restores the same member.
        Suspend => "suspend",
        /// The member and everything hanging off it are removed.
        Delete => "delete",
    }
}

text_enum! {
    /// What `DELETE /Users/{id}` from the IdP does to a member.
    pub enum DeletePolicy ("deletion policy") {
        Archive => "archive",
        Delete => "delete",
    }
}

text_enum! {
    /// What a full sync does to members the IdP does not have (never linked, e.g. manual).
    pub enum AbsentPolicy ("absent-member policy") {
        /// They keep access, as before provisioning.
        Retain => "retain",
        Archive => "archive",
    }
}

text_enum! {
    /// Which attribute links a directory user to a pre-existing member.
    pub enum MatchBy ("match attribute") {
        /// Primary email (or userName when it is an email), case-insensitive.
        Email => "email",
        /// userName, case-insensitive.
        UserName => "username",
    }
}

/// A role name: lowercase letters, digits, `-` and `_`, so that `<prefix><role>` group
/// names are unambiguous and every spelling of a role is the same role.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Role(String);

impl Role {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        let s = s.trim().to_ascii_lowercase();
        let valid = (1..=63).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if valid {
            Ok(Role(s))
        } else {
            Err(format!(
                "invalid role {s:?}: use 1-63 letters, digits, '-' and '_'"
            ))
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A custom mapping: members of the directory group named `group` get `role`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleMapping {
    /// The group's displayName as the admin typed it; matched case-insensitively.
    pub group: String,
    pub role: Role,
}

/// A tenant's sync settings, with the defaults of DESIGN.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// Plan and report, but change no member.
    pub test_mode: bool,
    pub on_deactivate: DeactivatePolicy,
    pub on_delete: DeletePolicy,
    pub absent: AbsentPolicy,
    pub match_by: MatchBy,
    /// Highest-ranked first.
    pub roles: Vec<Role>,
    /// The role of members no mapped group gives a role to.
    pub default_role: Role,
    /// Groups named `<prefix><role>` always give that role.
    pub role_prefix: String,
    pub mappings: Vec<RoleMapping>,
    /// How many days events are kept for the feed and for webhook replays.
    pub event_retention_days: u32,
    /// `Some(n)`: a `delete` policy suspends the member now and deletes it after `n` days
    /// unless it is reactivated first. `None`: deletions are immediate.
    pub delete_grace_days: Option<u32>,
    /// Archived members are deleted this many days after they were archived; `None`: kept.
    pub archived_retention_days: Option<u32>,
    /// Audit entries older than this many days are purged; `None` (the default): kept.
    pub audit_retention_days: Option<u32>,
    /// The guard against mass deprovisioning.
    pub guard: Guard,
}

/// Holds member deprovisionings (suspend, archive, delete) for an admin's decision when more
/// than `max(percent % of active members, minimum)` would be applied within an hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Guard {
    pub enabled: bool,
    pub percent: u32,
    pub minimum: u32,
}

impl Default for Guard {
    /// 10 % or 5 people: the organisations scimd is for are small, and a floor of 50 let
    /// the IdP deprovision every member of one of 50 or fewer. Normal offboarding seldom
    /// takes 6 people in an hour there, and a hold costs an admin's click.
    fn default() -> Guard {
        Guard {
            enabled: true,
            percent: 10,
            minimum: 5,
        }
    }
}

impl Guard {
    /// How many deprovisionings an hour may bring without tripping, for `active` members.
    pub fn threshold(&self, active: u64) -> u64 {
        let share = (active * u64::from(self.percent)).div_ceil(100);
        share.max(u64::from(self.minimum))
    }
}

impl Default for Settings {
    fn default() -> Settings {
        let role = |s: &str| Role(s.to_string());
        Settings {
            test_mode: false,
            on_deactivate: DeactivatePolicy::Suspend,
            on_delete: DeletePolicy::Archive,
            absent: AbsentPolicy::Retain,
            match_by: MatchBy::Email,
            roles: ["owner", "admin", "member", "viewer"]
                .into_iter()
                .map(role)
                .collect(),
            default_role: role("viewer"),
            role_prefix: DEFAULT_ROLE_PREFIX.to_string(),
            mappings: Vec::new(),
            event_retention_days: DEFAULT_EVENT_RETENTION_DAYS,
            delete_grace_days: None,
            archived_retention_days: None,
            audit_retention_days: None,
            guard: Guard::default(),
        }
    }
}

/// The reserved group-name prefix unless a tenant chooses another.
pub const DEFAULT_ROLE_PREFIX: &str = "scimd-role-";

/// How long events are kept unless an admin says otherwise.
pub const DEFAULT_EVENT_RETENTION_DAYS: u32 = 90;

impl Settings {
    /// The rank of `role`: 0 is the highest; `None` for a role the tenant does not have.
    pub fn rank(&self, role: &Role) -> Option<usize> {
        self.roles.iter().position(|r| r == role)
    }

    /// The tenant's role named `name`, or why there is none: not a role name, or not one
    /// of the tenant's roles (which it lists).
    pub fn role_named(&self, name: &str) -> Result<Role, String> {
        let role: Role = name.parse()?;
        if self.rank(&role).is_none() {
            let roles: Vec<&str> = self.roles.iter().map(Role::as_str).collect();
            return Err(format!(
                "role {role} is not one of the tenant's roles ({})",
                roles.join(", ")
            ));
        }
        Ok(role)
    }

    /// The role a reserved group name `<prefix><role>` stands for, if `group` is one.
    pub fn reserved_role(&self, group: &str) -> Option<&Role> {
        let rest = fold(group.trim())
            .strip_prefix(&fold(&self.role_prefix))?
            .to_string();
        self.roles.iter().find(|r| r.as_str() == rest)
    }

    /// Checks the settings hang together: what `roles set`, `roles map` and `tenant set`
    /// must keep true. Each message says how to fix it.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=3650).contains(&self.event_retention_days) {
            return Err("events must be kept for 1 to 3650 days".into());
        }
        if self
            .delete_grace_days
            .is_some_and(|d| !(1..=365).contains(&d))
        {
            return Err("the deletion grace period must be 1 to 365 days (or off)".into());
        }
        if self
            .archived_retention_days
            .is_some_and(|d| !(1..=3650).contains(&d))
        {
            return Err("archived members must be kept for 1 to 3650 days (or forever)".into());
        }
        if self
            .audit_retention_days
            .is_some_and(|d| !(30..=36500).contains(&d))
        {
            return Err("audit entries must be kept for 30 to 36500 days (or forever)".into());
        }
        if self.guard.percent > 100 {
            return Err("the guard's share of active members must be 0 to 100 %".into());
        }
        if self.guard.enabled && self.guard.percent == 0 && self.guard.minimum == 0 {
            return Err(
                "the guard needs a share of active members or a number of people above 0 \
                 (or turn it off)"
                    .into(),
            );
        }
        if self.roles.is_empty() {
            return Err("a tenant needs at least one role".into());
        }
        for (i, r) in self.roles.iter().enumerate() {
            if self.roles[..i].contains(r) {
                return Err(format!("role {r} is listed twice"));
            }
        }
        if self.rank(&self.default_role).is_none() {
            return Err(format!(
                "the default role {} is not one of the roles ({}); choose a default role among them",
                self.default_role,
                self.role_list()
            ));
        }
        let prefix = self.role_prefix.trim();
        if prefix.is_empty() || prefix != self.role_prefix || prefix.chars().count() > 64 {
            return Err(format!(
                "invalid role prefix {:?}: use 1-64 characters without surrounding spaces",
                self.role_prefix
            ));
        }
        for m in &self.mappings {
            if m.group.chars().count() > resource::MAX_NAME_CHARS {
                return Err(format!(
                    "a group name is at most {} characters, as the directory's are",
                    resource::MAX_NAME_CHARS
                ));
            }
            if self.rank(&m.role).is_none() {
                return Err(format!(
                    "group {:?} is mapped to role {}, which is not one of the roles ({}); unmap it first",
                    m.group,
                    m.role,
                    self.role_list()
                ));
            }
            if let Some(r) = self.reserved_role(&m.group) {
                return Err(format!(
                    "group name {:?} is reserved: it always gives role {r} and cannot be mapped",
                    m.group
                ));
            }
        }
        Ok(())
    }

    /// These settings with `group` (by displayName, case-insensitive) mapped to `role`,
    /// replacing any mapping of the same group. Not validated: [`Settings::validate`] says
    /// whether the result may be saved.
    pub fn with_mapping(&self, group: &str, role: &Role) -> Settings {
        let group = group.trim();
        let mut s = self.clone();
        s.mappings.retain(|m| fold(&m.group) != fold(group));
        s.mappings.push(RoleMapping {
            group: group.to_string(),
            role: role.clone(),
        });
        s
    }

    /// These settings without the mapping of `group`; `None` if it has none.
    pub fn without_mapping(&self, group: &str) -> Option<Settings> {
        let mut s = self.clone();
        s.mappings.retain(|m| fold(&m.group) != fold(group.trim()));
        (s.mappings.len() != self.mappings.len()).then_some(s)
    }

    fn role_list(&self) -> String {
        self.roles
            .iter()
            .map(Role::as_str)
            .collect::<Vec<_>>()
            .join(" > ")
    }
}

/// The person-level attributes a member shares with its directory user. The IdP's values
/// overwrite these once a member is linked. Owned, or borrowed (`Profile<&str>`) to compare
/// one without copying it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile<S = String> {
    pub email: Option<S>,
    pub user_name: Option<S>,
    pub given_name: Option<S>,
    pub family_name: Option<S>,
    pub display_name: Option<S>,
}

impl Profile {
    pub fn borrowed(&self) -> Profile<&str> {
        Profile {
            email: self.email.as_deref(),
            user_name: self.user_name.as_deref(),
            given_name: self.given_name.as_deref(),
            family_name: self.family_name.as_deref(),
            display_name: self.display_name.as_deref(),
        }
    }
}

impl<S: AsRef<str>> Profile<S> {
    /// Each attribute with its field.
    pub fn fields(&self) -> [(Field, Option<&str>); 5] {
        fn v<S: AsRef<str>>(s: &Option<S>) -> Option<&str> {
            s.as_ref().map(AsRef::as_ref)
        }
        [
            (Field::Email, v(&self.email)),
            (Field::UserName, v(&self.user_name)),
            (Field::GivenName, v(&self.given_name)),
            (Field::FamilyName, v(&self.family_name)),
            (Field::DisplayName, v(&self.display_name)),
        ]
    }
}

/// A directory group, as far as roles are concerned. Shared: a whole-tenant plan reads the
/// same few groups for each of 100 000 people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryGroup {
    /// SCIM id.
    pub id: Arc<str>,
    pub display_name: Arc<str>,
}

/// A directory user as sync sees it: what the IdP pushed, reduced to what members carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    /// SCIM id: what a member's link holds. Never reused, unlike row numbers.
    pub id: String,
    pub user_name: String,
    /// The primary email, else the first email.
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    /// `active` as the IdP last set it; `None` when a PATCH unassigned it, which says
    /// nothing of the person's access: no member is created, suspended or reactivated by
    /// it (the SCIM layer stores `active` on create, so only an unassigning PATCH leaves
    /// none).
    pub active: Option<bool>,
    /// Direct groups only: nested groups do not confer roles (simple to explain in the UI).
    pub groups: Vec<DirectoryGroup>,
    /// `externalId` as the IdP sent it. Sync does not plan with it; a linked member's API
    /// object shows it.
    pub external_id: Option<Value>,
    /// What the user's data says of the person in the organisation (title, department,
    /// manager…: [`resource::profile_attributes`]). Sync does not plan with them either; a
    /// linked member's API object shows them.
    pub attributes: Map<String, Value>,
}

impl DirectoryUser {
    /// Reads a stored user's canonical data (see `scim::resource`).
    pub fn from_data(id: &str, data: &Map<String, Value>, groups: Vec<DirectoryGroup>) -> Self {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).and_then(member_text);
        let emails = data.get("emails").and_then(Value::as_array);
        let email = emails
            .and_then(|list| {
                DirectoryUser::chosen_email(list, |e| {
                    e.get("primary").and_then(Value::as_bool) == Some(true)
                })
            })
            .and_then(|e| text(e.get("value")));
        let name = data.get("name");
        DirectoryUser {
            id: id.to_string(),
            user_name: text(data.get("userName")).unwrap_or_default(),
            email,
            given_name: text(name.and_then(|n| n.get("givenName"))),
            family_name: text(name.and_then(|n| n.get("familyName"))),
            display_name: text(data.get("displayName")),
            active: data.get("active").and_then(Value::as_bool),
            groups,
            external_id: data.get("externalId").cloned(),
            attributes: resource::profile_attributes(data),
        }
    }

    /// Of a user's emails, the one it goes by: the primary one, else the first.
    pub fn chosen_email<E>(emails: &[E], primary: impl Fn(&E) -> bool) -> Option<&E> {
        emails
            .iter()
            .find(|e| primary(e))
            .or_else(|| emails.first())
    }

    /// The email that links this user to a member: the primary email, or the userName when
    /// it is an email (Entra's userPrincipalName often is the only one sent).
    pub fn match_email(&self) -> Option<&str> {
        self.email
            .as_deref()
            .or_else(|| Some(self.user_name.as_str()).filter(|u| looks_like_email(u)))
    }

    /// What a linked member's profile must become.
    pub fn profile(&self) -> Profile {
        let p = self.wanted();
        let own = |s: Option<&str>| s.map(str::to_string);
        Profile {
            email: own(p.email),
            user_name: own(p.user_name),
            given_name: own(p.given_name),
            family_name: own(p.family_name),
            display_name: own(p.display_name),
        }
    }

    /// [`DirectoryUser::profile`], borrowed from the user.
    pub fn wanted(&self) -> Profile<&str> {
        Profile {
            email: self.match_email(),
            user_name: Some(&self.user_name),
            given_name: self.given_name.as_deref(),
            family_name: self.family_name.as_deref(),
            display_name: self.display_name.as_deref(),
        }
    }
}

/// A name, email or userName of a person as members carry it: without the spaces at its
/// edges, and none if that leaves nothing (authentik sends `familyName: " "` for a person
/// without one, and apps should not show a blank; ` ada@x.org ` is Ada's address, and
/// must match her member rather than make a second one).
pub fn member_text(value: &str) -> Option<String> {
    Some(value.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// Good enough to tell an email from a login name; the IdP, not scimd, validates addresses.
pub fn looks_like_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !s.contains(char::is_whitespace)
                && !s.chars().any(|c| c.is_control() || invisible(c))
                && s.len() <= 254
        }
        None => false,
    }
}

/// A character an address has no use for and a reader cannot see: one that reorders text
/// (bidirectional overrides and isolates) or takes no room (zero-width and invisible
/// formatting characters). Names keep them: Persian and Indic scripts join and break
/// letters with U+200C and U+200D, and emoji sequences use U+200D.
fn invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}' | '\u{E0000}'..='\u{E007F}')
}

/// What is wrong with a person's name typed by an admin or in a CSV file (`field` names
/// it): longer than a SCIM name may be ([`crate::scim::resource::MAX_NAME_CHARS`]), or
/// holding a control character (NUL, a line break: no part of a name).
pub fn person_name_problem(field: &str, value: &str) -> Option<String> {
    let max = crate::scim::resource::MAX_NAME_CHARS;
    if value.chars().count() > max {
        Some(format!("{field} is longer than {max} characters"))
    } else if value.chars().any(char::is_control) {
        Some(format!("{field} holds a control character"))
    } else {
        None
    }
}

/// A member's link to the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Never linked (manual or CSV member not yet seen from the IdP).
    None,
    /// Linked to this directory user, which exists.
    Live(String),
    /// Linked to a directory user the IdP has deleted; kept as history. A full sync applies
    /// the IdP-deletion policy to it, and the person may be matched again if re-created.
    /// (A plan of the whole directory may be given every link as `Gone`: it sees for itself
    /// which users exist, see `db::members::for_plan`.)
    Gone(String),
}

impl Link {
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Link::None => None,
            Link::Live(id) | Link::Gone(id) => Some(id),
        }
    }
}

/// A member as sync sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Row id, for apply.
    pub pk: i64,
    /// Public id, for reports, events and apps.
    pub id: String,
    pub profile: Profile,
    pub role: Role,
    /// The explanation shown beside the role ("admin, from group Eng-Admins").
    pub role_reason: String,
    pub status: MemberStatus,
    /// `false`: provisioning never touches this member.
    pub managed: bool,
    pub source: MemberSource,
    pub link: Link,
    /// Suspended by the grace period, to be deleted unless reactivated.
    pub deletion_scheduled: bool,
}

impl Member {
    /// Who this is, for a person reading a report.
    pub fn subject(&self) -> String {
        self.profile
            .email
            .clone()
            .or_else(|| self.profile.user_name.clone())
            .unwrap_or_else(|| self.id.clone())
    }
}

/// The directory a plan looks at.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    /// Users present in the directory (all of the tenant's, or the ones a write affected).
    pub users: Vec<DirectoryUser>,
    /// Users the IdP is deleting right now (`DELETE /Users/{id}`).
    pub deleted: Vec<DirectoryUser>,
    /// `users` is the whole directory: only then is a member missing from it "absent".
    pub complete: bool,
}
