//! A real PostgreSQL server for the tests: started once per test process
//! on a free loopback port, in a fresh data directory, and gone when the
//! process exits (even on a panic); each test gets a database of its own.
//!
//! The binaries come from `/usr/lib/postgresql/<version>/bin` (15 preferred;
//! installed with apt-get when absent and running as root). PostgreSQL
//! refuses to run as root, so as root `initdb` and `postgres` run as the
//! `postgres` system user.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The running server.
pub struct Server {
    pub port: u16,
    /// This run's directory: the data directory, the socket, the log.
    pub dir: PathBuf,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static NEXT_DATABASE: AtomicUsize = AtomicUsize::new(0);

/// The PostgreSQL major version preferred when several are installed.
const PREFERRED: u32 = 15;

/// The server of this test process, started on first use.
pub fn server() -> &'static Server {
    SERVER.get_or_init(start)
}

impl Server {
    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs SQL on the `postgres` maintenance database.
    pub fn admin(&self, sql: &str) -> Result<(), sqlx::Error> {
        use sqlx::Connection;
        let url = self.url("postgres");
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        crate::daemon_support::block_on(async move {
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            sqlx::raw_sql(sql).execute(&mut conn).await?;
            conn.close().await
        })
    }
}

/// Creates a fresh, empty database; returns its name and URL.
pub fn create_database() -> (String, String) {
    let server = server();
    let name = format!("test_{}", NEXT_DATABASE.fetch_add(1, Ordering::Relaxed));
    server
        .admin(&format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| {
            panic!(
                "CREATE DATABASE {name}: {e} (server log in {})",
                server.dir.display()
            )
        });
    (name.clone(), server.url(&name))
}

/// Drops a database of [`create_database`], closing its connections
/// (a daemon killed or still running): best effort, for disk space.
pub fn drop_database(name: &str) {
    if let Some(server) = SERVER.get() {
        let _ = server.admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
}

/// `/usr/lib/postgresql/<version>/bin` holding `postgres` and `initdb`:
/// the preferred version, else the newest.
fn find_bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("postgres").is_file() && bin.join("initdb").is_file())
                .then_some((version, bin))
        })
        .collect();
    found.sort_by_key(|(version, _)| (*version == PREFERRED, *version));
    found.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The binaries, installed with apt-get if absent (as root only).
