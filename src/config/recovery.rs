//! Recovery policies: reconnecting a stream's source ([`RecoveryPolicy`]) and restarting a
//! failed managed stream ([`RestartPolicy`]), both paced by one [`Backoff`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// Exponential backoff with jitter: attempt `n` (1-based) waits `initial · 2^(n-1)`, capped
/// at `max`, spread uniformly by ±`jitter` (a fraction of the wait) so that many streams
/// failing together do not retry in lockstep.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Backoff {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Random spread of each wait, as a fraction of it (0..=1).
    pub jitter: f64,
}

impl Backoff {
    /// A backoff from `initial` doubling up to `max`, with the default 20 % jitter.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            jitter: 0.2,
        }
    }

    /// Sets the jitter fraction.
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// The wait before attempt `attempt` (1-based), before jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(20);
        self.initial.saturating_mul(1 << doublings).min(self.max)
    }

    fn validate(&self, field: &str) -> Result<()> {
        if self.initial.is_zero() || self.initial > self.max {
            return Err(Error::config(
                format!("{field}.initial"),
                "must be positive and at most max",
            ));
        }
        if self.max > Duration::from_secs(600) {
            return Err(Error::config(format!("{field}.max"), "at most 600 s"));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(Error::config(
                format!("{field}.jitter"),
                format!("{} is outside 0..=1", self.jitter),
            ));
        }
        Ok(())
    }
}

/// The waits of one run of attempts: [`Backoff::delay`] with its jitter applied, from a small
/// xorshift generator seeded by the clock and a name (no need for a crypto RNG here).
#[derive(Debug)]
pub(crate) struct BackoffTimer {
    backoff: Backoff,
    state: u64,
}

impl BackoffTimer {
    pub(crate) fn new(backoff: Backoff, seed: &str) -> Self {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let h = seed.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Self {
            backoff,
            state: (t ^ h) | 1,
        }
    }

    /// The wait before attempt `attempt` (1-based), jittered.
    pub(crate) fn wait(&mut self, attempt: u32) -> Duration {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let unit = (self.state >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        let spread = 1.0 + self.backoff.jitter * (2.0 * unit - 1.0);
        self.backoff.delay(attempt).mul_f64(spread.max(0.0))
    }
}

/// When a stream reconnects to its source after a recoverable source error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Reconnect {
    /// Network sources and reader factories ([`Source::reader_factory`](crate::Source::reader_factory))
    /// reconnect (an unexpected end of a live source included); files, devices and `lavfi:`
    /// sources do not: a file that ends is simply finished.
    #[default]
    Auto,
    /// Reconnect on every recoverable source error (a one-shot reader never: it cannot be
    /// read again).
    Always,
    /// Never reconnect: the first source error fails the stream.
    Never,
}

crate::error::enum_names!(Reconnect, "reconnect policy",
    /// The policy's name in config files and messages (`auto`, `always`, `never`).
    {
        Auto => "auto",
        Always => "always",
        Never => "never",
    }
);

/// How a stream recovers from recoverable errors.
///
/// Reconnects back off exponentially ([`Backoff`]: 500 ms doubling to 8 s, 20 % jitter by
/// default), bounded by `max_attempts` per outage and by `max_outage` of total time per
/// outage. When either bound is reached the stream fails with the last error.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RecoveryPolicy {
    /// When to reconnect.
    pub reconnect: Reconnect,
    /// Reconnect attempts per outage (default 5).
    pub max_attempts: u32,
    /// The wait between attempts.
    pub backoff: Backoff,
    /// Longest an outage may last before the stream fails (default 60 s).
    pub max_outage: Duration,
    /// May a hardware failure fall back to the CPU (default true)?
    pub hardware_fallback: bool,
}

impl Default for RecoveryPolicy {
    fn default() -> Self {
        Self {
            reconnect: Reconnect::Auto,
            max_attempts: 5,
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(8)),
            max_outage: Duration::from_secs(60),
            hardware_fallback: true,
        }
    }
}

