//! Events other systems send (events.md): their types, how a JSON Lines
//! batch is read, and the checks that need no stored state. Checks against
//! the stored state (unknown order, unknown line) happen while the store
//! applies them, inside the same transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::engine::snapshot::{
    Order, OrderStatus, PaymentStatus, Product, PurchaseOrder, Settings, Snapshot,
};
use crate::engine::time_format::timestamp_opt;
use crate::engine::validate;
use crate::input::{InputError, from_json};

/// One event: its sender-chosen id and what happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    pub id: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum EventKind {
    PoReceived {
        sku: String,
        warehouse: String,
        qty: i64,
        #[serde(default)]
        po_id: Option<String>,
    },
    InventoryAdjusted {
        sku: String,
        warehouse: String,
        delta: i64,
    },
    InventorySet {
        sku: String,
        warehouse: String,
        on_hand: i64,
    },
    PurchaseOrderUpserted {
        purchase_order: PurchaseOrder,
    },
    ProductUpserted {
        product: Product,
    },
    OrderUpserted {
        order: Order,
    },
    OrderStatusChanged {
        order_id: String,
        status: OrderStatus,
    },
    OrderPaymentChanged {
        order_id: String,
        payment_status: PaymentStatus,
        #[serde(default, with = "timestamp_opt")]
        #[schema(value_type = Option<String>, format = DateTime)]
        payment_date: Option<DateTime<Utc>>,
    },
    OrderSplit {
        order_id: String,
        new_order_id: String,
        line_ids: Vec<String>,
    },
    SettingsChanged {
        settings: SettingsPatch,
    },
    BackorderOverride {
        line_id: String,
        backorder_qty: i64,
    },
    Recalculate {
        #[serde(default)]
        skus: Vec<String>,
        #[serde(default)]
        all: bool,
    },
}

impl EventKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::PoReceived { .. } => "po_received",
            EventKind::InventoryAdjusted { .. } => "inventory_adjusted",
            EventKind::InventorySet { .. } => "inventory_set",
            EventKind::PurchaseOrderUpserted { .. } => "purchase_order_upserted",
            EventKind::ProductUpserted { .. } => "product_upserted",
            EventKind::OrderUpserted { .. } => "order_upserted",
            EventKind::OrderStatusChanged { .. } => "order_status_changed",
            EventKind::OrderPaymentChanged { .. } => "order_payment_changed",
            EventKind::OrderSplit { .. } => "order_split",
            EventKind::SettingsChanged { .. } => "settings_changed",
            EventKind::BackorderOverride { .. } => "backorder_override",
            EventKind::Recalculate { .. } => "recalculate",
        }
    }
}

/// A partial `settings` object: the keys present replace the stored ones.
/// `max_days_back: null` clears the limit, leaving the key out keeps it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    pub use_payment_date: Option<bool>,
    pub warehouse_based: Option<bool>,
    pub exclude_dropship: Option<bool>,
    pub exclude_unsellable: Option<bool>,
    pub consider_replacement_sku: Option<bool>,
    pub include_authorized: Option<bool>,
    pub include_on_hold: Option<bool>,
    pub include_unpaid: Option<bool>,
    pub prioritize_fully_shippable: Option<bool>,
    pub prioritize_rush: Option<bool>,
    pub prioritize_picked: Option<bool>,
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = Option<u32>)]
    pub max_days_back: Option<Option<u32>>,
}

fn present_or_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

impl SettingsPatch {
    pub fn apply(&self, to: &mut Settings) {
        macro_rules! patch {
            ($($field:ident),*) => { $( if let Some(v) = self.$field { to.$field = v; } )* };
        }
        patch!(
            use_payment_date,
            warehouse_based,
            exclude_dropship,
            exclude_unsellable,
            consider_replacement_sku,
            include_authorized,
            include_on_hold,
            include_unpaid,
            prioritize_fully_shippable,
            prioritize_rush,
            prioritize_picked,
            max_days_back
        );
    }
}

/// How a refused event is named: its place in the batch and its id.
pub fn event_record(index: usize, id: Option<&str>) -> String {
    match id {
        Some(id) => format!("event {} (id \"{id}\")", index + 1),
        None => format!("event {}", index + 1),
    }
}

/// Why a batch was refused: `syntax` when the text is not JSON at all (the
/// API answers 400), else a JSON value that is not a valid event (422).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct BatchError {
    pub syntax: bool,
    pub message: String,
}

impl From<BatchError> for InputError {
    fn from(err: BatchError) -> Self {
        InputError::Other(err.message)
    }
}

