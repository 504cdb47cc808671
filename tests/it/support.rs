//! Running the real binary, and the contract's examples bundled in tests/.

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    /// Asserts success and returns stdout as JSON.
    pub fn ok_json(&self) -> Value {
        assert_eq!(self.code, 0, "expected success; stderr: {}", self.stderr);
        self.json()
    }
}

/// Runs `backorderd ARGS`, feeding `stdin` if given.
pub fn backorderd(args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_backorderd"));
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the backorderd binary runs");
    if let Some(bytes) = stdin {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    Run {
        code: status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// The contract's examples copied into tests/examples: (input, expected result).
pub fn examples() -> Vec<(PathBuf, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/examples");
    let mut found: Vec<(PathBuf, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p.to_string_lossy().ends_with(".expected.json")
        })
        .map(|input| {
            let expected = input.with_extension("expected.json");
            assert!(
                expected.exists(),
                "{} has no expected result",
                input.display()
            );
            (input, expected)
        })
        .collect();
    found.sort();
    assert!(
        found.len() >= 9,
        "the contract has at least nine examples, found {}",
        found.len()
    );
    found
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A database in a fresh temporary directory, removed when dropped.
pub struct TempDatabase {
    _dir: tempfile::TempDir,
    pub url: String,
    pub path: PathBuf,
}

impl TempDatabase {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backorderd.db");
        TempDatabase {
            url: format!("sqlite://{}", path.display()),
            path,
            _dir: dir,
        }
    }

    /// Runs `backorderd --database-url URL ARGS`.
    pub fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut all = vec!["--database-url", self.url.as_str()];
        all.extend_from_slice(args);
        backorderd(&all, stdin, &[])
    }
}
