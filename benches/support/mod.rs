//! What the bench commands share: the binary, their knobs, a generated
//! book, and a child process's wall time and peak memory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

pub const BIN: &str = env!("CARGO_BIN_EXE_backorderd");

pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `backorderd generate` of `BENCH_LINES` lines over `BENCH_SKUS` SKUs
/// (1,000,000 and 100,000 by default) with SKU popularity `--skew
/// BENCH_SKEW` (`default_skew` when unset) into `dir`: (file, lines, SKUs).
pub fn generated_book(dir: &Path, default_skew: f64) -> (PathBuf, usize, usize) {
    let lines = env_or("BENCH_LINES", 1_000_000);
    let skus = env_or("BENCH_SKUS", 100_000);
    let skew = env_f64("BENCH_SKEW", default_skew);
    let book = dir.join("book.json");
    let out = std::fs::File::create(&book).unwrap();
    let status = Command::new(BIN)
        .args([
            "generate",
            "--lines",
            &lines.to_string(),
            "--skus",
            &skus.to_string(),
            "--skew",
            &skew.to_string(),
        ])
        .stdout(out)
        .status()
        .unwrap();
    assert!(status.success());
    (book, lines, skus)
}

/// Runs `backorderd ARGS` on `url`: (exit code, wall seconds, max RSS in MiB).
pub fn measure(url: &str, args: &[&str]) -> (i32, f64, f64) {
    measure_into(url, args, None)
}

/// [`measure`], with the command's standard output written to `out`.
#[allow(dead_code)] // not every bench reads what it ran printed
pub fn measure_into(url: &str, args: &[&str], out: Option<&Path>) -> (i32, f64, f64) {
    let stdout = match out {
        Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
        None => Stdio::null(),
    };
    let started = Instant::now();
    // Reaped by wait4 below, which also reports the child's peak memory.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(BIN)
        .args(["--database-url", url])
        .args(args)
        .stdout(stdout)
        .spawn()
        .expect("backorderd runs");
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child and fills `usage`, a plain C struct.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4 failed");
    assert!(libc::WIFEXITED(status), "backorderd {args:?} was killed");
    (
        libc::WEXITSTATUS(status),
        started.elapsed().as_secs_f64(),
        usage.ru_maxrss as f64 / 1024.0,
    )
}
