//! An HTTP(S) server for tests: serves documents by path, checks HTTP
//! basic auth, and can misbehave on purpose (an error status, an endless
//! body). It runs on a free loopback port in threads of the test process
//! and stops when dropped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// What the server answers for a path.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with this body.
    Body(Vec<u8>),
    /// This status and an empty body.
    Status(u16),
    /// 200 with a body of this many bytes, streamed, never held in memory.
    Endless(u64),
    /// 200 and the first half of a body, then silence for this long.
    Stall(Duration),
    /// 200 with these further headers (`Name: value`) and this body.
    Headed(Vec<String>, Vec<u8>),
}

/// A running test HTTP server.
pub struct HttpServer {
    /// Its address.
    pub addr: SocketAddr,
    tls: bool,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    stop: Arc<AtomicBool>,
}

impl HttpServer {
    /// Starts a server; with `tls` (certificate and key PEM files) it
    /// speaks HTTPS; with `auth` every request needs that user and
    /// password.
    pub fn start(tls: Option<(&Path, &Path)>, auth: Option<(&str, &str)>) -> HttpServer {
        let config = tls.map(|(cert, key)| {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .expect("read the test certificate")
                .collect::<Result<_, _>>()
                .expect("parse the test certificate");
            let key = PrivateKeyDer::from_pem_file(key).expect("read the test key");
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            Arc::new(
                rustls::ServerConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .expect("TLS versions")
                    .with_no_client_auth()
                    .with_single_cert(certs, key)
                    .expect("server certificate"),
            )
        });
        let expected = auth.map(|(u, p)| format!("Basic {}", STANDARD.encode(format!("{u}:{p}"))));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test HTTP server");
        let addr = listener.local_addr().expect("its address");
        let routes: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s, tls) = (routes.clone(), stop.clone(), config.is_some());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (routes, config, expected) = (r.clone(), config.clone(), expected.clone());
                thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                    match config {
                        Some(config) => {
                            let Ok(tls) = rustls::ServerConnection::new(config) else {
                                return;
                            };
                            serve(rustls::StreamOwned::new(tls, conn), &routes, &expected);
                        }
                        None => serve(conn, &routes, &expected),
                    }
                });
            }
        });
        HttpServer {
            addr,
            tls,
            routes,
            stop,
        }
    }

    /// Sets what `path` answers.
    pub fn set(&self, path: &str, reply: Reply) {
        self.routes
            .lock()
            .expect("routes lock")
            .insert(path.to_owned(), reply);
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve<S: Read + Write>(
    stream: S,
    routes: &Mutex<HashMap<String, Reply>>,
    expected_auth: &Option<String>,
) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    let mut authorization = None;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => {
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case("authorization")
                {
                    authorization = Some(v.trim().to_owned());
                }
            }
        }
    }
    let mut stream = reader.into_inner();
    let reply = if expected_auth.is_some() && authorization != *expected_auth {
        Reply::Status(401)
    } else {
        routes
            .lock()
            .expect("routes lock")
            .get(&path)
            .cloned()
            .unwrap_or(Reply::Status(404))
    };
    let _ = match reply {
        Reply::Body(body) => write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .and_then(|()| stream.write_all(&body)),
        Reply::Headed(headers, body) => write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
            body.len(),
            headers.iter().map(|h| format!("{h}\r\n")).collect::<String>()
        )
        .and_then(|()| stream.write_all(&body)),
        Reply::Status(code) => write!(
            stream,
            "HTTP/1.1 {code} Test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        Reply::Stall(pause) => write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{\"version\": 1"
        )
        .and_then(|()| stream.flush())
        .map(|()| thread::sleep(pause)),
        Reply::Endless(len) => write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
        )
        .and_then(|()| {
            let chunk = vec![b' '; 64 * 1024];
            let mut left = len;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                stream.write_all(&chunk[..n])?;
                left -= n as u64;
            }
            Ok(())
        }),
    };
    let _ = stream.flush();
}
