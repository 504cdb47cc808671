//! What each fuzz target does with one input, and the properties it checks.
//!
//! The three targets (fuzz_targets/*.rs) only hand their bytes to the
//! functions here. The main crate's tests compile this same file
//! (tests/fuzz_regressions.rs) and replay the seed corpora and every recorded
//! crash through it on the stable toolchain, so a crash found once stays
//! fixed. A property that does not hold panics, which libFuzzer records as a
//! crash with the input that caused it.

use std::collections::HashMap;
use std::path::PathBuf;

use backorderd::engine::snapshot::{InventoryRow, Order, WarehouseKind};
use backorderd::engine::{self, Allocation, BackorderStatus, ResultView, Scope, Snapshot};
use backorderd::events::{self, Event, EventKind};
use backorderd::input::from_json;
use chrono::{DateTime, TimeZone, Utc};

/// "Now" for snapshots without `as_of`: fixed, so that a crash replays.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
}

// ---------------------------------------------------------------------------
// snapshot: bytes -> snapshot JSON -> validation -> engine -> result JSON

/// Reads `data` as `simulate` does and, when it is a snapshot the engine
/// accepts, checks the result against the contract.
pub fn snapshot(data: &[u8]) {
    if let Ok(snapshot) = from_json::<Snapshot>(data) {
        recalculate_and_check(&snapshot);
    }
}

/// `engine::recalculate`, then the properties every accepted snapshot's
/// result has. Returns whether the engine accepted the snapshot.
pub fn recalculate_and_check(snapshot: &Snapshot) -> bool {
    let Ok(allocation) = engine::recalculate(snapshot, now()) else {
        return false;
    };
    let as_of = snapshot.as_of.unwrap_or_else(now);
    check_outcomes(snapshot, &allocation, as_of);
    check_pools(snapshot, &allocation);
    assert_eq!(
        engine::allocate(snapshot, as_of),
        allocation,
        "the same snapshot allocated twice gives two answers"
    );
    check_result_json(snapshot, &allocation);
    check_round_trip(snapshot);
    true
}

/// Sections 2, 5, 7 and 8, line by line and order by order.
fn check_outcomes(snapshot: &Snapshot, allocation: &Allocation, as_of: DateTime<Utc>) {
    let line_count: usize = snapshot.orders.iter().map(|o| o.lines.len()).sum();
    assert_eq!(allocation.lines.len(), line_count, "one outcome per line");
    assert_eq!(allocation.orders.len(), snapshot.orders.len());
    let per_order = allocation.lines_by_order(&snapshot.orders);
    for ((order, outcome), lines) in snapshot
        .orders
        .iter()
        .zip(&allocation.orders)
        .zip(per_order)
    {
        let scope = engine::scope_of(order, &snapshot.settings, &snapshot.warehouses, as_of);
        assert_eq!(outcome.scope, scope, "order {:?}: scope", order.id);
        for (line, out) in order.lines.iter().zip(lines) {
            let what = format!("order {:?} line {:?}", order.id, line.id);
            match scope {
                Scope::Closed => assert_eq!(out.backorder_qty, 0, "{what}: closed"),
                Scope::Excluded | Scope::Frozen => {
                    assert_eq!(out.backorder_qty, line.backorder_qty, "{what}: kept")
                }
                Scope::Active => assert!(
                    (0..=line.qty).contains(&out.backorder_qty),
                    "{what}: backorder {} outside 0..={}",
                    out.backorder_qty,
                    line.qty
                ),
            }
            if out.eta.is_some() {
                assert!(
                    scope == Scope::Active && out.backorder_qty > 0,
                    "{what}: an eta on a line that is not backordered and active"
                );
            }
        }
        let total: i128 = lines.iter().map(|l| i128::from(l.backorder_qty)).sum();
        assert_eq!(
            i128::from(outcome.backorder_qty),
            total,
            "order {:?}: backorder_qty is not the sum of its lines",
            order.id
        );
        let status = if scope == Scope::Closed {
            BackorderStatus::None
        } else {
            BackorderStatus::of_lines(
                order
                    .lines
                    .iter()
                    .zip(lines)
                    .map(|(l, o)| (l.qty, o.backorder_qty)),
            )
        };
        assert_eq!(outcome.status, status, "order {:?}: status", order.id);
    }
}

