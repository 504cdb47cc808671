//! Deployment: the systemd unit (verified and scored by `systemd-analyze`),
//! `check-config` (its ExecStartPre), and the notification protocol that
//! `Type=notify` relies on, spoken by the real `serve` to a socket the test
//! listens on.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::daemon_support::Daemon;
use crate::support::{TempDatabase, backorderd};

/// The path the unit expects the binary at.
const INSTALLED: &str = "/usr/local/bin/backorderd";

fn unit_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd/backorderd.service")
}

/// The shipped unit, written to `dir` under its own name with the binary
/// path rewritten to the binary under test. `systemd-analyze verify` checks
/// that every Exec*= command exists and is executable; /usr/local/bin is not
/// where the build puts it (nor writable in CI), and `--root=` would need a
/// whole systemd tree (sysinit.target) under the root. Only the two command
/// paths change: every other line is verified as shipped.
fn unit_for_test(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(unit_source()).unwrap();
    let exec_lines = text
        .lines()
        .filter(|line| line.starts_with("ExecStart=") || line.starts_with("ExecStartPre="))
        .collect::<Vec<_>>();
    assert_eq!(exec_lines.len(), 2, "ExecStartPre= and ExecStart=");
    for line in exec_lines {
        assert!(line.contains(INSTALLED), "{line} runs {INSTALLED}");
    }
    let path = dir.join("backorderd.service");
    std::fs::write(
        &path,
        text.replace(INSTALLED, env!("CARGO_BIN_EXE_backorderd")),
    )
    .unwrap();
    path
}

fn systemd_analyze(args: &[&str]) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze runs (Debian package `systemd`; .ci/run installs it)")
}

/// A unit key's value (the last assignment wins, as in systemd).
fn unit_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix(&format!("{key}=")))
        .next_back()
        .map(str::to_owned)
}

