use super::*;
use BackorderStatus::{Full, None as NotBackordered, Partial};

fn line(id: &str, qty: i64, backorder: i64, eta: Option<&str>) -> LineState {
    LineState {
        line_id: id.to_owned(),
        sku: format!("SKU-{id}"),
        qty,
        backorder_qty: backorder,
        eta: eta.map(|d| d.parse().unwrap()),
    }
}

fn order(status: BackorderStatus, lines: Vec<LineState>) -> OrderState {
    OrderState {
        status,
        backorder_qty: lines.iter().map(|l| l.backorder_qty).sum(),
        customer: Some(Customer {
            email: Some("ada@example.com".into()),
            name: Some("Ada".into()),
        }),
        closed: false,
        lines,
    }
}

fn data(draft: &Draft) -> &OrderData {
    match &draft.data {
        Data::Order(data) => data,
        other => panic!("not an order body: {other:?}"),
    }
}

fn kind(before: Option<&OrderState>, after: &OrderState) -> Option<MessageType> {
    order_message("SO-1", before, after).map(|d| d.kind)
}

#[test]
fn from_none_to_partial_or_full_is_backordered() {
    let before = order(
        NotBackordered,
        vec![line("1", 4, 0, None), line("2", 1, 0, None)],
    );
    let partial = order(
        Partial,
        vec![line("1", 4, 3, Some("2026-12-10")), line("2", 1, 0, None)],
    );
    let full = order(Full, vec![line("1", 4, 4, None), line("2", 1, 1, None)]);
    assert_eq!(
        kind(Some(&before), &partial),
        Some(MessageType::OrderBackordered)
    );
    assert_eq!(
        kind(Some(&before), &full),
        Some(MessageType::OrderBackordered)
    );

    let draft = order_message("SO-1", Some(&before), &partial).unwrap();
    assert_eq!(draft.key, "order:SO-1");
    let body = data(&draft);
    assert_eq!(
        (body.previous_status, body.status),
        (NotBackordered, Partial)
    );
    assert_eq!((body.previous_backorder_qty, body.backorder_qty), (0, 3));
    assert!(!body.closed);
    let first = &body.lines[0];
    assert_eq!((first.previous_backorder_qty, first.backorder_qty), (0, 3));
    assert_eq!(first.previous_eta, None);
    assert_eq!(first.eta, Some("2026-12-10".parse().unwrap()));
    assert_eq!(
        body.lines.len(),
        2,
        "every line of the order, changed or not"
    );
}

#[test]
fn an_order_created_backordered_starts_from_none_and_zero() {
    let mut after = order(Full, vec![line("1", 2, 2, Some("2026-12-24"))]);
    after.backorder_qty = 2;
    let draft = order_message("SO-9", None, &after).unwrap();
    assert_eq!(draft.kind, MessageType::OrderBackordered);
    let body = data(&draft);
    assert_eq!(body.previous_status, NotBackordered);
    assert_eq!(body.previous_backorder_qty, 0);
    assert_eq!(body.lines[0].previous_backorder_qty, 0);
    assert_eq!(body.lines[0].previous_eta, None);
    // Created without a backorder: nothing to say.
    assert_eq!(
        kind(None, &order(NotBackordered, vec![line("1", 2, 0, None)])),
        None
    );
}

#[test]
fn from_partial_or_full_to_none_is_cleared_and_closed_only_when_shipped_or_cancelled() {
    let partial = order(Partial, vec![line("1", 4, 3, Some("2026-12-10"))]);
    let full = order(Full, vec![line("1", 4, 4, None)]);
    let back_in_stock = order(NotBackordered, vec![line("1", 4, 0, None)]);
    for before in [&partial, &full] {
        let draft = order_message("SO-1", Some(before), &back_in_stock).unwrap();
        assert_eq!(draft.kind, MessageType::OrderBackorderCleared);
        assert!(!data(&draft).closed, "back in stock is not closed");
    }
    let mut shipped = back_in_stock.clone();
    shipped.closed = true;
    let draft = order_message("SO-1", Some(&full), &shipped).unwrap();
    assert_eq!(draft.kind, MessageType::OrderBackorderCleared);
    let body = data(&draft);
    assert!(body.closed);
    assert_eq!((body.previous_backorder_qty, body.backorder_qty), (4, 0));
}