fn bin_dir() -> PathBuf {
    if let Some(bin) = find_bin_dir() {
        return bin;
    }
    assert!(
        is_root(),
        "the PostgreSQL tests need a PostgreSQL server: no /usr/lib/postgresql/<version>/bin/postgres, \
         and not root to install one; install the Debian package `postgresql` \
         (sudo apt-get install postgresql)"
    );
    for args in [
        &["update", "-qq"][..],
        &[
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "postgresql",
        ][..],
    ] {
        let out = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .expect("apt-get runs");
        assert!(
            out.status.success(),
            "apt-get {args:?} failed while installing PostgreSQL for the tests:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    find_bin_dir()
        .expect("apt-get installed postgresql, yet no /usr/lib/postgresql/<version>/bin/postgres")
}

/// The user to run PostgreSQL as: `postgres` when we are root, else ourselves.
fn run_as() -> Option<(u32, u32)> {
    if !is_root() {
        return None;
    }
    let name = c"postgres";
    // SAFETY: getpwnam reads a NUL-terminated name and returns a pointer
    // into static storage (or null); the fields are copied at once, and
    // the server starts once, before any other thread calls getpwnam.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !entry.is_null(),
        "running as root, but there is no `postgres` system user to run PostgreSQL as \
         (the Debian package postgresql creates it)"
    );
    // SAFETY: non-null, see above.
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    Some((uid, gid))
}

fn command(program: PathBuf, user: Option<(u32, u32)>, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir)
        .env_remove("PGDATA")
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    if let Some((uid, gid)) = user {
        // As root, std drops the supplementary groups before setuid.
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// Where every run keeps its directory, `run-<pid>`.
fn base_dir() -> PathBuf {
    std::env::temp_dir().join("backorderd-it-postgres")
}

/// Removes the directories of earlier test processes that are gone.
fn remove_stale_runs(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        // `run-<pid>` (the shared server) or `own-<pid>-<n>` (an own one).
        let Some(pid) = name.to_str().and_then(|n| {
            n.strip_prefix("run-")
                .or_else(|| n.strip_prefix("own-")?.split('-').next())
        }) else {
            continue;
        };
        let alive = pid
            .parse::<u32>()
            .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn free_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

fn start() -> Server {
    start_in(&format!("run-{}", std::process::id()))
}

/// A server of its own, for a test that stops and starts it (the shared
/// one serves every other test of the process meanwhile): its data
/// directory, port and binaries, so that `pg_ctl` can stop it and
/// [`OwnServer::start_again`] bring it back on the same port. Stopped and
/// removed when dropped.
pub struct OwnServer {
    pub server: Server,
    bin: PathBuf,
    user: Option<(u32, u32)>,
}

static NEXT_OWN: AtomicUsize = AtomicUsize::new(0);

impl OwnServer {
    pub fn start() -> OwnServer {
        let name = format!(
            "own-{}-{}",
            std::process::id(),
            NEXT_OWN.fetch_add(1, Ordering::Relaxed)
        );
        OwnServer {
            server: start_in(&name),
            bin: bin_dir(),
            user: run_as(),
        }
    }

    fn data(&self) -> PathBuf {
        self.server.dir.join("data")
    }

    /// `pg_ctl stop -m fast`: the server ends every session and shuts
    /// down, as a database restart by an operator does.
    pub fn stop(&self) {
        let out = command(self.bin.join("pg_ctl"), self.user, &self.server.dir)
            .args(["stop", "-m", "fast", "-w", "-t", "60", "-D"])
            .arg(self.data())
            .output()
            .expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl stop failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the stopped server again on its port, and waits until it answers.
    pub fn start_again(&self) {
        launch(
            &self.bin,
            self.user,
            &self.server.dir,
            &self.data(),
            self.server.port,
        )
        .unwrap_or_else(|e| panic!("PostgreSQL did not start again: {e}"));
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = command(self.bin.join("pg_ctl"), self.user, &self.server.dir)
            .args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(self.data())
            .output();
        let _ = fs::remove_dir_all(&self.server.dir);
    }
}

/// Starts a server whose directory is `name` under [`base_dir`].
fn start_in(name: &str) -> Server {
    let bin = bin_dir();
    let user = run_as();
    let base = base_dir();
    fs::create_dir_all(&base).unwrap();
    fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
    remove_stale_runs(&base);
    let dir = base.join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
    }
    let data = dir.join("data");

    let out = command(bin.join("initdb"), user, &dir)
        .args(["--auth=trust", "--username=postgres", "--encoding=UTF8"])
        .args(["--locale=C", "--no-sync", "--no-instructions", "-D"])
        .arg(&data)
        .output()
        .expect("initdb runs");
    assert!(
        out.status.success(),
        "initdb -D {} failed:\n{}{}",
        data.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A port found free may be taken before the server binds it: try again.
    let mut last_error = String::new();
    for _ in 0..5 {
        let port = free_port();
        match launch(&bin, user, &dir, &data, port) {
            Ok(()) => return Server { port, dir },
            Err(e) => last_error = e,
        }
    }
    panic!("PostgreSQL did not start: {last_error}");
}

/// Starts `postgres` on `port` from a thread that never ends, and waits
/// until it answers.
fn launch(
    bin: &Path,
    user: Option<(u32, u32)>,
    dir: &Path,
    data: &Path,
    port: u16,
) -> Result<(), String> {
    let log_path = dir.join(format!("postgres-{port}.log"));
    let log = fs::File::create(&log_path).unwrap();
    let mut cmd = command(bin.join("postgres"), user, dir);
    cmd.arg("-D")
        .arg(data)
        .args(["-p", &port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1"])
        .arg("-c")
        .arg(format!("unix_socket_directories={}", dir.display()))
        .args(["-c", "fsync=off"])
        .args(["-c", "synchronous_commit=off"])
        .args(["-c", "full_page_writes=off"])
        .args(["-c", "max_connections=300"])
        .args(["-c", "shared_buffers=64MB"])
        .args(["-c", "logging_collector=off"])
        .stdout(Stdio::null())
        .stderr(log);
    let parent = std::process::id();
    // SAFETY: prctl and getppid are async-signal-safe. The death signal
    // goes to the server when the thread that spawned it ends, which is
    // when this process ends (the thread below never returns); it is set
    // here, after the switch of user, which would clear it.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other("the test process is gone"));
            }
            Ok(())
        });
    }

    let exited: Arc<Mutex<Option<std::io::Result<ExitStatus>>>> = Arc::default();
    let (spawned_tx, spawned_rx) = std::sync::mpsc::channel();
    let exit_slot = exited.clone();
    std::thread::Builder::new()
        .name(format!("postgres-{port}"))
        .spawn(move || {
            let mut child = match cmd.spawn() {
                Ok(child) => child,
                Err(e) => {
                    let _ = spawned_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = spawned_tx.send(Ok(()));
            let status = child.wait();
            *exit_slot.lock().unwrap() = Some(status);
            // Stay: a failed start is retried on another port from
            // another thread; a server that died stays dead.
            loop {
                std::thread::park();
            }
        })
        .unwrap();
    spawned_rx
        .recv()
        .unwrap()
        .map_err(|e| format!("cannot run postgres: {e}"))?;

    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = exited.lock().unwrap().take() {
            return Err(format!(
                "postgres exited ({status:?}); its log:\n{}",
                fs::read_to_string(&log_path).unwrap_or_default()
            ));
        }
        let answered = crate::daemon_support::block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            sqlx::raw_sql("SELECT 1").execute(&mut conn).await?;
            conn.close().await
        });
        match answered {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(format!(
                    "postgres did not answer within 60 s ({e}); its log:\n{}",
                    fs::read_to_string(&log_path).unwrap_or_default()
                ));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The harness itself: one server, loopback only, tuned for tests, and a
/// fresh empty database per test.
#[test]
fn the_test_server_runs_as_configured() {
    let db = crate::support::TempDatabase::postgres();
    let settings: Vec<(String, String)> = db.fetch_all(
        "SELECT name, setting FROM pg_settings
         WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes',
                        'max_connections', 'listen_addresses')
         ORDER BY name",
    );
    let want = [
        ("fsync", "off"),
        ("full_page_writes", "off"),
        ("listen_addresses", "127.0.0.1"),
        ("max_connections", "300"),
        ("synchronous_commit", "off"),
    ];
    assert_eq!(
        settings,
        want.map(|(k, v)| (k.to_owned(), v.to_owned())),
        "{}",
        server().dir.display()
    );
    let tables: Vec<(String,)> = db.fetch_all(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    );
    assert_eq!(tables, [], "a new database is empty");
    let other = crate::support::TempDatabase::postgres();
    assert_ne!(db.url, other.url);
    assert!(db.url.starts_with(&format!(
        "postgres://postgres@127.0.0.1:{}/test_",
        server().port
    )));
}
