//! A node's lease on a job it runs, as the node sees it: valid until a deadline that each
//! successful renewal moves on, or revoked when Redis says another node owns the job.
//!
//! The lease in Redis is the job's pending stream entry: its owner renews it by claiming it
//! to itself (which resets its idle time); any node may claim an entry idle longer than the
//! lease (`XAUTOCLAIM`). The owner measures its lease from the moment it *sent* a renewal
//! that succeeded, and gives it up a margin before the lease, so its view expires before
//! Redis's does: a node cut off from Redis (or paused) stops writing before another node can
//! take the job over.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The part of the lease a node keeps for itself: it stops writing this much before the
/// lease lapses in Redis (clock rate differences, a renewal answered late).
const MARGIN: f64 = 0.2;

/// One job's lease as its owner sees it. Shared by the renewer (which extends it), the
/// job's fenced sink (which checks it before every write) and the node's loop.
#[derive(Debug)]
pub struct LeaseClock {
    lease: Duration,
    valid_until: Mutex<Instant>,
    revoked: AtomicBool,
}

impl LeaseClock {
    /// A lease of `lease` taken when the take request was sent at `sent`.
    pub fn new(lease: Duration, sent: Instant) -> Self {
        Self {
            lease,
            valid_until: Mutex::new(sent + lease.mul_f64(1.0 - MARGIN)),
            revoked: AtomicBool::new(false),
        }
    }

    /// A renewal sent at `sent` succeeded.
    pub fn renewed(&self, sent: Instant) {
        let until = sent + self.lease.mul_f64(1.0 - MARGIN);
        let mut g = self.valid_until.lock().unwrap_or_else(|p| p.into_inner());
        if until > *g {
            *g = until;
        }
    }

    /// Redis says the job is no longer ours (another epoch owns it).
    pub fn revoke(&self) {
        self.revoked.store(true, Ordering::SeqCst);
    }

    /// True while the node may still write the job's output.
    pub fn is_valid(&self) -> bool {
        if self.revoked.load(Ordering::SeqCst) {
            return false;
        }
        let g = self.valid_until.lock().unwrap_or_else(|p| p.into_inner());
        Instant::now() < *g
    }
}
