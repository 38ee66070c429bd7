//! divan benchmarks of engine internals, for profiling work (`cargo bench -p eventpoll-bench`;
//! under callgrind: build with `cargo bench --no-run` and run the binary with `--bench NAME`).
//! They use the Rust-idiomatic layer (`Epoll`, `File`) to isolate the engine from descriptor
//! lookups, plus the `FdTable` path where the lookups are part of the question.

use divan::{black_box, Bencher};
use eventpoll::linux::{EPOLL_CTL_ADD, EPOLL_CTL_DEL, O_NONBLOCK};
use eventpoll::objects::eventfd::{EventFd, EventFdMode, EFD_NONBLOCK};
use eventpoll::{Epoll, EpollEvent, EventBuffer, Events, FdTable, File, Interest};
use std::time::{Duration, Instant};

fn main() {
    divan::main();
}

fn eventfd(init: u64) -> File {
    File::with_flags(EventFd::new(init, EventFdMode::Counter), O_NONBLOCK)
}

/// `epoll_ctl` ADD then DEL of one eventfd on an empty instance (Rust layer).
#[divan::bench]
fn ctl_add_del(b: Bencher) {
    let ep = Epoll::new();
    let f = eventfd(0);
    b.bench_local(|| {
        ep.add(&f, Interest::READABLE, 1).unwrap();
        ep.delete(&f).unwrap();
    });
}

/// The same through the descriptor table (two lookups per call).
#[divan::bench]
fn ctl_add_del_fdtable(b: Bencher) {
    let t = FdTable::new();
    let ep = t.epoll_create1(0).unwrap();
    let fd = t.eventfd(0, EFD_NONBLOCK).unwrap();
    let ev = EpollEvent::new(Events::IN, 1);
    b.bench_local(|| {
        t.epoll_ctl(ep, EPOLL_CTL_ADD, fd, Some(&ev)).unwrap();
        t.epoll_ctl(ep, EPOLL_CTL_DEL, fd, None).unwrap();
    });
}

/// A harvest of `n` ready level-triggered items (each wait reports all of them).
#[divan::bench(args = [1, 100])]
fn harvest_ready_lt(b: Bencher, n: usize) {
    let ep = Epoll::new();
    let files: Vec<File> = (0..n).map(|_| eventfd(1)).collect();
    for (i, f) in files.iter().enumerate() {
        ep.add(f, Interest::READABLE, i as u64).unwrap();
    }
    let mut buf = EventBuffer::with_capacity(2 * n);
    b.bench_local(|| {
        let got = ep.wait(&mut buf, Some(Duration::ZERO)).unwrap();
        assert_eq!(got, n);
    });
}

/// The wake callback: a write to an eventfd watched edge-triggered by one instance, the
/// item already on the ready list (the callback's common case), so it only merges.
#[divan::bench]
fn wake_callback_linked(b: Bencher) {
    let ep = Epoll::new();
    let f = eventfd(0);
    ep.add(&f, Interest::READABLE.edge(), 0).unwrap();
    let one = 1u64.to_ne_bytes();
    b.bench_local(|| f.write(black_box(&one)).unwrap());
}

/// A write that links the item, then the harvest that takes it off (ET): one full
/// notify-and-report cycle.
#[divan::bench]
fn wake_then_harvest_et(b: Bencher) {
    let ep = Epoll::new();
    let f = eventfd(0);
    ep.add(&f, Interest::READABLE.edge(), 0).unwrap();
    let one = 1u64.to_ne_bytes();
    let mut buf = EventBuffer::with_capacity(4);
    b.bench_local(|| {
        f.write(&one).unwrap();
        assert_eq!(ep.wait(&mut buf, Some(Duration::ZERO)).unwrap(), 1);
    });
}

/// One pipetest round (wait, read the ready pipes, pass each token on) over `n` in-process
/// pipes with 16 tokens, through the descriptor table as `eventpoll bench` runs it.
#[divan::bench(args = [10, 10_000])]
fn pipetest_round(b: Bencher, n: usize) {
    use eventpoll_bench::pipetest::{run_rounds, start};
    let mut rig = eventpoll_bench::engine::rig(n, false).unwrap();
    let mut tokens = start(&mut rig, 16, 1).unwrap();
    let never = Instant::now() + Duration::from_secs(3600);
    b.bench_local(|| run_rounds(&mut rig, &mut tokens, never, 1).unwrap());
}
