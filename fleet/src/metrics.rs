//! Per-node and fleet metrics: each node counts what it did and publishes its figures to
//! Redis every second (a hash that expires when the node stops publishing); the fleet's
//! page (OpenMetrics text) reads them back with the job stream's pending and unread counts.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::Commands;

use crate::error::Result;
use crate::keys::{Keys, GROUP};

/// What a node counts. Counters only grow; `running` is set by the node's loop.
#[derive(Debug, Default)]
pub struct NodeMetrics {
    /// Jobs it runs now.
    pub running: AtomicU64,
    /// Jobs it took (new reads and claims).
    pub taken: AtomicU64,
    /// Entries it claimed from another node (idle past the lease).
    pub claims: AtomicU64,
    /// Live jobs among those claims: takeovers of a live stream.
    pub takeovers: AtomicU64,
    /// Jobs it completed.
    pub completed: AtomicU64,
    /// Runs that failed on it.
    pub failed: AtomicU64,
    /// Jobs it read but could not fit, put back in the queue.
    pub requeued: AtomicU64,
    /// Jobs it handed back while draining.
    pub handed_back: AtomicU64,
    /// Jobs it refused (malformed or untrusted).
    pub refused: AtomicU64,
    /// Leases it lost while running (renewal refused or too late).
    pub leases_lost: AtomicU64,
    /// Lease renewals that succeeded.
    pub renewals: AtomicU64,
    /// Total time of those renewals, microseconds.
    pub renew_micros: AtomicU64,
    /// The slowest renewal, microseconds.
    pub renew_max_micros: AtomicU64,
}

/// One published figure: its field, kind, help, and where the node keeps it.
type Field = (
    &'static str,
    &'static str,
    &'static str,
    fn(&NodeMetrics) -> &AtomicU64,
);

/// The figures a node publishes, in the order they are rendered.
const FIELDS: &[Field] = &[
    ("running", "gauge", "Jobs the node runs now.", |m| {
        &m.running
    }),
    ("taken", "counter", "Jobs the node took.", |m| &m.taken),
    (
        "claims",
        "counter",
        "Entries claimed from a node whose lease lapsed.",
        |m| &m.claims,
    ),
    (
        "takeovers",
        "counter",
        "Live streams taken over from another node.",
        |m| &m.takeovers,
    ),
    ("completed", "counter", "Jobs completed.", |m| &m.completed),
    ("failed", "counter", "Runs that failed.", |m| &m.failed),
    (
        "requeued",
        "counter",
        "Jobs read that did not fit, put back.",
        |m| &m.requeued,
    ),
    (
        "handed_back",
        "counter",
        "Jobs handed back while draining.",
        |m| &m.handed_back,
    ),
    (
        "refused",
        "counter",
        "Jobs refused (malformed or untrusted).",
        |m| &m.refused,
    ),
    (
        "leases_lost",
        "counter",
        "Leases lost while running.",
        |m| &m.leases_lost,
    ),
    ("renewals", "counter", "Lease renewals.", |m| &m.renewals),
    (
        "renew_micros",
        "counter",
        "Time spent renewing leases, microseconds.",
        |m| &m.renew_micros,
    ),
    (
        "renew_max_micros",
        "gauge",
        "Slowest lease renewal, microseconds.",
        |m| &m.renew_max_micros,
    ),
];

impl NodeMetrics {
    /// Adds one to a counter.
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A renewal took `took`.
    pub fn renewal(&self, took: Duration) {
        let us = took.as_micros() as u64;
        Self::count(&self.renewals);
        self.renew_micros.fetch_add(us, Ordering::Relaxed);
        self.renew_max_micros.fetch_max(us, Ordering::Relaxed);
    }

    /// Publishes the figures under the node's key, expiring after `ttl` (a node that
    /// stops publishing leaves the page).
    pub(crate) fn publish(
        &self,
        conn: &mut redis::Connection,
        keys: &Keys,
        node: &str,
        ttl: Duration,
    ) -> Result<()> {
        let pairs: Vec<(&str, u64)> = FIELDS
            .iter()
            .map(|f| (f.0, f.3(self).load(Ordering::Relaxed)))
            .collect();
        let key = keys.node(node);
        redis::pipe()
            .hset_multiple(&key, &pairs)
            .ignore()
            .pexpire(&key, ttl.as_millis() as i64)
            .ignore()
            .sadd(keys.nodes(), node)
            .ignore()
            .query::<()>(conn)?;
        Ok(())
    }
}

/// A label value escaped for OpenMetrics.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The group's pending count and unread count (`lag`), from `XINFO GROUPS`.
fn group_counts(conn: &mut redis::Connection, keys: &Keys) -> Result<(u64, u64)> {
    let groups: Vec<Vec<redis::Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(keys.jobs())
        .query(conn)?;
    for g in groups {
        let fields: BTreeMap<String, redis::Value> = g
            .chunks(2)
            .filter_map(|kv| Some((redis::from_redis_value(&kv[0]).ok()?, kv.get(1)?.clone())))
            .collect();
        let name: Option<String> = fields
            .get("name")
            .and_then(|v| redis::from_redis_value(v).ok());
        if name.as_deref() == Some(GROUP) {
            let num = |k: &str| fields.get(k).and_then(|v| redis::from_redis_value(v).ok());
            return Ok((num("pending").unwrap_or(0), num("lag").unwrap_or(0)));
        }
    }
    Ok((0, 0))
}

/// The fleet's page: see [`FleetClient::render_metrics`](crate::FleetClient::render_metrics).
pub(crate) fn render_fleet(conn: &mut redis::Connection, keys: &Keys) -> Result<String> {
    let (pending, unread) = group_counts(conn, keys)?;
    let dead: u64 = conn.xlen(keys.dead())?;
    let mut names: Vec<String> = conn.smembers(keys.nodes())?;
    names.sort();
    let mut nodes = Vec::new();
    for name in names {
        let h: BTreeMap<String, u64> = conn.hgetall(keys.node(&name))?;
        if !h.is_empty() {
            nodes.push((name, h));
        }
    }
    let mut page = String::new();
    let mut gauge = |name: &str, help: &str, v: u64| {
        let _ = write!(
            page,
            "# TYPE {name} gauge\n# HELP {name} {help}\n{name} {v}\n"
        );
    };
    gauge(
        "sv_fleet_jobs_pending",
        "Jobs read by a node and not acknowledged.",
        pending,
    );
    gauge("sv_fleet_jobs_unread", "Jobs no node has read yet.", unread);
    gauge(
        "sv_fleet_dead_letters",
        "Jobs in the dead-letter stream.",
        dead,
    );
    gauge(
        "sv_fleet_nodes",
        "Nodes publishing their figures.",
        nodes.len() as u64,
    );
    for (field, kind, help, _) in FIELDS {
        let family = format!("sv_fleet_node_{field}");
        let _ = write!(page, "# TYPE {family} {kind}\n# HELP {family} {help}\n");
        let suffix = if *kind == "counter" { "_total" } else { "" };
        for (node, h) in &nodes {
            let v = h.get(*field).copied().unwrap_or(0);
            let _ = writeln!(page, "{family}{suffix}{{node=\"{}\"}} {v}", escape(node));
        }
    }
    page.push_str("# EOF\n");
    Ok(page)
}
