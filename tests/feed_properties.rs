//! Property tests of the availability feed and the purchasing report over
//! random snapshots: each figure against a computation written here from
//! the engine's result and the contract's words (notifications.md sections
//! 3 and 4), not from the feed's own code.

use std::collections::{BTreeMap, BTreeSet};

use backorderd::engine::snapshot::*;
use backorderd::engine::{self, Allocation, Scope};
use backorderd::feed::{self, FeedEntry, FeedSource, purchasing};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use proptest::prelude::*;

const SKUS: [&str; 4] = ["A", "B", "C", "D"];
const WAREHOUSES: [(&str, WarehouseKind); 4] = [
    ("W1", WarehouseKind::Normal),
    ("W2", WarehouseKind::Normal),
    ("DS", WarehouseKind::Dropship),
    ("FB", WarehouseKind::Fba),
];

fn as_of() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
}

fn settings() -> impl Strategy<Value = Settings> {
    (any::<[bool; 8]>(), prop::option::of(0u32..30)).prop_map(|(b, max_days_back)| Settings {
        warehouse_based: b[0],
        exclude_dropship: b[1],
        consider_replacement_sku: b[2],
        include_on_hold: b[3],
        include_unpaid: b[4],
        prioritize_fully_shippable: b[5],
        prioritize_rush: b[6],
        use_payment_date: b[7],
        max_days_back,
        ..Settings::default()
    })
}

fn pick<T: Clone + std::fmt::Debug + 'static>(items: Vec<T>) -> impl Strategy<Value = T> {
    prop::sample::select(items)
}

fn sku() -> impl Strategy<Value = String> {
    pick(SKUS.to_vec()).prop_map(str::to_owned)
}

fn warehouse() -> impl Strategy<Value = String> {
    pick(WAREHOUSES.map(|w| w.0).to_vec()).prop_map(str::to_owned)
}

fn order(index: usize) -> impl Strategy<Value = Order> {
    let lines = prop::collection::vec((sku(), 0i64..8, 0i64..9), 0..4);
    (
        (0i64..5).prop_map(|d| as_of() - Duration::days(d * 10)),
        pick(PaymentStatus::ALL.to_vec()),
        pick(OrderStatus::ALL.to_vec()),
        any::<bool>(),
        prop::option::of(warehouse()),
        lines,
    )
        .prop_map(
            move |(order_date, payment_status, status, rush, ship_from, lines)| {
                let id = format!("O{index:02}");
                Order {
                    lines: lines
                        .into_iter()
                        .enumerate()
                        .map(|(k, (sku, qty, backorder_qty))| Line {
                            id: format!("{id}-{k}"),
                            sku,
                            qty,
                            backorder_qty,
                        })
                        .collect(),
                    id,
                    order_date,
                    payment_date: None,
                    payment_status,
                    status,
                    rush,
                    picked: false,
                    ship_from,
                    customer: None,
                }
            },
        )
}

fn product(sku: &'static str) -> impl Strategy<Value = Product> {
    (
        prop::option::of(pick(SKUS.to_vec())),
        prop::option::of(pick(vec!["ACME", "Globex"])),
        prop::bool::weighted(0.8),
        prop::collection::btree_map(warehouse(), 0i64..6, 0..4),
    )
        .prop_map(move |(replacement, vendor, allow, thresholds)| Product {
            sku: sku.to_owned(),
            replacement_sku: replacement.filter(|r| *r != sku).map(str::to_owned),
            vendor: vendor.map(str::to_owned),
            allow_backorders: allow,
            backorder_thresholds: thresholds,
        })
}

