//! `simulate`: the contract's examples, every bad-input rule of
//! allocation.md section 9, and the command line around them.

use serde_json::{Value, json};
use std::path::Path;

use crate::support::{Run, backorderd, examples, read_json};

fn simulate_file(path: &Path) -> Run {
    backorderd(&["simulate", path.to_str().unwrap()], None, &[])
}

fn simulate_stdin(snapshot: &[u8]) -> Run {
    backorderd(&["simulate", "-"], Some(snapshot), &[])
}

/// `(order_id, line_id)` of every line, then every order id, in the snapshot's order.
fn snapshot_order(snapshot: &Value) -> (Vec<(String, String)>, Vec<String>) {
    let mut lines = Vec::new();
    let mut orders = Vec::new();
    for order in snapshot["orders"].as_array().unwrap() {
        let id = order["id"].as_str().unwrap().to_owned();
        for line in order["lines"].as_array().unwrap() {
            lines.push((id.clone(), line["id"].as_str().unwrap().to_owned()));
        }
        orders.push(id);
    }
    (lines, orders)
}

/// Every field of every expected record equals the actual one with the same
/// id (the result may carry more fields than the contract's examples show).
fn assert_records(name: &str, what: &str, id_key: &str, actual: &Value, expected: &Value) {
    let actual = actual[what].as_array().unwrap();
    for want in expected[what].as_array().unwrap() {
        let id = &want[id_key];
        let got = actual
            .iter()
            .find(|r| &r[id_key] == id)
            .unwrap_or_else(|| panic!("{name}: no {what} record with {id_key} {id}"));
        for (key, value) in want.as_object().unwrap() {
            assert_eq!(&got[key], value, "{name}: {what} {id}: {key}");
        }
    }
}

fn assert_matches_example(name: &str, input: &Value, expected: &Value, actual: &Value) {
    assert_records(name, "lines", "line_id", actual, expected);
    assert_records(name, "orders", "order_id", actual, expected);
    let (lines, orders) = snapshot_order(input);
    let got_lines: Vec<(String, String)> = actual["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let text = |k: &str| l[k].as_str().unwrap().to_owned();
            (text("order_id"), text("line_id"))
        })
        .collect();
    assert_eq!(got_lines, lines, "{name}: lines in the snapshot's order");
    let got_orders: Vec<String> = actual["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got_orders, orders, "{name}: orders in the snapshot's order");
}

#[test]
fn every_example_gives_the_expected_result() {
    for (input, expected) in examples() {
        let name = input.file_name().unwrap().to_string_lossy().into_owned();
        let run = simulate_file(&input);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        assert_matches_example(
            &name,
            &read_json(&input),
            &read_json(&expected),
            &run.json(),
        );
    }
}

#[test]
fn standard_input_and_pretty_give_the_same_result_as_a_file() {
    for (input, expected) in examples() {
        let name = input.file_name().unwrap().to_string_lossy().into_owned();
        let from_file = simulate_file(&input).ok_json();
        let from_stdin = simulate_stdin(&std::fs::read(&input).unwrap()).ok_json();
        assert_eq!(from_stdin, from_file, "{name}: stdin");
        assert_matches_example(
            &name,
            &read_json(&input),
            &read_json(&expected),
            &from_stdin,
        );
        let pretty = backorderd(
            &["simulate", "--pretty", input.to_str().unwrap()],
            None,
            &[],
        );
        assert_eq!(pretty.ok_json(), from_file, "{name}: --pretty");
    }
}

/// A small valid snapshot touching every kind of record.
fn valid() -> Value {
    json!({
        "as_of": "2026-11-22T12:00:00Z",
        "warehouses": [{ "id": "MAIN", "kind": "normal" }, { "id": "DROP", "kind": "dropship" }],
        "products": [{ "sku": "TEE", "replacement_sku": "TEE-V2" }, { "sku": "TEE-V2" }],
        "inventory": [{ "sku": "TEE", "warehouse": "MAIN", "on_hand": 5 }],
        "purchase_orders": [{ "id": "PO-1", "sku": "TEE", "warehouse": "MAIN",
            "qty_ordered": 20, "qty_received": 0, "expected_date": "2026-12-01" }],
        "orders": [
            { "id": "SO-1", "order_date": "2026-11-01T10:00:00Z", "ship_from": "MAIN",
              "payment_date": "2026-11-01T11:00:00Z",
              "lines": [{ "id": "SO-1-1", "sku": "TEE", "qty": 4, "backorder_qty": 0 }] },
            { "id": "SO-2", "order_date": "2026-11-02T10:00:00Z",
              "lines": [{ "id": "SO-2-1", "sku": "TEE", "qty": 3 }] }
        ]
    })
}

#[test]
fn the_base_snapshot_of_the_refusal_table_is_accepted() {
    let result = simulate_stdin(valid().to_string().as_bytes()).ok_json();
    assert_eq!(result["lines"][0]["backorder_qty"], 0);
    assert_eq!(result["lines"][1]["backorder_qty"], 2);
    assert_eq!(result["lines"][1]["eta"], "2026-12-01");
}

