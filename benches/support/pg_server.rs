//! A PostgreSQL server of the bench's own: a fresh data directory, a free
//! loopback port, settings of a real deployment (fsync on), stopped when
//! the bench ends (dropped, or the bench dies: PR_SET_PDEATHSIG).
//! Binaries from `/usr/lib/postgresql/<version>/bin` (15 preferred); as
//! root it runs as the `postgres` system user, which PostgreSQL requires.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PgServer {
    child: Child,
    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub url: String,
    _dir: tempfile::TempDir,
}

fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(bool, u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres")
                .is_file()
                .then_some((version == 15, version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, _, bin)| bin)
}

/// `postgres`'s uid and gid when we are root.
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: geteuid cannot fail; getpwnam returns static storage or null,
    // read at once, before the bench starts other threads that could call it.
    unsafe {
        if libc::geteuid() != 0 {
            return None;
        }
        let entry = libc::getpwnam(c"postgres".as_ptr());
        assert!(
            !entry.is_null(),
            "running as root without a `postgres` user"
        );
        Some(((*entry).pw_uid, (*entry).pw_gid))
    }
}

fn command(program: PathBuf, user: Option<(u32, u32)>, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir)
        .env("LC_ALL", "C")
        .env_remove("PGDATA")
        .stdin(Stdio::null());
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

impl PgServer {
    /// Starts the server; `None` (with the reason printed) when no
    /// PostgreSQL is installed.
    pub fn start(rt: &tokio::runtime::Runtime) -> Option<PgServer> {
        let Some(bin) = bin_dir() else {
            println!("PostgreSQL: skipped (no /usr/lib/postgresql/<version>/bin/postgres)");
            return None;
        };
        let user = run_as();
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let data = dir.path().join("data");
        let out = command(bin.join("initdb"), user, dir.path())
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--locale=C",
            ])
            .args(["--no-instructions", "-D"])
            .arg(&data)
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.path().join("postgres.log")).unwrap();
        let mut cmd = command(bin.join("postgres"), user, dir.path());
        cmd.arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.path().display()))
            .args(["-c", "shared_buffers=512MB", "-c", "work_mem=64MB"])
            .args(["-c", "max_connections=200", "-c", "max_wal_size=4GB"])
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; set after the switch of user,
        // which would clear it. The main thread, which spawns, lives as
        // long as the bench.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("postgres starts");
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let server = PgServer {
            child,
            url,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while rt
            .block_on(async {
                use sqlx::Connection;
                sqlx::PgConnection::connect(&server.url)
                    .await?
                    .close()
                    .await
            })
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not answer within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(server)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // SAFETY: SIGINT (fast shutdown) to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
    }
}
