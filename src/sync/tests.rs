//! One test per sync rule of DESIGN.md, table-driven where a rule has cases; and for every
//! scenario, the idempotence check: the plan applied (in memory, as `db::sync` does it)
//! leaves nothing for a second plan to do.

use serde_json::json;

use super::*;

const DEFAULT_REASON: &str = "viewer, the default role (no group maps to a role)";

fn role(s: &str) -> Role {
    s.parse().unwrap()
}

fn user(id: &str, email: &str) -> DirectoryUser {
    DirectoryUser {
        id: id.into(),
        user_name: email.into(),
        email: Some(email.into()),
        given_name: Some("Ada".into()),
        family_name: Some("Lovelace".into()),
        display_name: None,
        active: Some(true),
        groups: Vec::new(),
        external_id: None,
        attributes: Default::default(),
    }
}

fn in_groups(mut u: DirectoryUser, groups: &[&str]) -> DirectoryUser {
    u.groups = groups
        .iter()
        .enumerate()
        .map(|(i, g)| DirectoryGroup {
            id: format!("g{i}").into(),
            display_name: (*g).into(),
        })
        .collect();
    u
}

fn inactive(mut u: DirectoryUser) -> DirectoryUser {
    u.active = Some(false);
    u
}

/// A manual member nobody has linked yet.
fn manual(pk: i64, email: &str) -> Member {
    Member {
        pk,
        id: format!("m{pk}"),
        profile: Profile {
            email: Some(email.into()),
            user_name: None,
            given_name: Some("Old".into()),
            family_name: None,
            display_name: None,
        },
        role: role("viewer"),
        role_reason: "set manually".into(),
        status: MemberStatus::Active,
        managed: true,
        source: MemberSource::Manual,
        link: Link::None,
        deletion_scheduled: false,
    }
}

/// The member a previous sync made for `u`.
fn synced(pk: i64, u: &DirectoryUser, settings: &Settings) -> Member {
    let decision = roles::decide(&u.groups, settings);
    Member {
        pk,
        id: format!("m{pk}"),
        profile: u.profile(),
        role: decision.role.clone(),
        role_reason: decision.to_string(),
        status: if u.active != Some(false) {
            MemberStatus::Active
        } else {
            MemberStatus::Suspended
        },
        managed: true,
        source: MemberSource::Scim,
        link: Link::Live(u.id.clone()),
        deletion_scheduled: false,
    }
}

fn partial(users: Vec<DirectoryUser>) -> Directory {
    Directory {
        users,
        deleted: Vec::new(),
        complete: false,
    }
}

fn full(users: Vec<DirectoryUser>) -> Directory {
    Directory {
        users,
        deleted: Vec::new(),
        complete: true,
    }
}

fn deleting(user: DirectoryUser) -> Directory {
    Directory {
        users: Vec::new(),
        deleted: vec![user],
        complete: false,
    }
}

fn kinds(changes: &[Change]) -> Vec<ChangeKind> {
    changes.iter().map(Change::kind).collect()
}

/// What `db::sync::apply` does, on memory: the model of apply the idempotence checks use.
fn apply(members: &mut Vec<Member>, changes: &[Change], directory: &Directory) {
    for c in changes {
        let find = |members: &mut Vec<Member>| {
            let pk = c.member.as_ref().unwrap().pk;
            members.iter().position(|m| m.pk == pk).unwrap()
        };
        match &c.action {
            Action::Create { profile, role } => {
                let pk = members.iter().map(|m| m.pk).max().unwrap_or(0) + 1;
                members.push(Member {
                    pk,
                    id: format!("m{pk}"),
                    profile: profile.clone(),
                    role: role.role.clone(),
                    role_reason: role.to_string(),
                    status: MemberStatus::Active,
                    managed: true,
                    source: MemberSource::Scim,
                    link: Link::Live(c.user_id.clone().unwrap()),
                    deletion_scheduled: false,
                });
            }
            Action::Update { fields } => {
                let i = find(members);
                let m = &mut members[i];
                for f in fields {
                    let v = f.after.clone();
                    match f.field {
                        Field::Email => m.profile.email = v,
                        Field::UserName => m.profile.user_name = v,
                        Field::GivenName => m.profile.given_name = v,
                        Field::FamilyName => m.profile.family_name = v,
                        Field::DisplayName => m.profile.display_name = v,
                        Field::UserId => m.link = Link::Live(v.unwrap()),
                        Field::RoleReason => m.role_reason = v.unwrap(),
                        Field::Role | Field::Status => unreachable!("not an update field"),
                    }
                }
            }
            Action::RoleChange { to, .. } => {
                let i = find(members);
                members[i].role = to.role.clone();
                members[i].role_reason = to.to_string();
            }
            Action::Suspend => {
                let i = find(members);
                members[i].status = MemberStatus::Suspended;
            }
            Action::Reactivate { .. } => {
                let i = find(members);
                members[i].status = MemberStatus::Active;
                members[i].deletion_scheduled = false;
            }
            Action::Archive { .. } => {
                let i = find(members);
                members[i].status = MemberStatus::Archived;
            }
            Action::Delete {
                after_days: Some(_),
                ..
            } => {
                let i = find(members);
                members[i].status = MemberStatus::Suspended;
                members[i].deletion_scheduled = true;
            }
            Action::Delete { .. } => {
                let i = find(members);
                members.remove(i);
            }
            Action::Skip { .. } => {}
        }
    }
    // The directory rows an IdP deletes go away after the hook; their links are history.
    for m in members.iter_mut() {
        if let Link::Live(id) = &m.link
            && directory.deleted.iter().any(|u| &u.id == id)
        {
            m.link = Link::Gone(id.clone());
        }
    }
}

