//! Singer output: every message goes through one channel to one writer thread that owns stdout
//! (buffered) and the state. A STATE is written only after everything sent before it, so it
//! never covers a record that was not emitted; stdout is flushed after every STATE and at exit.

use std::io::{BufWriter, Write};
use std::thread::JoinHandle;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::state::State;

/// Messages in flight to the writer. A message may be a batch of RECORD lines (up to about
/// 256 KB), so this bounds the memory between the streams and stdout; a slow target makes
/// senders wait.
const CHANNEL_MESSAGES: usize = 4;

enum Out {
    Line(Vec<u8>),
    /// A bookmark of one account's partition (`None`: the unpartitioned layout).
    Bookmark {
        account: Option<i64>,
        stream: &'static str,
        key: String,
        value: Value,
    },
    /// A stream's deletion memory (see [`crate::engine::known`]), of one account's partition.
    Memory {
        account: Option<i64>,
        stream: &'static str,
        value: Value,
    },
    State,
    /// The last STATE: written, then nothing more is accepted (tasks being cancelled may still
    /// be sending; what they send after this is dropped).
    Finish,
}

/// A STATE bigger than this is written at most every [`BIG_STATE_EVERY`] before the last.
const BIG_STATE_BYTES: u64 = 1 << 20;
const BIG_STATE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Bytes written to stdout so far, for the signal watchdog (is stdout still taking them?).
pub static WRITTEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// stdout, counting the bytes written.
struct Counting<W: Write> {
    inner: BufWriter<W>,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        WRITTEN.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The sending side, cloned into every stream task.
#[derive(Clone)]
pub struct Emitter {
    tx: mpsc::Sender<Out>,
    /// The account whose partition of the state its bookmarks and memory go to.
    account: Option<i64>,
}

/// The writer could not write to stdout (the target exited, a full disk...).
#[derive(Debug)]
pub struct OutputClosed;

impl std::fmt::Display for OutputClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout is closed")
    }
}

impl std::error::Error for OutputClosed {}

pub struct Writer {
    handle: JoinHandle<(State, std::io::Result<()>)>,
}

impl Writer {
    /// Waits for the writer to drain (every [`Emitter`] must be dropped first) and returns the
    /// last state and whether stdout took everything.
    pub fn finish(self) -> (State, std::io::Result<()>) {
        self.handle.join().unwrap_or_else(|_| {
            (
                State::default(),
                Err(std::io::Error::other("writer thread panicked")),
            )
        })
    }
}

/// Starts the writer thread over `out` with `state` as the state to carry forward.
pub fn start<W: Write + Send + 'static>(out: W, state: State) -> (Emitter, Writer) {
    let (tx, mut rx) = mpsc::channel::<Out>(CHANNEL_MESSAGES);
    let handle = std::thread::Builder::new()
        .name("singer-writer".into())
        .spawn(move || {
            let mut state = state;
            let mut out = Counting {
                inner: BufWriter::with_capacity(256 * 1024, out),
                written: 0,
            };
            // The state's change count when a STATE was written last, the size of that
            // STATE, and when.
            let mut written: Option<u64> = None;
            let mut last_size = 0u64;
            let mut last_at = std::time::Instant::now();
            // Records written since the last STATE: the last message must be a STATE.
            let mut dirty = false;
            let result = (|| -> std::io::Result<()> {
                while let Some(msg) = rx.blocking_recv() {
                    match msg {
                        Out::Line(bytes) => {
                            out.write_all(&bytes)?;
                            dirty = true;
                        }
                        Out::Bookmark {
                            account,
                            stream,
                            key,
                            value,
                        } => state.set_bookmark_in(account, stream, &key, value),
                        Out::Memory {
                            account,
                            stream,
                            value,
                        } => state.set_memory_in(account, stream, value),
                        Out::Finish => {
                            // The whole state, its large memories included (they go in the
                            // last STATE only), written from the state itself.
                            if dirty || written != Some(state.changes) || state.has_large_memory() {
                                out.write_all(b"{\"type\":\"STATE\",\"value\":")?;
                                state.write_json(&mut out)?;
                                out.write_all(b"}\n")?;
                            }
                            out.flush()?;
                            break;
                        }
                        Out::State => {
                            // Written only when it changed; a big one (a state carrying
                            // megabytes of other taps' bookmarks) at most once a minute in
                            // the middle of a sync: the last STATE has everything anyway.
                            let due =
                                last_size < BIG_STATE_BYTES || last_at.elapsed() >= BIG_STATE_EVERY;
                            if written != Some(state.changes) && (written.is_none() || due) {
                                let before = out.written;
                                out.write_all(b"{\"type\":\"STATE\",\"value\":")?;
                                state.write_json_without_large_memory(&mut out)?;
                                out.write_all(b"}\n")?;
                                written = Some(state.changes);
                                dirty = false;
                                last_size = out.written - before;
                                last_at = std::time::Instant::now();
                            }
                            out.flush()?;
                        }
                    }
                }
                out.flush()
            })();
            // Stop accepting messages so senders see the failure at once.
            rx.close();
            (state, result)
        })
        .expect("spawn the writer thread");
    (Emitter { tx, account: None }, Writer { handle })
}

