//! Section 3: pools, eligible warehouses and how much each pool holds.

use rustc_hash::FxHashMap;

use super::snapshot::{Settings, Warehouse, WarehouseKind};

/// Warehouse ids interned to small integers.
pub struct WarehouseIndex<'a> {
    by_id: FxHashMap<&'a str, u32>,
    kinds: Vec<WarehouseKind>,
}

impl<'a> WarehouseIndex<'a> {
    pub fn new(warehouses: &'a [Warehouse]) -> Self {
        let mut by_id = FxHashMap::default();
        let mut kinds = Vec::with_capacity(warehouses.len());
        for w in warehouses {
            by_id.entry(w.id.as_str()).or_insert_with(|| {
                kinds.push(w.kind);
                (kinds.len() - 1) as u32
            });
        }
        WarehouseIndex { by_id, kinds }
    }

    pub fn index(&self, id: &str) -> Option<u32> {
        self.by_id.get(id).copied()
    }

    pub fn kind(&self, id: &str) -> Option<WarehouseKind> {
        self.index(id).map(|i| self.kinds[i as usize])
    }

    /// Whether stock and open purchase orders there count (section 3).
    pub fn is_eligible(&self, id: &str, settings: &Settings) -> bool {
        self.kind(id).is_some_and(|kind| is_eligible(kind, settings))
    }
}

pub fn is_eligible(kind: WarehouseKind, settings: &Settings) -> bool {
    match kind {
        WarehouseKind::Dropship => !settings.exclude_dropship,
        WarehouseKind::Unsellable => !settings.exclude_unsellable,
        _ => true,
    }
}

/// Stands for "any warehouse" in a pool key when pools are per SKU.
const ANY_WAREHOUSE: u32 = u32::MAX;

/// Pools interned to dense indices, keyed by SKU and, with
/// `warehouse_based`, the ship-from warehouse.
pub struct PoolIndex<'a> {
    by_key: FxHashMap<(&'a str, u32), u32>,
    warehouse_based: bool,
}

impl<'a> PoolIndex<'a> {
    pub fn new(warehouse_based: bool, expected: usize) -> Self {
        let mut by_key = FxHashMap::default();
        by_key.reserve(expected);
        PoolIndex {
            by_key,
            warehouse_based,
        }
    }

    fn key(&self, sku: &'a str, warehouse: Option<u32>) -> (&'a str, u32) {
        let warehouse = if self.warehouse_based {
            warehouse.unwrap_or(ANY_WAREHOUSE)
        } else {
            ANY_WAREHOUSE
        };
        (sku, warehouse)
    }

    pub fn intern(&mut self, sku: &'a str, warehouse: Option<u32>) -> u32 {
        let key = self.key(sku, warehouse);
        let next = self.by_key.len() as u32;
        *self.by_key.entry(key).or_insert(next)
    }

    /// The pool of a stock or supply row, if any line uses it.
    pub fn get(&self, sku: &'a str, warehouse: Option<u32>) -> Option<u32> {
        self.by_key.get(&self.key(sku, warehouse)).copied()
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }
}