/// Reads a batch of events: JSON values one after the other, each an event
/// object or an array of them, with any whitespace around and inside them.
/// So one event (compact or pretty-printed), a JSON array, JSON Lines and
/// concatenated objects all read alike. Every event is checked on its own;
/// the whole batch is refused if any event is, naming it by its place, its
/// id, and the line it starts on.
pub fn parse_batch(text: &[u8]) -> Result<Vec<Event>, BatchError> {
    let mut events = Vec::new();
    // A first pass that builds nothing finds where each value starts and ends.
    let mut values =
        serde_json::Deserializer::from_slice(text).into_iter::<serde::de::IgnoredAny>();
    let (mut end, mut line, mut counted) = (0, 1, 0);
    loop {
        let next = values.next();
        let start = end
            + text[end..]
                .iter()
                .take_while(|b| b.is_ascii_whitespace())
                .count();
        end = values.byte_offset();
        match next {
            None => return Ok(events),
            Some(Err(e)) => {
                return Err(BatchError {
                    syntax: true,
                    message: format!("{}: not valid JSON: {e}", event_record(events.len(), None)),
                });
            }
            Some(Ok(_)) => {}
        }
        line += text[counted..start].iter().filter(|&&b| b == b'\n').count();
        counted = start;
        let value = &text[start..end];
        if value.first() == Some(&b'[') {
            // The first pass skips strings without checking their UTF-8, so
            // this read can still fail.
            let items: Vec<serde_json::Value> =
                serde_json::from_slice(value).map_err(|e| BatchError {
                    syntax: true,
                    message: format!(
                        "{} at line {line}: not valid JSON: {e}",
                        event_record(events.len(), None)
                    ),
                })?;
            for item in items {
                let item = serde_json::to_vec(&item).expect("a JSON value serializes");
                events.push(parse_event(&item, events.len(), None)?);
            }
        } else {
            events.push(parse_event(value, events.len(), Some(line))?);
        }
    }
}

/// One event of a batch, read and checked; `line`: where it starts, when
/// that helps find it (not for the items of an array).
fn parse_event(value: &[u8], index: usize, line: Option<usize>) -> Result<Event, BatchError> {
    let refused = |id: Option<&str>, problem: String| {
        let at = line.map(|l| format!(" at line {l}")).unwrap_or_default();
        BatchError {
            syntax: false,
            message: format!("{}{at}: {problem}", event_record(index, id)),
        }
    };
    let event: Event = from_json(value).map_err(|e| {
        let id = serde_json::from_slice::<serde_json::Value>(value)
            .ok()
            .and_then(|v| v.get("id")?.as_str().map(str::to_owned));
        refused(id.as_deref(), e.to_string())
    })?;
    check(&event).map_err(|problem| refused(Some(&event.id), problem))?;
    Ok(event)
}

/// The checks an event passes without looking at the stored state.
pub fn check(event: &Event) -> Result<(), String> {
    if event.id.is_empty() {
        return Err("id must be a non-empty string".into());
    }
    let non_empty = |field: &str, value: &str| {
        if value.is_empty() {
            Err(format!("{field} must be a non-empty string"))
        } else {
            Ok(())
        }
    };
    // Quantities keep the bounds of `engine::limits`, so that no sum the
    // store computes from them can overflow.
    let quantity = |field: &'static str, value: i64| match validate::quantity_rule(field, value) {
        Some(rule) => Err(rule.to_string()),
        None => Ok(()),
    };
    let signed_quantity =
        |field: &'static str, value: i64| match validate::signed_quantity_rule(field, value) {
            Some(rule) => Err(rule.to_string()),
            None => Ok(()),
        };
    match &event.kind {
        EventKind::PoReceived {
            sku,
            warehouse,
            qty,
            ..
        } => {
            non_empty("sku", sku)?;
            non_empty("warehouse", warehouse)?;
            quantity("qty", *qty)
        }
        EventKind::InventoryAdjusted {
            sku,
            warehouse,
            delta,
        } => {
            non_empty("sku", sku)?;
            non_empty("warehouse", warehouse)?;
            signed_quantity("delta", *delta)
        }
        EventKind::InventorySet {
            sku,
            warehouse,
            on_hand,
        } => {
            non_empty("sku", sku)?;
            non_empty("warehouse", warehouse)?;
            signed_quantity("on_hand", *on_hand)
        }
        EventKind::PurchaseOrderUpserted { purchase_order } => records_check(Snapshot {
            purchase_orders: vec![purchase_order.clone()],
            ..lone_records()
        }),
        EventKind::ProductUpserted { product } => records_check(Snapshot {
            products: vec![product.clone()],
            ..lone_records()
        }),
        EventKind::OrderUpserted { order } => records_check(Snapshot {
            orders: vec![Order {
                ship_from: None,
                customer: None,
                ..order.clone()
            }],
            ..lone_records()
        }),
        EventKind::OrderStatusChanged { order_id, .. }
        | EventKind::OrderPaymentChanged { order_id, .. } => non_empty("order_id", order_id),
        EventKind::OrderSplit {
            order_id,
            new_order_id,
            line_ids,
        } => {
            non_empty("order_id", order_id)?;
            non_empty("new_order_id", new_order_id)?;
            if order_id == new_order_id {
                return Err("new_order_id must differ from order_id".into());
            }
            if line_ids.is_empty() {
                return Err("line_ids must name at least one line".into());
            }
            Ok(())
        }
        EventKind::SettingsChanged { settings } => {
            match validate::max_days_back_rule(settings.max_days_back.flatten()) {
                Some(rule) => Err(format!("settings.{rule}")),
                None => Ok(()),
            }
        }
        EventKind::BackorderOverride {
            line_id,
            backorder_qty,
        } => {
            non_empty("line_id", line_id)?;
            quantity("backorder_qty", *backorder_qty)
        }
        EventKind::Recalculate { skus, all } => {
            if !*all && skus.is_empty() {
                return Err("recalculate needs `skus` (a non-empty list) or `all: true`".into());
            }
            skus.iter().try_for_each(|sku| non_empty("skus[]", sku))
        }
    }
}

