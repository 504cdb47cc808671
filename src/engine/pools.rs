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
    hash: u64,
    pool: u32,
    /// The SKU's first bytes, zero-padded: most SKUs are this short, and
    /// then a lookup never reads the arena.
    prefix: [u8; PREFIX],
    sku_start: u32,
    sku_len: u32,
    warehouse: u32,
}

const PREFIX: usize = 16;

fn prefix_of(sku: &[u8]) -> [u8; PREFIX] {
    let mut prefix = [0u8; PREFIX];
    let n = sku.len().min(PREFIX);
    prefix[..n].copy_from_slice(&sku[..n]);
    prefix
}

/// Pools interned to dense indices, keyed by SKU and, with
/// `warehouse_based`, the ship-from warehouse.
///
/// The SKU bytes of every key live in one arena: a lookup compares against
/// memory that stays in cache instead of chasing a pointer into the
/// snapshot, which on a million lines is most of the engine's time.
pub struct PoolIndex {
    /// The keys themselves, not indices into a list of them: a lookup
    /// touches one place in memory, not two.
    table: HashTable<PoolKey>,
    pools: u32,
    arena: Vec<u8>,
    warehouse_based: bool,
}

impl PoolIndex {
    pub fn new(warehouse_based: bool, expected: usize) -> Self {
        PoolIndex {
            table: HashTable::with_capacity(expected),
            pools: 0,
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
        let prefix = prefix_of(sku);
        self.table
            .find(hash, |key| {
                key.hash == hash
                    && key.warehouse == warehouse
                    && key.sku_len as usize == sku.len()
                    && key.prefix == prefix
                    && (sku.len() <= PREFIX || self.sku_of(key)[PREFIX..] == sku[PREFIX..])
            })
            .map(|key| key.pool)
    }

    pub fn intern(&mut self, sku: &str, warehouse: Option<u32>) -> u32 {
        let warehouse = self.warehouse(warehouse);
        let hash = Self::hash(sku.as_bytes(), warehouse);
        if let Some(pool) = self.find(sku.as_bytes(), warehouse, hash) {
            return pool;
        }
        let pool = self.pools;
        self.pools += 1;
        let key = PoolKey {
            hash,
            pool,
            prefix: prefix_of(sku.as_bytes()),
            sku_start: self.arena.len() as u32,
            sku_len: sku.len() as u32,
            warehouse,
        };
        self.arena.extend_from_slice(sku.as_bytes());
        self.table.insert_unique(hash, key, |key| key.hash);
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
        self.pools as usize
    }
}

#[cfg(test)]
mod tests {
    use super::PoolIndex;

    #[test]
    fn skus_alike_in_their_first_bytes_are_different_pools() {
        let mut pools = PoolIndex::new(true, 4);
        let long_a = "WIDGET-0000000000000-A";
        let long_b = "WIDGET-0000000000000-B";
        let short = "WIDGET";
        let a = pools.intern(long_a, Some(0));
        let b = pools.intern(long_b, Some(0));
        let s = pools.intern(short, Some(0));
        let a_elsewhere = pools.intern(long_a, Some(1));
        assert_eq!(pools.len(), 4);
        assert_eq!([a, b, s, a_elsewhere], [0, 1, 2, 3]);
        assert_eq!(pools.intern(long_a, Some(0)), a);
        assert_eq!(pools.get(long_b, Some(0)), Some(b));
        assert_eq!(pools.get("WIDGET-0000000000000-C", Some(0)), None);
        assert_eq!(pools.get("WIDGET\0", Some(0)), None);
    }
}
