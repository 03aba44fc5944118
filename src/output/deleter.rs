//! Deletes of files that left a live window, off the rendition threads: an HTTP `DELETE`
//! may take the sink's whole timeout, and a store may refuse every one (PUT-only presigned
//! URLs, write-once buckets), neither of which may hold up a segment. The segmenters queue
//! what is due (never waiting: a full queue leaves the file in the store, counted); one
//! thread per stream (`sv-<id>-deletes`) deletes through the sink, retries a refusal with
//! backoff up to [`DELETE_ATTEMPTS`] tries, then gives it up. Each refusal and give-up is
//! counted (`StatsCell::deletes_refused`, `StatsCell::deletes_given_up`; refusals in
//! `errors` too) and reported as an output event (`OutputEvent::DeleteFailed`). The thread ends when every segmenter has dropped its
//! queue (retries still waiting are given up then) or at once on abort.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};

use super::naming::in_rendition;
use super::publisher::Publisher;
use crate::ffi::Interrupt;
use crate::sink::SegmentSink;
use crate::stats::StatsCell;

/// How many times a delete is tried before the file is left in the store.
pub(crate) const DELETE_ATTEMPTS: u32 = 5;
/// Deletes queued or waiting for a retry, at most; past it a file is left in the store.
pub(crate) const PENDING_DELETES: usize = 256;
/// Wait before the first retry; doubled for each later one, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// A file to delete: `file` in rendition `rendition`'s directory.
#[derive(Debug)]
struct Expired {
    rendition: String,
    file: String,
    /// Tries so far.
    attempts: u32,
    /// Not tried again before.
    due: Instant,
}

/// A segmenter's end of the queue. Cheap to clone; never waits.
#[derive(Clone)]
pub(crate) struct DeleteQueue {
    tx: Sender<Expired>,
}

impl DeleteQueue {
    /// Queues `file` of rendition `rendition` for deletion; false when the queue is full
    /// (the file is left in the store: the caller reports it).
    pub fn delete(&self, rendition: &str, file: String) -> bool {
        let job = Expired {
            rendition: rendition.to_owned(),
            file,
            attempts: 0,
            due: Instant::now(),
        };
        match self.tx.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => false,
            // The deleting thread is gone (an abort): the file stays, as at any abort.
            Err(TrySendError::Disconnected(_)) => true,
        }
    }
}

/// The deleting thread's end of the queue.
pub(crate) struct DeleteInbox {
    rx: Receiver<Expired>,
}

/// A stream's delete queue: the segmenters' end and the deleting thread's.
pub(crate) fn delete_queue() -> (DeleteQueue, DeleteInbox) {
    let (tx, rx) = bounded(PENDING_DELETES);
    (DeleteQueue { tx }, DeleteInbox { rx })
}

impl DeleteInbox {
    /// The deleting thread's loop, until every [`DeleteQueue`] is dropped or the
    /// `interrupt` trips.
    pub fn run(
        self,
        sink: &dyn SegmentSink,
        interrupt: &Interrupt,
        publisher: &Publisher,
        stats: &StatsCell,
    ) {
        let mut retries: VecDeque<Expired> = VecDeque::new();
        loop {
            // A retry that is due goes before new deletes, which would otherwise starve it
            // while segments keep expiring.
            let next_due = retries.front().map(|e| e.due);
            let job = match next_due {
                Some(due) if due <= Instant::now() => retries.pop_front().expect("a retry"),
                Some(due) => match self.rx.recv_deadline(due) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match self.rx.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                },
            };
            if interrupt.is_interrupted() {
                return;
            }
            if let Some(again) = attempt(sink, publisher, stats, job) {
                if retries.len() + self.rx.len() >= PENDING_DELETES {
                    give_up(publisher, stats, &again, "too many deletes pending");
                } else {
                    // Due times grow with attempts; a later one may still be due sooner.
                    let at = retries.partition_point(|e| e.due <= again.due);
                    retries.insert(at, again);
                }
            }
        }
        for job in &retries {
            give_up(publisher, stats, job, "the stream ended first");
        }
    }
}

/// Tries one delete; returns the job to try again later, if it may be.
fn attempt(
    sink: &dyn SegmentSink,
    publisher: &Publisher,
    stats: &StatsCell,
    mut job: Expired,
) -> Option<Expired> {
    let rel = in_rendition(&job.rendition, &job.file);
    job.attempts += 1;
    let error = match sink.delete(&rel) {
        Ok(()) => {
            publisher.segment_deleted(&job.rendition, &job.file);
            return None;
        }
        // Gone already (a retry after a lost answer, a store's own expiry): done.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => e.to_string(),
    };
    stats.deletes_refused.fetch_add(1, Relaxed);
    stats.errors.fetch_add(1, Relaxed);
    let last = job.attempts >= DELETE_ATTEMPTS;
    log::warn!(
        "deleting {}: {error} (attempt {} of {DELETE_ATTEMPTS})",
        sink.location(&rel),
        job.attempts
    );
    if last {
        give_up(publisher, stats, &job, &error);
        return None;
    }
    publisher.delete_failed(&job.rendition, &job.file, &error, job.attempts, false);
    let backoff = FIRST_BACKOFF.saturating_mul(1 << (job.attempts - 1).min(8));
    job.due = Instant::now() + backoff.min(MAX_BACKOFF);
    Some(job)
}

/// Leaves a file in the store for good: logged, counted and reported.
fn give_up(publisher: &Publisher, stats: &StatsCell, job: &Expired, why: &str) {
    stats.deletes_given_up.fetch_add(1, Relaxed);
    log::warn!(
        "{}: gave up deleting it after {} attempts ({why}); left in the store",
        publisher.location_of(&job.rendition, &job.file).display(),
        job.attempts
    );
    publisher.delete_failed(&job.rendition, &job.file, why, job.attempts, true);
}
