//! The daemon end to end: the real binary serving a temporary SQLite file,
//! fed events by separate `event` invocations, stopped by signals and
//! killed mid-recalculation. The stored results are checked against
//! `simulate` on the exported state, and the state against a model that
//! applies every accepted event exactly once.

use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use crate::daemon_support::{
    Daemon, Lcg, assert_matches_simulate, dirty_skus, generate, jsonl, send_events, status,
    stored_results, wait_idle,
};
use crate::support::{Backend, TempDatabase, on_both_backends};

const WAREHOUSES: [&str; 3] = ["MAIN", "EAST", "WEST"];

/// The stored state the events should produce, built from an export and
/// changed by each event the first time its id is seen.
pub(crate) struct Model {
    settings: Map<String, Value>,
    inventory: BTreeMap<(String, String), i64>,
    purchase_orders: BTreeMap<String, Value>,
    /// In stored order; lines without `backorder_qty`.
    orders: Vec<Value>,
    seen: HashSet<String>,
    /// SKUs named by a product row, as SKU or as replacement.
    related: BTreeSet<String>,
    /// Every SKU of the book.
    skus: Vec<String>,
    /// Overrides not yet overwritten by a recalculation of their SKU:
    /// line id -> (sku, value).
    pub(crate) pending_overrides: BTreeMap<String, (String, i64)>,
    /// A SKU that no random event touches, for an override that must stand.
    reserved: String,
    counter: usize,
}

/// What an accepted event marks for recalculation.
enum Marks {
    None,
    Skus(Vec<String>),
    All,
}

fn without_backorders(order: &Value) -> Value {
    let mut order = order.clone();
    for line in order["lines"].as_array_mut().unwrap() {
        line.as_object_mut().unwrap().remove("backorder_qty");
    }
    order
}

pub(crate) fn str_of(value: &Value) -> String {
    value.as_str().unwrap().to_owned()
}

/// The ids an `event` report lists under `key` (`accepted`, `duplicates`).
pub(crate) fn report_ids(report: &Value, key: &str) -> Vec<String> {
    report[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {report}"))
        .iter()
        .map(str_of)
        .collect()
}

/// An export's on-hand quantities by (sku, warehouse).
fn inventory_of(export: &Value) -> BTreeMap<(String, String), i64> {
    export["inventory"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                (str_of(&row["sku"]), str_of(&row["warehouse"])),
                row["on_hand"].as_i64().unwrap(),
            )
        })
        .collect()
}

