//! The registry: every stream a manager knows, by the phase of its life (queued, starting,
//! running, stopping), and the reservations of ids and output directories each phase holds.
//! Plain data under the manager's one lock: lookups and map edits only.

use std::collections::{HashMap, VecDeque};

use super::admission::QueuedStream;
use super::lanes::{self, Lane};
use crate::config::StreamConfig;
use crate::pool::{self, Allocation};
use crate::stream::{Running, Stream, ThreadExit};

/// A stream in the registry, with what it holds.
pub(super) struct ManagedStream {
    /// Tells this stream from a later one with the same id.
    pub(super) gen: u64,
    pub(super) stream: Stream<Running>,
    pub(super) allocation: Allocation,
    pub(super) config: StreamConfig,
    pub(super) restarts: u32,
    /// The allocation was re-priced from the ladder as it runs.
    pub(super) repriced: bool,
}

impl ManagedStream {
    /// Once the source is open, re-prices the allocation from the ladder that really runs
    /// (rungs taller than the source dropped, real aspect and rate): shrinking always
    /// succeeds and frees capacity at once; growing succeeds if the difference fits.
    pub(super) fn reprice_from_plan(&mut self) {
        if self.repriced {
            return;
        }
        let Some(ladder) = self.stream.planned_ladder() else {
            return;
        };
        self.repriced = true;
        let cost = pool::price_planned(&self.config, &ladder);
        let before = self.allocation.cost().compute;
        match self.allocation.reprice(cost) {
            Ok(()) => log::debug!(
                "stream {}: re-priced from {before:.1} to {:.1} compute units",
                self.config.id(),
                self.allocation.cost().compute
            ),
            Err(short) => log::warn!(
                "stream {}: runs heavier than admitted and the pool cannot cover it ({short})",
                self.config.id()
            ),
        }
    }
}

/// A reservation of an id and an output (its sink's identity) by one generation of a
/// stream.
#[derive(Debug, Clone)]
pub(super) struct Reservation {
    pub(super) gen: u64,
    pub(super) output: Option<String>,
}

/// Every stream the manager knows, by the phase of its life.
#[derive(Default)]
pub(super) struct Registry {
    /// Running streams.
    pub(super) map: HashMap<String, ManagedStream>,
    /// Admitted and being started (no lock is held while a stream starts).
    pub(super) starting: HashMap<String, Reservation>,
    /// Taken out of the map and being stopped or retired: still reserved (and counted
    /// against `max_concurrent`) until their stream has ended and released its resources.
    pub(super) stopping: HashMap<String, Reservation>,
    /// Retirements under way (stop or wait, allocation release, finished hooks).
    pub(super) retiring: usize,
    /// Waiting for capacity, in order (their ids and outputs are claimed).
    pub(super) queued: VecDeque<QueuedStream>,
    pub(super) next_gen: u64,
    /// Set by `shutdown`: nothing new is admitted.
    pub(super) shutting_down: bool,
    /// Set by `shutdown` once it has taken the map: a stream that starts later (admitted
    /// before the flag, its start slower than shutdown's wait) is not entered but ended.
    pub(super) swept: bool,
    /// A live stream running below real time (and its speed), from the monitor's last
    /// look: new live work is refused while there is one.
    pub(super) lagging_live: Option<(String, f64)>,
    /// Outputs (sink identities) of retired streams whose worker was left behind (stuck in
    /// a call nothing could interrupt): it may still write there, so they stay refused
    /// until it ends. Pruned as entries are added and streams reserved.
    pub(super) left_behind: Vec<(String, ThreadExit)>,
    /// The hook lanes by stream id: each there while its thread runs (see `lanes`).
    pub(super) lanes: HashMap<String, Lane>,
    /// Reaper threads (`sv-reap-<id>`) by name, watched until they end. Pruned as they are
    /// added.
    pub(super) reapers: Vec<(String, ThreadExit)>,
}

impl Registry {
    /// True when a stream in any phase, queued included, holds this id.
    pub(super) fn claims_id(&self, id: &str) -> bool {
        self.map.contains_key(id)
            || self.starting.contains_key(id)
            || self.stopping.contains_key(id)
            || self.queued.iter().any(|q| q.config.id() == id)
    }

    /// True when a stream in any phase, queued included, writes to the output of this sink
    /// identity (`None`: a sink without one is never busy).
    pub(super) fn claims_output(&self, output: Option<&str>) -> bool {
        let Some(output) = output else {
            return false;
        };
        let same = |config: &StreamConfig| config.output_identity() == Some(output);
        self.map.values().any(|e| same(&e.config))
            || self
                .starting
                .values()
                .chain(self.stopping.values())
                .any(|r| r.output.as_deref() == Some(output))
            || self.queued.iter().any(|q| same(&q.config))
    }

    /// True when a worker left behind by an earlier stream may still write to `output`.
    pub(super) fn output_left_behind(&self, output: Option<&str>) -> bool {
        output.is_some_and(|output| {
            self.left_behind
                .iter()
                .any(|(d, w)| d == output && !w.ended())
        })
    }

    /// Keeps the output of sink identity `output` refused while `worker`, left behind, runs.
    pub(super) fn keep_output_until(&mut self, output: Option<String>, worker: ThreadExit) {
        let Some(dir) = output else { return };
        self.left_behind.retain(|(_, w)| !w.ended());
        self.left_behind.push((dir, worker));
    }

