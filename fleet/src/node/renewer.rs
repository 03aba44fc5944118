//! The node's lease renewer: a thread of its own with its own Redis connection, so a
//! renewal is never late behind the node's blocking reads or a stream's stop. Every third
//! of the lease it renews each running job's lease (the renew script: only while the node
//! still owns the job at its epoch) and tells the job's lease clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::running::RunningJob;
use super::NodeConfig;
use crate::client::connect;
use crate::error::{FleetError, Result};
use crate::keys::{Keys, GROUP};
use crate::lease::LeaseClock;
use crate::metrics::NodeMetrics;
use crate::scripts;

/// The renewer thread and its stop flag.
pub(super) struct Renewer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// One lease to renew: (job id, entry, epoch, clock).
type Due = (String, String, u64, Arc<LeaseClock>);

impl Renewer {
    pub(super) fn spawn(
        cfg: &NodeConfig,
        jobs: Arc<Mutex<HashMap<String, RunningJob>>>,
        metrics: Arc<NodeMetrics>,
    ) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (url, keys, node) = (cfg.redis_url.clone(), cfg.keys.clone(), cfg.name.clone());
        let every = cfg.lease / 3;
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("sv-fleet-{node}-lease"))
            .spawn(move || {
                let mut conn = connect(&url).ok();
                while !flag.load(Ordering::SeqCst) {
                    let due: Vec<Due> = {
                        let g = jobs.lock().unwrap_or_else(|p| p.into_inner());
                        g.iter()
                            .map(|(id, j)| (id.clone(), j.entry.clone(), j.epoch, j.lease.clone()))
                            .collect()
                    };
                    if conn.is_none() {
                        conn = connect(&url).ok();
                    }
                    if let Some(c) = conn.as_mut() {
                        if renew_all(c, &keys, &node, &due, &metrics).is_err() {
                            conn = None;
                        }
                    }
                    sleep_unless(&flag, every);
                }
            })
            .map_err(|e| FleetError::Node(format!("lease thread: {e}")))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    pub(super) fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sleeps `d`, waking early when `flag` is set.
fn sleep_unless(flag: &AtomicBool, d: Duration) {
    let until = Instant::now() + d;
    while !flag.load(Ordering::SeqCst) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
    }
}

/// Renews every due lease; a refused renewal revokes the lease. A Redis error stops the
/// round (the connection is opened again next time).
fn renew_all(
    conn: &mut redis::Connection,
    keys: &Keys,
    node: &str,
    due: &[Due],
    metrics: &NodeMetrics,
) -> redis::RedisResult<()> {
    for (id, entry, epoch, clock) in due {
        let sent = Instant::now();
        let renewed: i64 = scripts::renew()
            .key(keys.job(id))
            .key(keys.jobs())
            .arg(GROUP)
            .arg(entry)
            .arg(node)
            .arg(*epoch)
            .invoke(conn)?;
        if renewed == 1 {
            clock.renewed(sent);
            metrics.renewal(sent.elapsed());
        } else {
            log::warn!("node {node}: job {id}: lease taken by another node");
            clock.revoke();
        }
    }
    Ok(())
}
