//! Why an order line is backordered, and what a SKU's stock is promised to:
//! pure functions over the stored state of some pools ([`PoolState`]), the
//! answers of `GET /v1/orders/{id}` and `GET /v1/products/{sku}`.
//!
//! A line's reason names its pool (section 3), what the pool holds
//! (eligible stock less what frozen lines hold), and how the engine, run
//! now on the stored state, shares it: units promised to lines ahead of
//! this one in priority order (section 4), units given to this line, and
//! units given to lines behind it (only fully-shippable first lets a later
//! order go before, section 5). Replacement cover (section 6) is reported
//! apart: the engine run without replacement gives each pool's own
//! allocation exactly, since section 6 only draws on what is left after
//! every pool is allocated.

use chrono::{DateTime, NaiveDate, Utc};
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::engine::snapshot::{Order, OrderStatus, PaymentStatus, Settings, Snapshot};
use crate::engine::{self, BackorderStatus, Scope};
use crate::store::{OrderView, PoolState};

/// A pool: a SKU, or with `warehouse_based` a SKU and a ship-from warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
pub struct PoolKey {
    pub sku: String,
    /// The ship-from warehouse; `None` when pools are per SKU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warehouse: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Reason {
    /// The order's class (section 2) as of now: only `active` lines are allocated.
    pub scope: Scope,
    pub pool: PoolKey,
    /// Stock of the pool in eligible warehouses (section 3), at least 0.
    pub eligible_on_hand: i64,
    /// Units held by frozen lines of the pool.
    pub held_by_frozen: i64,
    /// What the allocation shares out: eligible stock less frozen holds, at least 0.
    pub available: i64,
    /// Units of the pool promised to active lines ahead of this one in
    /// priority order (`None` for a line that is not active).
    pub promised_ahead: Option<i64>,
    /// Units of the pool the engine gives this line now.
    pub allocated: Option<i64>,
    /// Units of the pool given to lines behind this one (fully-shippable first).
    pub promised_behind: Option<i64>,
    /// Units covered by the replacement SKU's leftover stock (section 6).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replacement: Option<ReplacementCover>,
    /// The SKU waits for a recalculation: the stored values may be stale.
    pub recalculation_pending: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReplacementCover {
    pub sku: String,
    pub units: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LineExplanation {
    pub line_id: String,
    pub sku: String,
    pub qty: i64,
    /// As stored (written back by the last recalculation, or overridden).
    pub backorder_qty: i64,
    #[serde(with = "crate::engine::time_format::date_opt")]
    #[schema(value_type = Option<String>, format = Date)]
    pub eta: Option<NaiveDate>,
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OrderExplanation {
    pub order_id: String,
    #[serde(with = "crate::engine::time_format::timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub order_date: DateTime<Utc>,
    #[serde(with = "crate::engine::time_format::timestamp_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub payment_date: Option<DateTime<Utc>>,
    pub status: OrderStatus,
    pub payment_status: PaymentStatus,
    pub rush: bool,
    pub picked: bool,
    pub ship_from: Option<String>,
    /// The stored backorder status and quantity (section 8).
    pub backorder_status: BackorderStatus,
    pub backorder_qty: i64,
    pub scope: Scope,
    pub lines: Vec<LineExplanation>,
}

/// Where each line of a snapshot stands: (order index, line index).
pub(crate) struct Places<'a> {
    pub(crate) snapshot: &'a Snapshot,
    pub(crate) scopes: Vec<Scope>,
    /// Index of each order's first line in the flattened outcomes.
    pub(crate) first_line: Vec<usize>,
}

impl<'a> Places<'a> {
    pub(crate) fn new(snapshot: &'a Snapshot, as_of: DateTime<Utc>) -> Self {
        let mut first_line = Vec::with_capacity(snapshot.orders.len());
        let mut next = 0;
        for o in &snapshot.orders {
            first_line.push(next);
            next += o.lines.len();
        }
        let scopes = snapshot
            .orders
            .iter()
            .map(|o| engine::scope_of(o, &snapshot.settings, &snapshot.warehouses, as_of))
            .collect();
        Places {
            snapshot,
            scopes,
            first_line,
        }
    }

    fn pool_of(&self, order: &Order, sku: &str) -> PoolKey {
        pool_of(&self.snapshot.settings, order, sku)
    }
}

pub(crate) fn pool_of(settings: &Settings, order: &Order, sku: &str) -> PoolKey {
    PoolKey {
        sku: sku.to_owned(),
        warehouse: settings
            .warehouse_based
            .then(|| order.ship_from.clone())
            .flatten(),
    }
}

fn eligible(snapshot: &Snapshot, warehouse: &str) -> bool {
    snapshot
        .warehouses
        .iter()
        .find(|w| w.id == warehouse)
        .is_some_and(|w| engine::is_eligible(w.kind, &snapshot.settings))
}

/// What a frozen line holds of its pool (section 2).
fn frozen_hold(qty: i64, backorder_qty: i64) -> i64 {
    qty - backorder_qty.clamp(0, qty.max(0))
}

/// Section 3 for one pool: (eligible stock, held by frozen lines, size).
fn pool_size(places: &Places, pool: &PoolKey) -> (i64, i64, i64) {
    let s = places.snapshot;
    let wb = s.settings.warehouse_based;
    if wb && pool.warehouse.is_none() {
        return (0, 0, 0);
    }
    let stock: i64 = s
        .inventory
        .iter()
        .filter(|r| r.sku == pool.sku && eligible(s, &r.warehouse))
        .filter(|r| !wb || Some(&r.warehouse) == pool.warehouse.as_ref())
        .fold(0i64, |sum, r| sum.saturating_add(r.on_hand));
    let stock = stock.max(0);
    let mut held = 0;
    for (o, order) in s.orders.iter().enumerate() {
        if places.scopes[o] != Scope::Frozen {
            continue;
        }
        for line in &order.lines {
            if line.sku == pool.sku && places.pool_of(order, &line.sku) == *pool {
                held = i64::saturating_add(held, frozen_hold(line.qty, line.backorder_qty));
            }
        }
    }
    (stock, held, stock.saturating_sub(held).max(0))
}

/// The active lines of each pool of `wanted`, in the engine's priority
/// order (section 4), as (order, line) indices of the snapshot: the one
/// ordering both an order's "why" and a product's queue are read from.
pub(crate) fn priority_queues(
    places: &Places,
    wanted: impl IntoIterator<Item = PoolKey>,
) -> FxHashMap<PoolKey, Vec<(usize, usize)>> {
    let snapshot = places.snapshot;
    let mut queues: FxHashMap<PoolKey, Vec<(usize, usize)>> =
        wanted.into_iter().map(|k| (k, Vec::new())).collect();
    let mut active: Vec<usize> = (0..snapshot.orders.len())
        .filter(|&o| places.scopes[o] == Scope::Active)
        .collect();
    active.sort_by(|&a, &b| {
        engine::priority_order(&snapshot.orders[a], &snapshot.orders[b], &snapshot.settings)
    });
    for &o in &active {
        let order = &snapshot.orders[o];
        for (l, line) in order.lines.iter().enumerate() {
            if let Some(queue) = queues.get_mut(&places.pool_of(order, &line.sku)) {
                queue.push((o, l));
            }
        }
    }
    queues
}

/// Explains every line of `view` from `pools`, the stored state of the
/// pools of its SKUs (with their replacement closure), as of `as_of`.
pub fn explain_order(
    view: &OrderView,
    pools: &PoolState,
    as_of: DateTime<Utc>,
) -> OrderExplanation {
    let snapshot: &Snapshot = &pools.snapshot;
    let places = Places::new(snapshot, as_of);
    // Each pool's own allocation: the engine without replacement (a copy
    // of a hot pool's state only when replacement is on).
    let own = match snapshot.settings.consider_replacement_sku {
        false => engine::allocate(snapshot, as_of),
        true => engine::allocate(
            &Snapshot {
                settings: Settings {
                    consider_replacement_sku: false,
                    ..snapshot.settings
                },
                ..snapshot.clone()
            },
            as_of,
        ),
    };
    let with_replacement = snapshot
        .settings
        .consider_replacement_sku
        .then(|| engine::allocate(snapshot, as_of));
    let own_alloc = |o: usize, l: usize| {
        let line = &snapshot.orders[o].lines[l];
        line.qty - own.lines[places.first_line[o] + l].backorder_qty
    };

    let order_at: FxHashMap<&str, usize> = snapshot
        .orders
        .iter()
        .enumerate()
        .map(|(i, o)| (o.id.as_str(), i))
        .collect();
    let queues = priority_queues(
        &places,
        view.order
            .lines
            .iter()
            .map(|line| pool_of(&snapshot.settings, &view.order, &line.sku)),
    );

    let scope = engine::scope_of(&view.order, &snapshot.settings, &snapshot.warehouses, as_of);
    let replacement_of = |sku: &str| {
        snapshot
            .products
            .iter()
            .find(|p| p.sku == sku)
            .and_then(|p| p.replacement_sku.clone())
            .filter(|r| r != sku)
    };
    // The order as the pool state holds it (read in its own transaction: a
    // line changed in between simply gets no allocation figures).
    let here = order_at.get(view.order.id.as_str()).copied();
    let place_of = |line_id: &str| {
        let o = here?;
        let l = snapshot.orders[o]
            .lines
            .iter()
            .position(|x| x.id == line_id)?;
        Some((o, l))
    };
    let lines = view
        .order
        .lines
        .iter()
        .zip(&view.etas)
        .map(|(line, eta)| {
            let pool = pool_of(&snapshot.settings, &view.order, &line.sku);
            let (eligible_on_hand, held_by_frozen, available) = pool_size(&places, &pool);
            let mut reason = Reason {
                scope,
                pool,
                eligible_on_hand,
                held_by_frozen,
                available,
                promised_ahead: None,
                allocated: None,
                promised_behind: None,
                replacement: None,
                recalculation_pending: pools.dirty_skus.contains(&line.sku),
            };
            if let (Scope::Active, Some((o, l))) = (scope, place_of(&line.id)) {
                let queue = &queues[&reason.pool];
                let at = queue.iter().position(|&p| p == (o, l));
                let (mut ahead, mut behind) = (0, 0);
                for (k, &(qo, ql)) in queue.iter().enumerate() {
                    match at {
                        Some(at) if k < at => ahead = i64::saturating_add(ahead, own_alloc(qo, ql)),
                        Some(at) if k > at => {
                            behind = i64::saturating_add(behind, own_alloc(qo, ql))
                        }
                        _ => {}
                    }
                }
                let allocated = own_alloc(o, l);
                reason.promised_ahead = Some(ahead);
                reason.allocated = Some(allocated);
                reason.promised_behind = Some(behind);
                if let (Some(all), Some(sku)) = (&with_replacement, replacement_of(&line.sku)) {
                    let total = line.qty - all.lines[places.first_line[o] + l].backorder_qty;
                    if total > allocated {
                        reason.replacement = Some(ReplacementCover {
                            sku,
                            units: total - allocated,
                        });
                    }
                }
            }
            LineExplanation {
                line_id: line.id.clone(),
                sku: line.sku.clone(),
                qty: line.qty,
                backorder_qty: line.backorder_qty,
                eta: *eta,
                reason,
            }
        })
        .collect();
    let o = &view.order;
    OrderExplanation {
        order_id: o.id.clone(),
        order_date: o.order_date,
        payment_date: o.payment_date,
        status: o.status,
        payment_status: o.payment_status,
        rush: o.rush,
        picked: o.picked,
        ship_from: o.ship_from.clone(),
        backorder_status: view.backorder_status,
        backorder_qty: view.backorder_qty,
        scope,
        lines,
    }
}

/// [`explain_order`] from the stored state of each group of the order's
/// SKUs read on its own (each SKU with its replacement closure: `first`
/// and `others`, see [`crate::store::order_groups`]). A pool's answer
/// depends only on its group, so each line explained from the group
/// holding its SKU is what one state of them all gives. Read apart, a hot
/// SKU's group is the one its product page and the worker keep
/// (store/pool_reads.rs), whatever else the order holds.
pub fn explain_order_by_group(
    view: &OrderView,
    first: &PoolState,
    others: &[PoolState],
    as_of: DateTime<Utc>,
) -> OrderExplanation {
    let mut explained = explain_order(view, first, as_of);
    for group in others {
        let lines = explain_order(view, group, as_of).lines;
        for (line, theirs) in explained.lines.iter_mut().zip(lines) {
            if group.skus.contains(&line.sku) && !first.skus.contains(&line.sku) {
                *line = theirs;
            }
        }
    }
    explained
}

/// A SKU's stock and what it is promised to, per warehouse.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StockFigures {
    pub on_hand: i64,
    /// Stock in eligible warehouses (section 3); at least 0 in the total.
    pub available: i64,
    /// Units held by frozen lines.
    pub held_by_frozen: i64,
    /// Units given to active lines (`qty - backorder_qty`, stored values).
    pub allocated: i64,
    /// Units active lines wait for (stored `backorder_qty`).
    pub backordered: i64,
    /// Active lines with a backorder.
    pub backordered_lines: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WarehouseStock {
    /// `None`: lines of orders without a ship-from warehouse.
    pub warehouse: Option<String>,
    #[schema(value_type = Option<String>)]
    pub kind: Option<&'static str>,
    pub eligible: bool,
    #[serde(flatten)]
    pub figures: StockFigures,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OpenPurchaseOrder {
    pub id: String,
    pub warehouse: String,
    pub eligible: bool,
    pub qty_ordered: i64,
    pub qty_received: i64,
    pub open_qty: i64,
    #[serde(with = "crate::engine::time_format::date_opt")]
    #[schema(value_type = Option<String>, format = Date)]
    pub expected_date: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProductSummary {
    pub sku: String,
    pub replacement_sku: Option<String>,
    /// Pools are per SKU and warehouse (else one pool for the SKU, and the
    /// per-warehouse allocation follows each order's ship-from warehouse).
    pub warehouse_based: bool,
    pub recalculation_pending: bool,
    pub warehouses: Vec<WarehouseStock>,
    pub total: StockFigures,
    /// Open purchase orders, by expected date (undated last), then id.
    pub open_purchase_orders: Vec<OpenPurchaseOrder>,
}

/// The figures of `sku` from `pools` (its stored state, no replacement
/// closure needed); `None` when nothing at all is stored about it.
pub fn product_summary(
    sku: &str,
    pools: &PoolState,
    as_of: DateTime<Utc>,
) -> Option<ProductSummary> {
    let s: &Snapshot = &pools.snapshot;
    let product = s.products.iter().find(|p| p.sku == sku);
    let has_lines = s
        .orders
        .iter()
        .any(|o| o.lines.iter().any(|l| l.sku == sku));
    let has_stock = s.inventory.iter().any(|r| r.sku == sku);
    let has_pos = s.purchase_orders.iter().any(|p| p.sku == sku);
    if product.is_none() && !has_lines && !has_stock && !has_pos {
        return None;
    }
    let places = Places::new(s, as_of);
    let mut rows: Vec<WarehouseStock> = Vec::new();
    fn row(rows: &mut Vec<WarehouseStock>, s: &Snapshot, warehouse: Option<&str>) -> usize {
        if let Some(i) = rows
            .iter()
            .position(|r| r.warehouse.as_deref() == warehouse)
        {
            return i;
        }
        let kind = warehouse.and_then(|w| s.warehouses.iter().find(|x| x.id == w));
        rows.push(WarehouseStock {
            warehouse: warehouse.map(str::to_owned),
            kind: kind.map(|w| w.kind.as_str()),
            eligible: warehouse.is_some_and(|w| eligible(s, w)),
            figures: StockFigures::default(),
        });
        rows.len() - 1
    }
    for r in s.inventory.iter().filter(|r| r.sku == sku) {
        let i = row(&mut rows, s, Some(&r.warehouse));
        rows[i].figures.on_hand = rows[i].figures.on_hand.saturating_add(r.on_hand);
        if rows[i].eligible {
            rows[i].figures.available = rows[i].figures.available.saturating_add(r.on_hand);
        }
    }
    for (o, order) in s.orders.iter().enumerate() {
        let scope = places.scopes[o];
        for line in order.lines.iter().filter(|l| l.sku == sku) {
            if !matches!(scope, Scope::Active | Scope::Frozen) {
                continue;
            }
            let i = row(&mut rows, s, order.ship_from.as_deref());
            let figures = &mut rows[i].figures;
            if scope == Scope::Frozen {
                figures.held_by_frozen = figures
                    .held_by_frozen
                    .saturating_add(frozen_hold(line.qty, line.backorder_qty));
                continue;
            }
            let backordered = line.backorder_qty.clamp(0, line.qty.max(0));
            figures.allocated = figures
                .allocated
                .saturating_add(line.qty.max(0) - backordered);
            figures.backordered = figures
                .backordered
                .saturating_add(line.backorder_qty.max(0));
            figures.backordered_lines = figures
                .backordered_lines
                .saturating_add(i64::from(line.backorder_qty > 0 && line.qty > 0));
        }
    }
    rows.sort_by(|a, b| {
        a.warehouse
            .is_none()
            .cmp(&b.warehouse.is_none())
            .then(a.warehouse.cmp(&b.warehouse))
    });
    let mut total = StockFigures::default();
    for r in &rows {
        total.on_hand = total.on_hand.saturating_add(r.figures.on_hand);
        total.available = total.available.saturating_add(r.figures.available);
        total.held_by_frozen = total
            .held_by_frozen
            .saturating_add(r.figures.held_by_frozen);
        total.allocated = total.allocated.saturating_add(r.figures.allocated);
        total.backordered = total.backordered.saturating_add(r.figures.backordered);
        total.backordered_lines = total
            .backordered_lines
            .saturating_add(r.figures.backordered_lines);
    }
    total.available = total.available.max(0);
    let mut open_purchase_orders: Vec<OpenPurchaseOrder> = s
        .purchase_orders
        .iter()
        .filter(|p| p.sku == sku && p.open_qty() > 0)
        .map(|p| OpenPurchaseOrder {
            id: p.id.clone(),
            warehouse: p.warehouse.clone(),
            eligible: eligible(s, &p.warehouse),
            qty_ordered: p.qty_ordered,
            qty_received: p.qty_received,
            open_qty: p.open_qty(),
            expected_date: p.expected_date,
        })
        .collect();
    open_purchase_orders.sort_by(|a, b| {
        (a.expected_date.is_none(), a.expected_date, &a.id).cmp(&(
            b.expected_date.is_none(),
            b.expected_date,
            &b.id,
        ))
    });
    Some(ProductSummary {
        sku: sku.to_owned(),
        replacement_sku: product.and_then(|p| p.replacement_sku.clone()),
        warehouse_based: s.settings.warehouse_based,
        recalculation_pending: pools.dirty_skus.iter().any(|d| d == sku),
        warehouses: rows,
        total,
        open_purchase_orders,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::snapshot::{
        InventoryRow, Line, Product, PurchaseOrder, Warehouse, WarehouseKind,
    };

    fn order(id: &str, day: u32, ship_from: &str, lines: &[(&str, &str, i64, i64)]) -> Order {
        Order {
            id: id.into(),
            order_date: format!("2026-11-{day:02}T00:00:00Z").parse().unwrap(),
            payment_date: None,
            payment_status: PaymentStatus::Paid,
            status: OrderStatus::InProcess,
            rush: false,
            picked: false,
            ship_from: Some(ship_from.into()),
            customer: None,
            lines: lines
                .iter()
                .map(|&(id, sku, qty, backorder_qty)| Line {
                    id: id.into(),
                    sku: sku.into(),
                    qty,
                    backorder_qty,
                })
                .collect(),
        }
    }

    fn state(settings: Settings, stock: &[(&str, &str, i64)], orders: Vec<Order>) -> PoolState {
        PoolState {
            snapshot: std::sync::Arc::new(Snapshot {
                as_of: None,
                settings,
                warehouses: vec![
                    Warehouse {
                        id: "A".into(),
                        kind: WarehouseKind::Normal,
                    },
                    Warehouse {
                        id: "B".into(),
                        kind: WarehouseKind::Normal,
                    },
                    Warehouse {
                        id: "D".into(),
                        kind: WarehouseKind::Dropship,
                    },
                ],
                products: vec![Product::new("TEA".into(), Some("TEA2".into()))],
                inventory: stock
                    .iter()
                    .map(|&(sku, warehouse, on_hand)| InventoryRow {
                        sku: sku.into(),
                        warehouse: warehouse.into(),
                        on_hand,
                    })
                    .collect(),
                purchase_orders: vec![PurchaseOrder {
                    id: "PO-1".into(),
                    sku: "TEA".into(),
                    warehouse: "A".into(),
                    qty_ordered: 5,
                    qty_received: 5,
                    expected_date: None,
                }],
                orders,
            }),
            skus: vec!["TEA".into()],
            dirty_skus: vec![],
        }
    }

    fn view(pools: &PoolState, id: &str) -> OrderView {
        let order = pools.snapshot.orders.iter().find(|o| o.id == id).unwrap();
        OrderView {
            etas: vec![None; order.lines.len()],
            order: order.clone(),
            backorder_status: BackorderStatus::Full,
            backorder_qty: 0,
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-11-22T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn the_40_10_case_names_what_is_promised_ahead_and_behind() {
        let orders = vec![
            order("A", 1, "A", &[("A1", "TEA", 40, 0)]),
            order("B", 2, "A", &[("B1", "TEA", 10, 0)]),
        ];
        let plain = state(
            Settings::default(),
            &[("TEA", "A", 10), ("TEA", "D", 50)],
            orders,
        );
        let b = explain_order(&view(&plain, "B"), &plain, now());
        let r = &b.lines[0].reason;
        assert_eq!(
            r.pool,
            PoolKey {
                sku: "TEA".into(),
                warehouse: None
            }
        );
        assert_eq!(
            (r.eligible_on_hand, r.held_by_frozen, r.available),
            (10, 0, 10)
        );
        assert_eq!(
            (r.promised_ahead, r.allocated, r.promised_behind),
            (Some(10), Some(0), Some(0))
        );

        let mut fully = plain.clone();
        std::sync::Arc::make_mut(&mut fully.snapshot)
            .settings
            .prioritize_fully_shippable = true;
        let a = explain_order(&view(&fully, "A"), &fully, now());
        let r = &a.lines[0].reason;
        assert_eq!(
            (r.promised_ahead, r.allocated, r.promised_behind),
            (Some(0), Some(0), Some(10))
        );
    }

    #[test]
    fn frozen_lines_hold_stock_and_are_not_allocated() {
        let settings = Settings {
            max_days_back: Some(10),
            ..Settings::default()
        };
        let orders = vec![
            order("OLD", 1, "A", &[("O1", "TEA", 6, 2)]),
            order("NEW", 20, "A", &[("N1", "TEA", 10, 0)]),
        ];
        let pools = state(settings, &[("TEA", "A", 10)], orders);
        let new = explain_order(&view(&pools, "NEW"), &pools, now());
        let r = &new.lines[0].reason;
        assert_eq!((r.held_by_frozen, r.available), (4, 6));
        assert_eq!((r.promised_ahead, r.allocated), (Some(0), Some(6)));
        let old = explain_order(&view(&pools, "OLD"), &pools, now());
        assert_eq!(old.scope, Scope::Frozen);
        assert_eq!(old.lines[0].reason.allocated, None);
    }

    #[test]
    fn warehouse_pools_and_replacement_cover() {
        let settings = Settings {
            warehouse_based: true,
            consider_replacement_sku: true,
            ..Settings::default()
        };
        let orders = vec![
            order("X", 1, "A", &[("X1", "TEA", 5, 0)]),
            order("Y", 2, "B", &[("Y1", "TEA", 5, 0)]),
        ];
        let pools = state(
            settings,
            &[("TEA", "A", 2), ("TEA", "B", 9), ("TEA2", "A", 1)],
            orders,
        );
        let x = explain_order(&view(&pools, "X"), &pools, now());
        let r = &x.lines[0].reason;
        assert_eq!(
            r.pool,
            PoolKey {
                sku: "TEA".into(),
                warehouse: Some("A".into())
            }
        );
        assert_eq!(
            (r.available, r.promised_ahead, r.allocated),
            (2, Some(0), Some(2))
        );
        assert_eq!(
            r.replacement,
            Some(ReplacementCover {
                sku: "TEA2".into(),
                units: 1
            })
        );
        let y = explain_order(&view(&pools, "Y"), &pools, now());
        assert_eq!(y.lines[0].reason.available, 9);
        assert_eq!(y.lines[0].reason.promised_ahead, Some(0));
    }

    #[test]
    fn a_product_summary_splits_stock_and_promises_by_warehouse() {
        let settings = Settings {
            max_days_back: Some(10),
            ..Settings::default()
        };
        let orders = vec![
            order("OLD", 1, "B", &[("O1", "TEA", 6, 2)]),
            order("P", 20, "A", &[("P1", "TEA", 10, 4)]),
        ];
        let pools = state(settings, &[("TEA", "A", 10), ("TEA", "D", 7)], orders);
        let s = product_summary("TEA", &pools, now()).unwrap();
        assert_eq!(s.replacement_sku.as_deref(), Some("TEA2"));
        let a = &s.warehouses[0];
        assert_eq!(a.warehouse.as_deref(), Some("A"));
        assert_eq!((a.figures.on_hand, a.figures.available), (10, 10));
        assert_eq!((a.figures.allocated, a.figures.backordered), (6, 4));
        let b = &s.warehouses[1];
        assert_eq!(b.figures.held_by_frozen, 4);
        let d = &s.warehouses[2];
        assert_eq!(
            (d.eligible, d.figures.on_hand, d.figures.available),
            (false, 7, 0)
        );
        assert_eq!(
            (
                s.total.on_hand,
                s.total.available,
                s.total.backordered_lines
            ),
            (17, 10, 1)
        );
        assert!(s.open_purchase_orders.is_empty(), "PO-1 is fully received");
        assert!(product_summary("NOTHING", &pools, now()).is_none());
    }
}
