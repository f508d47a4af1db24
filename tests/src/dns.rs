//! A DNS server for tests and benchmarks: answers PTR (and A/AAAA) queries
//! over UDP on loopback by rule, with delays, failures and silence, and
//! counts the queries in flight.
//!
//! Messages are read and written with `hickory-proto`; the behaviour is
//! what a test needs to assert on: which name an address gets, how long the
//! answer takes, whether it is NXDOMAIN, SERVFAIL or never sent, and how
//! many queries waited for an answer at once.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// What the server does with one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Answers with this name (PTR) after the delay.
    Name(String, Duration),
    /// Answers NXDOMAIN after the delay.
    NxDomain(Duration),
    /// Answers SERVFAIL after the delay.
    ServFail(Duration),
    /// Never answers.
    Silence,
}

/// Decides the reply to a PTR query for an address.
pub type PtrRule = dyn Fn(IpAddr) -> Reply + Send + Sync;

/// Counters a test reads.
#[derive(Debug, Default)]
pub struct Stats {
    /// Queries received.
    pub queries: AtomicUsize,
    /// Queries received and not yet answered (silent ones count until
    /// `silence_hold` has passed).
    pub in_flight: AtomicUsize,
    /// The most queries in flight at any moment.
    pub max_in_flight: AtomicUsize,
}

struct Pending {
    due: Instant,
    to: SocketAddr,
    bytes: Option<Vec<u8>>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.due.cmp(&other.due)
    }
}

type Queue = (Mutex<BinaryHeap<Reverse<Pending>>>, Condvar);

/// A running server; stopped when dropped.
pub struct DnsServer {
    addr: SocketAddr,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    queue: Arc<Queue>,
    threads: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// Starts a server on `bind` (port 0 picks a free one). `ptr` decides
    /// PTR replies; `forward` answers A and AAAA queries for `--confirm`;
    /// a silent query counts as in flight for `silence_hold`.
    pub fn start(
        bind: SocketAddr,
        ptr: Box<PtrRule>,
        forward: HashMap<String, Vec<IpAddr>>,
        silence_hold: Duration,
    ) -> std::io::Result<DnsServer> {
        let socket = UdpSocket::bind(bind)?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let addr = socket.local_addr()?;
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let queue: Arc<Queue> = Arc::new((Mutex::new(BinaryHeap::new()), Condvar::new()));
        let sender = {
            let socket = socket.try_clone()?;
            let (stats, stop, queue) = (Arc::clone(&stats), Arc::clone(&stop), Arc::clone(&queue));
            thread::spawn(move || send_loop(&socket, &stats, &stop, &queue))
        };
        let receiver = {
            let (stats, stop, queue) = (Arc::clone(&stats), Arc::clone(&stop), Arc::clone(&queue));
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    let Ok(query) = Message::from_vec(&buf[..n]) else {
                        continue;
                    };
                    stats.queries.fetch_add(1, Ordering::SeqCst);
                    let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
                    let (delay, bytes) = respond(&query, &ptr, &forward, silence_hold);
                    let pending = Pending {
                        due: Instant::now() + delay,
                        to: from,
                        bytes,
                    };
                    if let Ok(mut q) = queue.0.lock() {
                        q.push(Reverse(pending));
                        queue.1.notify_one();
                    }
                }
            })
        };
        Ok(DnsServer {
            addr,
            stats,
            stop,
            queue,
            threads: vec![sender, receiver],
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.queue.1.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Builds the reply to `query` and says when to send it (`None`: never).
fn respond(
    query: &Message,
    ptr: &PtrRule,
    forward: &HashMap<String, Vec<IpAddr>>,
    silence_hold: Duration,
) -> (Duration, Option<Vec<u8>>) {
    let Some(q) = query.queries.first() else {
        return (Duration::ZERO, None);
    };
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_query(q.clone());
    let name = q.name().clone();
    let delay = match q.query_type() {
        RecordType::PTR => {
            let Ok(net) = name.parse_arpa_name() else {
                reply.metadata.response_code = ResponseCode::NXDomain;
                return (Duration::ZERO, reply.to_vec().ok());
            };
            match ptr(net.addr()) {
                Reply::Name(host, delay) => {
                    match Name::from_ascii(&host) {
                        Ok(target) => {
                            reply.add_answer(Record::from_rdata(
                                name,
                                300,
                                RData::PTR(PTR(target)),
                            ));
                        }
                        Err(_) => reply.metadata.response_code = ResponseCode::ServFail,
                    }
                    delay
                }
                Reply::NxDomain(delay) => {
                    reply.metadata.response_code = ResponseCode::NXDomain;
                    delay
                }
                Reply::ServFail(delay) => {
                    reply.metadata.response_code = ResponseCode::ServFail;
                    delay
                }
                Reply::Silence => return (silence_hold, None),
            }
        }
        t @ (RecordType::A | RecordType::AAAA) => {
            let key = name.to_ascii().trim_end_matches('.').to_ascii_lowercase();
            match forward.get(&key) {
                Some(addrs) => {
                    for addr in addrs {
                        let rdata = match (t, addr) {
                            (RecordType::A, IpAddr::V4(a)) => RData::A(A(*a)),
                            (RecordType::AAAA, IpAddr::V6(a)) => RData::AAAA(AAAA(*a)),
                            _ => continue,
                        };
                        reply.add_answer(Record::from_rdata(name.clone(), 300, rdata));
                    }
                }
                None => reply.metadata.response_code = ResponseCode::NXDomain,
            }
            Duration::ZERO
        }
        _ => {
            reply.metadata.response_code = ResponseCode::NotImp;
            Duration::ZERO
        }
    };
    (delay, reply.to_vec().ok())
}

fn send_loop(socket: &UdpSocket, stats: &Stats, stop: &AtomicBool, queue: &Queue) {
    let Ok(mut q) = queue.0.lock() else { return };
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        match q.peek() {
            Some(Reverse(p)) if p.due <= now => {
                if let Some(Reverse(p)) = q.pop() {
                    // Counted out before the reply leaves: once it has, the
                    // client may send its next query at once.
                    stats.in_flight.fetch_sub(1, Ordering::SeqCst);
                    if let Some(bytes) = &p.bytes {
                        let _ = socket.send_to(bytes, p.to);
                    }
                }
            }
            Some(Reverse(p)) => {
                let wait = p.due - now;
                q = match queue.1.wait_timeout(q, wait) {
                    Ok((g, _)) => g,
                    Err(_) => return,
                };
            }
            None => {
                q = match queue.1.wait_timeout(q, Duration::from_millis(50)) {
                    Ok((g, _)) => g,
                    Err(_) => return,
                };
            }
        }
    }
}
