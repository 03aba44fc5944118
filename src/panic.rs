//! The crate's one panic net for user code and worker threads: run a closure under
//! `catch_unwind`, log what panicked, carry on.

use std::any::Any;
use std::fmt::Display;
use std::panic::AssertUnwindSafe;

/// Runs `f`, catching a panic and logging it as `"{who}: {what} panicked: ..."`. Used for
/// every user hook: a hook that panics never takes a stream or the manager down.
pub(crate) fn guarded(who: impl Display, what: &str, f: impl FnOnce()) {
    if let Err(p) = std::panic::catch_unwind(AssertUnwindSafe(f)) {
        log::error!("{who}: {what} panicked: {}", panic_message(&*p));
    }
}

/// The text of a panic payload (`&str` or `String`), or a placeholder for other payloads.
pub(crate) fn panic_message(p: &(dyn Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_become_text_and_panics_are_contained() {
        let p = std::panic::catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
        assert_eq!(panic_message(&*p), "boom 1");
        let p = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(panic_message(&*p), "panic with a non-string payload");
        let mut ran = false;
        guarded("stream s", "test hook", || {
            ran = true;
            panic!("inside");
        });
        assert!(ran);
    }
}
