//! What the console tests share: a small book whose backorders are known,
//! and a `serve` on it with or without a token.

use serde_json::{Value, json};
use std::time::Duration;

use crate::daemon_support::{Daemon, wait_idle};
use crate::support::TempDatabase;

pub const TOKEN: &str = "console-token-7c1e";

/// TEA: 1 on hand, order 1 (3) partial with 2 short, order 2 (5) full;
/// COFFEE: none on hand, orders 3 (ships from EAST) and 4 full; order 5
/// is supplied.
pub fn book() -> Value {
    let order = |id: &str, day: u32, sku: &str, qty: i64, ship_from: Option<&str>| {
        let mut o = json!({
            "id": id,
            "order_date": format!("2026-11-{day:02}T10:00:00Z"),
            "lines": [{"id": format!("{id}-1"), "sku": sku, "qty": qty}],
        });
        if let Some(w) = ship_from {
            o["ship_from"] = json!(w);
        }
        o
    };
    json!({
        "as_of": "2026-11-22T12:00:00Z",
        "warehouses": [{"id": "MAIN", "kind": "normal"}, {"id": "EAST", "kind": "normal"}],
        "inventory": [
            {"sku": "TEA", "warehouse": "MAIN", "on_hand": 1},
            {"sku": "SUGAR", "warehouse": "MAIN", "on_hand": 10},
        ],
        "purchase_orders": [],
        "orders": [
            order("1", 1, "TEA", 3, None),
            order("2", 2, "TEA", 5, None),
            order("3", 3, "COFFEE", 2, Some("EAST")),
            order("4", 4, "COFFEE", 1, None),
            order("5", 5, "SUGAR", 1, None),
        ],
    })
}

/// A port nobody listens on now (the daemon binds it a moment later).
pub fn free_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

/// `serve` on a fresh SQLite database holding [`book`], written back,
/// with `token` when given; returns its base URL.
pub fn serve_book(token: Option<&str>) -> (TempDatabase, Daemon, String) {
    serve_snapshot(&book(), token)
}

/// TEA: 3 on hand for order 1 (3, placed first) and order 2 (3, rush):
/// order 2 is backordered until rush orders go first.
pub fn rush_book() -> Value {
    let order = |id: &str, day: u32, rush: bool| {
        json!({
            "id": id,
            "order_date": format!("2026-11-{day:02}T10:00:00Z"),
            "rush": rush,
            "lines": [{"id": format!("{id}-1"), "sku": "TEA", "qty": 3}],
        })
    };
    json!({
        "warehouses": [{"id": "MAIN", "kind": "normal"}],
        "inventory": [{"sku": "TEA", "warehouse": "MAIN", "on_hand": 3}],
        "orders": [order("1", 1, false), order("2", 2, true)],
    })
}

/// [`serve_book`] on `snapshot`.
pub fn serve_snapshot(snapshot: &Value, token: Option<&str>) -> (TempDatabase, Daemon, String) {
    let db = TempDatabase::new();
    let imported = db.run(&["import", "-"], Some(snapshot.to_string().as_bytes()));
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut env = vec![("BACKORDERD__HTTP__LISTEN", listen.as_str())];
    if let Some(token) = token {
        env.push(("BACKORDERD__HTTP__TOKEN", token));
    }
    let daemon = Daemon::start(&db, &env);
    wait_idle(&db, Duration::from_secs(30));
    (db, daemon, format!("http://127.0.0.1:{port}"))
}

/// An HTTP client that follows no redirect and takes any status.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}
