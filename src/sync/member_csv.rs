//! The members CSV, import and export alike: `email` (required), `userName`, `givenName`,
//! `familyName`, `role`, `Provisioning Managed` (true/false, default true).
//!
//! This is how admins load the people who existed before provisioning, and how they mark
//! some as never managed by it (KnowBe4's "Provisioning Managed" column). Parsing checks
//! every row and returns every problem with its line number, so one run of the import
//! tells the admin everything to fix; nothing is imported unless every row is valid.

use std::collections::HashMap;
use std::fmt;

use crate::model::{MemberStatus, Profile, Role, Settings, looks_like_email};
use crate::scim::filter::fold;

/// The columns, in export order.
pub const COLUMNS: [&str; 6] = [
    "email",
    "userName",
    "givenName",
    "familyName",
    "role",
    "Provisioning Managed",
];

/// What an export adds after [`COLUMNS`] for reading, and an import passes over: a
/// member's status (`active`, `suspended`, `archived`) is the IdP's or an admin's to
/// change, not a file's.
pub const EXPORTED_ONLY: [&str; 1] = ["status"];

/// One valid row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    /// Line in the file, for messages.
    pub line: u64,
    pub email: String,
    pub user_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub role: Option<Role>,
    /// `None`: the cell (or column) is empty, i.e. unchanged for an existing member and
    /// `true` for a new one.
    pub managed: Option<bool>,
}

/// A problem with one line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Header cells compare without case, spaces, `_` or `-`: "Provisioning Managed",
/// "provisioning_managed" and "PROVISIONINGMANAGED" are the same column.
fn normalise(header: &str) -> String {
    header
        .trim_start_matches('\u{feff}')
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// Parses and validates a members CSV against the tenant's roles.
pub fn parse(input: &[u8], settings: &Settings) -> Result<Vec<ImportRow>, Vec<RowError>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let header_error = |message: String| vec![RowError { line: 1, message }];
    let headers = reader
        .headers()
        .map_err(|e| header_error(format!("cannot read the header: {e}")))?
        .clone();
    let wanted: Vec<String> = COLUMNS.iter().map(|c| normalise(c)).collect();
    let mut index: HashMap<usize, usize> = HashMap::new();
    let mut passed_over: Vec<usize> = Vec::new();
    let mut errors = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        match wanted.iter().position(|w| *w == normalise(h)) {
            Some(col) if index.values().any(|&c| c == col) => errors.push(RowError {
                line: 1,
                message: format!("column {:?} appears twice", COLUMNS[col]),
            }),
            Some(col) => {
                index.insert(i, col);
            }
            None if h.is_empty() => {}
            None if EXPORTED_ONLY.iter().any(|c| normalise(c) == normalise(h)) => {
                passed_over.push(i);
            }
            None => errors.push(RowError {
                line: 1,
                message: format!(
                    "unknown column {h:?}; the columns are {}",
                    COLUMNS.join(", ")
                ),
            }),
        }
    }
    if !index.values().any(|&c| c == 0) {
        errors.push(RowError {
            line: 1,
            message: "the required column \"email\" is missing".into(),
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    // The physical line of a record, as an editor shows it: a record's position includes
    // the blank lines before it, which the csv crate's line count does not see. Records
    // come in order, so the newlines are counted once, from where the last count stopped
    // (counting from the start for each row made a large file quadratic).
    let mut counted = (0usize, 0u64);
    let mut line_at = |byte: u64| {
        let mut start = (byte as usize).min(input.len());
        while start < input.len() && matches!(input[start], b'\r' | b'\n') {
            start += 1;
        }
        if start < counted.0 {
            counted = (0, 0);
        }
        counted.1 += input[counted.0..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        counted.0 = start;
        counted.1 + 1
    };
    let mut rows = Vec::new();
    let mut emails: HashMap<String, u64> = HashMap::new();
    let mut user_names: HashMap<String, u64> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| line_at(p.byte()));
                errors.push(RowError {
                    line,
                    message: format!("unreadable row: {e}"),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| line_at(p.byte()));
        if record.iter().all(str::is_empty) {
            continue;
        }
        let mut cells: [Option<&str>; 6] = [None; 6];
        for (i, value) in record.iter().enumerate() {
            match index.get(&i) {
                Some(&col) => cells[col] = Some(unguarded(value)).filter(|v| !v.is_empty()),
                None if value.is_empty() || passed_over.contains(&i) => {}
                None => errors.push(RowError {
                    line,
                    message: format!(
                        "{} fields but the header has {}",
                        record.len(),
                        headers.len()
                    ),
                }),
            }
        }
        let [email, user_name, given_name, family_name, role, managed] = cells;
        let mut fail = |message: String| errors.push(RowError { line, message });
        // Every problem of the line is told, not only its first.
        let email = match email {
            None => {
                fail("email is required".into());
                None
            }
            Some(e) if !looks_like_email(e) => {
                fail(format!("{e:?} is not an email address"));
                None
            }
            Some(e) => Some(e),
        };
        if let Some(email) = email
            && let Some(first) = emails.insert(fold(email), line)
        {
            fail(format!("email {email} is already on line {first}"));
        }
        if let Some(u) = user_name
            && let Some(first) = user_names.insert(fold(u), line)
        {
            fail(format!("userName {u} is already on line {first}"));
        }
        for (field, value) in [
            ("userName", user_name),
            ("givenName", given_name),
            ("familyName", family_name),
        ] {
            if let Some(problem) = value.and_then(|v| crate::model::person_name_problem(field, v)) {
                fail(problem);
            }
        }
        let role = match role.map(|r| settings.role_named(r)) {
            None => None,
            Some(Err(e)) => {
                fail(e);
                None
            }
            Some(Ok(r)) => Some(r),
        };
        let managed = match managed {
            None => None,
            Some(v) => match parse_bool(v) {
                Some(b) => Some(b),
                None => {
                    fail(format!(
                        "Provisioning Managed must be true or false, not {v:?}"
                    ));
                    None
                }
            },
        };
        let Some(email) = email else { continue };
        rows.push(ImportRow {
            line,
            email: email.to_string(),
            user_name: user_name.map(str::to_string),
            given_name: given_name.map(str::to_string),
            family_name: family_name.map(str::to_string),
            role,
            managed,
        });
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

/// A cell as an export writes it: text a spreadsheet would run as a formula (starting with
/// `=`, `+`, `-`, `@`, a tab or a carriage return, OWASP's list) gets a leading `'`, so an
/// IdP value like `=HYPERLINK(…)` opens as text. [`unguarded`] takes it off again on import.
pub fn guarded(cell: &str) -> std::borrow::Cow<'_, [u8]> {
    if cell.starts_with(FORMULA_STARTS) {
        format!("'{cell}").into_bytes().into()
    } else {
        cell.as_bytes().into()
    }
}

/// A cell as [`guarded`] received it back.
fn unguarded(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(FORMULA_STARTS) => rest,
        _ => cell,
    }
}

const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A member as an export writes it: its profile, role, whether provisioning manages it,
/// and its status.
pub type Exported<'a> = (&'a Profile, &'a Role, bool, MemberStatus);

/// Writes members in the import format (and their status, which an import passes over),
/// so an export can be edited and imported back.
pub fn export<'a>(members: impl IntoIterator<Item = Exported<'a>>) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS.iter().chain(&EXPORTED_ONLY))
        .expect("write to memory");
    let header =
        String::from_utf8(w.into_inner().expect("flush to memory")).expect("CSV of UTF-8 is UTF-8");
    header + &export_rows(members)
}