/// Plans, applies, and checks a second plan is settled. Returns the first plan.
fn plan_applied(directory: &Directory, members: &mut Vec<Member>, s: &Settings) -> Vec<Change> {
    let changes = plan(directory, members, s);
    apply(members, &changes, directory);
    let after = Directory {
        users: directory.users.clone(),
        deleted: Vec::new(),
        complete: directory.complete,
    };
    let again = plan(&after, members, s);
    assert!(
        is_settled(&again),
        "second plan not empty: {again:#?}\nafter first: {changes:#?}"
    );
    changes
}

// --- Matching --------------------------------------------------------------------------

#[test]
fn an_active_user_nobody_matches_becomes_a_member_and_an_inactive_one_does_not() {
    let s = Settings::default();
    let mut members = Vec::new();
    let changes = plan_applied(
        &partial(vec![
            user("u1", "ada@x.io"),
            inactive(user("u2", "bob@x.io")),
        ]),
        &mut members,
        &s,
    );
    assert_eq!(kinds(&changes), [ChangeKind::Create]);
    let Action::Create { profile, role } = &changes[0].action else {
        unreachable!()
    };
    assert_eq!(profile.email.as_deref(), Some("ada@x.io"));
    assert_eq!(profile.given_name.as_deref(), Some("Ada"));
    assert_eq!(role.to_string(), DEFAULT_REASON);
    assert_eq!(changes[0].user_id.as_deref(), Some("u1"));
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].link, Link::Live("u1".into()));
}

#[test]
fn matching_links_existing_members_by_link_then_email_or_username() {
    struct Case {
        name: &'static str,
        match_by: MatchBy,
        user: DirectoryUser,
        member: Member,
        /// Whether the user is linked to the member (else a new member is created).
        links: bool,
    }
    let mut no_email = user("u1", "ADA@X.IO");
    no_email.email = None;
    let mut login_name = user("u1", "ada");
    login_name.email = None;
    let mut relinked = manual(1, "other@x.io");
    relinked.link = Link::Live("u1".into());
    let mut by_name = manual(1, "someone@else.io");
    by_name.profile.user_name = Some("Ada@X.io".into());
    let cases = [
        Case {
            name: "email, case-insensitive",
            match_by: MatchBy::Email,
            user: user("u1", "Ada@X.io"),
            member: manual(1, "ada@x.io"),
            links: true,
        },
        Case {
            name: "userName when it is an email and there is no email",
            match_by: MatchBy::Email,
            user: no_email,
            member: manual(1, "ada@x.io"),
            links: true,
        },
        Case {
            name: "a login-name userName is no email",
            match_by: MatchBy::Email,
            user: login_name,
            member: manual(1, "ada@x.io"),
            links: false,
        },
        Case {
            name: "an existing link wins over a different email",
            match_by: MatchBy::Email,
            user: user("u1", "ada@x.io"),
            member: relinked,
            links: true,
        },
        Case {
            name: "by userName when the tenant chooses it",
            match_by: MatchBy::UserName,
            user: user("u1", "ada@x.io"),
            member: by_name,
            links: true,
        },
        Case {
            name: "not by email when the tenant matches by userName",
            match_by: MatchBy::UserName,
            user: user("u1", "ada@x.io"),
            member: manual(1, "ada@x.io"),
            links: false,
        },
    ];
    for c in cases {
        let s = Settings {
            match_by: c.match_by,
            ..Settings::default()
        };
        let changes = plan(
            &partial(vec![c.user.clone()]),
            std::slice::from_ref(&c.member),
            &s,
        );
        let created = changes.iter().any(|ch| ch.kind() == ChangeKind::Create);
        let skipped = changes.iter().any(|ch| ch.kind() == ChangeKind::Skip);
        if c.links {
            assert!(!created && !skipped, "{}: {changes:#?}", c.name);
            assert!(
                changes.iter().all(|ch| ch.member.as_ref().unwrap().pk == 1),
                "{}: {changes:#?}",
                c.name
            );
        } else {
            assert!(created || skipped, "{}: {changes:#?}", c.name);
        }
    }
}

#[test]
fn primary_email_is_the_matching_email() {
    let data = json!({"userName":"ada","emails":[{"value":"home@x.io"},{"value":"Work@X.io","primary":true}],
        "name":{"givenName":"Ada","familyName":"L"},"displayName":"Ada L","active":false});
    let u = DirectoryUser::from_data("u1", data.as_object().unwrap(), Vec::new());
    assert_eq!(u.email.as_deref(), Some("Work@X.io"));
    assert_eq!(u.match_email(), Some("Work@X.io"));
    assert_eq!(
        (
            u.given_name.as_deref(),
            u.family_name.as_deref(),
            u.display_name.as_deref(),
            u.active
        ),
        (Some("Ada"), Some("L"), Some("Ada L"), Some(false))
    );
    let data = json!({"userName":"bob@x.io"});
    let u = DirectoryUser::from_data("u2", data.as_object().unwrap(), Vec::new());
    assert_eq!(
        u.active, None,
        "absent active is unassigned: no word on access"
    );
    assert_eq!(u.match_email(), Some("bob@x.io"));
    // Names of spaces are none (authentik's `familyName: " "`); others lose their edges.
    let data = json!({"userName":"cy@x.io","name":{"givenName":" Cy ","familyName":" "},"displayName":"\t"});
    let u = DirectoryUser::from_data("u3", data.as_object().unwrap(), Vec::new());
    assert_eq!(
        (
            u.given_name.as_deref(),
            u.family_name.as_deref(),
            u.display_name.as_deref()
        ),
        (Some("Cy"), None, None)
    );
}

