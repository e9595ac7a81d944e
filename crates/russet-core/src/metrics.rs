//! Counters the domain keeps for the server's Prometheus metrics (the gauges are read from
//! the database when scraped). Plain atomics: the domain does not depend on a metrics library.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counts since the process started.
#[derive(Debug, Default)]
pub struct Counters {
    /// Pushes APNs accepted.
    pub pushes_sent: AtomicU64,
    /// Pushes that failed (bad token, refused certificate, APNs errors after retries).
    pub pushes_failed: AtomicU64,
}

impl Counters {
    pub fn add_pushes(&self, sent: u64, failed: u64) {
        self.pushes_sent.fetch_add(sent, Ordering::Relaxed);
        self.pushes_failed.fetch_add(failed, Ordering::Relaxed);
    }

    pub fn pushes(&self) -> (u64, u64) {
        (
            self.pushes_sent.load(Ordering::Relaxed),
            self.pushes_failed.load(Ordering::Relaxed),
        )
    }
}
