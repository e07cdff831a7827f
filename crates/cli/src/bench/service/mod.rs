//! The timer service's workloads: the `ticktock` crate's [`TimerService`] side by side with
//! tokio's own timer, on real tokio runtimes and the real clock.
//!
//! - [`arm`] (`service`): create a sleep 1–10 s ahead, poll it once so it registers, drop it
//!   (which cancels it), in a tight loop on 1 and 2 worker threads.
//! - [`rearm`] (`rearm`): push the idle timeout of many connections later, once per packet.
//! - [`lateness`] (`lateness`): many live timers on the real clock; how late each one fires.
//! - [`idle`] (`idle`): process CPU while many timers an hour away wait.
//!
//! Every runner owns its runtime (and, for ticktock, its service), built before anything is
//! timed. The timed loops are the same code for both sides: only the timer calls differ.

mod arm;
mod idle;
mod lateness;
mod rearm;

use std::collections::HashMap;
use std::io;
use std::sync::OnceLock;
use std::time::Duration;

use ticktock::{TimerHandle, TimerService, TimerServiceBuilder};
use tokio::runtime::{Builder, Runtime};

pub use self::arm::ArmSpec;
pub use self::idle::IdleSpec;
pub use self::lateness::LatenessSpec;
pub use self::rearm::{RearmOrder, RearmSpec};
use crate::error::CliError;

/// The ticktock timer service (the `ticktock` crate): the reference row of these workloads.
pub const TICKTOCK: &str = "ticktock";
/// `tokio::time::sleep` / `sleep_until` / `Sleep::reset`.
pub const TOKIO_SLEEP: &str = "tokio-sleep";
/// `tokio::time::timeout` around a future that never completes.
pub const TOKIO_TIMEOUT: &str = "tokio-timeout";
/// The same runtime with no timers at all (the idle workload's floor).
pub const NO_TIMERS: &str = "no timers";

/// The service's tick length in every workload.
pub const RESOLUTION: Duration = Duration::from_millis(1);

/// A multi-thread runtime with `workers` worker threads and tokio's time driver (real clock).
fn multi_thread(workers: usize) -> Result<Runtime, CliError> {
    Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_time()
        .build()
        .map_err(CliError::Runtime)
}

/// A current-thread runtime with tokio's time driver (real clock).
pub(crate) fn current_thread() -> Result<Runtime, CliError> {
    Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(CliError::Runtime)
}

/// The settings every ticktock service of these workloads uses: 1 ms ticks on the system clock
/// (what the global service and production use: a driver thread with exact timeouts).
fn builder(shards: usize, capacity_per_shard: usize) -> TimerServiceBuilder {
    TimerService::builder()
        .clock(ticktock::Clock::System)
        .shards(shards)
        .resolution(RESOLUTION)
        .capacity_per_shard(capacity_per_shard)
}

/// Starts a ticktock service (its driver is a thread; `runtime` is entered for symmetry with
/// the tokio rows, whose timers live on it).
pub(crate) fn start_service(
    runtime: &Runtime,
    shards: usize,
    capacity_per_shard: usize,
) -> Result<TimerService, CliError> {
    let _context = runtime.enter();
    Ok(builder(shards, capacity_per_shard).start()?)
}

/// Starts a process-long ticktock service, as `ticktock::global()` is: handles without
/// reference counting.
fn start_static_service(shards: usize, capacity_per_shard: usize) -> Result<TimerHandle, CliError> {
    Ok(builder(shards, capacity_per_shard).start_static()?)
}

/// Counter deltas of a ticktock service, as one remark.
pub(crate) fn service_remark(
    handle: &TimerHandle,
    before: &ticktock::TimerStats,
    what: &str,
) -> String {
    let after = handle.stats();
    format!(
        "{TICKTOCK} service counters {what}: armed {}, cancelled {}, reset {}, fired {}, \
         connection re-files {}, driver wake-ups {}; timers live at the end: {}",
        after.armed - before.armed,
        after.cancelled - before.cancelled,
        after.reset - before.reset,
        after.processed - before.processed,
        after.connection_rearms - before.connection_rearms,
        after.driver_wakeups - before.driver_wakeups,
        after.total_timers,
    )
}

/// The CPU time of this process's threads at one moment, for measuring what a stretch of wall
/// time cost: [`CpuReading::since`] gives the CPU time (all threads, user + system) used
/// between two readings.
///
/// Read from `/proc/self/task/*/schedstat` (nanoseconds on the CPU, per thread) where the
/// kernel has it, keyed by thread so that threads which ended before the first reading do not
/// matter; otherwise from `/proc/self/stat`'s `utime` + `stime` (fields 14 and 15, in clock
/// ticks of 10 ms).
#[derive(Debug, Clone)]
pub enum CpuReading {
    /// Nanoseconds on the CPU per thread id.
    PerThread(HashMap<u64, u64>),
    /// The whole process, from `/proc/self/stat`.
    Process(Duration),
}

impl CpuReading {
    /// Reads the clock. The source is chosen once per process, at the first reading, so any
    /// two readings can be subtracted.
    pub fn now() -> Result<Self, CliError> {
        static PER_THREAD: OnceLock<bool> = OnceLock::new();
        let per_thread = *PER_THREAD
            .get_or_init(|| schedstat_per_thread().is_ok_and(|threads| !threads.is_empty()));
        if per_thread {
            schedstat_per_thread()
                .map(Self::PerThread)
                .map_err(CliError::CpuTime)
        } else {
            stat_cpu_time()
                .map(Self::Process)
                .map_err(CliError::CpuTime)
        }
    }

