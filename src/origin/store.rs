//! The origin's files, kept in memory as a stream writes them through [`OriginSink`], and
//! what the server knows of each media playlist: its newest segment and part, its preload
//! hint, its target durations. A file being written is visible too, as far as the muxer
//! has flushed it (a low-latency DASH player reads a segment chunk by chunk). Every change
//! bumps a generation the server's waiters watch.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::sink::{SegmentSink, SinkFile};

/// What a media playlist says of where the stream is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlaylistState {
    /// The media sequence number of the segment being written (after the last listed).
    pub open_msn: u64,
    /// Parts of that segment listed so far.
    pub open_parts: u64,
    /// Parts the last whole segment listed had (still listed with it).
    pub last_parts: u64,
    /// `#EXT-X-TARGETDURATION`, seconds.
    pub target: f64,
    /// `#EXT-X-PART-INF`'s `PART-TARGET`, seconds.
    pub part_target: Option<f64>,
    /// `#EXT-X-PRELOAD-HINT`'s URI, in the playlist's directory.
    pub hint: Option<String>,
    /// It has parts (`#EXT-X-PART-INF`).
    pub low_latency: bool,
    /// `#EXT-X-ENDLIST`.
    pub ended: bool,
}

impl PlaylistState {
    /// Reads it from a media playlist's text; `None` for a master playlist or anything
    /// that is not one.
    pub fn of(text: &str) -> Option<Self> {
        let mut state = PlaylistState {
            open_msn: 0,
            open_parts: 0,
            last_parts: 0,
            target: 0.0,
            part_target: None,
            hint: None,
            low_latency: false,
            ended: false,
        };
        let mut first = None;
        let mut segments = 0;
        for line in text.lines().map(str::trim) {
            if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
                state.target = v.parse().ok()?;
            } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
                first = Some(v.parse::<u64>().ok()?);
            } else if let Some(v) = line.strip_prefix("#EXT-X-PART-INF:") {
                state.low_latency = true;
                state.part_target = attribute(v, "PART-TARGET")
                    .and_then(|t| t.parse().ok())
                    .filter(|t: &f64| *t > 0.0);
            } else if line.starts_with("#EXT-X-PART:") {
                state.open_parts += 1;
            } else if let Some(v) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
                state.hint = attribute(v, "URI");
            } else if line == "#EXT-X-ENDLIST" {
                state.ended = true;
            } else if !line.is_empty() && !line.starts_with('#') {
                segments += 1;
                state.last_parts = std::mem::take(&mut state.open_parts);
            }
        }
        state.open_msn = first? + segments;
        Some(state)
    }

    /// The newest segment and part it lists (`EXT-X-RENDITION-REPORT`'s `LAST-MSN` and
    /// `LAST-PART`): the open segment's last part, else the last whole segment's; `None`
    /// before anything is listed.
    pub fn last_part(&self) -> Option<(u64, Option<u64>)> {
        match (self.open_parts, self.last_parts) {
            (0, 0) => Some((self.open_msn.checked_sub(1)?, None)),
            (0, n) => Some((self.open_msn.checked_sub(1)?, Some(n - 1))),
            (n, _) => Some((self.open_msn, Some(n - 1))),
        }
    }

    /// Whether the playlist holds part `part` of segment `msn` (or, without a part, the
    /// whole segment `msn`).
    pub fn holds(&self, msn: u64, part: Option<u64>) -> bool {
        match part {
            _ if self.ended => true,
            None => msn < self.open_msn,
            Some(p) => msn < self.open_msn || (msn == self.open_msn && p < self.open_parts),
        }
    }
}

/// The value of attribute `name` in a tag's attribute list (quotes removed).
pub(crate) fn attribute(list: &str, name: &str) -> Option<String> {
    list.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// The files and the playlists' states.
#[derive(Debug, Default)]
pub(crate) struct Files {
    pub files: HashMap<String, Arc<Vec<u8>>>,
    /// Files being written: what was flushed so far.
    pub growing: HashMap<String, Arc<Vec<u8>>>,
    pub playlists: HashMap<String, PlaylistState>,
    /// Bumped by every change (the server re-checks its parked requests).
    pub generation: u64,
}

/// What the sink and the server share.
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub files: Mutex<Files>,
    /// Called after every change (wakes the server's poll).
    pub wake: Mutex<Option<Arc<mio::Waker>>>,
}