#[test]
fn staying_backordered_with_a_change_of_status_qty_eta_or_lines_is_changed() {
    let before = order(
        Partial,
        vec![line("1", 4, 2, Some("2026-12-10")), line("2", 3, 0, None)],
    );
    let status = order(
        Full,
        vec![line("1", 4, 4, Some("2026-12-10")), line("2", 3, 3, None)],
    );
    let qty = order(
        Partial,
        vec![line("1", 4, 1, Some("2026-12-10")), line("2", 3, 0, None)],
    );
    let eta = order(
        Partial,
        vec![line("1", 4, 2, Some("2026-12-20")), line("2", 3, 0, None)],
    );
    let split = order(Partial, vec![line("1", 4, 2, Some("2026-12-10"))]);
    for after in [&status, &qty, &eta, &split] {
        assert_eq!(
            kind(Some(&before), after),
            Some(MessageType::OrderBackorderChanged),
            "{after:?}"
        );
    }
    let body = data(&order_message("SO-1", Some(&before), &eta).unwrap()).clone();
    assert_eq!(
        body.lines[0].previous_eta,
        Some("2026-12-10".parse().unwrap())
    );
    assert_eq!(body.lines[0].eta, Some("2026-12-20".parse().unwrap()));
    // The line that left is absent from the order's next message.
    let body = data(&order_message("SO-1", Some(&before), &split).unwrap()).clone();
    assert_eq!(
        body.lines
            .iter()
            .map(|l| l.line_id.as_str())
            .collect::<Vec<_>>(),
        ["1"]
    );
    // A line that joined with nothing backordered changes the set too.
    let mut joined = before.clone();
    joined.lines.push(line("3", 1, 0, None));
    assert_eq!(
        kind(Some(&before), &joined),
        Some(MessageType::OrderBackorderChanged)
    );
}

#[test]
fn nothing_is_emitted_when_the_stored_status_and_line_values_did_not_change() {
    let partial = order(Partial, vec![line("1", 4, 2, Some("2026-12-10"))]);
    assert_eq!(kind(Some(&partial), &partial.clone()), None);
    // Not backordered before or after, whatever else moved.
    let before = order(NotBackordered, vec![line("1", 4, 0, None)]);
    let after = order(
        NotBackordered,
        vec![line("1", 9, 0, None), line("2", 1, 0, None)],
    );
    assert_eq!(kind(Some(&before), &after), None);
    // A customer's new name alone is no backorder change.
    let mut renamed = partial.clone();
    renamed.customer = None;
    assert_eq!(kind(Some(&partial), &renamed), None);
}

#[test]
fn a_message_is_the_contracts_json_and_reads_back() {
    let before = order(NotBackordered, vec![line("1", 4, 0, None)]);
    let after = order(Partial, vec![line("1", 4, 3, Some("2026-12-10"))]);
    let at: DateTime<Utc> = "2026-12-02T05:00:00.123456Z".parse().unwrap();
    let message = order_message("SO-1", Some(&before), &after)
        .unwrap()
        .into_message(new_message_id(at), 7, at, vec!["e1".into()]);
    let json = serde_json::to_value(&message).unwrap();
    assert_eq!(json["type"], "order.backordered");
    assert_eq!(json["created_at"], "2026-12-02T05:00:00.123456Z");
    assert_eq!(json["key"], "order:SO-1");
    assert_eq!(json["seq"], 7);
    assert_eq!(json["causes"], serde_json::json!(["e1"]));
    assert_eq!(json["data"]["status"], "partial");
    assert_eq!(json["data"]["previous_status"], "none");
    assert_eq!(
        json["data"]["customer"],
        serde_json::json!({"email": "ada@example.com", "name": "Ada"})
    );
    assert_eq!(json["data"]["lines"][0]["eta"], "2026-12-10");
    assert_eq!(
        json["data"]["lines"][0]["previous_eta"],
        serde_json::Value::Null
    );
    assert_eq!(json["data"]["closed"], false);
    let id = json["id"].as_str().unwrap();
    assert!(id.starts_with("msg_") && id.len() == 36, "{id}");
    let back: Message = serde_json::from_value(json).unwrap();
    assert_eq!(back, message);

    let mut no_customer = after.clone();
    no_customer.customer = None;
    let draft = order_message("SO-1", Some(&before), &no_customer).unwrap();
    assert_eq!(
        serde_json::to_value(&draft.data).unwrap()["customer"],
        serde_json::Value::Null
    );
}

#[test]
fn types_read_by_name_and_an_unknown_one_is_named() {
    for kind in MessageType::ALL {
        assert_eq!(kind.as_str().parse::<MessageType>().unwrap(), kind);
    }
    let err = "order.shipped"
        .parse::<MessageType>()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"order.shipped\"") && err.contains("order.backordered"),
        "{err}"
    );
}

#[test]
fn ids_differ_and_sort_by_time() {
    let early: DateTime<Utc> = "2026-12-02T05:00:00Z".parse().unwrap();
    let late = early + chrono::Duration::milliseconds(1);
    let (a, b) = (new_message_id(early), new_message_id(early));
    assert_ne!(a, b);
    assert!(new_message_id(late) > a.max(b));
}