#[test]
fn once_linked_the_idps_values_overwrite_the_members() {
    let s = Settings::default();
    let mut members = vec![manual(1, "ada@x.io")];
    let mut u = user("u1", "ada@x.io");
    u.display_name = Some("Ada Lovelace".into());
    let changes = plan_applied(&partial(vec![u]), &mut members, &s);
    assert_eq!(kinds(&changes), [ChangeKind::Update]);
    let Action::Update { fields } = &changes[0].action else {
        unreachable!()
    };
    let got: Vec<(Field, Option<&str>, Option<&str>)> = fields
        .iter()
        .map(|f| (f.field, f.before.as_deref(), f.after.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (Field::UserName, None, Some("ada@x.io")),
            (Field::GivenName, Some("Old"), Some("Ada")),
            (Field::FamilyName, None, Some("Lovelace")),
            (Field::DisplayName, None, Some("Ada Lovelace")),
            (Field::UserId, None, Some("u1")),
            (
                Field::RoleReason,
                Some("set manually"),
                Some(DEFAULT_REASON)
            ),
        ]
    );
    assert_eq!(
        members[0].source,
        MemberSource::Manual,
        "the source is history"
    );
    assert_eq!(members[0].id, "m1");
}

#[test]
fn a_member_linked_to_another_live_user_is_not_taken_over() {
    let s = Settings::default();
    let mut owner = manual(1, "ada@x.io");
    owner.link = Link::Live("u-other".into());
    let changes = plan(&partial(vec![user("u1", "ada@x.io")]), &[owner], &s);
    assert_eq!(kinds(&changes), [ChangeKind::Skip]);
    assert!(changes[0].member.is_none());
}

#[test]
fn two_users_with_one_email_create_one_member_and_skip_the_other() {
    let s = Settings::default();
    let mut members = Vec::new();
    let mut second = user("u2", "ada@x.io");
    second.user_name = "ada2@x.io".into();
    let changes = plan_applied(
        &full(vec![user("u1", "ada@x.io"), second]),
        &mut members,
        &s,
    );
    assert_eq!(kinds(&changes), [ChangeKind::Create, ChangeKind::Skip]);
    assert_eq!(members.len(), 1);
}

#[test]
fn an_email_another_member_holds_is_not_copied() {
    let s = Settings::default();
    let u = user("u1", "ada@x.io");
    let mut members = vec![synced(1, &u, &s), manual(2, "taken@x.io")];
    let mut moved = u.clone();
    moved.email = Some("taken@x.io".into());
    moved.given_name = Some("Augusta".into());
    let changes = plan_applied(&partial(vec![moved]), &mut members, &s);
    assert_eq!(kinds(&changes), [ChangeKind::Update, ChangeKind::Skip]);
    assert_eq!(members[0].profile.email.as_deref(), Some("ada@x.io"));
    assert_eq!(members[0].profile.given_name.as_deref(), Some("Augusta"));
}

/// One person's email (and userName) changed away and another person given it in the same
/// sync, whichever the directory lists first: the change frees it, so the newcomer's member
/// is created in the same pass instead of being skipped until the next sync.
#[test]
fn an_email_freed_and_taken_in_one_sync_settles_in_one_pass() {
    let s = Settings::default();
    let ada = user("u1", "ada@x.io");
    let renamed = user("u1", "ada.lovelace@x.io");
    let newcomer = user("u2", "ada@x.io");
    for users in [
        vec![renamed.clone(), newcomer.clone()],
        vec![newcomer.clone(), renamed.clone()],
    ] {
        let mut members = vec![synced(1, &ada, &s)];
        let changes = plan_applied(&full(users), &mut members, &s);
        assert_eq!(kinds(&changes), [ChangeKind::Update, ChangeKind::Create]);
        let email_of = |link: &str| {
            members
                .iter()
                .find(|m| m.link == Link::Live(link.into()))
                .and_then(|m| m.profile.email.clone())
        };
        assert_eq!(email_of("u1").as_deref(), Some("ada.lovelace@x.io"));
        assert_eq!(email_of("u2").as_deref(), Some("ada@x.io"));
    }

    // Between people already linked, whichever the directory lists first: B takes the
    // email A gives up; C, B and A each take the next one's in a chain of renames.
    let bea = user("u0", "bea@x.io");
    for order in [[0, 1], [1, 0]] {
        let mut members = vec![synced(1, &bea, &s), synced(2, &ada, &s)];
        let wanted = [user("u0", "ada@x.io"), renamed.clone()];
        let users = order.iter().map(|&k| wanted[k].clone()).collect();
        let changes = plan_applied(&full(users), &mut members, &s);
        assert_eq!(kinds(&changes), [ChangeKind::Update, ChangeKind::Update]);
        assert_eq!(members[0].profile.email.as_deref(), Some("ada@x.io"));
        assert_eq!(
            members[1].profile.email.as_deref(),
            Some("ada.lovelace@x.io")
        );
    }
    let chain = ["a@x.io", "b@x.io", "c@x.io", "d@x.io"];
    let mut members: Vec<Member> = (0..3)
        .map(|k| synced(k as i64 + 1, &user(&format!("u{k}"), chain[k]), &s))
        .collect();
    let users = (0..3)
        .map(|k| user(&format!("u{k}"), chain[k + 1]))
        .collect();
    let changes = plan_applied(&full(users), &mut members, &s);
    assert_eq!(kinds(&changes), [ChangeKind::Update; 3]);
    // A swap cannot be applied one update at a time: both are skipped, and say why.
    let mut members = vec![synced(1, &bea, &s), synced(2, &ada, &s)];
    let swapped = vec![user("u0", "ada@x.io"), user("u1", "bea@x.io")];
    let changes = plan(&full(swapped), &members, &s);
    assert!(
        changes.iter().all(|c| c.kind() == ChangeKind::Skip),
        "{changes:#?}"
    );
    apply(&mut members, &changes, &full(Vec::new()));
    assert_eq!(members[0].profile.email.as_deref(), Some("bea@x.io"));

    // A member not managed by provisioning keeps its email: nothing is freed.
    let mut kept = synced(1, &ada, &s);
    kept.managed = false;
    let changes = plan(&full(vec![newcomer, renamed]), &[kept], &s);
    assert_eq!(kinds(&changes), [ChangeKind::Skip, ChangeKind::Skip]);
}

