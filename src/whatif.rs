//! What-if, pure: what a settings change (and optionally more events)
//! would make the next recalculation write, without writing it. The store
//! applies the batch and runs an audit-style full recalculation inside a
//! transaction it rolls back (`AnyStore::what_if`); this module builds the
//! batch and turns what that run found into the report.
//!
//! Why that equals the real thing: a `settings_changed` event marks every
//! SKU, so the recalculation that follows it is a full one; the audit's
//! comparison is the recalculation's own (`recalc::changes_with`, every
//! order whole), run on the state the batch left.

use chrono::{DateTime, NaiveDate, Utc};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::audit::Findings;
use crate::engine::BackorderStatus;
use crate::engine::time_format::{format_date, format_timestamp};
use crate::events::{Event, EventKind, SettingsPatch};
use crate::store::IngestReport;

/// The id of the `settings_changed` event a preview applies (and rolls
/// back); a real change gets its own id from whoever sends it.
pub const PREVIEW_EVENT_ID: &str = "what-if-preview";

/// Lines and orders listed when the request does not say.
pub const DEFAULT_LIMIT: usize = 1000;
/// The most a request may ask to be listed (the counts are always exact).
pub const MAX_LIMIT: usize = 100_000;

/// `POST /v1/what-if`'s body, and what the command reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WhatIfRequest {
    /// A partial settings object, as a `settings_changed` event carries:
    /// the keys present replace the stored ones.
    pub settings: SettingsPatch,
    /// Events applied after the settings change, in this order, before the
    /// recalculation (the stored state is left as it is).
    #[serde(default)]
    pub events: Vec<Event>,
    /// How many lines and orders to list (default 1000, at most 100,000).
    #[serde(default)]
    pub limit: Option<usize>,
}

impl WhatIfRequest {
    /// The batch a preview applies: the settings change first, then the
    /// extra events. `id` names the settings event.
    pub fn batch(&self, id: &str) -> Vec<Event> {
        let mut events = Vec::with_capacity(self.events.len() + 1);
        events.push(settings_event(id, self.settings.clone()));
        events.extend(self.events.iter().cloned());
        events
    }

    /// The list bound, checked: `Err` names the problem.
    pub fn limit(&self) -> Result<usize, String> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if n <= MAX_LIMIT => Ok(n),
            Some(n) => Err(format!("limit {n} is over the most allowed, {MAX_LIMIT}")),
        }
    }
}

/// Why a request was refused: `syntax` when it is not JSON (HTTP 400),
/// else a JSON value that is not a valid request (422), naming the key or
/// the event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    pub syntax: bool,
    pub message: String,
}

fn refused(message: String) -> RequestError {
    RequestError {
        syntax: false,
        message,
    }
}

/// Reads a request body: `{"settings": {...}, "events": [...], "limit": N}`.
/// The events are read and checked as `POST /v1/events` reads a batch.
pub fn parse_request(body: &[u8]) -> Result<WhatIfRequest, RequestError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        settings: serde_json::Value,
        #[serde(default)]
        events: Option<serde_json::Value>,
        #[serde(default)]
        limit: Option<usize>,
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| RequestError {
        syntax: true,
        message: format!("the body is not valid JSON: {e}"),
    })?;
    let raw: Raw = serde_json::from_value(value).map_err(|e| refused(format!("request: {e}")))?;
    let settings = parse_settings(raw.settings)?;
    let events = match raw.events {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(array @ serde_json::Value::Array(_)) => {
            let text = serde_json::to_vec(&array).expect("a JSON value serializes");
            crate::events::parse_batch(&text).map_err(|e| refused(format!("events: {e}")))?
        }
        Some(_) => return Err(refused("events: must be an array of events".into())),
    };
    let request = WhatIfRequest {
        settings,
        events,
        limit: raw.limit,
    };
    request.limit().map_err(refused)?;
    Ok(request)
}

