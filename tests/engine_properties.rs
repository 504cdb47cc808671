//! Property tests of the allocation engine over random snapshots.
//!
//! Besides the properties the issue names, every random snapshot is also
//! checked against `reference`: a slow, literal transcription of the
//! contract (allocation.md), so that an optimisation of the engine can never
//! drift from the text.

use std::collections::{BTreeMap, HashMap};

use backorderd::engine::snapshot::*;
use backorderd::engine::{self, Allocation, BackorderStatus, Scope};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use proptest::prelude::*;

const SKUS: [&str; 5] = ["A", "B", "C", "D", "E"];
const WAREHOUSES: [(&str, WarehouseKind); 5] = [
    ("W1", WarehouseKind::Normal),
    ("W2", WarehouseKind::Normal),
    ("DS", WarehouseKind::Dropship),
    ("UN", WarehouseKind::Unsellable),
    ("FB", WarehouseKind::Fba),
];

fn as_of() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
}

// ---------------------------------------------------------------- strategies

fn settings() -> impl Strategy<Value = Settings> {
    (any::<[bool; 11]>(), prop::option::of(0u32..40)).prop_map(|(b, max_days_back)| Settings {
        use_payment_date: b[0],
        warehouse_based: b[1],
        exclude_dropship: b[2],
        exclude_unsellable: b[3],
        consider_replacement_sku: b[4],
        include_authorized: b[5],
        include_on_hold: b[6],
        include_unpaid: b[7],
        prioritize_fully_shippable: b[8],
        prioritize_rush: b[9],
        prioritize_picked: b[10],
        max_days_back,
    })
}

fn sku() -> impl Strategy<Value = String> {
    prop::sample::select(&SKUS[..]).prop_map(str::to_owned)
}

fn warehouse() -> impl Strategy<Value = String> {
    prop::sample::select(WAREHOUSES.map(|w| w.0).to_vec()).prop_map(str::to_owned)
}

/// Few distinct instants, so that ties on the priority date happen.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..6).prop_map(|d| as_of() - Duration::days(d * 9))
}

fn order(index: usize) -> impl Strategy<Value = Order> {
    let lines = prop::collection::vec((sku(), 0i64..8, 0i64..10), 0..4);
    (
        instant(),
        prop::option::of(instant()),
        prop::sample::select(PaymentStatus::ALL.to_vec()),
        prop::sample::select(OrderStatus::ALL.to_vec()),
        any::<(bool, bool)>(),
        prop::option::of(warehouse()),
        lines,
    )
        .prop_map(
            move |(
                order_date,
                payment_date,
                payment_status,
                status,
                (rush, picked),
                ship_from,
                lines,
            )| {
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
                    payment_date,
                    payment_status,
                    status,
                    rush,
                    picked,
                    ship_from,
                    customer: None,
                }
            },
        )
}

fn snapshot() -> impl Strategy<Value = Snapshot> {
    let inventory = prop::collection::vec((sku(), warehouse(), -12i64..16), 0..10);
    let purchase_orders = prop::collection::vec(
        (
            sku(),
            warehouse(),
            0i64..10,
            0i64..6,
            prop::option::of(0u64..40),
        ),
        0..5,
    );
    let products = prop::collection::vec(prop::option::of(sku()), SKUS.len());
    let orders = (0usize..12).prop_flat_map(|n| (0..n).map(order).collect::<Vec<_>>());
    (settings(), inventory, purchase_orders, products, orders).prop_map(
        |(settings, inventory, pos, replacements, orders)| Snapshot {
            as_of: Some(as_of()),
            settings,
            warehouses: WAREHOUSES
                .iter()
                .map(|(id, kind)| Warehouse {
                    id: (*id).into(),
                    kind: *kind,
                })
                .collect(),
            products: SKUS
                .iter()
                .zip(replacements)
                .filter(|(sku, r)| r.as_deref() != Some(**sku))
                .map(|(sku, replacement_sku)| Product::new((*sku).into(), replacement_sku))
                .collect(),
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
                    |(i, (sku, warehouse, qty_ordered, qty_received, days))| PurchaseOrder {
                        id: format!("PO{}", 9 - i),
                        sku,
                        warehouse,
                        qty_ordered,
                        qty_received,
                        expected_date: days.map(|d| {
                            NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
                                + Duration::days(d as i64 % 4 * 10)
                        }),
                    },
                )
                .collect(),
            orders,
        },
    )
}

// ------------------------------------------------------ the contract, naively

type PoolKey = (String, Option<String>);

#[derive(Debug, PartialEq)]
struct Expected {
    lines: BTreeMap<String, (i64, Option<NaiveDate>)>,
    orders: BTreeMap<String, (Scope, BackorderStatus, i64)>,
}