/// The rows of [`export`] without the header: how a long export is written in chunks.
pub fn export_rows<'a>(members: impl IntoIterator<Item = Exported<'a>>) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    for (p, role, managed, status) in members {
        let cell = |v: &'a Option<String>| v.as_deref().unwrap_or("");
        w.write_record([
            guarded(cell(&p.email)),
            guarded(cell(&p.user_name)),
            guarded(cell(&p.given_name)),
            guarded(cell(&p.family_name)),
            guarded(role.as_str()),
            guarded(if managed { "true" } else { "false" }),
            guarded(status.as_str()),
        ])
        .expect("write to memory");
    }
    String::from_utf8(w.into_inner().expect("flush to memory")).expect("CSV of UTF-8 is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(input: &str) -> Vec<String> {
        parse(input.as_bytes(), &Settings::default())
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_valid_file_parses_with_any_header_spelling_and_order() {
        let input = "\u{feff}Email,provisioning_managed,Role,givenName\n\
                     ada@x.io,false,Admin,Ada\n\
                     \n\
                     bob@x.io,,,\n";
        let rows = parse(input.as_bytes(), &Settings::default()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            ImportRow {
                line: 2,
                email: "ada@x.io".into(),
                user_name: None,
                given_name: Some("Ada".into()),
                family_name: None,
                role: Some("admin".parse().unwrap()),
                managed: Some(false),
            }
        );
        assert_eq!(
            (rows[1].line, rows[1].managed, rows[1].role.clone()),
            (4, None, None)
        );
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line() {
        let input = "email,userName,role,Provisioning Managed\n\
                     ada@x.io,ada,admin,true\n\
                     ,bob,,\n\
                     not-an-email,,superuser,maybe\n\
                     ADA@x.io,ada,superuser,maybe\n";
        assert_eq!(
            messages(input),
            [
                "line 3: email is required",
                "line 4: \"not-an-email\" is not an email address",
                "line 4: role superuser is not one of the tenant's roles (owner, admin, member, viewer)",
                "line 4: Provisioning Managed must be true or false, not \"maybe\"",
                "line 5: email ADA@x.io is already on line 2",
                "line 5: userName ada is already on line 2",
                "line 5: role superuser is not one of the tenant's roles (owner, admin, member, viewer)",
                "line 5: Provisioning Managed must be true or false, not \"maybe\"",
            ]
        );
        let long = "n".repeat(1025);
        let input = format!(
            "email,userName,givenName,familyName\n\
             ada@x.io,ad\u{1}a,{long},Lovelace\u{0}\n\
             joe@x.io,\u{645}\u{62d}\u{645}\u{62f}\u{200c}\u{631}\u{636}\u{627},Zo\u{eb} \u{1f469}\u{200d}\u{1f4bb},\n"
        );
        assert_eq!(
            messages(&input),
            [
                "line 2: userName holds a control character",
                "line 2: givenName is longer than 1024 characters",
                "line 2: familyName holds a control character",
            ]
        );
    }

    #[test]
    fn header_problems_stop_before_the_rows() {
        assert_eq!(
            messages("userName,Provisioning Manged\nx,y\n"),
            [
                "line 1: unknown column \"Provisioning Manged\"; the columns are email, userName, givenName, familyName, role, Provisioning Managed",
                "line 1: the required column \"email\" is missing",
            ]
        );
        assert_eq!(
            messages("email,a\nx@y.z,1,2\n"),
            [
                "line 1: unknown column \"a\"; the columns are email, userName, givenName, familyName, role, Provisioning Managed"
            ]
        );
        assert_eq!(
            messages("email\nx@y.z,extra\n"),
            ["line 2: 2 fields but the header has 1"]
        );
    }

    #[test]
    fn export_writes_the_import_format() {
        let p = Profile {
            email: Some("ada@x.io".into()),
            given_name: Some("Ada, Countess".into()),
            ..Profile::default()
        };
        let role: Role = "admin".parse().unwrap();
        let out = export([(&p, &role, false, MemberStatus::Suspended)]);
        assert_eq!(
            out,
            "email,userName,givenName,familyName,role,Provisioning Managed,status\n\
             ada@x.io,,\"Ada, Countess\",,admin,false,suspended\n"
        );
        let rows = parse(out.as_bytes(), &Settings::default()).unwrap();
        assert_eq!(rows[0].given_name.as_deref(), Some("Ada, Countess"));
        assert_eq!(rows[0].managed, Some(false));
    }

    #[test]
    fn an_export_opens_formulas_as_text_and_imports_them_back_unchanged() {
        let p = Profile {
            email: Some("@ada@x.io".into()),
            given_name: Some("=HYPERLINK(\"https://evil.example\",\"click\")".into()),
            family_name: Some("-Lovelace".into()),
            user_name: Some("'quoted".into()),
            ..Profile::default()
        };
        let role: Role = "member".parse().unwrap();
        let out = export([(&p, &role, true, MemberStatus::Active)]);
        let row = out.lines().nth(1).unwrap();
        assert!(
            row.starts_with("'@ada@x.io,'quoted,\"'=HYPERLINK("),
            "{row}"
        );
        assert!(row.contains(",'-Lovelace,"), "{row}");
        // Read back with the guard quote taken off, where the export put it only.
        let mut csv = String::from("email,userName,givenName,familyName\n");
        csv.push_str("a@x.io,'quoted,'=1+1,'+1\n");
        let rows = parse(csv.as_bytes(), &Settings::default()).unwrap();
        assert_eq!(rows[0].user_name.as_deref(), Some("'quoted"));
        assert_eq!(rows[0].given_name.as_deref(), Some("=1+1"));
        assert_eq!(rows[0].family_name.as_deref(), Some("+1"));
    }
    #[test]
    fn line_numbers_hold_across_blank_lines_and_quoted_newlines_in_a_large_file() {
        // Found by fuzzing: each row's line was counted from the start of the file, so a
        // 100 000-row upload did ~5 * 10^9 byte comparisons. Counting once must still give
        // every row the line an editor shows.
        let mut csv = String::from("email,givenName\n");
        for i in 0..100_000 {
            csv.push_str(&format!("u{i}@example.com,G{i}\n"));
        }
        let rows = parse(csv.as_bytes(), &Settings::default()).unwrap();
        assert_eq!(rows.len(), 100_000);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[99_999].line, 100_001);
        // A name across two lines is refused (a line break is no part of a name), and the
        // lines of the rows after it are the ones an editor shows.
        csv.push_str("\n\nq@example.com,\"two\nlines\"\nlast@example.com,\"L\nM\"\n");
        let lines: Vec<u64> = parse(csv.as_bytes(), &Settings::default())
            .unwrap_err()
            .iter()
            .map(|e| e.line)
            .collect();
        assert_eq!(lines, [100_004, 100_006]);
        let bad = "email\nok@example.com\n\nnot-an-email\n\"x\ny\"\n";
        let lines: Vec<u64> = parse(bad.as_bytes(), &Settings::default())
            .unwrap_err()
            .iter()
            .map(|e| e.line)
            .collect();
        assert_eq!(lines, [4, 5]);
    }
}
