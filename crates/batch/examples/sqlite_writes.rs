//! Batched writes to a real SQLite database: each batch the batcher forms is ONE transaction.
//!
//! Many concurrent callers each insert rows one at a time with `batcher.call(row).await`. A
//! single writer thread owns the `rusqlite::Connection` (it is `Send` but not `Sync`, and
//! SQLite allows one writer at a time anyway); the batch handler hands the whole batch to that
//! thread, which runs `BEGIN IMMEDIATE; INSERT …; COMMIT` and returns one rowid per request.
//! Then the same callers write the same number of rows again, each call running its own
//! one-row transaction on the same kind of writer thread: the usual code without a batcher.
//! Both runs use a fresh file database in the system temp dir, in WAL mode with SQLite's default
//! `synchronous` setting (FULL, so every COMMIT is an fsync), which makes the per-transaction
//! cost — and what batching saves — real. The example prints rows/s, latency and batch size for
//! both, and the speed-up; then it checks that every row is in the table and that every caller
//! got back the rowid of its own row, and exits non-zero if not.
//!
//! ```text
//! cargo run --release -p ticktock-batch --example sqlite_writes -- --quick
//! cargo run --release -p ticktock-batch --example sqlite_writes -- --callers 50 --rows 200
//! ```
//!
//! Flags: `--callers N` concurrent callers (default 50), `--rows M` rows per caller (default
//! 200), `--quick` 20 callers × 50 rows unless given otherwise.

use std::collections::{HashMap, HashSet};
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior, params};
use ticktock_batch::{BatchStats, Batcher};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// Errors that cross tasks, so they must be `Send + Sync`.
type BoxError = Box<dyn Error + Send + Sync>;

/// Rows per batch at most: above the default number of callers, so that a batch can take every
/// caller that waits; with more callers it keeps one transaction from growing without bound.
const MAX_BATCH_SIZE: usize = 256;

/// How long closing a database may take once its users are gone.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

const USAGE: &str = "\
usage: sqlite_writes [--callers N] [--rows M] [--quick]
  --callers N   concurrent callers (default 50)
  --rows M      rows each caller inserts (default 200)
  --quick       20 callers x 50 rows (explicit --callers/--rows still win)";

/// The load: `callers` concurrent callers, each inserting `rows` rows one call at a time.
#[derive(Debug, Clone, Copy)]
struct Load {
    callers: u32,
    rows: u32,
}

impl Load {
    fn total(self) -> u64 {
        u64::from(self.callers) * u64::from(self.rows)
    }
}

/// What the command line asked for.
enum Command {
    Run(Load),
    Help,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Command, String> {
    let (mut callers, mut rows, mut quick) = (None, None, false);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--callers" => callers = Some(positive(&arg, args.next())?),
            "--rows" => rows = Some(positive(&arg, args.next())?),
            "--quick" => quick = true,
            "-h" | "--help" => return Ok(Command::Help),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let (default_callers, default_rows) = if quick { (20, 50) } else { (50, 200) };
    Ok(Command::Run(Load {
        callers: callers.unwrap_or(default_callers),
        rows: rows.unwrap_or(default_rows),
    }))
}

fn positive(flag: &str, value: Option<String>) -> Result<u32, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
    match value.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{flag} wants a positive integer, got `{value}`")),
    }
}

/// One row to insert.
#[derive(Debug)]
struct Row {
    caller: u32,
    seq: u32,
    payload: String,
}

impl Row {
    fn new(caller: u32, seq: u32) -> Self {
        // About 100 bytes, like a small event record.
        let payload = format!("caller={caller:05} seq={seq:06} {}", "x".repeat(72));
        Self {
            caller,
            seq,
            payload,
        }
    }
}

/// Why a write failed.
#[derive(Debug)]
enum WriteError {
    Sqlite(rusqlite::Error),
    /// The writer thread is gone (it stops when every `Writer` is dropped, or if a job panicked).
    WriterGone,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(error) => write!(f, "sqlite: {error}"),
            Self::WriterGone => f.write_str("the writer thread is gone"),
        }
    }
}

impl Error for WriteError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Sqlite(error) => Some(error),
            Self::WriterGone => None,
        }
    }
}

/// Work for the writer thread.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A handle to the thread that owns the connection. `Connection` is not `Sync`, so it cannot
/// sit behind the `Send + Sync` handler the batcher wants; jobs go to its thread instead.
/// The thread also serialises every write, which is what SQLite does anyway.
#[derive(Clone)]
struct Writer {
    jobs: mpsc::Sender<Job>,
}

/// Reports once the writer thread has closed its connection.
struct Closed(oneshot::Receiver<rusqlite::Result<()>>);

