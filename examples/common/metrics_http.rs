//! `GET /metrics` over plain `std::net`: the manager's Prometheus page
//! ([`Manager::render_metrics`]) for a scraper, one connection at a time on its own thread,
//! no web framework. Other paths get 404, other methods 405.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Weak;
use std::time::Duration;

use streamvisor::Manager;

/// The Prometheus text format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Listens on `addr` (port 0: any free port) and serves `manager`'s metrics from a thread
/// named `metrics-http` until the process ends; the address it listens on.
pub fn serve(addr: &str, manager: Weak<Manager>) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                // A client that misbehaves loses its own connection, nothing more.
                let _ = answer(conn, &manager);
            }
        })?;
    Ok(local)
}

/// Reads one request's head (bounded in size and time) and answers it.
fn answer(mut conn: TcpStream, manager: &Weak<Manager>) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > 16 * 1024 {
            return respond(&mut conn, "431 Request Header Fields Too Large", "", "");
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut request = head.lines().next().unwrap_or_default().split(' ');
    let (method, target) = (request.next().unwrap_or(""), request.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => match manager.upgrade() {
            Some(m) => respond(&mut conn, "200 OK", CONTENT_TYPE, &m.render_metrics()),
            None => respond(&mut conn, "503 Service Unavailable", "", ""),
        },
        ("GET", _) => respond(&mut conn, "404 Not Found", "text/plain", "not found\n"),
        _ => respond(
            &mut conn,
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n",
        ),
    }
}

fn respond(conn: &mut TcpStream, status: &str, content_type: &str, body: &str) -> io::Result<()> {
    let mut reply = format!("HTTP/1.1 {status}\r\n");
    if !content_type.is_empty() {
        reply.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    reply.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    conn.write_all(reply.as_bytes())?;
    conn.flush()
}