fn kind(s: &Snapshot, warehouse: &str) -> Option<WarehouseKind> {
    s.warehouses
        .iter()
        .find(|w| w.id == warehouse)
        .map(|w| w.kind)
}

fn eligible(s: &Snapshot, warehouse: &str) -> bool {
    match kind(s, warehouse) {
        Some(WarehouseKind::Dropship) => !s.settings.exclude_dropship,
        Some(WarehouseKind::Unsellable) => !s.settings.exclude_unsellable,
        Some(_) => true,
        None => false,
    }
}

fn scope(s: &Snapshot, o: &Order) -> Scope {
    let st = &s.settings;
    if matches!(o.status, OrderStatus::Shipped | OrderStatus::Cancelled) {
        return Scope::Closed;
    }
    let excluded = o.status == OrderStatus::Quote
        || (o.status == OrderStatus::OnHold && !st.include_on_hold)
        || (o.payment_status == PaymentStatus::Authorized && !st.include_authorized)
        || (matches!(
            o.payment_status,
            PaymentStatus::Unpaid | PaymentStatus::PartiallyPaid
        ) && !st.include_unpaid)
        || (st.warehouse_based
            && !matches!(
                o.ship_from.as_deref().and_then(|w| kind(s, w)),
                Some(WarehouseKind::Normal | WarehouseKind::Dropship | WarehouseKind::Unsellable)
            ));
    if excluded {
        return Scope::Excluded;
    }
    match st.max_days_back {
        Some(d) if o.order_date < s.as_of.unwrap() - Duration::days(d as i64) => Scope::Frozen,
        _ => Scope::Active,
    }
}

fn pool_of(s: &Snapshot, sku: &str, ship_from: Option<&str>) -> PoolKey {
    (
        sku.to_owned(),
        if s.settings.warehouse_based {
            ship_from.map(str::to_owned)
        } else {
            None
        },
    )
}

fn priority(s: &Snapshot, o: &Order) -> (bool, bool, bool, DateTime<Utc>, Vec<u8>) {
    let st = &s.settings;
    let (undated, date) = match (st.use_payment_date, o.payment_date) {
        (true, Some(p)) => (false, p),
        (true, None) => (true, o.order_date),
        _ => (false, o.order_date),
    };
    (
        st.prioritize_picked && !o.picked,
        st.prioritize_rush && !o.rush,
        undated,
        date,
        o.id.as_bytes().to_vec(),
    )
}

fn lines_in_pool<'s>(s: &Snapshot, o: &'s Order, key: &PoolKey) -> Vec<&'s Line> {
    o.lines
        .iter()
        .filter(|l| pool_of(s, &l.sku, o.ship_from.as_deref()) == *key)
        .collect()
}