// --- Not managed -----------------------------------------------------------------------

#[test]
fn unmanaged_members_are_never_changed_only_reported_as_skipped() {
    struct Case {
        name: &'static str,
        settings: Settings,
        directory: Directory,
        /// Whether sync would have changed the member (and so reports a skip).
        reported: bool,
    }
    let u = user("u1", "ada@x.io");
    let admin = in_groups(u.clone(), &["scimd-role-admin"]);
    let cases = [
        Case {
            name: "profile and link",
            settings: Settings::default(),
            directory: partial(vec![u.clone()]),
            reported: true,
        },
        Case {
            name: "role",
            settings: Settings::default(),
            directory: partial(vec![admin]),
            reported: true,
        },
        Case {
            name: "deactivation, suspend",
            settings: Settings::default(),
            directory: partial(vec![inactive(u.clone())]),
            reported: true,
        },
        Case {
            name: "deactivation, delete",
            settings: Settings {
                on_deactivate: DeactivatePolicy::Delete,
                ..Settings::default()
            },
            directory: partial(vec![inactive(u.clone())]),
            reported: true,
        },
        Case {
            name: "IdP delete",
            settings: Settings {
                on_delete: DeletePolicy::Delete,
                ..Settings::default()
            },
            directory: deleting(u.clone()),
            reported: true,
        },
        Case {
            name: "absent, archive",
            settings: Settings {
                absent: AbsentPolicy::Archive,
                ..Settings::default()
            },
            directory: full(Vec::new()),
            reported: true,
        },
        Case {
            name: "absent, retain",
            settings: Settings::default(),
            directory: full(Vec::new()),
            reported: false,
        },
    ];
    for c in cases {
        let mut m = manual(1, "ada@x.io");
        m.managed = false;
        let before = m.clone();
        let mut members = vec![m];
        let changes = plan_applied(&c.directory, &mut members, &c.settings);
        assert_eq!(members, [before], "{}", c.name);
        if c.reported {
            assert_eq!(kinds(&changes), [ChangeKind::Skip], "{}", c.name);
            let Action::Skip { reason } = &changes[0].action else {
                unreachable!()
            };
            assert!(reason.starts_with("not managed"), "{}: {reason}", c.name);
        } else {
            assert!(changes.is_empty(), "{}: {changes:#?}", c.name);
        }
    }
}

// --- Roles -----------------------------------------------------------------------------

#[test]
fn roles_come_from_the_highest_ranked_mapped_group_else_the_default() {
    let s = Settings {
        mappings: vec![
            RoleMapping {
                group: "Eng-Admins".into(),
                role: role("admin"),
            },
            RoleMapping {
                group: "Staff".into(),
                role: role("member"),
            },
            // Custom mappings cannot override reserved names (validate refuses them too).
            RoleMapping {
                group: "scimd-role-viewer".into(),
                role: role("owner"),
            },
            RoleMapping {
                group: "Ghosts".into(),
                role: role("nonexistent"),
            },
        ],
        ..Settings::default()
    };
    let cases: &[(&[&str], &str)] = &[
        (&[], DEFAULT_REASON),
        (&["Unmapped"], DEFAULT_REASON),
        (&["Ghosts"], DEFAULT_REASON),
        (&["Staff"], "member, from group Staff"),
        (&["eng-admins"], "admin, from group eng-admins"),
        (&["Staff", "Eng-Admins"], "admin, from group Eng-Admins"),
        (&["Eng-Admins", "Staff"], "admin, from group Eng-Admins"),
        (
            &["scimd-role-owner", "Eng-Admins"],
            "owner, from reserved group scimd-role-owner",
        ),
        (
            &["SCIMD-Role-Admin"],
            "admin, from reserved group SCIMD-Role-Admin",
        ),
        (
            &["scimd-role-viewer"],
            "viewer, from reserved group scimd-role-viewer",
        ),
        (&["scimd-role-billing"], DEFAULT_REASON),
        (
            &["Eng-Admins", "scimd-role-admin"],
            "admin, from reserved group scimd-role-admin",
        ),
        // Spaces at a name's edges are not part of it (an IdP that pads its names).
        (&[" Eng-Admins "], "admin, from group  Eng-Admins "),
        (
            &["\tscimd-role-owner "],
            "owner, from reserved group \tscimd-role-owner ",
        ),
    ];
    for (groups, want) in cases {
        let got = roles::decide(&in_groups(user("u", "a@x.io"), groups).groups, &s);
        assert_eq!(got.to_string(), *want, "groups {groups:?}");
    }
}

#[test]
fn a_custom_prefix_and_role_list_define_the_reserved_names() {
    let s = Settings {
        roles: vec![role("billing"), role("support")],
        default_role: role("support"),
        role_prefix: "knock-role-".into(),
        ..Settings::default()
    };
    let decide = |g: &[&str]| roles::decide(&in_groups(user("u", "a@x.io"), g).groups, &s);
    assert_eq!(decide(&["knock-role-billing"]).role, role("billing"));
    assert_eq!(decide(&["scimd-role-billing"]).role, role("support"));
    assert_eq!(decide(&["knock-role-admin"]).role, role("support"));
}