/// Sections 3 and 5, computed independently: each pool hands out exactly
/// `min(pool size, demand)` units to its active lines. (Without replacement
/// SKUs, whose lines also draw on other pools.)
fn check_pools<'s>(snapshot: &'s Snapshot, allocation: &Allocation) {
    let settings = &snapshot.settings;
    if settings.consider_replacement_sku {
        return;
    }
    type Pool<'a> = (&'a str, Option<&'a str>);
    let key = |sku: &'s str, warehouse: Option<&'s str>| -> Pool<'s> {
        (sku, warehouse.filter(|_| settings.warehouse_based))
    };
    let kinds: HashMap<&str, WarehouseKind> = snapshot
        .warehouses
        .iter()
        .map(|w| (w.id.as_str(), w.kind))
        .collect();
    let mut supply: HashMap<Pool, i128> = HashMap::new();
    for row in &snapshot.inventory {
        let eligible = kinds
            .get(row.warehouse.as_str())
            .is_some_and(|&kind| engine::is_eligible(kind, settings));
        if eligible {
            *supply
                .entry(key(row.sku.as_str(), Some(row.warehouse.as_str())))
                .or_default() += i128::from(row.on_hand);
        }
    }
    let mut held: HashMap<Pool, i128> = HashMap::new();
    let mut demand: HashMap<Pool, (i128, i128)> = HashMap::new();
    let per_order = allocation.lines_by_order(&snapshot.orders);
    for ((order, outcome), lines) in snapshot
        .orders
        .iter()
        .zip(&allocation.orders)
        .zip(per_order)
    {
        for (line, out) in order.lines.iter().zip(lines) {
            let at = key(line.sku.as_str(), order.ship_from.as_deref());
            match outcome.scope {
                Scope::Frozen => {
                    let kept = line.backorder_qty.clamp(0, line.qty.max(0));
                    *held.entry(at).or_default() += i128::from(line.qty) - i128::from(kept);
                }
                Scope::Active => {
                    let entry = demand.entry(at).or_default();
                    entry.0 += i128::from(line.qty);
                    entry.1 += i128::from(line.qty) - i128::from(out.backorder_qty);
                }
                Scope::Closed | Scope::Excluded => {}
            }
        }
    }
    for (at, (wanted, given)) in demand {
        let on_hand = supply.get(&at).copied().unwrap_or(0).max(0);
        let size = (on_hand - held.get(&at).copied().unwrap_or(0)).max(0);
        assert_eq!(
            given,
            size.min(wanted),
            "pool {at:?}: {given} units given of {size} for a demand of {wanted}"
        );
    }
}

/// The result as `simulate` prints it: JSON with one row per line and order.
fn check_result_json(snapshot: &Snapshot, allocation: &Allocation) {
    let view = ResultView {
        snapshot,
        allocation,
    };
    let text = serde_json::to_vec(&view).expect("the result serializes");
    let value: serde_json::Value = serde_json::from_slice(&text).expect("the result is JSON");
    let lines = value["lines"].as_array().expect("result.lines");
    assert_eq!(lines.len(), allocation.lines.len());
    for (row, out) in lines.iter().zip(&allocation.lines) {
        assert_eq!(row["backorder_qty"].as_i64(), Some(out.backorder_qty));
    }
    let orders = value["orders"].as_array().expect("result.orders");
    assert_eq!(orders.len(), allocation.orders.len());
    serde_json::to_vec_pretty(&view).expect("the result serializes pretty");
}