    /// Streams counted against `max_concurrent`.
    pub(super) fn counted(&self) -> usize {
        self.map.len() + self.starting.len() + self.stopping.len()
    }

    /// Reserves the config's id and output directory for a stream being started.
    pub(super) fn reserve(&mut self, config: &StreamConfig) -> u64 {
        self.left_behind.retain(|(_, w)| !w.ended());
        self.next_gen += 1;
        let gen = self.next_gen;
        let output = config.output_identity().map(str::to_owned);
        self.starting
            .insert(config.id().to_owned(), Reservation { gen, output });
        gen
    }

    /// Moves a started stream from `starting` into the map; after a shutdown's sweep it is
    /// instead taken for retirement at once and handed back.
    pub(super) fn enter(&mut self, id: String, entry: ManagedStream) -> Option<ManagedStream> {
        self.starting.remove(&id);
        if self.swept {
            self.map.insert(id.clone(), entry);
            return self.take(&id);
        }
        self.map.insert(id, entry);
        None
    }

    /// Takes a stream out of the map for retirement; it stays reserved until released.
    pub(super) fn take(&mut self, id: &str) -> Option<ManagedStream> {
        let entry = self.map.remove(id)?;
        let reservation = Reservation {
            gen: entry.gen,
            output: entry.config.output_identity().map(str::to_owned),
        };
        self.stopping.insert(id.to_owned(), reservation);
        self.retiring += 1;
        Some(entry)
    }

    /// Releases the reservation of generation `gen` of `id` (not a later one's).
    pub(super) fn release(&mut self, id: &str, gen: u64) {
        if self.stopping.get(id).is_some_and(|r| r.gen == gen) {
            self.stopping.remove(id);
        }
    }

    /// Nothing queued, starting, running, stopping or being retired, and no hook lane with
    /// work (a hook running or waiting to run, a value waiting to be dropped). A queued
    /// stream goes from `queued` to `starting` under one lock, and a retirement hands its
    /// finished hooks to a lane before it counts as done, so the registry is never seen idle
    /// in between.
    ///
    /// The lane `own_lane` does not count: the caller runs in it (a hook waiting for
    /// idleness must not wait for itself, nor for the jobs behind it in its lane).
    pub(super) fn is_idle(&self, own_lane: Option<&str>) -> bool {
        self.map.is_empty()
            && self.starting.is_empty()
            && self.stopping.is_empty()
            && self.retiring == 0
            && self.queued.is_empty()
            && self.lanes.keys().all(|id| Some(id.as_str()) == own_lane)
    }

    /// Watches a reaper thread until it ends.
    pub(super) fn watch_reaper(&mut self, name: String, exit: ThreadExit) {
        self.reapers.retain(|(_, r)| !r.ended());
        self.reapers.push((name, exit));
    }

    /// The manager's threads busy now, by name: lanes with work (but `own_lane`), and
    /// reapers still retiring a stream.
    pub(super) fn busy_threads(&self, own_lane: Option<&str>) -> Vec<String> {
        let lanes = self.lanes.keys().filter(|id| Some(id.as_str()) != own_lane);
        let reapers = self.reapers.iter().filter(|(_, r)| !r.ended());
        let mut names: Vec<String> = lanes.map(|id| lanes::thread_name(id)).collect();
        names.extend(reapers.map(|(name, _)| name.clone()));
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reservation(gen: u64) -> Reservation {
        Reservation { gen, output: out() }
    }

    /// The identity of the default sink of output directory `out`.
    fn out() -> Option<String> {
        crate::sink::SegmentSink::identity(&crate::sink::FsSink::new("out", false))
    }

    #[test]
    fn an_old_generation_never_releases_a_newer_reservation() {
        let mut r = Registry::default();
        // Generation 2 of stream "a" is stopping, while generation 1's retirement, late,
        // releases what it believes is its own reservation.
        r.stopping.insert("a".into(), reservation(2));
        r.release("a", 1);
        assert!(r.claims_id("a"), "generation 2 keeps its id");
        assert!(
            r.claims_output(out().as_deref()),
            "and its output directory"
        );
        r.release("a", 2);
        assert!(!r.claims_id("a"));
        assert!(r.is_idle(None));
    }

    #[test]
    fn a_queued_stream_holds_its_id_and_output_directory() {
        let mut r = Registry::default();
        let config = StreamConfig::builder("q", "in.mp4", "out")
            .local_files_under("/")
            .build()
            .unwrap();
        r.queued.push_back(QueuedStream { config });
        assert!(r.claims_id("q"));
        assert!(r.claims_output(out().as_deref()));
        assert!(!r.claims_id("other"));
        assert!(
            !r.is_idle(None),
            "work is left while a stream waits in the queue"
        );
    }

    #[test]
    fn a_directory_stays_refused_while_a_worker_left_behind_runs() {
        let (release, wait) = crossbeam_channel::bounded::<()>(0);
        let worker = crate::stream::TrackedThread::spawn("left".into(), move || {
            let _ = wait.recv();
        })
        .unwrap();
        let mut r = Registry::default();
        r.keep_output_until(out(), worker.exit());
        assert!(r.output_left_behind(out().as_deref()));
        assert!(!r.output_left_behind(Some("other")));
        assert!(!r.output_left_behind(None));
        assert!(
            !r.claims_output(out().as_deref()),
            "not a stream's: no OutputInUse"
        );
        drop(release);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        assert_eq!(worker.join_by(deadline), Ok(()));
        assert!(!r.output_left_behind(out().as_deref()));
    }
}
