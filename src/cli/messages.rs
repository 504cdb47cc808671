//! `changes` (the pull feed as JSON Lines) and `history` (an order's
//! changes). Both read the database directly, like `status`: they work
//! beside a running `serve` or without one.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;

use crate::config::Settings;
use crate::store::feed::{Cursor, MAX_LIMIT};
use crate::store::{Store, StoreError};

/// How often `changes --follow` looks for new messages.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// Prints the messages after `after` (the start when `None`), one JSON
/// document a line, at most `limit` unless `follow`; then the next cursor on
/// standard error. With `follow` it keeps printing new messages until killed.
pub async fn changes(
    settings: &Settings,
    after: Option<&str>,
    limit: Option<i64>,
    follow: bool,
) -> anyhow::Result<()> {
    let mut cursor = Cursor::parse(after.unwrap_or(""))
        .map_err(|e| crate::input::InputError::Other(format!("--after: {e}")))?;
    if let Some(limit) = limit
        && !(1..=i64::MAX).contains(&limit)
    {
        return Err(crate::input::InputError::Other(format!(
            "--limit: {limit} is not a positive number"
        ))
        .into());
    }
    let store = super::storage::open(settings).await?;
    let mut left = limit;
    let stdout = std::io::stdout();
    loop {
        let page = left.map_or(MAX_LIMIT, |n| n.min(MAX_LIMIT));
        let entries = store
            .messages_after(cursor, page)
            .await
            .context("cannot read the change messages")?;
        {
            let mut out = stdout.lock();
            for entry in &entries {
                writeln!(out, "{}", entry.body)?;
            }
            out.flush()?;
        }
        cursor = cursor.after(&entries);
        if let Some(n) = left.as_mut() {
            *n -= entries.len() as i64;
        }
        let done = left == Some(0);
        if done || ((entries.len() as i64) < page && !follow) {
            break;
        }
        if (entries.len() as i64) < page {
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    }
    eprintln!("next cursor: {cursor}");
    Ok(())
}

/// Prints every change of an order and its lines, newest first, as JSON;
/// an unknown order is refused (exit 2).
pub async fn history(settings: &Settings, order_id: &str) -> anyhow::Result<()> {
    let store = super::storage::open(settings).await?;
    let known = store
        .order_view(order_id)
        .await
        .context("cannot read the order")?
        .is_some();
    if !known {
        return Err(StoreError::Refused(format!("unknown order \"{order_id}\"")).into());
    }
    let changes = store
        .order_history(order_id, i64::MAX)
        .await
        .context("cannot read the order's history")?;
    let body = serde_json::json!({ "order_id": order_id, "changes": changes });
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(())
}
