//! Building a [`Manager`]: limits, capacity, monitoring, restarts, hooks.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::bounded;
use parking_lot::{Condvar, Mutex};

use super::{
    admitter, monitor, AdmissionEvent, Manager, ManagerCore, ManagerThreads, OverCapacity, Registry,
};
use crate::config::RestartPolicy;
use crate::error::Error;
use crate::hooks::Hooks;
use crate::pool::{ResourceCapacity, ResourcePool};
use crate::stream::{StreamReport, TrackedThread};

pub(super) type AdmissionHook = Arc<dyn Fn(&AdmissionEvent) + Send + Sync>;
pub(super) type FinishedHook = Arc<dyn Fn(&StreamReport) + Send + Sync>;

/// Builder for a [`Manager`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct ManagerBuilder {
    max_concurrent: usize,
    files_over_capacity: OverCapacity,
    live_over_capacity: OverCapacity,
    max_queue: usize,
    realtime_window: Duration,
    capacity: Option<ResourceCapacity>,
    monitor_interval: Duration,
    stall_timeout: Option<Duration>,
    restart: RestartPolicy,
    hooks: Hooks,
    on_admission: Vec<AdmissionHook>,
    on_finished: Vec<FinishedHook>,
    local_root: Option<std::path::PathBuf>,
    deny_private: bool,
}

impl Default for ManagerBuilder {
    fn default() -> Self {
        Self {
            max_concurrent: 16,
            files_over_capacity: OverCapacity::Queue,
            live_over_capacity: OverCapacity::Refuse,
            max_queue: 1024,
            realtime_window: Duration::from_secs(10),
            capacity: None,
            monitor_interval: Duration::from_millis(250),
            stall_timeout: Some(Duration::from_secs(30)),
            restart: RestartPolicy::default(),
            hooks: Hooks::new(),
            on_admission: Vec::new(),
            on_finished: Vec::new(),
            local_root: None,
            deny_private: false,
        }
    }
}

impl ManagerBuilder {
    /// Confines every stream it admits to local files inside `dir`, whatever its config
    /// allows: a config's local source outside `dir` is refused
    /// ([`Refusal::LocalFilesOutside`](crate::manager::Refusal::LocalFilesOutside)), and
    /// every file an admitted source opens must be inside `dir` too. A config still opts in
    /// to local files itself ([`StreamConfigBuilder::local_files_under`]); this is the
    /// operator's bound over all of them. `dir` must exist when [`build`](Self::build) runs.
    ///
    /// [`StreamConfigBuilder::local_files_under`]: crate::StreamConfigBuilder::local_files_under
    pub fn local_files_under(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.local_root = Some(dir.into());
        self
    }

    /// Turns [`StreamConfigBuilder::deny_private_networks`] on for every stream it admits
    /// (default: each config's own setting).
    ///
    /// [`StreamConfigBuilder::deny_private_networks`]: crate::StreamConfigBuilder::deny_private_networks
    pub fn deny_private_networks(mut self, deny: bool) -> Self {
        self.deny_private = deny;
        self
    }