fn snapshot() -> impl Strategy<Value = Snapshot> {
    let inventory = prop::collection::vec((sku(), warehouse(), -6i64..16), 0..10);
    let purchase_orders = prop::collection::vec(
        (
            sku(),
            warehouse(),
            0i64..10,
            0i64..6,
            prop::option::of(0i64..4),
        ),
        0..6,
    );
    let products = (
        prop::option::of(product("A")),
        prop::option::of(product("B")),
        prop::option::of(product("C")),
    );
    let orders = (0usize..12).prop_flat_map(|n| (0..n).map(order).collect::<Vec<_>>());
    (settings(), inventory, purchase_orders, products, orders).prop_map(
        |(settings, inventory, pos, (a, b, c), orders)| Snapshot {
            as_of: Some(as_of()),
            settings,
            warehouses: WAREHOUSES
                .iter()
                .map(|(id, kind)| Warehouse {
                    id: (*id).into(),
                    kind: *kind,
                })
                .collect(),
            products: [a, b, c].into_iter().flatten().collect(),
            inventory: inventory
                .into_iter()
                .map(|(sku, warehouse, on_hand)| InventoryRow {
                    sku,
                    warehouse,
                    on_hand,
                })
                .collect(),
            purchase_orders: pos
                .into_iter()
                .enumerate()
                .map(
                    |(i, (sku, warehouse, qty_ordered, qty_received, d))| PurchaseOrder {
                        id: format!("PO{i}"),
                        sku,
                        warehouse,
                        qty_ordered,
                        qty_received,
                        expected_date: d.map(|d| {
                            NaiveDate::from_ymd_opt(2026, 12, 1).unwrap() + Duration::days(d * 7)
                        }),
                    },
                )
                .collect(),
            orders,
        },
    )
}

// ------------------------------------------------- computed here, from the text

fn eligible(s: &Snapshot, warehouse: &str) -> bool {
    s.warehouses
        .iter()
        .find(|w| w.id == warehouse)
        .is_some_and(|w| engine::is_eligible(w.kind, &s.settings))
}

/// `(sku, ship_from, scope, qty, result backorder, stored backorder, order)`
struct LineFact<'a> {
    sku: &'a str,
    ship_from: Option<&'a str>,
    scope: Scope,
    qty: i64,
    backorder: i64,
    stored: i64,
    order: &'a Order,
}

fn facts<'a>(s: &'a Snapshot, a: &Allocation) -> Vec<LineFact<'a>> {
    s.orders
        .iter()
        .zip(&a.orders)
        .zip(a.lines_by_order(&s.orders))
        .flat_map(|((o, out), lines)| {
            o.lines.iter().zip(lines).map(move |(l, r)| LineFact {
                sku: &l.sku,
                ship_from: o.ship_from.as_deref(),
                scope: out.scope,
                qty: l.qty,
                backorder: r.backorder_qty,
                stored: l.backorder_qty,
                order: o,
            })
        })
        .collect()
}

/// A pool's key: the warehouse with `warehouse_based`, else none.
fn pool_of<'a>(s: &Snapshot, ship_from: Option<&'a str>) -> Option<&'a str> {
    if s.settings.warehouse_based {
        ship_from
    } else {
        None
    }
}

/// Section 3 of allocation.md, literally, and what each pool's own lines
/// took from it: `min(size, their demand)`, as every line takes what is
/// left in priority order.
fn pools<'a>(
    s: &'a Snapshot,
    f: &[LineFact<'a>],
) -> BTreeMap<(&'a str, Option<&'a str>), (i64, i64, i64)> {
    // (size, own demand, allocated to own lines)
    let mut keys: BTreeSet<(&str, Option<&str>)> = BTreeSet::new();
    for l in f {
        keys.insert((l.sku, pool_of(s, l.ship_from)));
    }
    for r in &s.inventory {
        keys.insert((r.sku.as_str(), pool_of(s, Some(r.warehouse.as_str()))));
    }
    keys.into_iter()
        .map(|(sku, w)| {
            let stock: i64 = s
                .inventory
                .iter()
                .filter(|r| r.sku == sku && eligible(s, &r.warehouse))
                .filter(|r| w.is_none_or(|w| r.warehouse == w))
                .map(|r| r.on_hand)
                .sum();
            let in_pool = |l: &&LineFact| l.sku == sku && pool_of(s, l.ship_from) == w;
            let held: i64 = f
                .iter()
                .filter(in_pool)
                .filter(|l| l.scope == Scope::Frozen)
                .map(|l| l.qty - l.stored.clamp(0, l.qty))
                .sum();
            let size = (stock.max(0) - held).max(0);
            let active = f
                .iter()
                .filter(in_pool)
                .filter(|l| l.scope == Scope::Active);
            let demand: i64 = active.clone().map(|l| l.qty).sum();
            let allocated: i64 = active.map(|l| l.qty - l.backorder).sum();
            ((sku, w), (size, demand, allocated))
        })
        .collect()
}

fn replacement<'a>(s: &'a Snapshot, sku: &str) -> Option<&'a str> {
    s.products
        .iter()
        .find(|p| p.sku == sku)
        .and_then(|p| p.replacement_sku.as_deref())
        .filter(|r| *r != sku)
}

