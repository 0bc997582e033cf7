//! A small static file server for the demo page: GET and HEAD only, files
//! under one folder, with the headers that make the page cross-origin
//! isolated (so the worker can share a stop flag with the page).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest request head read.
const MAX_HEAD: usize = 16 * 1024;

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("wasm") => "application/wasm",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

/// The file under `root` that `target` names, refusing anything that
/// leaves it.
fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let rel = Path::new(path.trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    let full = root.join(rel);
    if full.is_dir() {
        Some(full.join("index.html"))
    } else {
        Some(full)
    }
}

fn respond(mut s: TcpStream, root: &Path) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(s.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Drain the headers (bounded).
    let mut seen = request.len();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line)?;
        seen += n;
        if n == 0 || line == "\r\n" || line == "\n" || seen > MAX_HEAD {
            break;
        }
    }
    let mut parts = request.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let file = resolve(root, target).filter(|p| p.is_file());
    let (status, body) = match (method, file) {
        ("GET" | "HEAD", Some(p)) => match std::fs::read(&p) {
            Ok(b) => ("200 OK", Some((b, content_type(&p)))),
            Err(_) => ("500 Internal Server Error", None),
        },
        ("GET" | "HEAD", None) => ("404 Not Found", None),
        _ => ("405 Method Not Allowed", None),
    };
    let (bytes, ctype) = body.unwrap_or_else(|| (status.as_bytes().to_vec(), "text/plain"));
    write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Cross-Origin-Opener-Policy: same-origin\r\n\
         Cross-Origin-Embedder-Policy: require-corp\r\n\
         Cross-Origin-Resource-Policy: same-origin\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        bytes.len()
    )?;
    if method != "HEAD" {
        s.write_all(&bytes)?;
    }
    s.flush()
}

/// Serves `root` on `listener` until `deadline` (forever when `None`),
/// one thread per connection.
pub fn serve(listener: TcpListener, root: PathBuf, deadline: Option<Instant>) {
    if deadline.is_some() {
        // Poll so that the deadline is noticed without a connection.
        let _ = listener.set_nonblocking(true);
    }
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            eprintln!("server: lifetime over, stopping");
            return;
        }
        match listener.accept() {
            Ok((s, _)) => {
                let _ = s.set_nonblocking(false);
                let root = root.clone();
                std::thread::spawn(move || {
                    if let Err(e) = respond(s, &root) {
                        eprintln!("server: {e}");
                    }
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => eprintln!("server: accept: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_root() {
        let root = Path::new("/srv/www");
        assert_eq!(
            resolve(root, "/pkg/a.js?v=1"),
            Some(PathBuf::from("/srv/www/pkg/a.js"))
        );
        assert_eq!(resolve(root, "/../etc/passwd"), None);
        assert_eq!(resolve(root, "/a/../../b"), None);
    }
}