    /// CPU time thread `tid` used from `earlier` to this reading; `None` when readings are not
    /// per thread or this one does not have the thread.
    pub fn thread_since(&self, earlier: &Self, tid: u64) -> Option<Duration> {
        match (self, earlier) {
            (Self::PerThread(now), Self::PerThread(then)) => {
                let now = now.get(&tid)?;
                Some(Duration::from_nanos(
                    now.saturating_sub(then.get(&tid).copied().unwrap_or(0)),
                ))
            }
            _ => None,
        }
    }

    /// The kernel's id of the calling thread (`/proc/thread-self`), if it can be read.
    pub fn current_thread_id() -> Option<u64> {
        let link = std::fs::read_link("/proc/thread-self").ok()?;
        link.file_name()?.to_str()?.parse().ok()
    }

    /// CPU time used from `earlier` to this reading. A thread that started in between counts
    /// in full; one that ended in between is missing.
    pub fn since(&self, earlier: &Self) -> Duration {
        match (self, earlier) {
            (Self::PerThread(now), Self::PerThread(then)) => {
                let nanos = now
                    .iter()
                    .map(|(tid, &ns)| ns.saturating_sub(then.get(tid).copied().unwrap_or(0)))
                    .sum();
                Duration::from_nanos(nanos)
            }
            (Self::Process(now), Self::Process(then)) => now.saturating_sub(*then),
            // `now` picks one source per process, so two readings never mix them.
            _ => Duration::ZERO,
        }
    }
}

fn schedstat_per_thread() -> io::Result<HashMap<u64, u64>> {
    let mut threads = HashMap::new();
    for task in std::fs::read_dir("/proc/self/task")? {
        let task = task?;
        let Some(tid) = task.file_name().to_str().and_then(|name| name.parse().ok()) else {
            continue;
        };
        // A thread that ends after the directory was listed makes this read fail (with ENOENT
        // or ESRCH, depending on how far it got): it has no CPU time left to count.
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        threads.insert(tid, parse_field(text.split_whitespace().next())?);
    }
    Ok(threads)
}

/// Clock ticks per second of `/proc/self/stat`'s times: `sysconf(_SC_CLK_TCK)`, 100 on Linux.
const CLOCK_TICKS_PER_SECOND: u64 = 100;

fn stat_cpu_time() -> io::Result<Duration> {
    let text = std::fs::read_to_string("/proc/self/stat")?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let after_name = text
        .rfind(')')
        .map(|at| &text[at + 1..])
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no ')' in /proc/self/stat"))?;
    // After the name come field 3 (state), 4, …: utime is field 14, stime field 15.
    let mut fields = after_name.split_whitespace().skip(14 - 3);
    let utime = parse_field(fields.next())?;
    let stime = parse_field(fields.next())?;
    let ticks = utime + stime;
    Ok(Duration::from_millis(ticks * 1000 / CLOCK_TICKS_PER_SECOND))
}

fn parse_field(field: Option<&str>) -> io::Result<u64> {
    field
        .and_then(|field| field.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc format"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spins the calling thread for `wall`.
    fn burn(wall: Duration) {
        let started = std::time::Instant::now();
        let mut x = 1u64;
        while started.elapsed() < wall {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }

    #[test]
    fn cpu_readings_see_a_busy_thread_from_both_sources() {
        let before = CpuReading::now().expect("cpu time");
        let stat_before = stat_cpu_time().expect("/proc/self/stat");
        // On a thread of its own that ends before the second reading: the per-thread reading
        // must not lose what threads that exited before the first one used, and this one
        // ends after it, so only the main-thread part below is guaranteed to count.
        std::thread::spawn(|| burn(Duration::from_millis(5)))
            .join()
            .expect("thread");
        burn(Duration::from_millis(40));
        let used = CpuReading::now().expect("cpu time").since(&before);
        let stat_used = stat_cpu_time().expect("/proc/self/stat") - stat_before;
        // Other tests run in this process too, so only lower bounds hold. The thread was on a
        // CPU for most of the 40 ms (2 cores; the VM may steal some).
        assert!(used >= Duration::from_millis(15), "{used:?}");
        assert!(stat_used >= Duration::from_millis(10), "{stat_used:?}");
    }

    #[test]
    fn readings_keep_one_source_and_count_while_threads_come_and_go() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};

        let first = CpuReading::now().expect("cpu time");
        let stop = Arc::new(AtomicBool::new(false));
        let spawner = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::spawn(|| burn(Duration::from_micros(50)))
                        .join()
                        .expect("short thread");
                }
            })
        };
        let mut previous = first.clone();
        let mut counted = Duration::ZERO;
        for _ in 0..200 {
            burn(Duration::from_micros(200));
            let reading = CpuReading::now().expect("cpu time");
            assert_eq!(
                std::mem::discriminant(&reading),
                std::mem::discriminant(&first)
            );
            counted += reading.since(&previous);
            previous = reading;
        }
        stop.store(true, Ordering::Relaxed);
        spawner.join().expect("spawner");
        // 200 readings after 200 µs of spinning each: at least 40 ms of this thread's own CPU
        // (less what the VM steals), in 10 ms ticks at worst.
        assert!(counted >= Duration::from_millis(20), "{counted:?}");
    }
}