impl RecoveryPolicy {
    /// Never reconnect, never fall back: every error fails the stream.
    pub fn none() -> Self {
        Self {
            reconnect: Reconnect::Never,
            hardware_fallback: false,
            ..Self::default()
        }
    }

    /// Sets when to reconnect.
    pub fn with_reconnect(mut self, reconnect: Reconnect) -> Self {
        self.reconnect = reconnect;
        self
    }

    /// Sets the attempts per outage.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Sets the backoff range (the jitter stays).
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff.initial = initial;
        self.backoff.max = max;
        self
    }

    /// Sets the longest outage.
    pub fn with_max_outage(mut self, max: Duration) -> Self {
        self.max_outage = max;
        self
    }

    /// Allows or forbids falling back from a hardware device to the CPU.
    pub fn with_hardware_fallback(mut self, allowed: bool) -> Self {
        self.hardware_fallback = allowed;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.backoff.validate("recovery.backoff")?;
        if self.max_attempts > 10_000 {
            return Err(Error::config("recovery.max_attempts", "at most 10000"));
        }
        Ok(())
    }
}

/// Restarting managed streams that end `Failed` (off by default). A stream whose source is
/// a one-shot reader ([`Source::reader`](crate::Source::reader)) is never restarted.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RestartPolicy {
    /// Restart failed streams at all.
    pub enabled: bool,
    /// Restarts per stream id before it is left failed.
    pub max_restarts: u32,
    /// The wait before each restart (1 s doubling to 30 s, 20 % jitter by default).
    pub backoff: Backoff,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            enabled: false,
            max_restarts: 3,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(30)),
        }
    }
}

impl RestartPolicy {
    /// Restart failed streams up to `max_restarts` times with this backoff range.
    pub fn restart(max_restarts: u32, initial_backoff: Duration, max_backoff: Duration) -> Self {
        Self {
            enabled: true,
            max_restarts,
            backoff: Backoff::new(initial_backoff, max_backoff),
        }
    }

    /// Refuses what a manager could not use: a backoff out of range (a huge wait would
    /// overflow the clock) or more than 10 000 restarts.
    pub(crate) fn validate(&self) -> Result<()> {
        self.backoff.validate("restart.backoff")?;
        if self.max_restarts > 10_000 {
            return Err(Error::config("restart.max_restarts", "at most 10000"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_jitter_stays_in_its_band() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_millis(700));
        let waits: Vec<_> = (1..=5).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 700, 700]);
        assert_eq!(b.delay(u32::MAX), Duration::from_millis(700));
        let mut timer = BackoffTimer::new(b, "s");
        for n in 1..=50 {
            let w = timer.wait(n).as_secs_f64();
            let d = b.delay(n).as_secs_f64();
            assert!((d * 0.8 - 1e-9..=d * 1.2 + 1e-9).contains(&w), "{w} vs {d}");
        }
        let mut flat = BackoffTimer::new(b.with_jitter(0.0), "s");
        assert_eq!(flat.wait(2), Duration::from_millis(200));
    }

    #[test]
    fn invalid_restart_policies_name_the_field() {
        let huge = RestartPolicy::restart(1, Duration::from_secs(1), Duration::MAX);
        let mut jitter = RestartPolicy::default();
        jitter.backoff.jitter = 1e300;
        for (p, field) in [
            (huge, "restart.backoff.max"),
            (jitter, "restart.backoff.jitter"),
        ] {
            match p.validate() {
                Err(Error::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{other:?}"),
            }
        }
        assert!(RestartPolicy::default().validate().is_ok());
    }

    #[test]
    fn invalid_backoffs_name_the_field() {
        let bad = RecoveryPolicy::default().with_backoff(Duration::ZERO, Duration::from_secs(1));
        match bad.validate() {
            Err(Error::InvalidConfig { field, .. }) => {
                assert_eq!(field, "recovery.backoff.initial")
            }
            other => panic!("{other:?}"),
        }
    }
}
