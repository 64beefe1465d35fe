//! The file of a JetStream backup: what `store backup` writes (`backup.rs`) and `store restore`
//! reads back (`restore.rs`), JSON lines.
//!
//! Line 1, the header: `{"format": "scanbridge-jetstream-backup", "version": 2, "prefix": P,
//! "streams": [...]}` (every stream of the installation, the buckets' included, in the order they
//! follow). Then one line per message, stream by stream in stream order: `{"stream", "seq",
//! "subject", "data", "headers"}`. `data` is the message's JSON as it is, or `null` for an empty
//! payload (a bucket's delete or purge marker: no other message is empty); `headers` are its NATS
//! headers (name to values), absent when it has none.
//!
//! Versions: 1 (the first `store backup`) wrote no `headers`, so a marker's kind was lost: a
//! version-1 marker is read as a delete. 2 adds them (a purge marker is restored as a purge). The
//! reader takes both, refuses a newer version (what it added is unknown to this build), and names
//! the line at fault for anything it cannot use: a line that is not JSON, a stream the header does
//! not list or this build does not know, a subject outside the backup's prefix, a message that does
//! not read as what its stream holds (a delivery, a dead letter, an archived event, a suppressed
//! record).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use async_nats::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::cluster::{BUCKETS, Names};
use super::wire::{DeadMsg, DeliveryMsg, EventMsg};
use crate::store::Suppressed;
use crate::store::restore::{RestoreError, SQLITE_MAGIC};

/// The format's name, in the header.
pub const FORMAT: &str = "scanbridge-jetstream-backup";
/// The version `store backup` writes; the reader takes every version from 1 to it.
pub const VERSION: u32 = 2;

/// The first line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    pub prefix: String,
    pub streams: Vec<String>,
}

/// A message's NATS headers: name to values.
pub type Headers = BTreeMap<String, Vec<String>>;

/// The headers of a message as the file keeps them (None: it has none).
pub fn headers_of(h: Option<&HeaderMap>) -> Option<Headers> {
    let h = h.filter(|h| !h.is_empty())?;
    Some(
        h.iter()
            .map(|(name, values)| {
                let name: &str = name.as_ref();
                (
                    name.to_owned(),
                    values.iter().map(|v| v.as_str().to_owned()).collect(),
                )
            })
            .collect(),
    )
}

/// One message line, as written.
#[derive(Serialize)]
pub struct LineOut<'a> {
    pub stream: &'a str,
    pub seq: u64,
    pub subject: &'a str,
    pub data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// One message line, as read.
#[derive(Deserialize)]
struct LineIn {
    stream: String,
    #[allow(dead_code)]
    seq: u64,
    subject: String,
    data: Option<Box<RawValue>>,
    #[serde(default)]
    headers: Option<Headers>,
}

/// What a stream of an installation holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Events,
    Outbox,
    Dead,
    Suppressed,
    /// The stream of bucket `P_NAME` ([`BUCKETS`]).
    Bucket(&'static str),
}

impl Kind {
    /// Every kind, in the order a restore writes them: buckets, then the archive, the dead letters,
    /// the suppressed log, and the outbox last.
    pub fn all() -> Vec<Kind> {
        let mut all: Vec<Kind> = BUCKETS.iter().map(|(b, _)| Kind::Bucket(b)).collect();
        all.extend([Kind::Events, Kind::Dead, Kind::Suppressed, Kind::Outbox]);
        all
    }

    /// The stream's name in installation `names`.
    pub fn stream(self, names: &Names) -> String {
        match self {
            Kind::Events => names.events_stream(),
            Kind::Outbox => names.outbox_stream(),
            Kind::Dead => names.dead_stream(),
            Kind::Suppressed => names.suppressed_stream(),
            Kind::Bucket(b) => format!("KV_{}", names.bucket(b)),
        }
    }