/// What `export` writes, `import` reads back unchanged.
fn check_round_trip(snapshot: &Snapshot) {
    let text = serde_json::to_vec(snapshot).expect("a snapshot serializes");
    match from_json::<Snapshot>(&text) {
        Ok(again) => assert_eq!(
            &again, snapshot,
            "a snapshot changed on its way out and back"
        ),
        Err(err) => panic!("an accepted snapshot, written out, is refused: {err}"),
    }
}

// ---------------------------------------------------------------------------
// events: bytes -> JSON Lines batch -> per-event checks -> applied -> engine

/// Reads `data` as `event FILE` does. An accepted batch is then applied, event
/// by event, to a small stored state the way the store applies it (an event
/// the store would refuse, one that overflows a quantity or leaves a state
/// that validation refuses, changes nothing), and the engine must recalculate
/// every state so reached.
pub fn events(data: &[u8]) {
    let Ok(batch) = events::parse_batch(data) else {
        return;
    };
    for event in &batch {
        assert!(
            events::check(event).is_ok(),
            "parse_batch let through {event:?}"
        );
    }
    let mut state = base_state();
    for event in &batch {
        let mut next = state.clone();
        if apply(&mut next, event).is_some() && engine::validate(&next).is_ok() {
            assert!(recalculate_and_check(&next), "validated but refused");
            state = next;
        }
    }
}

/// The stored state events are applied to: a normal and an FBA warehouse,
/// a product with a replacement, a purchase order, orders of every class,
/// one of them frozen.
pub fn base_state() -> Snapshot {
    let text = serde_json::json!({
        "as_of": "2026-11-22T12:00:00Z",
        "settings": {"max_days_back": 30},
        "warehouses": [{"id": "MAIN", "kind": "normal"}, {"id": "EAST", "kind": "fba"}],
        "products": [{"sku": "TEA", "replacement_sku": "TEA2"}],
        "inventory": [
            {"sku": "TEA", "warehouse": "MAIN", "on_hand": 6},
            {"sku": "TEA", "warehouse": "EAST", "on_hand": 3},
            {"sku": "TEA2", "warehouse": "MAIN", "on_hand": 1},
        ],
        "purchase_orders": [{"id": "PO-1", "sku": "TEA", "warehouse": "MAIN",
            "qty_ordered": 10, "qty_received": 2, "expected_date": "2026-12-05"}],
        "orders": [
            {"id": "SO-0", "order_date": "2026-09-01T10:00:00Z", "ship_from": "MAIN",
             "lines": [{"id": "SO-0-1", "sku": "TEA", "qty": 3, "backorder_qty": 1}]},
            {"id": "SO-1", "order_date": "2026-11-02T09:00:00Z", "ship_from": "MAIN",
             "lines": [{"id": "SO-1-1", "sku": "TEA", "qty": 4},
                       {"id": "SO-1-2", "sku": "TEA2", "qty": 2}]},
            {"id": "SO-2", "order_date": "2026-11-03T09:00:00Z", "ship_from": "EAST",
             "rush": true, "lines": [{"id": "SO-2-1", "sku": "TEA", "qty": 5}]},
            {"id": "SO-3", "order_date": "2026-11-04T09:00:00Z", "status": "on_hold",
             "lines": [{"id": "SO-3-1", "sku": "TEA", "qty": 1, "backorder_qty": 1}]},
            {"id": "SO-4", "order_date": "2026-11-05T09:00:00Z", "status": "shipped",
             "lines": [{"id": "SO-4-1", "sku": "TEA2", "qty": 1}]},
        ],
    });
    serde_json::from_value(text).expect("the base state reads")
}