fn reference<'s>(s: &'s Snapshot) -> Expected {
    let st = &s.settings;
    let scopes: HashMap<&str, Scope> = s
        .orders
        .iter()
        .map(|o| (o.id.as_str(), scope(s, o)))
        .collect();
    let mut active: Vec<&'s Order> = s
        .orders
        .iter()
        .filter(|o| scopes[o.id.as_str()] == Scope::Active)
        .collect();
    active.sort_by_key(|o| priority(s, o));
    let active_lines = || {
        active
            .iter()
            .flat_map(|o| o.lines.iter().map(move |l| (*o, l)))
    };

    // Section 3.
    let mut rem: HashMap<PoolKey, i64> = HashMap::new();
    let size_of = |key: &PoolKey| -> i64 {
        let stock: i64 = s
            .inventory
            .iter()
            .filter(|r| r.sku == key.0 && eligible(s, &r.warehouse))
            .filter(|r| key.1.as_ref().is_none_or(|w| *w == r.warehouse))
            .map(|r| r.on_hand)
            .sum();
        let held: i64 = s
            .orders
            .iter()
            .filter(|o| scopes[o.id.as_str()] == Scope::Frozen)
            .flat_map(|o| o.lines.iter().map(move |l| (o, l)))
            .filter(|(o, l)| pool_of(s, &l.sku, o.ship_from.as_deref()) == *key)
            .map(|(_, l)| l.qty - l.backorder_qty.clamp(0, l.qty))
            .sum();
        let eligible_pool = key.1.as_ref().is_none_or(|w| eligible(s, w));
        if eligible_pool {
            (stock.max(0) - held).max(0)
        } else {
            0
        }
    };
    let mut keys: Vec<PoolKey> = active_lines()
        .map(|(o, l)| pool_of(s, &l.sku, o.ship_from.as_deref()))
        .collect();
    keys.extend(
        SKUS.iter()
            .flat_map(|k| WAREHOUSES.iter().map(move |w| pool_of(s, k, Some(w.0)))),
    );
    for key in keys {
        let size = size_of(&key);
        rem.entry(key).or_insert(size);
    }

    // Section 5.
    let mut granted: HashMap<&str, i64> = HashMap::new();
    let tier = |o: &Order| {
        (
            st.prioritize_picked && !o.picked,
            st.prioritize_rush && !o.rush,
        )
    };
    for (key, left) in rem.iter_mut() {
        let in_pool = |o: &'s Order| lines_in_pool(s, o, key);
        if !st.prioritize_fully_shippable {
            for o in &active {
                for l in in_pool(o) {
                    let take = l.qty.min(*left);
                    granted.insert(&l.id, take);
                    *left -= take;
                }
            }
            continue;
        }
        for t in [(false, false), (false, true), (true, false), (true, true)] {
            let tier_orders: Vec<&&Order> = active.iter().filter(|o| tier(o) == t).collect();
            let mut served = Vec::new();
            for o in &tier_orders {
                let demand: i64 = in_pool(o).iter().map(|l| l.qty).sum();
                if demand <= *left {
                    in_pool(o).iter().for_each(|l| {
                        granted.insert(&l.id, l.qty);
                    });
                    *left -= demand;
                    served.push(o.id.clone());
                }
            }
            for o in tier_orders.iter().filter(|o| !served.contains(&o.id)) {
                for l in in_pool(o) {
                    let take = l.qty.min(*left);
                    granted.insert(&l.id, take);
                    *left -= take;
                }
            }
        }
    }

    // Section 6.
    if st.consider_replacement_sku {
        for (o, l) in active_lines() {
            let replacement = s
                .products
                .iter()
                .find(|p| p.sku == l.sku)
                .and_then(|p| p.replacement_sku.clone());
            let Some(r) = replacement.filter(|r| *r != l.sku) else {
                continue;
            };
            let left = rem
                .get_mut(&pool_of(s, &r, o.ship_from.as_deref()))
                .unwrap();
            let g = granted.get_mut(l.id.as_str()).unwrap();
            let take = (l.qty - *g).min(*left);
            *g += take;
            *left -= take;
        }
    }

    // Section 7.
    let mut etas: HashMap<&str, NaiveDate> = HashMap::new();
    let mut supply: HashMap<PoolKey, Vec<(NaiveDate, String, i64)>> = HashMap::new();
    for po in &s.purchase_orders {
        if let (Some(date), true, true) = (
            po.expected_date,
            po.qty_ordered - po.qty_received > 0,
            eligible(s, &po.warehouse),
        ) {
            let key = pool_of(s, &po.sku, Some(&po.warehouse));
            supply.entry(key).or_default().push((
                date,
                po.id.clone(),
                po.qty_ordered - po.qty_received,
            ));
        }
    }
    supply
        .values_mut()
        .for_each(|v| v.sort_by(|a, b| (a.0, a.1.as_bytes()).cmp(&(b.0, b.1.as_bytes()))));
    for (o, l) in active_lines() {
        let Some(rows) = supply.get_mut(&pool_of(s, &l.sku, o.ship_from.as_deref())) else {
            continue;
        };
        let mut missing = l.qty - granted[l.id.as_str()];
        for row in rows.iter_mut() {
            if missing == 0 {
                break;
            }
            let take = missing.min(row.2);
            row.2 -= take;
            missing -= take;
            if missing == 0 && take > 0 {
                etas.insert(&l.id, row.0);
            }
        }
    }

    // Section 8 and the result.
    let mut expected = Expected {
        lines: BTreeMap::new(),
        orders: BTreeMap::new(),
    };
    for o in &s.orders {
        let sc = scopes[o.id.as_str()];
        let mut pairs = Vec::new();
        for l in &o.lines {
            let bo = match sc {
                Scope::Closed => 0,
                Scope::Excluded | Scope::Frozen => l.backorder_qty,
                Scope::Active => l.qty - granted[l.id.as_str()],
            };
            let eta = if sc == Scope::Active && bo > 0 {
                etas.get(l.id.as_str()).copied()
            } else {
                None
            };
            expected.lines.insert(l.id.clone(), (bo, eta));
            pairs.push((l.qty, bo));
        }
        let nonzero: Vec<_> = pairs
            .iter()
            .filter(|(q, _)| *q > 0)
            .map(|(q, b)| (*q, (*b).clamp(0, *q)))
            .collect();
        let status = if nonzero.iter().all(|(_, b)| *b == 0) {
            BackorderStatus::None
        } else if nonzero.iter().all(|(q, b)| b == q) {
            BackorderStatus::Full
        } else {
            BackorderStatus::Partial
        };
        expected
            .orders
            .insert(o.id.clone(), (sc, status, pairs.iter().map(|p| p.1).sum()));
    }
    expected
}

