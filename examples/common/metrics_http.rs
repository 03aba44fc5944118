//! `GET /metrics` for a scraper: the manager's metrics page ([`Manager::render_metrics`],
//! OpenMetrics text, sent as [`Manager::METRICS_CONTENT_TYPE`]) served with `tiny_http`.
//! Other paths get 404, other methods 405. Every answer carries a `Content-Length` (never
//! chunked), so a keep-alive client reads it whole.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Weak;

use streamvisor::Manager;
use tiny_http::{Header, Method, Request, Response, Server, StatusCode};

/// Listens on `addr` (port 0: any free port) and serves `manager`'s metrics from a thread
/// named `metrics-http` until the process ends; the address it listens on.
pub fn serve(addr: &str, manager: Weak<Manager>) -> io::Result<SocketAddr> {
    // Bound here, so that a taken port or a bad address is an `io::Error` that says so.
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    let server = Server::from_listener(listener, None).map_err(io::Error::other)?;
    std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            // tiny_http reads each request on its own connection threads; the page is
            // rendered here, one request at a time.
            for request in server.incoming_requests() {
                // A client that went away loses its own answer, nothing more.
                let _ = answer(request, &manager);
            }
        })?;
    Ok(local)
}

/// Answers one request.
fn answer(request: Request, manager: &Weak<Manager>) -> io::Result<()> {
    let path = request.url().split('?').next().unwrap_or("");
    let response = match (request.method(), path) {
        (Method::Get, "/metrics") => match manager.upgrade() {
            Some(m) => text(200, Manager::METRICS_CONTENT_TYPE, m.render_metrics()),
            None => text(503, "text/plain", "shutting down\n".into()),
        },
        (Method::Get, _) => text(404, "text/plain", "not found\n".into()),
        _ => text(405, "text/plain", "GET only\n".into()).with_header(header("Allow", "GET")),
    };
    request.respond(response)
}

/// A response with a body of `content_type`, sent with its `Content-Length`.
fn text(status: u16, content_type: &str, body: String) -> Response<io::Cursor<Vec<u8>>> {
    Response::from_string(body)
        .with_status_code(StatusCode(status))
        .with_header(header("Content-Type", content_type))
        // Above this size tiny_http would switch to chunked encoding.
        .with_chunked_threshold(usize::MAX)
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name, value).expect("a header from our own ASCII constants")
}
