//! Bringing a whole-tenant plan up to date with what was written since it was made, by
//! planning again only the people those writes can move: the directory users and members
//! written (`db::plans::touched_since`), and everyone who shares a link, an email or a
//! userName with them, then with those, and so on. Matching never looks further: a user
//! matches the member linked to it or holding one of its keys, competes for a member or a
//! new member's keys only with people holding the same keys, and its role comes from its
//! own groups. So the people reached this way are planned as a whole-tenant plan would
//! plan them, and everyone else keeps what the earlier plan said.
//!
//! A key or link someone gave up still bound them to its other holders in the earlier
//! plan: the touches keep the keys users and members held before a write (kind 3) and the
//! user a member was linked to, and the walk starts from those too.

use std::collections::{HashSet, VecDeque};

use crate::db::plans as stored_plans;
use crate::db::{DbError, members, users};
use crate::model::{Directory, DirectoryUser, Member, Settings};
use crate::scim::filter::fold;
use crate::sync::report::{Report, ReportEntry};
use crate::sync::{self};

/// The most people a plan is brought up to date for: past it, planning the whole tenant
/// (about 0.2 s at 100 000 members) is about as quick.
const AT_MOST: usize = 2_000;

/// Report `base`, made at plan version `since`, brought up to date with tenant
/// `tenant_id`'s writes after it, in `conn`'s snapshot; `None` when the tenant must be
/// planned whole: its touches say anything may have moved, or too many people did.
pub fn replan(
    conn: &rusqlite::Connection,
    tenant_id: i64,
    base: &Report,
    since: i64,
    settings: &Settings,
) -> Result<Option<Report>, DbError> {
    let Some(touched) = stored_plans::touched_since(conn, tenant_id, since, AT_MOST)? else {
        return Ok(None);
    };
    let mut reach = Reach::new(conn, tenant_id);
    reach
        .queue
        .extend(touched.users.into_iter().map(Node::User));
    reach
        .queue
        .extend(touched.members.into_iter().map(Node::Member));
    reach
        .queue
        .extend(touched.keys.iter().map(|k| Node::Key(key(k))));
    let Some(people) = reach.run()? else {
        return Ok(None);
    };
    let People {
        mut users,
        mut members,
        user_ids,
        member_ids,
    } = people;
    users.sort_unstable_by_key(|(pk, _)| *pk);
    members.sort_unstable_by_key(|m| m.pk);
    let directory = Directory {
        users: users.into_iter().map(|(_, u)| u).collect(),
        deleted: Vec::new(),
        complete: true,
    };
    let changes = sync::plan(&directory, &members, settings);
    let moved = |e: &ReportEntry| {
        e.user_id.as_ref().is_some_and(|u| user_ids.contains(u))
            || e.member_id.as_ref().is_some_and(|m| member_ids.contains(m))
    };
    Ok(Some(base.replacing(moved, &changes)))
}

/// A key as `sync::plan` matches by: folded, without white space at its edges. A member's
/// key stored with some is held by nobody a user can match.
fn key(stored: &str) -> String {
    fold(stored.trim())
}

enum Node {
    User(String),
    Member(String),
    Key(String),
}

/// The people reached, to plan again.
#[derive(Default)]
struct People {
    /// Directory users that exist, with their pks.
    users: Vec<(i64, DirectoryUser)>,
    members: Vec<Member>,
    /// Every directory user and member reached, by id, existing or not.
    user_ids: HashSet<String>,
    member_ids: HashSet<String>,
}

/// A walk from the people written to everyone they share a link or key with.
struct Reach<'a> {
    conn: &'a rusqlite::Connection,
    tenant_id: i64,
    /// Who is still to be looked at.
    queue: VecDeque<Node>,
    keys: HashSet<String>,
    people: People,
}

impl<'a> Reach<'a> {
    fn new(conn: &'a rusqlite::Connection, tenant_id: i64) -> Self {
        Reach {
            conn,
            tenant_id,
            queue: VecDeque::new(),
            keys: HashSet::new(),
            people: People::default(),
        }
    }

    /// Walks until nobody new is reached; `None` past [`AT_MOST`] people.
    fn run(mut self) -> Result<Option<People>, DbError> {
        while let Some(node) = self.queue.pop_front() {
            match node {
                Node::User(id) => self.user(id)?,
                Node::Member(id) => self.member(id)?,
                Node::Key(k) => self.key(k)?,
            }
            if self.people.user_ids.len() + self.people.member_ids.len() > AT_MOST {
                return Ok(None);
            }
        }
        Ok(Some(self.people))
    }

    fn user(&mut self, id: String) -> Result<(), DbError> {
        if self.people.user_ids.contains(&id) {
            return Ok(());
        }
        for m in members::holding_key(self.conn, self.tenant_id, None, Some(&id))? {
            self.queue.push_back(Node::Member(m));
        }
        let pks = users::directory_pks(self.conn, self.tenant_id, &[&id])?;
        let found = users::directory_users(self.conn, self.tenant_id, &pks, None)?;
        if let (Some(&pk), Some(user)) = (pks.first(), found.into_iter().next()) {
            let keys = [user.email.as_deref(), Some(user.user_name.as_str())];
            self.queue
                .extend(keys.into_iter().flatten().map(|k| Node::Key(key(k))));
            self.people.users.push((pk, user));
        }
        self.people.user_ids.insert(id);
        Ok(())
    }

    fn member(&mut self, id: String) -> Result<(), DbError> {
        if self.people.member_ids.contains(&id) {
            return Ok(());
        }
        if let Some(member) = members::for_plan_by_id(self.conn, self.tenant_id, &id)? {
            let p = &member.profile;
            let keys = [p.email.as_deref(), p.user_name.as_deref()];
            self.queue
                .extend(keys.into_iter().flatten().map(|k| Node::Key(key(k))));
            self.queue
                .extend(member.link.user_id().map(|u| Node::User(u.to_string())));
            self.people.members.push(member);
        }
        self.people.member_ids.insert(id);
        Ok(())
    }

    fn key(&mut self, k: String) -> Result<(), DbError> {
        if k.is_empty() || !self.keys.insert(k.clone()) {
            return Ok(());
        }
        for u in users::holding_key(self.conn, self.tenant_id, &k)? {
            self.queue.push_back(Node::User(u));
        }
        for m in members::holding_key(self.conn, self.tenant_id, Some(&k), None)? {
            self.queue.push_back(Node::Member(m));
        }
        Ok(())
    }
}
