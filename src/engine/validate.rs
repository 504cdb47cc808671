//! Section 9 of the contract: a snapshot is refused whole, naming each
//! offending record and the rule it breaks. Type errors (unknown status,
//! bad date, unknown field) are caught earlier, while parsing.

use rustc_hash::{FxHashMap, FxHashSet};
use std::fmt;

use super::limits::{MAX_DAYS_BACK, MAX_QUANTITY, signed_quantity_in_bounds};
use super::snapshot::Snapshot;

/// Stop collecting after this many: a broken export can otherwise produce
/// a million identical complaints.
const MAX_VIOLATIONS: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which record, e.g. `line "SO-1-2" of order "SO-1"`.
    pub record: String,
    pub rule: Rule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    EmptyId {
        field: &'static str,
    },
    DuplicateId {
        earlier: String,
    },
    NegativeQuantity {
        field: &'static str,
        value: i64,
    },
    /// Beyond the bounds of `limits` (`min` is 0 or `-MAX_QUANTITY`).
    QuantityOutOfRange {
        field: &'static str,
        value: i64,
        min: i64,
    },
    SettingOutOfRange {
        setting: &'static str,
        value: u64,
        max: u64,
    },
    UnknownWarehouse {
        field: &'static str,
        warehouse: String,
    },
    SelfReplacement,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::EmptyId { field } => write!(f, "{field} must be a non-empty string"),
            Rule::DuplicateId { earlier } => write!(f, "id repeats ({earlier} has it already)"),
            Rule::NegativeQuantity { field, value } => {
                write!(f, "{field} must not be negative (got {value})")
            }
            Rule::QuantityOutOfRange { field, value, min } => write!(
                f,
                "{field} is out of range (got {value}; allowed {min} to {MAX_QUANTITY})"
            ),
            Rule::SettingOutOfRange {
                setting,
                value,
                max,
            } => write!(
                f,
                "{setting} is out of range (got {value}; allowed 0 to {max})"
            ),
            Rule::UnknownWarehouse { field, warehouse } => {
                write!(f, "{field} names unknown warehouse \"{warehouse}\"")
            }
            Rule::SelfReplacement => f.write_str("replacement_sku names the product itself"),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.record, self.rule)
    }
}

/// Why a snapshot (or an event carrying snapshot records) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Refusal {
    pub violations: Vec<Violation>,
    /// True when more violations exist than were collected.
    pub truncated: bool,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.violations.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{v}")?;
        }
        if self.truncated {
            write!(f, "\n(stopped after {MAX_VIOLATIONS} problems)")?;
        }
        Ok(())
    }
}

pub fn order_record(order_id: &str) -> String {
    format!("order \"{order_id}\"")
}

pub fn line_record(order_id: &str, line_id: &str) -> String {
    format!("line \"{line_id}\" of order \"{order_id}\"")
}

/// The rule a quantity that may not be negative breaks, if any: below 0
/// or above [`MAX_QUANTITY`].
pub fn quantity_rule(field: &'static str, value: i64) -> Option<Rule> {
    if value < 0 {
        Some(Rule::NegativeQuantity { field, value })
    } else if value > MAX_QUANTITY {
        Some(Rule::QuantityOutOfRange {
            field,
            value,
            min: 0,
        })
    } else {
        None
    }
}

/// The rule a quantity that may be negative (an on-hand, a delta) breaks,
/// if any: beyond ±[`MAX_QUANTITY`].
pub fn signed_quantity_rule(field: &'static str, value: i64) -> Option<Rule> {
    (!signed_quantity_in_bounds(value)).then_some(Rule::QuantityOutOfRange {
        field,
        value,
        min: -MAX_QUANTITY,
    })
}

fn signed_quantity_in_bounds_wide(value: i128) -> bool {
    (-i128::from(MAX_QUANTITY)..=i128::from(MAX_QUANTITY)).contains(&value)
}

/// The rule a `max_days_back` breaks, if any: above [`MAX_DAYS_BACK`].
pub fn max_days_back_rule(value: Option<u32>) -> Option<Rule> {
    let days = value?;
    (days > MAX_DAYS_BACK).then_some(Rule::SettingOutOfRange {
        setting: "max_days_back",
        value: u64::from(days),
        max: u64::from(MAX_DAYS_BACK),
    })
}

#[derive(Default)]
struct Collector {
    violations: Vec<Violation>,
    truncated: bool,
}

impl Collector {
    fn push(&mut self, record: impl FnOnce() -> String, rule: Rule) {
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(Violation {
                record: record(),
                rule,
            });
        } else {
            self.truncated = true;
        }
    }

    fn id(&mut self, id: &str, field: &'static str, record: impl FnOnce() -> String) {
        if id.is_empty() {
            self.push(record, Rule::EmptyId { field });
        }
    }

    fn quantity(&mut self, value: i64, field: &'static str, record: impl FnOnce() -> String) {
        if let Some(rule) = quantity_rule(field, value) {
            self.push(record, rule);
        }
    }

    fn signed_quantity(
        &mut self,
        value: i64,
        field: &'static str,
        record: impl FnOnce() -> String,
    ) {
        if let Some(rule) = signed_quantity_rule(field, value) {
            self.push(record, rule);
        }
    }

    fn warehouse(
        &mut self,
        known: &FxHashSet<&str>,
        warehouse: &str,
        field: &'static str,
        record: impl FnOnce() -> String,
    ) {
        if !known.contains(warehouse) {
            self.push(
                record,
                Rule::UnknownWarehouse {
                    field,
                    warehouse: warehouse.to_owned(),
                },
            );
        }
    }
}