/// One event applied as events.md says; `None` where the store refuses it
/// (an unknown order, line or warehouse, a quantity that overflows).
fn apply(state: &mut Snapshot, event: &Event) -> Option<()> {
    match &event.kind {
        EventKind::PoReceived {
            sku,
            warehouse,
            qty,
            po_id,
        } => {
            known_warehouse(state, warehouse)?;
            let row = inventory_row(state, sku, warehouse);
            row.on_hand = row.on_hand.checked_add(*qty)?;
            if let Some(po) = po_id
                .as_deref()
                .and_then(|id| state.purchase_orders.iter_mut().find(|p| p.id == id))
            {
                po.qty_received = po.qty_received.checked_add(*qty)?;
            }
        }
        EventKind::InventoryAdjusted {
            sku,
            warehouse,
            delta,
        } => {
            known_warehouse(state, warehouse)?;
            let row = inventory_row(state, sku, warehouse);
            row.on_hand = row.on_hand.checked_add(*delta)?;
        }
        EventKind::InventorySet {
            sku,
            warehouse,
            on_hand,
        } => {
            known_warehouse(state, warehouse)?;
            inventory_row(state, sku, warehouse).on_hand = *on_hand;
        }
        EventKind::PurchaseOrderUpserted { purchase_order } => {
            state.purchase_orders.retain(|p| p.id != purchase_order.id);
            state.purchase_orders.push(purchase_order.clone());
        }
        EventKind::ProductUpserted { product } => {
            for warehouse in product.backorder_thresholds.keys() {
                known_warehouse(state, warehouse)?;
            }
            state.products.retain(|p| p.sku != product.sku);
            state.products.push(product.clone());
        }
        EventKind::OrderUpserted { order } => {
            state.orders.retain(|o| o.id != order.id);
            state.orders.push(order.clone());
        }
        EventKind::OrderStatusChanged { order_id, status } => {
            stored_order(state, order_id)?.status = *status;
        }
        EventKind::OrderPaymentChanged {
            order_id,
            payment_status,
            payment_date,
        } => {
            let order = stored_order(state, order_id)?;
            order.payment_status = *payment_status;
            order.payment_date = *payment_date;
        }
        EventKind::OrderSplit {
            order_id,
            new_order_id,
            line_ids,
        } => {
            if state.orders.iter().any(|o| &o.id == new_order_id) {
                return None;
            }
            let order = stored_order(state, order_id)?;
            if !line_ids
                .iter()
                .all(|id| order.lines.iter().any(|l| &l.id == id))
            {
                return None;
            }
            let mut split = order.clone();
            split.id = new_order_id.clone();
            split.lines.retain(|l| line_ids.contains(&l.id));
            order.lines.retain(|l| !line_ids.contains(&l.id));
            state.orders.push(split);
        }
        EventKind::SettingsChanged { settings } => settings.apply(&mut state.settings),
        EventKind::BackorderOverride {
            line_id,
            backorder_qty,
        } => {
            let line = state
                .orders
                .iter_mut()
                .flat_map(|o| o.lines.iter_mut())
                .find(|l| &l.id == line_id)?;
            line.backorder_qty = *backorder_qty;
        }
        EventKind::Recalculate { .. } => {}
    }
    Some(())
}

fn known_warehouse(state: &Snapshot, id: &str) -> Option<()> {
    state.warehouses.iter().any(|w| w.id == id).then_some(())
}

fn inventory_row<'s>(state: &'s mut Snapshot, sku: &str, warehouse: &str) -> &'s mut InventoryRow {
    let at = state
        .inventory
        .iter()
        .position(|r| r.sku == sku && r.warehouse == warehouse);
    let at = at.unwrap_or_else(|| {
        state.inventory.push(InventoryRow {
            sku: sku.into(),
            warehouse: warehouse.into(),
            on_hand: 0,
        });
        state.inventory.len() - 1
    });
    &mut state.inventory[at]
}

fn stored_order<'s>(state: &'s mut Snapshot, id: &str) -> Option<&'s mut Order> {
    state.orders.iter_mut().find(|o| o.id == id)
}

// ---------------------------------------------------------------------------
// config: bytes -> a `--config` file -> every layer loaded and checked