/// An empty snapshot that knows every warehouse, so that the section 9
/// rules can be run on one record (warehouses are checked by the store).
fn lone_records() -> Snapshot {
    Snapshot {
        as_of: None,
        settings: Settings::default(),
        warehouses: Vec::new(),
        products: Vec::new(),
        inventory: Vec::new(),
        purchase_orders: Vec::new(),
        orders: Vec::new(),
    }
}

fn records_check(snapshot: Snapshot) -> Result<(), String> {
    match validate::validate(&snapshot) {
        Ok(()) => Ok(()),
        Err(refusal) => {
            let problems: Vec<String> = refusal
                .violations
                .into_iter()
                .filter(|v| !matches!(v.rule, validate::Rule::UnknownWarehouse { .. }))
                .map(|v| v.to_string())
                .collect();
            if problems.is_empty() {
                Ok(())
            } else {
                Err(problems.join("; "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reads_every_event_type() {
        let batch = br#"
{"id":"e1","type":"po_received","sku":"TEA","warehouse":"MAIN","qty":5,"po_id":"PO-1"}
{"id":"e2","type":"inventory_adjusted","sku":"TEA","warehouse":"MAIN","delta":-2}
{"id":"e3","type":"inventory_set","sku":"TEA","warehouse":"MAIN","on_hand":7}
{"id":"e4","type":"purchase_order_upserted","purchase_order":{"id":"PO-2","sku":"TEA","warehouse":"MAIN","qty_ordered":9,"qty_received":0,"expected_date":"2026-12-01"}}
{"id":"e5","type":"order_upserted","order":{"id":"SO-1","order_date":"2026-11-20T09:30:00Z","lines":[{"id":"SO-1-1","sku":"TEA","qty":2}]}}
{"id":"e6","type":"order_status_changed","order_id":"SO-1","status":"on_hold"}
{"id":"e7","type":"order_payment_changed","order_id":"SO-1","payment_status":"paid","payment_date":"2026-11-21T00:00:00Z"}
{"id":"e8","type":"order_split","order_id":"SO-1","new_order_id":"SO-1b","line_ids":["SO-1-1"]}
{"id":"e9","type":"settings_changed","settings":{"prioritize_rush":true,"max_days_back":null}}
{"id":"e10","type":"backorder_override","line_id":"SO-1-1","backorder_qty":1}
{"id":"e11","type":"recalculate","all":true}
"#;
        let events = parse_batch(batch).unwrap();
        assert_eq!(events.len(), 11);
        let EventKind::SettingsChanged { settings } = &events[8].kind else {
            panic!()
        };
        assert_eq!(settings.max_days_back, Some(None));
        assert_eq!(settings.use_payment_date, None);
    }

    #[test]
    fn a_refused_event_is_named_by_place_and_id() {
        let cases: [(&[u8], &str); 7] = [
            (b"{\"id\":\"big\",\"type\":\"po_received\",\"sku\":\"T\",\"warehouse\":\"M\",\"qty\":9223372036854775807}", "event 1 (id \"big\") at line 1: qty is out of range"),
            (b"{\"id\":\"old\",\"type\":\"settings_changed\",\"settings\":{\"max_days_back\":4294967295}}", "event 1 (id \"old\") at line 1: settings.max_days_back is out of range"),
            (b"{\"id\":\"x\",\"type\":\"teleport\"}", "event 1 (id \"x\")"),
            (b"{\"id\":\"a\",\"type\":\"recalculate\",\"all\":true}\n{\"id\":\"b\",\"type\":\"po_received\",\"sku\":\"T\",\"warehouse\":\"M\",\"qty\":-1}", "event 2 (id \"b\") at line 2: qty must not be negative"),
            (b"{\"id\":\"c\",\"type\":\"inventory_set\",\"sku\":\"T\",\"warehouse\":\"M\",\"on_hand\":1,\"colour\":2}", "unknown field `colour`"),
            (b"not json", "event 1"),
            (b"{\"id\":\"d\",\"type\":\"order_upserted\",\"order\":{\"id\":\"O\",\"order_date\":\"2026-11-20T09:30:00Z\",\"lines\":[{\"id\":\"L\",\"sku\":\"T\",\"qty\":-4}]}}", "line \"L\" of order \"O\": qty must not be negative"),
        ];
        for (batch, expected) in cases {
            let message = parse_batch(batch).unwrap_err().to_string();
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }

    const ONE: &str = r#"{"id":"e1","type":"po_received","sku":"TEA","warehouse":"MAIN","qty":5}"#;
    const TWO: &str = r#"{"id":"e2","type":"recalculate","all":true}"#;

    fn pretty(compact: &str) -> String {
        let value: serde_json::Value = serde_json::from_str(compact).unwrap();
        serde_json::to_string_pretty(&value).unwrap()
    }

    fn ids(batch: &str) -> Vec<String> {
        let events = parse_batch(batch.as_bytes()).unwrap_or_else(|e| panic!("{batch}: {e}"));
        events.into_iter().map(|e| e.id).collect()
    }

    #[test]
    fn one_event_an_array_or_json_lines_in_any_layout() {
        let pretty_array = pretty(&format!("[{ONE},{TWO}]"));
        let batches = [
            (pretty(ONE), vec!["e1"]),
            (format!("\n  {}  \n\n", pretty(ONE)), vec!["e1"]),
            (format!("{ONE}\n{TWO}\n"), vec!["e1", "e2"]),
            (format!("{ONE}\r\n\r\n{TWO}\r\n"), vec!["e1", "e2"]),
            (
                format!("{}\n{}", pretty(ONE), pretty(TWO)),
                vec!["e1", "e2"],
            ),
            (format!("{ONE}{TWO}"), vec!["e1", "e2"]),
            (pretty_array.clone(), vec!["e1", "e2"]),
            (format!("[{ONE}]\n{TWO}"), vec!["e1", "e2"]),
            ("[]".to_owned(), vec![]),
            (" \n\t".to_owned(), vec![]),
        ];
        for (batch, expected) in batches {
            assert_eq!(ids(&batch), expected, "{batch}");
        }
    }

    #[test]
    fn a_refusal_names_the_event_and_the_line_it_starts_on() {
        let bad = r#"{"id":"e3","type":"po_received","sku":"TEA","warehouse":"MAIN","qty":-1}"#;
        let batch = format!("{}\n\n{}\n", pretty(ONE), pretty(bad));
        let err = parse_batch(batch.as_bytes()).unwrap_err();
        assert!(!err.syntax);
        let line = pretty(ONE).lines().count() + 2;
        let expected = format!("event 2 (id \"e3\") at line {line}: qty must not be negative");
        assert!(err.message.contains(&expected), "{err}");
        // The items of an array are named by place and id.
        let err = parse_batch(format!("[{ONE}, {bad}]").as_bytes()).unwrap_err();
        assert!(err.message.starts_with("event 2 (id \"e3\"): qty"), "{err}");
        // Text that is not JSON: the event it breaks and where.
        let broken = format!("{ONE}\n{{\"id\": \"e4\",\n  \"type\" \"recalculate\"}}\n");
        let err = parse_batch(broken.as_bytes()).unwrap_err();
        assert!(err.syntax, "{err}");
        assert!(err.message.starts_with("event 2: not valid JSON"), "{err}");
        assert!(err.message.contains("line 3"), "{err}");
        for text in ["{\"id\": \"e4\", \"type\":", "\u{fffd} garbage", "[{}"] {
            let err = parse_batch(text.as_bytes()).unwrap_err();
            assert!(
                err.syntax && err.message.starts_with("event 1: not valid JSON"),
                "{err}"
            );
        }
        let err = parse_batch(b"42").unwrap_err();
        assert!(
            !err.syntax && err.message.starts_with("event 1 at line 1:"),
            "{err}"
        );
    }

    #[test]
    fn a_settings_patch_changes_only_the_keys_it_names() {
        let mut settings = Settings {
            max_days_back: Some(30),
            ..Settings::default()
        };
        let patch: SettingsPatch = serde_json::from_str(r#"{"prioritize_rush": true}"#).unwrap();
        patch.apply(&mut settings);
        assert!(settings.prioritize_rush);
        assert_eq!(settings.max_days_back, Some(30));
        let clear: SettingsPatch = serde_json::from_str(r#"{"max_days_back": null}"#).unwrap();
        clear.apply(&mut settings);
        assert_eq!(settings.max_days_back, None);
    }
}
