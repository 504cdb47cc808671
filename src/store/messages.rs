//! Change messages stored in the transaction of the change that causes them
//! (docs/delivery.md): which orders a write changed, what each looked like
//! before and after, the message [`order_message`] makes of that, and its
//! place in the log (a per-key `seq`, a position in commit order).
//!
//! Written once for both databases: a backend supplies only the statements
//! of [`MessageLog`] (read orders whole, count `seq`s, insert rows).

use std::future::Future;

use chrono::{DateTime, Utc};
use rustc_hash::{FxHashMap, FxHashSet};

use super::StoreError;
use super::codec::{self, Record};
use crate::delivery::message::{
    Customer, Draft, LineState, Message, OrderState, new_message_id, order_message,
};
use crate::engine::snapshot::OrderStatus;
use crate::recalc::{LineChange, OrderChange};

/// The cause of a plain `import`'s recalculation (without `--notify`): its
/// write-back emits no message (a bulk load must not mail every customer).
/// Its history rows say `import` (see [`history_cause`]).
pub const QUIET_IMPORT_CAUSE: &str = "import (no notify)";

/// The cause of an `import --notify`'s recalculation.
pub const IMPORT_CAUSE: &str = "import";

/// The cause a history row names: a quiet import's is `import` too.
pub fn history_cause(cause: &str) -> &str {
    if cause == QUIET_IMPORT_CAUSE {
        IMPORT_CAUSE
    } else {
        cause
    }
}

/// The cause an import marks its recalculation with.
pub fn import_cause(notify: bool) -> &'static str {
    if notify {
        IMPORT_CAUSE
    } else {
        QUIET_IMPORT_CAUSE
    }
}

/// A message decided but not yet numbered: numbering waits for the end of
/// the transaction (see [`append`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PendingMessage {
    pub draft: Draft,
    pub causes: Vec<String>,
}

/// An order header as a backend reads it for a message.
#[derive(Debug, Clone)]
pub(in crate::store) struct HeaderRow {
    pub id: String,
    pub backorder_status: String,
    pub backorder_qty: i64,
    pub status: String,
    pub customer_email: Option<String>,
    pub customer_name: Option<String>,
}

/// A line as a backend reads it for a message: by order, in position order.
#[derive(Debug, Clone)]
pub(in crate::store) struct LineRow {
    pub order_id: String,
    pub line_id: String,
    pub sku: String,
    pub qty: i64,
    pub backorder_qty: i64,
    pub eta: Option<String>,
}

/// One message row as stored.
#[derive(Debug, Clone)]
pub(in crate::store) struct MessageRow {
    pub id: String,
    pub kind: &'static str,
    pub key: String,
    pub seq: i64,
    pub created_at: DateTime<Utc>,
    pub body: String,
}

