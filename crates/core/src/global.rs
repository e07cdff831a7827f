//! The process-wide timer service the seed calls the global timer task.

use std::sync::OnceLock;

use crate::clock::Clock;
use crate::service::{TimerHandle, TimerService};

static GLOBAL: OnceLock<TimerHandle> = OnceLock::new();

/// The process-wide timer service, started on first use on a thread of its own
/// (`ticktock-timer`, running a current-thread tokio runtime), so it works whatever runtime
/// (or none) the caller uses. It reads the system clock ([`Clock::System`]) and runs until
/// the process exits.
///
/// # Panics
/// Only if the operating system refuses to start the thread or its runtime at first use.
pub fn global() -> &'static TimerHandle {
    GLOBAL.get_or_init(start)
}

/// Starts the global timer service now (it otherwise starts at first use) and returns its
/// handle. The name is the seed's.
pub fn start_global_timer_task() -> TimerHandle {
    global().clone()
}

fn start() -> TimerHandle {
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("ticktock-timer".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("ticktock: cannot build the global timer runtime");
            runtime.block_on(async move {
                let handle = TimerService::builder()
                    .clock(Clock::System)
                    .start_static()
                    .expect("ticktock: default settings are valid inside a runtime");
                sender.send(handle).ok();
                // The driver runs on this runtime for the life of the process.
                std::future::pending::<()>().await;
            });
        })
        .expect("ticktock: cannot start the global timer thread");
    receiver
        .recv()
        .expect("ticktock: the global timer thread stopped while starting")
}