impl Store {
    fn put(&self, path: &str, bytes: Vec<u8>) {
        let state = path
            .ends_with(".m3u8")
            .then(|| std::str::from_utf8(&bytes).ok().and_then(PlaylistState::of))
            .flatten();
        {
            // Short: map edits.
            let mut g = self.files.lock();
            match state {
                Some(s) => {
                    g.playlists.insert(path.to_owned(), s);
                }
                None => {
                    g.playlists.remove(path);
                }
            }
            g.growing.remove(path);
            g.files.insert(path.to_owned(), Arc::new(bytes));
            g.generation += 1;
        }
        self.wake();
    }

    /// `path` is being written and holds `bytes` so far.
    fn grow(&self, path: &str, bytes: &[u8]) {
        {
            // Short: a copy of what was flushed (a segment so far: kilobytes).
            let mut g = self.files.lock();
            g.growing.insert(path.to_owned(), Arc::new(bytes.to_vec()));
            g.generation += 1;
        }
        self.wake();
    }

    /// `path` was given up unfinished.
    fn abandon(&self, path: &str) {
        {
            // Short: one map edit.
            let mut g = self.files.lock();
            g.growing.remove(path);
            g.generation += 1;
        }
        self.wake();
    }

    fn remove(&self, path: &str) {
        {
            // Short: map edits.
            let mut g = self.files.lock();
            g.files.remove(path);
            g.growing.remove(path);
            g.playlists.remove(path);
            g.generation += 1;
        }
        self.wake();
    }

    fn wake(&self) {
        let waker = self.wake.lock().clone();
        if let Some(w) = waker {
            let _ = w.wake();
        }
    }
}

/// The sink a stream writes through to be served by an [`Origin`](super::Origin): every
/// file is kept in the origin's memory (and, when it wraps one, also written to another
/// sink, e.g. the filesystem for an archive). Reads, lists and deletes answer from memory.
#[derive(Debug)]
pub struct OriginSink {
    pub(crate) store: Arc<Store>,
    pub(crate) inner: Option<Arc<dyn SegmentSink>>,
    /// Where its files are in the origin (`""`: the root).
    pub(crate) prefix: String,
    /// The origin's URL.
    pub(crate) name: String,
}

impl OriginSink {
    /// `path` in the origin.
    fn at(&self, path: &str) -> String {
        if self.prefix.is_empty() {
            path.to_owned()
        } else {
            format!("{}/{path}", self.prefix)
        }
    }
}

/// A file being written to the origin (and to the wrapped sink): visible as it grows at
/// each flush (the muxer flushes a chunk), published whole when finished, withdrawn when
/// dropped unfinished.
struct OriginFile {
    store: Arc<Store>,
    path: String,
    bytes: Vec<u8>,
    inner: Option<Box<dyn SinkFile>>,
    finished: bool,
}

impl Write for OriginFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(inner) = self.inner.as_mut() {
            inner.write_all(buf)?;
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.store.grow(&self.path, &self.bytes);
        self.inner.as_mut().map_or(Ok(()), |f| f.flush())
    }
}

impl SinkFile for OriginFile {
    fn finish(mut self: Box<Self>) -> io::Result<u64> {
        if let Some(inner) = self.inner.take() {
            inner.finish()?;
        }
        self.finished = true;
        let bytes = std::mem::take(&mut self.bytes);
        let n = bytes.len() as u64;
        self.store.put(&self.path, bytes);
        Ok(n)
    }
}

impl Drop for OriginFile {
    fn drop(&mut self) {
        if !self.finished {
            self.store.abandon(&self.path);
        }
    }
}

impl SegmentSink for OriginSink {
    fn create(&self, path: &str) -> io::Result<Box<dyn SinkFile>> {
        let inner = self.inner.as_ref().map(|s| s.create(path)).transpose()?;
        let path = self.at(path);
        self.store.grow(&path, &[]);
        Ok(Box::new(OriginFile {
            store: self.store.clone(),
            path,
            bytes: Vec::new(),
            inner,
            finished: false,
        }))
    }

