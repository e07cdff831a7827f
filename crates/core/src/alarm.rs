//! A precise alarm for the driver when the service runs on the system clock.
//!
//! tokio's timer rounds every sleep up to its own millisecond grid, which stacks on top of the
//! service's own round-up to a tick: on tokio's timer the driver wakes 1–2 ms after a deadline.
//! With [`Clock::System`](crate::Clock::System) the driver instead sets this alarm: a small
//! thread that waits on a condition variable with the exact timeout (the kernel's timer slack
//! is tens of microseconds) and then notifies the driver task.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;

#[derive(Debug, Default)]
struct Setting {
    /// When to ring; `None` while unset.
    at: Option<Instant>,
    /// Set when the service is gone: the thread exits.
    stop: bool,
}

#[derive(Debug, Default)]
struct Shared {
    setting: Mutex<Setting>,
    changed: Condvar,
    rang: Notify,
}

/// The driver's side of the alarm thread. Dropping it stops the thread.
#[derive(Debug)]
pub(crate) struct Alarm {
    shared: Arc<Shared>,
}

impl Alarm {
    /// Starts the alarm thread.
    ///
    /// # Errors
    /// When the operating system refuses a new thread.
    pub(crate) fn start() -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        std::thread::Builder::new()
            .name("ticktock-alarm".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || ring(&shared)
            })?;
        Ok(Self { shared })
    }

    /// Sets the alarm to `at` (replacing any setting) and returns the future that resolves when
    /// it rings. Create-then-set order matters: the future is registered before the thread
    /// can ring, so a ring is never missed.
    ///
    /// The thread is signalled only when the new setting is earlier than the one it waits for:
    /// for a later one it wakes at the old time, sees the new one and waits again, which costs
    /// far less than a thread wake-up on every driver pass.
    pub(crate) fn set(&self, at: Instant) -> tokio::sync::futures::Notified<'_> {
        let rang = self.shared.rang.notified();
        let earlier = {
            let mut setting = self.lock();
            let earlier = setting.at.is_none_or(|current| at < current);
            setting.at = Some(at);
            earlier
        };
        if earlier {
            self.shared.changed.notify_one();
        }
        rang
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Setting> {
        self.shared
            .setting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        self.lock().stop = true;
        self.shared.changed.notify_one();
    }
}

/// The alarm thread: waits for the setting, rings at it, repeats.
fn ring(shared: &Shared) {
    let mut setting = shared
        .setting
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    loop {
        if setting.stop {
            return;
        }
        setting = match setting.at {
            None => shared
                .changed
                .wait(setting)
                .unwrap_or_else(PoisonError::into_inner),
            Some(at) => {
                let now = Instant::now();
                if now >= at {
                    setting.at = None;
                    // notify_waiters: only the driver's current wait (created in `set`) is
                    // woken; a ring with nobody waiting leaves no stale permit behind.
                    shared.rang.notify_waiters();
                    setting
                } else {
                    shared
                        .changed
                        .wait_timeout(setting, at - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn rings_at_the_setting_not_before() {
        let alarm = Alarm::start().expect("a thread");
        for micros in [0u64, 200, 1500] {
            let at = Instant::now() + Duration::from_micros(micros);
            alarm.set(at).await;
            assert!(Instant::now() >= at);
        }
    }
}