#[test]
fn settings_validation_names_the_problem() {
    type Edit = fn(&mut Settings);
    let cases: &[(Edit, &str)] = &[
        (|s| s.roles.clear(), "at least one role"),
        (|s| s.roles.push("admin".parse().unwrap()), "listed twice"),
        (
            |s| s.default_role = "guest".parse().unwrap(),
            "default role guest",
        ),
        (|s| s.role_prefix = " ".into(), "invalid role prefix"),
        (
            |s| {
                s.mappings.push(RoleMapping {
                    group: "SCIMD-ROLE-ADMIN".into(),
                    role: "owner".parse().unwrap(),
                })
            },
            "reserved",
        ),
        (
            |s| {
                s.mappings.push(RoleMapping {
                    group: "Eng".into(),
                    role: "guest".parse().unwrap(),
                })
            },
            "unmap it first",
        ),
    ];
    assert!(Settings::default().validate().is_ok());
    for (edit, want) in cases {
        let mut s = Settings::default();
        edit(&mut s);
        let err = s.validate().unwrap_err();
        assert!(err.contains(want), "{err}");
    }
    assert!("Bad Role".parse::<Role>().is_err());
    assert_eq!("Admin".parse::<Role>().unwrap(), role("admin"));
}

#[test]
fn group_changes_change_roles_and_their_explanations() {
    let s = Settings {
        mappings: vec![
            RoleMapping {
                group: "Eng-Admins".into(),
                role: role("admin"),
            },
            RoleMapping {
                group: "Ops-Admins".into(),
                role: role("admin"),
            },
        ],
        ..Settings::default()
    };
    let u = user("u1", "ada@x.io");
    let mut members = vec![synced(1, &u, &s)];

    let changes = plan_applied(
        &partial(vec![in_groups(u.clone(), &["Ops-Admins"])]),
        &mut members,
        &s,
    );
    assert_eq!(kinds(&changes), [ChangeKind::RoleChange]);
    let Action::RoleChange { from, to } = &changes[0].action else {
        unreachable!()
    };
    assert_eq!(
        (from.as_str(), to.to_string().as_str()),
        ("viewer", "admin, from group Ops-Admins")
    );

    // Same role from another group: the explanation follows, as an update.
    let changes = plan_applied(
        &partial(vec![in_groups(u.clone(), &["Eng-Admins"])]),
        &mut members,
        &s,
    );
    assert_eq!(kinds(&changes), [ChangeKind::Update]);
    assert_eq!(members[0].role_reason, "admin, from group Eng-Admins");

    // Leaving the group: back to the default.
    let changes = plan_applied(&partial(vec![u]), &mut members, &s);
    assert_eq!(kinds(&changes), [ChangeKind::RoleChange]);
    assert_eq!(members[0].role, role("viewer"));
}

/// A deactivation under the `delete` policy carries the IdP's other changes with it, as
/// under `suspend`: a deletion the guard holds (or one waiting out its grace period) must
/// not leave the member with the role a group the IdP removed it from gave it.
#[test]
fn a_deactivation_to_delete_still_applies_the_role_and_names_the_idp_changed() {
    let mut s = Settings {
        mappings: vec![RoleMapping {
            group: "Admins".into(),
            role: role("admin"),
        }],
        on_deactivate: DeactivatePolicy::Delete,
        ..Settings::default()
    };
    let admin = in_groups(user("u1", "ada@x.io"), &["Admins"]);
    for grace in [None, Some(30)] {
        s.delete_grace_days = grace;
        let mut members = vec![synced(1, &admin, &s)];
        assert_eq!(members[0].role, role("admin"));
        // Out of the group, a new email, and deactivated, all at once.
        let mut gone = inactive(user("u1", "ada@new.io"));
        gone.given_name = Some("Augusta".into());
        let changes = plan(&partial(vec![gone.clone()]), &members, &s);
        assert_eq!(
            kinds(&changes),
            [
                ChangeKind::Update,
                ChangeKind::RoleChange,
                ChangeKind::Delete
            ],
            "grace {grace:?}"
        );
        // What the guard leaves when it holds the deletion: the rest, applied.
        let held: Vec<Change> = changes
            .into_iter()
            .filter(|c| c.kind() != ChangeKind::Delete)
            .collect();
        apply(&mut members, &held, &partial(vec![gone.clone()]));
        assert_eq!(members[0].role, role("viewer"));
        assert_eq!(members[0].profile.email.as_deref(), Some("ada@new.io"));
        assert_eq!(members[0].profile.given_name.as_deref(), Some("Augusta"));
        assert_eq!(
            members[0].status,
            MemberStatus::Active,
            "the deletion is held"
        );
        // Once the deletion is let through, it is all that is left to do.
        let changes = plan_applied(&partial(vec![gone]), &mut members, &s);
        assert_eq!(kinds(&changes), [ChangeKind::Delete], "grace {grace:?}");
    }
}

#[test]
fn a_removed_role_falls_back_to_the_default_for_unlinked_members_on_full_sync() {
    let s = Settings {
        roles: vec![role("admin"), role("viewer")],
        ..Settings::default()
    };
    let mut m = manual(1, "ada@x.io");
    m.role = role("owner");
    let mut members = vec![m];
    let changes = plan_applied(&full(Vec::new()), &mut members, &s);
    assert_eq!(kinds(&changes), [ChangeKind::RoleChange]);
    assert_eq!(
        members[0].role_reason,
        "viewer, the default role (role owner no longer exists)"
    );
}