    fn replace(&self, path: &str, contents: &[u8]) -> io::Result<()> {
        if let Some(inner) = &self.inner {
            inner.replace(path, contents)?;
        }
        self.store.put(&self.at(path), contents.to_vec());
        Ok(())
    }

    fn replace_often(&self, path: &str, contents: &[u8]) -> io::Result<()> {
        if let Some(inner) = &self.inner {
            inner.replace_often(path, contents)?;
        }
        self.store.put(&self.at(path), contents.to_vec());
        Ok(())
    }

    fn delete(&self, path: &str) -> io::Result<()> {
        // Gone from memory even when the wrapped sink refuses: players must not be served
        // what the stream withdrew.
        self.store.remove(&self.at(path));
        match &self.inner {
            Some(inner) => inner.delete(path),
            None => Ok(()),
        }
    }

    fn location(&self, path: &str) -> String {
        format!("{}/{}", self.name, self.at(path))
    }

    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        // Short: one lookup and a copy.
        let g = self.store.files.lock();
        match g.files.get(&self.at(path)) {
            Some(b) => Ok(b.to_vec()),
            None => Err(io::ErrorKind::NotFound.into()),
        }
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let dir = self.at(dir);
        let dir = dir.trim_end_matches('/');
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        // Short: one pass over the names.
        let g = self.store.files.lock();
        let names = g.files.keys().filter_map(|k| k.strip_prefix(&prefix));
        Ok(names
            .filter(|n| !n.contains('/'))
            .map(str::to_owned)
            .collect())
    }

    fn identity(&self) -> Option<String> {
        Some(format!("{}/{}", self.name, self.prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_visible_as_it_grows_published_when_finished_withdrawn_when_dropped() {
        let store = Arc::new(Store::default());
        let sink = OriginSink {
            store: store.clone(),
            inner: None,
            prefix: "s".into(),
            name: "http://origin".into(),
        };
        let growing = |p: &str| store.files.lock().growing.get(p).map(|b| b.to_vec());
        let mut f = sink.create("v/seg_00001.m4s").unwrap();
        assert_eq!(
            growing("s/v/seg_00001.m4s"),
            Some(vec![]),
            "visible at once"
        );
        f.write_all(b"moof").unwrap();
        assert_eq!(
            growing("s/v/seg_00001.m4s"),
            Some(vec![]),
            "a chunk shows at a flush"
        );
        f.flush().unwrap();
        assert_eq!(growing("s/v/seg_00001.m4s").unwrap(), b"moof");
        f.write_all(b"mdat").unwrap();
        assert_eq!(f.finish().unwrap(), 8);
        assert!(growing("s/v/seg_00001.m4s").is_none());
        assert_eq!(sink.read("v/seg_00001.m4s").unwrap(), b"moofmdat");
        // Given up unfinished (an abort): gone, and never published.
        let mut g = sink.create("v/seg_00002.m4s").unwrap();
        g.write_all(b"moof").unwrap();
        g.flush().unwrap();
        drop(g);
        assert!(growing("s/v/seg_00002.m4s").is_none());
        assert!(sink.read("v/seg_00002.m4s").is_err());
    }

    #[test]
    fn a_playlist_says_where_the_stream_is() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-PART-INF:PART-TARGET=0.33\n\
                    #EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-PART:DURATION=0.33,URI=\"seg_00004.0.m4s\"\n\
                    #EXTINF:1.0,\nseg_00004.m4s\n#EXT-X-PART:DURATION=0.33,URI=\"seg_00005.0.m4s\"\n\
                    #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg_00005.1.m4s\"\n";
        let s = PlaylistState::of(text).unwrap();
        assert_eq!((s.open_msn, s.open_parts, s.target), (5, 1, 1.0));
        assert_eq!(s.hint.as_deref(), Some("seg_00005.1.m4s"));
        assert!(s.low_latency && !s.ended);
        assert!(s.holds(4, None) && !s.holds(5, None));
        assert!(s.holds(5, Some(0)) && !s.holds(5, Some(1)) && !s.holds(6, Some(0)));
        assert!(
            PlaylistState::of("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\na/index.m3u8\n").is_none()
        );
    }
}
