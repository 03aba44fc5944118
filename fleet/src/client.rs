//! The fleet's client: submit, status, cancel and list jobs, and the fleet's metrics.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use redis::Commands;

use crate::error::{FleetError, JobRefusal, Result};
use crate::job::{valid_id, JobKind, JobStatus};
use crate::keys::{Keys, GROUP};
use crate::scripts;

/// Milliseconds since the Unix epoch (what the job records carry).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Opens a connection to `url` (`redis://host:port/db`).
pub(crate) fn connect(url: &str) -> Result<redis::Connection> {
    Ok(redis::Client::open(url)?.get_connection()?)
}

/// Creates the job stream and its consumer group if they are missing (from the start of
/// the stream, so a job submitted before any node existed is read).
pub(crate) fn ensure_group(conn: &mut redis::Connection, keys: &Keys) -> Result<()> {
    let made: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(keys.jobs())
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query(conn);
    match made {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => Ok(other?),
    }
}

/// A connection to the fleet, to submit and follow jobs.
pub struct FleetClient {
    conn: redis::Connection,
    keys: Keys,
}

impl std::fmt::Debug for FleetClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetClient")
            .field("keys", &self.keys)
            .finish()
    }
}

impl FleetClient {
    /// Connects to the fleet's Redis (keys under the default prefix `sv`).
    ///
    /// # Errors
    /// Redis cannot be reached.
    pub fn connect(url: &str) -> Result<Self> {
        Self::with_keys(url, Keys::default())
    }

    /// Connects to the fleet's Redis with keys under another prefix.
    ///
    /// # Errors
    /// Redis cannot be reached.
    pub fn with_keys(url: &str, keys: Keys) -> Result<Self> {
        let mut conn = connect(url)?;
        ensure_group(&mut conn, &keys)?;
        Ok(Self { conn, keys })
    }

    /// Queues a job: `config` is the serde form of a stream config (its `id` and
    /// `output_dir` are the node's to set; the node validates the rest under its operator's
    /// rules and records a refusal on the job).
    ///
    /// # Errors
    /// [`FleetError::Refused`] for an invalid id, a config that is not a JSON object, or a
    /// duplicate id; [`FleetError::Redis`].
    pub fn submit(&mut self, id: &str, kind: JobKind, config: &serde_json::Value) -> Result<()> {
        let refused = |refusal| FleetError::Refused {
            id: id.to_owned(),
            refusal,
        };
        if !valid_id(id) {
            let why = format!("{id:?} must match [A-Za-z0-9_-]{{1,64}}");
            return Err(refused(JobRefusal::BadId(why)));
        }
        if !config.is_object() {
            let why = "config: not a JSON object".to_owned();
            return Err(refused(JobRefusal::Malformed(why)));
        }
        let added: i64 = scripts::submit()
            .key(self.keys.job(id))
            .key(self.keys.jobs())
            .key(self.keys.all())
            .arg(id)
            .arg(kind.as_str())
            .arg(config.to_string())
            .arg(now_ms())
            .invoke(&mut self.conn)?;
        if added == 0 {
            return Err(refused(JobRefusal::Duplicate));
        }
        Ok(())
    }

    /// A job's record.
    ///
    /// # Errors
    /// [`FleetError::UnknownJob`]; [`FleetError::Redis`].
    pub fn status(&mut self, id: &str) -> Result<JobStatus> {
        let h: HashMap<String, String> = self.conn.hgetall(self.keys.job(id))?;
        JobStatus::from_hash(&h).ok_or_else(|| FleetError::UnknownJob(id.to_owned()))
    }

    /// Cancels a job: a queued one ends `cancelled` when a node reads it; a running one is
    /// stopped by its node (within a second) and ends `cancelled`. False when it had
    /// already ended.
    ///
    /// # Errors
    /// [`FleetError::UnknownJob`]; [`FleetError::Redis`].
    pub fn cancel(&mut self, id: &str) -> Result<bool> {
        let status = self.status(id)?;
        if status.is_final() {
            return Ok(false);
        }
        let () = self.conn.hset(self.keys.job(id), "cancel", "1")?;
        Ok(true)
    }

    /// Every job, oldest first.
    ///
    /// # Errors
    /// [`FleetError::Redis`].
    pub fn list(&mut self) -> Result<Vec<JobStatus>> {
        let ids: Vec<String> = self.conn.zrange(self.keys.all(), 0, -1)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match self.status(&id) {
                Ok(s) => out.push(s),
                Err(FleetError::UnknownJob(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The ids in the dead-letter stream (jobs that failed their last allowed attempt),
    /// oldest first.
    ///
    /// # Errors
    /// [`FleetError::Redis`].
    pub fn dead_letters(&mut self) -> Result<Vec<String>> {
        let reply: redis::streams::StreamRangeReply = self.conn.xrange_all(self.keys.dead())?;
        Ok(reply
            .ids
            .iter()
            .filter_map(|e| e.get::<String>("id"))
            .collect())
    }

    /// The fleet's metrics in the OpenMetrics text format: jobs pending and not yet read,
    /// dead letters, and every live node's figures (running jobs, claims, takeovers, lease
    /// renewal latency).
    ///
    /// # Errors
    /// [`FleetError::Redis`].
    pub fn render_metrics(&mut self) -> Result<String> {
        crate::metrics::render_fleet(&mut self.conn, &self.keys)
    }
}
