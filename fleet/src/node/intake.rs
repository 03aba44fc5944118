//! Taking work: claiming an entry whose owner let its lease lapse (`XAUTOCLAIM`), else
//! reading a new one (`XREADGROUP ... COUNT 1`); then building the job's config under the
//! operator's rules (a refusal is recorded on the job), checking it fits now (else it goes
//! back to the end of the queue, atomically, and the node pauses its reading a second),
//! taking it (a new fencing epoch) and starting its stream.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::streams::{StreamAutoClaimReply, StreamReadReply};
use redis::Commands;
use streamvisor::sink::{FsSink, HttpSink, SegmentSink};
use streamvisor::Admitted;

use super::running::RunningJob;
use super::{Node, Output};
use crate::client::now_ms;
use crate::error::{JobRefusal, Result};
use crate::job::{build_config, with_sink, JobKind};
use crate::keys::GROUP;
use crate::lease::LeaseClock;
use crate::metrics::NodeMetrics;
use crate::scripts;
use crate::sink::{FencedSink, FENCING_HEADER};

/// An entry delivered to this node: its id and the job it names.
struct Delivery {
    entry: String,
    job: Option<String>,
    /// Claimed from another node (its lease lapsed), not read new.
    claimed: bool,
    /// When the read or claim was sent: Redis started the entry's idle time (the lease)
    /// after this.
    sent: Instant,
}

/// How long a blocking read waits for a new entry: short, so the node's loop stays
/// responsive (reports, cancels, drain).
const READ_BLOCK_MS: u64 = 250;

impl Node {
    /// Claims or reads one entry and handles it.
    pub(super) fn intake(&mut self) -> Result<()> {
        let delivery = match self.claim_due()? {
            Some(d) => Some(d),
            None => self.read_new()?,
        };
        if let Some(d) = delivery {
            self.handle(d)?;
        }
        Ok(())
    }

    /// Every sixth of the lease (a claim soon after a lease lapses: the takeover time):
    /// one entry idle longer than the lease, if any.
    fn claim_due(&mut self) -> Result<Option<Delivery>> {
        if Instant::now() < self.next_claim {
            return Ok(None);
        }
        self.next_claim = Instant::now() + self.cfg.lease / 6;
        let sent = Instant::now();
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(self.cfg.keys.jobs())
            .arg(GROUP)
            .arg(&self.cfg.name)
            .arg(self.cfg.lease.as_millis() as u64)
            .arg(&self.claim_cursor)
            .arg("COUNT")
            .arg(1)
            .query(&mut self.conn)?;
        self.claim_cursor = reply.next_stream_id;
        Ok(reply.claimed.into_iter().next().map(|e| Delivery {
            job: e.get("id"),
            entry: e.id,
            claimed: true,
            sent,
        }))
    }

