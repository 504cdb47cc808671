//! The recalculation job that travels through the apalis queue.
//!
//! A job carries no work of its own: the work is the store's set of dirty
//! SKUs, which the job drains (docs/architecture.md). The fields only say
//! what caused it, for logs. So a job delivered twice, or a burst of jobs
//! for one SKU, costs one recalculation, and a lost job loses nothing (the
//! dirty marks stay until a recalculation clears them).

use serde::{Deserialize, Serialize};

/// The apalis queue (job type) name, the same in every backend.
pub const QUEUE: &str = "backorderd::recalculate";

/// How many SKUs a job names in its payload, for logs; the dirty set has
/// them all.
const SKUS_NAMED: usize = 20;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecalcJob {
    /// The event ids (or `import`, `recalc`, `periodic`) that asked for it.
    pub causes: Vec<String>,
    /// Some of the SKUs marked, for logs.
    pub skus: Vec<String>,
    /// Every SKU was marked.
    pub all: bool,
}

impl RecalcJob {
    pub fn new(causes: Vec<String>, marked: &[String], all: bool) -> Self {
        RecalcJob {
            causes,
            skus: marked.iter().take(SKUS_NAMED).cloned().collect(),
            all,
        }
    }

    pub fn payload(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a job serializes")
    }
}
