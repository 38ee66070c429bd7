//! The deterministic platform ([`eventpoll::sim`]): a small server simulated with simulated
//! time. Three client tasks each sleep a different number of simulated seconds, send a
//! request over a socket pair and wait for the reply with a one-minute timeout; a server
//! task waits on one epoll instance for every client and answers. One more client never
//! sends, and its wait times out — after a simulated minute, at once in real time.
//!
//! The scheduler's seed chooses how the tasks interleave when several can run; the results
//! do not depend on it. The program runs each seed twice and checks that the trace (every
//! task switch and every move of the clock) is the same byte for byte, that two seeds give
//! the same results, and that the simulated minute cost no real minute.
//! Run: `cargo run -p eventpoll --features sim --example deterministic`.

use eventpoll::objects::socket::SocketType;
use eventpoll::platform::Clock;
use eventpoll::sim::{self, Sim};
use eventpoll::{EpollEvent, Errno, Events, FdTable};
use std::sync::Arc;
use std::time::{Duration, Instant};

const EPOLL_CTL_ADD: i32 = 1;

/// One simulation: what each client got back, in client order, and the trace.
fn simulate(seed: u64) -> (Vec<String>, String) {
    let sim = Sim::new(seed);
    let clock = sim.clock();
    let results = sim
        .run("main", move || {
            let table = Arc::new(FdTable::new()); // on the simulation's clock
            let epfd = table.epoll_create1(0).unwrap();
            let mut clients = Vec::new();
            for (i, delay) in [(0u64, 3u64), (1, 1), (2, 2)] {
                let (server_end, client_end) = table.socketpair(SocketType::Stream, 0).unwrap();
                let ev = EpollEvent::new(Events::IN, server_end as u64);
                table
                    .epoll_ctl(epfd, EPOLL_CTL_ADD, server_end, Some(&ev))
                    .unwrap();
                let t = table.clone();
                clients.push(sim::spawn("client", move || {
                    sim::sleep(Duration::from_secs(delay));
                    t.write(client_end, &[b'a' + i as u8]).unwrap();
                    let (ep, ev) = (t.epoll_create1(0).unwrap(), EpollEvent::new(Events::IN, 0));
                    t.epoll_ctl(ep, EPOLL_CTL_ADD, client_end, Some(&ev))
                        .unwrap();
                    let mut out = [EpollEvent::default(); 1];
                    let n = t.epoll_wait(ep, &mut out, 1, 60_000).unwrap();
                    let mut reply = [0u8; 8];
                    let len = t.read(client_end, &mut reply).unwrap();
                    format!(
                        "client {i}: {n} event, reply {:?} at {:?}",
                        String::from_utf8_lossy(&reply[..len]),
                        eventpoll::platform::default_clock().now()
                    )
                }));
            }
            // A client that never sends: its wait for a reply times out.
            let (_quiet_server, quiet) = table.socketpair(SocketType::Stream, 0).unwrap();
            let t = table.clone();
            let silent = sim::spawn("silent", move || {
                let (ep, ev) = (t.epoll_create1(0).unwrap(), EpollEvent::new(Events::IN, 0));
                t.epoll_ctl(ep, EPOLL_CTL_ADD, quiet, Some(&ev)).unwrap();
                let mut out = [EpollEvent::default(); 1];
                let n = t.epoll_wait(ep, &mut out, 1, 60_000).unwrap();
                format!(
                    "silent: {n} events at {:?}",
                    eventpoll::platform::default_clock().now()
                )
            });
            // The server: three requests, each answered in upper case.
            let mut served = 0;
            let mut out = [EpollEvent::default(); 4];
            while served < 3 {
                let n = table.epoll_wait(epfd, &mut out, 4, -1).unwrap();
                for e in &out[..n] {
                    let fd = e.data() as i32;
                    let mut req = [0u8; 8];
                    match table.read(fd, &mut req) {
                        Ok(len) => {
                            let reply = req[..len].to_ascii_uppercase();
                            table.write(fd, &reply).unwrap();
                            served += 1;
                        }
                        Err(Errno::EAGAIN) => {}
                        Err(e) => panic!("server read: {e:?}"),
                    }
                }
            }
            let mut results: Vec<String> = clients.into_iter().map(|c| c.join().unwrap()).collect();
            results.push(silent.join().unwrap());
            results
        })
        .expect("every task can make progress");
    assert_eq!(clock.now(), Duration::from_secs(61)); // 1 s at the start + the minute
    (results, sim.trace())
}

fn main() {
    let started = Instant::now();
    let (results, trace) = simulate(1);
    for line in &results {
        println!("{line}");
    }
    assert_eq!(results[0], "client 0: 1 event, reply \"A\" at 4s");
    assert_eq!(results[1], "client 1: 1 event, reply \"B\" at 2s");
    assert_eq!(results[2], "client 2: 1 event, reply \"C\" at 3s");
    assert_eq!(results[3], "silent: 0 events at 61s");
    assert_eq!(simulate(1).1, trace, "seed 1: the same trace every time");
    let (results2, trace2) = simulate(2);
    assert_eq!(
        results2, results,
        "the seed changes the interleaving, not the results"
    );
    assert_eq!(simulate(2).1, trace2);
    let switches = trace.lines().filter(|l| l.contains(" run ")).count();
    println!(
        "seed 1: {switches} task switches, {} bytes of trace, the same twice; seed 2 too, {}; \
         a simulated minute in {:?}",
        trace.len(),
        if trace2 == trace {
            "with the same trace"
        } else {
            "with another trace"
        },
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}
