//! A fixed loop of `epoll_ctl` calls through [`FdTable::epoll_ctl`], for counting what one
//! call costs in instructions and atomic operations under callgrind
//! (`scripts/ctl-atomics.sh`): `ctl_loop add-del N` runs N ADD+DEL pairs of one eventfd on
//! an otherwise empty instance, `ctl_loop mod N` N MODs of one watched (not ready) eventfd —
//! the shapes of `eventpoll bench micro --only ctl`. A warm-up of the same calls runs first,
//! outside the measured functions, so that allocations made once (slot tables, queue
//! vectors) are not counted. `ctl_loop timing N` runs natively instead and prints the wall
//! time of one ADD+DEL pair and of one uncontended atomic read-modify-write on this
//! machine (the floor the remaining atomics put under a pair; best of 5 runs each).

use eventpoll::linux::{EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD};
use eventpoll::{EpollEvent, Events, FdTable};
use std::hint::black_box;

const WARM_UP: u32 = 100;

/// N ADD+DEL pairs (the function the script collects inside).
#[inline(never)]
fn measured_add_del(t: &FdTable, ep: i32, fd: i32, n: u32) {
    let ev = EpollEvent::new(Events::IN, 1);
    for _ in 0..n {
        t.epoll_ctl(ep, EPOLL_CTL_ADD, black_box(fd), Some(&ev))
            .expect("ADD");
        t.epoll_ctl(ep, EPOLL_CTL_DEL, black_box(fd), None)
            .expect("DEL");
    }
}

/// N MODs with changing data (the function the script collects inside).
#[inline(never)]
fn measured_mod(t: &FdTable, ep: i32, fd: i32, n: u32) {
    for i in 0..n {
        let ev = EpollEvent::new(Events::IN, u64::from(i));
        t.epoll_ctl(ep, EPOLL_CTL_MOD, black_box(fd), Some(&ev))
            .expect("MOD");
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "add-del".into());
    let n: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let t = FdTable::new();
    let ep = t.epoll_create1(0).expect("epoll_create1");
    let fd = t.eventfd(0, 0).expect("eventfd");
    match mode.as_str() {
        "add-del" => {
            measured_add_del_warm(&t, ep, fd);
            measured_add_del(&t, ep, fd, black_box(n));
        }
        "mod" => {
            let ev = EpollEvent::new(Events::IN, 0);
            t.epoll_ctl(ep, EPOLL_CTL_ADD, fd, Some(&ev)).expect("ADD");
            for i in 0..WARM_UP {
                let ev = EpollEvent::new(Events::IN, u64::from(i));
                t.epoll_ctl(ep, EPOLL_CTL_MOD, fd, Some(&ev)).expect("MOD");
            }
            measured_mod(&t, ep, fd, black_box(n));
        }
        "timing" => {
            measured_add_del_warm(&t, ep, fd);
            let pair = best_ns_per(n, || measured_add_del(&t, ep, fd, black_box(n)));
            let counter = std::sync::atomic::AtomicU64::new(0);
            let atomic = best_ns_per(n * 16, || {
                for _ in 0..n * 16 {
                    counter.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                }
            });
            black_box(counter.into_inner());
            println!("pair_ns {pair:.1}");
            println!("atomic_ns {atomic:.2}");
        }
        other => {
            eprintln!("usage: ctl_loop add-del|mod|timing [N] (not {other:?})");
            std::process::exit(2);
        }
    }
    assert_eq!(t.user().watches(), usize::from(mode == "mod"));
}

/// The best of 5 timings of `f`, in ns per one of its `per` operations.
fn best_ns_per(per: u32, mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let start = std::time::Instant::now();
            f();
            start.elapsed().as_nanos() as f64 / f64::from(per)
        })
        .fold(f64::INFINITY, f64::min)
}

/// The warm-up of `add-del`, outside the measured function.
fn measured_add_del_warm(t: &FdTable, ep: i32, fd: i32) {
    let ev = EpollEvent::new(Events::IN, 1);
    for _ in 0..WARM_UP {
        t.epoll_ctl(ep, EPOLL_CTL_ADD, fd, Some(&ev)).expect("ADD");
        t.epoll_ctl(ep, EPOLL_CTL_DEL, fd, None).expect("DEL");
    }
}