/// A `settings` object as a `settings_changed` event carries it; an
/// unknown key or a bad value is refused by name.
pub fn parse_settings(value: serde_json::Value) -> Result<SettingsPatch, RequestError> {
    if !value.is_object() {
        return Err(refused("settings: must be an object".into()));
    }
    let settings: SettingsPatch = serde_json::from_value(value.clone()).map_err(|e| {
        // serde names an unknown key but not the key of a bad value: find it.
        let bad_key = value.as_object().into_iter().flatten().find(|(k, v)| {
            let one = serde_json::json!({ k.as_str(): v });
            serde_json::from_value::<SettingsPatch>(one).is_err()
        });
        match bad_key {
            Some((key, _)) if !e.to_string().contains(key.as_str()) => {
                refused(format!("settings.{key}: {e}"))
            }
            _ => refused(format!("settings: {e}")),
        }
    })?;
    // The same bounds a settings_changed event is held to.
    let event = settings_event(PREVIEW_EVENT_ID, settings);
    crate::events::check(&event).map_err(|e| refused(format!("settings: {e}")))?;
    match event.kind {
        EventKind::SettingsChanged { settings } => Ok(settings),
        _ => unreachable!("built as a settings change"),
    }
}

/// The `settings_changed` event that applies `settings`.
pub fn settings_event(id: &str, settings: SettingsPatch) -> Event {
    Event {
        id: id.to_owned(),
        kind: EventKind::SettingsChanged { settings },
    }
}

/// Each listed line's SKU and its order's stored status, by line id.
pub type LineFacts = FxHashMap<String, (String, BackorderStatus)>;

/// What the store's preview run saw: the audit's findings on the state
/// the batch left, and for the lines listed their SKU and their order's
/// stored status, by line id.
#[derive(Debug, Default)]
pub struct PreviewFindings {
    pub findings: Findings,
    pub ingest: IngestReport,
    pub line_facts: LineFacts,
}

/// Orders the findings as the report lists them (by order, then line), so
/// that the store can look up facts for exactly the lines listed.
pub fn sort_findings(findings: &mut Findings) {
    findings
        .lines
        .sort_unstable_by(|a, b| (&a.order_id, &a.line_id).cmp(&(&b.order_id, &b.line_id)));
    findings
        .orders
        .sort_unstable_by(|a, b| a.order_id.cmp(&b.order_id));
}

