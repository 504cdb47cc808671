//! The recalculation job that travels through the apalis queue.
//!
//! A job carries no work of its own: the work is the store's set of dirty
//! SKUs, which the job drains (docs/architecture.md). The fields only say
//! what caused it, for logs. So a job delivered twice, or a burst of jobs
//! for one SKU, costs one recalculation, and a lost job loses nothing (the
//! dirty marks stay until a recalculation clears them).
//!
//! Coalescing: an event queues a job only when none is waiting to be
//! fetched; otherwise the waiting job absorbs it ([`RecalcJob::absorb`]) and
//! its drain, which runs after the event's transaction commits, covers the
//! event's marks. So a busy worker finds one job waiting, not one per event.

use serde::{Deserialize, Serialize};

/// The apalis queue (job type) name, the same in every backend.
pub const QUEUE: &str = "backorderd::recalculate";

/// How many SKUs a job names in its payload, for logs; the dirty set has
/// them all.
const SKUS_NAMED: usize = 20;
/// How many causes a job names, for logs; each batch logs its own.
const CAUSES_NAMED: usize = 50;

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

    /// The waiting job stored as `payload` with `later` absorbed: the causes
    /// and SKUs of both (up to what a payload names), `all` if either.
    /// `None` when `payload` is not one of ours, to be left alone.
    pub fn absorb(payload: &[u8], later: &RecalcJob) -> Option<Vec<u8>> {
        let mut job: RecalcJob = serde_json::from_slice(payload).ok()?;
        for cause in &later.causes {
            if job.causes.len() < CAUSES_NAMED && !job.causes.contains(cause) {
                job.causes.push(cause.clone());
            }
        }
        for sku in &later.skus {
            if job.skus.len() < SKUS_NAMED && !job.skus.contains(sku) {
                job.skus.push(sku.clone());
            }
        }
        job.all |= later.all;
        Some(job.payload())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(causes: &[&str], skus: &[&str], all: bool) -> RecalcJob {
        RecalcJob {
            causes: causes.iter().map(|c| c.to_string()).collect(),
            skus: skus.iter().map(|s| s.to_string()).collect(),
            all,
        }
    }

    #[test]
    fn a_waiting_job_absorbs_causes_skus_and_all() {
        let waiting = job(&["e1"], &["TEA"], false).payload();
        let merged = RecalcJob::absorb(&waiting, &job(&["e2", "e1"], &["TEA", "MUG"], true));
        let merged: RecalcJob = serde_json::from_slice(&merged.unwrap()).unwrap();
        assert_eq!(merged, job(&["e1", "e2"], &["TEA", "MUG"], true));
    }

    #[test]
    fn absorbing_stops_naming_at_the_limits() {
        let mut waiting = job(&[], &[], false).payload();
        for k in 0..(CAUSES_NAMED + 10) {
            let sku = format!("SKU{k}");
            let later = job(&[&format!("e{k}")], &[&sku], false);
            waiting = RecalcJob::absorb(&waiting, &later).unwrap();
        }
        let merged: RecalcJob = serde_json::from_slice(&waiting).unwrap();
        assert_eq!(merged.causes.len(), CAUSES_NAMED);
        assert_eq!(merged.skus.len(), SKUS_NAMED);
        assert_eq!(merged.causes[0], "e0");
        assert!(!merged.all);
    }

    #[test]
    fn a_payload_that_is_not_a_job_is_left_alone() {
        assert_eq!(RecalcJob::absorb(b"not json", &RecalcJob::default()), None);
    }
}
