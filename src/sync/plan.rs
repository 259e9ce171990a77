//! The plan: from (directory, members, settings) to the list of changes a sync makes.
//!
//! The rules are DESIGN.md's "Sync rules", in the order they are decided for each
//! directory user: match a member (link, else email or userName), skip it if it is not
//! managed, apply the deactivation or deletion policy, restore it if it was suspended or
//! archived, copy the IdP's profile over it, and recompute its role. On a complete
//! directory, members left unmatched are handled last: linked to a user the IdP deleted
//! (deletion policy) or never linked (absent policy).
//!
//! A plan applied leaves nothing for the next plan to do: every change sets a member to
//! exactly the value the next plan compares against.

use std::borrow::{Borrow, Cow};
use std::collections::{HashMap, HashSet};

use foldhash::fast::RandomState;

use serde::Serialize;

use super::roles::{self, RoleDecision, RoleReason};
pub use crate::model::Field;
use crate::model::{
    AbsentPolicy, DeactivatePolicy, DeletePolicy, Directory, DirectoryUser, Link, MatchBy, Member,
    MemberStatus, Profile, Role, Settings, text_enum,
};
use crate::scim::filter::fold_cow;

text_enum! {
    /// The kinds of change, in the order a report lists them.
    pub enum ChangeKind ("change kind") {
        Create => "create",
        Update => "update",
        RoleChange => "role_change",
        Suspend => "suspend",
        Reactivate => "reactivate",
        Archive => "archive",
        Delete => "delete",
        /// Not a change: a member sync would have changed but must not (not managed, or a
        /// conflict). Listed so the admin sees it.
        Skip => "skip",
    }
}

text_enum! {
    /// Why a member is archived or deleted.
    pub enum Cause ("cause") {
        /// `active: false` from the IdP (deactivation policy `delete`).
        Deactivated => "deactivated",
        /// `DELETE /Users/{id}` from the IdP (deletion policy).
        DeletedByIdp => "deleted_by_idp",
        /// Not in the IdP at a full sync (absent policy `archive`).
        Absent => "absent",
    }
}

impl Cause {
    fn describe(self) -> &'static str {
        match self {
            Cause::Deactivated => "deactivated in the IdP",
            Cause::DeletedByIdp => "deleted by the IdP",
            Cause::Absent => "not in the IdP",
        }
    }
}

/// One attribute, before and after: owned in a plan, or borrowed from one
/// (`FieldChange<&str>`, [`fields_in`]) to serialise it without copying its values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FieldChange<S = String> {
    pub field: Field,
    pub before: Option<S>,
    pub after: Option<S>,
}

impl FieldChange<&str> {
    pub fn owned(&self) -> FieldChange {
        FieldChange {
            field: self.field,
            before: self.before.map(str::to_string),
            after: self.after.map(str::to_string),
        }
    }
}

/// What a change does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A new member, linked to `Change::user_id`, active.
    Create {
        profile: Profile,
        role: RoleDecision,
    },
    /// Profile fields, the link, or the role's explanation (never role or status).
    Update {
        fields: Vec<FieldChange>,
    },
    RoleChange {
        from: Role,
        to: RoleDecision,
    },
    Suspend,
    Reactivate {
        from: MemberStatus,
    },
    Archive {
        cause: Cause,
        from: MemberStatus,
    },
    /// The member and everything hanging off it are removed; with a grace period
    /// (`after_days`), the member is suspended now and deleted after that many days unless
    /// reactivated first.
    Delete {
        cause: Cause,
        from: MemberStatus,
        after_days: Option<u32>,
    },
    Skip {
        reason: String,
    },
}

impl Action {
    pub fn kind(&self) -> ChangeKind {
        match self {
            Action::Create { .. } => ChangeKind::Create,
            Action::Update { .. } => ChangeKind::Update,
            Action::RoleChange { .. } => ChangeKind::RoleChange,
            Action::Suspend => ChangeKind::Suspend,
            Action::Reactivate { .. } => ChangeKind::Reactivate,
            Action::Archive { .. } => ChangeKind::Archive,
            Action::Delete { .. } => ChangeKind::Delete,
            Action::Skip { .. } => ChangeKind::Skip,
        }
    }
}

/// The member a change is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRef {
    pub pk: i64,
    pub id: String,
}

/// One change of one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `None` for a creation.
    pub member: Option<MemberRef>,
    /// Who, for people: the email, else the userName.
    pub subject: String,
    /// The directory user behind the change, if any.
    pub user_id: Option<String>,
    pub action: Action,
}