#[test]
fn negative_on_hand_is_accepted_and_counts_in_the_sum() {
    let mut snapshot = valid();
    snapshot["inventory"] = json!([
        { "sku": "TEE", "warehouse": "MAIN", "on_hand": -2 },
        { "sku": "TEE", "warehouse": "MAIN", "on_hand": 7 },
    ]);
    let result = simulate_stdin(snapshot.to_string().as_bytes()).ok_json();
    // 5 units: SO-1 takes 4, SO-2 gets 1 of 3.
    assert_eq!(result["lines"][0]["backorder_qty"], 0);
    assert_eq!(result["lines"][1]["backorder_qty"], 2);

    snapshot["inventory"] = json!([{ "sku": "TEE", "warehouse": "MAIN", "on_hand": -5 }]);
    let result = simulate_stdin(snapshot.to_string().as_bytes()).ok_json();
    // A negative pool is floored at 0: everything is backordered.
    assert_eq!(result["orders"][0]["status"], "full");
    assert_eq!(result["orders"][1]["status"], "full");
}

type Mutation = fn(&mut Value);

fn push(v: &mut Value, table: &str, record: Value) {
    v[table].as_array_mut().unwrap().push(record);
}

/// (case, how the valid snapshot is broken, what the refusal must say).
const REFUSALS: &[(&str, Mutation, &[&str])] = &[
    (
        "repeated order id",
        |v| v["orders"][1]["id"] = json!("SO-1"),
        &["order \"SO-1\"", "id repeats"],
    ),
    (
        "repeated line id across orders",
        |v| v["orders"][1]["lines"][0]["id"] = json!("SO-1-1"),
        &["line \"SO-1-1\" of order \"SO-2\"", "id repeats", "SO-1"],
    ),
    (
        "repeated warehouse id",
        |v| push(v, "warehouses", json!({ "id": "MAIN", "kind": "fba" })),
        &["warehouse \"MAIN\"", "id repeats"],
    ),
    (
        "repeated product sku",
        |v| push(v, "products", json!({ "sku": "TEE-V2" })),
        &["product \"TEE-V2\"", "id repeats"],
    ),
    (
        "repeated purchase order id",
        |v| {
            let mut po = v["purchase_orders"][0].clone();
            po["sku"] = json!("TEE-V2");
            push(v, "purchase_orders", po);
        },
        &["purchase order \"PO-1\"", "id repeats"],
    ),
    (
        "empty order id",
        |v| v["orders"][0]["id"] = json!(""),
        &["order \"\"", "id must be a non-empty string"],
    ),
    (
        "negative line qty",
        |v| v["orders"][1]["lines"][0]["qty"] = json!(-3),
        &[
            "line \"SO-2-1\" of order \"SO-2\"",
            "qty must not be negative (got -3)",
        ],
    ),
    (
        "negative stored backorder qty",
        |v| v["orders"][0]["lines"][0]["backorder_qty"] = json!(-1),
        &[
            "line \"SO-1-1\" of order \"SO-1\"",
            "backorder_qty must not be negative",
        ],
    ),
    (
        "negative qty_ordered",
        |v| v["purchase_orders"][0]["qty_ordered"] = json!(-20),
        &[
            "purchase order \"PO-1\"",
            "qty_ordered must not be negative",
        ],
    ),
    (
        "negative qty_received",
        |v| v["purchase_orders"][0]["qty_received"] = json!(-1),
        &[
            "purchase order \"PO-1\"",
            "qty_received must not be negative",
        ],
    ),
    (
        "inventory row in an unknown warehouse",
        |v| v["inventory"][0]["warehouse"] = json!("NOWHERE"),
        &[
            "inventory row (sku \"TEE\"",
            "unknown warehouse \"NOWHERE\"",
        ],
    ),
    (
        "purchase order for an unknown warehouse",
        |v| v["purchase_orders"][0]["warehouse"] = json!("NOWHERE"),
        &["purchase order \"PO-1\"", "unknown warehouse \"NOWHERE\""],
    ),
    (
        "ship_from an unknown warehouse",
        |v| v["orders"][0]["ship_from"] = json!("NOWHERE"),
        &[
            "order \"SO-1\"",
            "ship_from",
            "unknown warehouse \"NOWHERE\"",
        ],
    ),
    (
        "product replacing itself",
        |v| v["products"][0]["replacement_sku"] = json!("TEE"),
        &[
            "product \"TEE\"",
            "replacement_sku names the product itself",
        ],
    ),
    (
        "unknown order status",
        |v| v["orders"][1]["status"] = json!("paused"),
        &["(id \"SO-2\").status", "unknown variant `paused`"],
    ),
    (
        "unknown payment status",
        |v| v["orders"][0]["payment_status"] = json!("refunded"),
        &["(id \"SO-1\").payment_status", "unknown variant `refunded`"],
    ),
    (
        "unknown warehouse kind",
        |v| v["warehouses"][1]["kind"] = json!("virtual"),
        &["(id \"DROP\").kind", "unknown variant `virtual`"],
    ),
    (
        "unparseable order_date",
        |v| v["orders"][1]["order_date"] = json!("2026-11-02"),
        &[
            "(id \"SO-2\").order_date",
            "\"2026-11-02\" is not an RFC 3339 timestamp",
        ],
    ),
    (
        "unparseable payment_date",
        |v| v["orders"][0]["payment_date"] = json!("yesterday"),
        &[
            "(id \"SO-1\").payment_date",
            "\"yesterday\" is not an RFC 3339 timestamp",
        ],
    ),
    (
        "unparseable purchase order expected_date",
        |v| v["purchase_orders"][0]["expected_date"] = json!("2026-13-01"),
        &[
            "(id \"PO-1\").expected_date",
            "\"2026-13-01\" is not a YYYY-MM-DD date",
        ],
    ),
    (
        "unparseable as_of",
        |v| v["as_of"] = json!("noon"),
        &["as_of", "\"noon\" is not an RFC 3339 timestamp"],
    ),
    (
        "unknown field in a line",
        |v| v["orders"][0]["lines"][0]["colour"] = json!("red"),
        &["(id \"SO-1-1\")", "unknown field `colour`"],
    ),
    (
        "unknown setting",
        |v| v["settings"] = json!({ "prioritise_rush": true }),
        &["settings", "unknown field `prioritise_rush`"],
    ),
    (
        "fractional quantity",
        |v| v["orders"][1]["lines"][0]["qty"] = json!(2.5),
        &["(id \"SO-2-1\").qty", "invalid type"],
    ),
    (
        "missing line sku",
        |v| {
            v["orders"][1]["lines"][0]
                .as_object_mut()
                .unwrap()
                .remove("sku");
        },
        &["(id \"SO-2-1\")", "missing field `sku`"],
    ),
];