impl Model {
    pub(crate) fn new(export: &Value, reserved: &str) -> Model {
        let inventory = inventory_of(export);
        let mut related = BTreeSet::new();
        for product in export["products"].as_array().unwrap() {
            related.insert(str_of(&product["sku"]));
            if let Some(r) = product["replacement_sku"].as_str() {
                related.insert(r.to_owned());
            }
        }
        let skus: BTreeSet<String> = inventory.keys().map(|(sku, _)| sku.clone()).collect();
        Model {
            settings: export["settings"].as_object().unwrap().clone(),
            inventory,
            purchase_orders: export["purchase_orders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|po| (str_of(&po["id"]), po.clone()))
                .collect(),
            orders: export["orders"]
                .as_array()
                .unwrap()
                .iter()
                .map(without_backorders)
                .collect(),
            seen: HashSet::new(),
            related,
            skus: skus.into_iter().collect(),
            pending_overrides: BTreeMap::new(),
            reserved: reserved.to_owned(),
            counter: 0,
        }
    }

    fn order_index(&self, id: &str) -> usize {
        self.orders
            .iter()
            .position(|o| o["id"] == id)
            .unwrap_or_else(|| panic!("the model has no order {id}"))
    }

    fn order_skus(order: &Value) -> Vec<String> {
        order["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| str_of(&l["sku"]))
            .collect()
    }

    /// Applies `event` if its id is new; returns whether it was accepted.
    pub(crate) fn apply(&mut self, event: &Value) -> bool {
        let id = str_of(&event["id"]);
        if !self.seen.insert(id) {
            return false;
        }
        let marks = self.effect(event);
        match marks {
            Marks::None => {}
            Marks::All => self.pending_overrides.clear(),
            Marks::Skus(skus) => self
                .pending_overrides
                .retain(|_, (sku, _)| !skus.contains(sku)),
        }
        true
    }

    fn effect(&mut self, e: &Value) -> Marks {
        let sku = || str_of(&e["sku"]);
        let slot = || (str_of(&e["sku"]), str_of(&e["warehouse"]));
        match e["type"].as_str().unwrap() {
            "po_received" => {
                let qty = e["qty"].as_i64().unwrap();
                *self.inventory.entry(slot()).or_default() += qty;
                if let Some(po) = e
                    .get("po_id")
                    .and_then(Value::as_str)
                    .and_then(|id| self.purchase_orders.get_mut(id))
                {
                    po["qty_received"] = json!(po["qty_received"].as_i64().unwrap() + qty);
                }
                Marks::Skus(vec![sku()])
            }
            "inventory_adjusted" => {
                *self.inventory.entry(slot()).or_default() += e["delta"].as_i64().unwrap();
                Marks::Skus(vec![sku()])
            }
            "inventory_set" => {
                self.inventory
                    .insert(slot(), e["on_hand"].as_i64().unwrap());
                Marks::Skus(vec![sku()])
            }
            "purchase_order_upserted" => {
                let po = e["purchase_order"].clone();
                let mut marks = vec![str_of(&po["sku"])];
                if let Some(old) = self.purchase_orders.insert(str_of(&po["id"]), po) {
                    marks.push(str_of(&old["sku"]));
                }
                Marks::Skus(marks)
            }
            "order_upserted" => {
                let order = e["order"].clone();
                let mut marks = Self::order_skus(&order);
                match self.orders.iter().position(|o| o["id"] == order["id"]) {
                    Some(i) => {
                        marks.extend(Self::order_skus(&self.orders[i]));
                        self.orders[i] = order;
                    }
                    None => self.orders.push(order),
                }
                Marks::Skus(marks)
            }
            "order_status_changed" => {
                let i = self.order_index(e["order_id"].as_str().unwrap());
                self.orders[i]["status"] = e["status"].clone();
                Marks::Skus(Self::order_skus(&self.orders[i]))
            }
            "order_payment_changed" => {
                let i = self.order_index(e["order_id"].as_str().unwrap());
                self.orders[i]["payment_status"] = e["payment_status"].clone();
                self.orders[i]["payment_date"] =
                    e.get("payment_date").cloned().unwrap_or(Value::Null);
                Marks::Skus(Self::order_skus(&self.orders[i]))
            }
            "order_split" => {
                let i = self.order_index(e["order_id"].as_str().unwrap());
                let moving: Vec<&str> = e["line_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l.as_str().unwrap())
                    .collect();
                let lines = self.orders[i]["lines"].as_array().unwrap().clone();
                let (moved, kept): (Vec<Value>, Vec<Value>) = lines
                    .into_iter()
                    .partition(|l| moving.contains(&l["id"].as_str().unwrap()));
                let mut new_order = self.orders[i].clone();
                new_order["id"] = e["new_order_id"].clone();
                let marks = moved.iter().map(|l| str_of(&l["sku"])).collect();
                new_order["lines"] = Value::Array(moved);
                self.orders[i]["lines"] = Value::Array(kept);
                self.orders.push(new_order);
                Marks::Skus(marks)
            }
            "settings_changed" => {
                for (key, value) in e["settings"].as_object().unwrap() {
                    self.settings.insert(key.clone(), value.clone());
                }
                Marks::All
            }
            "backorder_override" => {
                let line_id = str_of(&e["line_id"]);
                let sku = self
                    .orders
                    .iter()
                    .flat_map(|o| o["lines"].as_array().unwrap())
                    .find(|l| l["id"] == line_id)
                    .map(|l| str_of(&l["sku"]))
                    .expect("an override names a known line");
                self.pending_overrides
                    .insert(line_id, (sku, e["backorder_qty"].as_i64().unwrap()));
                Marks::None
            }
            "recalculate" => {
                if e.get("all") == Some(&json!(true)) {
                    Marks::All
                } else {
                    Marks::Skus(e["skus"].as_array().unwrap().iter().map(str_of).collect())
                }
            }
            other => panic!("the model does not know {other}"),
        }
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}-{}", self.counter)
    }

    /// A SKU other than the reserved one, weighted by popularity half the time.
    fn any_sku(&self, rng: &mut Lcg) -> String {
        loop {
            let sku = if rng.chance(50) {
                let order = rng.pick(&self.orders);
                let lines = order["lines"].as_array().unwrap();
                if lines.is_empty() {
                    continue;
                }
                str_of(&rng.pick(lines)["sku"])
            } else {
                rng.pick(&self.skus).clone()
            };
            if sku != self.reserved {
                return sku;
            }
        }
    }

    /// Orders random events may touch: none holding a line of the reserved SKU.
    fn free_orders(&self) -> Vec<usize> {
        (0..self.orders.len())
            .filter(|&i| !Self::order_skus(&self.orders[i]).contains(&self.reserved))
            .collect()
    }

    fn any_order(&self, rng: &mut Lcg) -> usize {
        *rng.pick(&self.free_orders())
    }

    fn new_lines(&mut self, rng: &mut Lcg, order_id: &str, n: i64) -> Vec<Value> {
        (0..n)
            .map(|_| {
                let sku = self.any_sku(rng);
                json!({"id": self.fresh(&format!("{order_id}-X")), "sku": sku, "qty": rng.range(1, 6)})
            })
            .collect()
    }

    /// A random valid event that leaves the reserved SKU alone.
    pub(crate) fn random_event(&mut self, rng: &mut Lcg, id: String) -> Value {
        let roll = rng.below(100);
        let warehouse = *rng.pick(&WAREHOUSES);
        match roll {
            0..=14 => {
                let sku = self.any_sku(rng);
                let mut event = json!({"id": id, "type": "po_received", "sku": sku,
                                       "warehouse": warehouse, "qty": rng.range(0, 8)});
                let pos: Vec<String> = self
                    .purchase_orders
                    .values()
                    .filter(|po| po["sku"] == sku.as_str())
                    .map(|po| str_of(&po["id"]))
                    .collect();
                if !pos.is_empty() && rng.chance(60) {
                    event["po_id"] = json!(rng.pick(&pos));
                } else if rng.chance(15) {
                    event["po_id"] = json!("PO-NOT-STORED");
                }
                event
            }
            15..=29 => json!({"id": id, "type": "inventory_adjusted", "sku": self.any_sku(rng),
                              "warehouse": warehouse, "delta": rng.range(-5, 5)}),
            30..=36 => json!({"id": id, "type": "inventory_set", "sku": self.any_sku(rng),
                              "warehouse": warehouse, "on_hand": rng.range(0, 30)}),
            37..=44 => {
                let existing: Vec<Value> = self
                    .purchase_orders
                    .values()
                    .filter(|po| po["sku"] != self.reserved.as_str())
                    .cloned()
                    .collect();
                let mut po = if !existing.is_empty() && rng.chance(50) {
                    rng.pick(&existing).clone()
                } else {
                    json!({"id": self.fresh("PO-NEW"), "sku": self.any_sku(rng),
                           "warehouse": warehouse, "qty_ordered": 0, "qty_received": 0,
                           "expected_date": null})
                };
                po["qty_ordered"] = json!(rng.range(1, 30));
                if rng.chance(30) {
                    po["sku"] = json!(self.any_sku(rng));
                }
                po["expected_date"] = if rng.chance(85) {
                    json!(format!("2026-12-{:02}", rng.range(1, 28)))
                } else {
                    Value::Null
                };
                json!({"id": id, "type": "purchase_order_upserted", "purchase_order": po})
            }
            45..=51 => {
                let order_id = self.fresh("NEW");
                let n = rng.range(1, 3);
                let lines = self.new_lines(rng, &order_id, n);
                json!({"id": id, "type": "order_upserted", "order": {
                    "id": order_id,
                    "order_date": format!("2026-11-{:02}T{:02}:00:00Z", rng.range(1, 22), rng.range(0, 23)),
                    "payment_date": null, "payment_status": "paid", "status": "in_process",
                    "rush": rng.chance(20), "picked": false, "ship_from": warehouse,
                    "lines": lines}})
            }
            52..=58 => {
                let i = self.any_order(rng);
                let mut order = self.orders[i].clone();
                let order_id = str_of(&order["id"]);
                let mut lines: Vec<Value> = order["lines"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|_| rng.chance(75))
                    .cloned()
                    .collect();
                for line in &mut lines {
                    if rng.chance(50) {
                        line["qty"] = json!(rng.range(1, 8));
                    }
                }
                let add = if lines.is_empty() { 1 } else { rng.range(0, 1) };
                lines.extend(self.new_lines(rng, &order_id, add));
                order["lines"] = Value::Array(lines);
                order["rush"] = json!(rng.chance(30));
                json!({"id": id, "type": "order_upserted", "order": order})
            }
            59..=68 => {
                let i = self.any_order(rng);
                let status = *rng.pick(&["in_process", "on_hold", "quote", "shipped", "cancelled"]);
                json!({"id": id, "type": "order_status_changed",
                       "order_id": self.orders[i]["id"], "status": status})
            }
            69..=75 => {
                let i = self.any_order(rng);
                let payment = *rng.pick(&["paid", "authorized", "partially_paid", "unpaid"]);
                let mut event = json!({"id": id, "type": "order_payment_changed",
                                       "order_id": self.orders[i]["id"], "payment_status": payment});
                if rng.chance(70) {
                    event["payment_date"] =
                        json!(format!("2026-11-{:02}T08:30:00Z", rng.range(1, 22)));
                }
                event
            }
            76..=81 => {
                let splittable: Vec<usize> = self
                    .free_orders()
                    .into_iter()
                    .filter(|&i| self.orders[i]["lines"].as_array().unwrap().len() >= 2)
                    .collect();
                let i = *rng.pick(&splittable);
                let lines = self.orders[i]["lines"].as_array().unwrap().clone();
                let mut moved: Vec<Value> = lines
                    .iter()
                    .filter(|_| rng.chance(50))
                    .map(|l| l["id"].clone())
                    .collect();
                if moved.is_empty() {
                    moved.push(lines[lines.len() - 1]["id"].clone());
                }
                if moved.len() == lines.len() {
                    moved.remove(0);
                }
                json!({"id": id, "type": "order_split", "order_id": self.orders[i]["id"],
                       "new_order_id": self.fresh("SPLIT"), "line_ids": moved})
            }
            82..=91 => {
                // Only lines of SKUs outside any replacement tie, so that
                // the model knows exactly which events overwrite it.
                let candidates: Vec<(String, i64)> = self
                    .free_orders()
                    .into_iter()
                    .flat_map(|i| self.orders[i]["lines"].as_array().unwrap().clone())
                    .filter(|l| !self.related.contains(l["sku"].as_str().unwrap()))
                    .map(|l| (str_of(&l["id"]), l["qty"].as_i64().unwrap()))
                    .collect();
                let (line_id, qty) = rng.pick(&candidates).clone();
                json!({"id": id, "type": "backorder_override", "line_id": line_id,
                       "backorder_qty": rng.range(0, qty)})
            }
            _ => {
                let skus: Vec<String> = (0..rng.range(1, 3)).map(|_| self.any_sku(rng)).collect();
                json!({"id": id, "type": "recalculate", "skus": skus})
            }
        }
    }
}

/// A batch of events and what the daemon should say of it.
#[derive(Default)]
pub(crate) struct Batch {
    pub(crate) events: Vec<Value>,
    pub(crate) accepted: Vec<String>,
    pub(crate) duplicates: Vec<String>,
}

impl Batch {
    pub(crate) fn push(&mut self, model: &mut Model, event: Value) {
        let id = str_of(&event["id"]);
        if model.apply(&event) {
            self.accepted.push(id);
        } else {
            self.duplicates.push(id);
        }
        self.events.push(event);
    }

    fn random(&mut self, model: &mut Model, rng: &mut Lcg, prefix: &str, n: usize) {
        for k in 0..n {
            let event = model.random_event(rng, format!("{prefix}-{k}"));
            self.push(model, event);
        }
    }

    /// Repeats an earlier event of this batch verbatim.
    fn repeat_own(&mut self, model: &mut Model, rng: &mut Lcg) {
        let again = rng.pick(&self.events).clone();
        self.push(model, again);
    }

    /// Sends the batch and checks the report.
    pub(crate) fn send(&self, db: &TempDatabase, args: &[&str]) {
        let run = send_events(db, &self.events, args);
        let report = run.ok_json();
        assert_eq!(
            report_ids(&report, "accepted"),
            self.accepted,
            "accepted ids"
        );
        assert_eq!(
            report_ids(&report, "duplicates"),
            self.duplicates,
            "duplicate ids"
        );
    }
}

pub(crate) fn compare_state(model: &Model, export: &Value) {
    assert_eq!(
        export["settings"].as_object().unwrap(),
        &model.settings,
        "settings"
    );
    let inventory = inventory_of(export);
    for (slot, want) in &model.inventory {
        assert_eq!(inventory.get(slot), Some(want), "on_hand of {slot:?}");
    }
    assert_eq!(inventory.len(), model.inventory.len(), "inventory rows");
    let purchase_orders: BTreeMap<String, Value> = export["purchase_orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|po| (str_of(&po["id"]), po.clone()))
        .collect();
    assert_eq!(purchase_orders, model.purchase_orders, "purchase orders");
    let orders: BTreeMap<String, Value> = export["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (str_of(&o["id"]), without_backorders(o)))
        .collect();
    assert_eq!(orders.len(), model.orders.len(), "order count");
    for want in &model.orders {
        let id = str_of(&want["id"]);
        assert_eq!(orders.get(&id), Some(want), "order {id}");
    }
}

pub(crate) fn export(db: &TempDatabase) -> Value {
    db.run(&["export"], None).ok_json()
}

pub(crate) fn import(db: &TempDatabase, book: &Value) {
    let run = db.run(&["import", "-"], Some(book.to_string().as_bytes()));
    assert_eq!(run.code, 0, "import: {}", run.stderr);
}

/// The stored backorder qty of every line of an export.
fn stored_backorders(export: &Value) -> BTreeMap<String, (String, i64, i64)> {
    let mut out = BTreeMap::new();
    for order in export["orders"].as_array().unwrap() {
        for line in order["lines"].as_array().unwrap() {
            out.insert(
                str_of(&line["id"]),
                (
                    str_of(&line["sku"]),
                    line["qty"].as_i64().unwrap(),
                    line["backorder_qty"].as_i64().unwrap(),
                ),
            );
        }
    }
    out
}

fn daemon_applies_every_event_once_and_matches_simulate(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &generate(3000, 60, 7));
    let initial = export(&db);

    // The reserved SKU: the least popular one outside any replacement tie.
    let mut popularity: BTreeMap<String, usize> = BTreeMap::new();
    for (_, (sku, _, _)) in stored_backorders(&initial) {
        *popularity.entry(sku).or_default() += 1;
    }
    let probe = Model::new(&initial, "");
    let reserved = popularity
        .iter()
        .filter(|(sku, _)| !probe.related.contains(*sku))
        .min_by_key(|(_, n)| **n)
        .map(|(sku, _)| sku.clone())
        .unwrap();
    let mut model = Model::new(&initial, &reserved);
    let mut rng = Lcg::new(2026);

    let daemon = Daemon::start(&db, &[]);

    // Phase 1: everything, settings changes included, with repeats.
    let mut first = Batch::default();
    first.random(&mut model, &mut rng, "a", 40);
    first.push(
        &mut model,
        json!({"id": "a-settings", "type": "settings_changed",
               "settings": {"prioritize_rush": true, "consider_replacement_sku": true, "include_on_hold": true}}),
    );
    first.random(&mut model, &mut rng, "b", 40);
    for _ in 0..5 {
        first.repeat_own(&mut model, &mut rng);
    }
    first.send(&db, &[]);

    let mut second = Batch::default();
    second.random(&mut model, &mut rng, "c", 40);
    for k in 0..5 {
        second.push(&mut model, first.events[k * 13].clone());
    }
    // A repeated id with other content is still a repeat: ignored.
    let reused = str_of(&first.events[3]["id"]);
    let sku0 = model.skus[0].clone();
    second.push(
        &mut model,
        json!({"id": reused, "type": "inventory_adjusted", "sku": sku0,
               "warehouse": "MAIN", "delta": 1000}),
    );
    second.push(
        &mut model,
        json!({"id": "c-settings", "type": "settings_changed",
               "settings": {"prioritize_fully_shippable": true, "use_payment_date": true,
                            "warehouse_based": true}}),
    );
    second.random(&mut model, &mut rng, "d", 40);
    second.push(
        &mut model,
        json!({"id": "d-all", "type": "recalculate", "all": true}),
    );
    second.random(&mut model, &mut rng, "e", 10);
    for _ in 0..3 {
        second.repeat_own(&mut model, &mut rng);
    }
    let file = db.scratch("second.jsonl");
    std::fs::write(&file, jsonl(&second.events)).unwrap();
    let run = db.run(&["event", file.to_str().unwrap()], None);
    let report = run.ok_json();
    assert_eq!(report["accepted"], json!(second.accepted));
    assert_eq!(report["duplicates"], json!(second.duplicates));

    // The first file again: all repeats.
    first.send_again_as_repeats(&db);

    wait_idle(&db, Duration::from_secs(60));

    // Phase 2: an override that stands (no later event touches its SKU),
    // overrides that later events overwrite, and more of everything.
    let now = stored_backorders(&export(&db));
    let (standing_line, (_, qty, stored)) = now
        .iter()
        .find(|(_, (sku, qty, _))| *sku == reserved && *qty > 0)
        .map(|(id, v)| (id.clone(), v.clone()))
        .unwrap();
    let standing_value = if stored == 0 { qty } else { 0 };
    let mut third = Batch::default();
    third.push(
        &mut model,
        json!({"id": "f-standing", "type": "backorder_override",
               "line_id": standing_line, "backorder_qty": standing_value}),
    );
    third.random(&mut model, &mut rng, "f", 80);
    for k in 0..4 {
        third.push(&mut model, second.events[k * 7].clone());
    }
    third.repeat_own(&mut model, &mut rng);
    third.send(&db, &[]);

    let mut fourth = Batch::default();
    fourth.random(&mut model, &mut rng, "g", 60);
    fourth.repeat_own(&mut model, &mut rng);
    // Overwrite the pending overrides except the standing one, half by a
    // stock change and half by asking for a recalculation.
    let pending: Vec<(String, String)> = model
        .pending_overrides
        .iter()
        .filter(|(line, _)| **line != standing_line)
        .map(|(line, (sku, _))| (line.clone(), sku.clone()))
        .collect();
    for (k, (_, sku)) in pending.iter().enumerate() {
        let event = if k % 2 == 0 {
            json!({"id": format!("h-{k}"), "type": "inventory_adjusted", "sku": sku,
                   "warehouse": "WEST", "delta": 1})
        } else {
            json!({"id": format!("h-{k}"), "type": "recalculate", "skus": [sku]})
        };
        fourth.push(&mut model, event);
    }
    assert_eq!(
        model.pending_overrides.keys().collect::<Vec<_>>(),
        [&standing_line],
        "only the standing override is left"
    );
    fourth.send(&db, &[]);
    third.send_again_as_repeats(&db);

    wait_idle(&db, Duration::from_secs(60));
    daemon.stop_with("TERM");

    // (a) Every event took effect exactly once.
    let last = export(&db);
    compare_state(&model, &last);

    // The standing override is still stored; its order's status follows
    // its stored lines.
    let standing_order = last["orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| {
            o["lines"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["id"] == standing_line.as_str())
        })
        .unwrap();
    assert_eq!(
        stored_backorders(&last)[&standing_line].2,
        standing_value,
        "the standing override"
    );
    let (_, orders) = stored_results(&db);
    let order_id = str_of(&standing_order["id"]);
    let lines: Vec<(i64, i64)> = standing_order["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["qty"].as_i64().unwrap(),
                l["backorder_qty"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(orders[&order_id].status, status_of(&lines));
    assert_eq!(
        orders[&order_id].backorder_qty,
        lines.iter().map(|l| l.1).sum::<i64>()
    );

    // (b) Everything else is what simulate computes on the exported state.
    let compared = assert_matches_simulate(&db, &last, &[standing_line], &[order_id]);
    assert!(compared > 2900, "{compared} lines compared");
}

impl Batch {
    /// Sends the batch again: every id is a repeat now.
    fn send_again_as_repeats(&self, db: &TempDatabase) {
        let repeat = Batch {
            events: self.events.clone(),
            accepted: Vec::new(),
            duplicates: self.events.iter().map(|e| str_of(&e["id"])).collect(),
        };
        repeat.send(db, &[]);
    }
}

/// allocation.md section 8, from `(qty, backorder_qty)` pairs.
fn status_of(lines: &[(i64, i64)]) -> String {
    let counted: Vec<&(i64, i64)> = lines.iter().filter(|l| l.0 != 0).collect();
    if counted.iter().all(|l| l.1 == 0) {
        "none"
    } else if counted.iter().all(|l| l.1 == l.0) {
        "full"
    } else {
        "partial"
    }
    .to_owned()
}

fn event_wait_returns_after_the_write_back(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &generate(400, 8, 11));
    let daemon = Daemon::start(&db, &[]);
    wait_idle(&db, Duration::from_secs(30));

    // A SKU with backordered lines: receiving plenty clears them all.
    let before = stored_backorders(&export(&db));
    let (sku, waiting): (String, Vec<String>) = {
        let (_, (sku, _, _)) = before
            .iter()
            .find(|(_, (_, _, backorder))| *backorder > 0)
            .expect("the book has backorders");
        let waiting = before
            .iter()
            .filter(|(_, (s, _, b))| s == sku && *b > 0)
            .map(|(id, _)| id.clone())
            .collect();
        (sku.clone(), waiting)
    };
    let event = json!({"id": "arrival", "type": "po_received", "sku": sku,
                       "warehouse": "MAIN", "qty": 100_000});
    let report = send_events(&db, &[event], &["--wait", "--timeout", "30"]).ok_json();
    assert_eq!(report["accepted"], json!(["arrival"]));

    let after = stored_backorders(&export(&db));
    for id in &waiting {
        assert_eq!(
            after[id].2, 0,
            "line {id} of {sku} is still backordered right after event --wait returned"
        );
    }
    daemon.stop_with("TERM");

    // Without a daemon, --wait gives up after its timeout: exit 1.
    let event = json!({"id": "arrival-2", "type": "inventory_adjusted", "sku": sku,
                       "warehouse": "MAIN", "delta": -100_000});
    let started = Instant::now();
    let run = send_events(&db, &[event], &["--wait", "--timeout", "1"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("serve"), "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(20));
}

fn a_killed_daemon_resumes_and_loses_nothing(backend: Backend) {
    let db = TempDatabase::of(backend);
    let book = generate(60_000, 600, 3);
    import(&db, &book);
    let total = dirty_skus(&status(&db));
    assert!(total >= 500, "{total} SKUs dirty after import");
    // Many small transactions, so that a kill lands between commits.
    let small_batches = [
        ("BACKORDERD__SERVICE__SKUS_PER_BATCH", "5"),
        ("BACKORDERD__SERVICE__BULK_FROM_SKUS", "1000000"),
    ];

    // A graceful stop in the middle of the full recalculation: exit 0,
    // the rest stays dirty.
    let daemon = Daemon::start(&db, &small_batches);
    let left = wait_until_partly_done(&db, total);
    let log = daemon.stop_with("TERM");
    let after_term = dirty_skus(&status(&db));
    assert!(
        after_term > 0 && after_term <= left,
        "{after_term} dirty after SIGTERM ({left} before); log:\n{log}"
    );

    // A crash in the middle of the rest.
    let daemon = Daemon::start(&db, &small_batches);
    let left = wait_until_partly_done(&db, after_term);
    daemon.kill();
    let after_kill = dirty_skus(&status(&db));
    assert!(
        after_kill > 0 && after_kill <= left,
        "{after_kill} dirty after SIGKILL"
    );

    // Events while no daemon runs, some of them twice.
    let before = export(&db);
    let mut model = Model::new(&before, "");
    let mut rng = Lcg::new(99);
    let mut batch = Batch::default();
    batch.random(&mut model, &mut rng, "offline", 60);
    for _ in 0..5 {
        batch.repeat_own(&mut model, &mut rng);
    }
    // Overrides of SKUs already recalculated would stand: have them overwritten.
    let skus: BTreeSet<String> = model
        .pending_overrides
        .values()
        .map(|(sku, _)| sku.clone())
        .collect();
    if !skus.is_empty() {
        batch.push(
            &mut model,
            json!({"id": "offline-overwrite", "type": "recalculate", "skus": skus}),
        );
    }
    assert!(model.pending_overrides.is_empty());
    batch.send(&db, &[]);
    batch.send_again_as_repeats(&db);

    // The next start picks up where the killed one stopped.
    let daemon = Daemon::start(&db, &[]);
    let idle = wait_idle(&db, Duration::from_secs(90));
    let log = daemon.stop_with("TERM");
    assert!(
        log.contains("resuming"),
        "the restart does not say it resumes; log:\n{log}"
    );
    assert_eq!(idle["queue"]["running"], 0);

    let last = export(&db);
    compare_state(&model, &last);
    let compared = assert_matches_simulate(&db, &last, &[], &[]);
    assert!(compared >= 60_000);
}

/// Polls until the dirty count has dropped below `from` but is not yet 0;
/// returns the last count seen.
fn wait_until_partly_done(db: &TempDatabase, from: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let dirty = dirty_skus(&status(db));
        assert!(
            dirty > 0,
            "the recalculation finished before the test could interrupt it: make the book bigger"
        );
        if dirty < from {
            return dirty;
        }
        assert!(
            Instant::now() < deadline,
            "no progress: still {dirty} dirty"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn refused_events_change_nothing(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &generate(200, 6, 5));
    let sku = "SKU-000001";
    let order_id = str_of(&export(&db)["orders"][0]["id"]);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "malformed",
            r#"{"id":"bad-1","type":"po_received","sku":"#.to_owned(),
            "event 2",
        ),
        (
            "unknown type",
            json!({"id": "bad-2", "type": "teleport", "sku": sku}).to_string(),
            "event 2 (id \"bad-2\")",
        ),
        (
            "unknown field",
            json!({"id": "bad-3", "type": "inventory_set", "sku": sku, "warehouse": "MAIN",
                   "on_hand": 4, "colour": "red"})
            .to_string(),
            "event 2 (id \"bad-3\")",
        ),
        (
            "negative qty",
            json!({"id": "bad-4", "type": "po_received", "sku": sku, "warehouse": "MAIN", "qty": -3})
                .to_string(),
            "event 2 (id \"bad-4\")",
        ),
        (
            "unknown order",
            json!({"id": "bad-5", "type": "order_status_changed", "order_id": "SO-NOPE",
                   "status": "shipped"})
            .to_string(),
            "event 2 (id \"bad-5\")",
        ),
        (
            "unknown line",
            json!({"id": "bad-6", "type": "backorder_override", "line_id": "SO-NOPE-1",
                   "backorder_qty": 1})
            .to_string(),
            "event 2 (id \"bad-6\")",
        ),
        (
            "unknown warehouse",
            json!({"id": "bad-7", "type": "po_received", "sku": sku, "warehouse": "MARS", "qty": 3})
                .to_string(),
            "event 2 (id \"bad-7\")",
        ),
    ];
    for (k, (what, bad, named)) in cases.into_iter().enumerate() {
        let good = json!({"id": format!("good-{k}"), "type": "po_received", "sku": sku,
                          "warehouse": "MAIN", "qty": 5});
        let good_status = json!({"id": format!("good-status-{k}"), "type": "order_status_changed",
                                 "order_id": order_id, "status": "cancelled"});
        let before = export(&db);
        let status_before = status(&db);
        let text = format!("{good}\n{bad}\n{good_status}\n");
        let run = db.run(&["event", "-"], Some(text.as_bytes()));
        assert_eq!(run.code, 2, "{what}: exit code; stderr: {}", run.stderr);
        assert!(run.stderr.contains(named), "{what}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{what}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{what}: {}", run.stdout);

        let mut after = export(&db);
        after["as_of"] = before["as_of"].clone();
        assert!(after == before, "{what}: the stored state changed");
        assert_eq!(status(&db), status_before, "{what}: the queue changed");

        // The good event's id was not recorded: alone, it is accepted.
        let report = send_events(&db, &[good], &[]).ok_json();
        assert_eq!(report["accepted"], json!([format!("good-{k}")]), "{what}");
        assert_eq!(report["duplicates"], json!([]), "{what}");
        let on_hand = |e: &Value| {
            e["inventory"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["sku"] == sku && r["warehouse"] == "MAIN")
                .map_or(0, |r| r["on_hand"].as_i64().unwrap())
        };
        assert_eq!(on_hand(&export(&db)), on_hand(&before) + 5, "{what}");
    }
}

#[test]
fn an_unreadable_database_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/backorderd.db");
    let garbage = dir.path().join("garbage.db");
    let bytes: Vec<u8> = (0..8192u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(&garbage, &bytes).unwrap();
    let event = json!({"id": "e1", "type": "recalculate", "all": true}).to_string();

    for (path, expected) in [
        (&missing, "unable to open database file"),
        (&garbage, "file is not a database"),
    ] {
        let url = format!("sqlite://{}", path.display());
        for args in [
            vec!["status"],
            vec!["export"],
            vec!["event", "-"],
            vec!["recalc", "--all"],
            vec!["serve"],
        ] {
            let mut all = vec!["--database-url", url.as_str()];
            all.extend_from_slice(&args);
            let run = crate::support::backorderd(&all, Some(event.as_bytes()), &[]);
            assert_eq!(
                run.code,
                1,
                "{args:?} on {}: {}",
                path.display(),
                run.stderr
            );
            assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
            assert!(
                run.stderr.contains("cannot open the database") && run.stderr.contains(expected),
                "{args:?} on {}: the message does not say what is wrong: {}",
                path.display(),
                run.stderr
            );
        }
    }
    assert!(!missing.exists());
    assert_eq!(
        std::fs::read(&garbage).unwrap(),
        bytes,
        "the garbage file was written to"
    );
}

#[test]
fn a_locked_database_fails_cleanly() {
    use sqlx::Connection;
    let db = TempDatabase::new();
    import(&db, &generate(50, 3, 1));
    let (lock_tx, lock_rx) = std::sync::mpsc::channel::<()>();
    let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
    let url = db.url.clone();
    let holder = std::thread::spawn(move || {
        crate::daemon_support::block_on(async move {
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::raw_sql("BEGIN EXCLUSIVE")
                .execute(&mut conn)
                .await
                .unwrap();
            held_tx.send(()).unwrap();
            let _ = tokio::task::spawn_blocking(move || lock_rx.recv()).await;
            sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
        })
    });
    held_rx.recv().unwrap();

    // Readers are not blocked (WAL).
    let reading = status(&db);
    assert_eq!(reading["queue"]["running"], 0);

    let started = Instant::now();
    let event = json!({"id": "locked-1", "type": "po_received", "sku": "SKU-000000",
                       "warehouse": "MAIN", "qty": 1});
    let run = send_events(&db, std::slice::from_ref(&event), &[]);
    let took = started.elapsed();
    lock_tx.send(()).unwrap();
    holder.join().unwrap();

    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert!(run.stderr.contains("locked"), "{}", run.stderr);
    assert!(took < Duration::from_secs(30), "took {took:?}");

    // Once the lock is gone, the same event is new: nothing was recorded.
    let report = send_events(&db, &[event], &[]).ok_json();
    assert_eq!(report["accepted"], json!(["locked-1"]));
}

fn serve_stops_on_sigint_and_status_names_the_contract_keys(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &generate(100, 5, 2));
    let daemon = Daemon::start(&db, &[("BACKORDERD__LOG__FORMAT", "json")]);
    let idle = wait_idle(&db, Duration::from_secs(30));
    for key in ["pending", "running", "failed"] {
        assert!(
            idle["queue"][key].is_i64(),
            "status lacks queue.{key}: {idle}"
        );
    }
    assert!(idle["dirty_skus"].is_i64(), "{idle}");
    let log = daemon.stop_with("INT");
    for line in log.lines() {
        let object: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(object["level"].is_string(), "{line}");
    }
    assert!(log.contains("backorderd is ready"));
}

/// A small book around SKU `A` (stock 10) and `B` (no stock, two POs),
/// dated relative to now so that `max_days_back: 30` freezes `OLD` only.
fn edge_book() -> Value {
    let ago = |days: i64| {
        (chrono::Utc::now() - chrono::Duration::days(days))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    json!({
        "settings": {"max_days_back": 30},
        "warehouses": [{"id": "MAIN", "kind": "normal"}],
        "inventory": [{"sku": "A", "warehouse": "MAIN", "on_hand": 10},
                      {"sku": "B", "warehouse": "MAIN", "on_hand": 0}],
        "purchase_orders": [
            {"id": "PO-B", "sku": "B", "warehouse": "MAIN", "qty_ordered": 5,
             "qty_received": 0, "expected_date": "2030-12-01"},
            {"id": "PO-B2", "sku": "B", "warehouse": "MAIN", "qty_ordered": 5,
             "qty_received": 0, "expected_date": "2030-12-20"}],
        "orders": [
            {"id": "OLD", "order_date": ago(400),
             "lines": [{"id": "OLD-1", "sku": "A", "qty": 10, "backorder_qty": 10}]},
            {"id": "NEW", "order_date": ago(1),
             "lines": [{"id": "NEW-1", "sku": "A", "qty": 10}]},
            {"id": "NB", "order_date": ago(1),
             "lines": [{"id": "NB-1", "sku": "B", "qty": 5}]}]
    })
}

/// events.md: after an event, "every SKU whose allocation it can change is
/// recalculated". A frozen line holds `qty - backorder_qty` units of its
/// pool (allocation.md section 3), so overriding its backorder qty changes
/// what the active lines of its SKU get, and the recalculation keeps the
/// override (frozen lines keep their stored value).
fn an_override_of_a_frozen_line_recalculates_its_sku(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &edge_book());
    let daemon = Daemon::start(&db, &[]);
    wait_idle(&db, Duration::from_secs(30));
    // OLD holds nothing (backordered 10 of 10): NEW gets all 10.
    assert_eq!(stored_backorders(&export(&db))["NEW-1"].2, 0);

    let event = json!({"id": "unfreeze-stock", "type": "backorder_override",
                       "line_id": "OLD-1", "backorder_qty": 0});
    send_events(&db, &[event], &["--wait", "--timeout", "30"]).ok_json();
    wait_idle(&db, Duration::from_secs(30));
    daemon.stop_with("TERM");

    // OLD now holds all 10 units: NEW is wholly backordered.
    let last = export(&db);
    assert_eq!(
        stored_backorders(&last)["OLD-1"].2,
        0,
        "the override stands"
    );
    assert_matches_simulate(&db, &last, &[], &[]);
}

/// A receipt booked against a purchase order changes that PO's open
/// supply, so the ETAs of the PO's SKU, even when the event's `sku` names
/// another SKU.
fn a_receipt_against_a_po_of_another_sku_recalculates_that_sku(backend: Backend) {
    let db = TempDatabase::of(backend);
    import(&db, &edge_book());
    let daemon = Daemon::start(&db, &[]);
    wait_idle(&db, Duration::from_secs(30));
    let (lines, _) = stored_results(&db);
    assert_eq!(lines["NB-1"].eta.as_deref(), Some("2030-12-01"));

    let event = json!({"id": "receipt", "type": "po_received", "sku": "A",
                       "warehouse": "MAIN", "qty": 5, "po_id": "PO-B"});
    send_events(&db, &[event], &["--wait", "--timeout", "30"]).ok_json();
    wait_idle(&db, Duration::from_secs(30));
    daemon.stop_with("TERM");

    // PO-B is received in full: NB-1 now waits for PO-B2.
    let last = export(&db);
    assert_eq!(last["purchase_orders"][0]["qty_received"], 5);
    assert_matches_simulate(&db, &last, &[], &[]);
}

on_both_backends!(
    daemon_applies_every_event_once_and_matches_simulate,
    event_wait_returns_after_the_write_back,
    a_killed_daemon_resumes_and_loses_nothing,
    refused_events_change_nothing,
    serve_stops_on_sigint_and_status_names_the_contract_keys,
    an_override_of_a_frozen_line_recalculates_its_sku,
    a_receipt_against_a_po_of_another_sku_recalculates_that_sku,
);