/// Stock of a pool that neither its own lines nor lines drawing on it as
/// their replacement were given.
fn expected_free(s: &Snapshot, f: &[LineFact], sku: &str, w: Option<&str>) -> i64 {
    let pools = pools(s, f);
    let Some(&(size, demand, _)) = pools.get(&(sku, w)) else {
        return 0;
    };
    let own = size.min(demand);
    let drawn: i64 = if s.settings.consider_replacement_sku {
        pools
            .iter()
            .filter(|((other, ow), _)| *ow == w && replacement(s, other) == Some(sku))
            .map(|(_, &(osize, odemand, oalloc))| oalloc - osize.min(odemand))
            .sum()
    } else {
        0
    };
    size - own - drawn
}

fn check_entry(s: &Snapshot, f: &[LineFact], e: &FeedEntry) -> Result<(), TestCaseError> {
    let sku = e.sku.as_str();
    let active = || {
        f.iter()
            .filter(|l| l.sku == sku && l.scope == Scope::Active)
    };
    prop_assert_eq!(
        e.allocated,
        active().map(|l| l.qty - l.backorder).sum::<i64>()
    );
    prop_assert_eq!(e.backordered, active().map(|l| l.backorder).sum::<i64>());
    let on_hand: i64 = s
        .inventory
        .iter()
        .filter(|r| r.sku == sku && eligible(s, &r.warehouse))
        .map(|r| r.on_hand)
        .sum();
    prop_assert_eq!(e.on_hand, on_hand);
    let open = || {
        s.purchase_orders
            .iter()
            .filter(|p| p.sku == sku && eligible(s, &p.warehouse) && p.open_qty() > 0)
    };
    prop_assert_eq!(e.on_order, open().map(|p| p.open_qty()).sum::<i64>());
    prop_assert_eq!(e.next_eta, open().filter_map(|p| p.expected_date).min());

    prop_assert!(e.free >= 0, "free {} of {sku}", e.free);
    let free: i64 = if s.settings.warehouse_based {
        s.warehouses
            .iter()
            .map(|w| expected_free(s, f, sku, Some(&w.id)))
            .sum()
    } else {
        expected_free(s, f, sku, None)
    };
    prop_assert_eq!(e.free, free, "free of {}", sku);

    let product = s.products.iter().find(|p| p.sku == sku);
    let backordered_in = |w: &str| -> i64 {
        active()
            .filter(|l| l.ship_from == Some(w))
            .map(|l| l.backorder)
            .sum()
    };
    for w in &e.warehouses {
        prop_assert_eq!(w.backordered, backordered_in(&w.warehouse));
    }
    let thresholds = product.map(|p| &p.backorder_thresholds);
    let over = thresholds.is_some_and(|t| t.iter().any(|(w, &t)| backordered_in(w) > t));
    prop_assert_eq!(e.over_threshold, over);
    // Sellable: free plus the allowance of every eligible warehouse.
    let allowance = match product {
        Some(p) if !p.allow_backorders => Some(0),
        _ => {
            let mut sum = Some(0i64);
            for w in s.warehouses.iter().filter(|w| eligible(s, &w.id)) {
                match thresholds.and_then(|t| t.get(&w.id)) {
                    Some(&t) => sum = sum.map(|n| n + (t - backordered_in(&w.id)).max(0)),
                    None => sum = None,
                }
            }
            sum
        }
    };
    prop_assert_eq!(e.sellable, allowance.map(|a| free + a));
    if let Some(sellable) = e.sellable {
        prop_assert!(sellable >= e.free);
    }
    Ok(())
}