// --- Deactivation, deletion, reactivation ----------------------------------------------

#[test]
fn deactivation_and_idp_deletion_follow_the_tenant_policies() {
    struct Case {
        name: &'static str,
        settings: Settings,
        status: MemberStatus,
        directory: fn(DirectoryUser) -> Directory,
        want: Vec<ChangeKind>,
        /// The member's status afterwards; `None`: deleted.
        after: Option<MemberStatus>,
    }
    let policy = |d: DeactivatePolicy, del: DeletePolicy| Settings {
        on_deactivate: d,
        on_delete: del,
        ..Settings::default()
    };
    use ChangeKind::*;
    use MemberStatus::*;
    let cases = [
        Case {
            name: "deactivate, suspend (default)",
            settings: Settings::default(),
            status: Active,
            directory: |u| partial(vec![inactive(u)]),
            want: vec![Suspend],
            after: Some(Suspended),
        },
        Case {
            name: "deactivate again: nothing",
            settings: Settings::default(),
            status: Suspended,
            directory: |u| partial(vec![inactive(u)]),
            want: vec![],
            after: Some(Suspended),
        },
        Case {
            name: "deactivate an archived member: stays archived",
            settings: Settings::default(),
            status: Archived,
            directory: |u| partial(vec![inactive(u)]),
            want: vec![],
            after: Some(Archived),
        },
        Case {
            name: "deactivate, delete",
            settings: policy(DeactivatePolicy::Delete, DeletePolicy::Archive),
            status: Active,
            directory: |u| partial(vec![inactive(u)]),
            want: vec![Delete],
            after: None,
        },
        Case {
            // Suspended under the `suspend` policy, before `delete` was set: a policy
            // applies from when it is set (the settings page says so).
            name: "deactivate, delete, already suspended: stays suspended",
            settings: policy(DeactivatePolicy::Delete, DeletePolicy::Archive),
            status: Suspended,
            directory: |u| partial(vec![inactive(u)]),
            want: vec![],
            after: Some(Suspended),
        },
        Case {
            name: "IdP DELETE of an archived member, delete: stays archived",
            settings: policy(DeactivatePolicy::Suspend, DeletePolicy::Delete),
            status: Archived,
            directory: deleting,
            want: vec![],
            after: Some(Archived),
        },
        Case {
            name: "IdP DELETE, archive (default)",
            settings: Settings::default(),
            status: Active,
            directory: deleting,
            want: vec![Archive],
            after: Some(Archived),
        },
        Case {
            name: "IdP DELETE of a suspended member, archive",
            settings: Settings::default(),
            status: Suspended,
            directory: deleting,
            want: vec![Archive],
            after: Some(Archived),
        },
        Case {
            name: "IdP DELETE, delete",
            settings: policy(DeactivatePolicy::Suspend, DeletePolicy::Delete),
            status: Active,
            directory: deleting,
            want: vec![Delete],
            after: None,
        },
        Case {
            name: "reactivate a suspended member",
            settings: Settings::default(),
            status: Suspended,
            directory: |u| partial(vec![u]),
            want: vec![Reactivate],
            after: Some(Active),
        },
        Case {
            name: "an archived member the IdP has again is restored",
            settings: Settings::default(),
            status: Archived,
            directory: |u| partial(vec![u]),
            want: vec![Reactivate],
            after: Some(Active),
        },
        Case {
            name: "Entra's periodic active:true changes nothing",
            settings: Settings::default(),
            status: Active,
            directory: |u| partial(vec![u]),
            want: vec![],
            after: Some(Active),
        },
    ];
    for c in cases {
        let u = user("u1", "ada@x.io");
        let mut m = synced(7, &u, &c.settings);
        m.status = c.status;
        let mut members = vec![m];
        let changes = plan_applied(&(c.directory)(u), &mut members, &c.settings);
        assert_eq!(kinds(&changes), c.want, "{}", c.name);
        assert_eq!(members.first().map(|m| m.status), c.after, "{}", c.name);
        if let Some(m) = members.first() {
            assert_eq!((m.pk, m.id.as_str()), (7, "m7"), "{}: same member", c.name);
        }
    }
}

/// The IdP's DELETE takes the person out of every group: the role a group gave goes with
/// it, before the archive or deletion (which the guard may hold), and an archived member
/// is left as it is.
#[test]
fn an_idp_deletion_takes_away_the_role_of_the_groups_it_left() {
    let s = Settings::default();
    let owner = in_groups(user("u1", "ada@x.io"), &["scimd-role-owner"]);
    let member = synced(1, &owner, &s);
    assert_eq!(member.role, role("owner"));
    // As the DELETE hook plans it: the memberships are gone with the user row.
    let gone = user("u1", "ada@x.io");
    let changes = plan(&deleting(gone.clone()), std::slice::from_ref(&member), &s);
    assert_eq!(
        kinds(&changes),
        [ChangeKind::RoleChange, ChangeKind::Archive]
    );
    let Action::RoleChange { to, .. } = &changes[0].action else {
        unreachable!()
    };
    assert_eq!(to.role, role("viewer"));
    let mut archived = member;
    archived.status = MemberStatus::Archived;
    assert!(plan(&deleting(gone), &[archived], &s).is_empty());
}

