//! Expiry sweep. redb has no TTL: reads already treat expired rows as absent; this deletes
//! them so the file does not grow forever.
//!
//! A pass walks every expiring table with read transactions (which never block the writer),
//! [`SCAN_CHUNK`] rows at a time, and hands the expired keys of each chunk to the writer thread
//! as one ordinary job. The job re-checks each row's expiry inside the write transaction (a row
//! may have been replaced since it was scanned), so a sweep never deletes a live record. Each
//! write transaction of the sweep is therefore bounded by `SCAN_CHUNK` deletions, and request
//! writes interleave between chunks.

use std::ops::Bound;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, SystemTime};

use redb::{Database, ReadableDatabase, ReadableTable};

use super::codec::{EXPIRING, Expiry, decode, unavailable};
use super::ops::expiring_mut;
use super::writer::Job;
use super::{Counters, submit};
use crate::StoreError;

/// Rows examined per read transaction, and the most deletions per write transaction.
pub(crate) const SCAN_CHUNK: usize = 4096;

/// Run one full sweep pass at `now`; returns how many rows were deleted. Blocking: call it
/// from a thread or `spawn_blocking`, never on an async worker.
pub(crate) fn sweep_pass(
    db: &Database,
    writer: &Sender<Box<dyn Job>>,
    now: SystemTime,
) -> Result<u64, StoreError> {
    let mut deleted = 0;
    for (index, table_def) in EXPIRING.iter().enumerate() {
        let mut cursor: Option<String> = None;
        loop {
            let (expired, next) = scan_chunk(db, *table_def, cursor.as_deref(), now)?;
            if !expired.is_empty() {
                deleted += delete_expired(writer, index, expired, now)?;
            }
            match next {
                Some(last) => cursor = Some(last),
                None => break,
            }
        }
    }
    Ok(deleted)
}

/// Scan up to [`SCAN_CHUNK`] rows after `after`. Returns the expired keys and, if the table
/// has more rows, the last key scanned.
fn scan_chunk(
    db: &Database,
    table_def: super::codec::StrTable,
    after: Option<&str>,
    now: SystemTime,
) -> Result<(Vec<String>, Option<String>), StoreError> {
    let what = format!("sweeping table {}", table_def);
    let txn = db.begin_read().map_err(|e| unavailable(&what, e))?;
    let table = txn
        .open_table(table_def)
        .map_err(|e| unavailable(&what, e))?;
    let start = match after {
        Some(k) => Bound::Excluded(k),
        None => Bound::Unbounded,
    };
    let range = table
        .range::<&str>((start, Bound::Unbounded))
        .map_err(|e| unavailable(&what, e))?;
    let mut expired = Vec::new();
    let mut scanned = 0;
    let mut last = None;
    for row in range {
        let (key, value) = row.map_err(|e| unavailable(&what, e))?;
        let key = key.value();
        match decode::<Expiry>("swept row", key, value.value()) {
            Ok(exp) if exp.passed(now) => expired.push(key.to_owned()),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "embedded store: sweep skipped an unreadable row"),
        }
        scanned += 1;
        if scanned == SCAN_CHUNK {
            last = Some(key.to_owned());
            break;
        }
    }
    Ok((expired, last))
}

/// Ask the writer to delete `keys` of expiring table `index` if they are still expired.
fn delete_expired(
    writer: &Sender<Box<dyn Job>>,
    index: usize,
    keys: Vec<String>,
    now: SystemTime,
) -> Result<u64, StoreError> {
    let reply = submit(writer, move |t| {
        let Some(table) = expiring_mut(t, index) else {
            return Ok(0);
        };
        let mut deleted = 0;
        for key in &keys {
            let still_expired = match table.get(key.as_str()) {
                Ok(Some(v)) => {
                    decode::<Expiry>("swept row", key, v.value()).is_ok_and(|e| e.passed(now))
                }
                Ok(None) => false,
                Err(e) => return Err(unavailable("sweep: re-reading a row", e)),
            };
            if still_expired {
                table
                    .remove(key.as_str())
                    .map_err(|e| unavailable("sweep: deleting a row", e))?;
                deleted += 1;
            }
        }
        Ok(deleted)
    })?;
    reply
        .blocking_recv()
        .map_err(|_| StoreError::Unavailable("sweep: the writer thread stopped".to_owned()))?
}

/// The background sweeper thread: one pass every `interval` until `stop` fires or closes.
pub(crate) fn run(
    db: Arc<Database>,
    writer: Sender<Box<dyn Job>>,
    stop: Receiver<()>,
    interval: Duration,
    counters: Arc<Counters>,
) {
    loop {
        match stop.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        match sweep_pass(&db, &writer, SystemTime::now()) {
            Ok(n) => {
                counters
                    .swept
                    .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                if n > 0 {
                    tracing::debug!(deleted = n, "embedded store: expired rows swept");
                }
            }
            Err(e) => tracing::warn!(error = %e, "embedded store: sweep failed"),
        }
    }
}
