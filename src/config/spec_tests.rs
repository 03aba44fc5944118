//! Configurations from files: the same values and the same refusals as the builder.

use std::time::Duration;

use super::*;

/// The field an `InvalidConfig` names.
fn field(e: Error) -> String {
    match e {
        Error::InvalidConfig { field, .. } => field,
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

const FULL: &str = r#"{
    "id": "cam1",
    "source": {"url": "rtmp://127.0.0.1/live/cam1", "format": "flv"},
    "output_dir": "/srv/hls/cam1",
    "profile": {
        "variants": ["720p", {"name": "540p", "height": 540, "video_bitrate": 2000000,
                              "preset": "faster", "max_frame_rate": 30}],
        "segment_duration": "4s",
        "live_window": 5
    },
    "hw_device": "cuda:0",
    "input_options": {"rtmp_live": "live"},
    "io_timeout": "2500ms",
    "playlist_mode": "live",
    "recovery": {"reconnect": "always", "max_attempts": 9,
                 "backoff": {"initial": "250ms", "max": "4s"}, "max_outage": "2m"},
    "source_hint": {"width": 1280, "height": 720, "frame_rate": 30}
}"#;

#[test]
fn a_file_gives_what_the_builder_gives() {
    let from_file: StreamConfig = serde_json::from_str(FULL).unwrap();
    let profile = AbrProfile::new(vec![
        VariantProfile::standard("720p").unwrap(),
        VariantProfile::new("540p", 540, 2_000_000)
            .with_preset("faster")
            .with_max_frame_rate(30.0),
    ])
    .with_segment_duration(Duration::from_secs(4))
    .with_live_window(5);
    let recovery = RecoveryPolicy::default()
        .with_reconnect(Reconnect::Always)
        .with_max_attempts(9)
        .with_backoff(Duration::from_millis(250), Duration::from_secs(4))
        .with_max_outage(Duration::from_secs(120));
    let built = StreamConfig::builder(
        "cam1",
        Source::url("rtmp://127.0.0.1/live/cam1").format("flv"),
        "/srv/hls/cam1",
    )
    .profile(profile)
    .hw_device(HwKind::Cuda, "0")
    .input_option("rtmp_live", "live")
    .io_timeout(Duration::from_millis(2500))
    .playlist_mode(PlaylistMode::Live)
    .recovery(recovery)
    .source_hint(1280, 720, 30.0)
    .build()
    .unwrap();
    assert_eq!(format!("{from_file:?}"), format!("{built:?}"));
    assert_eq!(from_file.profile(), built.profile());
    assert_eq!(from_file.recovery(), built.recovery());
    assert_eq!(from_file.source_hint(), built.source_hint());
    assert_eq!(from_file.input().forced_format(), Some("flv"));
}

#[test]
fn an_invalid_file_is_refused_with_the_builders_error() {
    let odd = r#"{"id": "a", "source": "in.mp4", "output_dir": "o",
                  "profile": {"variants": ["720p", {"name": "b", "height": 361,
                                                    "video_bitrate": 1000000}]}}"#;
    let builder_error = StreamConfig::builder("a", "in.mp4", "o")
        .profile(AbrProfile::new(vec![
            VariantProfile::standard("720p").unwrap(),
            VariantProfile::new("b", 361, 1_000_000),
        ]))
        .build()
        .unwrap_err();
    let file_error = serde_json::from_str::<StreamConfig>(odd).unwrap_err();
    assert!(
        file_error
            .to_string()
            .starts_with(&builder_error.to_string()),
        "{file_error} vs {builder_error}"
    );
    // Read as a builder, the refusal is the builder's Error itself.
    let b: StreamConfigBuilder = serde_json::from_str(odd).unwrap();
    assert_eq!(field(b.build().unwrap_err()), "profile.variants[1].height");
    for (text, named) in [
        (r#""id": "a/b""#, "id"),
        (r#""id": "a", "io_timeout": "1ms""#, "io_timeout"),
        (
            r#""id": "a", "recovery": {"backoff": {"initial": "0s"}}"#,
            "recovery.backoff.initial",
        ),
        (
            r#""id": "a", "hw_device": "vaapi:/etc/passwd""#,
            "hw_device.device",
        ),
        (
            r#""id": "a", "profile": {"variants": ["999p"]}"#,
            "profile.variants[0]",
        ),
        (
            r#""id": "a", "source_hint": {"width": 1, "height": 2, "frame_rate": 30}"#,
            "source_hint",
        ),
    ] {
        let json = format!(r#"{{{text}, "source": "in.mp4", "output_dir": "o"}}"#);
        let message = serde_json::from_str::<StreamConfig>(&json)
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with(&format!("invalid config: {named}: ")),
            "{json}: {message}"
        );
    }
}

#[test]
fn files_cannot_opt_in_and_unknown_keys_are_refused() {
    let lavfi = r#"{"id": "a", "source": "lavfi:testsrc2", "output_dir": "o"}"#;
    let e = serde_json::from_str::<StreamConfig>(lavfi).unwrap_err();
    assert!(
        e.to_string().contains("allow_generated_sources(true)"),
        "{e}"
    );
    // A program that trusts its file opts in on the builder it read.
    let b: StreamConfigBuilder = serde_json::from_str(lavfi).unwrap();
    assert!(b.allow_generated_sources(true).build().is_ok());
    let opt_in = r#"{"id": "a", "source": "lavfi:testsrc2", "output_dir": "o",
                     "allow_generated_sources": true}"#;
    let e = serde_json::from_str::<StreamConfig>(opt_in).unwrap_err();
    assert!(e.to_string().contains("unknown field"), "{e}");
    let typo = r#"{"variants": ["720p"], "segment_duraton": "4s"}"#;
    assert!(serde_json::from_str::<AbrProfile>(typo).is_err());
}

#[test]
fn durations_are_read_in_their_human_form_only() {
    let p: RecoveryPolicy =
        serde_json::from_str(r#"{"max_outage": "1m 30s", "backoff": {"max": "2s"}}"#).unwrap();
    assert_eq!(p.max_outage, Duration::from_secs(90));
    assert_eq!(p.backoff.max, Duration::from_secs(2));
    assert_eq!(
        p.backoff.initial,
        RecoveryPolicy::default().backoff.initial,
        "the rest stays default"
    );
    let e = serde_json::from_str::<RecoveryPolicy>(r#"{"max_outage": 90}"#).unwrap_err();
    assert!(e.to_string().contains("expected a string"), "{e}");
    let e = serde_json::from_str::<RecoveryPolicy>(r#"{"max_outage": "90 parsecs"}"#).unwrap_err();
    assert!(e.to_string().contains("is not a duration"), "{e}");
}

#[test]
fn standalone_values_are_validated_too() {
    let bad = serde_json::from_str::<RecoveryPolicy>(r#"{"backoff": {"jitter": 2.0}}"#);
    assert!(bad
        .unwrap_err()
        .to_string()
        .starts_with("invalid config: recovery.backoff.jitter: "));
    let v: VariantProfile = serde_json::from_str(r#""360p""#).unwrap();
    assert_eq!(v, VariantProfile::standard("360p").unwrap());
    let e = serde_json::from_str::<VariantProfile>(r#""361p""#).unwrap_err();
    assert!(
        e.to_string().starts_with("invalid config: variant: "),
        "{e}"
    );
    let hw: HwDevice =
        serde_json::from_str(r#"{"kind": "vaapi", "device": "/dev/dri/renderD128"}"#).unwrap();
    assert_eq!(hw.to_string(), "vaapi:/dev/dri/renderD128");
    assert!(serde_json::from_str::<HwDevice>(r#""cuda:abc""#).is_err());
    assert!(serde_json::from_str::<HwDevice>(r#""gpu:0""#).is_err());
    let r: RestartPolicy = serde_json::from_str(r#"{"max_restarts": 2}"#).unwrap();
    assert!(r.enabled, "a restart table asks for restarts");
    assert_eq!(r.max_restarts, 2);
}

#[test]
fn a_toml_file_reads_the_same() {
    let text = r#"
        id = "film"
        source = "/media/film.mp4"
        output_dir = "/srv/hls/film"
        playlist_mode = "vod"

        [profile]
        variants = ["1080p", "720p", { name = "mobile", height = 360, video_bitrate = 600_000 }]
        segment_duration = "6s"

        [recovery]
        reconnect = "never"
    "#;
    // A file cannot opt in to local files: the program does, on the builder it reads.
    let b: StreamConfigBuilder = toml::from_str(text).unwrap();
    let c = b.local_files_under("/").build().unwrap();
    assert_eq!(c.profile().variants.len(), 3);
    assert_eq!(c.profile().variants[2].video_bitrate, 600_000);
    assert_eq!(c.profile().segment_duration, Duration::from_secs(6));
    assert_eq!(c.playlist_mode(), PlaylistMode::Vod);
    assert_eq!(c.recovery().reconnect, Reconnect::Never);
}

#[test]
fn a_low_latency_dash_target_reads_from_a_file_and_is_bounded_by_its_parts() {
    let config = |profile: &str| {
        let json = format!(
            r#"{{"id": "a", "source": "rtmp://127.0.0.1/live/a", "output_dir": "o",
                 "playlist_mode": "live", "profile": {profile}}}"#
        );
        serde_json::from_str::<StreamConfig>(&json)
    };
    let ll = r#""container": "fmp4", "dash": true, "part_duration": "334ms""#;
    let read = config(&format!(r#"{{{ll}, "dash_target_latency": "1700ms"}}"#)).unwrap();
    let built = AbrProfile::standard()
        .with_container(Container::Fmp4)
        .with_dash(true)
        .with_parts(Duration::from_millis(334))
        .with_dash_target_latency(Duration::from_millis(1700));
    assert_eq!(read.profile(), &built);
    for profile in [
        r#"{"dash_target_latency": "2s"}"#.to_owned(),
        format!(r#"{{{ll}, "dash_target_latency": "600ms"}}"#),
        format!(r#"{{{ll}, "dash_target_latency": "31s"}}"#),
    ] {
        let message = config(&profile).unwrap_err().to_string();
        assert!(
            message.starts_with("invalid config: profile.dash_target_latency: "),
            "{profile}: {message}"
        );
    }
}
