//! How the driver thread of a system-clock service sleeps: a condition variable with the exact
//! timeout, and a flag that a notification sets (kept until the driver waits, like tokio's
//! `Notify` permit).

use std::sync::{Condvar, Mutex, PoisonError};

use crate::service::Inner;

#[derive(Debug, Default)]
pub(crate) struct ThreadWait {
    notified: Mutex<bool>,
    changed: Condvar,
}

impl ThreadWait {
    /// Wakes the driver thread (or makes its next wait return at once).
    pub(crate) fn notify(&self) {
        *self.notified.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.changed.notify_one();
    }

    /// Sleeps until tick `next` of `inner`'s clock, a notification, or shutdown.
    pub(crate) fn wait_until(&self, inner: &Inner, next: u64) {
        let at = inner.ticks.instant(next).into_std();
        let mut notified = self.notified.lock().unwrap_or_else(PoisonError::into_inner);
        while !*notified && !inner.is_shut_down() {
            let now = std::time::Instant::now();
            if now >= at {
                break;
            }
            notified = self
                .changed
                .wait_timeout(notified, at - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *notified = false;
    }
}
