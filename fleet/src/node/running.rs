//! The jobs a node runs, and how each one ends: completed (its stream ended `Stopped`),
//! failed (requeued, or dead-lettered on its last allowed failure), cancelled, handed back
//! (a draining node), or lost (its lease lapsed: the node records nothing, the new owner
//! does).

use std::sync::Arc;
use std::time::Duration;

use streamvisor::{StreamReport, StreamState};

use super::Node;
use crate::client::now_ms;
use crate::job::JobKind;
use crate::keys::GROUP;
use crate::lease::LeaseClock;
use crate::metrics::NodeMetrics;
use crate::scripts;

/// Why the node ends a job itself (its stream's report then says `aborted` or `Stopped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// The lease lapsed or was taken: record nothing.
    Lost,
    /// Draining: put the job back for another node.
    HandBack,
    /// The client cancelled it.
    Cancel,
}

/// A job the node runs.
#[derive(Debug)]
pub(crate) struct RunningJob {
    /// Its stream entry (the lease).
    pub entry: String,
    /// The node's fencing epoch for it.
    pub epoch: u64,
    pub kind: JobKind,
    pub lease: Arc<LeaseClock>,
    /// The stream state last recorded on the job.
    pub noted: Option<StreamState>,
    pub ending: Option<Ending>,
}

/// A running job as the watcher looks at it: id, epoch, lease, ending, state noted.
type Watched = (
    String,
    u64,
    Arc<LeaseClock>,
    Option<Ending>,
    Option<StreamState>,
);

/// What the manager's finished hook passes on: a stream's end.
#[derive(Debug)]
pub(super) struct Finished {
    id: String,
    state: StreamState,
    aborted: bool,
    /// The report summary recorded on the job.
    summary: serde_json::Value,
}

impl Finished {
    pub(super) fn from_report(r: &StreamReport) -> Self {
        let summary = serde_json::json!({
            "state": r.state.name(),
            "aborted": r.aborted,
            "error": r.error.as_ref().map(|e| e.to_string()),
            "stats": stats_summary(&r.stats),
        });
        Self {
            id: r.id.clone(),
            state: r.state,
            aborted: r.aborted,
            summary,
        }
    }
}

/// The figures of a stream's statistics worth keeping on its job, from the typed fields
/// (a field picked by name from the serialized form went missing silently when misnamed):
/// durations in seconds, frames out per variant.
fn stats_summary(stats: &streamvisor::StreamStats) -> serde_json::Value {
    let frames_out: serde_json::Map<String, serde_json::Value> = stats
        .variants
        .iter()
        .map(|v| (v.name.clone(), v.frames_out.into()))
        .collect();
    serde_json::json!({
        "frames_in": stats.frames_in,
        "frames_out": frames_out,
        "bytes_in": stats.bytes_in,
        "bytes_out": stats.bytes_out,
        "media_time": stats.media_time.as_secs_f64(),
        "cpu_time": stats.cpu_time.as_secs_f64(),
        "errors": stats.errors,
        "recoveries": stats.recoveries,
        "uptime": stats.uptime.as_secs_f64(),
    })
}

impl Node {
    /// Records every stream that ended since the last turn.
    pub(super) fn collect_reports(&mut self) {
        while let Ok(done) = self.reports.try_recv() {
            self.record(done);
        }
    }

    /// Waits up to `d` for a stream to end (a full node's idle turn: a slot that frees is
    /// recorded and refilled at once); records it.
    pub(super) fn wait_report(&mut self, d: Duration) {
        if let Ok(done) = self.reports.recv_timeout(d) {
            self.record(done);
        }
    }

    /// Records how a stream ended on its job.
    fn record(&mut self, done: Finished) {
        let job = self.table().remove(&done.id);
        let Some(job) = job else { return };
        let outcome = match job.ending {
            Some(Ending::Lost) => return,
            Some(Ending::HandBack) => "handback",
            Some(Ending::Cancel) => "cancelled",
            None if done.state == StreamState::Stopped && !done.aborted => "completed",
            None => "failed",
        };
        let detail = if outcome == "failed" {
            serde_json::json!({"node": self.cfg.name, "error": done.summary["error"]})
        } else {
            done.summary
        };
        self.finish(&done.id, &job, outcome, &detail);
    }

