//! The hub's history: every request it routes (who, what type, which nodes, when), every
//! reply's outcome, presence changes and refusals, kept in SQLite (WAL) with retention by age
//! and size. `plastic history` and `GET /api/v1/history` query it; it is the audit trail.
//!
//! The broker's hooks only hand a [`Record`] to a bounded queue ([`Recorder::record`] never
//! blocks); one writer thread turns records into rows in batches (one transaction each), so
//! routing never waits on the disk. When the writer falls behind, records are dropped and
//! counted (`plastic_history_dropped_total`) rather than slowing the fleet down. The writer
//! also matches replies to requests, for the latency histogram and the outcome counters.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::metrics::HubMetrics;

/// Records waiting for the writer; beyond this they are dropped (and counted).
pub const QUEUE: usize = 65_536;
/// Records written in one transaction at most.
const BATCH: usize = 4_096;
/// Requests remembered for matching their replies (latency, the type of an outcome row).
const PENDING_KEPT: usize = 100_000;
/// How long a request waits for replies in that memory (a broadcast gets many).
const PENDING_FOR: Duration = Duration::from_secs(600);
/// How often old rows are removed.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Rows returned by one query at most.
pub const QUERY_MAX: usize = 10_000;

/// How long and how much history is kept.
#[derive(Debug, Clone)]
pub struct Retention {
    pub max_age: Duration,
    pub max_bytes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: Duration::from_secs(30 * 86_400),
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// One thing worth remembering.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A request passed the hub (or the web API sent one on `user`'s behalf).
    Request {
        at: f64,
        id: String,
        user: String,
        ty: String,
        target: String,
    },
    /// A reply from `node` to request `id`.
    Outcome {
        at: f64,
        id: String,
        node: String,
        ok: bool,
        /// `Kind: message` of an error reply.
        error: Option<String>,
    },
    Presence {
        at: f64,
        node: String,
        state: String,
    },
    /// A login or request the access rules refused.
    Refusal {
        at: f64,
        user: String,
        reason: String,
    },
}

