//! Events other systems send (events.md): their types, how a JSON Lines
//! batch is read, and the checks that need no stored state. Checks against
//! the stored state (unknown order, unknown line) happen while the store
//! applies them, inside the same transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::engine::snapshot::{
    Order, OrderStatus, PaymentStatus, PurchaseOrder, Settings, Snapshot,
};
use crate::engine::time_format::timestamp_opt;
use crate::engine::validate;
use crate::input::{InputError, from_json};

/// One event: its sender-chosen id and what happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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

/// Reads a JSON Lines batch (blank lines skipped) and checks every event on
/// its own. The whole batch is refused if any event is.
pub fn parse_batch(text: &[u8]) -> Result<Vec<Event>, InputError> {
    let mut events = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let index = events.len();
        let event: Event = from_json(line).map_err(|e| {
            let id = serde_json::from_slice::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("id")?.as_str().map(str::to_owned));
            InputError::Other(format!("{}: {e}", event_record(index, id.as_deref())))
        })?;
        check(&event).map_err(|problem| {
            InputError::Other(format!(
                "{}: {problem}",
                event_record(index, Some(&event.id))
            ))
        })?;
        events.push(event);
    }
    Ok(events)
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
        EventKind::OrderUpserted { order } => records_check(Snapshot {
            orders: vec![Order {
                ship_from: None,
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
            (b"{\"id\":\"big\",\"type\":\"po_received\",\"sku\":\"T\",\"warehouse\":\"M\",\"qty\":9223372036854775807}", "event 1 (id \"big\"): qty is out of range"),
            (b"{\"id\":\"old\",\"type\":\"settings_changed\",\"settings\":{\"max_days_back\":4294967295}}", "event 1 (id \"old\"): settings.max_days_back is out of range"),
            (b"{\"id\":\"x\",\"type\":\"teleport\"}", "event 1 (id \"x\")"),
            (b"{\"id\":\"a\",\"type\":\"recalculate\",\"all\":true}\n{\"id\":\"b\",\"type\":\"po_received\",\"sku\":\"T\",\"warehouse\":\"M\",\"qty\":-1}", "event 2 (id \"b\"): qty must not be negative"),
            (b"{\"id\":\"c\",\"type\":\"inventory_set\",\"sku\":\"T\",\"warehouse\":\"M\",\"on_hand\":1,\"colour\":2}", "unknown field `colour`"),
            (b"not json", "event 1"),
            (b"{\"id\":\"d\",\"type\":\"order_upserted\",\"order\":{\"id\":\"O\",\"order_date\":\"2026-11-20T09:30:00Z\",\"lines\":[{\"id\":\"L\",\"sku\":\"T\",\"qty\":-4}]}}", "line \"L\" of order \"O\": qty must not be negative"),
        ];
        for (batch, expected) in cases {
            let message = parse_batch(batch).unwrap_err().to_string();
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
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
