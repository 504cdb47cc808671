//! Replays the fuzz targets' inputs on the stable toolchain, without
//! cargo-fuzz: every seed of fuzz/corpus/ and every crash the fuzzer found
//! (tests/fuzz/TARGET/), through the very checks the targets run
//! (fuzz/src/lib.rs, compiled in here), and each recorded crash through the
//! real binary as a user would meet it.
//!
//! A recorded crash is named for what the binary must do with it:
//! `refused-*` is refused (exit 2; 1 for a configuration file, which is not
//! input), `accepted-*` succeeds (exit 0).

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A fuzz target: its name (its folder) and its checks.
type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 3] = [
    ("snapshot", harness::snapshot),
    ("events", harness::events),
    ("config", harness::config),
];

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `check` on every file under `dir/TARGET`, and names the files whose
/// checks panic (all of them, not only the first).
fn replay(dir: &Path) -> usize {
    let mut failures = Vec::new();
    let mut count = 0;
    for (target, check) in TARGETS {
        let inputs = dir.join(target);
        if !inputs.is_dir() {
            continue;
        }
        for path in files(&inputs) {
            let bytes = std::fs::read(&path).unwrap();
            count += 1;
            if let Err(panic) = std::panic::catch_unwind(|| check(&bytes)) {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{}: {message}", path.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "fuzz checks fail on:\n{}",
        failures.join("\n")
    );
    count
}

#[test]
fn every_seed_passes_the_fuzz_checks() {
    let count = replay(&root().join("fuzz/corpus"));
    assert!(count >= 30, "only {count} seeds");
}

#[test]
fn every_recorded_crash_passes_the_fuzz_checks() {
    replay(&root().join("tests/fuzz"));
}

/// The recorded crashes of one target, each with the exit code the binary
/// must give it.
fn recorded(base: &Path, target: &str, refused_code: i32) -> Vec<(PathBuf, i32)> {
    let dir = base.join(target);
    if !dir.is_dir() {
        return Vec::new();
    }
    files(&dir)
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let code = if name.starts_with("refused-") {
                refused_code
            } else if name.starts_with("accepted-") {
                0
            } else {
                panic!("{}: name it refused-* or accepted-*", path.display())
            };
            (path, code)
        })
        .collect()
}

struct Exit {
    code: Option<i32>,
    output: String,
}

fn backorderd(dir: &Path, args: &[&str]) -> Exit {
    let out = Command::new(env!("CARGO_BIN_EXE_backorderd"))
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the binary runs");
    Exit {
        code: out.status.code(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn expect(exit: &Exit, code: i32, what: &str) {
    assert!(
        !exit.output.contains("panicked"),
        "{what} panics:\n{}",
        exit.output
    );
    assert_eq!(exit.code, Some(code), "{what}:\n{}", exit.output);
}

fn recorded_crashes() -> PathBuf {
    root().join("tests/fuzz")
}

#[test]
fn recorded_snapshots_are_answered_or_refused_by_simulate() {
    snapshots_through_simulate(&recorded_crashes());
}

fn snapshots_through_simulate(base: &Path) {
    let dir = tempfile::tempdir().unwrap();
    for (path, code) in recorded(base, "snapshot", 2) {
        let file = path.to_str().unwrap();
        let what = format!("simulate {file}");
        let exit = backorderd(dir.path(), &["simulate", file]);
        expect(&exit, code, &what);
        if code == 2 {
            assert!(exit.output.contains("refused"), "{what}:\n{}", exit.output);
        }
    }
}

#[test]
fn recorded_event_batches_are_applied_or_refused_and_the_worker_recalculates() {
    event_batches_through_the_store(&recorded_crashes());
}

fn event_batches_through_the_store(base: &Path) {
    for (path, code) in recorded(base, "events", 2) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("fuzz.db").display());
        let base = dir.path().join("base.json");
        std::fs::write(&base, serde_json::to_vec(&harness::base_state()).unwrap()).unwrap();
        let run = |args: &[&str]| {
            let mut args = args.to_vec();
            args.extend(["--database-url", url.as_str()]);
            backorderd(dir.path(), &args)
        };
        expect(&run(&["import", base.to_str().unwrap()]), 0, "import");
        let file = path.to_str().unwrap();
        let what = format!("event {file}");
        expect(&run(&["event", file]), code, &what);
        // Whatever the batch did, the stored state still recalculates and exports.
        let recalc = run(&["recalc", "--all", "--inline"]);
        expect(&recalc, 0, &format!("recalc after {what}"));
        expect(&run(&["export"]), 0, &format!("export after {what}"));
    }
}

#[test]
fn recorded_configuration_files_are_checked_without_showing_a_secret() {
    configuration_files_through_check_config(&recorded_crashes());
}

fn configuration_files_through_check_config(base: &Path) {
    let dir = tempfile::tempdir().unwrap();
    for (path, code) in recorded(base, "config", 1) {
        let file = path.to_str().unwrap();
        let what = format!("check-config --config {file}");
        let exit = backorderd(dir.path(), &["check-config", "--config", file]);
        expect(&exit, code, &what);
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        for secret in harness::secrets_in(&text) {
            assert!(
                !exit.output.contains(&secret),
                "{what} shows {secret:?}:\n{}",
                exit.output
            );
        }
    }
}