/// Checks every rule of section 9; `Ok` means the engine may run on it.
pub fn validate(snapshot: &Snapshot) -> Result<(), Refusal> {
    let mut c = Collector::default();

    if let Some(rule) = max_days_back_rule(snapshot.settings.max_days_back) {
        c.push(|| "settings".to_owned(), rule);
    }

    let mut warehouses = FxHashSet::default();
    for w in &snapshot.warehouses {
        let record = || format!("warehouse \"{}\"", w.id);
        c.id(&w.id, "id", record);
        if !warehouses.insert(w.id.as_str()) {
            c.push(
                record,
                Rule::DuplicateId {
                    earlier: "another warehouse".into(),
                },
            );
        }
    }

    let mut products = FxHashSet::default();
    for p in &snapshot.products {
        let record = || format!("product \"{}\"", p.sku);
        c.id(&p.sku, "sku", record);
        if !products.insert(p.sku.as_str()) {
            c.push(
                record,
                Rule::DuplicateId {
                    earlier: "another product".into(),
                },
            );
        }
        if p.replacement_sku.as_deref() == Some(p.sku.as_str()) {
            c.push(record, Rule::SelfReplacement);
        } else if p.replacement_sku.as_deref() == Some("") {
            c.id("", "replacement_sku", record);
        }
        if p.vendor.as_deref() == Some("") {
            c.id("", "vendor", record);
        }
        for (warehouse, &threshold) in &p.backorder_thresholds {
            c.warehouse(&warehouses, warehouse, "backorder_thresholds", record);
            c.quantity(threshold, "backorder_thresholds", record);
        }
    }

    let mut on_hand_sums: FxHashMap<(&str, &str), (i128, u32)> = FxHashMap::default();
    for row in &snapshot.inventory {
        let record = || {
            format!(
                "inventory row (sku \"{}\", warehouse \"{}\")",
                row.sku, row.warehouse
            )
        };
        c.id(&row.sku, "sku", record);
        c.warehouse(&warehouses, &row.warehouse, "warehouse", record);
        c.signed_quantity(row.on_hand, "on_hand", record);
        let (sum, rows) = on_hand_sums
            .entry((row.sku.as_str(), row.warehouse.as_str()))
            .or_insert((0, 0));
        *sum += i128::from(row.on_hand);
        *rows += 1;
    }
    // Rows repeating a (sku, warehouse) are stored as their sum, which
    // must keep the bounds too (each row's own excess is reported above).
    if on_hand_sums.len() < snapshot.inventory.len() {
        let mut over: Vec<((&str, &str), i128)> = on_hand_sums
            .into_iter()
            .filter(|&(_, (sum, rows))| rows > 1 && !signed_quantity_in_bounds_wide(sum))
            .map(|(key, (sum, _))| (key, sum))
            .collect();
        over.sort_unstable();
        for ((sku, warehouse), sum) in over {
            c.push(
                || format!("inventory rows of sku \"{sku}\" in warehouse \"{warehouse}\""),
                Rule::QuantityOutOfRange {
                    field: "on_hand summed",
                    value: i64::try_from(sum).unwrap_or(if sum < 0 { i64::MIN } else { i64::MAX }),
                    min: -MAX_QUANTITY,
                },
            );
        }
    }

    let mut purchase_orders = FxHashSet::default();
    for po in &snapshot.purchase_orders {
        let record = || format!("purchase order \"{}\"", po.id);
        c.id(&po.id, "id", record);
        c.id(&po.sku, "sku", record);
        if !purchase_orders.insert(po.id.as_str()) {
            c.push(
                record,
                Rule::DuplicateId {
                    earlier: "another purchase order".into(),
                },
            );
        }
        c.warehouse(&warehouses, &po.warehouse, "warehouse", record);
        c.quantity(po.qty_ordered, "qty_ordered", record);
        c.quantity(po.qty_received, "qty_received", record);
    }

    let mut orders = FxHashSet::default();
    let total_lines = snapshot.orders.iter().map(|o| o.lines.len()).sum();
    let mut line_owner: FxHashMap<&str, &str> = FxHashMap::default();
    line_owner.reserve(total_lines);
    for order in &snapshot.orders {
        let record = || order_record(&order.id);
        c.id(&order.id, "id", record);
        if !orders.insert(order.id.as_str()) {
            c.push(
                record,
                Rule::DuplicateId {
                    earlier: "another order".into(),
                },
            );
        }
        if let Some(ship_from) = &order.ship_from {
            c.warehouse(&warehouses, ship_from, "ship_from", record);
        }
        for line in &order.lines {
            let record = || line_record(&order.id, &line.id);
            c.id(&line.id, "id", record);
            c.id(&line.sku, "sku", record);
            c.quantity(line.qty, "qty", record);
            c.quantity(line.backorder_qty, "backorder_qty", record);
            if let Some(owner) = line_owner.insert(line.id.as_str(), order.id.as_str()) {
                c.push(
                    record,
                    Rule::DuplicateId {
                        earlier: format!("a line of order \"{owner}\""),
                    },
                );
            }
        }
    }

    if c.violations.is_empty() {
        Ok(())
    } else {
        Err(Refusal {
            violations: c.violations,
            truncated: c.truncated,
        })
    }
}