#[test]
fn deletion_causes_are_reported() {
    let s = Settings {
        on_deactivate: DeactivatePolicy::Delete,
        ..Settings::default()
    };
    let u = user("u1", "ada@x.io");
    let changes = plan(
        &partial(vec![inactive(u.clone())]),
        &[synced(1, &u, &s)],
        &s,
    );
    assert_eq!(
        changes[0].action,
        Action::Delete {
            cause: Cause::Deactivated,
            from: MemberStatus::Active,
            after_days: None,
        }
    );
    let changes = plan(&deleting(u.clone()), &[synced(1, &u, &s)], &s);
    assert_eq!(
        changes[0].action,
        Action::Archive {
            cause: Cause::DeletedByIdp,
            from: MemberStatus::Active
        }
    );
}

#[test]
fn a_person_the_idp_recreates_is_matched_again_and_restored() {
    let s = Settings::default();
    let old = user("u-old", "ada@x.io");
    let mut m = synced(1, &old, &s);
    m.status = MemberStatus::Archived;
    m.link = Link::Gone("u-old".into());
    let mut members = vec![m];
    let changes = plan_applied(&partial(vec![user("u-new", "ada@x.io")]), &mut members, &s);
    assert_eq!(
        kinds(&changes),
        [ChangeKind::Update, ChangeKind::Reactivate]
    );
    assert_eq!(members[0].link, Link::Live("u-new".into()));
    assert_eq!(members[0].pk, 1);
}

/// Matching by email, a person the IdP re-creates is still found by userName when it has
/// no email (Entra users without `mail`), or when its email changed meanwhile; a live
/// member with the same userName and another email is not taken over.
#[test]
fn a_person_recreated_without_an_email_or_with_a_new_one_is_found_by_username() {
    let s = Settings::default();
    let mut no_email = user("u-old", "ada");
    no_email.email = None;
    let mut gone = synced(1, &no_email, &s);
    gone.status = MemberStatus::Archived;
    gone.link = Link::Gone("u-old".into());
    let mut members = vec![gone];
    let mut again = no_email.clone();
    again.id = "u-new".into();
    let changes = plan_applied(&partial(vec![again]), &mut members, &s);
    assert_eq!(
        kinds(&changes),
        [ChangeKind::Update, ChangeKind::Reactivate]
    );
    assert_eq!(members[0].link, Link::Live("u-new".into()));

    let old = user("u-1", "grace@x.io");
    let mut gone = synced(2, &old, &s);
    gone.status = MemberStatus::Archived;
    gone.link = Link::Gone("u-1".into());
    let mut members = vec![gone];
    let mut renamed = user("u-2", "grace@x.io");
    renamed.email = Some("grace@new.io".into());
    let changes = plan_applied(&partial(vec![renamed]), &mut members, &s);
    assert_eq!(
        kinds(&changes),
        [ChangeKind::Update, ChangeKind::Reactivate]
    );
    assert_eq!(members[0].profile.email.as_deref(), Some("grace@new.io"));

    // A manual member with that userName and another email stays apart.
    let mut other = manual(3, "hopper@x.io");
    other.profile.user_name = Some("grace@x.io".into());
    let mut members = vec![other];
    let mut newcomer = user("u-3", "grace@x.io");
    newcomer.email = Some("grace@elsewhere.io".into());
    let changes = plan_applied(&partial(vec![newcomer]), &mut members, &s);
    assert_eq!(kinds(&changes), [ChangeKind::Skip]);
}

// --- Full sync and absent people -------------------------------------------------------

#[test]
fn full_sync_handles_people_the_idp_no_longer_has() {
    use ChangeKind::*;
    let u = user("u1", "ada@x.io");
    let cases: Vec<(&str, Settings, Member, Vec<ChangeKind>)> = vec![
        (
            "manual, retain (default)",
            Settings::default(),
            manual(1, "bob@x.io"),
            vec![],
        ),
        (
            "manual, archive",
            Settings {
                absent: AbsentPolicy::Archive,
                ..Settings::default()
            },
            manual(1, "bob@x.io"),
            vec![Archive],
        ),
        (
            "linked to a user the IdP deleted, archive",
            Settings::default(),
            {
                let mut m = synced(1, &u, &Settings::default());
                m.link = Link::Gone("u1".into());
                m
            },
            vec![Archive],
        ),
        (
            "linked to a user the IdP deleted, delete",
            Settings {
                on_delete: DeletePolicy::Delete,
                ..Settings::default()
            },
            {
                let mut m = synced(1, &u, &Settings::default());
                m.link = Link::Gone("u1".into());
                m
            },
            vec![Delete],
        ),
        (
            "already archived",
            Settings {
                absent: AbsentPolicy::Archive,
                ..Settings::default()
            },
            {
                let mut m = manual(1, "bob@x.io");
                m.status = MemberStatus::Archived;
                m
            },
            vec![],
        ),
    ];
    for (name, s, m, want) in cases {
        let mut members = vec![m];
        let changes = plan_applied(&full(Vec::new()), &mut members, &s);
        assert_eq!(kinds(&changes), want, "{name}");
        if want == [Archive] {
            let Action::Archive { cause, .. } = &changes[0].action else {
                unreachable!()
            };
            let expected = if name.starts_with("manual") {
                Cause::Absent
            } else {
                Cause::DeletedByIdp
            };
            assert_eq!(*cause, expected, "{name}");
        }
    }
}

#[test]
fn a_write_never_archives_people_it_did_not_touch() {
    let s = Settings {
        absent: AbsentPolicy::Archive,
        ..Settings::default()
    };
    let changes = plan(
        &partial(vec![user("u1", "ada@x.io")]),
        &[manual(1, "bob@x.io")],
        &s,
    );
    assert_eq!(kinds(&changes), [ChangeKind::Create]);
}