fn check_report(s: &Snapshot, f: &[LineFact], entries: &[FeedEntry]) -> Result<(), TestCaseError> {
    let report = purchasing::report(
        &FeedSource::from_allocation(s, &engine::allocate(s, as_of())),
        None,
    )
    .expect("no vendor filter");
    let listed: BTreeMap<&str, (&Option<String>, &purchasing::SkuShortfall)> = report
        .vendors
        .iter()
        .flat_map(|v| v.skus.iter().map(move |k| (k.sku.as_str(), (&v.vendor, k))))
        .collect();
    for e in entries {
        let sku = e.sku.as_str();
        let on_order_in = |w: &str| -> i64 {
            s.purchase_orders
                .iter()
                .filter(|p| p.sku == sku && p.warehouse == w && eligible(s, w))
                .map(|p| p.open_qty().max(0))
                .sum()
        };
        let shortfall = if s.settings.warehouse_based {
            e.warehouses
                .iter()
                .map(|w| (w.backordered - on_order_in(&w.warehouse)).max(0))
                .sum()
        } else {
            (e.backordered - e.on_order).max(0)
        };
        // Units an open PO covers are never counted.
        prop_assert!(shortfall <= e.backordered);
        if !s.settings.warehouse_based {
            prop_assert!(shortfall + e.on_order.min(e.backordered) == e.backordered);
        }
        match listed.get(sku) {
            None => prop_assert_eq!(shortfall, 0, "{} missing from the report", sku),
            Some((vendor, k)) => {
                prop_assert_eq!(k.shortfall, shortfall);
                prop_assert_eq!(k.backordered, e.backordered);
                prop_assert_eq!(k.on_order, e.on_order);
                prop_assert_eq!(vendor.as_deref(), e.vendor.as_deref());
                let waiting: BTreeMap<&str, DateTime<Utc>> = f
                    .iter()
                    .filter(|l| l.sku == sku && l.scope == Scope::Active && l.backorder > 0)
                    .map(|l| (l.order.id.as_str(), l.order.order_date))
                    .collect();
                prop_assert_eq!(k.waiting_orders, waiting.len() as i64);
                prop_assert_eq!(k.oldest_waiting_order, waiting.values().min().copied());
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn the_feed_and_the_report_follow_the_engine_result(s in snapshot()) {
        engine::validate(&s).expect("generated snapshots are valid");
        let allocation = engine::allocate(&s, as_of());
        let f = facts(&s, &allocation);
        let source = FeedSource::from_allocation(&s, &allocation);
        let entries = feed::entries(&source);
        let skus: BTreeSet<&str> = entries.iter().map(|e| e.sku.as_str()).collect();
        prop_assert_eq!(skus.len(), entries.len(), "one entry per SKU");
        for l in &f {
            prop_assert!(skus.contains(l.sku), "{} has no entry", l.sku);
        }
        for e in &entries {
            check_entry(&s, &f, e)?;
            let alone = feed::entry(&source, &e.sku);
            prop_assert_eq!(alone.as_ref(), Some(e));
        }
        check_report(&s, &f, &entries)?;
    }

    /// What a store computes from the written-back values (each line's
    /// stored backorder qty the engine's answer) is the same feed.
    #[test]
    fn the_feed_of_written_back_values_is_the_feed_of_the_result(s in snapshot()) {
        let allocation = engine::allocate(&s, as_of());
        let mut written = s.clone();
        for (order, outcomes) in written.orders.iter_mut().zip(allocation.lines_by_order(&s.orders)) {
            for (line, out) in order.lines.iter_mut().zip(outcomes) {
                line.backorder_qty = out.backorder_qty;
            }
        }
        let stored = feed::entries(&FeedSource::from_stored(&written, as_of()));
        let computed = feed::entries(&FeedSource::from_allocation(&s, &allocation));
        prop_assert_eq!(stored, computed);
    }
}

#[test]
fn a_bad_filter_or_vendor_is_refused_naming_it() {
    let s = Snapshot {
        as_of: None,
        settings: Settings::default(),
        warehouses: vec![Warehouse {
            id: "MAIN".into(),
            kind: WarehouseKind::Normal,
        }],
        products: vec![],
        inventory: vec![],
        purchase_orders: vec![],
        orders: vec![],
    };
    let filter = |min, max, w: Option<&str>| feed::FeedFilter {
        backordered_min: min,
        backordered_max: max,
        warehouse: w.map(str::to_owned),
    };
    let refused = |f: feed::FeedFilter| f.check(&s.warehouses).unwrap_err().parameter;
    assert_eq!(refused(filter(Some(-1), None, None)), "backordered_min");
    assert_eq!(refused(filter(None, Some(-2), None)), "backordered_max");
    assert_eq!(refused(filter(Some(3), Some(2), None)), "backordered_min");
    assert_eq!(refused(filter(None, None, Some("EAST"))), "warehouse");
    assert!(
        filter(Some(0), Some(0), Some("MAIN"))
            .check(&s.warehouses)
            .is_ok()
    );
    let source = FeedSource::from_stored(&s, as_of());
    let err = purchasing::report(&source, Some("ACME")).unwrap_err();
    assert_eq!(err.parameter, "vendor");
    assert!(err.to_string().contains("ACME"), "{err}");
}