    /// Most streams running at once (default 16).
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = n;
        self
    }

    /// What happens to a stream that does not fit now, for file and generated sources and
    /// for network sources. Default: files queue (on-demand work does not need to start
    /// now: it is done as soon as capacity frees), network sources are refused (a live
    /// feed that cannot start now is better sent to another node than kept waiting while
    /// its publisher's buffer runs out).
    pub fn over_capacity(mut self, files: OverCapacity, live: OverCapacity) -> Self {
        self.files_over_capacity = files;
        self.live_over_capacity = live;
        self
    }

    /// The policies for files and for network sources, as set now.
    #[cfg(feature = "serde")]
    pub(super) fn over_capacity_policies(&self) -> (OverCapacity, OverCapacity) {
        (self.files_over_capacity, self.live_over_capacity)
    }

    /// The wall time over which live streams' speed is measured (default 10 s): while a
    /// live stream runs below real time over it, new live work is refused
    /// ([`Refusal::Overloaded`](crate::manager::Refusal::Overloaded)).
    pub fn realtime_window(mut self, window: Duration) -> Self {
        self.realtime_window = window.max(Duration::from_millis(500));
        self
    }

    /// Longest admission queue (default 1024); past it streams are refused.
    pub fn max_queue(mut self, n: usize) -> Self {
        self.max_queue = n;
        self
    }

    /// The pool's capacity (default: [`ResourceCapacity::from_machine`]).
    pub fn capacity(mut self, capacity: ResourceCapacity) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// How often the monitor checks streams (default 250 ms).
    pub fn monitor_interval(mut self, d: Duration) -> Self {
        self.monitor_interval = d.max(Duration::from_millis(10));
        self
    }

    /// A running stream that decodes nothing for this long gets a stall error and goes
    /// through its recovery policy (default 30 s; `None` turns the watchdog off).
    pub fn stall_timeout(mut self, d: Option<Duration>) -> Self {
        self.stall_timeout = d;
        self
    }

    /// Restarting failed streams (default: off). Validated by [`build`](Self::build).
    pub fn restart(mut self, policy: RestartPolicy) -> Self {
        self.restart = policy;
        self
    }

    /// Hooks attached to every stream (state changes and stats of each).
    pub fn hooks(mut self, hooks: Hooks) -> Self {
        self.hooks = std::mem::take(&mut self.hooks).merge(&hooks);
        self
    }

    /// Called for every admission decision (started, queued, degraded, refused, dropped from
    /// the queue by a shutdown), on a manager thread (`sv-<id>-mgr`), never on the thread
    /// of the call that decided it nor under a lock: it may run after
    /// [`create_stream`](Manager::create_stream) has returned, and may call back into the
    /// manager. The events of one stream id come in order, each before the same stream's
    /// finished event; a hook that blocks delays only the later hooks of its own stream id,
    /// never a manager call nor another stream.
    pub fn on_admission(mut self, f: impl Fn(&AdmissionEvent) + Send + Sync + 'static) -> Self {
        self.on_admission.push(Arc::new(f));
        self
    }

    /// Called with the final report of every stream that ends, however it ended, once its
    /// threads have been joined (or left behind) and its allocation released: on a manager
    /// thread (`sv-<id>-mgr`, after that stream's admission events), never on the thread of
    /// the call that ended it nor under a lock, so it may run after
    /// [`terminate_stream`](Manager::terminate_stream) or
    /// [`abort_stream`](Manager::abort_stream) has returned, and may call back into the
    /// manager ([`wait_idle`](Manager::wait_idle) does not wait for it). A hook that blocks
    /// delays only the later hooks of its own stream id; a shutdown waits for it until its
    /// bound, then names its thread in
    /// [`ShutdownReport::left_behind`](super::ShutdownReport::left_behind).
    pub fn on_finished(mut self, f: impl Fn(&StreamReport) + Send + Sync + 'static) -> Self {
        self.on_finished.push(Arc::new(f));
        self
    }

    /// Starts the manager, with its monitor thread (`sv-manager`: reaping, the stall
    /// watchdog) and its admission thread (`sv-admit`: queued starts and restarts).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a restart policy out of range (`restart.*`).
    pub fn build(self) -> Result<Manager, Error> {
        self.restart.validate()?;
        let local_root = match &self.local_root {
            Some(dir) => Some(
                crate::config::local::canonical_root(dir)
                    .map_err(|why| Error::config("local_files_under", why))?,
            ),
            None => None,
        };
        let (monitor_tx, inbox) = bounded(4096);
        let (admit_tx, msgs) = bounded(4096);
        let (wake_tx, wake) = bounded(1);
        // Never sent on: dropping the sender tells both threads to quit.
        let (quit, quit_rx) = bounded::<()>(0);
        let capacity = self.capacity.unwrap_or_else(ResourceCapacity::from_machine);
        let core = Arc::new(ManagerCore {
            max_concurrent: self.max_concurrent,
            files_over_capacity: self.files_over_capacity,
            live_over_capacity: self.live_over_capacity,
            max_queue: self.max_queue,
            realtime_window: self.realtime_window,
            pool: ResourcePool::new(capacity),
            stall_timeout: self.stall_timeout,
            restart: self.restart,
            hooks: self.hooks,
            on_admission: self.on_admission,
            on_finished: self.on_finished,
            local_root,
            deny_private: self.deny_private,
            registry: Mutex::new(Registry::default()),
            changed: Condvar::new(),
            monitor_tx,
            admit_tx,
            wake_tx,
            admissions: Default::default(),
        });
        let interval = self.monitor_interval;
        let spawn_error = |e: std::io::Error| Error::Internal {
            message: format!("spawning a manager thread: {e}"),
        };
        let (c, q) = (core.clone(), quit_rx.clone());
        let monitor = TrackedThread::spawn("sv-manager".into(), move || {
            monitor::run(&c, &inbox, &q, interval);
        })
        .map_err(spawn_error)?;
        // Should this spawn fail, `quit` drops on return and the monitor quits.
        let c = core.clone();
        let inbox = admitter::Inbox {
            msgs,
            wake,
            quit: quit_rx,
        };
        let admitter = TrackedThread::spawn("sv-admit".into(), move || {
            admitter::run(&c, &inbox, interval);
        })
        .map_err(spawn_error)?;
        let threads = ManagerThreads {
            monitor,
            admitter,
            quit,
        };
        Ok(Manager {
            core,
            threads: Mutex::new(Some(threads)),
        })
    }
}

impl std::fmt::Debug for ManagerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagerBuilder")
            .field("max_concurrent", &self.max_concurrent)
            .field("files_over_capacity", &self.files_over_capacity)
            .field("live_over_capacity", &self.live_over_capacity)
            .field("max_queue", &self.max_queue)
            .field("realtime_window", &self.realtime_window)
            .field("capacity", &self.capacity)
            .field("monitor_interval", &self.monitor_interval)
            .field("stall_timeout", &self.stall_timeout)
            .field("restart", &self.restart)
            .field("hooks", &self.hooks)
            .field("on_admission", &self.on_admission.len())
            .field("on_finished", &self.on_finished.len())
            .finish()
    }
}
