//! The audit's figures on a generated book, printed (a bench command, not
//! criterion):
//!
//!     cargo bench --bench audit                      # 1,000,000 lines, 100,000 SKUs
//!     BENCH_LINES=100000 BENCH_SKUS=10000 cargo bench --bench audit
//!     BENCH_POSTGRES=0 cargo bench --bench audit     # SQLite only
//!
//! On SQLite, then on PostgreSQL (`BENCH_POSTGRES_URL`, or a server of the
//! bench's own when PostgreSQL is installed): the book is imported and
//! recalculated, then `audit` runs on the consistent store (wall time and
//! max RSS of the process; the target is under 2 s and 300 MB), then on
//! one with 1,000 lines and 1,000 orders tampered by plain SQL (the bench
//! checks that the report names exactly those), then `audit --repair` on
//! that.

#[path = "support/pg_server.rs"]
mod pg_server;
mod support;
use std::collections::BTreeSet;

use support::measure as run;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (book, lines, skus) = support::generated_book(dir.path(), 1.0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!("book: {lines} lines over {skus} SKUs");

    println!("\n== SQLite ==");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    figures(&rt, &url, &book);

    if support::env_or("BENCH_POSTGRES", 1) == 0 {
        println!("\nPostgreSQL: skipped (BENCH_POSTGRES=0)");
    } else if let Ok(url) = std::env::var("BENCH_POSTGRES_URL") {
        println!(
            "\n== PostgreSQL ({}) ==",
            backorderd::store::redact_url(&url)
        );
        figures(&rt, &url, &book);
    } else if let Some(server) = pg_server::PgServer::start(&rt) {
        println!(
            "\n== PostgreSQL (the bench's own server: fsync on, shared_buffers 512 MB, work_mem 64 MB) =="
        );
        figures(&rt, &server.url, &book);
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("\nload average at the end: {}", load.trim());
}

fn figures(rt: &tokio::runtime::Runtime, url: &str, book: &std::path::Path) {
    let report = book.with_file_name("audit.json");
    assert_eq!(run(url, &["import", book.to_str().unwrap()]).0, 0);
    assert_eq!(run(url, &["recalc", "--all", "--inline"]).0, 0);

    let (code, secs, rss) = run(url, &["audit"]);
    assert_eq!(code, 0, "a recalculated book has no drift");
    println!(
        "audit, no drift                      {secs:8.2} s   max RSS {rss:6.0} MiB  (target: 2 s, 300 MB)"
    );

    let (lines, orders) = tamper(rt, url);
    let (code, secs, rss) = support::measure_into(url, &["audit"], Some(&report));
    assert_eq!(code, 3, "the tampered book has drift");
    assert_reports_exactly(&report, &lines, &orders);
    println!("audit, 1,000 lines + 1,000 orders off {secs:8.2} s   max RSS {rss:6.0} MiB");
    let (code, secs, rss) = run(url, &["audit", "--repair"]);
    assert_eq!(code, 3);
    println!("audit --repair of those              {secs:8.2} s   max RSS {rss:6.0} MiB");
    assert_eq!(run(url, &["audit"]).0, 0, "repaired");
}

/// 1,000 lines' and 1,000 orders' stored values changed by plain SQL:
/// the ids of those lines and orders.
fn tamper(rt: &tokio::runtime::Runtime, url: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    use sqlx::Connection;
    const LINES: &str = r#"SELECT id FROM order_lines ORDER BY id COLLATE "C" LIMIT 1000"#;
    const ORDERS: &str = r#"SELECT id FROM orders ORDER BY id COLLATE "C" DESC LIMIT 1000"#;
    let sql = format!(
        "UPDATE order_lines SET backorder_qty = backorder_qty + 1 WHERE id IN ({LINES});
         UPDATE orders SET backorder_qty = backorder_qty + 5 WHERE id IN ({ORDERS});"
    );
    // SQLite names the byte-order collation BINARY.
    let sqlite = url.starts_with("sqlite:");
    let (sql, lines, orders) = if sqlite {
        let binary = |s: &str| s.replace(r#"COLLATE "C""#, "COLLATE BINARY");
        (binary(&sql), binary(LINES), binary(ORDERS))
    } else {
        (sql, LINES.to_owned(), ORDERS.to_owned())
    };
    rt.block_on(async {
        macro_rules! on {
            ($conn:ty) => {{
                let mut conn = <$conn>::connect(url).await.unwrap();
                let ids = |q: String| sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(q));
                let lines = ids(lines).fetch_all(&mut conn).await.unwrap();
                let orders = ids(orders).fetch_all(&mut conn).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                (lines.into_iter().collect(), orders.into_iter().collect())
            }};
        }
        if sqlite {
            on!(sqlx::SqliteConnection)
        } else {
            on!(sqlx::PgConnection)
        }
    })
}

/// The audit's report (`path`) names exactly the tampered lines and
/// orders, with their stored values off by what the tampering added.
fn assert_reports_exactly(
    path: &std::path::Path,
    lines: &BTreeSet<String>,
    orders: &BTreeSet<String>,
) {
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).unwrap()).expect("the audit prints JSON");
    let listed = |key: &str, field: &str| -> BTreeSet<String> {
        report[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key} is listed"))
            .iter()
            .map(|r| r[field].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(&listed("lines", "line_id"), lines, "the tampered lines");
    assert_eq!(&listed("orders", "order_id"), orders, "the tampered orders");
}
