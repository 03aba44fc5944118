//! Retiring a stream that has left the map: on the calling thread only what has a bound
//! (stop, abort or wait; the allocation's release; the reservation's), then the rest handed
//! on: the finished hooks and the drop of the application's values to the stream's lane,
//! the queue's next starts to the admission thread.

use std::sync::Arc;

use super::{admitter, lanes, ManagedStream, ManagerCore};
use crate::panic::guarded;
use crate::stream::{Running, Stream, StreamReport};

/// Ends a stream that has left the map: `end` stops it (or aborts it, or waits for it,
/// bounded), then its allocation drops (the one place resources return) and its reservation
/// is released; its finished hooks run in its lane, and the admission thread is woken to
/// start what the queue holds. Returns within the bound of `end`: no hook runs here, and
/// nothing of the application's is dropped here (the config and the stream's shared state
/// go to the lane with the hooks).
pub(super) fn retire(
    core: &Arc<ManagerCore>,
    entry: ManagedStream,
    end: impl FnOnce(Stream<Running>) -> StreamReport,
) -> StreamReport {
    let ManagedStream {
        gen,
        stream,
        allocation,
        config,
        ..
    } = entry;
    let worker = stream.worker_exit();
    // The stream's shared state holds a copy of the config: whoever lets go of it last
    // drops the application's values, so this one goes to the lane too.
    let shared = stream.stats_reader();
    let report = end(stream);
    drop(allocation);
    // Asked of the sink before the lock is taken.
    let output = worker
        .as_ref()
        .filter(|w| !w.ended())
        .and_then(|_| config.output_identity().map(str::to_owned));
    {
        // Short: map edits. A worker left behind may still write to the output (a variant
        // returning from a stuck write): the output stays refused until it ends, though the
        // id is free.
        let mut g = core.registry.lock();
        g.release(&report.id, gen);
        if let Some(worker) = worker.filter(|w| !w.ended()) {
            g.keep_output_until(output, worker);
        }
    }
    core.changed.notify_all();
    // The stream's own hook thread was joined above (unless left behind): its last events
    // have been delivered before the finished hooks run.
    let finished = report.clone();
    let job: lanes::Job = Box::new(move |core| {
        run_finished_hooks(core, &finished);
        drop((config, shared));
    });
    lanes::submit(core, &report.id, job);
    // Counted done once its lane holds the rest: the registry is not idle meanwhile (the
    // lane counts).
    core.retired_one();
    // Capacity came back: the queue goes first.
    admitter::wake(core);
    report
}

/// Calls every finished hook with `report`, each inside the panic net.
fn run_finished_hooks(core: &ManagerCore, report: &StreamReport) {
    for h in &core.on_finished {
        guarded(
            format_args!("stream {}", report.id),
            "finished hook",
            || {
                h(report);
            },
        );
    }
}
