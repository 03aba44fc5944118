//! Error chains, kinds and the io::Error kept as a source.

use std::error::Error as _;

use super::*;

/// Every text of the chain, as an error reporter prints it.
fn chain(e: &dyn std::error::Error) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut next = e.source();
    while let Some(c) = next {
        out.push(c.to_string());
        next = c.source();
    }
    out
}

#[test]
fn a_source_is_not_repeated_in_the_message() {
    let io = Error::output("/out/720p", io::Error::from_raw_os_error(libc::ENOSPC));
    let av = Error::codec("variant 720p encoder (libx264)", AvError::new(-22, "send"));
    let reader = Error::reader_io(
        "<reader>",
        "reading",
        -104,
        Arc::new(io::Error::new(io::ErrorKind::ConnectionReset, "peer gone")),
    );
    for e in [&io, &av, &reader] {
        let texts = chain(e);
        assert_eq!(texts.len(), 2, "{texts:?}");
        assert!(!texts[0].contains(&texts[1]), "{texts:?}");
        assert_eq!(e.full_message(), texts.join(": "));
    }
    assert_eq!(io.to_string(), "output /out/720p");
    assert!(io
        .full_message()
        .ends_with("No space left on device (os error 28)"));
    assert_eq!(av.to_string(), "variant 720p encoder (libx264) failed");
    // Without a source the message is in the Display.
    let ffmpeg = Error::source_io_message("rtmp://h/app", "opening", -111, "refused".into());
    assert!(ffmpeg.source().is_none());
    assert!(
        ffmpeg.to_string().contains(": refused (while opening"),
        "{ffmpeg}"
    );
}

#[test]
fn an_io_error_stays_reachable_with_its_kind() {
    let e = Error::output("/o", io::Error::from(io::ErrorKind::PermissionDenied));
    assert_eq!(e.io_kind(), Some(io::ErrorKind::PermissionDenied));
    // The source is the io::Error itself, as a generic reporter or `anyhow` looks for it.
    let source = e.source().and_then(|s| s.downcast_ref::<io::Error>());
    assert_eq!(
        source.map(|s| s.kind()),
        Some(io::ErrorKind::PermissionDenied)
    );
    let cloned = e.clone();
    assert_eq!(cloned.io_error().map(io::Error::kind), e.io_kind());
    assert_eq!(Error::aborted().io_kind(), None);
}

#[test]
fn an_unknown_stream_is_its_own_kind() {
    let e = Error::UnknownStream { id: "x".into() };
    assert_eq!(e.kind(), ErrorKind::UnknownStream);
    assert_eq!(e.to_string(), "no such stream: x");
    assert_eq!(e.kind().to_string(), "UnknownStream");
    assert_eq!(ErrorKind::SourceIo.to_string(), "SourceIo");
}

/// No message names a stream: the carrier of the error does, once. Each reads on its own.
#[test]
fn messages_say_what_failed_without_a_stream() {
    let stalled = Error::SourceStalled {
        url: "rtmp://***@h/app/***".into(),
        timeout: std::time::Duration::from_millis(1500),
    };
    assert_eq!(
        stalled.to_string(),
        "source rtmp://***@h/app/*** stalled: no data for 1500 ms"
    );
    assert_eq!(Error::aborted().to_string(), "aborted");
    let refused = Error::Refused {
        reason: Refusal::ShuttingDown,
    };
    assert_eq!(refused.to_string(), "refused: the manager is shutting down");
    for e in [&stalled, &refused, &Error::aborted()] {
        assert!(!e.to_string().contains("stream "), "{e}");
    }
}
