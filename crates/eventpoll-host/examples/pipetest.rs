//! The pipetest of the epoll announcement over *host* pipes: N pipes watched, K one-byte
//! tokens in flight; each round waits, reads the ready pipes and writes each token to a
//! pseudo-random pipe. Compares the kernel's epoll with the eventpoll engine watching the
//! same kind of host pipes through [`HostEpoll`] (both drivers), level- and
//! edge-triggered.
//!
//! ```text
//! cargo run --release -p eventpoll-host --example pipetest -- [N] [K] [SECONDS]
//! ```
//!
//! [`HostPipes`] below is the "host pipes" method in the shape of the bench crate's `Rig`
//! (wait / read / write), ready to be moved there.

use eventpoll::{EpollEvent, File, Interest};
use eventpoll_host::{DriverKind, Host, HostEpoll};
use std::time::{Duration, Instant};

/// N nonblocking host pipes.
struct Pipes {
    r: Vec<i32>,
    w: Vec<i32>,
}

impl Pipes {
    fn new(n: usize) -> Pipes {
        let (mut r, mut w) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let mut fds = [0; 2];
            // SAFETY: a valid array of two ints.
            assert_eq!(
                unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) },
                0
            );
            r.push(fds[0]);
            w.push(fds[1]);
        }
        Pipes { r, w }
    }
    fn read(&self, i: usize, buf: &mut [u8]) -> isize {
        // SAFETY: valid writable buffer.
        unsafe { libc::read(self.r[i], buf.as_mut_ptr().cast(), buf.len()) }
    }
    fn write(&self, i: usize, b: u8) -> isize {
        // SAFETY: one valid byte.
        unsafe { libc::write(self.w[i], [b].as_ptr().cast(), 1) }
    }
}

impl Drop for Pipes {
    fn drop(&mut self) {
        for fd in self.r.iter().chain(&self.w) {
            // SAFETY: our descriptors.
            unsafe { libc::close(*fd) };
        }
    }
}

/// A readiness mechanism: append the indices of ready pipes.
trait Waiter {
    fn wait(&mut self, ready: &mut Vec<usize>);
    fn edge(&self) -> bool;
}

/// The kernel's epoll.
struct Kernel {
    ep: i32,
    buf: Vec<libc::epoll_event>,
    edge: bool,
}

impl Kernel {
    fn new(p: &Pipes, edge: bool) -> Kernel {
        // SAFETY: plain syscalls with valid arguments.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        for (i, &fd) in p.r.iter().enumerate() {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32 | if edge { libc::EPOLLET as u32 } else { 0 },
                u64: i as u64,
            };
            // SAFETY: valid event.
            assert_eq!(
                unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) },
                0
            );
        }
        Kernel {
            ep,
            buf: vec![libc::epoll_event { events: 0, u64: 0 }; 1024],
            edge,
        }
    }
}

impl Waiter for Kernel {
    fn wait(&mut self, ready: &mut Vec<usize>) {
        // SAFETY: `buf` holds 1024 entries.
        let n = unsafe { libc::epoll_wait(self.ep, self.buf.as_mut_ptr(), 1024, 1000) };
        for e in &self.buf[..n.max(0) as usize] {
            ready.push(e.u64 as usize);
        }
    }
    fn edge(&self) -> bool {
        self.edge
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        // SAFETY: our descriptor.
        unsafe { libc::close(self.ep) };
    }
}

/// The "host pipes" method: the eventpoll engine watching host pipes through a driver.
pub struct HostPipes {
    hep: HostEpoll,
    _files: Vec<File>,
    out: Vec<EpollEvent>,
    edge: bool,
}

impl HostPipes {
    fn new(p: &Pipes, kind: DriverKind, edge: bool) -> HostPipes {
        let host = Host::new(kind).unwrap();
        let hep = HostEpoll::new(host.clone()).unwrap();
        let files: Vec<File> = p.r.iter().map(|&fd| host.open(fd).unwrap()).collect();
        let interest = if edge {
            Interest::READABLE.edge()
        } else {
            Interest::READABLE
        };
        for (i, f) in files.iter().enumerate() {
            hep.epoll().add(f, interest, i as u64).unwrap();
        }
        HostPipes {
            hep,
            _files: files,
            out: vec![EpollEvent::default(); 1024],
            edge,
        }
    }
}

impl Waiter for HostPipes {
    fn wait(&mut self, ready: &mut Vec<usize>) {
        let n = self
            .hep
            .wait(&mut self.out, 1024, Some(Duration::from_secs(1)), None)
            .unwrap();
        for e in &self.out[..n] {
            ready.push(e.data() as usize);
        }
    }
    fn edge(&self) -> bool {
        self.edge
    }
}

/// xorshift64*, as the bench uses.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (((x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) * n as u64) >> 32) as usize
    }
}

/// Run rounds for `secs`: returns (rounds, tokens) per second.
fn run(p: &Pipes, w: &mut dyn Waiter, k: usize, secs: f64) -> (f64, f64) {
    let n = p.r.len();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for t in 0..k {
        assert_eq!(p.write(rng.below(n), t as u8), 1);
    }
    let mut ready = Vec::new();
    let mut buf = [0u8; 64];
    let (mut rounds, mut tokens) = (0u64, 0u64);
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(secs);
    loop {
        ready.clear();
        w.wait(&mut ready);
        assert!(!ready.is_empty(), "lost wakeup");
        rounds += 1;
        for &i in &ready {
            loop {
                let got = p.read(i, &mut buf);
                if got <= 0 {
                    break;
                }
                for &b in &buf[..got as usize] {
                    assert_eq!(p.write(rng.below(n), b), 1);
                }
                tokens += got as u64;
                if !w.edge() || (got as usize) < buf.len() {
                    break;
                }
            }
        }
        if Instant::now() >= until {
            break;
        }
    }
    // Drain and check conservation.
    let mut left = 0;
    for i in 0..n {
        loop {
            let got = p.read(i, &mut buf);
            if got <= 0 {
                break;
            }
            left += got;
        }
    }
    assert_eq!(left as usize, k, "tokens conserved");
    let dt = start.elapsed().as_secs_f64();
    (rounds as f64 / dt, tokens as f64 / dt)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let k: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    let secs: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2.0);
    println!("pipetest over host pipes: N = {n} pipes, K = {k} tokens, {secs} s per method");
    println!(
        "{:<34} {:>12} {:>14} {:>10}",
        "method", "rounds/s", "tokens/s", "vs kernel"
    );
    for edge in [false, true] {
        let mode = if edge { "ET" } else { "LT" };
        let p = Pipes::new(n);
        let (_, base) = run(&p, &mut Kernel::new(&p, edge), k, secs);
        drop(p);
        println!(
            "{:<34} {:>12} {:>14.0} {:>10}",
            format!("kernel epoll {mode}"),
            "",
            base,
            "1.00x"
        );
        for kind in [DriverKind::KernelEpoll, DriverKind::Poll] {
            let p = Pipes::new(n);
            let mut h = HostPipes::new(&p, kind, edge);
            let (rounds, tok) = run(&p, &mut h, k, secs);
            drop(h);
            println!(
                "{:<34} {:>12.0} {:>14.0} {:>9.2}x",
                format!("eventpoll {mode}, {} driver", kind.name()),
                rounds,
                tok,
                base / tok
            );
        }
    }
}