/// The statements a database supplies, each run in the caller's transaction.
pub(in crate::store) trait MessageLog: Send {
    /// The headers of the stored orders among `ids` and all their lines
    /// (grouped by order, in position order).
    fn order_rows(
        &mut self,
        ids: &[String],
    ) -> impl Future<Output = Result<(Vec<HeaderRow>, Vec<LineRow>), StoreError>> + Send;
    /// Takes what makes positions follow commit order (PostgreSQL: the
    /// message log's transaction-level advisory lock; SQLite: nothing, its
    /// single writer gives it). Called last in a transaction, just before
    /// [`MessageLog::next_seqs`].
    fn lock_log(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Adds `count` to each key's last `seq` (from 0 for a new key): the
    /// new last `seq`, aligned with `keys` (each key once).
    fn next_seqs(
        &mut self,
        keys: &[(String, i64)],
    ) -> impl Future<Output = Result<Vec<i64>, StoreError>> + Send;
    /// Inserts the rows in order (their positions follow).
    fn insert_messages(
        &mut self,
        rows: &[MessageRow],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The stored state of the orders among `ids`, by id.
pub(in crate::store) async fn order_states<B: MessageLog>(
    db: &mut B,
    ids: &[String],
) -> Result<FxHashMap<String, OrderState>, StoreError> {
    if ids.is_empty() {
        return Ok(FxHashMap::default());
    }
    let (headers, lines) = db.order_rows(ids).await?;
    let mut states: FxHashMap<String, OrderState> = FxHashMap::default();
    for h in headers {
        let record: Record = &|| format!("order {:?}", h.id);
        let status = codec::order_status(&h.status, record)?;
        let customer =
            (h.customer_email.is_some() || h.customer_name.is_some()).then(|| Customer {
                email: h.customer_email.clone(),
                name: h.customer_name.clone(),
            });
        let state = OrderState {
            status: codec::backorder_status(&h.backorder_status, record)?,
            backorder_qty: h.backorder_qty,
            customer,
            closed: matches!(status, OrderStatus::Shipped | OrderStatus::Cancelled),
            lines: Vec::new(),
        };
        states.insert(h.id, state);
    }
    for l in lines {
        let Some(state) = states.get_mut(&l.order_id) else {
            continue;
        };
        let record: Record = &|| format!("line {:?}", l.line_id);
        state.lines.push(LineState {
            eta: codec::optional_date(l.eta.as_deref(), record)?,
            line_id: l.line_id,
            sku: l.sku,
            qty: l.qty,
            backorder_qty: l.backorder_qty,
        });
    }
    Ok(states)
}

/// The messages of a recalculation's write-back, read after it wrote:
/// `lines` and `orders` are what it wrote (old and new values), so each
/// order's state before is its state now with those changes undone.
pub(in crate::store) async fn for_write_back<B: MessageLog>(
    db: &mut B,
    lines: &[LineChange],
    orders: &[OrderChange],
) -> Result<Vec<PendingMessage>, StoreError> {
    let ids = touched_orders(lines, orders);
    let after = order_states(db, &ids).await?;
    Ok(write_back_messages(&ids, lines, orders, &after))
}

/// The ids of the orders a write-back touched, each once, in first-seen order.
fn touched_orders(lines: &[LineChange], orders: &[OrderChange]) -> Vec<String> {
    let mut seen = FxHashSet::default();
    lines
        .iter()
        .map(|l| l.order_id.as_str())
        .chain(orders.iter().map(|o| o.order_id.as_str()))
        .filter(|id| seen.insert(*id))
        .map(str::to_owned)
        .collect()
}

/// [`for_write_back`] without IO: `after` is each order's stored state.
fn write_back_messages(
    ids: &[String],
    lines: &[LineChange],
    orders: &[OrderChange],
    after: &FxHashMap<String, OrderState>,
) -> Vec<PendingMessage> {
    let mut line_changes: FxHashMap<&str, Vec<&LineChange>> = FxHashMap::default();
    for l in lines {
        line_changes.entry(l.order_id.as_str()).or_default().push(l);
    }
    let order_changes: FxHashMap<&str, &OrderChange> =
        orders.iter().map(|o| (o.order_id.as_str(), o)).collect();
    let mut out = Vec::new();
    for id in ids {
        let Some(now) = after.get(id) else {
            continue;
        };
        let mut before = now.clone();
        let mut causes: Vec<String> = Vec::new();
        let changed = line_changes.get(id.as_str()).map_or(&[][..], Vec::as_slice);
        for change in changed {
            if let Some(line) = before
                .lines
                .iter_mut()
                .find(|l| l.line_id == change.line_id)
            {
                line.backorder_qty = change.old_backorder_qty;
                line.eta = change.old_eta;
            }
            push_cause(&mut causes, &change.cause);
        }
        if let Some(change) = order_changes.get(id.as_str()) {
            before.status = change.old_status;
            before.backorder_qty = change.old_backorder_qty;
            push_cause(&mut causes, &change.cause);
        }
        if causes.iter().all(|c| c == QUIET_IMPORT_CAUSE) {
            continue;
        }
        causes.retain(|c| c != QUIET_IMPORT_CAUSE);
        if let Some(draft) = order_message(id, Some(&before), now) {
            out.push(PendingMessage { draft, causes });
        }
    }
    out
}

fn push_cause(causes: &mut Vec<String>, cause: &str) {
    let cause = match cause {
        // A SKU recalculated only because it shares a replacement group
        // has no cause of its own; the group's event is named elsewhere.
        "" => return,
        other => other,
    };
    if !causes.iter().any(|c| c == cause) {
        causes.push(cause.to_owned());
    }
}

/// The messages of events' own effects (a new or replaced order, a split,
/// an override): `before` is each touched order's state before the batch
/// touched it (`None`: the batch created it), `causes` the events that did.
pub(in crate::store) async fn for_events<B: MessageLog>(
    db: &mut B,
    before: Vec<(String, Option<OrderState>, Vec<String>)>,
) -> Result<Vec<PendingMessage>, StoreError> {
    let ids: Vec<String> = before.iter().map(|b| b.0.clone()).collect();
    let after = order_states(db, &ids).await?;
    let mut out = Vec::new();
    for (id, old, causes) in before {
        let Some(now) = after.get(&id) else {
            continue;
        };
        if let Some(draft) = order_message(&id, old.as_ref(), now) {
            out.push(PendingMessage { draft, causes });
        }
    }
    Ok(out)
}

/// Numbers and stores `pending`, in order: takes the log's lock, gives
/// each message the next `seq` of its key, an id and `created_at`. Call it
/// last in the transaction, just before the commit, so that the lock is
/// held for as short a time as possible.
pub(in crate::store) async fn append<B: MessageLog>(
    db: &mut B,
    pending: Vec<PendingMessage>,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    append_rows(db, pending, now).await.map(|rows| rows.len())
}

/// [`append`] on a transaction a tool opened on its own SQLite connection
/// (the delivery tests and bench fill the log this way); returns the
/// messages as stored.
pub async fn append_on_sqlite(
    conn: &mut sqlx::SqliteConnection,
    pending: Vec<PendingMessage>,
    now: DateTime<Utc>,
) -> Result<Vec<Message>, StoreError> {
    as_stored(append_rows(conn, pending, now).await?)
}

/// [`append_on_sqlite`] for PostgreSQL.
pub async fn append_on_postgres(
    conn: &mut sqlx::PgConnection,
    pending: Vec<PendingMessage>,
    now: DateTime<Utc>,
) -> Result<Vec<Message>, StoreError> {
    as_stored(append_rows(conn, pending, now).await?)
}

fn as_stored(rows: Vec<MessageRow>) -> Result<Vec<Message>, StoreError> {
    rows.iter()
        .map(|row| {
            serde_json::from_str(&row.body).map_err(|e| StoreError::Corrupt {
                record: format!("message {}", row.id),
                problem: e.to_string(),
            })
        })
        .collect()
}

async fn append_rows<B: MessageLog>(
    db: &mut B,
    pending: Vec<PendingMessage>,
    now: DateTime<Utc>,
) -> Result<Vec<MessageRow>, StoreError> {
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let mut counts: Vec<(String, i64)> = Vec::new();
    let mut slot: FxHashMap<String, usize> = FxHashMap::default();
    for p in &pending {
        let i = *slot.entry(p.draft.key.clone()).or_insert_with(|| {
            counts.push((p.draft.key.clone(), 0));
            counts.len() - 1
        });
        counts[i].1 += 1;
    }
    db.lock_log().await?;
    let last = db.next_seqs(&counts).await?;
    // The first seq each key hands out in this call.
    let mut next: Vec<i64> = counts
        .iter()
        .zip(&last)
        .map(|((_, n), last)| last - n + 1)
        .collect();
    let mut rows = Vec::with_capacity(pending.len());
    for p in pending {
        let i = slot[&p.draft.key];
        let seq = next[i];
        next[i] += 1;
        let kind = p.draft.kind.as_str();
        let key = p.draft.key.clone();
        let message = p
            .draft
            .into_message(new_message_id(now), seq as u64, now, p.causes);
        let body = serde_json::to_string(&message).expect("a message serializes");
        rows.push(MessageRow {
            id: message.id,
            kind,
            key,
            seq,
            created_at: now,
            body,
        });
    }
    db.insert_messages(&rows).await?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::message::{Data, MessageType};
    use crate::engine::{BackorderStatus, LineCounts};

    fn state(status: BackorderStatus, lines: &[(&str, i64)]) -> OrderState {
        OrderState {
            status,
            backorder_qty: lines.iter().map(|l| l.1).sum(),
            customer: None,
            closed: false,
            lines: lines
                .iter()
                .map(|&(id, bq)| LineState {
                    line_id: id.into(),
                    sku: "TEA".into(),
                    qty: 10,
                    backorder_qty: bq,
                    eta: None,
                })
                .collect(),
        }
    }

    fn line(id: &str, old: i64, new: i64, cause: &str) -> LineChange {
        LineChange {
            line_id: id.into(),
            order_id: "A".into(),
            qty: 10,
            old_eta: None,
            old_backorder_qty: old,
            new_backorder_qty: new,
            new_eta: None,
            cause: cause.into(),
        }
    }

    fn order(old: BackorderStatus, new: BackorderStatus, old_qty: i64, cause: &str) -> OrderChange {
        OrderChange {
            order_id: "A".into(),
            old_status: old,
            new_status: new,
            old_backorder_qty: old_qty,
            new_backorder_qty: 4,
            old_counts: LineCounts::default(),
            new_counts: LineCounts::default(),
            cause: cause.into(),
        }
    }

    #[test]
    fn the_state_before_is_the_state_now_with_the_written_changes_undone() {
        let after: FxHashMap<String, OrderState> = [(
            "A".to_owned(),
            state(BackorderStatus::Partial, &[("A1", 4), ("A2", 0)]),
        )]
        .into_iter()
        .collect();
        let lines = [line("A1", 0, 4, "e1")];
        let orders = [order(
            BackorderStatus::None,
            BackorderStatus::Partial,
            0,
            "e1",
        )];
        let out = write_back_messages(&["A".into()], &lines, &orders, &after);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].causes, ["e1"]);
        assert_eq!(out[0].draft.kind, MessageType::OrderBackordered);
        let Data::Order(data) = &out[0].draft.data else {
            panic!("an order message")
        };
        assert_eq!(data.previous_backorder_qty, 0);
        assert_eq!(data.lines[0].previous_backorder_qty, 0);
        assert_eq!(data.lines[0].backorder_qty, 4);
        assert_eq!(data.lines[1].previous_backorder_qty, 0);
    }

    #[test]
    fn a_quiet_import_emits_nothing_but_a_mixed_cause_does() {
        let after: FxHashMap<String, OrderState> = [(
            "A".to_owned(),
            state(BackorderStatus::Partial, &[("A1", 4), ("A2", 2)]),
        )]
        .into_iter()
        .collect();
        let orders = [order(
            BackorderStatus::None,
            BackorderStatus::Partial,
            0,
            QUIET_IMPORT_CAUSE,
        )];
        let quiet = [line("A1", 0, 4, QUIET_IMPORT_CAUSE)];
        assert!(write_back_messages(&["A".into()], &quiet, &orders, &after).is_empty());
        let mixed = [line("A1", 0, 4, QUIET_IMPORT_CAUSE), line("A2", 0, 2, "e9")];
        let out = write_back_messages(&["A".into()], &mixed, &orders, &after);
        assert_eq!(out[0].causes, ["e9"]);
    }

    #[test]
    fn an_eta_change_alone_is_a_change() {
        let mut now = state(BackorderStatus::Full, &[("A1", 10)]);
        now.lines[0].eta = "2026-12-20".parse().ok();
        let after: FxHashMap<String, OrderState> = [("A".to_owned(), now)].into_iter().collect();
        let mut change = line("A1", 10, 10, "e2");
        change.new_eta = "2026-12-20".parse().ok();
        let out = write_back_messages(&["A".into()], &[change], &[], &after);
        assert_eq!(out[0].draft.kind, MessageType::OrderBackorderChanged);
    }
}