impl Change {
    pub fn kind(&self) -> ChangeKind {
        self.action.kind()
    }

    /// Whether applying this change writes anything.
    pub fn is_applicable(&self) -> bool {
        self.kind() != ChangeKind::Skip
    }
}

/// Whether `changes` would write nothing: what a second plan after apply must be.
pub fn is_settled(changes: &[Change]) -> bool {
    !changes.iter().any(Change::is_applicable)
}

/// Computes the changes that bring `members` in line with `directory` under `settings`.
///
/// `members` must include every member the directory users could match (by link, email
/// or userName) and, for a complete directory, all of the tenant's members.
pub fn plan(directory: &Directory, members: &[Member], settings: &Settings) -> Vec<Change> {
    Planner::new(Indexed::new(members), settings, directory.users.len()).run(
        &directory.users,
        &directory.deleted,
        directory.complete,
    )
}

/// The members a plan matches directory users to, indexed by link and by folded email and
/// userName: apart from [`plan`], so that a caller can index them while it still reads the
/// directory ([`plan_streamed`]).
pub struct Indexed<'a> {
    members: &'a [Member],
    by_link: HashMap<&'a str, usize, RandomState>,
    by_email: Index<'a>,
    by_user_name: Index<'a>,
}

impl<'a> Indexed<'a> {
    pub fn new(members: &'a [Member]) -> Self {
        let n = members.len();
        let mut by_link = HashMap::with_capacity_and_hasher(n, RandomState::default());
        let mut by_email = Index::with_capacity_and_hasher(n, RandomState::default());
        let mut by_user_name = Index::with_capacity_and_hasher(n, RandomState::default());
        for (i, m) in members.iter().enumerate() {
            if let Some(id) = m.link.user_id() {
                by_link.insert(id, i);
            }
            if let Some(e) = &m.profile.email {
                by_email.insert(fold_cow(e), i);
            }
            if let Some(u) = &m.profile.user_name {
                by_user_name.insert(fold_cow(u), i);
            }
        }
        Indexed {
            members,
            by_link,
            by_email,
            by_user_name,
        }
    }
}

/// [`plan`] of the whole directory (complete, nobody being deleted) whose users come one
/// at a time, while they are still being read: a user linked to a member is planned as it
/// comes and dropped, the others are kept until all have come.
pub fn plan_streamed(
    users: impl IntoIterator<Item = DirectoryUser>,
    members: Indexed,
    settings: &Settings,
) -> Vec<Change> {
    let people = members.members.len();
    Planner::new(members, settings, people).run(users, &[], true)
}

/// What matching found for a directory user.
enum Found {
    Member(usize),
    Nothing,
    /// The member with this user's key is linked to another directory user.
    Conflict(usize),
}

/// Members by a folded key.
type Index<'a> = HashMap<Cow<'a, str>, usize, RandomState>;

struct Planner<'a> {
    members: &'a [Member],
    settings: &'a Settings,
    roles: roles::Decider<'a>,
    by_link: HashMap<&'a str, usize, RandomState>,
    /// Members by folded email and userName.
    by_email: Index<'a>,
    by_user_name: Index<'a>,
    /// Members already matched by a directory user of this plan, by index.
    claimed: Vec<bool>,
    /// Members linked to a directory user that exists, by index: [`Link::Live`], and
    /// those the directory's users name as theirs (a whole-directory plan may be given
    /// links whose users it has not checked as `Link::Gone`, see `Member::link`).
    live: Vec<bool>,
    /// Emails and userNames (folded) that members created by this plan will use.
    new_emails: HashSet<String, RandomState>,
    new_user_names: HashSet<String, RandomState>,
    changes: Vec<Change>,
}

impl<'a> Planner<'a> {
    /// A planner for `members` and a directory of about `people` users.
    fn new(members: Indexed<'a>, settings: &'a Settings, people: usize) -> Self {
        let Indexed {
            members,
            by_link,
            by_email,
            by_user_name,
        } = members;
        Planner {
            members,
            settings,
            roles: roles::Decider::new(settings),
            by_link,
            by_email,
            by_user_name,
            claimed: vec![false; members.len()],
            live: members
                .iter()
                .map(|m| matches!(m.link, Link::Live(_)))
                .collect(),
            new_emails: HashSet::with_capacity_and_hasher(people, RandomState::default()),
            new_user_names: HashSet::with_capacity_and_hasher(people, RandomState::default()),
            changes: Vec::with_capacity(people),
        }
    }

