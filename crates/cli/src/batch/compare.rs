//! Seed 004's measurements of its batcher, the project's budgets for this one, and the verdict
//! of a run against both.
//!
//! The seed's batcher waited out a 0.5 s hard timeout for a lone request (574 ms mean), formed
//! a batch of 200 under a limit of 32, bounded its queue at 10 × the batch size (320) and
//! rejected requests at 500 concurrent callers, and served 3,108 requests/s at 50 callers.

use serde::Serialize;

use super::handler::{Cost, FIXED_COST};
use super::results::Row;
use super::{Load, Scenario};

/// One of the seed's load runs: `requests` from `callers` callers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeedRun {
    /// Requests in all.
    pub requests: usize,
    /// Concurrent callers.
    pub callers: usize,
    /// The seed's throughput, requests/s.
    pub throughput: f64,
    /// The seed's mean latency, ms.
    pub mean_ms: f64,
}

/// The seed's three load runs (its table 1).
pub const SEED_RUNS: [SeedRun; 3] = [
    SeedRun {
        requests: 100,
        callers: 10,
        throughput: 132.95,
        mean_ms: 7.52,
    },
    SeedRun {
        requests: 200,
        callers: 20,
        throughput: 281.17,
        mean_ms: 3.56,
    },
    SeedRun {
        requests: 500,
        callers: 50,
        throughput: 3107.89,
        mean_ms: 0.32,
    },
];

/// The seed's lone-request latency, mean, ms.
pub const SEED_LONE_MS: f64 = 573.78;

/// The largest batch the seed's batcher formed, and its limit.
pub const SEED_LARGEST_BATCH: (u64, u64) = (200, 32);

/// The seed's queue bound (10 × the batch size).
pub const SEED_QUEUE_BOUND: u64 = 320;

/// Budget: a lone request's latency less the handler's time, µs (judged at the median).
pub const LONE_OVERHEAD_BUDGET_US: f64 = 100.0;

/// Budget: requests/s with a no-op handler at 50 callers or more.
pub const THROUGHPUT_BUDGET: f64 = 1_000_000.0;

/// Whether a budget was met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Met.
    Met,
    /// Missed.
    Missed,
    /// Not measured in this run (its scenario did not run).
    NotRun,
    /// No budget: a comparison only.
    Info,
}

impl Verdict {
    fn of(met: bool) -> Self {
        if met { Self::Met } else { Self::Missed }
    }

    /// As printed.
    pub fn label(self) -> &'static str {
        match self {
            Self::Met => "met",
            Self::Missed => "MISSED",
            Self::NotRun => "not run",
            Self::Info => "-",
        }
    }
}

/// One line of the comparison with the seed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// What is compared.
    pub kpi: String,
    /// The seed's figure.
    pub seed: String,
    /// This run's figure.
    pub ours: String,
    /// How many times better this run is (seed / ours for times, ours / seed for rates).
    pub ratio: Option<f64>,
    /// The budget, if there is one.
    pub budget: String,
    /// Whether it was met.
    pub verdict: Verdict,
}

/// `1234567.8` as `1,234,568`.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn not_run(kpi: &str, seed: String, budget: &str) -> Check {
    Check {
        kpi: kpi.to_owned(),
        seed,
        ours: "-".to_owned(),
        ratio: None,
        budget: budget.to_owned(),
        verdict: Verdict::NotRun,
    }
}

/// The comparison lines of a run: the seed's KPIs beside ours, and each budget's verdict.
pub fn checks(rows: &[Row]) -> Vec<Check> {
    let mut checks = vec![
        lone_check(rows),
        batch_limit_check(rows),
        rejection_check(rows),
    ];
    for callers in [50, 500] {
        checks.push(throughput_check(rows, callers));
    }
    checks.extend(SEED_RUNS.iter().map(|run| seed_run_check(rows, run)));
    checks
}

fn lone_check(rows: &[Row]) -> Check {
    let kpi = "lone request latency";
    let seed = format!("{SEED_LONE_MS:.0} ms mean (0.5 s hard timeout)");
    let budget = format!("≤ handler + {LONE_OVERHEAD_BUDGET_US:.0} µs (median)");
    let lone = rows.iter().find(|row| row.scenario == Scenario::Lone);
    let Some((row, overhead)) = lone.and_then(|row| Some((row, row.overhead()?))) else {
        return not_run(kpi, seed, &budget);
    };
    let latency = row.latency();
    let handler = match row.cost {
        Cost::Fixed(cost) => cost,
        _ => FIXED_COST,
    };
    Check {
        kpi: kpi.to_owned(),
        seed,
        ours: format!(
            "{:.1} µs mean, {:.1} µs p50 (handler {} µs; overhead p50 {:.1} µs, p99 {:.1} µs)",
            latency.mean,
            latency.p50,
            handler.as_micros(),
            overhead.p50,
            overhead.p99
        ),
        ratio: (latency.mean > 0.0).then(|| SEED_LONE_MS * 1e3 / latency.mean),
        budget,
        verdict: Verdict::of(overhead.p50 <= LONE_OVERHEAD_BUDGET_US),
    }
}

