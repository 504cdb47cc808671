//! Synthetic books of orders for trials and benchmarks: SKU popularity
//! follows a Zipf law, so a few hot SKUs carry long queues while most SKUs
//! see a handful of lines. Deterministic for a given seed.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

use crate::engine::snapshot::{
    InventoryRow, Line, Order, PaymentStatus, Product, PurchaseOrder, Settings, Snapshot,
    Warehouse, WarehouseKind,
};

#[derive(Debug, Clone, Copy)]
pub struct BookShape {
    pub lines: usize,
    pub skus: usize,
    pub seed: u64,
    /// Zipf exponent of SKU popularity.
    pub skew: f64,
}

impl Default for BookShape {
    fn default() -> Self {
        BookShape {
            lines: 10_000,
            skus: 1_000,
            seed: 1,
            skew: 1.0,
        }
    }
}

pub const AS_OF: &str = "2026-11-22T12:00:00Z";

pub fn sku_name(i: usize) -> String {
    format!("SKU-{i:06}")
}

pub fn generate(shape: BookShape) -> Snapshot {
    let mut rng = SmallRng::seed_from_u64(shape.seed);
    let skus = shape.skus.max(1);
    let zipf = Zipf::new(skus as f64, shape.skew).expect("valid Zipf parameters");
    let as_of: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
    let warehouses = ["MAIN", "EAST", "WEST"];

    let mut demand = vec![0i64; skus];
    let mut orders = Vec::with_capacity(shape.lines / 2 + 1);
    let mut made = 0;
    while made < shape.lines {
        let n = rng.random_range(1..=4).min(shape.lines - made);
        let id = format!("SO-{:07}", orders.len() + 1);
        let lines = (0..n)
            .map(|k| {
                let sku = zipf.sample(&mut rng) as usize - 1;
                let qty = rng.random_range(1..=5);
                demand[sku] += qty;
                Line {
                    id: format!("{id}-{}", k + 1),
                    sku: sku_name(sku),
                    qty,
                    backorder_qty: 0,
                }
            })
            .collect();
        made += n;
        let order_date = as_of - Duration::seconds(rng.random_range(60..60 * 86_400));
        let paid = rng.random_bool(0.9);
        orders.push(Order {
            id,
            order_date,
            payment_date: paid.then(|| order_date + Duration::minutes(rng.random_range(1..600))),
            payment_status: if paid {
                PaymentStatus::Paid
            } else {
                PaymentStatus::Unpaid
            },
            status: Default::default(),
            rush: rng.random_bool(0.05),
            picked: rng.random_bool(0.02),
            ship_from: Some(warehouses[rng.random_range(0..warehouses.len())].to_owned()),
            customer: None,
            lines,
        });
    }

    let mut inventory = Vec::with_capacity(skus);
    let mut purchase_orders = Vec::new();
    let mut products = Vec::new();
    for (sku, &wanted) in demand.iter().enumerate() {
        // Stock covers 0-120% of demand: many SKUs short, some fully covered.
        let on_hand = (wanted as f64 * rng.random_range(0.0..1.2)) as i64;
        inventory.push(InventoryRow {
            sku: sku_name(sku),
            warehouse: warehouses[sku % warehouses.len()].to_owned(),
            on_hand,
        });
        if rng.random_bool(0.3) {
            let qty = (wanted / 2).max(1);
            purchase_orders.push(PurchaseOrder {
                id: format!("PO-{sku:06}"),
                sku: sku_name(sku),
                warehouse: warehouses[sku % warehouses.len()].to_owned(),
                qty_ordered: qty,
                qty_received: 0,
                expected_date: Some(
                    NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
                        + Duration::days(rng.random_range(0..60)),
                ),
            });
        }
        if sku + 1 < skus && rng.random_bool(0.02) {
            products.push(Product::new(sku_name(sku), Some(sku_name(sku + 1))));
        }
    }

    Snapshot {
        as_of: Some(as_of),
        settings: Settings::default(),
        warehouses: warehouses
            .iter()
            .map(|id| Warehouse {
                id: (*id).to_owned(),
                kind: WarehouseKind::Normal,
            })
            .collect(),
        products,
        inventory,
        purchase_orders,
        orders,
    }
}