    /// Plans `users` (the directory's, in its order), then the `deleted`, then, for a
    /// `complete` directory, the members no user matched.
    fn run<U: Borrow<DirectoryUser>>(
        mut self,
        users: impl IntoIterator<Item = U>,
        deleted: &[DirectoryUser],
        complete: bool,
    ) -> Vec<Change> {
        // The people already linked first: an email or userName one of them gives up is
        // then free for a newcomer of the same pass, wherever the directory lists the two.
        // One who wants a key another member holds waits until the others gave theirs up,
        // again while that frees more (a chain of renames), then goes as it is (a swap:
        // skipped).
        let mut others = Vec::new();
        let mut waiting = Vec::new();
        for user in users {
            let linked = self.by_link.get(user.borrow().id.as_str()).copied();
            match linked {
                Some(i) => {
                    // Its directory user exists: whatever the member's link was read as.
                    self.live[i] = true;
                    match self.wants_anothers_key(i, user.borrow()) {
                        true => waiting.push((i, user)),
                        false => self.matched(i, user.borrow()),
                    }
                }
                None => others.push(user),
            }
        }
        while !waiting.is_empty() {
            let (ready, still): (Vec<_>, Vec<_>) = waiting
                .into_iter()
                .partition(|(i, user)| !self.wants_anothers_key(*i, user.borrow()));
            let (go, next) = match ready.is_empty() {
                true => (still, Vec::new()),
                false => (ready, still),
            };
            for (i, user) in &go {
                self.matched(*i, user.borrow());
            }
            waiting = next;
        }
        for user in &others {
            self.present(user.borrow());
        }
        for user in deleted {
            self.deleted(user);
        }
        if complete {
            self.absent();
        }
        self.changes
    }

    /// The member linked to `user`, else the one with its email (or userName), if free.
    fn find(&self, user: &DirectoryUser) -> Found {
        if let Some(&i) = self.by_link.get(user.id.as_str()) {
            return Found::Member(i);
        }
        let by_user_name = || self.by_user_name.get(&*fold_cow(&user.user_name)).copied();
        let candidate = match self.settings.match_by {
            MatchBy::Email => {
                let mut keys = [user.email.as_deref(), Some(user.user_name.as_str())]
                    .into_iter()
                    .flatten()
                    .filter(|k| crate::model::looks_like_email(k))
                    .peekable();
                let has_email = keys.peek().is_some();
                keys.find_map(|k| self.by_email.get(&*fold_cow(k)).copied())
                    .or_else(|| {
                        // No member has its email. Its userName still names the same
                        // person when it has no email to match by (Entra sends none for
                        // a user without `mail`), or when that member's directory user
                        // was deleted and this one is it re-created (unassigned and
                        // assigned again, perhaps with a new email). Creating a member
                        // would fail on the userName anyway.
                        by_user_name().filter(|&i| {
                            !has_email
                                || (self.members[i].link.user_id().is_some() && !self.live[i])
                        })
                    })
            }
            MatchBy::UserName => by_user_name(),
        };
        match candidate {
            None => Found::Nothing,
            Some(i) if self.claimed[i] => Found::Conflict(i),
            Some(i) => match self.members[i].link.user_id() {
                Some(other) if other != user.id && self.live[i] => Found::Conflict(i),
                _ => Found::Member(i),
            },
        }
    }

    fn push(
        &mut self,
        member: Option<&Member>,
        subject: String,
        user: Option<&str>,
        action: Action,
    ) {
        self.changes.push(Change {
            member: member.map(|m| MemberRef {
                pk: m.pk,
                id: m.id.clone(),
            }),
            subject,
            user_id: user.map(str::to_string),
            action,
        });
    }

    /// A user the directory has: create, link, update, suspend or restore its member.
    fn present(&mut self, user: &DirectoryUser) {
        let subject = user.match_email().unwrap_or(&user.user_name).to_string();
        match self.find(user) {
            Found::Member(i) => self.matched(i, user),
            Found::Conflict(i) => {
                self.claimed[i] = true;
                let reason = format!(
                    "another member ({}) already has this person's {} and is linked to another directory user",
                    self.members[i].id,
                    self.key_name()
                );
                self.push(None, subject, Some(&user.id), Action::Skip { reason });
            }
            Found::Nothing => self.create(user, subject),
        }
    }

