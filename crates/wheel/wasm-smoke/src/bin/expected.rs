//! Runs the smoke-test cases natively and prints one line per case, the expectations that
//! `run.mjs` checks the `.wasm` against:
//!
//! `case seed=0x… timers=… checksum=0x… inserted=… fired=… cancelled=… resets=… stale_ops=…
//! polls=… fired_hash=0x… errors=0x…`
//!
//! Exits 1 (after printing) when a case already fails natively.

use std::process::ExitCode;

use ticktock_wheel_wasm_smoke::workload::{CASES, run};

fn main() -> ExitCode {
    let mut clean = true;
    for (seed, timers) in CASES {
        let r = run(seed, timers);
        println!(
            "case seed={seed:#x} timers={timers} checksum={:#x} inserted={} fired={} \
             cancelled={} resets={} stale_ops={} polls={} fired_hash={:#x} errors={:#x}",
            r.checksum(),
            r.inserted,
            r.fired,
            r.cancelled,
            r.resets,
            r.stale_ops,
            r.polls,
            r.fired_hash,
            r.errors,
        );
        if r.errors != 0 {
            eprintln!(
                "native run of seed {seed:#x} with {timers} timers raised errors {:#x}",
                r.errors
            );
            clean = false;
        }
    }
    if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
