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

use eventpoll::{EpollEvent, Events, File, Interest};
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
        // Read ends are only ever read from: no output wakeups needed.
        let files: Vec<File> =
            p.r.iter()
                .map(|&fd| host.open_for(fd, Events::IN).unwrap())
                .collect();
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

/// A running pipetest: pipes with K tokens in flight and the token generator.
struct Run {
    p: Pipes,
    rng: Rng,
    k: usize,
    ready: Vec<usize>,
}

impl Run {
    fn new(n: usize, k: usize) -> Run {
        let p = Pipes::new(n);
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for t in 0..k {
            assert_eq!(p.write(rng.below(n), t as u8), 1);
        }
        Run {
            p,
            rng,
            k,
            ready: Vec::new(),
        }
    }

    /// Run rounds for `d`; returns tokens passed.
    fn slice(&mut self, w: &mut dyn Waiter, d: Duration) -> u64 {
        let n = self.p.r.len();
        let mut buf = [0u8; 64];
        let mut tokens = 0u64;
        let until = Instant::now() + d;
        loop {
            self.ready.clear();
            w.wait(&mut self.ready);
            assert!(!self.ready.is_empty(), "lost wakeup");
            for &i in &self.ready {
                loop {
                    let got = self.p.read(i, &mut buf);
                    if got <= 0 {
                        break;
                    }
                    for &b in &buf[..got as usize] {
                        assert_eq!(self.p.write(self.rng.below(n), b), 1);
                    }
                    tokens += got as u64;
                    if !w.edge() || (got as usize) < buf.len() {
                        break;
                    }
                }
            }
            if Instant::now() >= until {
                return tokens;
            }
        }
    }

    /// Tokens left in the pipes (must be K).
    fn drain(&self) -> usize {
        let mut left = 0;
        let mut buf = [0u8; 64];
        for i in 0..self.p.r.len() {
            loop {
                let got = self.p.read(i, &mut buf);
                if got <= 0 {
                    break;
                }
                left += got as usize;
            }
        }
        left
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let k: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    let secs: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let only = std::env::var("PIPETEST_ONLY").ok();
    let slices = 10;
    let slice = Duration::from_secs_f64(secs / slices as f64);
    println!(
        "pipetest over host pipes: N = {n} pipes, K = {k} tokens; each eventpoll method \
         alternates {slices} slices of {slice:?} with the kernel's epoll (same mode) on \
         separate pipe sets; tokens/s are medians over the slices"
    );
    println!(
        "{:<30} {:>14} {:>14} {:>8}",
        "method", "kernel tok/s", "eventpoll tok/s", "ratio"
    );
    for edge in [false, true] {
        let mode = if edge { "ET" } else { "LT" };
        for kind in [DriverKind::KernelEpoll, DriverKind::Poll] {
            let label = format!("eventpoll {mode}, {} driver", kind.name());
            if only.as_deref().is_some_and(|o| !label.contains(o)) {
                continue;
            }
            let mut base = Run::new(n, k);
            let mut kernel = Kernel::new(&base.p, edge);
            let mut ours = Run::new(n, k);
            let mut host = HostPipes::new(&ours.p, kind, edge);
            let (mut kt, mut et, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..slices {
                let a = base.slice(&mut kernel, slice) as f64 / slice.as_secs_f64();
                let b = ours.slice(&mut host, slice) as f64 / slice.as_secs_f64();
                kt.push(a);
                et.push(b);
                ratios.push(a / b);
            }
            assert_eq!(base.drain(), base.k, "kernel: tokens conserved");
            assert_eq!(ours.drain(), ours.k, "eventpoll: tokens conserved");
            drop(host);
            println!(
                "{:<30} {:>14.0} {:>14.0} {:>7.2}x",
                label,
                median(kt),
                median(et),
                median(ratios)
            );
        }
    }
}