/// One row of the history, as queries return it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Seconds since the Unix epoch.
    pub at: f64,
    /// `request`, `outcome`, `presence` or `refusal`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Who sent the request (for an outcome: who sent the request it answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The target of a request, the node of an outcome or presence change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The request's type (`eval`, `command:blink led`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    /// Outcomes, and a request answered by its one node (written as one row): whether the
    /// reply was a result (not an error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    /// An error's `Kind: message`, a presence state, a refusal's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What to look for.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Query {
    /// Rows about this node (a request's target, an outcome's or presence's node).
    pub node: Option<String>,
    /// Rows of requests this user sent, and their outcomes.
    pub user: Option<String>,
    /// Rows at or after this time (seconds since the Unix epoch).
    pub since: Option<f64>,
    /// Only failed outcomes (error replies), whether in an outcome row or a request's row.
    #[serde(default)]
    pub failed: bool,
    /// Only rows of this kind.
    pub kind: Option<String>,
    /// At most this many rows, newest first (default 100, at most [`QUERY_MAX`]).
    pub limit: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history database {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

/// The hooks' end of the history: cheap to clone, never blocks.
#[derive(Clone)]
pub struct Recorder {
    tx: SyncSender<Record>,
    metrics: Arc<HubMetrics>,
    /// Every record also goes here, for the live stream (lagging readers lose the oldest).
    live: broadcast::Sender<Record>,
}

impl Recorder {
    /// Opens (creating) the database at `path` and starts the writer thread. Without a path
    /// nothing is kept, but requests and replies are still matched for the metrics.
    pub fn open(
        path: Option<&Path>,
        retention: Retention,
        metrics: Arc<HubMetrics>,
    ) -> Result<Recorder, HistoryError> {
        let conn = path.map(open_rw).transpose()?;
        let (tx, rx) = sync_channel(QUEUE);
        let (live, _) = broadcast::channel(1024);
        let writer = Writer {
            conn,
            path: path.map(Path::to_owned).unwrap_or_default(),
            retention,
            metrics: metrics.clone(),
            pending: HashMap::new(),
            last_sweep: Instant::now(),
            last_trim: Instant::now(),
            unanswered_scan: Instant::now(),
        };
        std::thread::Builder::new()
            .name("plastic-history".into())
            .spawn(move || writer.run(rx))
            .expect("spawning the history writer");
        Ok(Recorder { tx, metrics, live })
    }

    /// Queues a record; drops it (counted) when the writer is this far behind.
    pub fn record(&self, record: Record) {
        if self.live.receiver_count() > 0 {
            let _ = self.live.send(record.clone());
        }
        match self.tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(record)) => {
                self.metrics.history_dropped.inc();
                // The writer keeps the counters (it matches replies to requests for their
                // type and latency); a record it never sees still counts, unmatched.
                match &record {
                    Record::Request { ty, .. } => {
                        self.metrics.requests.with_label_values(&[ty]).inc()
                    }
                    Record::Outcome { ok, .. } => self
                        .metrics
                        .outcomes
                        .with_label_values(&["other", if *ok { "ok" } else { "error" }])
                        .inc(),
                    _ => {}
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Every record from now on, as it is made.
    pub fn live(&self) -> broadcast::Receiver<Record> {
        self.live.subscribe()
    }
}

fn db_error(path: &Path) -> impl Fn(rusqlite::Error) -> HistoryError + '_ {
    move |source| HistoryError::Db {
        path: path.to_owned(),
        source,
    }
}

fn open_rw(path: &Path) -> Result<Connection, HistoryError> {
    let err = db_error(path);
    let conn = Connection::open(path).map_err(&err)?;
    // Several hubs may share one PLASTIC_HOME (tests do): wait for the others' writes.
    conn.busy_timeout(Duration::from_secs(5)).map_err(&err)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         CREATE TABLE IF NOT EXISTS history (
             seq INTEGER PRIMARY KEY,
             at REAL NOT NULL,
             kind TEXT NOT NULL,
             message_id TEXT,
             user TEXT,
             node TEXT,
             type TEXT,
             ok INTEGER,
             detail TEXT
         );
         CREATE INDEX IF NOT EXISTS history_at ON history(at);
         CREATE INDEX IF NOT EXISTS history_node ON history(node, at);
         CREATE INDEX IF NOT EXISTS history_user ON history(user, at);",
    )
    .map_err(&err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The audit trail names users and holds error messages: the owner's only.
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(conn)
}

struct Pending {
    at: f64,
    since: Instant,
    user: String,
    ty: String,
    target: String,
    answered: bool,
    /// Its row is in the database (with the first outcome, or after [`UNANSWERED_AFTER`]).
    written: bool,
}

/// A request's row waits this long for its reply, to be written with it as one row (half the
/// writes for the common case: one node, a quick answer); then it is written without.
const UNANSWERED_AFTER: Duration = Duration::from_secs(5);

struct Writer {
    conn: Option<Connection>,
    path: PathBuf,
    retention: Retention,
    metrics: Arc<HubMetrics>,
    pending: HashMap<String, Pending>,
    last_sweep: Instant,
    /// When the full pending map was last trimmed.
    last_trim: Instant,
    /// When the pending map is next scanned for requests unanswered past
    /// [`UNANSWERED_AFTER`]: at most once a second. (After every batch, the scan of up to
    /// 100,000 entries took a quarter of the hub's CPU under pipelined load, history on or off:
    /// measured with perf.)
    unanswered_scan: Instant,
}

impl Writer {
    fn run(mut self, rx: Receiver<Record>) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            // Woken at least once a second, so that unanswered requests get their rows.
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(first) => batch.push(first),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            if let Err(e) = self.write(&mut batch) {
                tracing::warn!("history: {e}; {} records lost", batch.len());
            }
            batch.clear();
            if self.last_sweep.elapsed() >= SWEEP_EVERY {
                self.last_sweep = Instant::now();
                if let Err(e) = self.sweep() {
                    tracing::warn!("history: removing old rows: {e}");
                }
            }
        }
    }

    fn write(&mut self, batch: &mut [Record]) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let err = db_error(&path);
        let mut conn = self.conn.take();
        let tx = conn.as_mut().map(Connection::transaction).transpose();
        let result = tx.map_err(&err).and_then(|tx| {
            self.apply(batch, tx.as_ref())?;
            tx.map_or(Ok(()), |tx| tx.commit().map_err(&err))
        });
        self.conn = conn;
        result
    }

    /// Counts `batch` in the metrics and inserts it through `tx` (if the history is kept).
    fn apply(
        &mut self,
        batch: &[Record],
        tx: Option<&rusqlite::Transaction>,
    ) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let err = db_error(&path);
        let mut insert = tx
            .map(|tx| {
                tx.prepare_cached(
                    "INSERT INTO history (at, kind, message_id, user, node, type, ok, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
            })
            .transpose()
            .map_err(&err)?;
        let mut insert = |row: &[&dyn rusqlite::ToSql]| -> Result<(), HistoryError> {
            match insert.as_mut() {
                Some(stmt) => stmt.execute(row).map(drop).map_err(&err),
                None => Ok(()),
            }
        };
        {
            for record in batch.iter() {
                match record {
                    Record::Request {
                        at,
                        id,
                        user,
                        ty,
                        target,
                    } => {
                        if self.pending.contains_key(id) {
                            // A resend of a request still waiting (same id): not a new one.
                            continue;
                        }
                        self.metrics.requests.with_label_values(&[ty]).inc();
                        if self.pending.len() >= PENDING_KEPT
                            && self.last_trim.elapsed() >= Duration::from_secs(1)
                        {
                            // Full: write what waits and keep only unanswered requests
                            // (answered ones only wait for duplicates and more broadcast
                            // outcomes). At most once a second: while it stays full, new
                            // requests are written at once and their replies go unmatched.
                            self.last_trim = Instant::now();
                            self.unanswered(Duration::ZERO, &mut insert)?;
                            forget_old(&mut self.pending);
                            self.pending.retain(|_, p| !p.answered);
                        }
                        let pending = Pending {
                            at: *at,
                            since: Instant::now(),
                            user: user.clone(),
                            ty: ty.clone(),
                            target: target.clone(),
                            answered: false,
                            written: false,
                        };
                        if self.pending.len() < PENDING_KEPT {
                            self.pending.insert(id.clone(), pending);
                        } else {
                            write_request(&mut insert, id, &pending, None)?;
                        }
                    }
                    Record::Outcome {
                        at,
                        id,
                        node,
                        ok,
                        error,
                    } => {
                        let outcome = if *ok { "ok" } else { "error" };
                        let Some(p) = self.pending.get_mut(id) else {
                            self.metrics
                                .outcomes
                                .with_label_values(&["other", outcome])
                                .inc();
                            insert(params![
                                at,
                                "outcome",
                                id,
                                None::<String>,
                                node,
                                None::<String>,
                                ok,
                                error
                            ])?;
                            continue;
                        };
                        if !p.answered {
                            p.answered = true;
                            self.metrics.latency.observe((at - p.at).max(0.0));
                        }
                        self.metrics
                            .outcomes
                            .with_label_values(&[p.ty.as_str(), outcome])
                            .inc();
                        if !p.written && p.target == *node {
                            // One node, answered: the request and its outcome in one row. The
                            // entry stays (until PENDING_FOR or the map is full), so a resend
                            // is known as one and a duplicate reply keeps its user and type.
                            p.written = true;
                            write_request(&mut insert, id, p, Some((*ok, error.as_deref())))?;
                            continue;
                        }
                        if !p.written {
                            p.written = true;
                            write_request(&mut insert, id, p, None)?;
                        }
                        insert(params![at, "outcome", id, p.user, node, p.ty, ok, error])?;
                    }
                    Record::Presence { at, node, state } => {
                        insert(params![
                            at,
                            "presence",
                            None::<String>,
                            None::<String>,
                            node,
                            None::<String>,
                            None::<bool>,
                            state
                        ])?;
                    }
                    Record::Refusal { at, user, reason } => {
                        insert(params![
                            at,
                            "refusal",
                            None::<String>,
                            user,
                            None::<String>,
                            None::<String>,
                            None::<bool>,
                            reason
                        ])?;
                    }
                }
            }
        }
        if Instant::now() < self.unanswered_scan {
            return Ok(());
        }
        self.unanswered_scan = Instant::now() + Duration::from_secs(1);
        self.unanswered(UNANSWERED_AFTER, &mut insert)
    }

    /// Writes the rows of requests unanswered for `after`.
    fn unanswered(
        &mut self,
        after: Duration,
        insert: &mut impl FnMut(&[&dyn rusqlite::ToSql]) -> Result<(), HistoryError>,
    ) -> Result<(), HistoryError> {
        for (id, p) in self.pending.iter_mut() {
            if !p.written && p.since.elapsed() >= after {
                p.written = true;
                write_request(insert, id, p, None)?;
            }
        }
        Ok(())
    }

    /// Removes rows past the age limit, then the oldest tenth while the file is over its size.
    fn sweep(&mut self) -> Result<(), HistoryError> {
        forget_old(&mut self.pending);
        let path = self.path.clone();
        let err = db_error(&path);
        let Some(conn) = self.conn.as_ref() else {
            return Ok(());
        };
        let cutoff = unix_now() - self.retention.max_age.as_secs_f64();
        conn.execute("DELETE FROM history WHERE at < ?1", params![cutoff])
            .map_err(&err)?;
        for _ in 0..10 {
            let size: i64 = conn
                .query_row(
                    "SELECT (page_count - freelist_count) * page_size FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()",
                    [],
                    |r| r.get(0),
                )
                .map_err(&err)?;
            if (size as u64) <= self.retention.max_bytes {
                break;
            }
            conn.execute(
                    "DELETE FROM history WHERE seq IN (SELECT seq FROM history ORDER BY seq LIMIT (SELECT COUNT(*) / 10 + 1 FROM history))",
                    [],
                )
                .map_err(&err)?;
        }
        Ok(())
    }
}

