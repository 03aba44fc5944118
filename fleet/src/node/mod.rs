//! A node of the fleet: a [`Manager`] that takes jobs from the job stream while it has
//! room, runs them, keeps their leases, and records how they end.
//!
//! Inside: the node's loop (this file), reading and claiming entries (`intake`), the running
//! jobs and how each ends (`running`), the lease renewer thread (`renewer`).

mod intake;
mod renewer;
mod running;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use streamvisor::manager::OverCapacity;
use streamvisor::{Manager, ResourceCapacity, StreamConfig};

use crate::client::{connect, ensure_group};
use crate::error::{FleetError, Result};
use crate::job::TrustRules;
use crate::keys::Keys;
use crate::metrics::NodeMetrics;
use running::{Finished, RunningJob};

/// Where a node writes each job's output: `<dir>/<job id>/` or `<url>/<job id>/`.
#[derive(Debug, Clone)]
pub enum Output {
    /// A directory every node can reach (a shared filesystem).
    Dir(PathBuf),
    /// An HTTP origin taking `PUT` and `DELETE` (WebDAV), with the fencing token in an
    /// `X-Fencing-Token` header on every request.
    Put(String),
}

/// A node's settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeConfig {
    /// The fleet's Redis (`redis://host:port`).
    pub redis_url: String,
    /// The fleet's keys.
    pub keys: Keys,
    /// The node's name (its consumer name in the group): unique in the fleet.
    pub name: String,
    /// At most this many jobs at once.
    pub max_concurrent: usize,
    /// The node's capacity (default: the machine's).
    pub capacity: Option<ResourceCapacity>,
    /// The operator's trust rules, applied to every job.
    pub rules: TrustRules,
    /// Where outputs go.
    pub output: Output,
    /// The lease: a job whose owner has not renewed it for this long is taken over.
    pub lease: Duration,
    /// How long a draining node lets its on-demand jobs finish before it hands them back.
    pub drain_deadline: Duration,
    /// Failed attempts after which a job goes to the dead-letter stream.
    pub max_failures: u32,
    /// Make every file durable before it is listed (directory output).
    pub sync_output: bool,
}

/// The default lease: long enough that a node's renewals (every third of it) survive a
/// busy machine's scheduling hiccups and a Redis round trip or two, short enough that a
/// live stream moves within about 3 s of its node's death (players hold more than that).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(3);

impl NodeConfig {
    /// A node named `name` on the fleet at `redis_url`, writing to `output`; 4 jobs at
    /// most, the machine's capacity, no local files or generated sources, a 3 s lease, 10 s
    /// to drain, 3 failures to the dead-letter stream.
    pub fn new(redis_url: impl Into<String>, name: impl Into<String>, output: Output) -> Self {
        Self {
            redis_url: redis_url.into(),
            keys: Keys::default(),
            name: name.into(),
            max_concurrent: 4,
            capacity: None,
            rules: TrustRules::default(),
            output,
            lease: DEFAULT_LEASE,
            drain_deadline: Duration::from_secs(10),
            max_failures: 3,
            sync_output: true,
        }
    }
}

/// A running node. Build it with [`Node::start`], run it with [`Node::serve`].
pub struct Node {
    cfg: NodeConfig,
    conn: redis::Connection,
    manager: Manager,
    reports: mpsc::Receiver<Finished>,
    jobs: Arc<Mutex<HashMap<String, RunningJob>>>,
    metrics: Arc<NodeMetrics>,
    /// The least a job can cost: below this much free compute the node reads nothing.
    floor: f64,
    /// Where the next `XAUTOCLAIM` scan starts.
    claim_cursor: String,
    next_claim: Instant,
    /// After putting back a job that did not fit, the node waits before reading again.
    quiet_until: Instant,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.cfg.name)
            .finish()
    }
}

impl Node {
    /// Connects to Redis and builds the node's manager (streams that do not fit are
    /// refused by it: the fleet queues them in Redis instead).
    ///
    /// # Errors
    /// Redis cannot be reached; the manager cannot be built.
    pub fn start(cfg: NodeConfig) -> Result<Self> {
        let mut conn = connect(&cfg.redis_url)?;
        ensure_group(&mut conn, &cfg.keys)?;
        let (tx, reports) = mpsc::channel();
        let tx = Mutex::new(tx);
        let mut builder = Manager::builder()
            .max_concurrent(cfg.max_concurrent)
            .over_capacity(OverCapacity::Refuse, OverCapacity::Refuse)
            .on_finished(move |r| {
                let tx = tx.lock().unwrap_or_else(|p| p.into_inner());
                let _ = tx.send(Finished::from_report(r));
            });
        if let Some(c) = &cfg.capacity {
            builder = builder.capacity(c.clone());
        }
        let manager = builder
            .build()
            .map_err(|e| FleetError::Node(e.to_string()))?;
        let floor = price_floor();
        let now = Instant::now();
        Ok(Self {
            cfg,
            conn,
            manager,
            reports,
            jobs: Arc::default(),
            metrics: Arc::default(),
            floor,
            claim_cursor: "0-0".into(),
            next_claim: now,
            quiet_until: now,
        })
    }