    /// Whether `user`, linked to member `i`, wants an email or userName that another member
    /// holds now.
    fn wants_anothers_key(&self, i: usize, user: &DirectoryUser) -> bool {
        let have = &self.members[i].profile;
        let held = |want: &str, index: &Index| index.get(&*fold_cow(want)).is_some_and(|&j| j != i);
        user.match_email()
            .is_some_and(|e| have.email.as_deref() != Some(e) && held(e, &self.by_email))
            || (have.user_name.as_deref() != Some(user.user_name.as_str())
                && held(&user.user_name, &self.by_user_name))
    }

    /// `user`, matched to member `i`: bring the member in line with it.
    fn matched(&mut self, i: usize, user: &DirectoryUser) {
        self.claimed[i] = true;
        let member = &self.members[i];
        let actions = self.reconcile(member, user);
        if member.managed {
            self.moved(i, &actions);
        }
        self.emit(member, Some(&user.id), actions);
    }

    /// Keeps the email and userName indexes true to what member `i`'s `actions` change, so
    /// that a key it gives up is free for a user planned after it, and one it takes is not.
    fn moved(&mut self, i: usize, actions: &[Action]) {
        for action in actions {
            let Action::Update { fields } = action else {
                continue;
            };
            for f in fields {
                let index = match f.field {
                    Field::Email => &mut self.by_email,
                    Field::UserName => &mut self.by_user_name,
                    _ => continue,
                };
                if let Some(before) = f.before.as_deref().map(fold_cow)
                    && index.get(&*before) == Some(&i)
                {
                    index.remove(&*before);
                }
                if let Some(after) = f.after.as_deref() {
                    index.insert(Cow::Owned(fold_cow(after).into_owned()), i);
                }
            }
        }
    }

    /// A new member for an active user nobody matched. An inactive user gets none: there is
    /// nobody to suspend, and its member is created if the IdP activates it; nor does one
    /// whose `active` was unassigned.
    fn create(&mut self, user: &DirectoryUser, subject: String) {
        if user.active != Some(true) {
            return;
        }
        let profile = user.profile();
        let email = profile.email.as_deref().map(fold_cow);
        let user_name = profile.user_name.as_deref().map(fold_cow);
        let taken = email.as_deref().and_then(|e| {
            (self.by_email.contains_key(e) || self.new_emails.contains(e)).then_some("email")
        });
        let taken = taken.or_else(|| {
            user_name.as_deref().and_then(|u| {
                (self.by_user_name.contains_key(u) || self.new_user_names.contains(u))
                    .then_some("userName")
            })
        });
        if let Some(key) = taken {
            let reason = format!("another member already has this {key}; no member created");
            self.push(None, subject, Some(&user.id), Action::Skip { reason });
            return;
        }
        self.new_emails.extend(email.map(Cow::into_owned));
        self.new_user_names.extend(user_name.map(Cow::into_owned));
        let role = self.roles.decide(&user.groups).owned();
        self.push(
            None,
            subject,
            Some(&user.id),
            Action::Create { profile, role },
        );
    }

    /// What it takes to bring a matched member in line with its directory user.
    fn reconcile(&mut self, member: &Member, user: &DirectoryUser) -> Vec<Action> {
        // `active` unassigned: no word on access; the IdP's other values still apply.
        if user.active.is_none() {
            return self.profile_and_role(member, user);
        }
        if user.active == Some(false) {
            // The IdP's values apply first, whatever the policy: a deletion the guard
            // holds, or one that waits out a grace period, must not keep the role and the
            // names the IdP has taken away meanwhile.
            let mut actions = self.profile_and_role(member, user);
            if member.status == MemberStatus::Active {
                actions.extend(match self.settings.on_deactivate {
                    DeactivatePolicy::Delete => self.delete(member, Cause::Deactivated),
                    DeactivatePolicy::Suspend => vec![Action::Suspend],
                });
            }
            // A policy applies from when it is set: a member suspended before stays
            // suspended rather than be deleted by the IdP's next write, and an archived
            // member stays archived.
            return actions;
        }
        // The IdP's values first, then the reactivation: a member the IdP pushed again under
        // a new directory user (deleted, then created anew) is linked to it before it is
        // active again, so no event names the deleted user as active.
        let mut actions = self.profile_and_role(member, user);
        if member.status != MemberStatus::Active {
            actions.push(Action::Reactivate {
                from: member.status,
            });
        }
        actions
    }