    /// The subjects' start under the prefix (`events.`), for the four streams.
    fn subjects(self) -> &'static str {
        match self {
            Kind::Events => "events.",
            Kind::Outbox => "outbox.",
            Kind::Dead => "dead.",
            Kind::Suppressed | Kind::Bucket(_) => "suppressed",
        }
    }
}

/// What a bucket message does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Put,
    Delete,
    Purge,
}

/// One message read back and checked, with where it goes.
#[derive(Debug)]
pub struct Entry {
    /// Its line in the file (the header is line 1).
    pub line: u64,
    pub kind: Kind,
    /// The subject after the prefix and its dot (`outbox.d`), or, in a bucket, the key.
    pub rest: String,
    /// The payload (empty for a marker).
    pub data: Option<Box<RawValue>>,
    pub op: Op,
}

impl Entry {
    /// The subject of a stream's message under installation `names` (not for buckets).
    pub fn subject(&self, names: &Names) -> String {
        format!("{}.{}", names.prefix, self.rest)
    }

    pub fn payload(&self) -> Vec<u8> {
        self.data
            .as_ref()
            .map(|d| d.get().as_bytes().to_vec())
            .unwrap_or_default()
    }
}

/// Reads a backup file line by line, checking each (module doc).
pub struct Reader {
    path: PathBuf,
    lines: std::io::Lines<std::io::BufReader<std::fs::File>>,
    pub header: Header,
    from: Names,
    /// The backup's stream names and what each holds.
    kinds: std::collections::HashMap<String, Kind>,
    line: u64,
}