    /// A new entry, waiting up to [`READ_BLOCK_MS`].
    fn read_new(&mut self) -> Result<Option<Delivery>> {
        let sent = Instant::now();
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.cfg.name)
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(READ_BLOCK_MS)
            .arg("STREAMS")
            .arg(self.cfg.keys.jobs())
            .arg(">")
            .query(&mut self.conn)?;
        let first = reply.and_then(|r| r.keys.into_iter().next()?.ids.into_iter().next());
        Ok(first.map(|e| Delivery {
            job: e.get("id"),
            entry: e.id,
            claimed: false,
            sent,
        }))
    }

    /// Refuses, puts back or takes and starts the delivered job.
    fn handle(&mut self, d: Delivery) -> Result<()> {
        let Some(id) = d.job.clone() else {
            // Not one of ours: nothing to record it on.
            let () = self.conn.xack(self.cfg.keys.jobs(), GROUP, &[&d.entry])?;
            return Ok(());
        };
        let record: HashMap<String, String> = self.conn.hgetall(self.cfg.keys.job(&id))?;
        let kind = record.get("kind").and_then(|k| JobKind::parse(k));
        let built = match (kind, record.get("config")) {
            (Some(kind), Some(raw)) => {
                build_config(&id, raw, self.output_dir(&id), &self.cfg.rules)
                    .map(|b| Some((kind, b)))
            }
            _ if record.is_empty() => Ok(None),
            _ => Err(JobRefusal::Malformed("no kind or no config".into())),
        };
        let (kind, builder) = match built {
            Ok(Some(kind_and_builder)) => kind_and_builder,
            // No record: the take script acknowledges the entry.
            Ok(None) => return self.take(&d, &id).map(drop),
            Err(refusal) => return self.refuse(&d, &id, &refusal),
        };
        if self.leave_to_others(&record)? {
            return self.requeue(&d, &id);
        }
        let fits = builder
            .clone()
            .build()
            .ok()
            .is_some_and(|c| self.manager.can_admit(&c).is_ok());
        if !fits {
            return self.requeue(&d, &id);
        }
        let Some((epoch, previous)) = self.take(&d, &id)? else {
            return Ok(());
        };
        let lease = Arc::new(LeaseClock::new(self.cfg.lease, d.sent));
        self.count_take(&d, kind, &previous);
        let job = RunningJob {
            entry: d.entry.clone(),
            epoch,
            kind,
            lease: lease.clone(),
            noted: None,
            ending: None,
        };
        let config = self
            .sink_for(&id, epoch)
            .map_err(|e| JobRefusal::InvalidConfig(format!("output: {e}")))
            .and_then(|inner| with_sink(builder, Arc::new(FencedSink::new(inner, lease))));
        self.launch(&id, job, config);
        Ok(())
    }

    /// Starts the job's stream (the job in the table first, so its lease is renewed and its
    /// report found); a start that fails is a failed attempt.
    fn launch(
        &mut self,
        id: &str,
        job: RunningJob,
        config: std::result::Result<streamvisor::StreamConfig, JobRefusal>,
    ) {
        log::info!("node {}: job {id}: epoch {}", self.cfg.name, job.epoch);
        self.table().insert(id.to_owned(), job);
        let error = match config {
            Ok(config) => match self.manager.create_stream(config) {
                Ok(Admitted::Started) => return,
                Ok(other) => format!("not started: {other:?}"),
                Err(e) => e.to_string(),
            },
            Err(refusal) => refusal.to_string(),
        };
        let job = self.table().remove(id);
        if let Some(job) = job {
            let detail = serde_json::json!({"node": self.cfg.name, "error": error});
            self.finish(id, &job, "failed", &detail);
        }
    }

    /// True when this node already failed the job and a live node that has not is there
    /// to try it: a failed job goes to another node while there is one.
    fn leave_to_others(&mut self, record: &HashMap<String, String>) -> Result<bool> {
        let errors: Vec<serde_json::Value> = record
            .get("errors")
            .and_then(|e| serde_json::from_str(e).ok())
            .unwrap_or_default();
        let mut failed: Vec<&str> = errors.iter().filter_map(|e| e["node"].as_str()).collect();
        if !failed.contains(&self.cfg.name.as_str()) {
            return Ok(false);
        }
        failed.sort_unstable();
        failed.dedup();
        let names: Vec<String> = self.conn.smembers(self.cfg.keys.nodes())?;
        let mut alive = 0;
        for name in names.iter().filter(|n| !failed.contains(&n.as_str())) {
            let exists: bool = self.conn.exists(self.cfg.keys.node(name))?;
            alive += usize::from(exists);
        }
        Ok(alive > 0)
    }

    /// The take script: `Some((epoch, previous state))` when the node now owns the job.
    fn take(&mut self, d: &Delivery, id: &str) -> Result<Option<(u64, String)>> {
        let reply: Vec<String> = scripts::take()
            .key(self.cfg.keys.job(id))
            .key(self.cfg.keys.jobs())
            .arg(GROUP)
            .arg(&d.entry)
            .arg(&self.cfg.name)
            .arg(now_ms())
            .invoke(&mut self.conn)?;
        match reply.as_slice() {
            [ok, epoch, previous, _attempts] if ok == "ok" => {
                Ok(epoch.parse().ok().map(|e| (e, previous.clone())))
            }
            other => {
                log::debug!("node {}: job {id}: not taken: {other:?}", self.cfg.name);
                Ok(None)
            }
        }
    }

    fn count_take(&self, d: &Delivery, kind: JobKind, previous: &str) {
        NodeMetrics::count(&self.metrics.taken);
        if d.claimed {
            NodeMetrics::count(&self.metrics.claims);
            if kind == JobKind::Live && previous != "queued" {
                NodeMetrics::count(&self.metrics.takeovers);
            }
        }
    }

    /// Records a refusal on the job (final) and acknowledges its entry.
    fn refuse(&mut self, d: &Delivery, id: &str, refusal: &JobRefusal) -> Result<()> {
        log::warn!("node {}: job {id}: {refusal}", self.cfg.name);
        NodeMetrics::count(&self.metrics.refused);
        let json = serde_json::to_string(refusal).unwrap_or_default();
        let _: i64 = scripts::refuse()
            .key(self.cfg.keys.job(id))
            .key(self.cfg.keys.jobs())
            .arg(GROUP)
            .arg(&d.entry)
            .arg(&self.cfg.name)
            .arg(json)
            .arg(now_ms())
            .invoke(&mut self.conn)?;
        Ok(())
    }

    /// Puts a job that does not fit now back at the end of the queue (nothing lost: the new
    /// entry and the acknowledgement of the old one are one script) and reads nothing for a
    /// second, so another node with room gets it.
    fn requeue(&mut self, d: &Delivery, id: &str) -> Result<()> {
        NodeMetrics::count(&self.metrics.requeued);
        self.quiet_until = Instant::now() + Duration::from_secs(1);
        let _: i64 = scripts::requeue()
            .key(self.cfg.keys.job(id))
            .key(self.cfg.keys.jobs())
            .arg(GROUP)
            .arg(&d.entry)
            .arg(&self.cfg.name)
            .arg(id)
            .invoke(&mut self.conn)?;
        Ok(())
    }

    /// Where the job's output goes (also its config's output directory).
    fn output_dir(&self, id: &str) -> std::path::PathBuf {
        match &self.cfg.output {
            Output::Dir(dir) => dir.join(id),
            Output::Put(_) => std::path::PathBuf::from(id),
        }
    }

    /// The node's sink for a job at `epoch` (not yet fenced).
    fn sink_for(&self, id: &str, epoch: u64) -> std::io::Result<Arc<dyn SegmentSink>> {
        Ok(match &self.cfg.output {
            Output::Dir(dir) => Arc::new(FsSink::new(dir.join(id), self.cfg.sync_output)),
            Output::Put(base) => {
                let url = job_url(base, id);
                Arc::new(HttpSink::new(&url)?.header(FENCING_HEADER, &epoch.to_string())?)
            }
        })
    }
}

/// A job's upload URL under the node's `base`: its directory before a query
/// (`?token=...`), not after it (where every job would write into the same directory).
fn job_url(base: &str, id: &str) -> String {
    let (path, query) = base.split_once('?').map_or((base, ""), |(p, q)| (p, q));
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{}/{id}/{query}", path.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_jobs_directory_goes_before_the_query() {
        assert_eq!(super::job_url("http://o/hls/", "a"), "http://o/hls/a/");
        assert_eq!(
            super::job_url("http://o/hls?tok=x", "a"),
            "http://o/hls/a/?tok=x"
        );
    }
}
