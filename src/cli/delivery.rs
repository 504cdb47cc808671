//! `dead`, `redeliver` and `enable-destination`: the dead list and what
//! puts messages back on their way, the same as the HTTP API's
//! `/v1/dead` and `/v1/destinations/enable`. They work on the database
//! directly, with or without a running `serve`.

use anyhow::Context;

use super::storage::open;
use crate::config::Settings;
use crate::store::DeliveryStore;

fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    out.write_all(b"\n")?;
    out.flush().context("cannot write to standard output")
}

pub async fn dead(
    settings: &Settings,
    destination: Option<&str>,
    limit: i64,
) -> anyhow::Result<()> {
    let store = open(settings).await?;
    let dead = store.dead_messages(destination, limit).await?;
    let entries: Vec<serde_json::Value> = dead
        .into_iter()
        .map(|d| {
            serde_json::json!({
                "destination": d.destination,
                "id": d.message_id,
                "key": d.key,
                "created_at": crate::store::daemons::ms_to_rfc3339(d.created_ms),
                "attempts": d.attempts,
                "last_error": d.last_error,
                "dead_at": crate::store::daemons::ms_to_rfc3339(d.dead_at_ms),
            })
        })
        .collect();
    print_json(&serde_json::json!({ "dead": entries }))
}

pub async fn redeliver(
    settings: &Settings,
    id: Option<&str>,
    destination: Option<&str>,
) -> anyhow::Result<()> {
    let store = open(settings).await?;
    let redelivered = store.redeliver(id, destination).await?;
    if let (Some(id), 0) = (id, redelivered) {
        let scope = destination.map(|d| format!(" for {d}")).unwrap_or_default();
        return Err(crate::store::StoreError::Refused(format!(
            "message {id:?} is not dead{scope} (backorderd dead lists the dead ones)"
        ))
        .into());
    }
    print_json(&serde_json::json!({ "redelivered": redelivered }))
}

pub async fn enable(settings: &Settings, destination: &str) -> anyhow::Result<()> {
    let store = open(settings).await?;
    if !store.enable_destination(destination).await? {
        let known: Vec<String> = store
            .destinations_status()
            .await?
            .into_iter()
            .map(|d| d.destination)
            .collect();
        return Err(crate::store::StoreError::Refused(format!(
            "no destination {destination:?}; known: {}",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ))
        .into());
    }
    print_json(&serde_json::json!({ "enabled": destination }))
}
