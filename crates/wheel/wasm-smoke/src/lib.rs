//! WebAssembly smoke test for `ticktock-wheel`.
//!
//! [`workload`] is plain `no_std` + `alloc` code. On wasm32 this crate is a `no_std` `cdylib`
//! with dlmalloc as its allocator and a trapping panic handler, and exports the workload to
//! JavaScript (`run.mjs` runs it in node). On the host it is an ordinary library: its tests and
//! the `expected` binary run the very same workload natively, and `.ci/wasm-smoke` checks that
//! the `.wasm` reproduces the native reports exactly.
//!
//! `unsafe_code` is `deny`, not `forbid`: exporting an unmangled symbol (`#[unsafe(no_mangle)]`)
//! is an unsafe attribute that the lint flags, so the wasm exports carry a targeted `allow`.
//! Nothing else here uses `unsafe`; the allocator needs none on our side.

#![cfg_attr(target_arch = "wasm32", no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod workload;

#[cfg(target_arch = "wasm32")]
mod wasm {
    use core::sync::atomic::{AtomicU64, Ordering};

    use crate::workload::{self, Report};

    #[global_allocator]
    static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

    /// Any panic (a failed assertion or overflow check in the wheel, say) traps; node sees a
    /// `RuntimeError` and fails the case.
    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
        core::arch::wasm32::unreachable()
    }

    // The last report, for the `last_*` getters (wasm32 here is single-threaded; atomics are
    // just safe statics).
    static INSERTED: AtomicU64 = AtomicU64::new(0);
    static FIRED: AtomicU64 = AtomicU64::new(0);
    static CANCELLED: AtomicU64 = AtomicU64::new(0);
    static RESETS: AtomicU64 = AtomicU64::new(0);
    static STALE_OPS: AtomicU64 = AtomicU64::new(0);
    static POLLS: AtomicU64 = AtomicU64::new(0);
    static FIRED_HASH: AtomicU64 = AtomicU64::new(0);
    static ERRORS: AtomicU64 = AtomicU64::new(0);

    fn store(report: &Report) {
        let fields = [
            (&INSERTED, report.inserted),
            (&FIRED, report.fired),
            (&CANCELLED, report.cancelled),
            (&RESETS, report.resets),
            (&STALE_OPS, report.stale_ops),
            (&POLLS, report.polls),
            (&FIRED_HASH, report.fired_hash),
            (&ERRORS, u64::from(report.errors)),
        ];
        for (cell, value) in fields {
            cell.store(value, Ordering::Relaxed);
        }
    }

    // SAFETY (for every `#[unsafe(no_mangle)]` below): each exported name is unique in this
    // module and in the whole link (no dependency exports a symbol by these names), so no
    // unmangled symbol is defined twice.
    #[allow(unsafe_code)]
    mod exports {
        use core::sync::atomic::Ordering;

        use super::*;

        /// Runs the workload and returns the report's checksum; the `last_*` exports give
        /// its fields.
        #[unsafe(no_mangle)]
        pub extern "C" fn run_workload(seed: u64, timers: u32) -> u64 {
            let report = workload::run(seed, timers);
            store(&report);
            report.checksum()
        }

        /// Error flags of the last run (0: none); see the constants in `workload`.
        #[unsafe(no_mangle)]
        pub extern "C" fn last_errors() -> u64 {
            ERRORS.load(Ordering::Relaxed)
        }

        /// Timers the last run inserted.
        #[unsafe(no_mangle)]
        pub extern "C" fn last_inserted() -> u64 {
            INSERTED.load(Ordering::Relaxed)
        }

        /// Timers that fired in the last run.
        #[unsafe(no_mangle)]
        pub extern "C" fn last_fired() -> u64 {
            FIRED.load(Ordering::Relaxed)
        }

        /// Timers the last run cancelled.
        #[unsafe(no_mangle)]
        pub extern "C" fn last_cancelled() -> u64 {
            CANCELLED.load(Ordering::Relaxed)
        }

        /// Successful resets in the last run.
        #[unsafe(no_mangle)]
        pub extern "C" fn last_resets() -> u64 {
            RESETS.load(Ordering::Relaxed)
        }

        /// Stale-key cancels and resets in the last run.
        #[unsafe(no_mangle)]
        pub extern "C" fn last_stale_ops() -> u64 {
            STALE_OPS.load(Ordering::Relaxed)
        }

        /// Polls in the last run.
        #[unsafe(no_mangle)]
        pub extern "C" fn last_polls() -> u64 {
            POLLS.load(Ordering::Relaxed)
        }

        /// Order-independent hash of the last run's fires.
        #[unsafe(no_mangle)]
        pub extern "C" fn last_fired_hash() -> u64 {
            FIRED_HASH.load(Ordering::Relaxed)
        }
    }
}