    /// The update and role change that copy the IdP's values onto a member.
    fn profile_and_role(&mut self, member: &Member, user: &DirectoryUser) -> Vec<Action> {
        let wanted = user.wanted();
        let want = wanted.fields();
        let have = member.profile.fields();
        let link = [(Field::UserId, member.link.user_id(), Some(user.id.as_str()))];
        let mut fields: Vec<FieldChange> = have
            .into_iter()
            .zip(want)
            .map(|((field, before), (_, after))| (field, before, after))
            .chain(link)
            .filter(|(_, before, after)| before != after)
            .map(|(field, before, after)| {
                FieldChange {
                    field,
                    before,
                    after,
                }
                .owned()
            })
            .collect();
        let mut actions = Vec::new();
        // An email or userName another member holds cannot be copied: keep the member's own
        // and say why, rather than fail the IdP's write.
        fields.retain(|f| {
            let (index, taken_by_new) = match f.field {
                Field::Email => (&self.by_email, &self.new_emails),
                Field::UserName => (&self.by_user_name, &self.new_user_names),
                _ => return true,
            };
            let Some(after) = f.after.as_deref().map(fold_cow) else {
                return true;
            };
            let taken = taken_by_new.contains(&*after)
                || index
                    .get(&*after)
                    .is_some_and(|&j| self.members[j].pk != member.pk);
            if taken {
                actions.push(Action::Skip {
                    reason: format!(
                        "{} not changed to {}: another member already has it",
                        f.field,
                        f.after.as_deref().unwrap_or_default()
                    ),
                });
            }
            !taken
        });
        let role = self.roles.decide(&user.groups);
        if member.role == *role.role && !role.reads(&member.role_reason) {
            fields.push(FieldChange {
                field: Field::RoleReason,
                before: Some(member.role_reason.clone()),
                after: Some(role.to_string()),
            });
        }
        if !fields.is_empty() {
            actions.insert(0, Action::Update { fields });
        }
        if member.role != *role.role {
            actions.push(Action::RoleChange {
                from: member.role.clone(),
                to: role.owned(),
            });
        }
        actions
    }

    /// Records `actions` for `member`, or one skip naming them if it is not managed.
    fn emit(&mut self, member: &Member, user: Option<&str>, actions: Vec<Action>) {
        if actions.is_empty() {
            return;
        }
        if !member.managed {
            let would: Vec<&str> = actions
                .iter()
                .filter(|a| a.kind() != ChangeKind::Skip)
                .map(|a| a.kind().as_str())
                .collect();
            let reason = format!(
                "not managed by provisioning (sync would: {})",
                would.join(", ")
            );
            self.push(
                Some(member),
                member.subject(),
                user,
                Action::Skip { reason },
            );
            return;
        }
        for action in actions {
            self.push(Some(member), member.subject(), user, action);
        }
    }

    /// A user the IdP is deleting: the deletion policy applies to its member.
    fn deleted(&mut self, user: &DirectoryUser) {
        let Found::Member(i) = self.find(user) else {
            return;
        };
        self.claimed[i] = true;
        let member = &self.members[i];
        // The DELETE took the person out of every group (`user` has none): a deletion the
        // guard holds, or an archive, must not keep the role those groups gave.
        let mut actions = match member.status {
            MemberStatus::Archived => Vec::new(),
            _ => self.profile_and_role(member, user),
        };
        actions.extend(self.on_idp_delete(member));
        self.emit(member, Some(&user.id), actions);
    }

    fn on_idp_delete(&self, member: &Member) -> Vec<Action> {
        let (cause, from) = (Cause::DeletedByIdp, member.status);
        match self.settings.on_delete {
            // An archived member stays archived when the policy becomes `delete`.
            DeletePolicy::Delete if from == MemberStatus::Archived => Vec::new(),
            DeletePolicy::Delete => self.delete(member, cause),
            DeletePolicy::Archive if from != MemberStatus::Archived => {
                vec![Action::Archive { cause, from }]
            }
            DeletePolicy::Archive => Vec::new(),
        }
    }

    /// Deleting `member`: at once, or with the grace period, suspended now unless its
    /// deletion is already scheduled.
    fn delete(&self, member: &Member, cause: Cause) -> Vec<Action> {
        let after_days = self.settings.delete_grace_days;
        if after_days.is_some() && member.deletion_scheduled {
            return Vec::new();
        }
        vec![Action::Delete {
            cause,
            from: member.status,
            after_days,
        }]
    }