/// The framing of one stream's RECORD messages: `{"type":"RECORD","stream":"<name>","record":`
/// before the record, `,"time_extracted":"..."}` and a newline after it.
pub struct RecordFrame {
    prefix: Vec<u8>,
    /// `"account_id":<id>`, put first in every record, when records say their account.
    account: Option<Vec<u8>>,
}

pub use crate::streams::ACCOUNT_ID;

impl RecordFrame {
    pub fn new(stream: &str) -> RecordFrame {
        let mut prefix = b"{\"type\":\"RECORD\",\"stream\":".to_vec();
        prefix.extend_from_slice(&serde_json::to_vec(stream).unwrap_or_default());
        prefix.extend_from_slice(b",\"record\":");
        RecordFrame {
            prefix,
            account: None,
        }
    }

    /// The same framing, each record carrying `account_id` first.
    pub fn in_account(mut self, account: Option<i64>) -> RecordFrame {
        self.account = account.map(|a| format!("\"{ACCOUNT_ID}\":{a}").into_bytes());
        self
    }

    /// Appends one RECORD line to `out`, its record written by `record` (a JSON object), with
    /// the stream's `version` when it has one this sync. When `record` fails, `out` is left as
    /// it was.
    pub fn write<E>(
        &self,
        out: &mut Vec<u8>,
        time_extracted: &str,
        version: Option<i64>,
        record: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = out.len();
        out.extend_from_slice(&self.prefix);
        let object = out.len();
        if let Err(e) = record(out) {
            out.truncate(start);
            return Err(e);
        }
        if let (Some(account), Some(b'{')) = (&self.account, out.get(object)) {
            let mut field = account.clone();
            if out.get(object + 1) != Some(&b'}') {
                field.push(b',');
            }
            out.splice(object + 1..object + 1, field);
        }
        if let Some(v) = version {
            out.extend_from_slice(format!(",\"version\":{v}").as_bytes());
        }
        out.extend_from_slice(b",\"time_extracted\":");
        let _ = serde_json::to_writer(&mut *out, time_extracted);
        out.extend_from_slice(b"}\n");
        Ok(())
    }
}

