//! A fleet of [`streamvisor`] nodes on Redis Streams.
//!
//! One [`Manager`](streamvisor::Manager) fills one machine; a fleet is several machines
//! (nodes), each running a [`Node`], taking jobs from one Redis stream with a consumer
//! group, writing to a shared origin. A [`FleetClient`] submits jobs and follows them.
//!
//! # How it works
//! - **Keys** (prefix `sv`, see [`Keys`]): the job stream `sv:jobs` (group `workers`, one
//!   entry per delivery of a job), a hash per job `sv:job:<id>` (kind, config, state,
//!   node, attempts, failures, fencing epoch, errors, report), `sv:jobs:all` (ids, for
//!   `list`), the dead-letter stream `sv:dead`, and each node's published figures.
//! - **Placement**: a node reads one entry (`XREADGROUP ... COUNT 1`) only while its
//!   manager has room (`max_concurrent` and at least the price floor of free compute): a
//!   full node reads nothing, so a full fleet queues work in the stream instead of refusing
//!   it. A job read that then does not fit (its real price is higher than the floor) goes
//!   back to the end of the stream — a new entry and the acknowledgement of the old one in
//!   one script, so nothing is lost — and the node pauses its reads for a second.
//! - **The lease** is the job's pending entry: its owner renews it every third of the lease
//!   (3 s by default, [`DEFAULT_LEASE`]) by claiming it to itself, which resets its idle
//!   time; any node claims an entry idle longer than the lease (`XAUTOCLAIM`). Every take
//!   increments the job's **fencing epoch**; every change a node makes to the job (state,
//!   completion, failure, hand-back) is a Lua script that checks the epoch, so a node that
//!   lost the job changes nothing. The owner stops writing a margin before its lease could
//!   lapse in Redis ([`LeaseClock`], checked by [`FencedSink`] before every write), and an
//!   HTTP origin gets the epoch in an `X-Fencing-Token` header.
//! - **On-demand jobs** run exactly once in effect: a node that dies leaves the entry
//!   pending; after the lease another node claims it and runs it again from the start into
//!   the same output (the core crate's output preparation replaces the earlier run's
//!   files through the sink); the entry is acknowledged and the job recorded `completed`
//!   once, by the owner at the current epoch, when its stream ends `Stopped`.
//! - **Live jobs** have one owner at a time; when the lease lapses another node takes the
//!   stream over and continues the same playlist through the shared sink (numbering
//!   continues, one DISCONTINUITY). Only pull sources (rtmp/srt/http a node connects to)
//!   can move: a listener source stays bound to its dead node.
//! - **Failures**: a run that fails is recorded (node, error) and the job requeued; the
//!   third failure sends it to the dead-letter stream. A malformed or untrusted job is
//!   refused with a typed [`JobRefusal`] recorded on the job, never retried.
//! - **Drain**: [`Node::serve`] stops taking jobs when its stop flag is set (the `worker`
//!   binary sets it on SIGTERM), hands its live streams back at once (requeued: another
//!   node reads them immediately, without waiting for the lease) and lets on-demand jobs
//!   finish until a deadline, then hands them back too.
//!
//! What is not guaranteed: a plain WebDAV origin cannot check the fencing token, so a write
//! already past the lease check when the lease lapses may still land (one file); a job is
//! not placed by locality or load beyond "who has room reads"; Redis itself is a single
//! point (use its replication for availability; a failover may lose the last writes).

#![deny(missing_docs)]

mod client;
mod error;
mod job;
mod keys;
mod lease;
mod metrics;
mod node;
mod scripts;
mod sink;

pub use client::FleetClient;
pub use error::{FleetError, JobRefusal, Result};
pub use job::{build_config, is_final, valid_id, JobKind, JobStatus, TrustRules};
pub use keys::{Keys, GROUP};
pub use lease::LeaseClock;
pub use metrics::NodeMetrics;
pub use node::{Node, NodeConfig, Output, DEFAULT_LEASE};
pub use sink::{FencedSink, FENCING_HEADER};
