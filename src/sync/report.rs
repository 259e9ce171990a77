//! The report of a plan: what test mode shows and what force sync prints, grouped by kind of
//! change with counts and per-person detail, exportable as JSON and CSV.
//!
//! A report is built from the plan alone, so the report of a dry run and the report of the
//! run that applies the same plan are equal, change for change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::member_csv::guarded;
use super::plan::{Change, ChangeKind, FieldChange, fields_in, reason_of};
use crate::model::TextEnum;

/// One change as a person reads it: owned in a report, or borrowed from its change
/// (`ReportEntry<&str>`, [`ReportEntry::borrowed`]) to serialise it without copies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportEntry<S = String> {
    pub kind: ChangeKind,
    /// The member's id; `None` for a member the change creates.
    pub member_id: Option<S>,
    /// The email, else the userName.
    pub subject: S,
    /// The directory user behind the change.
    pub user_id: Option<S>,
    pub fields: Vec<FieldChange<S>>,
    pub reason: Option<String>,
}

impl ReportEntry {
    pub fn of(change: &Change) -> ReportEntry {
        let entry = ReportEntry::borrowed(change);
        ReportEntry {
            kind: entry.kind,
            member_id: entry.member_id.map(str::to_string),
            subject: entry.subject.to_string(),
            user_id: entry.user_id.map(str::to_string),
            fields: entry.fields.iter().map(FieldChange::owned).collect(),
            reason: entry.reason,
        }
    }
}

impl<'a> ReportEntry<&'a str> {
    pub fn borrowed(change: &'a Change) -> ReportEntry<&'a str> {
        ReportEntry {
            kind: change.kind(),
            member_id: change.member.as_ref().map(|m| m.id.as_str()),
            subject: &change.subject,
            user_id: change.user_id.as_deref(),
            fields: fields_in(change),
            reason: reason_of(change),
        }
    }
}

/// How many changes of each kind, in [`ChangeKind`] order, every kind listed (zeros
/// included) so scripts need not guess. Serialised as a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts(pub Vec<(ChangeKind, usize)>);

impl Counts {
    /// The counts of `plan`, as its [`Report`] has them, without building the report.
    pub fn of(plan: &[Change]) -> Counts {
        let mut n: BTreeMap<ChangeKind, usize> = BTreeMap::new();
        for change in plan {
            *n.entry(change.kind()).or_default() += 1;
        }
        Counts::listing(|k| n.get(&k).copied().unwrap_or(0))
    }

    /// Every kind with its count `n`, in [`ChangeKind`] order.
    fn listing(n: impl Fn(ChangeKind) -> usize) -> Counts {
        Counts(ChangeKind::ALL.iter().map(|&k| (k, n(k))).collect())
    }

    pub fn get(&self, kind: ChangeKind) -> usize {
        self.0
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    }

    /// How many member changes they count: all but the skips.
    pub fn changes(&self) -> usize {
        changes_of(|k| self.get(k))
    }
}

/// How many member changes the counts `n` (of each kind) make: all but the skips.
pub fn changes_of(n: impl Fn(ChangeKind) -> usize) -> usize {
    ChangeKind::ALL
        .iter()
        .filter(|&&k| k != ChangeKind::Skip)
        .map(|&k| n(k))
        .sum()
}

impl Serialize for Counts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, n)| (k.as_str(), n)))
    }
}

/// A plan, grouped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub counts: Counts,
    /// The changes, grouped by kind in [`ChangeKind`] order (kinds without changes left
    /// out); within a kind, by subject, then member and directory user (one person's in
    /// plan order): an order that does not hang on which people were planned together, so
    /// a plan brought up to date reads as one made whole.
    pub changes: BTreeMap<ChangeKind, Vec<ReportEntry>>,
}

impl Report {
    pub fn new(plan: &[Change]) -> Report {
        Report::of_entries(plan.iter().map(ReportEntry::of))
    }

