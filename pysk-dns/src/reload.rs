//! `build --reload`: the name server's reload command, then a check that
//! each changed zone is served with its new serial.
//!
//! `rndc reload` exits 0 even when a zone failed to load, so the exit
//! status alone proves nothing; the SOA the server answers with does.

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use pysk_common::error::cause;

use crate::error::DnsError;

/// Runs `command` (split at blanks, no shell). A command that cannot be
/// started or exits non-zero is an error carrying its stderr.
pub fn run_command(command: &str) -> Result<(), DnsError> {
    let err = |reason: String| DnsError::Reload {
        command: command.to_owned(),
        reason,
    };
    let mut words = command.split_whitespace();
    let program = words
        .next()
        .ok_or_else(|| err("empty command".to_owned()))?;
    let out = Command::new(program)
        .args(words)
        .output()
        .map_err(|e| err(format!("cannot run: {}", cause(&e))))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(err(format!("{} ({})", out.status, stderr.trim())))
    }
}

/// Asks `server` for `zone`'s SOA serial over UDP; why not, if it has no
/// answer.
pub fn served_serial(server: SocketAddr, zone: &str, timeout: Duration) -> Result<u32, String> {
    let name = Name::from_ascii(format!("{zone}.")).map_err(|e| e.to_string())?;
    let mut query = Message::query();
    query.add_query(Query::query(name, RecordType::SOA));
    query.metadata.recursion_desired = false;
    let id = query.metadata.id;
    let bytes = query.to_vec().map_err(|e| e.to_string())?;
    let bind: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let io = |e: std::io::Error| cause(&e);
    let socket = UdpSocket::bind(bind).map_err(io)?;
    socket.set_read_timeout(Some(timeout)).map_err(io)?;
    socket.connect(server).map_err(io)?;
    socket.send(&bytes).map_err(io)?;
    let mut buf = [0u8; 4096];
    loop {
        let n = socket
            .recv(&mut buf)
            .map_err(|e| format!("no answer: {}", cause(&e)))?;
        let Ok(reply) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if reply.metadata.id != id {
            continue;
        }
        if reply.metadata.response_code != ResponseCode::NoError {
            return Err(format!("answered {}", reply.metadata.response_code));
        }
        return reply
            .answers
            .iter()
            .find_map(|r| match &r.data {
                RData::SOA(soa) => Some(soa.serial),
                _ => None,
            })
            .ok_or_else(|| "no SOA in the answer (zone not loaded)".to_owned());
    }
}

/// Waits up to `patience` for every `(zone, serial)` to be served by
/// `server`; returns those that are not, with what was seen instead.
pub fn check_served(
    server: SocketAddr,
    expected: &[(String, u32)],
    patience: Duration,
) -> Vec<(String, u32, String)> {
    let deadline = Instant::now() + patience;
    let mut pending: Vec<(String, u32, String)> = expected
        .iter()
        .map(|(z, s)| (z.clone(), *s, String::new()))
        .collect();
    loop {
        pending.retain_mut(|(zone, serial, seen)| {
            match served_serial(server, zone, Duration::from_millis(500)) {
                Ok(s) if s == *serial => false,
                Ok(s) => {
                    *seen = format!("serves serial {s}");
                    true
                }
                Err(e) => {
                    *seen = e;
                    true
                }
            }
        });
        if pending.is_empty() || Instant::now() >= deadline {
            return pending;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
