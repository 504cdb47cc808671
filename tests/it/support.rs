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
        // A command that fails before reading its input closes the pipe;
        // its exit code and stderr are what the caller checks.
        if let Err(e) = child.stdin.take().unwrap().write_all(bytes) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
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

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A file in a fresh temporary directory (the embedded default).
    Sqlite,
    /// A fresh database on the test process's PostgreSQL server
    /// (tests/it/postgres.rs).
    Postgres,
}

/// A fresh database, removed when dropped, and a temporary directory
/// beside it for the test's own files.
pub struct TempDatabase {
    dir: tempfile::TempDir,
    pub backend: Backend,
    pub url: String,
    /// The SQLite file (for PostgreSQL: a path in the temporary directory
    /// where nothing is created).
    pub path: PathBuf,
    /// The PostgreSQL database's name.
    postgres_name: Option<String>,
}

impl TempDatabase {
    /// A fresh SQLite file.
    pub fn new() -> Self {
        Self::of(Backend::Sqlite)
    }

    /// A fresh PostgreSQL database.
    pub fn postgres() -> Self {
        Self::of(Backend::Postgres)
    }

    pub fn of(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backorderd.db");
        let (url, postgres_name) = match backend {
            Backend::Sqlite => (format!("sqlite://{}", path.display()), None),
            Backend::Postgres => {
                let (name, url) = crate::postgres::create_database();
                (url, Some(name))
            }
        };
        TempDatabase {
            dir,
            backend,
            url,
            path,
            postgres_name,
        }
    }

    /// A database on a PostgreSQL server of the test's own
    /// ([`crate::postgres::OwnServer`]): created here, gone with the server.
    pub fn on_own_postgres(server: &crate::postgres::OwnServer, name: &str) -> Self {
        let sql = format!("CREATE DATABASE {name}");
        server
            .server
            .admin(&sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backorderd.db");
        TempDatabase {
            dir,
            backend: Backend::Postgres,
            url: server.server.url(name),
            path,
            postgres_name: None,
        }
    }

    /// A path for a file of the test's own in the temporary directory.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `backorderd --database-url URL ARGS`.
    pub fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut all = vec!["--database-url", self.url.as_str()];
        all.extend_from_slice(args);
        backorderd(&all, stdin, &[])
    }

    /// Reads rows straight from the database. Write the SQL for both
    /// databases: `CAST(x AS BIGINT)` for integers read as `i64`, `$1`
    /// placeholders if any.
    pub fn fetch_all<T>(&self, sql: &str) -> Vec<T>
    where
        T: Send
            + Unpin
            + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        use sqlx::Connection;
        crate::daemon_support::block_on(async {
            match self.backend {
                Backend::Sqlite => {
                    let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                    let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
                        .fetch_all(&mut conn)
                        .await;
                    conn.close().await.unwrap();
                    rows
                }
                Backend::Postgres => {
                    let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                    let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
                        .fetch_all(&mut conn)
                        .await;
                    conn.close().await.unwrap();
                    rows
                }
            }
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
        })
    }

    /// Runs SQL statements straight on the database.
    pub fn execute(&self, sql: &str) {
        use sqlx::Connection;
        let done: Result<(), sqlx::Error> = crate::daemon_support::block_on(async {
            match self.backend {
                Backend::Sqlite => {
                    let mut conn = sqlx::SqliteConnection::connect(&self.url).await?;
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                        .execute(&mut conn)
                        .await?;
                    conn.close().await
                }
                Backend::Postgres => {
                    let mut conn = sqlx::PgConnection::connect(&self.url).await?;
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                        .execute(&mut conn)
                        .await?;
                    conn.close().await
                }
            }
        });
        done.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

impl TempDatabase {
    /// PostgreSQL only: makes the database refuse new connections and ends
    /// the open ones (`refuse`), or takes connections again.
    pub fn postgres_refuse_connections(&self, refuse: bool) {
        let name = self
            .postgres_name
            .as_deref()
            .expect("a PostgreSQL database");
        let sql = if refuse {
            format!(
                "ALTER DATABASE {name} ALLOW_CONNECTIONS false;
                 SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            )
        } else {
            format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        };
        crate::postgres::server()
            .admin(&sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        if let Some(name) = &self.postgres_name {
            crate::postgres::drop_database(name);
        }
    }
}

/// `on_both_backends!(name, ...)`: for each `fn name(backend: Backend)`, a
/// module `name` with the tests `name::sqlite` and `name::postgres`
/// (`cargo test postgres` runs every PostgreSQL test).
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    super::$name($crate::support::Backend::Sqlite)
                }

                #[test]
                fn postgres() {
                    super::$name($crate::support::Backend::Postgres)
                }
            }
        )+
    };
}
pub(crate) use on_both_backends;