    /// The report of these entries: what [`Report::entries`] gave, read back.
    pub fn of_entries(entries: impl IntoIterator<Item = ReportEntry>) -> Report {
        let mut changes: BTreeMap<ChangeKind, Vec<ReportEntry>> = BTreeMap::new();
        for entry in entries {
            changes.entry(entry.kind).or_default().push(entry);
        }
        // A stable sort: one person's entries of a kind keep the plan's order.
        for entries in changes.values_mut() {
            entries.sort_by(|a, b| {
                (&a.subject, &a.member_id, &a.user_id).cmp(&(&b.subject, &b.member_id, &b.user_id))
            });
        }
        Report {
            counts: Counts::listing(|k| changes.get(&k).map_or(0, Vec::len)),
            changes,
        }
    }

    /// This report with the entries `moved` says are about people planned again replaced
    /// by the changes `plan` made for them.
    pub fn replacing(&self, moved: impl Fn(&ReportEntry) -> bool, plan: &[Change]) -> Report {
        let kept = self.entries().filter(|e| !moved(e)).cloned();
        Report::of_entries(kept.chain(plan.iter().map(ReportEntry::of)))
    }

    /// Every entry, in kind order.
    pub fn entries(&self) -> impl Iterator<Item = &ReportEntry> {
        self.changes.values().flatten()
    }

    /// How many changes would write something (everything but skips).
    pub fn applicable(&self) -> usize {
        self.entries()
            .filter(|e| e.kind != ChangeKind::Skip)
            .count()
    }

    /// How many changes suspend, archive or delete a member: what the guard against mass
    /// deprovisioning counts.
    pub fn deprovisionings(&self) -> u64 {
        [ChangeKind::Suspend, ChangeKind::Archive, ChangeKind::Delete]
            .into_iter()
            .map(|k| self.counts.get(k) as u64)
            .sum()
    }

    /// One line per kind with a count, e.g. `create 2, role_change 1`; "no changes" if none.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .counts
            .0
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        if parts.is_empty() {
            "no changes".to_string()
        } else {
            parts.join(", ")
        }
    }

    /// CSV, one row per changed field (one row for a change without fields), with the
    /// columns `kind, memberId, subject, userId, field, before, after, reason`.
    pub fn to_csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let header = [
            "kind", "memberId", "subject", "userId", "field", "before", "after", "reason",
        ];
        // Writing to a Vec cannot fail.
        w.write_record(header).expect("write to memory");
        for e in self.entries() {
            let base = [
                e.kind.as_str(),
                e.member_id.as_deref().unwrap_or(""),
                &e.subject,
                e.user_id.as_deref().unwrap_or(""),
            ];
            let reason = e.reason.as_deref().unwrap_or("");
            let mut write = |rest: [&str; 4]| {
                let row = base.iter().chain(&rest).map(|cell| guarded(cell));
                w.write_record(row).expect("write to memory");
            };
            if e.fields.is_empty() {
                write(["", "", "", reason]);
            }
            for f in &e.fields {
                write([
                    f.field.as_str(),
                    f.before.as_deref().unwrap_or(""),
                    f.after.as_deref().unwrap_or(""),
                    reason,
                ]);
            }
        }
        String::from_utf8(w.into_inner().expect("flush to memory")).expect("CSV of UTF-8 is UTF-8")
    }

    /// A human-readable listing: the summary, then one line per change.
    pub fn to_text(&self) -> String {
        let mut out = format!("{}\n", self.summary());
        for e in self.entries() {
            out.push_str(&format!("{:<12} {}", e.kind.as_str(), e.subject));
            if let Some(id) = &e.member_id {
                out.push_str(&format!(" (member {id})"));
            }
            let fields: Vec<String> = e
                .fields
                .iter()
                .map(|f| {
                    format!(
                        "{}: {} -> {}",
                        f.field,
                        f.before.as_deref().unwrap_or("-"),
                        f.after.as_deref().unwrap_or("-")
                    )
                })
                .collect();
            if !fields.is_empty() {
                out.push_str(&format!(" [{}]", fields.join("; ")));
            }
            if let Some(r) = &e.reason {
                out.push_str(&format!(" — {r}"));
            }
            out.push('\n');
        }
        out
    }
}
