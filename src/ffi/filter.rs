//! `AVFilterGraph` owner, used for two things: to see which filters libavfilter really
//! instantiates from a graph string (a check after our own grammar, before the lavfi input
//! is given the same string), and [`VideoFilter`], a fixed chain of video filters fed a
//! frame at a time (`video_filter.rs`).

use std::ffi::CStr;
use std::ptr::{self, NonNull};

use ffmpeg_sys_next as sys;

use super::{check, cstring, AvError};

pub use super::video_filter::{FilterInput, VideoFilter};

/// A filter graph, freed with `avfilter_graph_free`.
pub(super) struct FilterGraph {
    pub(super) ptr: NonNull<sys::AVFilterGraph>,
}

impl FilterGraph {
    /// An empty graph.
    pub(super) fn alloc() -> Result<Self, AvError> {
        // SAFETY: avfilter_graph_alloc has no preconditions.
        let raw = unsafe { sys::avfilter_graph_alloc() };
        let ptr = NonNull::new(raw).ok_or(AvError::new(
            sys::AVERROR(libc::ENOMEM),
            "avfilter_graph_alloc",
        ))?;
        Ok(Self { ptr })
    }
}

// SAFETY: a filter graph has no thread affinity; this owner is the only handle to it and to the filters inside it, so moving it to another thread is sound.
unsafe impl Send for FilterGraph {}

impl Drop for FilterGraph {
    fn drop(&mut self) {
        let mut p = self.ptr.as_ptr();
        // SAFETY: we own the graph; avfilter_graph_free frees it and every filter in it.
        unsafe { sys::avfilter_graph_free(&mut p) }
    }
}

/// Open ends of a parsed graph, freed with `avfilter_inout_free`.
struct InOut(*mut sys::AVFilterInOut);

impl Drop for InOut {
    fn drop(&mut self) {
        // SAFETY: NULL or a list avfilter_graph_parse_ptr handed us; freed once here.
        unsafe { sys::avfilter_inout_free(&mut self.0) }
    }
}

/// Parses `graph` into a scratch graph (creating and initialising its filters, nothing
/// more: no frame is pulled) and returns the name of every filter it instantiated, in
/// order. The caller checks them against its allow-list.
pub fn instantiated_filters(graph: &str) -> Result<Vec<String>, AvError> {
    super::init();
    let text = cstring(graph, "avfilter_graph_parse_ptr")?;
    let owner = FilterGraph::alloc()?;
    let (mut inputs, mut outputs) = (InOut(ptr::null_mut()), InOut(ptr::null_mut()));
    // SAFETY: the graph is ours and the text a valid C string; the open ends are returned through the two out-pointers, whose owners free them.
    let ret = unsafe {
        sys::avfilter_graph_parse_ptr(
            owner.ptr.as_ptr(),
            text.as_ptr(),
            &mut inputs.0,
            &mut outputs.0,
            ptr::null_mut(),
        )
    };
    check(ret, "avfilter_graph_parse_ptr")?;
    // SAFETY: the graph is valid; filters[0..nb_filters] are valid contexts whose `filter` points at a static descriptor with a static name.
    let names = unsafe {
        let g = owner.ptr.as_ref();
        (0..g.nb_filters as usize)
            .map(|i| {
                let ctx = *g.filters.add(i);
                let name = (*(*ctx).filter).name;
                if name.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(name).to_string_lossy().into_owned()
                }
            })
            .collect()
    };
    Ok(names)
}
