//! The fleet's integration tests: real `redis-server`, `worker` processes as nodes, nginx
//! (WebDAV origin, RTMP), the `ffmpeg` CLI as a live publisher, hls.js in Chromium.

mod bench;
mod common;
mod failures;
mod fencing;
mod live;
mod ondemand;
mod operations;
mod servers;
