//! `pysk-test-dns`: the test DNS server as a program, for benchmarks.
//!
//! ```text
//! pysk-test-dns serve --bind 127.0.0.1:53 [--delay-ms 40] [--jitter-ms 20]
//!               [--silent-pct 5] [--servfail-pct 3] [--nxdomain-pct 15]
//! pysk-test-dns classify [same percentages] < addresses
//! ```
//!
//! `serve` answers PTR queries with Internet-like behaviour: every address
//! gets, by a hash of itself, a fixed fate — silence, SERVFAIL, NXDOMAIN
//! or the name `h-v4-<hex>.bench.example` (`h-v6-…`) — after 40 ± 20 ms.
//! `classify` prints how many of the addresses on stdin are answerable,
//! so a benchmark can check that every one of them got its name.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::BufRead;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use pysk_tests::dns::{DnsServer, Reply};

#[derive(Debug, Clone, Copy)]
struct Fates {
    delay_ms: u64,
    jitter_ms: u64,
    silent: u64,
    servfail: u64,
    nxdomain: u64,
}

impl Fates {
    fn reply(&self, addr: IpAddr) -> Reply {
        let mut h = DefaultHasher::new();
        addr.hash(&mut h);
        let hash = h.finish();
        let roll = hash % 100;
        let jitter = (hash / 100) % (2 * self.jitter_ms + 1);
        let delay = Duration::from_millis((self.delay_ms + jitter).saturating_sub(self.jitter_ms));
        if roll < self.silent {
            Reply::Silence
        } else if roll < self.silent + self.servfail {
            Reply::ServFail(delay)
        } else if roll < self.silent + self.servfail + self.nxdomain {
            Reply::NxDomain(delay)
        } else {
            let label = match addr {
                IpAddr::V4(a) => format!("v4-{:08x}", u32::from(a)),
                IpAddr::V6(a) => format!("v6-{:032x}", u128::from(a)),
            };
            Reply::Name(format!("h-{label}.bench.example"), delay)
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut fates = Fates {
        delay_ms: 40,
        jitter_ms: 20,
        silent: 5,
        servfail: 3,
        nxdomain: 15,
    };
    let mut bind: SocketAddr = ([127, 0, 0, 1], 53).into();
    let mut i = 1;
    while i < args.len() {
        let (key, value) = (&args[i], args.get(i + 1).map(String::as_str).unwrap_or(""));
        let number = || value.parse::<u64>().ok();
        let ok = match key.as_str() {
            "--bind" => value.parse().map(|b| bind = b).is_ok(),
            "--delay-ms" => number().map(|n| fates.delay_ms = n).is_some(),
            "--jitter-ms" => number().map(|n| fates.jitter_ms = n).is_some(),
            "--silent-pct" => number().map(|n| fates.silent = n).is_some(),
            "--servfail-pct" => number().map(|n| fates.servfail = n).is_some(),
            "--nxdomain-pct" => number().map(|n| fates.nxdomain = n).is_some(),
            _ => false,
        };
        if !ok {
            eprintln!("pysk-test-dns: bad option {key} {value}");
            return ExitCode::from(2);
        }
        i += 2;
    }
    match args.first().map(String::as_str) {
        Some("classify") => {
            let mut answerable = 0u64;
            for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                if let Ok(addr) = line.trim().parse::<IpAddr>()
                    && matches!(fates.reply(addr), Reply::Name(..))
                {
                    answerable += 1;
                }
            }
            println!("{answerable}");
            ExitCode::SUCCESS
        }
        Some("serve") => {
            let rule = move |addr| fates.reply(addr);
            match DnsServer::start(bind, Box::new(rule), HashMap::new(), Duration::from_secs(2)) {
                Ok(server) => {
                    eprintln!("pysk-test-dns: serving on {}", server.addr());
                    loop {
                        std::thread::park();
                    }
                }
                Err(e) => {
                    eprintln!("pysk-test-dns: {bind}: {e}");
                    ExitCode::from(69)
                }
            }
        }
        _ => {
            eprintln!(
                "usage: pysk-test-dns serve|classify [--bind ADDR] [--delay-ms N] [--jitter-ms N] [--silent-pct N] [--servfail-pct N] [--nxdomain-pct N]"
            );
            ExitCode::from(2)
        }
    }
}
