//! Recovery policy, where the lifecycle lives: when a source error is worth a reconnect,
//! how long to back off, when to leave a hardware device for the CPU, and the state moves
//! and counters that go with each. It drives the pipeline's session primitives
//! ([`SourceOpener`]); the pipeline never decides any of this itself.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::lifecycle::Lifecycle;
use crate::config::{BackoffTimer, Reconnect, StreamConfig};
use crate::error::{Error, ErrorKind};
use crate::pipeline::{PipelineEvent, Reopened, Session, SourceOpener, Supervisor};
use crate::state::StreamState;

/// The lifecycle's side of one pipeline run.
pub(super) struct Recovery<'a> {
    lifecycle: &'a Lifecycle,
    /// In `Error`: the next time media flows is a recovery.
    recovering: bool,
    /// The stream already left its hardware device mid-stream (once is enough).
    fell_back: bool,
}

impl<'a> Recovery<'a> {
    pub fn new(lifecycle: &'a Lifecycle) -> Self {
        Self {
            lifecycle,
            recovering: false,
            fell_back: false,
        }
    }

    fn config(&self) -> &StreamConfig {
        &self.lifecycle.config
    }

    /// True when the policy reconnects this stream's source at all.
    fn reconnect_wanted(&self) -> bool {
        let config = self.config();
        let policy = config.recovery();
        policy.max_attempts > 0
            && config.input().can_reopen() // a one-shot reader cannot be read again
            && match policy.reconnect {
                Reconnect::Always => true,
                Reconnect::Never => false,
                _ => config.reconnects_by_default(),
            }
    }

    /// True when the policy reconnects after this error.
    fn should_reconnect(&self, error: &Error) -> bool {
        self.reconnect_wanted() && error.kind() == ErrorKind::SourceIo
    }

    /// A stop (not an abort) cut an open: the stream ends gracefully.
    fn stopped_while_opening(&self, error: &Error) -> bool {
        let signals = &self.lifecycle.signals;
        matches!(error, Error::Aborted { .. })
            && signals.stop_requested()
            && !signals.abort_requested()
    }

    /// A recoverable error: counted, and reported as a move to `Error`.
    fn enter_error(&mut self, error: Error) {
        self.lifecycle.stats.errors.fetch_add(1, Relaxed);
        self.recovering = true;
        self.lifecycle.transition(StreamState::Error, Some(error));
    }

    /// Leaves the hardware device after `error`: counted and reported.
    fn fall_back_to_cpu(&mut self, error: Error, opener: &mut SourceOpener) {
        log::warn!(
            "stream {}: {error}; falling back to the CPU",
            self.config().id()
        );
        self.lifecycle
            .stats
            .hardware_fallbacks
            .fetch_add(1, Relaxed);
        opener.drop_device();
        self.enter_error(error);
    }

    /// The first connection: the hardware device (or the CPU, if the policy allows), then
    /// the source, retried like a reconnect (a publisher may start late).
    fn first_connect(&mut self, opener: &mut SourceOpener) -> Result<Option<Session>, Error> {
        if let Err(e) = opener.open_device() {
            if !self.config().recovery().hardware_fallback {
                return Err(e);
            }
            self.fall_back_to_cpu(e, opener);
        }
        match opener.open() {
            Ok(s) => Ok(Some(s)),
            Err(e) if self.stopped_while_opening(&e) => Ok(None),
            Err(e) if self.should_reconnect(&e) => {
                // The primary is down: a backup that opens now starts the stream.
                if let Some(s) = self.first_backup(opener) {
                    return Ok(Some(s));
                }
                self.enter_error(e.clone());
                self.reconnect(opener, e)
            }
            Err(e) => Err(e),
        }
    }

    /// The first of the source's backups that opens (each tried once), if any.
    fn first_backup(&self, opener: &mut SourceOpener) -> Option<Session> {
        let backups = self.config().input().backups().len();
        (0..backups).find_map(|i| match opener.open_backup(i) {
            Ok(s) => Some(s),
            Err(e) => {
                log::info!(
                    "stream {}: backup {i} does not open either: {e}",
                    self.config().id()
                );
                None
            }
        })
    }

    /// After `error` ended a session: leave the device, reconnect, or give up.
    fn recover(
        &mut self,
        opener: &mut SourceOpener,
        error: Error,
    ) -> Result<Option<(Session, Reopened)>, Error> {
        let fallback_allowed = self.config().recovery().hardware_fallback;
        if error.kind() == ErrorKind::Hardware && fallback_allowed && !self.fell_back {
            // The device was lost mid-stream: go on on the CPU, from where we were.
            self.fell_back = true;
            self.fall_back_to_cpu(error, opener);
            return opener.open().map(|s| Some((s, Reopened::OnCpu)));
        }
        if self.should_reconnect(&error) {
            self.enter_error(error.clone());
            let next = self.reconnect(opener, error)?;
            return Ok(next.map(|s| (s, Reopened::Reconnected)));
        }
        Err(error)
    }

    /// Reopens the source after `error` with backoff, within the policy's bounds. `Ok(None)`
    /// when a stop was requested meanwhile; the last error when the policy is exhausted.
    fn reconnect(
        &mut self,
        opener: &mut SourceOpener,
        error: Error,
    ) -> Result<Option<Session>, Error> {
        let lifecycle = self.lifecycle;
        let (config, signals) = (&lifecycle.config, &lifecycle.signals);
        let policy = config.recovery();
        let outage = Instant::now();
        let mut last = error;
        let mut timer = BackoffTimer::new(policy.backoff, config.id());
        for attempt in 1..=policy.max_attempts {
            let left = policy.max_outage.saturating_sub(outage.elapsed());
            if left.is_zero() {
                break;
            }
            let wait = timer.wait(attempt).min(left);
            log::info!(
                "stream {}: reconnecting in {wait:?} (attempt {attempt}/{}) after: {last}",
                config.id(),
                policy.max_attempts
            );
            if signals.sleep_unless_stopped(wait) {
                return if signals.abort_requested() {
                    Err(Error::aborted())
                } else {
                    Ok(None)
                };
            }
            match opener.open() {
                Ok(s) => return Ok(Some(s)),
                Err(e) if self.stopped_while_opening(&e) => return Ok(None),
                Err(e) if self.should_reconnect(&e) => {
                    self.lifecycle.stats.errors.fetch_add(1, Relaxed);
                    last = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }
}

impl Supervisor for Recovery<'_> {
    fn report(&mut self, event: PipelineEvent) {
        match event {
            PipelineEvent::Running => {
                let recovering = std::mem::take(&mut self.recovering);
                // The live clock may have reported media back (and counted it) first.
                if self.lifecycle.transition(StreamState::Running, None) && recovering {
                    self.lifecycle.stats.recoveries.fetch_add(1, Relaxed);
                }
            }
            PipelineEvent::Draining => {
                self.lifecycle.transition(StreamState::Stopping, None);
            }
            PipelineEvent::Planned(ladder) => *self.lifecycle.planned.lock() = Some(ladder),
        }
    }

    fn input_lost(&mut self, error: Error) {
        self.enter_error(error);
    }

    fn reconnects_live_end(&self) -> bool {
        self.reconnect_wanted()
    }

    fn connect(
        &mut self,
        opener: &mut SourceOpener<'_>,
        failure: Option<Error>,
    ) -> Result<Option<(Session, Reopened)>, Error> {
        match failure {
            None => Ok(self.first_connect(opener)?.map(|s| (s, Reopened::First))),
            Some(error) => self.recover(opener, error),
        }
    }
}