#[test]
fn the_systemd_unit_verifies_without_a_complaint() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_test(dir.path());
    let out = systemd_analyze(&["verify", unit.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // `verify` exits 0 even for unknown keys and bad values
    // (shared/notes/systemd.md): any complaint on stderr fails.
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify complained ({}):\n{stderr}",
        out.status
    );

    // The check catches what it must: an unknown key.
    let text = std::fs::read_to_string(&unit).unwrap();
    std::fs::write(
        &unit,
        text.replace("[Service]\n", "[Service]\nTimeoutStopSecs=5\n"),
    )
    .unwrap();
    let out = systemd_analyze(&["verify", unit.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("TimeoutStopSecs"),
        "verify did not report an unknown key"
    );
}

#[test]
fn the_systemd_unit_is_hardened() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_test(dir.path());
    // The threshold is the exposure x 10: at most 2.0 of 10.
    let out = systemd_analyze(&[
        "security",
        "--offline=true",
        "--threshold=20",
        unit.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let exposure = stdout
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for backorderd.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no overall exposure in:\n{stdout}\n{stderr}"));
    assert!(
        out.status.success() && exposure <= 2.0 && stderr.trim().is_empty(),
        "exposure {exposure} ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

#[test]
fn the_systemd_unit_fits_the_daemon() {
    let text = std::fs::read_to_string(unit_source()).unwrap();
    let value = |key| unit_value(&text, key).unwrap_or_else(|| panic!("the unit sets no {key}="));
    assert_eq!(value("Type"), "notify");
    assert_eq!(value("Restart"), "always");
    assert_eq!(value("KillMode"), "mixed");
    assert_eq!(value("DynamicUser"), "yes");
    assert_eq!(value("StateDirectory"), "backorderd");
    assert_eq!(value("WorkingDirectory"), "/var/lib/backorderd");
    assert!(value("ExecStartPre").ends_with(" check-config"));
    assert!(value("ExecStart").ends_with(" serve"));
    // The stop timeout leaves the daemon its whole grace period.
    let seconds = |key| {
        let v = value(key);
        v.strip_suffix('s')
            .unwrap_or(&v)
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("{key}={v}: expected seconds"))
    };
    let grace = backorderd::config::Settings::default()
        .service
        .shutdown_grace
        .as_secs();
    assert!(
        seconds("TimeoutStopSec") > grace,
        "TimeoutStopSec vs {grace} s of grace"
    );
    assert!(seconds("WatchdogSec") >= 10);
}

// ---- check-config -------------------------------------------------------

fn check_config(args: &[&str], env: &[(&str, &str)]) -> crate::support::Run {
    let mut all = args.to_vec();
    all.push("check-config");
    backorderd(&all, None, env)
}

/// The printed configuration, parsed back as TOML.
fn printed(stdout: &str) -> config::Config {
    config::Config::builder()
        .add_source(config::File::from_str(stdout, config::FileFormat::Toml))
        .build()
        .unwrap_or_else(|e| panic!("check-config printed no TOML ({e}):\n{stdout}"))
}

#[test]
fn check_config_prints_the_effective_configuration() {
    let db = TempDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backorderd.toml");
    std::fs::write(&file, "[service]\nskus_per_batch = 77\n").unwrap();
    let run = check_config(
        &["--config", file.to_str().unwrap()],
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("BACKORDERD__SERVICE__POLL_INTERVAL_MS", "25"),
            ("BACKORDERD__LOG__FORMAT", "json"),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let config = printed(&run.stdout);
    assert_eq!(config.get_string("database_url").unwrap(), db.url);
    assert_eq!(config.get_int("service.poll_interval_ms").unwrap(), 25);
    assert_eq!(config.get_int("service.skus_per_batch").unwrap(), 77);
    assert_eq!(config.get_int("service.shutdown_grace_secs").unwrap(), 20);
    assert!(
        config
            .get_bool("service.recalculate_on_status_change")
            .unwrap()
    );
    assert_eq!(config.get_string("log.format").unwrap(), "json");
    // Where each value not a default was set.
    for origin in [
        "# --database-url / DATABASE_URL",
        "# environment variable BACKORDERD__SERVICE__POLL_INTERVAL_MS",
        &format!("# {}", file.display()),
    ] {
        assert!(
            run.stdout.contains(origin),
            "{origin} missing:\n{}",
            run.stdout
        );
    }
    assert!(
        run.stderr.contains("configuration is valid"),
        "{}",
        run.stderr
    );
    // It opens no database: the file is created by the first real start.
    assert!(!db.path.exists(), "check-config created the database");
}

#[test]
fn check_config_refuses_a_bad_key_naming_it() {
    let db = TempDatabase::new();
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("BACKORDERD__SERVICE__POLL_INTERVAL_MS", "0"),
    ];
    let run = check_config(&[], &env);
    assert_eq!(run.code, 1);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    for part in [
        "`service.poll_interval_ms`",
        "BACKORDERD__SERVICE__POLL_INTERVAL_MS",
    ] {
        assert!(run.stderr.contains(part), "{part}: {}", run.stderr);
    }

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backorderd.toml");
    std::fs::write(&file, "[log]\nlevel = \"debug\"\n").unwrap();
    let run = check_config(
        &["--config", file.to_str().unwrap()],
        &[("DATABASE_URL", db.url.as_str())],
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("level"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&file.display().to_string()),
        "{}",
        run.stderr
    );
}

#[test]
fn check_config_checks_where_the_database_goes() {
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("sqlite://{}/no/such/dir/b.db", dir.path().display());
    let is_dir = format!("sqlite://{}", dir.path().display());
    // Not writable whoever runs the test (root included).
    let unwritable = "sqlite:///proc/backorderd.db".to_owned();
    for (url, problem) in [
        (&missing, "does not exist"),
        (&is_dir, "is a directory"),
        (&unwritable, "not writable"),
    ] {
        let run = check_config(&[], &[("DATABASE_URL", url.as_str())]);
        assert_eq!(run.code, 1, "{url}: {}", run.stdout);
        for part in ["`database_url`", "DATABASE_URL", problem] {
            assert!(run.stderr.contains(part), "{url}: {part}: {}", run.stderr);
        }
    }

    // PostgreSQL: the URL is checked, the server is not contacted, and the
    // password never shows.
    let secret = "postgres://app:hunter2@db.internal/backorders";
    let run = check_config(&[], &[("BACKORDERD__DATABASE_URL", secret)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let shown = format!("{}{}", run.stdout, run.stderr);
    assert!(shown.contains("db.internal"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
    let bad = "postgres://app:hunter2@db.internal:notaport/backorders";
    let run = check_config(&[], &[("BACKORDERD__DATABASE_URL", bad)]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr.contains("BACKORDERD__DATABASE_URL"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("not a valid PostgreSQL URL"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);

    // An existing file: fine, and left as it was.
    let db = TempDatabase::new();
    db.run(&["migrate"], None);
    let before = std::fs::read(&db.path).unwrap();
    let run = check_config(&[], &[("DATABASE_URL", db.url.as_str())]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(std::fs::read(&db.path).unwrap(), before);
}

// ---- sd_notify ------------------------------------------------------------

/// A notification socket like the service manager's, in a temp dir.
struct NotifySocket {
    _dir: tempfile::TempDir,
    path: String,
    socket: UnixDatagram,
    received: Vec<String>,
}

impl NotifySocket {
    fn new() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        NotifySocket {
            path: path.to_str().unwrap().to_owned(),
            _dir: dir,
            socket,
            received: Vec::new(),
        }
    }

    /// Every datagram that arrives within `window`.
    fn collect(&mut self, window: Duration) {
        let deadline = Instant::now() + window;
        let mut buf = [0u8; 4096];
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if left.is_zero() {
                break;
            }
            self.socket.set_read_timeout(Some(left)).unwrap();
            match self.socket.recv(&mut buf) {
                Ok(n) => self
                    .received
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                // A signal (another test's child exiting) may cut the wait short.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("recv: {e} ({:?})", e.kind()),
            }
        }
    }

    /// Waits (at most 10 s) until `state` arrives.
    fn wait_for(&mut self, state: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.has(state) {
            assert!(
                Instant::now() < deadline,
                "{state} never arrived; received: {:?}",
                self.received
            );
            self.collect(Duration::from_millis(100));
        }
    }

    fn count(&self, state: &str) -> usize {
        self.received
            .iter()
            .flat_map(|message| message.lines())
            .filter(|line| *line == state)
            .count()
    }

    fn has(&self, state: &str) -> bool {
        self.count(state) > 0
    }

    fn position(&self, state: &str) -> usize {
        self.received
            .iter()
            .position(|message| message.lines().any(|line| line == state))
            .unwrap_or_else(|| panic!("no {state} in {:?}", self.received))
    }
}

/// NOTIFY_SOCKET and the watchdog variables for the daemon; the empty
/// values override anything the test itself inherited.
fn notify_env<'a>(
    socket: &'a NotifySocket,
    watchdog: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("NOTIFY_SOCKET", socket.path.as_str()),
        ("WATCHDOG_USEC", ""),
        ("WATCHDOG_PID", ""),
    ];
    env.extend_from_slice(watchdog);
    env
}

#[test]
fn serve_notifies_ready_then_stopping_and_exits_0() {
    let db = TempDatabase::new();
    let mut socket = NotifySocket::new();
    let daemon = Daemon::start(&db, &notify_env(&socket, &[]));
    socket.wait_for("READY=1");
    assert!(!socket.has("STOPPING=1"), "{:?}", socket.received);
    daemon.stop_with("TERM"); // asserts exit 0
    socket.wait_for("STOPPING=1");
    assert!(socket.position("READY=1") < socket.position("STOPPING=1"));
    assert_eq!(socket.count("READY=1"), 1);
    assert!(
        !socket.has("WATCHDOG=1"),
        "no watchdog asked: {:?}",
        socket.received
    );
}

#[test]
fn serve_pings_the_watchdog_at_half_its_interval() {
    // WATCHDOG_PID unset: the pings are for whichever process reads it.
    let db = TempDatabase::new();
    let mut socket = NotifySocket::new();
    let started = Instant::now();
    let daemon = Daemon::start(&db, &notify_env(&socket, &[("WATCHDOG_USEC", "200000")]));
    socket.wait_for("READY=1");
    socket.collect(Duration::from_millis(1000));
    // Every 100 ms (half of 200 ms): about 10 in the second watched, at
    // least 4 on a loaded machine, never more than one per 100 ms since start.
    let pings = socket.count("WATCHDOG=1");
    let most = started.elapsed().as_millis() as usize / 100 + 2;
    assert!(
        (4..=most).contains(&pings),
        "{pings} pings (at most {most}): {:?}",
        socket.received
    );
    daemon.stop_with("TERM");
    socket.wait_for("STOPPING=1");

    // WATCHDOG_PID naming the daemon itself (`sh` execs it, keeping its pid).
    let db = TempDatabase::new();
    let mut socket = NotifySocket::new();
    let daemon = Daemon::start_wrapped(
        &db,
        &notify_env(&socket, &[("WATCHDOG_USEC", "200000")]),
        &["sh", "-c", "WATCHDOG_PID=$$ exec \"$@\"", "sh"],
    );
    socket.wait_for("READY=1");
    socket.wait_for("WATCHDOG=1");
    daemon.stop_with("TERM");

    // WATCHDOG_PID naming another process: the pings are not ours to send.
    let db = TempDatabase::new();
    let mut socket = NotifySocket::new();
    let daemon = Daemon::start(
        &db,
        &notify_env(
            &socket,
            &[("WATCHDOG_USEC", "200000"), ("WATCHDOG_PID", "1")],
        ),
    );
    socket.wait_for("READY=1");
    socket.collect(Duration::from_millis(500));
    assert!(!socket.has("WATCHDOG=1"), "{:?}", socket.received);
    daemon.stop_with("TERM");
    socket.wait_for("STOPPING=1");
}

#[test]
fn serve_without_notify_socket_runs_as_before() {
    let db = TempDatabase::new();
    let daemon = Daemon::start(&db, &[("NOTIFY_SOCKET", ""), ("WATCHDOG_USEC", "200000")]);
    let log = daemon.stop_with("TERM");
    assert!(!log.contains("cannot notify"), "{log}");
}