    /// The node's figures.
    pub fn metrics(&self) -> Arc<NodeMetrics> {
        self.metrics.clone()
    }

    /// Runs jobs until `stop` is set, then drains: stops taking jobs, hands its live
    /// streams back at once (another node takes them over without waiting for the lease),
    /// lets on-demand jobs finish until the drain deadline and hands back the rest.
    ///
    /// Redis errors while it runs are logged and the connection opened again: a node
    /// outlives a Redis restart (its leases lapse meanwhile).
    ///
    /// # Errors
    /// The lease renewer thread cannot be started.
    pub fn serve(mut self, stop: &AtomicBool) -> Result<()> {
        let renewer = renewer::Renewer::spawn(&self.cfg, self.jobs.clone(), self.metrics.clone())?;
        let mut drain_until: Option<Instant> = None;
        let mut next_watch = Instant::now();
        let mut next_publish = Instant::now();
        loop {
            self.reopen_if_closed();
            self.collect_reports();
            if Instant::now() >= next_watch {
                next_watch = Instant::now() + Duration::from_millis(250);
                self.watch_running();
            }
            if Instant::now() >= next_publish {
                next_publish = Instant::now() + Duration::from_secs(1);
                self.publish();
            }
            if stop.load(Ordering::SeqCst) && drain_until.is_none() {
                log::info!("node {}: draining", self.cfg.name);
                drain_until = Some(Instant::now() + self.cfg.drain_deadline);
                self.hand_back(true);
            }
            if let Some(until) = drain_until {
                if self.running() == 0 {
                    break;
                }
                if Instant::now() >= until {
                    self.hand_back(false);
                }
                self.wait_report(Duration::from_millis(50));
                continue;
            }
            self.step();
        }
        renewer.stop();
        self.publish();
        Ok(())
    }

    /// A connection that failed (Redis restarted) is opened again at every turn, not only
    /// when taking work: a full or draining node records its jobs' ends through it too.
    fn reopen_if_closed(&mut self) {
        if !redis::ConnectionLike::is_open(&self.conn) {
            if let Ok(conn) = connect(&self.cfg.redis_url) {
                self.conn = conn;
            }
        }
    }

    /// One turn of taking work: claim or read one entry when there is room, else wait a
    /// little. A lost Redis connection is logged and opened again.
    fn step(&mut self) {
        if !self.has_room() {
            self.wait_report(Duration::from_millis(100));
            return;
        }
        if let Err(e) = self.intake() {
            log::warn!("node {}: {e}", self.cfg.name);
            std::thread::sleep(Duration::from_millis(500));
            if let Ok(conn) = connect(&self.cfg.redis_url) {
                self.conn = conn;
            }
        }
    }

    /// Jobs in the table (running, or ending and not yet recorded).
    fn running(&self) -> usize {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Room for one more job: under `max_concurrent`, at least the price floor of free
    /// compute, and not just after putting a job back.
    fn has_room(&self) -> bool {
        Instant::now() >= self.quiet_until
            && self.running() < self.cfg.max_concurrent
            && self.manager.pool_usage().free_compute() >= self.floor
    }

    /// Publishes the node's figures (they expire three seconds after it stops).
    fn publish(&mut self) {
        let running = self.running() as u64;
        self.metrics.running.store(running, Ordering::Relaxed);
        let ttl = Duration::from_secs(3);
        let published = self
            .metrics
            .publish(&mut self.conn, &self.cfg.keys, &self.cfg.name, ttl);
        if let Err(e) = published {
            log::debug!("node {}: metrics not published: {e}", self.cfg.name);
        }
    }
}

/// The least any job can cost: the standard ladder's shortest rung alone.
fn price_floor() -> f64 {
    let config =
        StreamConfig::builder("floor", "rtmp://127.0.0.1/floor/floor", "/nonexistent").build();
    config.map_or(1.0, |c| streamvisor::pool::price_floor(&c).compute)
}
