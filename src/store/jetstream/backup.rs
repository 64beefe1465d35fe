//! `scanbridge store backup FILE` on JetStream (the Store contract's `backup`): every message of
//! the installation's streams and buckets, written to one file of JSON lines while the daemons run.
//!
//! The file's format is `backup_format.rs`'s (version 2: each message with its headers), and
//! `store restore` reads it back (`restore.rs`). The messages are written stream by stream in
//! stream order: the archive, the outbox, the dead letters, the suppressed log, then each bucket's
//! stream. It is written beside the destination and renamed into place only once complete and
//! read back (every line parses), so a file at FILE is always whole. FILE must not exist.
//!
//! Consistency: each stream is copied up to its last message when its copy starts (NATS has no
//! snapshot across streams), so a delivery settled during the backup may appear both in the outbox
//! and delivered; restoring is at-least-once, as the store itself. For a byte-exact copy of a
//! cluster use NATS' own `nats stream backup` per stream (the names are in `cluster.rs`); this file
//! is what `scanbridge store restore` reads and what a person can inspect with `jq`.

use std::io::BufRead;
use std::path::Path;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use futures_util::StreamExt;
use serde_json::value::RawValue;

use super::backup_format::{FORMAT, Header, LineOut, VERSION, headers_of};
use super::cluster::{Cluster, failed};
use crate::store::{Backup, StoreError};

fn io(dest: &Path, source: std::io::Error) -> StoreError {
    StoreError::DataDir {
        path: dest.display().to_string(),
        source,
    }
}

/// The Store contract's `backup`.
pub async fn backup(c: &Cluster, dest: &Path) -> Result<Backup, StoreError> {
    let tmp = crate::store::backup_file::staging(dest)?;
    let made = match write(c, &tmp).await {
        Ok(counts) => verify(&tmp).map(|bytes| Backup { bytes, ..counts }),
        Err(e) => Err(e),
    };
    crate::store::backup_file::land(&tmp, dest, made)
}

/// Writes the copy to `path`; returns what it holds (bytes left 0).
async fn write(c: &Cluster, path: &Path) -> Result<Backup, StoreError> {
    let file = std::fs::File::create_new(path).map_err(|e| io(path, e))?;
    let mut out = std::io::BufWriter::new(file);
    let streams = c.names.all_streams();
    let header = Header {
        format: FORMAT.to_owned(),
        version: VERSION,
        prefix: c.names.prefix.clone(),
        streams: streams.clone(),
    };
    let line = |out: &mut std::io::BufWriter<std::fs::File>, v: &dyn erased::Json| {
        v.write_line(out).map_err(|e| io(path, e))
    };
    line(&mut out, &header)?;
    let mut counts = Backup {
        bytes: 0,
        events: 0,
        pending: 0,
        dead_letters: 0,
    };
    for name in &streams {
        let n = copy_stream(c, name, &mut |seq, subject, headers, payload| {
            let data = match payload.is_empty() {
                true => None,
                false => Some(serde_json::from_slice::<&RawValue>(payload).map_err(|e| {
                    StoreError::JetStream(format!(
                        "message {seq} of stream {name} is not JSON: {e}"
                    ))
                })?),
            };
            line(
                &mut out,
                &LineOut {
                    stream: name,
                    seq,
                    subject,
                    data,
                    headers: headers_of(headers),
                },
            )
        })
        .await?;
        if *name == c.names.events_stream() {
            counts.events = n;
        } else if *name == c.names.outbox_stream() {
            counts.pending = n;
        } else if *name == c.names.dead_stream() {
            counts.dead_letters = n;
        }
    }
    let file = out.into_inner().map_err(|e| io(path, e.into_error()))?;
    file.sync_all().map_err(|e| io(path, e))?;
    Ok(counts)
}

/// What [`copy_stream`] hands each message to: (sequence, subject, headers, payload).
type Each<'a> =
    dyn FnMut(u64, &str, Option<&HeaderMap>, &[u8]) -> Result<(), StoreError> + Send + 'a;

/// Hands every message of stream `name` (up to its last one now) to `each`; returns how many.
async fn copy_stream(c: &Cluster, name: &str, each: &mut Each<'_>) -> Result<u64, StoreError> {
    let stream = c.stream(name).await?;
    let state = stream
        .get_info()
        .await
        .map_err(|e| failed(&format!("reading stream {name}"), e))?
        .state;
    if state.messages == 0 {
        return Ok(0);
    }
    let mut n = 0;
    if *name == c.names.outbox_stream() {
        // A work-queue stream takes no second consumer: its messages are read one by one.
        for seq in state.first_sequence.max(1)..=state.last_sequence {
            match stream.get_raw_message(seq).await {
                Ok(m) => {
                    each(seq, &m.subject, Some(&m.headers), &m.payload)?;
                    n += 1;
                }
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {}
                Err(e) => return Err(failed(&format!("reading stream {name}"), e)),
            }
        }
        return Ok(n);
    }
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| failed(&format!("reading stream {name}"), e))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| failed(&format!("reading stream {name}"), e))?;
    loop {
        let next = tokio::time::timeout(c.timeout, messages.next()).await;
        let m = match next {
            Ok(Some(m)) => m.map_err(|e| failed(&format!("reading stream {name}"), e))?,
            // Quiet: the rest was deleted meanwhile.
            Ok(None) | Err(_) => break,
        };
        let info = m
            .info()
            .map_err(|e| failed(&format!("reading stream {name}"), e))?;
        let (seq, pending) = (info.stream_sequence, info.pending);
        if seq > state.last_sequence {
            break;
        }
        each(seq, &m.subject, m.headers.as_ref(), &m.payload)?;
        n += 1;
        if pending == 0 || seq == state.last_sequence {
            break;
        }
    }
    Ok(n)
}

/// Reads the copy back: the header names the format and every line parses. Returns its size.
fn verify(path: &Path) -> Result<u64, StoreError> {
    let file = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let bytes = file.metadata().map_err(|e| io(path, e))?.len();
    let mut lines = std::io::BufReader::new(file).lines();
    let bad = |why: String| StoreError::NotAStore {
        path: path.display().to_string(),
        why: format!("failed its check after the copy ({why})"),
    };
    let header: serde_json::Value = match lines.next() {
        Some(Ok(l)) => serde_json::from_str(&l).map_err(|e| bad(e.to_string()))?,
        _ => return Err(bad("no header".into())),
    };
    if header["format"] != FORMAT {
        return Err(bad("wrong header".into()));
    }
    for (i, l) in lines.enumerate() {
        let l = l.map_err(|e| io(path, e))?;
        serde_json::from_str::<&RawValue>(&l).map_err(|e| bad(format!("line {}: {e}", i + 2)))?;
    }
    Ok(bytes)
}

/// One JSON line of any serialisable value, behind `dyn` (a closure cannot be generic).
mod erased {
    pub trait Json {
        fn write_line(&self, out: &mut dyn std::io::Write) -> std::io::Result<()>;
    }

    impl<T: serde::Serialize> Json for T {
        fn write_line(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
            serde_json::to_writer(&mut *out, self)?;
            out.write_all(b"\n")
        }
    }
}
