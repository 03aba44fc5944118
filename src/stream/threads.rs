//! A stream's own threads, joined within a bound. A thread stuck in a call nothing can
//! interrupt (a user hook, a host-name lookup, a write to a dead mount) is not joined past
//! the bound: it is detached, named in the report, and logged. It owns what it touches
//! (`Arc`s and its FFmpeg handles), so it frees them itself when it finally returns.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::pipeline::Signals;

/// How long `abort`, `drop`, and a `stop` past its deadline wait for the stream's threads
/// before leaving them behind.
pub const GRACE: Duration = Duration::from_secs(1);

/// Set when a thread's body returns (or unwinds), so it can be waited for with a deadline.
#[derive(Debug, Default)]
struct ExitFlag {
    done: Mutex<bool>,
    changed: Condvar,
}

impl ExitFlag {
    fn wait_until(&self, deadline: Instant) -> bool {
        let mut done = self.done.lock();
        while !*done {
            if self.changed.wait_until(&mut done, deadline).timed_out() {
                break;
            }
        }
        *done
    }
}

/// Raises the flag when dropped: at the end of the thread's body, panic or not.
struct ExitGuard(Arc<ExitFlag>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        *self.0.done.lock() = true;
        self.0.changed.notify_all();
    }
}

/// Tells whether a thread has ended (its body returned or unwound), without joining it: a
/// thread left behind may be watched this way until it ends.
#[derive(Debug, Clone)]
pub(crate) struct ThreadExit(Arc<ExitFlag>);

impl ThreadExit {
    /// True once the thread's body has returned.
    pub fn ended(&self) -> bool {
        *self.0.done.lock()
    }
}

/// A named thread that can be joined with a deadline (the manager's threads are too).
#[derive(Debug)]
pub(crate) struct TrackedThread {
    name: String,
    handle: JoinHandle<()>,
    exit: Arc<ExitFlag>,
}

impl TrackedThread {
    /// Spawns `body` on a thread named `name`.
    pub fn spawn(name: String, body: impl FnOnce() + Send + 'static) -> std::io::Result<Self> {
        let exit = Arc::new(ExitFlag::default());
        let guard = ExitGuard(exit.clone());
        let handle = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let _guard = guard;
                body();
            })?;
        Ok(Self { name, handle, exit })
    }

    /// The thread's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the thread has ended, to watch it past a join that left it behind.
    pub fn exit(&self) -> ThreadExit {
        ThreadExit(self.exit.clone())
    }

    /// True when called on this very thread (which must not wait for itself).
    pub fn is_current(&self) -> bool {
        self.handle.thread().id() == std::thread::current().id()
    }

    /// Joins the thread if it ends by `deadline`; otherwise leaves it running (detached) and
    /// returns its name.
    pub fn join_by(self, deadline: Instant) -> Result<(), String> {
        if self.exit.wait_until(deadline) {
            // The body has returned: the join is immediate. A join error would be a panic
            // the thread's own net missed; there is nothing left to clean up either way.
            let _ = self.handle.join();
            Ok(())
        } else {
            log::warn!(
                "thread {} did not end in time; left behind (it frees its resources when it returns)",
                self.name
            );
            Err(self.name)
        }
    }
}

/// The threads of a launched stream. Dropping it ends them: abort, then join within
/// [`GRACE`], so nothing outlives the stream value by more than that bound.
#[derive(Debug)]
pub(super) struct StreamThreads {
    signals: Arc<Signals>,
    /// The worker thread; `None` once joined or left behind.
    worker: Option<TrackedThread>,
    /// The hook thread, when the stream has hooks.
    hook_thread: Option<TrackedThread>,
    /// The worker did not end by its bound and was left behind.
    worker_left: bool,
}

impl StreamThreads {
    pub fn new(
        signals: Arc<Signals>,
        worker: TrackedThread,
        hook_thread: Option<TrackedThread>,
    ) -> Self {
        Self {
            signals,
            worker: Some(worker),
            hook_thread,
            worker_left: false,
        }
    }

    /// Whether the worker has ended, once it is no longer joined (`None` once joined).
    pub fn worker_exit(&self) -> Option<ThreadExit> {
        self.worker.as_ref().map(TrackedThread::exit)
    }

    /// True when the worker was left behind by [`StreamThreads::join_by`].
    pub fn worker_left_behind(&self) -> bool {
        self.worker_left
    }

    /// Joins every thread that ends by `deadline`; returns the names of those left behind.
    /// The hook thread is never joined from a hook thread (a hook that stops or drops a
    /// stream, its own or another, or shuts a manager down): it exits by itself after its
    /// terminal event.
    pub fn join_by(&mut self, deadline: Instant) -> Vec<String> {
        let mut left = Vec::new();
        if let Some(t) = self.worker.take() {
            if let Err(name) = t.join_by(deadline) {
                self.worker_left = true;
                left.push(name);
            }
        }
        if let Some(t) = self.hook_thread.take() {
            if !super::on_hook_thread() {
                left.extend(t.join_by(deadline).err());
            }
        }
        left
    }
}

impl Drop for StreamThreads {
    fn drop(&mut self) {
        if self.worker.is_some() {
            self.signals.request_abort();
        }
        self.join_by(Instant::now() + GRACE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_ends_is_joined_and_one_that_does_not_is_left_behind() {
        let quick = TrackedThread::spawn("quick".into(), || {}).unwrap();
        assert_eq!(quick.join_by(Instant::now() + GRACE), Ok(()));
        let (tx, rx) = crossbeam_channel::bounded::<()>(0);
        let stuck = TrackedThread::spawn("stuck".into(), move || {
            let _ = rx.recv();
        })
        .unwrap();
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_millis(100);
        assert_eq!(stuck.join_by(deadline), Err("stuck".to_owned()));
        assert!(t0.elapsed() < Duration::from_millis(600));
        drop(tx); // the detached thread ends now
        let panicky = TrackedThread::spawn("panicky".into(), || panic!("boom")).unwrap();
        assert_eq!(panicky.join_by(Instant::now() + GRACE), Ok(()));
    }
}