/// How the database was opened, for the report.
struct DbInfo {
    journal_mode: String,
    synchronous: &'static str,
}

impl Writer {
    /// Opens (creates) the database at `path` and starts its writer thread.
    fn open(path: &Path) -> Result<(Self, Closed, DbInfo), BoxError> {
        let connection = Connection::open(path)?;
        // WAL: the usual mode for a write-heavy database. `synchronous` stays at SQLite's
        // default, so a commit is as durable as an application would normally get.
        let journal_mode: String =
            connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        let synchronous =
            match connection.pragma_query_value(None, "synchronous", |row| row.get::<_, i64>(0))? {
                0 => "OFF",
                1 => "NORMAL",
                2 => "FULL",
                3 => "EXTRA",
                _ => "unknown",
            };
        connection.execute_batch(
            "CREATE TABLE events (
                 id INTEGER PRIMARY KEY,
                 caller INTEGER NOT NULL,
                 seq INTEGER NOT NULL,
                 payload TEXT NOT NULL
             )",
        )?;
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (closed, on_closed) = oneshot::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                let mut connection = connection;
                // Runs until every `Writer` (including the batch handler's) is dropped.
                while let Ok(job) = inbox.recv() {
                    job(&mut connection);
                }
                // Nobody may be listening any more; the result is only a report.
                let _ = closed.send(connection.close().map_err(|(_, error)| error));
            })?;
        let info = DbInfo {
            journal_mode,
            synchronous,
        };
        Ok((Self { jobs }, Closed(on_closed), info))
    }

    /// Runs `work` on the writer thread and returns its result.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, WriteError> {
        let (done, result) = oneshot::channel();
        self.jobs
            .send(Box::new(move |connection| {
                // The caller may have stopped waiting; the write happened all the same.
                let _ = done.send(work(connection));
            }))
            .map_err(|_| WriteError::WriterGone)?;
        result
            .await
            .map_err(|_| WriteError::WriterGone)?
            .map_err(WriteError::Sqlite)
    }

    /// Inserts `rows` in one transaction; one rowid per row, in order.
    async fn insert(&self, rows: Vec<Row>) -> Result<Vec<i64>, WriteError> {
        self.run(move |connection| insert_rows(connection, &rows))
            .await
    }
}

/// One transaction for all of `rows`: if any insert fails, none is kept (the transaction rolls
/// back when dropped) and every request of the batch gets the error.
fn insert_rows(connection: &mut Connection, rows: &[Row]) -> rusqlite::Result<Vec<i64>> {
    // IMMEDIATE takes the write lock at BEGIN rather than at the first INSERT, the usual
    // choice for a write transaction (it cannot fail with SQLITE_BUSY half-way).
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let ids = {
        // Cached: prepared once per connection, not once per batch.
        let mut insert = transaction
            .prepare_cached("INSERT INTO events (caller, seq, payload) VALUES (?1, ?2, ?3)")?;
        rows.iter()
            .map(|row| insert.insert(params![row.caller, row.seq, row.payload]))
            .collect::<rusqlite::Result<Vec<_>>>()?
    };
    transaction.commit()?;
    Ok(ids)
}

/// Waits for the writer thread to close its connection, once every `Writer` is dropped.
async fn close(closed: Closed) -> Result<(), BoxError> {
    match tokio::time::timeout(CLOSE_TIMEOUT, closed.0).await {
        Ok(Ok(result)) => Ok(result?),
        Ok(Err(_)) => Err("the writer thread ended without closing its connection".into()),
        Err(_) => Err(format!(
            "the writer thread still had users {CLOSE_TIMEOUT:?} after the load ended \
             (is the batch handler still alive?)"
        )
        .into()),
    }
}

/// What the callers saw.
struct CallerLog {
    elapsed: Duration,
    /// One per call.
    latencies: Vec<Duration>,
    /// `(caller, seq, returned id)` per call.
    ids: Vec<(u32, u32, i64)>,
}

/// Runs `load.callers` tasks, each inserting `load.rows` rows one `submit` at a time, and times
/// the whole and every call.
async fn run_callers<F, Fut, E>(load: Load, submit: F) -> Result<CallerLog, BoxError>
where
    F: Fn(Row) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<i64, E>> + Send,
    E: Error + Send + Sync + 'static,
{
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for caller in 0..load.callers {
        let submit = submit.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(load.rows as usize);
            let mut ids = Vec::with_capacity(load.rows as usize);
            for seq in 0..load.rows {
                let call = Instant::now();
                let id = submit(Row::new(caller, seq)).await?;
                latencies.push(call.elapsed());
                ids.push((caller, seq, id));
            }
            Ok::<_, E>((latencies, ids))
        });
    }
    let mut log = CallerLog {
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        ids: Vec::new(),
    };
    while let Some(joined) = tasks.join_next().await {
        let (latencies, ids) = joined??;
        log.latencies.extend(latencies);
        log.ids.extend(ids);
    }
    log.elapsed = started.elapsed();
    Ok(log)
}