    /// Members no directory user matched, on a complete directory.
    fn absent(&mut self) {
        for (i, member) in self.members.iter().enumerate() {
            if self.claimed[i] {
                continue;
            }
            let actions = match &member.link {
                // Linked to a user that is not in the directory: the IdP deleted it (the
                // hook's own deletion was not applied, e.g. in test mode).
                Link::Live(_) | Link::Gone(_) => self.on_idp_delete(member),
                Link::None => {
                    let mut actions = Vec::new();
                    if self.settings.rank(&member.role).is_none() {
                        actions.push(Action::RoleChange {
                            from: member.role.clone(),
                            to: RoleDecision {
                                role: self.settings.default_role.clone(),
                                reason: RoleReason::Retired {
                                    old: member.role.clone(),
                                },
                            },
                        });
                    }
                    if self.settings.absent == AbsentPolicy::Archive
                        && member.status != MemberStatus::Archived
                    {
                        actions.push(Action::Archive {
                            cause: Cause::Absent,
                            from: member.status,
                        });
                    }
                    actions
                }
            };
            let user = member.link.user_id();
            self.emit(member, user, actions);
        }
    }

    fn key_name(&self) -> &'static str {
        match self.settings.match_by {
            MatchBy::Email => "email",
            MatchBy::UserName => "userName",
        }
    }
}

/// The part of a plan a role setting change calls for: role changes and updated role
/// explanations, nothing else. Changing a mapping must not, say, archive absent members as
/// a side effect; that is what force sync is for.
pub fn roles_only(changes: Vec<Change>) -> Vec<Change> {
    changes
        .into_iter()
        .filter_map(|mut c| match &mut c.action {
            Action::RoleChange { .. } => Some(c),
            Action::Update { fields } => {
                fields.retain(|f| f.field == Field::RoleReason);
                (!fields.is_empty()).then_some(c)
            }
            _ => None,
        })
        .collect()
}

/// Field-level before/after of a change, for reports (what a person sees change),
/// borrowed from the change.
pub fn fields_in(change: &Change) -> Vec<FieldChange<&str>> {
    let status = |before: MemberStatus, after: Option<MemberStatus>| FieldChange {
        field: Field::Status,
        before: Some(before.as_str()),
        after: after.map(MemberStatus::as_str),
    };
    match &change.action {
        Action::Create { profile, role } => [
            (Field::Email, profile.email.as_deref()),
            (Field::UserName, profile.user_name.as_deref()),
            (Field::GivenName, profile.given_name.as_deref()),
            (Field::FamilyName, profile.family_name.as_deref()),
            (Field::DisplayName, profile.display_name.as_deref()),
            (Field::UserId, change.user_id.as_deref()),
            (Field::Role, Some(role.role.as_str())),
            (Field::Status, Some(MemberStatus::Active.as_str())),
        ]
        .into_iter()
        .filter(|(_, value)| value.is_some())
        .map(|(field, after)| FieldChange {
            field,
            before: None,
            after,
        })
        .collect(),
        Action::Update { fields } => fields
            .iter()
            .map(|f| FieldChange {
                field: f.field,
                before: f.before.as_deref(),
                after: f.after.as_deref(),
            })
            .collect(),
        Action::RoleChange { from, to } => vec![FieldChange {
            field: Field::Role,
            before: Some(from.as_str()),
            after: Some(to.role.as_str()),
        }],
        Action::Suspend => vec![status(MemberStatus::Active, Some(MemberStatus::Suspended))],
        Action::Reactivate { from } => vec![status(*from, Some(MemberStatus::Active))],
        Action::Archive { from, .. } => vec![status(*from, Some(MemberStatus::Archived))],
        Action::Delete {
            from,
            after_days: Some(_),
            ..
        } => vec![status(*from, Some(MemberStatus::Suspended))],
        Action::Delete { from, .. } => vec![status(*from, None)],
        Action::Skip { .. } => Vec::new(),
    }
}

/// The one-line reason of a change, for reports.
pub fn reason_of(change: &Change) -> Option<String> {
    match &change.action {
        Action::Create { role, .. } => Some(format!("role {role}")),
        Action::RoleChange { to, .. } => Some(to.to_string()),
        Action::Suspend => Some(Cause::Deactivated.describe().to_string()),
        Action::Reactivate { .. } => Some("active in the IdP".to_string()),
        Action::Delete {
            cause,
            after_days: Some(days),
            ..
        } => Some(format!(
            "{}; suspended now, deleted after {days} days unless reactivated",
            cause.describe()
        )),
        Action::Archive { cause, .. } | Action::Delete { cause, .. } => {
            Some(cause.describe().to_string())
        }
        Action::Skip { reason } => Some(reason.clone()),
        Action::Update { .. } => None,
    }
}