fn batch_limit_check(rows: &[Row]) -> Check {
    let (seed_largest, seed_limit) = SEED_LARGEST_BATCH;
    let seed = format!(
        "{seed_largest} / {seed_limit} ({:.0} % fill)",
        seed_largest as f64 / seed_limit as f64 * 100.0
    );
    let budget = "≤ limit; fill never above 100 %";
    let Some(worst) = rows
        .iter()
        .max_by(|a, b| a.fill_max().total_cmp(&b.fill_max()))
    else {
        return not_run("largest batch / limit", seed, budget);
    };
    let over = rows
        .iter()
        .any(|row| row.largest_batch() > row.max_batch_size as u64 || row.fill_max() > 1.0);
    Check {
        kpi: "largest batch / limit".to_owned(),
        seed,
        ours: format!(
            "{} / {} ({:.0} % fill), over every row",
            worst.largest_batch(),
            worst.max_batch_size,
            worst.fill_max() * 100.0
        ),
        ratio: None,
        budget: budget.to_owned(),
        verdict: Verdict::of(!over),
    }
}

fn rejection_check(rows: &[Row]) -> Check {
    let kpi = "rejections at 500 callers";
    let seed = format!("requests rejected (queue bound {SEED_QUEUE_BOUND})");
    let budget = "0 with the default queue bound";
    let at_500: Vec<&Row> = rows
        .iter()
        .filter(|row| row.scenario == Scenario::ClosedLoop && row.load.callers() == Some(500))
        .collect();
    if at_500.is_empty() {
        return not_run(kpi, seed, budget);
    }
    let rejected: u64 = at_500.iter().map(|row| row.rejected()).sum();
    let sent: u64 = at_500.iter().map(|row| row.run.tally.sent).sum();
    let depth = at_500
        .iter()
        .map(|row| row.stats.queue_depth_max)
        .max()
        .unwrap_or(0);
    let bound = at_500[0].stats.queue_capacity;
    Check {
        kpi: kpi.to_owned(),
        seed,
        ours: format!(
            "{rejected} of {} (`try_call`, queue bound {}, depth max {depth})",
            thousands(sent as f64),
            thousands(bound as f64)
        ),
        ratio: None,
        budget: budget.to_owned(),
        verdict: Verdict::of(rejected == 0),
    }
}

fn throughput_check(rows: &[Row], callers: usize) -> Check {
    let kpi = format!("throughput, {callers} callers, no-op handler (closed loop)");
    let seed_value = SEED_RUNS
        .iter()
        .find(|run| run.callers == callers)
        .map(|run| run.throughput);
    let seed = seed_value.map_or_else(|| "-".to_owned(), |t| format!("{} req/s", thousands(t)));
    let budget = format!("≥ {} req/s", thousands(THROUGHPUT_BUDGET));
    let row = rows.iter().find(|row| {
        row.scenario == Scenario::ClosedLoop
            && row.cost == Cost::NoOp
            && row.load.callers() == Some(callers)
    });
    let Some(row) = row else {
        return not_run(&kpi, seed, &budget);
    };
    let throughput = row.throughput();
    Check {
        kpi,
        seed,
        ours: format!("{} req/s", thousands(throughput)),
        ratio: seed_value.map(|seed| throughput / seed),
        budget,
        verdict: Verdict::of(throughput >= THROUGHPUT_BUDGET),
    }
}

fn seed_run_check(rows: &[Row], run: &SeedRun) -> Check {
    let kpi = format!(
        "seed run: {} requests from {} callers",
        run.requests, run.callers
    );
    let seed = format!(
        "{} req/s, mean {:.2} ms",
        thousands(run.throughput),
        run.mean_ms
    );
    let row = rows.iter().find(|row| {
        matches!(row.load, Load::Seed { callers, per_caller, .. }
            if callers == run.callers && callers * per_caller == run.requests)
    });
    let Some(row) = row else {
        return not_run(&kpi, seed, "-");
    };
    let throughput = row.throughput();
    Check {
        kpi,
        seed,
        ours: format!(
            "{} req/s, mean {:.3} ms",
            thousands(throughput),
            row.latency().mean / 1e3
        ),
        ratio: Some(throughput / run.throughput),
        budget: "-".to_owned(),
        verdict: Verdict::Info,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(3107.89), "3,108");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }

    #[test]
    fn nothing_ran_nothing_judged() {
        let checks = checks(&[]);
        assert_eq!(checks.len(), 3 + 2 + SEED_RUNS.len());
        assert!(checks.iter().all(|check| check.verdict == Verdict::NotRun));
    }
}
