//! Section 9 of the contract: a snapshot is refused whole, naming each
//! offending record and the rule it breaks. Type errors (unknown status,
//! bad date, unknown field) are caught earlier, while parsing.

use rustc_hash::{FxHashMap, FxHashSet};
use std::fmt;

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
        if value < 0 {
            self.push(record, Rule::NegativeQuantity { field, value });
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
    }

    for row in &snapshot.inventory {
        let record = || {
            format!(
                "inventory row (sku \"{}\", warehouse \"{}\")",
                row.sku, row.warehouse
            )
        };
        c.id(&row.sku, "sku", record);
        c.warehouse(&warehouses, &row.warehouse, "warehouse", record);
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