#[test]
fn a_full_sync_of_a_mixed_tenant_settles_in_one_pass() {
    let s = Settings {
        absent: AbsentPolicy::Archive,
        mappings: vec![RoleMapping {
            group: "Eng".into(),
            role: role("member"),
        }],
        ..Settings::default()
    };
    let kept = user("u1", "kept@x.io");
    let users = vec![
        in_groups(kept.clone(), &["Eng"]),
        in_groups(user("u2", "new@x.io"), &["scimd-role-admin"]),
        user("u3", "manual@x.io"),
        inactive(user("u4", "gone@x.io")),
    ];
    let mut members = vec![
        synced(1, &kept, &s),
        manual(2, "manual@x.io"),
        manual(3, "stranger@x.io"),
        synced(4, &user("u4", "gone@x.io"), &s),
    ];
    let changes = plan_applied(&full(users), &mut members, &s);
    use ChangeKind::*;
    // The linked people first (u1, u4), then the others in directory order.
    assert_eq!(
        kinds(&changes),
        [RoleChange, Suspend, Create, Update, Archive]
    );
    let report = Report::new(&changes);
    assert_eq!(
        report.summary(),
        "create 1, update 1, role_change 1, suspend 1, archive 1"
    );
}

// --- Report ----------------------------------------------------------------------------

#[test]
fn the_report_groups_counts_and_details_every_change() {
    let s = Settings::default();
    let u = user("u1", "ada@x.io");
    let mut m = synced(1, &u, &s);
    m.status = MemberStatus::Suspended;
    let mut unmanaged = manual(2, "bob@x.io");
    unmanaged.managed = false;
    let changes = plan(
        &partial(vec![
            in_groups(u, &["scimd-role-admin"]),
            user("u2", "bob@x.io"),
            user("u3", "cy@x.io"),
        ]),
        &[m, unmanaged],
        &s,
    );
    let report = Report::new(&changes);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["counts"],
        json!({"create":1,"update":0,"role_change":1,"suspend":0,"reactivate":1,
               "archive":0,"delete":0,"skip":1})
    );
    assert_eq!(
        report::Counts::of(&changes),
        report.counts,
        "what a run records without building its report"
    );
    // An audit entry's detail is the report line borrowed from its change: the same JSON.
    for change in &changes {
        assert_eq!(
            serde_json::to_value(report::ReportEntry::borrowed(change)).unwrap(),
            serde_json::to_value(report::ReportEntry::of(change)).unwrap()
        );
    }
    let keys: Vec<&String> = json["changes"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["create", "role_change", "reactivate", "skip"]);
    assert_eq!(
        json["changes"]["role_change"][0],
        json!({"kind":"role_change","memberId":"m1","subject":"ada@x.io","userId":"u1",
               "fields":[{"field":"role","before":"viewer","after":"admin"}],
               "reason":"admin, from reserved group scimd-role-admin"})
    );
    assert_eq!(
        json["changes"]["reactivate"][0]["fields"],
        json!([{"field":"status","before":"suspended","after":"active"}])
    );
    assert_eq!(json["changes"]["create"][0]["memberId"], json!(null));
    assert_eq!(report.applicable(), 3);

    let csv = report.to_csv();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("kind,memberId,subject,userId,field,before,after,reason")
    );
    assert!(csv.contains("role_change,m1,ada@x.io,u1,role,viewer,admin,\"admin, from reserved group scimd-role-admin\""), "{csv}");
    assert!(csv.contains("create,,cy@x.io,u3,email,,cy@x.io,"), "{csv}");
    assert!(csv.contains("skip,m2,bob@x.io,u2,,,,not managed"), "{csv}");
    assert!(
        report
            .to_text()
            .starts_with("create 1, role_change 1, reactivate 1, skip 1\n")
    );
}

#[test]
fn text_enums_round_trip_and_refuse_unknown_spellings() {
    for p in DeactivatePolicy::ALL {
        assert_eq!(p.as_str().parse::<DeactivatePolicy>().unwrap(), *p);
    }
    assert_eq!(
        "ARCHIVE".parse::<DeletePolicy>().unwrap(),
        DeletePolicy::Archive
    );
    assert_eq!("username".parse::<MatchBy>().unwrap(), MatchBy::UserName);
    let err = "keep".parse::<AbsentPolicy>().unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid absent-member policy \"keep\": expected one of retain, archive"
    );
}

#[test]
fn with_a_grace_period_a_deletion_suspends_once_and_reactivation_restores() {
    let s = Settings {
        on_deactivate: DeactivatePolicy::Delete,
        on_delete: DeletePolicy::Delete,
        delete_grace_days: Some(7),
        ..Settings::default()
    };
    let u = user("u1", "ada@x.io");
    let mut members = vec![synced(1, &u, &s)];
    let changes = plan(&partial(vec![inactive(u.clone())]), &members, &s);
    assert_eq!(
        changes[0].action,
        Action::Delete {
            cause: Cause::Deactivated,
            from: MemberStatus::Active,
            after_days: Some(7),
        }
    );
    assert_eq!(changes[0].member.as_ref().unwrap().pk, 1);
    // Once scheduled, the same deactivation (or the IdP's DELETE) plans nothing more.
    members[0].status = MemberStatus::Suspended;
    members[0].deletion_scheduled = true;
    assert!(plan(&partial(vec![inactive(u.clone())]), &members, &s).is_empty());
    assert!(plan(&deleting(u.clone()), &members, &s).is_empty());
    // Active in the IdP again within the period: the same member is reactivated.
    let changes = plan(&partial(vec![u.clone()]), &members, &s);
    assert_eq!(
        changes[0].action,
        Action::Reactivate {
            from: MemberStatus::Suspended
        }
    );
}
