//! `hookline events get|list` and `hookline state get`: read the table the way the functions
//! wrote it.

use std::io::Write as _;

use hookline::config::DEFAULT_RETENTION_DAYS;
use hookline::store::EventStore;

use crate::Aws;

fn store(aws: &Aws, table: &str) -> EventStore {
    EventStore::new(
        aws.dynamo(),
        table,
        DEFAULT_RETENTION_DAYS,
        hookline::clock::system(),
    )
}

/// Prints one event record as JSON, then its stored raw body as UTF-8 text after a `--- body`
/// line; with `body_only`, just the raw body (to save it, or replay it with `hookline send`).
/// `Ok(false)` if absent.
pub async fn get(
    aws: &Aws,
    table: &str,
    source: &str,
    event_id: &str,
    body_only: bool,
) -> anyhow::Result<bool> {
    let record = store(aws, table)
        .get_event(source, event_id)
        .await
        .map_err(|e| aws.fail(&format!("reading event {source}/{event_id}"), e))?;
    let Some(record) = record else {
        eprintln!("no event {source}/{event_id} in table {table}");
        return Ok(false);
    };
    if body_only {
        let Some(body) = &record.body else {
            eprintln!("event {source}/{event_id} was stored without its body (too large)");
            return Ok(false);
        };
        // Byte for byte, so that a replay signs exactly what the sender sent.
        let mut stdout = std::io::stdout().lock();
        if let Err(err) = stdout.write_all(body).and_then(|()| stdout.flush())
            && err.kind() != std::io::ErrorKind::BrokenPipe
        {
            return Err(err.into());
        }
        return Ok(true);
    }
    out!("{}", serde_json::to_string_pretty(&record)?);
    match &record.body {
        Some(body) => out!("--- body\n{}", String::from_utf8_lossy(body).trim_end()),
        None => out!("--- body not stored (too large for the item)"),
    }
    Ok(true)
}

/// Prints the most recent events of `source`, newest first, one line each.
pub async fn list(aws: &Aws, table: &str, source: &str, limit: i32) -> anyhow::Result<()> {
    let store = store(aws, table);
    let recent = store
        .recent(source, limit)
        .await
        .map_err(|e| aws.fail(&format!("listing events of {source}"), e))?;
    if recent.is_empty() {
        eprintln!("no events of source {source} in table {table}");
    }
    for (source, id) in recent {
        let Some(event) = store.get_event(&source, &id).await? else {
            continue;
        };
        let outbox: Vec<String> = event
            .outbox
            .iter()
            .map(|o| format!("{}={}", o.kind, o.status.as_str()))
            .collect();
        out!(
            "{}  {:<28}  {:<22}  {:<8}  {}",
            event.received_at,
            event.event_id,
            event.event_type,
            event.status,
            outbox.join(" ")
        );
    }
    Ok(())
}

/// Prints one entity's state as JSON. `Ok(false)` if absent.
pub async fn state(aws: &Aws, table: &str, kind: &str, id: &str) -> anyhow::Result<bool> {
    let entity = store(aws, table)
        .get_entity(kind, id)
        .await
        .map_err(|e| aws.fail(&format!("reading entity {kind}/{id}"), e))?;
    let Some(entity) = entity else {
        eprintln!("no entity {kind}/{id} in table {table}");
        return Ok(false);
    };
    out!("{}", serde_json::to_string_pretty(&entity)?);
    Ok(true)
}