fn assert_refused(case: &str, run: &Run, needles: &[&str]) {
    assert_eq!(run.code, 2, "{case}: exit code; stderr: {}", run.stderr);
    assert_eq!(run.stdout, "", "{case}: nothing may be written");
    for needle in needles {
        assert!(
            run.stderr.contains(needle),
            "{case}: stderr lacks {needle:?}: {}",
            run.stderr
        );
    }
}

#[test]
fn every_bad_input_rule_refuses_the_snapshot_naming_record_and_rule() {
    for (case, mutate, needles) in REFUSALS {
        let mut snapshot = valid();
        mutate(&mut snapshot);
        let run = simulate_stdin(snapshot.to_string().as_bytes());
        assert_refused(case, &run, needles);
    }
}

#[test]
fn a_refusal_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.json");
    let mut snapshot = valid();
    snapshot["orders"][1]["id"] = json!("SO-1");
    std::fs::write(&path, snapshot.to_string()).unwrap();
    let run = simulate_file(&path);
    assert_refused("file", &run, &[path.to_str().unwrap(), "order \"SO-1\""]);
}

#[test]
fn invalid_json_is_refused() {
    let mut text = valid().to_string();
    text.truncate(text.len() / 2);
    for (case, bytes) in [
        ("truncated", text.as_bytes()),
        ("not JSON", b"orders: []".as_slice()),
    ] {
        let run = simulate_stdin(bytes);
        assert_refused(case, &run, &["not valid JSON", "line 1 column"]);
    }
}

#[test]
fn a_missing_file_is_a_failure_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-snapshot.json");
    let run = simulate_file(&path);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains(path.to_str().unwrap()),
        "{}",
        run.stderr
    );
}

/// Help text with its line wrapping undone.
fn help(args: &[&str]) -> String {
    let run = backorderd(args, None, &[]);
    assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
    run.stdout.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn help_describes_simulate_and_the_exit_codes() {
    let top = help(&["--help"]);
    for needle in [
        "simulate Print the allocation result of a snapshot",
        "Exit codes: 0 success; 2 input refused",
        "1 any other failure",
    ] {
        assert!(top.contains(needle), "--help lacks {needle:?}: {top}");
    }
    let sub = help(&["simulate", "--help"]);
    for needle in [
        "Usage: backorderd simulate",
        "<FILE>",
        "`-` reads standard input",
        "--pretty",
    ] {
        assert!(
            sub.contains(needle),
            "simulate --help lacks {needle:?}: {sub}"
        );
    }
}

#[test]
fn help_describes_every_command_with_its_own_text() {
    let run = backorderd(&["--help"], None, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let commands: Vec<&str> = run
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .collect();
    assert!(commands.len() > 10, "{}", run.stdout);
    for line in commands {
        let mut words = line.split_whitespace();
        let name = words.next().unwrap();
        assert!(
            words.next().is_some(),
            "`{name}` has no description: {line:?}"
        );
    }
    let top = help(&["--help"]);
    for needle in [
        "availability Prints the availability feed",
        "check-config Check the configuration",
    ] {
        assert!(top.contains(needle), "--help lacks {needle:?}: {top}");
    }
}