/// A request's row; with `outcome` (ok, error) when written together with its only reply.
fn write_request(
    insert: &mut impl FnMut(&[&dyn rusqlite::ToSql]) -> Result<(), HistoryError>,
    id: &str,
    p: &Pending,
    outcome: Option<(bool, Option<&str>)>,
) -> Result<(), HistoryError> {
    let (ok, error) = match outcome {
        Some((ok, error)) => (Some(ok), error),
        None => (None, None),
    };
    insert(params![
        p.at, "request", id, p.user, p.target, p.ty, ok, error
    ])
}

/// Requests older than [`PENDING_FOR`] get no more replies counted.
fn forget_old(pending: &mut HashMap<String, Pending>) {
    pending.retain(|_, p| p.since.elapsed() < PENDING_FOR);
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    plastic_proto::unix_seconds(std::time::SystemTime::now())
}

/// Runs `query` on the database at `path` (read only: the CLI may read while the hub writes).
pub fn query(path: &Path, q: &Query) -> Result<Vec<Row>, HistoryError> {
    let err = db_error(path);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&err)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(&err)?;
    query_on(&conn, q).map_err(err)
}

fn query_on(conn: &Connection, q: &Query) -> Result<Vec<Row>, rusqlite::Error> {
    let mut sql = String::from(
        "SELECT at, kind, message_id, user, node, type, ok, detail FROM history WHERE 1=1",
    );
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(node) = &q.node {
        sql.push_str(" AND node = ?");
        args.push(node.clone().into());
    }
    if let Some(user) = &q.user {
        // Their requests over MQTT, and over the web API (`USER (web)`).
        sql.push_str(" AND (user = ? OR user = ?)");
        args.push(user.clone().into());
        args.push(format!("{user} (web)").into());
    }
    if let Some(since) = q.since {
        sql.push_str(" AND at >= ?");
        args.push(since.into());
    }
    if q.failed {
        sql.push_str(" AND ok = 0");
    }
    if let Some(kind) = &q.kind {
        sql.push_str(" AND kind = ?");
        args.push(kind.clone().into());
    }
    let limit = q.limit.unwrap_or(100).min(QUERY_MAX);
    sql.push_str(&format!(" ORDER BY seq DESC LIMIT {limit}"));
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
        Ok(Row {
            at: r.get(0)?,
            kind: r.get(1)?,
            message_id: r.get(2)?,
            user: r.get(3)?,
            node: r.get(4)?,
            r#type: r.get(5)?,
            ok: r.get(6)?,
            detail: r.get(7)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_rows(path: &Path, q: &Query, n: usize) -> Vec<Row> {
        // The writer is a thread: poll the database until it has written (bounded).
        for _ in 0..500 {
            let rows = query(path, q).unwrap();
            if rows.len() >= n {
                return rows;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        query(path, q).unwrap()
    }

    #[test]
    fn requests_outcomes_and_queries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let metrics = Arc::new(HubMetrics::new());
        let rec = Recorder::open(Some(&path), Retention::default(), metrics.clone()).unwrap();
        let now = unix_now();
        rec.record(Record::Request {
            at: now,
            id: "m1".into(),
            user: "alice".into(),
            ty: "eval".into(),
            target: "all".into(),
        });
        rec.record(Record::Outcome {
            at: now + 0.002,
            id: "m1".into(),
            node: "esp-1".into(),
            ok: false,
            error: Some("ZeroDivisionError: division by zero".into()),
        });
        rec.record(Record::Outcome {
            at: now + 0.003,
            id: "m1".into(),
            node: "esp-2".into(),
            ok: true,
            error: None,
        });
        rec.record(Record::Presence {
            at: now,
            node: "esp-1".into(),
            state: "online".into(),
        });
        let all = wait_rows(&path, &Query::default(), 4);
        assert_eq!(all.len(), 4);
        let failed = query(
            &path,
            &Query {
                node: Some("esp-1".into()),
                failed: true,
                ..Query::default()
            },
        )
        .unwrap();
        assert_eq!(failed.len(), 1);
        let f = &failed[0];
        assert_eq!(
            f.user.as_deref(),
            Some("alice"),
            "who ran it, from the request"
        );
        assert_eq!(f.r#type.as_deref(), Some("eval"));
        assert_eq!(f.ok, Some(false));
        assert!(f
            .detail
            .as_deref()
            .unwrap()
            .starts_with("ZeroDivisionError"));
        let later = query(
            &path,
            &Query {
                since: Some(now + 1.0),
                ..Query::default()
            },
        )
        .unwrap();
        assert!(later.is_empty());
        assert_eq!(
            metrics.latency.get_sample_count(),
            1,
            "the first reply only"
        );
        assert_eq!(
            metrics.outcomes.with_label_values(&["eval", "error"]).get(),
            1
        );
    }

    #[test]
    fn a_query_is_not_sql() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let rec = Recorder::open(
            Some(&path),
            Retention::default(),
            Arc::new(HubMetrics::new()),
        )
        .unwrap();
        rec.record(Record::Refusal {
            at: unix_now(),
            user: "mallory".into(),
            reason: "no".into(),
        });
        wait_rows(&path, &Query::default(), 1);
        let q = Query {
            node: Some("x' OR '1'='1".into()),
            ..Query::default()
        };
        assert!(query(&path, &q).unwrap().is_empty());
    }

    fn writer(path: &Path) -> Writer {
        Writer {
            conn: Some(open_rw(path).unwrap()),
            path: path.to_owned(),
            retention: Retention::default(),
            metrics: Arc::new(HubMetrics::new()),
            pending: HashMap::new(),
            last_sweep: Instant::now(),
            last_trim: Instant::now(),
            unanswered_scan: Instant::now(),
        }
    }

    #[test]
    fn one_node_answered_is_one_row_and_unanswered_requests_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let mut w = writer(&path);
        let now = unix_now();
        let request = |id: &str| Record::Request {
            at: now,
            id: id.into(),
            user: "bob".into(),
            ty: "exec".into(),
            target: "pi-1".into(),
        };
        let mut batch = vec![
            request("answered"),
            request("silent"),
            // A client's resend of the same request: not a second row.
            request("silent"),
            Record::Outcome {
                at: now + 0.001,
                id: "answered".into(),
                node: "pi-1".into(),
                ok: true,
                error: None,
            },
        ];
        w.write(&mut batch).unwrap();
        let rows = query_on(w.conn.as_ref().unwrap(), &Query::default()).unwrap();
        assert_eq!(
            rows.len(),
            1,
            "the silent one waits for its reply: {rows:?}"
        );
        assert_eq!(rows[0].kind, "request");
        assert_eq!(rows[0].message_id.as_deref(), Some("answered"));
        assert_eq!(rows[0].ok, Some(true));
        // Unanswered past the wait: written without an outcome.
        for p in w.pending.values_mut() {
            p.since -= UNANSWERED_AFTER;
        }
        w.unanswered_scan = Instant::now();
        w.write(&mut []).unwrap();
        let rows = query_on(w.conn.as_ref().unwrap(), &Query::default()).unwrap();
        assert_eq!(rows.len(), 2);
        let silent = rows
            .iter()
            .find(|r| r.message_id.as_deref() == Some("silent"))
            .unwrap();
        assert_eq!((silent.ok, silent.user.as_deref()), (None, Some("bob")));
        // A late reply is an outcome row of its own.
        w.write(&mut [Record::Outcome {
            at: now + 9.0,
            id: "silent".into(),
            node: "pi-1".into(),
            ok: false,
            error: Some("Timeout: late".into()),
        }])
        .unwrap();
        let failed = query_on(
            w.conn.as_ref().unwrap(),
            &Query {
                failed: true,
                ..Query::default()
            },
        )
        .unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].kind, "outcome");
        assert_eq!(failed[0].r#type.as_deref(), Some("exec"));
    }

    #[test]
    fn old_rows_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let conn = open_rw(&path).unwrap();
        let mut w = Writer {
            conn: Some(conn),
            path: path.clone(),
            retention: Retention {
                max_age: Duration::from_secs(3600),
                max_bytes: u64::MAX,
            },
            metrics: Arc::new(HubMetrics::new()),
            pending: HashMap::new(),
            last_sweep: Instant::now(),
            last_trim: Instant::now(),
            unanswered_scan: Instant::now(),
        };
        let now = unix_now();
        let mut batch = vec![
            Record::Presence {
                at: now - 7200.0,
                node: "old".into(),
                state: "online".into(),
            },
            Record::Presence {
                at: now,
                node: "new".into(),
                state: "online".into(),
            },
        ];
        w.write(&mut batch).unwrap();
        w.sweep().unwrap();
        let rows = query_on(w.conn.as_ref().unwrap(), &Query::default()).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].node.as_deref(), Some("new"));
    }

    fn writer_with(path: &Path, retention: Retention) -> Writer {
        Writer {
            conn: Some(open_rw(path).unwrap()),
            path: path.to_path_buf(),
            retention,
            metrics: Arc::new(HubMetrics::new()),
            pending: HashMap::new(),
            last_sweep: Instant::now(),
            last_trim: Instant::now(),
            unanswered_scan: Instant::now(),
        }
    }

    fn presences(n: usize, at: f64) -> Vec<Record> {
        (0..n)
            .map(|i| Record::Presence {
                at: at + i as f64 * 1e-3,
                node: format!("node-{i:05}-{}", "x".repeat(40)),
                state: "online".into(),
            })
            .collect()
    }

    /// Over `--history-max-mib`, the oldest rows go (a tenth at a time) until the data fits;
    /// the newest stay.
    #[test]
    fn a_history_over_its_size_loses_its_oldest_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let max_bytes = 256 * 1024;
        let mut w = writer_with(
            &path,
            Retention {
                max_age: Duration::from_secs(3600),
                max_bytes,
            },
        );
        let mut batch = presences(20_000, unix_now() - 60.0);
        w.write(&mut batch).unwrap();
        let conn = w.conn.as_ref().unwrap();
        let count = |c: &Connection| -> i64 {
            c.query_row("SELECT COUNT(*) FROM history", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(count(conn), 20_000);
        // A sweep removes at most ten tenths; the writer sweeps every so often.
        for _ in 0..3 {
            w.sweep().unwrap();
        }
        let conn = w.conn.as_ref().unwrap();
        let kept = count(conn);
        let size: i64 = conn
            .query_row(
                "SELECT (page_count - freelist_count) * page_size FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(kept > 0 && kept < 20_000, "kept {kept}");
        assert!(size as u64 <= max_bytes, "{size} bytes after the sweep");
        let newest = query_on(
            conn,
            &Query {
                limit: Some(1),
                ..Query::default()
            },
        )
        .unwrap();
        assert!(newest[0].node.as_deref().unwrap().starts_with("node-19999"));
    }

    /// A query returns at most [`QUERY_MAX`] rows whatever limit it asks for.
    #[test]
    fn queries_return_at_most_query_max_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let mut w = writer_with(&path, Retention::default());
        let mut batch = presences(QUERY_MAX + 5, unix_now());
        w.write(&mut batch).unwrap();
        let rows = query_on(
            w.conn.as_ref().unwrap(),
            &Query {
                limit: Some(1_000_000),
                ..Query::default()
            },
        )
        .unwrap();
        assert_eq!(rows.len(), QUERY_MAX);
        let rows = query_on(w.conn.as_ref().unwrap(), &Query::default()).unwrap();
        assert_eq!(rows.len(), 100, "the default limit");
    }
}