/// Writes `data` to a file and loads it as `--config FILE` (the binary's own
/// loader, with no environment layer). Whatever the outcome, no secret the
/// file holds (the API token, a database password) may appear in the error
/// or in how the settings print.
pub fn config(data: &[u8]) {
    let shown = load_config(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for secret in secrets_in(text) {
        if !shown.contains(&secret) {
            continue;
        }
        // The same file with the secret replaced: if the text still shows
        // up, it is part of a fixed message (or the file's name), not a leak.
        let stand_in: String = {
            let c = ['Q', 'Z', 'J', 'X']
                .into_iter()
                .find(|c| !secret.contains(*c))
                .expect("a secret holds at most 3 of these");
            std::iter::repeat_n(c, secret.chars().count()).collect()
        };
        let replaced = load_config(text.replace(&secret, &stand_in).as_bytes());
        assert!(
            replaced.contains(&secret),
            "the secret {secret:?} leaks: {shown}"
        );
    }
}

/// What a user sees of loading `data`: the error, or the settings as
/// `Debug` and `Display` print them.
fn load_config(data: &[u8]) -> String {
    let path = scratch_path();
    std::fs::write(&path, data).expect("the scratch file can be written");
    let loaded = backorderd::config::load_from(Some(&path), None, Vec::new());
    let _ = std::fs::remove_file(&path);
    match loaded {
        Ok(settings) => {
            let exposure = match settings.http.check_exposure() {
                Ok(()) => String::new(),
                Err(err) => err.to_string(),
            };
            // As check-config shows them.
            let shown = serde_json::to_string(&settings).expect("settings serialize");
            format!("{settings:?}\n{settings:#?}\n{shown}\n{exposure}")
        }
        Err(err) => format!("{err}\n{err:?}"),
    }
}

/// One scratch file per process and thread (the tests run in threads).
fn scratch_path() -> PathBuf {
    let thread = format!("{:?}", std::thread::current().id());
    let thread: String = thread.chars().filter(char::is_ascii_digit).collect();
    std::env::temp_dir().join(format!(
        "backorderd-fuzz-config-{}-{thread}.toml",
        std::process::id()
    ))
}

/// The secrets a TOML text plainly holds: `http.token`, and the password of
/// `database_url` (user:PASSWORD@ or password=PASSWORD). Only those of at
/// least 6 characters that occur once in the text, so that a match in the
/// output cannot come from elsewhere in the file. Texts with multi-line
/// strings are skipped: a line there is not a key.
pub fn secrets_in(text: &str) -> Vec<String> {
    if text.contains("\"\"\"") || text.contains("'''") {
        return Vec::new();
    }
    let mut section = String::new();
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[') {
            section = header.trim_end_matches(']').trim().to_owned();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let full = if section.is_empty() {
            key.to_owned()
        } else {
            format!("{section}.{key}")
        };
        let Some(value) = quoted(value.trim()) else {
            continue;
        };
        match full.as_str() {
            "http.token" => found.push(value.to_owned()),
            "database_url" => found.extend(url_password(value)),
            _ => {}
        }
    }
    found.retain(|s| s.chars().count() >= 6 && text.matches(s.as_str()).count() == 1);
    found
}

/// The content of a one-line TOML string without escapes; an unterminated
/// one runs to the end of the line (a syntax error must not show it either).
fn quoted(value: &str) -> Option<&str> {
    let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let rest = &value[1..];
    let content = &rest[..rest.find(quote).unwrap_or(rest.len())];
    (!content.contains('\\')).then_some(content.trim_end())
}

/// The password in a database URL, as a user would read it: between the
/// first `:` after the scheme and the last `@`, or after `password=`.
fn url_password(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    let lower = url.to_ascii_lowercase();
    if let Some(start) = lower.find("password=") {
        let rest = &url[start + "password=".len()..];
        let end = rest.find(['&', ' ', '\t']).unwrap_or(rest.len());
        found.push(rest[..end].to_owned());
    }
    if !lower.starts_with("sqlite:")
        && let Some(scheme_end) = url.find("://").map(|i| i + 3)
        && let Some(at) = url.rfind('@').filter(|&at| at > scheme_end)
        && let Some(colon) = url[scheme_end..at].find(':')
    {
        found.push(url[scheme_end + colon + 1..at].to_owned());
    }
    found
}