impl Reader {
    /// Opens `path` and reads its header.
    pub fn open(path: &Path) -> Result<Reader, RestoreError> {
        let shown = path.display().to_string();
        if crate::store::restore::sniff(path, 16)?.starts_with(SQLITE_MAGIC) {
            return Err(RestoreError::NotABackup {
                path: shown,
                why: "is an SQLite backup: restore it with `[store] backend = \"sqlite\"` (the default) and --data-dir".into(),
            });
        }
        let file = std::fs::File::open(path).map_err(|source| RestoreError::Read {
            path: shown.clone(),
            source,
        })?;
        let mut lines = std::io::BufReader::new(file).lines();
        let not = |why: String| RestoreError::NotABackup {
            path: shown.clone(),
            why,
        };
        let first = match lines.next() {
            Some(Ok(l)) => l,
            Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(not("is not a JetStream backup (not text)".into()));
            }
            Some(Err(source)) => {
                return Err(RestoreError::Read {
                    path: shown,
                    source,
                });
            }
            None => return Err(not("is empty, not a JetStream backup".into())),
        };
        let header: Header = match serde_json::from_str(&first) {
            Ok(h) => h,
            Err(e) => {
                return Err(RestoreError::Line {
                    path: shown,
                    line: 1,
                    why: format!("not a backup header ({e})"),
                });
            }
        };
        if header.format != FORMAT {
            return Err(not(format!(
                "is not a JetStream backup of scanbridge (format {:?}, expected {FORMAT:?})",
                header.format
            )));
        }
        if header.version == 0 || header.version > VERSION {
            return Err(not(format!(
                "is version {} of the backup format; this build reads versions 1 to {VERSION} (restore it with a newer scanbridge)",
                header.version
            )));
        }
        if header.prefix.is_empty() {
            return Err(RestoreError::Line {
                path: shown,
                line: 1,
                why: "the header names no prefix".into(),
            });
        }
        let from = Names {
            prefix: header.prefix.clone(),
        };
        let kinds = Kind::all()
            .into_iter()
            .map(|k| (k.stream(&from), k))
            .collect();
        Ok(Reader {
            path: path.to_owned(),
            lines,
            from,
            kinds,
            header,
            line: 1,
        })
    }

    fn bad(&self, why: String) -> RestoreError {
        RestoreError::Line {
            path: self.path.display().to_string(),
            line: self.line,
            why,
        }
    }

    /// Checks one line and says where its message goes.
    fn entry(&self, text: &str) -> Result<Entry, RestoreError> {
        let l: LineIn = serde_json::from_str(text)
            .map_err(|e| self.bad(format!("not a message line of a backup ({e})")))?;
        if !self.header.streams.contains(&l.stream) {
            return Err(self.bad(format!("stream {:?} is not one the header lists", l.stream)));
        }
        let kind = *self.kinds.get(&l.stream).ok_or_else(|| {
            self.bad(format!(
                "stream {:?} is not one this build keeps for prefix {:?}",
                l.stream, self.from.prefix
            ))
        })?;
        let op = match (kind, &l.data) {
            (Kind::Bucket(_), data) => {
                let said = l
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("KV-Operation"))
                    .and_then(|v| v.first())
                    .map(String::as_str);
                match (said, data) {
                    (Some("PURGE"), _) => Op::Purge,
                    (Some("DEL"), _) | (None, None) => Op::Delete,
                    (None, Some(_)) => Op::Put,
                    (Some(other), _) => {
                        return Err(self.bad(format!("unknown KV-Operation {other:?}")));
                    }
                }
            }
            (_, None) => {
                return Err(self.bad(format!("a message of {} without data", l.stream)));
            }
            (_, Some(_)) => Op::Put,
        };
        let rest = match kind {
            Kind::Bucket(b) => {
                let start = format!("$KV.{}.", self.from.bucket(b));
                match l.subject.strip_prefix(&start) {
                    Some(key) if !key.is_empty() => key.to_owned(),
                    _ => {
                        return Err(self.bad(format!(
                            "subject {:?} is not a key of bucket {}",
                            l.subject,
                            self.from.bucket(b)
                        )));
                    }
                }
            }
            _ => {
                let start = format!("{}.", self.from.prefix);
                match l.subject.strip_prefix(&start) {
                    Some(rest) if rest.starts_with(kind.subjects()) => rest.to_owned(),
                    _ => {
                        return Err(self.bad(format!(
                            "subject {:?} is not one of stream {}",
                            l.subject, l.stream
                        )));
                    }
                }
            }
        };
        if let Some(d) = &l.data {
            let bytes = d.get().as_bytes();
            let read = match kind {
                Kind::Events => serde_json::from_slice::<EventMsg>(bytes).map(|_| ()),
                Kind::Outbox => serde_json::from_slice::<DeliveryMsg>(bytes).map(|_| ()),
                Kind::Dead => serde_json::from_slice::<DeadMsg>(bytes).map(|_| ()),
                Kind::Suppressed => serde_json::from_slice::<Suppressed>(bytes).map(|_| ()),
                Kind::Bucket(_) => Ok(()),
            };
            read.map_err(|e| {
                self.bad(format!(
                    "a message of {} that does not read ({e})",
                    l.stream
                ))
            })?;
        }
        Ok(Entry {
            line: self.line,
            kind,
            rest,
            data: l.data,
            op,
        })
    }
}

impl Iterator for Reader {
    type Item = Result<Entry, RestoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let text = self.lines.next()?;
        self.line += 1;
        Some(match text {
            Ok(t) => self.entry(&t),
            Err(e) => Err(self.bad(format!("cannot be read ({e})"))),
        })
    }
}

/// What a whole file holds, once every line was checked.
#[derive(Debug, Clone)]
pub struct Checked {
    pub header: Header,
    /// Messages per kind.
    pub counts: BTreeMap<Kind, u64>,
}

