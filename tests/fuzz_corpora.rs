//! Replays every fuzz corpus file (`tests/fuzz/corpus/<target>/`) through the same checks
//! the cargo-fuzz targets run (`scimd::fuzzing`), on the stable toolchain, so plain
//! `cargo test` keeps every input the fuzzers found interesting passing.

use std::path::PathBuf;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} has no inputs", dir.display());
    for file in files {
        let data = std::fs::read(&file).expect("a corpus file");
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(
            outcome.is_ok(),
            "{target}: {} fails its check (input: {:?})",
            file.display(),
            String::from_utf8_lossy(&data)
        );
    }
}

#[test]
fn filter_corpus() {
    replay("filter", scimd::fuzzing::check_filter);
}

#[test]
fn path_corpus() {
    replay("path", scimd::fuzzing::check_path);
}

#[test]
fn patch_corpus() {
    replay("patch", scimd::fuzzing::check_patch);
}

#[test]
fn normalize_corpus() {
    replay("normalize", scimd::fuzzing::check_normalize);
}

#[test]
fn member_csv_corpus() {
    replay("member_csv", scimd::fuzzing::check_member_csv);
}

#[test]
fn admin_form_corpus() {
    replay("admin_form", scimd::fuzzing::check_admin_form);
}
