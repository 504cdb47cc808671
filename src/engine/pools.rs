//! Section 3: pools, eligible warehouses and how much each pool holds.

use hashbrown::HashTable;
use rustc_hash::{FxBuildHasher, FxHashMap};
use std::hash::{BuildHasher, Hasher};

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

    /// The warehouse's index if its stock and open purchase orders count
    /// (section 3), `None` if it does not or is unknown.
    pub fn eligible_index(&self, id: &str, settings: &Settings) -> Option<u32> {
        self.index(id)
            .filter(|&i| is_eligible(self.kinds[i as usize], settings))
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

struct PoolKey {
    sku_start: u32,
    sku_len: u32,
    warehouse: u32,
    hash: u64,
}

/// Pools interned to dense indices, keyed by SKU and, with
/// `warehouse_based`, the ship-from warehouse.
///
/// The SKU bytes of every key live in one arena: a lookup compares against
/// memory that stays in cache instead of chasing a pointer into the
/// snapshot, which on a million lines is most of the engine's time.
pub struct PoolIndex {
    table: HashTable<u32>,
    keys: Vec<PoolKey>,
    arena: Vec<u8>,
    warehouse_based: bool,
}

impl PoolIndex {
    pub fn new(warehouse_based: bool, expected: usize) -> Self {
        PoolIndex {
            table: HashTable::with_capacity(expected),
            keys: Vec::with_capacity(expected),
            arena: Vec::with_capacity(expected * 12),
            warehouse_based,
        }
    }

    fn warehouse(&self, warehouse: Option<u32>) -> u32 {
        match warehouse {
            Some(w) if self.warehouse_based => w,
            _ => ANY_WAREHOUSE,
        }
    }

    fn hash(sku: &[u8], warehouse: u32) -> u64 {
        let mut h = FxBuildHasher.build_hasher();
        h.write(sku);
        h.write_u32(warehouse);
        h.finish()
    }

    fn sku_of(&self, key: &PoolKey) -> &[u8] {
        &self.arena[key.sku_start as usize..(key.sku_start + key.sku_len) as usize]
    }

    fn find(&self, sku: &[u8], warehouse: u32, hash: u64) -> Option<u32> {
        self.table
            .find(hash, |&p| {
                let key = &self.keys[p as usize];
                key.hash == hash && key.warehouse == warehouse && self.sku_of(key) == sku
            })
            .copied()
    }

    pub fn intern(&mut self, sku: &str, warehouse: Option<u32>) -> u32 {
        let warehouse = self.warehouse(warehouse);
        let hash = Self::hash(sku.as_bytes(), warehouse);
        if let Some(pool) = self.find(sku.as_bytes(), warehouse, hash) {
            return pool;
        }
        let pool = self.keys.len() as u32;
        self.keys.push(PoolKey {
            sku_start: self.arena.len() as u32,
            sku_len: sku.len() as u32,
            warehouse,
            hash,
        });
        self.arena.extend_from_slice(sku.as_bytes());
        let keys = &self.keys;
        self.table
            .insert_unique(hash, pool, |&p| keys[p as usize].hash);
        pool
    }

    /// The pool of a stock or supply row, if any line uses it.
    pub fn get(&self, sku: &str, warehouse: Option<u32>) -> Option<u32> {
        let warehouse = self.warehouse(warehouse);
        self.find(
            sku.as_bytes(),
            warehouse,
            Self::hash(sku.as_bytes(), warehouse),
        )
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }
}
