//! The integration suite: one binary, tests grouped by what they prove. Every test runs
//! real media through the real FFmpeg libraries and checks outputs with ffprobe.

mod bad_input;
mod browser;
mod chaos;
mod cmaf;
mod common;
mod events;
mod examples;
mod failover;
mod ffmpeg_log;
mod hardening;
mod ingest;
mod ladder;
mod lifecycle;
mod live_clock;
mod live_fill;
mod liveness;
mod ll_dash;
mod local_files;
mod low_latency;
mod manager;
mod manager_chaos;
mod metrics;
mod origin;
mod origin_ll;
mod output;
mod put_ladder;
mod put_sink;
mod reader;
mod recovery;
mod resume;
mod security;
mod servers;
mod sources;
mod timeline;
