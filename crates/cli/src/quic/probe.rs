//! A control for the timers' lateness: how late this machine wakes a bare thread.
//!
//! While the load runs, a plain thread sleeps 1 to 4 ms at a time (`std::thread::sleep`: the
//! kernel's high-resolution timer, no runtime, no wheel) and times each wake-up against the
//! time it asked for. What it sees late is the operating system's and the VM's doing
//! (scheduling delays, stolen time) and bounds what any timer on the same machine can promise
//! in the same moments. It costs a few hundred short wake-ups a second, the same for every
//! runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::observe::BUDGET;
use super::results::Quantiles;
use crate::error::CliError;

/// The probe thread, running until [`finish`](Self::finish).
#[derive(Debug)]
pub struct MachineProbe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Duration>>,
}

/// What the probe saw.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProbeFigures {
    /// Sleeps timed.
    pub sleeps: u64,
    /// Sleeps that woke more than 2 ms after the time asked for.
    pub over_2ms: u64,
    /// How late the sleeps woke, µs.
    pub lateness_us: Quantiles,
}

impl MachineProbe {
    /// Starts the probe thread.
    ///
    /// # Errors
    /// [`CliError::Quic`] when the thread cannot be started.
    pub fn start(seed: u64) -> Result<Self, CliError> {
        let stop = Arc::new(AtomicBool::new(false));
        let running = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("lateness-probe".into())
            .spawn(move || {
                let mut rng = SmallRng::seed_from_u64(seed);
                let mut lateness = Vec::new();
                while !running.load(Ordering::Relaxed) {
                    let asked = Duration::from_micros(rng.random_range(1_000..4_000));
                    let start = Instant::now();
                    std::thread::sleep(asked);
                    lateness.push(start.elapsed().saturating_sub(asked));
                }
                lateness
            })
            .map_err(|error| {
                CliError::Quic(format!("could not start the probe thread: {error}"))
            })?;
        Ok(Self { stop, thread })
    }

    /// Stops the probe and sums up what it saw.
    pub fn finish(self) -> ProbeFigures {
        self.stop.store(true, Ordering::Relaxed);
        // A panic in the probe's loop cannot happen (it only sleeps and pushes); if it did,
        // there is nothing to report.
        let lateness = self.thread.join().unwrap_or_default();
        ProbeFigures::of(lateness)
    }
}

impl ProbeFigures {
    fn of(lateness: Vec<Duration>) -> Self {
        Self {
            sleeps: lateness.len() as u64,
            over_2ms: lateness.iter().filter(|&&late| late > BUDGET).count() as u64,
            lateness_us: Quantiles::of(
                lateness
                    .iter()
                    .map(|late| late.as_secs_f64() * 1e6)
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_count_the_sleeps_over_budget_and_the_tail() {
        let lateness: Vec<Duration> = (1..=200).map(|ms| Duration::from_micros(ms * 15)).collect();
        let figures = ProbeFigures::of(lateness);
        assert_eq!(figures.sleeps, 200);
        // 15 µs × 134 = 2,010 µs: sleeps 134 to 200 are over 2 ms.
        assert_eq!(figures.over_2ms, 67);
        assert_eq!(figures.lateness_us.p99, 198.0 * 15.0);
        assert_eq!(figures.lateness_us.max, 3000.0);
        assert_eq!(ProbeFigures::of(Vec::new()).sleeps, 0);
    }

    #[test]
    fn the_probe_times_real_sleeps_and_stops() {
        let probe = MachineProbe::start(1).expect("thread");
        std::thread::sleep(Duration::from_millis(30));
        let figures = probe.finish();
        assert!(figures.sleeps >= 1, "{figures:?}");
        assert!(figures.lateness_us.max >= figures.lateness_us.p99);
    }
}