// ------------------------------------------------------------------ helpers

fn run(s: &Snapshot) -> Allocation {
    engine::recalculate(s, as_of()).expect("generated snapshots are valid")
}

fn keyed(s: &Snapshot, a: &Allocation) -> Expected {
    let mut out = Expected {
        lines: BTreeMap::new(),
        orders: BTreeMap::new(),
    };
    for ((o, outcomes), oo) in s
        .orders
        .iter()
        .zip(a.lines_by_order(&s.orders))
        .zip(&a.orders)
    {
        for (l, lo) in o.lines.iter().zip(outcomes) {
            out.lines.insert(l.id.clone(), (lo.backorder_qty, lo.eta));
        }
        out.orders
            .insert(o.id.clone(), (oo.scope, oo.status, oo.backorder_qty));
    }
    out
}

/// Each active line with its order, in priority order, and its pool.
fn active_in_priority(s: &Snapshot) -> Vec<(PoolKey, &Line)> {
    let mut active: Vec<&Order> = s
        .orders
        .iter()
        .filter(|o| scope(s, o) == Scope::Active)
        .collect();
    active.sort_by_key(|o| priority(s, o));
    active
        .iter()
        .flat_map(|o| {
            o.lines
                .iter()
                .map(move |l| (pool_of(s, &l.sku, o.ship_from.as_deref()), l))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_a_literal_reading_of_the_contract(s in snapshot()) {
        prop_assert_eq!(keyed(&s, &run(&s)), reference(&s));
    }

    #[test]
    fn no_pool_gives_out_more_than_it_has(mut s in snapshot()) {
        s.settings.consider_replacement_sku = false;
        let result = keyed(&s, &run(&s));
        let mut given: HashMap<PoolKey, i64> = HashMap::new();
        for (pool, line) in active_in_priority(&s) {
            *given.entry(pool).or_default() += line.qty - result.lines[&line.id].0;
        }
        for (pool, given) in given {
            let stock: i64 = s.inventory.iter()
                .filter(|r| r.sku == pool.0 && eligible(&s, &r.warehouse) && pool.1.as_ref().is_none_or(|w| *w == r.warehouse))
                .map(|r| r.on_hand).sum();
            prop_assert!(given >= 0 && given <= stock.max(0), "pool {:?} gave {} of {}", pool, given, stock);
        }
    }

    #[test]
    fn in_plain_mode_a_line_gets_stock_only_after_every_line_ahead_is_served(mut s in snapshot()) {
        s.settings.consider_replacement_sku = false;
        s.settings.prioritize_fully_shippable = false;
        let result = keyed(&s, &run(&s));
        let mut someone_short: HashMap<PoolKey, String> = HashMap::new();
        for (pool, line) in active_in_priority(&s) {
            let backorder = result.lines[&line.id].0;
            if let Some(ahead) = someone_short.get(&pool) {
                prop_assert_eq!(backorder, line.qty, "{} got stock although {} ahead of it is short", line.id, ahead);
            }
            if backorder > 0 {
                someone_short.entry(pool).or_insert_with(|| line.id.clone());
            }
        }
    }

    #[test]
    fn the_listing_order_of_orders_does_not_matter(s in snapshot(), seed in any::<u64>()) {
        let mut shuffled = s.clone();
        let n = shuffled.orders.len();
        for i in (1..n).rev() {
            shuffled.orders.swap(i, (seed.wrapping_mul(i as u64 + 7) % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(keyed(&s, &run(&s)), keyed(&shuffled, &run(&shuffled)));
    }

    #[test]
    fn feeding_the_result_back_gives_the_same_result(s in snapshot()) {
        let first = run(&s);
        let mut fed = s.clone();
        for (order, outcomes) in fed.orders.iter_mut().zip(first.lines_by_order(&s.orders)) {
            for (line, out) in order.lines.iter_mut().zip(outcomes) {
                line.backorder_qty = out.backorder_qty;
            }
        }
        prop_assert_eq!(run(&fed), first);
    }

    #[test]
    fn closed_lines_are_zero_and_excluded_or_frozen_lines_keep_their_value(s in snapshot()) {
        let result = run(&s);
        for ((order, outcomes), out) in s.orders.iter().zip(result.lines_by_order(&s.orders)).zip(&result.orders) {
            for (line, lo) in order.lines.iter().zip(outcomes) {
                match out.scope {
                    Scope::Closed => prop_assert_eq!(lo.backorder_qty, 0),
                    Scope::Excluded | Scope::Frozen => prop_assert_eq!(lo.backorder_qty, line.backorder_qty),
                    Scope::Active => prop_assert!((0..=line.qty).contains(&lo.backorder_qty)),
                }
            }
        }
    }
}