/// Reads and checks all of `path` (nothing is written anywhere).
pub fn check(path: &Path) -> Result<Checked, RestoreError> {
    let mut r = Reader::open(path)?;
    let mut counts = BTreeMap::new();
    for e in r.by_ref() {
        *counts.entry(e?.kind).or_default() += 1;
    }
    Ok(Checked {
        header: r.header,
        counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(lines: &[String]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.jsonl");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        (dir, path)
    }

    fn header(version: u32) -> String {
        let names = Names { prefix: "p".into() };
        serde_json::json!({"format": FORMAT, "version": version, "prefix": "p",
                           "streams": names.all_streams()})
        .to_string()
    }

    fn delivery() -> String {
        serde_json::json!({"id": "d1", "event_id": "e1", "rule": "r", "target": "t",
                           "created_at": 1, "body": {"id": "e1"}})
        .to_string()
    }

    #[test]
    fn every_line_is_checked_and_the_one_at_fault_named() {
        let good = [
            header(2),
            format!(
                r#"{{"stream":"p_OUTBOX","seq":1,"subject":"p.outbox.d","data":{}}}"#,
                delivery()
            ),
            r#"{"stream":"KV_p_seen","seq":1,"subject":"$KV.p_seen.abc","data":{"at":1}}"#.into(),
            r#"{"stream":"KV_p_dedup","seq":2,"subject":"$KV.p_dedup.k1","data":null,"headers":{"KV-Operation":["PURGE"],"Nats-Rollup":["sub"]}}"#.into(),
            r#"{"stream":"KV_p_dedup","seq":3,"subject":"$KV.p_dedup.k2","data":null}"#.into(),
        ];
        let (_d, path) = write(&good);
        let c = check(&path).unwrap();
        assert_eq!(c.counts[&Kind::Outbox], 1);
        assert_eq!(c.counts[&Kind::Bucket("dedup")], 2);
        let ops: Vec<(String, Op)> = Reader::open(&path)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.kind == Kind::Bucket("dedup"))
            .map(|e| (e.rest, e.op))
            .collect();
        assert_eq!(
            ops,
            [("k1".into(), Op::Purge), ("k2".into(), Op::Delete)],
            "a version-2 purge stays a purge; a marker without headers is a delete"
        );
        let outbox = Reader::open(&path).unwrap().next().unwrap().unwrap();
        let names = Names {
            prefix: "new".into(),
        };
        assert_eq!(
            outbox.subject(&names),
            "new.outbox.d",
            "rebased on the target's prefix"
        );

        // Version 1 (no headers) reads; a newer version or another format does not.
        let mut v1 = good.to_vec();
        v1[0] = header(1);
        v1.truncate(3);
        let (_d1, p1) = write(&v1);
        assert_eq!(check(&p1).unwrap().header.version, 1);
        let (_d3, p3) = write(&[header(3)]);
        assert!(check(&p3).unwrap_err().to_string().contains("version 3"));
        let (_dx, px) =
            write(&[r#"{"format":"other","version":1,"prefix":"p","streams":[]}"#.into()]);
        assert!(matches!(check(&px), Err(RestoreError::NotABackup { .. })));

        // Each fault names its line.
        let faults: [(&str, &str); 6] = [
            ("not json", "not a message line"),
            (
                r#"{"stream":"q_OUTBOX","seq":1,"subject":"q.outbox.d","data":{}}"#,
                "not one the header lists",
            ),
            (
                r#"{"stream":"p_OUTBOX","seq":1,"subject":"p.outbox.d","data":{"id":"x"}}"#,
                "does not read",
            ),
            (
                r#"{"stream":"p_EVENTS","seq":1,"subject":"p.events.x","data":null}"#,
                "without data",
            ),
            (
                r#"{"stream":"p_DEAD","seq":1,"subject":"other.dead.x","data":{}}"#,
                "not one of stream p_DEAD",
            ),
            (
                r#"{"stream":"KV_p_seen","seq":1,"subject":"$KV.p_seen.","data":{}}"#,
                "not a key of bucket p_seen",
            ),
        ];
        for (line, says) in faults {
            let mut lines = good.to_vec();
            lines.insert(3, line.to_owned());
            let (_d, path) = write(&lines);
            let err = check(&path).unwrap_err();
            assert!(
                matches!(&err, RestoreError::Line { line: 4, why, .. } if why.contains(says)),
                "{line}: {err}"
            );
            assert!(err.to_string().contains("line 4: "), "{err}");
        }
    }
}