/// One row of the report.
struct Phase {
    mode: &'static str,
    rows: u64,
    elapsed: Duration,
    p50_ms: f64,
    p99_ms: f64,
    mean_batch: f64,
    /// Further figures, printed under the table.
    notes: Vec<String>,
    /// Correctness checks: what, and whether it held.
    checks: Vec<(String, bool)>,
}

impl Phase {
    fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64()
    }
}

/// The `q` quantile (nearest rank) of `sorted`, in ms.
fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

/// Checks what the database holds against what the callers got back: the row count, that
/// every id is unique, and that each id is the row of the caller and sequence number that got
/// it (so no response went to the wrong caller).
async fn verify(
    writer: &Writer,
    load: Load,
    log: &CallerLog,
) -> Result<Vec<(String, bool)>, BoxError> {
    let stored = writer
        .run(|connection| {
            let mut select = connection.prepare("SELECT id, caller, seq FROM events")?;
            select
                .query_map([], |row| {
                    Ok((row.get::<_, i64>(0)?, (row.get(1)?, row.get(2)?)))
                })?
                .collect::<rusqlite::Result<HashMap<i64, (u32, u32)>>>()
        })
        .await?;
    // SQLite integers are i64; a count is never negative.
    let count: i64 = writer
        .run(|connection| connection.query_row("SELECT COUNT(*) FROM events", [], |row| row.get(0)))
        .await?;
    let expected = load.total();
    let unique: HashSet<i64> = log.ids.iter().map(|&(_, _, id)| id).collect();
    let matching = log
        .ids
        .iter()
        .filter(|&&(caller, seq, id)| stored.get(&id) == Some(&(caller, seq)))
        .count();
    Ok(vec![
        (
            format!("COUNT(*) = {count}, rows written {expected}"),
            u64::try_from(count) == Ok(expected),
        ),
        (
            format!("{} ids returned, {} unique", log.ids.len(), unique.len()),
            log.ids.len() as u64 == expected && unique.len() == log.ids.len(),
        ),
        (
            format!(
                "{matching} of {} ids are the caller's own row",
                log.ids.len()
            ),
            matching == log.ids.len(),
        ),
    ])
}

/// The batcher in front of the writer: every batch is one transaction.
async fn batched(path: &Path, load: Load) -> Result<Phase, BoxError> {
    let (writer, closed, _) = Writer::open(path)?;
    let handler_writer = writer.clone();
    let batcher = Batcher::builder()
        .name("sqlite_writes")
        .max_batch_size(MAX_BATCH_SIZE)
        // SQLite has one writer: a second batch could only wait for the first one's lock.
        .max_concurrent_batches(1)
        .build(move |rows: Vec<Row>| {
            let writer = handler_writer.clone();
            async move { writer.insert(rows).await }
        })?;
    let log = {
        let batcher = batcher.clone();
        run_callers(load, move |row| {
            let batcher = batcher.clone();
            async move { batcher.call(row).await }
        })
        .await?
    };
    // The last batch answers its callers before it records its figures, so a snapshot taken
    // the moment the last caller returns may not include it yet.
    let served_at_return = batcher.stats().served;
    // Shutdown waits for the running batch, after which the figures are complete.
    batcher.shutdown().await;
    let stats: BatchStats = batcher.stats();
    drop(batcher);

    let mut checks = verify(&writer, load, &log).await?;
    checks.push((
        format!(
            "batcher served {} of {} requests, {} failed",
            stats.served,
            load.total(),
            stats.handler_errors + stats.handler_panics + stats.wrong_response_counts
        ),
        stats.served == load.total(),
    ));
    drop(writer);
    close(closed).await?;

    let mut sorted = log.latencies;
    sorted.sort_unstable();
    let mut notes = vec![
        format!(
            "batched: {} transactions, batch size p50 {:.0} / max {:.0}, transaction time \
             p50 {:.2} ms / p99 {:.2} ms, queue depth max {}",
            stats.batches,
            stats.batch_size.p50,
            stats.batch_size.max,
            stats.handler_us.p50 / 1e3,
            stats.handler_us.p99 / 1e3,
            stats.queue_depth_max
        ),
        format!(
            "batched: caller-measured latency p50 {:.2} ms / p99 {:.2} ms (table: batcher.stats(), \
             admission to response)",
            quantile_ms(&sorted, 0.5),
            quantile_ms(&sorted, 0.99)
        ),
    ];
    if served_at_return != stats.served {
        notes.push(format!(
            "batched: stats() read as the last caller returned showed {served_at_return} served; \
             after shutdown() {}",
            stats.served
        ));
    }
    Ok(Phase {
        mode: "batched (1 tx/batch)",
        rows: load.total(),
        elapsed: log.elapsed,
        p50_ms: stats.latency_us.p50 / 1e3,
        p99_ms: stats.latency_us.p99 / 1e3,
        mean_batch: stats.batch_size.mean,
        notes,
        checks,
    })
}