fn line(v: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(v).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

impl Emitter {
    /// The same output, its bookmarks and memory kept in `account`'s partition of the state.
    pub fn in_account(&self, account: i64) -> Emitter {
        Emitter {
            tx: self.tx.clone(),
            account: Some(account),
        }
    }

    async fn send(&self, out: Out) -> Result<(), OutputClosed> {
        self.tx.send(out).await.map_err(|_| OutputClosed)
    }

    pub async fn schema(
        &self,
        stream: &str,
        schema: Value,
        key_properties: &[&str],
        bookmark_properties: &[&str],
    ) -> Result<(), OutputClosed> {
        let msg = json!({"type": "SCHEMA", "stream": stream, "schema": schema,
                         "key_properties": key_properties, "bookmark_properties": bookmark_properties});
        self.send(Out::Line(line(&msg))).await
    }

    /// Whole RECORD lines (framed by [`RecordFrame`]).
    pub async fn lines(&self, lines: Vec<u8>) -> Result<(), OutputClosed> {
        self.send(Out::Line(lines)).await
    }

    /// Moves a bookmark; it reaches the state only after every message sent before it.
    pub async fn bookmark(
        &self,
        stream: &'static str,
        key: String,
        value: Value,
    ) -> Result<(), OutputClosed> {
        self.send(Out::Bookmark {
            account: self.account,
            stream,
            key,
            value,
        })
        .await
    }

    /// Sets a stream's deletion memory; it reaches the state after every message sent before it.
    pub async fn memory(&self, stream: &'static str, value: Value) -> Result<(), OutputClosed> {
        self.send(Out::Memory {
            account: self.account,
            stream,
            value,
        })
        .await
    }

    /// Writes the last STATE and stops the writer: nothing sent afterwards is written.
    pub async fn finish(&self) -> Result<(), OutputClosed> {
        self.send(Out::Finish).await
    }

    /// Writes the state as it stands (suppressed when unchanged) and flushes.
    pub async fn state(&self) -> Result<(), OutputClosed> {
        self.send(Out::State).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_says_its_account_first() {
        let frame = RecordFrame::new("clients").in_account(Some(42));
        let mut out = Vec::new();
        frame
            .write(&mut out, "t", None, |o| {
                o.extend_from_slice(b"{\"id\":1}");
                Ok::<(), ()>(())
            })
            .unwrap();
        frame
            .write(&mut out, "t", None, |o| {
                o.extend_from_slice(b"{}");
                Ok::<(), ()>(())
            })
            .unwrap();
        let lines: Vec<Value> = out
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines[0]["record"], json!({"account_id": 42, "id": 1}));
        assert_eq!(lines[1]["record"], json!({"account_id": 42}));
    }
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_record_line_is_framed_once_and_a_failed_record_leaves_nothing() {
        let frame = RecordFrame::new("clients");
        let mut out = Vec::new();
        frame
            .write(&mut out, "2024-01-01T00:00:00.000Z", None, |o| {
                o.extend_from_slice(b"{\"id\":1}");
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "{\"type\":\"RECORD\",\"stream\":\"clients\",\"record\":{\"id\":1},\"time_extracted\":\"2024-01-01T00:00:00.000Z\"}\n"
        );
        let before = out.clone();
        assert!(frame
            .write(&mut out, "t", Some(7), |o| {
                o.extend_from_slice(b"{\"half");
                Err(())
            })
            .is_err());
        assert_eq!(out, before);
    }

    #[tokio::test]
    async fn state_follows_records_and_is_deduplicated() {
        let sink = Sink::default();
        let (em, w) = start(sink.clone(), State::default());
        em.lines(b"{\"type\":\"RECORD\",\"stream\":\"clients\",\"record\":{\"id\":1}}\n".to_vec())
            .await
            .unwrap();
        em.bookmark(
            "clients",
            "updated_at".into(),
            json!("2024-01-01T00:00:00Z"),
        )
        .await
        .unwrap();
        em.state().await.unwrap();
        em.state().await.unwrap();
        drop(em);
        let (_, res) = w.finish();
        res.unwrap();
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["type"], "RECORD");
        assert_eq!(lines[1]["type"], "STATE");
        assert!(lines[1]["value"]["bookmarks"]["clients"]["updated_at"].is_string());
    }
}
