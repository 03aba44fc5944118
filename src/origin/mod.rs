//! An embeddable low-latency origin (cargo feature `origin`): a small HTTP/1.1 server
//! that serves what streams write through its [`OriginSink`], from memory, with what a
//! static server cannot offer: the blocking semantics of RFC 8216bis (LL-HLS), and the
//! segment being written streamed chunk by chunk (LL-DASH).
//!
//! - **Blocking playlist reload**: `index.m3u8?_HLS_msn=N&_HLS_part=P` is answered when
//!   the playlist holds part `P` of segment `N` (or segment `N` without `_HLS_part`), at
//!   most three target durations later (then 503); a segment more than two ahead of the
//!   last listed, a part past the Advance Part Limit (three seconds' worth), `_HLS_part`
//!   without `_HLS_msn` and a value that is not a number are refused (400, with why).
//! - **Blocking part requests**: the part a playlist's `EXT-X-PRELOAD-HINT` names is
//!   answered as soon as it is written.
//! - **Delta updates**: `_HLS_skip=YES` replaces the segments older than six target
//!   durations by `EXT-X-SKIP`. Served playlists advertise `CAN-BLOCK-RELOAD=YES` and
//!   `CAN-SKIP-UNTIL` (the files in a stream's sink never do: a static server could not
//!   honour them), and `EXT-X-RENDITION-REPORT`s of the stream's other renditions.
//! - **Files being written**: a segment (or part) is served as it grows, with chunked
//!   transfer encoding, a chunk per muxer flush, to its end; a request for the segment
//!   being written or the next is held until it begins. `GET /time` answers the clock,
//!   and a served DASH manifest's `UTCTiming` points at it (`http-iso`).
//! - `Content-Type` per file, `Cache-Control` short for playlists and long (immutable) for
//!   segments and parts, CORS for browser players, `HEAD` and `OPTIONS`.
//! - **One thread** (`sv-origin`) polls every connection: a held request is parked on its
//!   connection, not a thread of its own (200 waiting players are 200 sockets, one thread).
//!   Bounded: [`MAX_CONNECTIONS`] connections, 16 KiB request heads, 30 s idle
//!   connections, three target durations for a held request.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use streamvisor::origin::Origin;
//! use streamvisor::{AbrProfile, Container, Stream, StreamConfig};
//!
//! let origin = Origin::bind("127.0.0.1:8080".parse()?)?;
//! let profile = AbrProfile::standard()
//!     .with_container(Container::Fmp4)
//!     .with_parts(std::time::Duration::from_millis(334));
//! let config = StreamConfig::builder("cam1", "srt://0.0.0.0:9000?mode=listener", "cam1")
//!     .profile(profile)
//!     .sink(Arc::new(origin.sink("cam1", None)))
//!     .build()?;
//! let running = Stream::new(config).start()?;
//! // Players load http://127.0.0.1:8080/cam1/master.m3u8
//! # drop(running); Ok(()) }
//! ```

mod answer;
mod server;
mod store;

pub use server::MAX_CONNECTIONS;
pub use store::OriginSink;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::sink::SegmentSink;
use server::{Server, LISTENER, WAKER};
use store::Store;

/// A running origin; dropping it stops its thread (within a poll interval, 50 ms).
#[derive(Debug)]
pub struct Origin {
    addr: SocketAddr,
    store: Arc<Store>,
    stop: Arc<AtomicBool>,
    open: Arc<AtomicUsize>,
    parked: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Origin {
    /// Listens on `addr` (port 0: any free port) and starts serving on `sv-origin`.
    ///
    /// # Errors
    /// The address cannot be bound, or the poll cannot be made.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let poll = mio::Poll::new()?;
        let mut listener = mio::net::TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        poll.registry()
            .register(&mut listener, LISTENER, mio::Interest::READABLE)?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER)?);
        let store = Arc::new(Store::default());
        *store.wake.lock() = Some(waker);
        let stop = Arc::new(AtomicBool::new(false));
        let (open, parked) = (Arc::default(), Arc::default());
        let server = Server {
            poll,
            listener,
            store: store.clone(),
            stop: stop.clone(),
            open: Arc::clone(&open),
            parked: Arc::clone(&parked),
        };
        let thread = std::thread::Builder::new()
            .name("sv-origin".into())
            .spawn(move || server.run())?;
        Ok(Self {
            addr,
            store,
            stop,
            open,
            parked,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A sink that writes a stream's files under `prefix` (`""`: the root) into this
    /// origin, and also into `inner` when given (an archive on disk, an upload).
    pub fn sink(&self, prefix: &str, inner: Option<Arc<dyn SegmentSink>>) -> OriginSink {
        OriginSink {
            store: self.store.clone(),
            inner,
            prefix: prefix.trim_matches('/').to_owned(),
            name: format!("http://{}", self.addr),
        }
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Requests held now (blocking reloads and part requests waiting).
    pub fn held_requests(&self) -> usize {
        self.parked.load(Ordering::Relaxed)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