/// The line ids of the first `limit` changed lines, once sorted.
pub fn listed_line_ids(findings: &Findings, limit: usize) -> Vec<String> {
    findings
        .lines
        .iter()
        .take(limit)
        .map(|l| l.line_id.clone())
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WhatIfReport {
    /// The instant the engine computed for (RFC 3339, UTC).
    pub as_of: String,
    pub lines_checked: usize,
    pub orders_checked: usize,
    /// Lines whose backorder qty or ETA the recalculation would change.
    pub lines_changed: usize,
    /// Orders whose status, backorder qty or line counts would change.
    pub orders_changed: usize,
    /// Orders that would become backordered (status none before).
    pub orders_newly_backordered: usize,
    /// Orders that would no longer be backordered.
    pub orders_cleared: usize,
    /// Orders whose status would change at all (none, partial, full).
    pub orders_status_changed: usize,
    /// Sum of the lines' backorder qty changes (after minus before).
    pub backorder_qty_delta: i64,
    /// Whether `lines` or `orders` holds fewer entries than the counts.
    pub truncated: bool,
    /// Extra events whose id was already received: a real send would skip
    /// them too, so the preview did.
    pub duplicate_events: Vec<String>,
    /// The changed lines, by order then line, at most `limit`.
    pub lines: Vec<LineMove>,
    /// The changed orders, by id, at most `limit`.
    pub orders: Vec<OrderMove>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LineMove {
    pub order_id: String,
    pub line_id: String,
    pub sku: String,
    pub backorder_qty_before: i64,
    pub backorder_qty_after: i64,
    pub eta_before: Option<String>,
    pub eta_after: Option<String>,
    /// The line's order's status, before and after.
    pub status_before: BackorderStatus,
    pub status_after: BackorderStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OrderMove {
    pub order_id: String,
    pub status_before: BackorderStatus,
    pub status_after: BackorderStatus,
    pub backorder_qty_before: i64,
    pub backorder_qty_after: i64,
}

fn eta(date: Option<NaiveDate>) -> Option<String> {
    date.as_ref().map(format_date)
}

impl WhatIfReport {
    pub fn new(preview: PreviewFindings, as_of: DateTime<Utc>, limit: usize) -> Self {
        let PreviewFindings {
            mut findings,
            ingest,
            line_facts,
        } = preview;
        sort_findings(&mut findings);
        let mut newly = 0;
        let mut cleared = 0;
        let mut status_changed = 0;
        let mut status_of: FxHashMap<&str, (BackorderStatus, BackorderStatus)> =
            FxHashMap::default();
        for o in &findings.orders {
            if o.old_status != o.new_status {
                status_changed += 1;
            }
            match (o.old_status, o.new_status) {
                (BackorderStatus::None, s) if s != BackorderStatus::None => newly += 1,
                (s, BackorderStatus::None) if s != BackorderStatus::None => cleared += 1,
                _ => {}
            }
            status_of.insert(&o.order_id, (o.old_status, o.new_status));
        }
        let delta = findings.lines.iter().fold(0i64, |sum, l| {
            sum.saturating_add(l.new_backorder_qty - l.old_backorder_qty)
        });
        let lines: Vec<LineMove> = findings
            .lines
            .iter()
            .take(limit)
            .map(|l| {
                let (sku, stored) = line_facts
                    .get(&l.line_id)
                    .cloned()
                    .unwrap_or((String::new(), BackorderStatus::None));
                let (before, after) = status_of
                    .get(l.order_id.as_str())
                    .copied()
                    .unwrap_or((stored, stored));
                LineMove {
                    order_id: l.order_id.clone(),
                    line_id: l.line_id.clone(),
                    sku,
                    backorder_qty_before: l.old_backorder_qty,
                    backorder_qty_after: l.new_backorder_qty,
                    eta_before: eta(l.old_eta),
                    eta_after: eta(l.new_eta),
                    status_before: before,
                    status_after: after,
                }
            })
            .collect();
        let orders: Vec<OrderMove> = findings
            .orders
            .iter()
            .take(limit)
            .map(|o| OrderMove {
                order_id: o.order_id.clone(),
                status_before: o.old_status,
                status_after: o.new_status,
                backorder_qty_before: o.old_backorder_qty,
                backorder_qty_after: o.new_backorder_qty,
            })
            .collect();
        WhatIfReport {
            as_of: format_timestamp(&as_of),
            lines_checked: findings.lines_checked,
            orders_checked: findings.orders_checked,
            lines_changed: findings.lines.len(),
            orders_changed: findings.orders.len(),
            orders_newly_backordered: newly,
            orders_cleared: cleared,
            orders_status_changed: status_changed,
            backorder_qty_delta: delta,
            truncated: lines.len() < findings.lines.len() || orders.len() < findings.orders.len(),
            duplicate_events: ingest.duplicates,
            lines,
            orders,
        }
    }

    /// One line for a person: the counts.
    pub fn summary(&self) -> String {
        format!(
            "{} of {} lines and {} of {} orders would change: {} orders newly backordered, \
             {} no longer backordered, backorder qty {:+}{}",
            self.lines_changed,
            self.lines_checked,
            self.orders_changed,
            self.orders_checked,
            self.orders_newly_backordered,
            self.orders_cleared,
            self.backorder_qty_delta,
            if self.truncated {
                " (the lists are cut; the counts are exact)"
            } else {
                ""
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::LineCounts;
    use crate::recalc::{LineChange, OrderChange};

    fn line(order: &str, id: &str, old: i64, new: i64) -> LineChange {
        LineChange {
            line_id: id.into(),
            order_id: order.into(),
            qty: 5,
            old_eta: None,
            old_backorder_qty: old,
            new_backorder_qty: new,
            new_eta: NaiveDate::from_ymd_opt(2026, 12, 24),
            cause: String::new(),
        }
    }

    fn order(id: &str, old: BackorderStatus, new: BackorderStatus) -> OrderChange {
        OrderChange {
            order_id: id.into(),
            old_status: old,
            new_status: new,
            old_backorder_qty: 0,
            new_backorder_qty: 5,
            old_counts: LineCounts::default(),
            new_counts: LineCounts::default(),
            cause: String::new(),
        }
    }

    fn preview() -> PreviewFindings {
        let findings = Findings {
            dirty_skus: 0,
            lines_checked: 10,
            orders_checked: 4,
            lines: vec![
                line("B", "B1", 0, 5),
                line("A", "A2", 5, 0),
                line("C", "C1", 1, 2),
            ],
            orders: vec![
                order("B", BackorderStatus::None, BackorderStatus::Full),
                order("A", BackorderStatus::Partial, BackorderStatus::None),
            ],
        };
        let line_facts = [
            (
                "A2".to_owned(),
                ("TEA".to_owned(), BackorderStatus::Partial),
            ),
            ("B1".to_owned(), ("MUG".to_owned(), BackorderStatus::None)),
            (
                "C1".to_owned(),
                ("MUG".to_owned(), BackorderStatus::Partial),
            ),
        ]
        .into_iter()
        .collect();
        PreviewFindings {
            findings,
            ingest: IngestReport::default(),
            line_facts,
        }
    }

    #[test]
    fn counts_are_exact_and_the_list_is_sorted_and_bounded() {
        let report = WhatIfReport::new(preview(), Utc::now(), 2);
        assert_eq!(report.lines_changed, 3);
        assert_eq!(report.orders_changed, 2);
        assert_eq!(report.orders_newly_backordered, 1);
        assert_eq!(report.orders_cleared, 1);
        assert_eq!(report.orders_status_changed, 2);
        assert_eq!(report.backorder_qty_delta, 1);
        assert!(report.truncated);
        let ids: Vec<&str> = report.lines.iter().map(|l| l.line_id.as_str()).collect();
        assert_eq!(ids, ["A2", "B1"]);
        assert_eq!(report.lines[0].sku, "TEA");
        assert_eq!(report.lines[0].status_after, BackorderStatus::None);
        assert_eq!(report.lines[1].eta_after.as_deref(), Some("2026-12-24"));
    }

    #[test]
    fn a_line_whose_order_keeps_its_status_shows_the_stored_one() {
        let report = WhatIfReport::new(preview(), Utc::now(), 10);
        assert!(!report.truncated);
        let c1 = report.lines.iter().find(|l| l.line_id == "C1").unwrap();
        assert_eq!(c1.status_before, BackorderStatus::Partial);
        assert_eq!(c1.status_after, BackorderStatus::Partial);
    }

    #[test]
    fn the_batch_puts_the_settings_change_first_and_the_limit_is_bounded() {
        let request: WhatIfRequest = serde_json::from_value(serde_json::json!({
            "settings": {"warehouse_based": true},
            "events": [{"id": "x", "type": "recalculate", "all": true}]
        }))
        .unwrap();
        let batch = request.batch("s1");
        assert_eq!(batch[0].id, "s1");
        assert_eq!(batch[0].kind.type_name(), "settings_changed");
        assert_eq!(batch[1].id, "x");
        assert_eq!(request.limit(), Ok(DEFAULT_LIMIT));
        let big = WhatIfRequest {
            limit: Some(MAX_LIMIT + 1),
            ..WhatIfRequest::default()
        };
        assert!(big.limit().unwrap_err().contains("limit"));
    }

    #[test]
    fn a_bad_request_is_refused_naming_the_key_or_the_event() {
        let err = parse_request(br#"{"settings": {"warehouse_bsaed": true}}"#).unwrap_err();
        assert!(!err.syntax);
        assert!(err.message.contains("warehouse_bsaed"), "{err}");
        let err = parse_request(br#"{"settings": {"max_days_back": 99999}}"#).unwrap_err();
        assert!(err.message.contains("max_days_back"), "{err}");
        let err = parse_request(br#"{"settings": {"prioritize_rush": true, "max_days_back": -1}}"#)
            .unwrap_err();
        assert!(err.message.contains("settings.max_days_back"), "{err}");
        let err =
            parse_request(br#"{"settings": {}, "events": [{"id": "e9", "type": "po_received"}]}"#)
                .unwrap_err();
        assert!(err.message.contains("e9"), "{err}");
        let err = parse_request(br#"{"settings": {}, "colour": 1}"#).unwrap_err();
        assert!(err.message.contains("colour"), "{err}");
        assert!(parse_request(b"{not json").unwrap_err().syntax);
        let ok = parse_request(br#"{"settings": {"max_days_back": null}, "limit": 5}"#).unwrap();
        assert_eq!(ok.settings.max_days_back, Some(None));
        assert_eq!(ok.limit(), Ok(5));
    }
}