    /// Runs the finish script for `job`; logs what it did.
    pub(super) fn finish(
        &mut self,
        id: &str,
        job: &RunningJob,
        outcome: &str,
        detail: &serde_json::Value,
    ) {
        let m = &self.metrics;
        let counter = match outcome {
            "completed" => Some(&m.completed),
            "failed" => Some(&m.failed),
            "handback" => Some(&m.handed_back),
            _ => None,
        };
        if let Some(c) = counter {
            NodeMetrics::count(c);
        }
        let keys = &self.cfg.keys;
        let done: redis::RedisResult<String> = scripts::finish()
            .key(keys.job(id))
            .key(keys.jobs())
            .key(keys.dead())
            .arg(GROUP)
            .arg(&job.entry)
            .arg(&self.cfg.name)
            .arg(job.epoch)
            .arg(outcome)
            .arg(detail.to_string())
            .arg(now_ms())
            .arg(self.cfg.max_failures)
            .arg(id)
            .invoke(&mut self.conn);
        match done {
            Ok(what) => log::info!("node {}: job {id}: {outcome}: {what}", self.cfg.name),
            Err(e) => log::warn!(
                "node {}: job {id}: {outcome} not recorded: {e}",
                self.cfg.name
            ),
        }
    }

    /// Every quarter second: a lapsed lease aborts its stream (recording nothing), a
    /// cancelled job is stopped, a changed stream state is recorded.
    pub(super) fn watch_running(&mut self) {
        let snapshot: Vec<Watched> = self
            .table()
            .iter()
            .map(|(id, j)| (id.clone(), j.epoch, j.lease.clone(), j.ending, j.noted))
            .collect();
        for (id, epoch, lease, ending, noted) in snapshot {
            if ending.is_some() {
                continue;
            }
            if !lease.is_valid() {
                log::warn!("node {}: job {id}: lease lost, aborting", self.cfg.name);
                NodeMetrics::count(&self.metrics.leases_lost);
                self.end(&id, Ending::Lost);
                continue;
            }
            let cancel: Option<String> = redis::cmd("HGET")
                .arg(self.cfg.keys.job(&id))
                .arg("cancel")
                .query(&mut self.conn)
                .unwrap_or(None);
            if cancel.as_deref() == Some("1") {
                self.end(&id, Ending::Cancel);
                continue;
            }
            let state = self.manager.state(&id);
            if state.is_some() && state != noted {
                self.note(&id, epoch, state);
            }
        }
    }

    /// Records a running job's stream state.
    fn note(&mut self, id: &str, epoch: u64, state: Option<StreamState>) {
        // The final state is the finish script's to write (`completed`, `failed`, ...): a
        // terminal stream state noted here first would show a moment too early.
        let Some(s) = state.filter(|s| !s.is_terminal() && *s != StreamState::New) else {
            return;
        };
        let noted: redis::RedisResult<i64> = scripts::note()
            .key(self.cfg.keys.job(id))
            .arg(&self.cfg.name)
            .arg(epoch)
            .arg(s.name())
            .invoke(&mut self.conn);
        if noted.is_ok() {
            if let Some(j) = self.table().get_mut(id) {
                j.noted = state;
            }
        }
    }

    /// Ends a job's stream for `why`: a cancelled one stops gracefully (its playlists
    /// finished), the others are aborted (a live playlist stays open for the next owner).
    pub(super) fn end(&mut self, id: &str, why: Ending) {
        if let Some(j) = self.table().get_mut(id) {
            j.ending = Some(why);
        }
        let ended = match why {
            Ending::Cancel => self.manager.terminate_stream(id, Duration::from_secs(5)),
            Ending::Lost | Ending::HandBack => self.manager.abort_stream(id),
        };
        if let Err(e) = ended {
            log::debug!("node {}: job {id}: {e}", self.cfg.name);
        }
    }

    /// Draining: hands back the live jobs (`live_only`) or every job still running.
    pub(super) fn hand_back(&mut self, live_only: bool) {
        let ids: Vec<String> = self
            .table()
            .iter()
            .filter(|(_, j)| j.ending.is_none() && (!live_only || j.kind == JobKind::Live))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            log::info!("node {}: handing back {id}", self.cfg.name);
            self.end(&id, Ending::HandBack);
        }
    }

    /// The job table, locked (short: lookups and edits only, never across a call).
    pub(super) fn table(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, RunningJob>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }
}