/// The baseline: the same callers and rows, each call its own one-row transaction on the same
/// kind of writer thread, no batcher.
async fn per_row(path: &Path, load: Load) -> Result<Phase, BoxError> {
    let (writer, closed, _) = Writer::open(path)?;
    let log = {
        let writer = writer.clone();
        run_callers(load, move |row| {
            let writer = writer.clone();
            async move {
                let ids = writer.insert(vec![row]).await?;
                // `insert` returns one id per row; a missing one would be a bug here.
                ids.first()
                    .copied()
                    .ok_or(WriteError::Sqlite(rusqlite::Error::QueryReturnedNoRows))
            }
        })
        .await?
    };
    let checks = verify(&writer, load, &log).await?;
    drop(writer);
    close(closed).await?;

    let mut sorted = log.latencies;
    sorted.sort_unstable();
    Ok(Phase {
        mode: "1 tx per row",
        rows: load.total(),
        elapsed: log.elapsed,
        p50_ms: quantile_ms(&sorted, 0.5),
        p99_ms: quantile_ms(&sorted, 0.99),
        mean_batch: 1.0,
        notes: vec!["1 tx per row: latency caller-measured (call to id)".to_owned()],
        checks,
    })
}

/// A fresh directory under the system temp dir, removed (with everything in it) when dropped,
/// also when the run fails half-way.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "ticktock-batch-sqlite-{}-{nanos}",
            std::process::id()
        ));
        // `create_dir`, not `create_dir_all`: fails rather than share an existing directory.
        std::fs::create_dir(&path)?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.0) {
            eprintln!("warning: could not remove {}: {error}", self.0.display());
        }
    }
}

/// Runs both phases and prints the report; `Ok(false)` if a check failed.
async fn run(load: Load) -> Result<bool, BoxError> {
    let dir = TempDir::new()?;
    // Opened here only to report the settings both runs get.
    let info = {
        let probe = dir.0.join("probe.db");
        let (writer, closed, info) = Writer::open(&probe)?;
        drop(writer);
        close(closed).await?;
        info
    };
    println!(
        "SQLite {} (bundled), databases in {}: journal_mode={}, synchronous={} (SQLite's \
         default, not changed)",
        rusqlite::version(),
        dir.0.display(),
        info.journal_mode,
        info.synchronous
    );
    println!(
        "{} callers x {} rows = {} rows per run, each caller one row per call\n",
        load.callers,
        load.rows,
        load.total()
    );

    let phases = [
        batched(&dir.0.join("batched.db"), load).await?,
        per_row(&dir.0.join("per_row.db"), load).await?,
    ];

    println!(
        "{:<22} {:>8} {:>9} {:>10} {:>8} {:>8} {:>11}",
        "mode", "rows", "seconds", "rows/s", "p50 ms", "p99 ms", "mean batch"
    );
    for phase in &phases {
        println!(
            "{:<22} {:>8} {:>9.3} {:>10.0} {:>8.2} {:>8.2} {:>11.1}",
            phase.mode,
            phase.rows,
            phase.elapsed.as_secs_f64(),
            phase.rows_per_second(),
            phase.p50_ms,
            phase.p99_ms,
            phase.mean_batch
        );
    }
    let [batched, per_row] = &phases;
    println!(
        "speed-up (rows/s batched / 1 tx per row): {:.1}x\n",
        batched.rows_per_second() / per_row.rows_per_second()
    );
    for note in phases.iter().flat_map(|phase| &phase.notes) {
        println!("{note}");
    }
    println!();
    let mut all_ok = true;
    for phase in &phases {
        for (what, ok) in &phase.checks {
            println!(
                "check {:<22} {:<6} {what}",
                phase.mode,
                if *ok { "ok" } else { "FAILED" }
            );
            all_ok &= ok;
        }
    }
    Ok(all_ok)
}

#[tokio::main]
async fn main() -> ExitCode {
    let load = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(load)) => load,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(load).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("error: a correctness check failed");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
