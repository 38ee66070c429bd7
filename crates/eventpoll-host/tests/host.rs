//! Host descriptors through the engine, for every driver: level/edge/one-shot delivery,
//! prompt wakeups of blocked waiters (host activity, in-process activity), signals,
//! non-pollable files, nesting, batching at scale.

use eventpoll::{Epoll, EpollEvent, Errno, Events, Interest};
use eventpoll_host::{DriverKind, Host, HostEpoll};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KINDS: [DriverKind; 3] = [
    DriverKind::KernelEpoll,
    DriverKind::IoUring,
    DriverKind::Poll,
];

struct Pipe {
    r: i32,
    w: i32,
}

impl Pipe {
    fn new() -> Pipe {
        let mut fds = [0; 2];
        // SAFETY: valid array of two ints.
        assert_eq!(
            unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) },
            0
        );
        Pipe {
            r: fds[0],
            w: fds[1],
        }
    }
    fn write(&self, n: usize) -> isize {
        let buf = vec![b'x'; n];
        // SAFETY: buf is valid for n bytes.
        unsafe { libc::write(self.w, buf.as_ptr().cast(), n) }
    }
    fn read(&self, n: usize) -> isize {
        let mut buf = vec![0u8; n];
        // SAFETY: buf is valid and writable for n bytes.
        unsafe { libc::read(self.r, buf.as_mut_ptr().cast(), n) }
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // SAFETY: our own descriptors.
        unsafe {
            libc::close(self.r);
            libc::close(self.w);
        }
    }
}

fn harvest(
    hep: &HostEpoll,
    max: usize,
    timeout: Option<Duration>,
) -> Result<Vec<(u64, Events)>, Errno> {
    let mut out = vec![EpollEvent::default(); max];
    let n = hep.wait(&mut out, max, timeout, None)?;
    Ok(out[..n].iter().map(|e| (e.data(), e.events())).collect())
}

/// The host's own descriptors that are io_uring instances, each with its file's inode.
fn ring_files(host: &Host) -> Vec<(i32, u64)> {
    let mut own = Vec::new();
    host.own_fds(&mut own);
    own.into_iter()
        .filter(|fd| {
            std::fs::read_link(format!("/proc/self/fd/{fd}"))
                .is_ok_and(|l| l.to_string_lossy() == "anon_inode:[io_uring]")
        })
        .map(|fd| {
            // SAFETY: `st` is a plain struct the kernel fills; `fd` is one of the host's.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            assert_eq!(unsafe { libc::fstat(fd, &mut st) }, 0);
            (fd, st.st_ino)
        })
        .collect()
}

fn now(hep: &HostEpoll) -> Vec<(u64, Events)> {
    harvest(hep, 64, Some(Duration::ZERO)).unwrap()
}

fn setup(kind: DriverKind) -> (Host, HostEpoll) {
    let host = Host::new(kind).unwrap();
    let hep = HostEpoll::new(host.clone()).unwrap();
    (host, hep)
}

#[test]
fn level_triggered_reports_until_drained() {
    for kind in KINDS {
        let (host, hep) = setup(kind);
        let p = Pipe::new();
        let r = host.open(p.r).unwrap();
        hep.epoll().add(&r, Interest::READABLE, 1).unwrap();
        assert!(now(&hep).is_empty(), "{kind:?}");
        assert_eq!(p.write(3), 3);
        assert_eq!(now(&hep), vec![(1, Events::IN)], "{kind:?}");
        assert_eq!(
            now(&hep),
            vec![(1, Events::IN)],
            "{kind:?}: LT reports again"
        );
        assert_eq!(p.read(10), 3);
        assert!(now(&hep).is_empty(), "{kind:?}: drained");
        drop(r);
    }
}

#[test]
fn edge_triggered_with_the_kernel_and_uring_drivers_is_linux_edge() {
    for kind in [DriverKind::KernelEpoll, DriverKind::IoUring] {
        edge_triggered_is_linux_edge(kind);
    }
}

fn edge_triggered_is_linux_edge(kind: DriverKind) {
    let (host, hep) = setup(kind);
    let p = Pipe::new();
    let r = host.open(p.r).unwrap();
    hep.epoll().add(&r, Interest::READABLE.edge(), 1).unwrap();
    p.write(1);
    assert_eq!(now(&hep), vec![(1, Events::IN)]);
    assert!(now(&hep).is_empty(), "once per wakeup");
    // Linux: every write wakes the reader, so a second write reports again.
    p.write(1);
    assert_eq!(now(&hep), vec![(1, Events::IN)]);
    assert!(now(&hep).is_empty());
    // A read does not wake the reader: nothing new.
    p.read(1);
    assert!(now(&hep).is_empty());
    p.read(100);
    p.write(1);
    assert_eq!(now(&hep), vec![(1, Events::IN)]);
    drop(r);
}

#[test]
fn edge_triggered_with_the_poll_driver_never_loses_an_edge() {
    let (host, hep) = setup(DriverKind::Poll);
    let p = Pipe::new();
    let r = host.open(p.r).unwrap();
    hep.epoll().add(&r, Interest::READABLE.edge(), 1).unwrap();
    assert!(now(&hep).is_empty());
    p.write(1);
    assert_eq!(now(&hep), vec![(1, Events::IN)]);
    // Still readable after a report: reported again (levels only; see driver::poll).
    assert_eq!(now(&hep), vec![(1, Events::IN)]);
    // Drained and refilled between two waits, unseen: still an edge.
    p.read(100);
    p.write(1);
    assert_eq!(now(&hep), vec![(1, Events::IN)]);
    p.read(100);
    assert!(now(&hep).is_empty());
    assert!(now(&hep).is_empty(), "nothing without a rising bit");
    p.write(1);
    assert_eq!(now(&hep), vec![(1, Events::IN)]);
    drop(r);
}

#[test]
fn oneshot_is_rearmed_by_mod() {
    for kind in KINDS {
        let (host, hep) = setup(kind);
        let p = Pipe::new();
        let r = host.open(p.r).unwrap();
        hep.epoll()
            .add(&r, Interest::READABLE.oneshot(), 5)
            .unwrap();
        p.write(1);
        assert_eq!(now(&hep), vec![(5, Events::IN)]);
        assert!(now(&hep).is_empty(), "{kind:?}: disabled");
        hep.epoll()
            .modify(&r, Interest::READABLE.oneshot(), 6)
            .unwrap();
        assert_eq!(now(&hep), vec![(6, Events::IN)], "{kind:?}: re-armed");
        drop(r);
    }
}

#[test]
fn a_blocked_waiter_is_woken_promptly_by_host_activity() {
    for kind in KINDS {
        let (host, hep) = setup(kind);
        let p = Arc::new(Pipe::new());
        let r = host.open(p.r).unwrap();
        hep.epoll().add(&r, Interest::READABLE, 9).unwrap();
        let p2 = p.clone();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let t = Instant::now();
            p2.write(1);
            t
        });
        let got = harvest(&hep, 8, Some(Duration::from_secs(10))).unwrap();
        let woke = Instant::now();
        let wrote = writer.join().unwrap();
        assert_eq!(got, vec![(9, Events::IN)], "{kind:?}");
        let latency = woke.duration_since(wrote);
        assert!(
            latency < Duration::from_millis(500),
            "{kind:?}: woken after {latency:?}"
        );
        drop(r);
    }
}

#[test]
fn a_blocked_waiter_is_woken_by_in_process_objects_too() {
    for kind in KINDS {
        let (host, hep) = setup(kind);
        let p = Pipe::new();
        let r = host.open(p.r).unwrap();
        hep.epoll().add(&r, Interest::READABLE, 1).unwrap();
        let (er, ew) = eventpoll::objects::pipe::pipe(0);
        hep.epoll().add(&er, Interest::READABLE, 2).unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            ew.write(b"z").unwrap();
            ew
        });
        let got = harvest(&hep, 8, Some(Duration::from_secs(10))).unwrap();
        assert_eq!(got, vec![(2, Events::IN)], "{kind:?}");
        drop(t.join().unwrap());
        drop(r);
    }
}

#[test]
fn timeouts_expire() {
    for kind in KINDS {
        let (_host, hep) = setup(kind);
        let t = Instant::now();
        assert_eq!(
            harvest(&hep, 4, Some(Duration::from_millis(30))),
            Ok(vec![])
        );
        assert!(t.elapsed() >= Duration::from_millis(30), "{kind:?}");
    }
}

#[test]
fn a_host_that_goes_closes_the_descriptors_it_made_for_its_waiters() {
    for kind in KINDS {
        let (host, hep) = setup(kind);
        // A blocking wait takes a waker (an eventfd, and a relay epoll where it can).
        assert_eq!(harvest(&hep, 4, Some(Duration::from_millis(1))), Ok(vec![]));
        let mut own = Vec::new();
        host.own_fds(&mut own);
        assert!(!own.is_empty(), "{kind:?}");
        // A second number for each file: it keeps the file, and tells whether the host's
        // number still names it once the host is gone.
        // SAFETY: duplicates of the host's live descriptors.
        let kept: Vec<i32> = own.iter().map(|&fd| unsafe { libc::dup(fd) }).collect();
        assert!(kept.iter().all(|&d| d >= 0));
        drop(hep);
        drop(host);
        for (&fd, &d) in own.iter().zip(&kept) {
            // Closed: the number is free, or another test's file took it meanwhile.
            assert_ne!(
                eventpoll_host::sys::same_file(fd, d),
                Some(true),
                "{kind:?}: descriptor {fd} outlived its host"
            );
            // SAFETY: our duplicate.
            unsafe { libc::close(d) };
        }
    }
}

extern "C" fn on_usr1(_: libc::c_int) {}

#[test]
fn a_signal_handler_interrupts_a_blocked_wait() {
    // SAFETY: installing a handler that does nothing, without SA_RESTART.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_usr1 as extern "C" fn(libc::c_int) as usize;
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
    }
    for kind in KINDS {
        let (_host, hep) = setup(kind);
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() } as usize;
        let done = Arc::new(AtomicBool::new(false));
        let d2 = done.clone();
        let killer = std::thread::spawn(move || {
            while !d2.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
                // SAFETY: the target thread is alive until `done` is set.
                unsafe { libc::pthread_kill(me as libc::pthread_t, libc::SIGUSR1) };
            }
        });
        let r = harvest(&hep, 4, Some(Duration::from_secs(10)));
        done.store(true, Ordering::SeqCst);
        killer.join().unwrap();
        assert_eq!(r, Err(Errno::EINTR), "{kind:?}");
    }
}

#[test]
fn regular_files_are_not_pollable() {
    for kind in KINDS {
        let host = Host::new(kind).unwrap();
        let path = std::env::temp_dir().join(format!("eventpoll-host-{}", std::process::id()));
        let f = std::fs::File::create(&path).unwrap();
        let file = host.open(std::os::fd::AsRawFd::as_raw_fd(&f)).unwrap();
        let ep = Epoll::new();
        assert_eq!(
            ep.add(&file, Interest::READABLE, 0),
            Err(Errno::EPERM),
            "{kind:?}"
        );
        drop(file);
        drop(f);
        let _ = std::fs::remove_file(path);
        assert_eq!(host.open(-1).err(), Some(Errno::EBADF), "{kind:?}");
        // A number that cannot be open (at the soft limit; a closed number could be
        // reused by a test running beside this one): EBADF from the registration.
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a valid rlimit to fill.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        let closed = i32::try_from(lim.rlim_cur).unwrap_or(i32::MAX);
        assert_eq!(host.open(closed).err(), Some(Errno::EBADF), "{kind:?}");
        assert_eq!(
            host.open_unwatched(closed).err(),
            Some(Errno::EBADF),
            "{kind:?}"
        );
    }
}

#[test]
fn sockets_report_hangups() {
    for kind in KINDS {
        let (host, hep) = setup(kind);
        let mut sv = [0; 2];
        // SAFETY: valid array of two ints.
        assert_eq!(
            unsafe {
                libc::socketpair(
                    libc::AF_UNIX,
                    libc::SOCK_STREAM | libc::SOCK_NONBLOCK,
                    0,
                    sv.as_mut_ptr(),
                )
            },
            0
        );
        let a = host.open(sv[0]).unwrap();
        hep.epoll()
            .add(&a, Interest::READABLE | Interest::READ_CLOSED, 3)
            .unwrap();
        assert!(now(&hep).is_empty());
        // SAFETY: our descriptor.
        unsafe { libc::close(sv[1]) };
        assert_eq!(
            harvest(&hep, 4, Some(Duration::from_secs(5))).unwrap(),
            vec![(3, Events::IN | Events::HUP | Events::RDHUP)],
            "{kind:?}"
        );
        drop(a);
        // SAFETY: our descriptor.
        unsafe { libc::close(sv[0]) };
    }
}

#[test]
fn host_items_nest_inside_an_outer_instance() {
    for kind in KINDS {
        let (host, inner) = setup(kind);
        let outer = HostEpoll::new(host.clone()).unwrap();
        outer
            .epoll()
            .add(inner.epoll().file(), Interest::READABLE, 100)
            .unwrap();
        let p = Pipe::new();
        let r = host.open(p.r).unwrap();
        inner.epoll().add(&r, Interest::READABLE, 1).unwrap();
        assert!(now(&outer).is_empty());
        p.write(1);
        assert_eq!(
            harvest(&outer, 4, Some(Duration::from_secs(5))).unwrap(),
            vec![(100, Events::IN)],
            "{kind:?}"
        );
        assert_eq!(now(&inner), vec![(1, Events::IN)]);
        drop(r);
    }
}

#[test]
fn a_keyless_wakeup_reaches_items_that_watch_none_of_the_files_bits() {
    // Linux: a pipe resize wakes the writers without a key, which queues every item of
    // theirs; an inner instance so woken wakes an outer edge-triggered item again (the
    // inner instance still has a ready item: the eventfd).
    for kind in KINDS {
        let (host, inner) = setup(kind);
        let outer = HostEpoll::new(host.clone()).unwrap();
        let p = Pipe::new();
        // SAFETY: plain eventfd creation.
        let efd = unsafe { libc::eventfd(1, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        assert!(efd >= 0);
        let c = host.open(efd).unwrap();
        let w = host.open(p.w).unwrap();
        let r = host.open(p.r).unwrap();
        inner.epoll().add(&c, Interest::WRITABLE, 6).unwrap();
        inner
            .epoll()
            .add(&w, Interest::READABLE.oneshot(), 7)
            .unwrap();
        inner.epoll().add(&r, Interest::READABLE, 8).unwrap();
        outer
            .epoll()
            .add(inner.epoll().file(), Interest::READABLE.edge(), 100)
            .unwrap();
        assert_eq!(now(&outer), vec![(100, Events::IN)], "{kind:?}");
        assert!(now(&outer).is_empty(), "{kind:?}");
        host.pump();
        // SAFETY: integer argument.
        assert_eq!(unsafe { libc::fcntl(p.r, libc::F_SETPIPE_SZ, 8192) }, 8192);
        assert_eq!(host.wake_keyless(p.r, true), 1, "{kind:?}: the writer only");
        assert_eq!(now(&outer), vec![(100, Events::IN)], "{kind:?}");
        assert_eq!(now(&inner), vec![(6, Events::OUT)], "{kind:?}");
        drop((c, w, r));
        // SAFETY: our own descriptor.
        unsafe { libc::close(efd) };
    }
}

#[test]
fn uring_driver_owned_by_one_thread_switches_to_shared_when_another_comes() {
    // Owned mode (single issuer, deferred task work): the creating thread alone uses the
    // ring. Its blocked wait is woken by a wakeup another thread causes; a second thread
    // that registers a descriptor switches the driver to shared mode, which wakes the
    // owner's sleep, and nothing is lost.
    let Ok(host) = Host::new(DriverKind::IoUring) else {
        return; // io_uring not allowed here: the driver is not used
    };
    let hep = Arc::new(HostEpoll::new(host.clone()).unwrap());
    if host.driver().mode() != "owned" {
        eprintln!("owned mode not granted (kernel before 6.1?): shared mode only");
    }
    let p = Pipe::new();
    let r = host.open(p.r).unwrap();
    hep.epoll().add(&r, Interest::READABLE, 1).unwrap();
    let w = p.w;
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        // SAFETY: writing one byte from a valid buffer.
        unsafe { libc::write(w, b"x".as_ptr().cast(), 1) };
    });
    let t0 = Instant::now();
    assert_eq!(
        harvest(&hep, 4, Some(Duration::from_secs(5))).unwrap(),
        vec![(1, Events::IN)]
    );
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "woken late: {:?}",
        t0.elapsed()
    );
    writer.join().unwrap();
    assert_eq!(p.read(8), 1);
    let owned = host.driver().mode() == "owned";
    if owned {
        // The ring under its own number and the owner's sleep number.
        assert_eq!(ring_files(&host).len(), 2, "{:?}", ring_files(&host));
    }
    // Another thread registers a second pipe while this one sleeps.
    let q = Pipe::new();
    let (qr, qw) = (q.r, q.w);
    let (host2, hep2) = (host.clone(), hep.clone());
    let other = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        let f = host2.open(qr).unwrap();
        hep2.epoll().add(&f, Interest::READABLE, 2).unwrap();
        // SAFETY: writing one byte from a valid buffer.
        unsafe { libc::write(qw, b"y".as_ptr().cast(), 1) };
        f
    });
    let t0 = Instant::now();
    let got = harvest(&hep, 4, Some(Duration::from_secs(5))).unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "woken late: {:?}",
        t0.elapsed()
    );
    let f2 = other.join().unwrap();
    let got = if got.is_empty() { now(&hep) } else { got };
    assert_eq!(got, vec![(2, Events::IN)]);
    if owned {
        assert_eq!(host.driver().mode(), "shared");
        // The switch came while the owner slept on the sleep number: once awake, it moved
        // that number to the new ring, so the old ring (and its polls, which hold their
        // files) is gone.
        let rings = ring_files(&host);
        assert_eq!(rings.len(), 2, "{rings:?}");
        assert_eq!(
            rings[0].1, rings[1].1,
            "the sleep number kept the old ring: {rings:?}"
        );
    }
    // Both descriptors keep working in shared mode (armed by the thread that switched,
    // which has exited: the first wakeup of each is seen once the kernel cancels that
    // thread's polls, a few milliseconds later, and the next pump arms them again).
    assert_eq!(q.read(8), 1);
    p.write(1);
    let t0 = Instant::now();
    assert_eq!(
        harvest(&hep, 4, Some(Duration::from_secs(5))).unwrap(),
        vec![(1, Events::IN)]
    );
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "woken late: {:?}",
        t0.elapsed()
    );
    assert_eq!(p.read(8), 1);
    q.write(1);
    assert_eq!(
        harvest(&hep, 4, Some(Duration::from_secs(5))).unwrap(),
        vec![(2, Events::IN)]
    );
    drop((r, f2));
}

#[test]
fn many_descriptors_few_ready() {
    for kind in KINDS {
        let (host, hep) = setup(kind);
        let pipes: Vec<Pipe> = (0..300).map(|_| Pipe::new()).collect();
        let files: Vec<_> = pipes.iter().map(|p| host.open(p.r).unwrap()).collect();
        for (i, f) in files.iter().enumerate() {
            hep.epoll().add(f, Interest::READABLE, i as u64).unwrap();
        }
        for i in [7, 150, 299] {
            pipes[i].write(1);
        }
        let mut got: Vec<u64> = now(&hep).iter().map(|e| e.0).collect();
        got.sort();
        assert_eq!(got, vec![7, 150, 299], "{kind:?}");
        // Round-robin with maxevents 1 through the three level-triggered items.
        let seq: Vec<u64> = (0..3)
            .map(|_| harvest(&hep, 1, Some(Duration::ZERO)).unwrap()[0].0)
            .collect();
        let mut sorted = seq.clone();
        sorted.sort();
        assert_eq!(sorted, vec![7, 150, 299], "{kind:?}: fair");
        drop(files);
    }
}

#[test]
fn releasing_the_description_deregisters_it() {
    for kind in KINDS {
        let (host, hep) = setup(kind);
        let p = Pipe::new();
        let r = host.open(p.r).unwrap();
        hep.epoll().add(&r, Interest::READABLE, 1).unwrap();
        assert_eq!(hep.epoll().len(), 1);
        drop(r); // last handle: the item goes, the driver forgets the descriptor
        assert_eq!(hep.epoll().len(), 0);
        p.write(1);
        assert!(now(&hep).is_empty(), "{kind:?}");
        assert_eq!(host.pump(), 0, "{kind:?}: nothing registered");
    }
}

#[test]
fn several_threads_blocked_on_one_instance() {
    for kind in KINDS {
        let (host, hep) = setup(kind);
        let p = Arc::new(Pipe::new());
        let r = host.open(p.r).unwrap();
        hep.epoll().add(&r, Interest::READABLE, 4).unwrap();
        // Level-triggered: every blocked waiter eventually sees the ready pipe.
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let hep = hep.clone();
                std::thread::spawn(move || harvest(&hep, 4, Some(Duration::from_secs(10))))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        p.write(1);
        for w in waiters {
            assert_eq!(w.join().unwrap(), Ok(vec![(4, Events::IN)]), "{kind:?}");
        }
        // Edge-triggered, kernel and io_uring drivers: one write, one report among the
        // waiters.
        if kind != DriverKind::Poll {
            p.read(10);
            hep.epoll()
                .modify(&r, Interest::READABLE.edge(), 5)
                .unwrap();
            let waiters: Vec<_> = (0..3)
                .map(|_| {
                    let hep = hep.clone();
                    std::thread::spawn(move || harvest(&hep, 4, Some(Duration::from_millis(400))))
                })
                .collect();
            std::thread::sleep(Duration::from_millis(50));
            p.write(1);
            let got: usize = waiters
                .into_iter()
                .map(|w| w.join().unwrap().unwrap().len())
                .sum();
            assert_eq!(got, 1, "one edge, one report");
        }
        drop(r);
    }
}

#[test]
fn uring_driver_sees_wakeups_that_leave_no_readiness() {
    // Linux: pipes 1, 2 and 3 are woken in that order, 2 is drained and written again.
    // Its item kept its place on the ready list from the first wakeup: [1, 2, 3]. The
    // kernel-epoll driver, asked in between (every eventpoll call pumps), saw no trace
    // of 2's first wakeup and puts it last.
    for (kind, want) in [
        (DriverKind::IoUring, vec![1, 2, 3]),
        (DriverKind::KernelEpoll, vec![1, 3, 2]),
    ] {
        let (host, hep) = setup(kind);
        let pipes: Vec<Pipe> = (0..3).map(|_| Pipe::new()).collect();
        let files: Vec<_> = pipes.iter().map(|p| host.open(p.r).unwrap()).collect();
        for (i, f) in files.iter().enumerate() {
            hep.epoll()
                .add(f, Interest::READABLE, i as u64 + 1)
                .unwrap();
        }
        for p in &pipes {
            p.write(1);
        }
        pipes[1].read(10);
        host.pump();
        pipes[1].write(1);
        let got: Vec<u64> = now(&hep).into_iter().map(|(d, _)| d).collect();
        assert_eq!(got, want, "{kind:?}");
    }
}

#[test]
fn uring_driver_reports_a_zero_length_eventfd_write() {
    // An eventfd write of 0 wakes the eventfd (key IN) without changing its count:
    // Linux reports an edge-triggered item again.
    let (host, hep) = setup(DriverKind::IoUring);
    // SAFETY: plain call.
    let efd = unsafe { libc::eventfd(1, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    assert!(efd >= 0);
    let f = host.open(efd).unwrap();
    hep.epoll().add(&f, Interest::READABLE.edge(), 7).unwrap();
    assert_eq!(now(&hep), vec![(7, Events::IN)], "ready when added");
    assert!(now(&hep).is_empty());
    let zero = 0u64.to_ne_bytes();
    // SAFETY: 8 valid bytes.
    assert_eq!(unsafe { libc::write(efd, zero.as_ptr().cast(), 8) }, 8);
    assert_eq!(now(&hep), vec![(7, Events::IN)], "a write of 0 wakes");
    drop(f);
    // SAFETY: our descriptor.
    unsafe { libc::close(efd) };
}

#[test]
fn uring_driver_rearms_polls_of_a_thread_that_exited() {
    // The kernel cancels the io_uring polls a thread armed when it exits; the driver arms
    // them again and loses no wakeup.
    let (host, hep) = setup(DriverKind::IoUring);
    let p = Pipe::new();
    let r = {
        let (host, hep, fd) = (host.clone(), hep.clone(), p.r);
        std::thread::spawn(move || {
            let r = host.open(fd).unwrap();
            hep.epoll().add(&r, Interest::READABLE.edge(), 3).unwrap();
            r
        })
        .join()
        .unwrap()
    };
    p.write(1);
    let got = harvest(&hep, 8, Some(Duration::from_secs(5))).unwrap();
    assert_eq!(got, vec![(3, Events::IN)]);
    p.write(1);
    let got = harvest(&hep, 8, Some(Duration::from_secs(5))).unwrap();
    assert_eq!(got, vec![(3, Events::IN)], "still watched after the re-arm");
    drop(r);
}

#[test]
fn uring_driver_survives_a_full_completion_queue() {
    // More wakeups between two pumps than the completion queue holds: the multishot
    // polls end, the driver arms them again, and edges keep coming.
    let (host, hep) = setup(DriverKind::IoUring);
    let pipes: Vec<Pipe> = (0..4).map(|_| Pipe::new()).collect();
    let files: Vec<_> = pipes.iter().map(|p| host.open(p.r).unwrap()).collect();
    for (i, f) in files.iter().enumerate() {
        hep.epoll()
            .add(f, Interest::READABLE.edge(), i as u64)
            .unwrap();
    }
    for _ in 0..5000 {
        for p in &pipes {
            assert_eq!(p.write(1), 1);
        }
    }
    let mut got: Vec<u64> = now(&hep).into_iter().map(|(d, _)| d).collect();
    got.sort_unstable();
    assert_eq!(got, vec![0, 1, 2, 3]);
    for round in 0..3 {
        for p in &pipes {
            p.read(1 << 16);
        }
        assert!(now(&hep).is_empty(), "round {round}");
        pipes[2].write(1);
        assert_eq!(now(&hep), vec![(2, Events::IN)], "round {round}");
    }
    drop(files);
}

#[test]
fn uring_driver_releases_the_file_when_deregistered() {
    // An armed poll holds a reference to the file: deregistering (the engine's release)
    // must drop it at once, so closing the program's last descriptor closes the pipe.
    let host = Host::new(DriverKind::IoUring).unwrap();
    let p = Pipe::new();
    let w = host.open(p.w).unwrap();
    let hep = HostEpoll::new(host.clone()).unwrap();
    hep.epoll().add(&w, Interest::WRITABLE, 1).unwrap();
    drop(w);
    let (r, wfd) = (p.r, p.w);
    std::mem::forget(p);
    // SAFETY: our descriptor, closed once.
    unsafe { libc::close(wfd) };
    let mut pfd = libc::pollfd {
        fd: r,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    assert_eq!(unsafe { libc::poll(&mut pfd, 1, 0) }, 1);
    assert_eq!(pfd.revents & libc::POLLHUP, libc::POLLHUP, "writer gone");
    // SAFETY: our descriptor.
    unsafe { libc::close(r) };
}

/// How the registering thread of `registration_race` makes its descriptor ready: where the
/// write goes relative to the first `EPOLL_CTL_ADD` (its `ctl_scope`).
#[derive(Clone, Copy, Debug)]
enum Ready {
    /// Written before the ctl: ready when the driver arms it (the arming reports it).
    Before,
    /// Written inside the ctl, after the description is registered (armed) and before the
    /// engine's ADD polls it.
    Between,
    /// Written after the ctl.
    After,
    /// Not written: a socket watched for output, ready for it when armed.
    Writable,
}

/// A socketpair (stream, non-blocking, close-on-exec).
fn socketpair() -> (i32, i32) {
    let mut fds = [0; 2];
    // SAFETY: valid array of two ints.
    assert_eq!(
        unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        },
        0
    );
    (fds[0], fds[1])
}

/// Guards the arming answer of a first `EPOLL_CTL_ADD` (`eventpoll_host::ctl_scope`: the
/// ADD's poll takes the mask the driver's arming reported instead of a `poll(2)`) against
/// a pump by another thread — the shape that stalled Node under `EVENTPOLL_DRIVER=epoll`
/// (its second event loop, blocked on another instance of the same host, pumps at every
/// host wakeup).
///
/// Thread B is blocked in a wait on instance 2 of a host, so it watches the driver and
/// pumps whenever the host reports activity. Thread A, in a loop, makes a fresh pipe or
/// socketpair, makes it ready before, during or after the ctl, registers it and ADDs it to
/// instance 1 inside a `ctl_scope` (as `libeventpoll`'s `epoll_ctl` does), and checks that
/// a zero-timeout wait on instance 1 reports it (level-triggered). If B's pump takes the
/// arming's report as a wakeup of the file before A's registration looks for it (no item
/// watches the file yet, so the wakeup goes nowhere), an answer "not ready" would lose the
/// readiness for good: the kernel-epoll driver therefore keeps no answer (c5e6cf9), and the
/// io_uring driver holds its ring's mutex from the arming to the pump that takes the
/// report. Reverting c5e6cf9 makes this test fail (for the kernel-epoll driver), as does
/// letting go of the ring's mutex between the io_uring driver's arming and that pump.
///
/// A write after the ctl (`Ready::After`) must be reported by the zero-timeout wait that
/// follows at once too, though B's pump may be delivering it: a wait waits for pumps in
/// flight (see `a_zero_timeout_wait_sees_its_own_write_while_another_thread_pumps`);
/// before the kernel-epoll driver did, 1 to 4 rounds in 20,000 missed it.
///
/// The io_uring driver runs in shared mode here whichever thread made it (owned mode lets
/// one thread alone pump, so the race needs shared mode): owned by A, B's first wait
/// switches it; owned by B, A's first registration does.
#[test]
fn a_first_add_is_not_lost_to_a_pump_by_a_thread_blocked_on_another_instance() {
    let mut cases = vec![(DriverKind::KernelEpoll, false)];
    if Host::new(DriverKind::IoUring).is_ok() {
        cases.push((DriverKind::IoUring, false));
        cases.push((DriverKind::IoUring, true));
    }
    for (kind, made_by_waiter) in cases {
        registration_race(kind, made_by_waiter);
    }
}

/// Thread B of the race tests below: blocked again and again in a wait on an instance
/// whose one pipe never becomes ready, so that it watches the driver and pumps at every
/// host wakeup. `host`: the host to use, or `None` to make one of `kind` in B (which then
/// owns an io_uring driver). Returns the host once B has registered its pipe, the flag
/// that stops B, and B's handle (how many waits it made).
fn spawn_idle_waiter(
    kind: DriverKind,
    host: Option<Host>,
) -> (Host, Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let host = host.unwrap_or_else(|| Host::new(kind).unwrap());
            let hep2 = HostEpoll::new(host.clone()).unwrap();
            let idle = Pipe::new();
            let f = host.open(idle.r).unwrap();
            hep2.epoll().add(&f, Interest::READABLE, 0).unwrap();
            tx.send(host).unwrap();
            let mut waits = 0u64;
            while !stop.load(Ordering::Acquire) {
                let got = harvest(&hep2, 4, Some(Duration::from_millis(20))).unwrap();
                assert!(got.is_empty(), "instance 2: {got:?}");
                waits += 1;
            }
            drop(f);
            waits
        })
    };
    (rx.recv().unwrap(), stop, waiter)
}

/// One driver's run of the test above; `made_by_waiter`: thread B creates the host.
fn registration_race(kind: DriverKind, made_by_waiter: bool) {
    const ROUNDS: usize = 20_000;
    const BUDGET: Duration = Duration::from_millis(1500);
    let made_here = (!made_by_waiter).then(|| Host::new(kind).unwrap());
    let (host, stop, waiter) = spawn_idle_waiter(kind, made_here);
    let hep1 = HostEpoll::new(host.clone()).unwrap();
    // Let B block before the first round.
    std::thread::sleep(Duration::from_millis(20));
    let shapes = [
        (false, Ready::Before),
        (true, Ready::Before),
        (true, Ready::Writable),
        (false, Ready::Between),
        (true, Ready::Between),
        (false, Ready::After),
    ];
    let t0 = Instant::now();
    let mut rounds = 0;
    let mut late = 0;
    while rounds < ROUNDS && t0.elapsed() < BUDGET {
        let (socket, ready) = shapes[rounds % shapes.len()];
        let (rfd, wfd) = if socket {
            socketpair()
        } else {
            let mut fds = [0; 2];
            // SAFETY: valid array of two ints.
            assert_eq!(
                unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) },
                0
            );
            (fds[0], fds[1])
        };
        let write = || {
            // SAFETY: writing one byte from a valid buffer.
            assert_eq!(unsafe { libc::write(wfd, b"x".as_ptr().cast(), 1) }, 1);
        };
        let (interest, want) = match ready {
            Ready::Writable => (Interest::WRITABLE, Events::OUT),
            _ if socket => (
                Interest::from_events(Events::IN | Events::OUT),
                Events::IN | Events::OUT,
            ),
            _ => (Interest::READABLE, Events::IN),
        };
        let data = rounds as u64 + 1;
        if let Ready::Before = ready {
            write();
        }
        let f = eventpoll_host::ctl_scope(|| {
            let f = host.open_for(rfd, interest.events()).unwrap();
            if let Ready::Between = ready {
                write();
            }
            hep1.epoll().add(&f, interest, data).unwrap();
            f
        });
        if let Ready::After = ready {
            write();
        }
        let mut got = now(&hep1);
        if got.is_empty() {
            if let Ready::After = ready {
                // A wakeup that came after the ADD reaches the item through its wait
                // queue; B's pump may be delivering it right now: late, not lost (counted,
                // and a failure below — the wait must wait for pumps in flight).
                late += 1;
                got = harvest(&hep1, 64, Some(Duration::from_secs(2))).unwrap();
            }
        }
        assert_eq!(
            got,
            vec![(data, want)],
            "{kind:?} (host made by {}), round {rounds}: {ready:?}, {}: the ADD lost its readiness",
            if made_by_waiter { "B" } else { "A" },
            if socket { "socket" } else { "pipe" },
        );
        drop(f);
        // SAFETY: our own descriptors, closed once.
        unsafe {
            libc::close(rfd);
            libc::close(wfd);
        }
        rounds += 1;
    }
    let elapsed = t0.elapsed();
    stop.store(true, Ordering::Release);
    let waits = waiter.join().unwrap();
    eprintln!(
        "{kind:?} (mode {:?}, host made by {}): {rounds} rounds in {elapsed:?}, {waits} waits of B, {late} reports after the ADD came late",
        host.driver().mode(),
        if made_by_waiter { "B" } else { "A" },
    );
    assert!(rounds >= 100, "{kind:?}: only {rounds} rounds");
    assert_eq!(
        late, 0,
        "{kind:?}: a zero-timeout wait missed a wakeup another thread's pump held"
    );
}

/// A zero-timeout wait right after a `write` of the waiting thread reports it, even while
/// another thread's pump is delivering: Linux's `epoll_wait(timeout 0)` after a `write`
/// returned sees the wakeup the write made, whoever else waits on the host.
///
/// Thread B is blocked in a wait on instance 2 of a host (a pipe that never becomes ready),
/// so it watches the driver and pumps at every host wakeup. Thread A watches a pipe in
/// instance 1 (level-triggered) and, in a loop, writes a byte to it, spins a few
/// microseconds (a different delay each round, so that A's own pump meets B's at every
/// point of it), waits with a zero timeout — which must report the pipe — and reads the
/// byte back. A wakeup B's pump has taken from the host but not yet delivered when A pumps
/// is invisible to A's pump: unless A's wait waits for pumps in flight, it returns 0 (a
/// "late" round here), and must not. The kernel-epoll driver closes that window by
/// announcing pumps in flight (`driver::kernel`, "Pumps in flight"; its first pumping
/// thread announces its own with plain stores, the others count theirs, so it runs with B
/// first, then A); the io_uring driver (shared mode: B registers its pipe, A its own) with
/// the ring's mutex, which a pump holds from its first reap to its last delivery and
/// which a racing pump waits for. Without the kernel-epoll driver's wait this missed 1 to
/// 262 rounds in every run (of 14,000 to 37,000 in 1 to 1.5 s).
#[test]
fn a_zero_timeout_wait_sees_its_own_write_while_another_thread_pumps() {
    // The kernel-epoll driver's first pumping thread announces its pumps its own way (see
    // `driver::kernel`): either thread first.
    let mut cases = vec![
        (DriverKind::KernelEpoll, false),
        (DriverKind::KernelEpoll, true),
    ];
    if Host::new(DriverKind::IoUring).is_ok() {
        cases.push((DriverKind::IoUring, false));
    }
    for (kind, a_first) in cases {
        own_write_race(kind, a_first);
    }
}

/// One driver's run of the test above; `a_first`: thread A pumps before B starts.
fn own_write_race(kind: DriverKind, a_first: bool) {
    const BUDGET: Duration = Duration::from_millis(1000);
    let host = Host::new(kind).unwrap();
    if a_first {
        host.pump();
    }
    let (host, stop, waiter) = spawn_idle_waiter(kind, Some(host));
    let hep1 = HostEpoll::new(host.clone()).unwrap();
    let p = Pipe::new();
    let f = host.open(p.r).unwrap();
    hep1.epoll().add(&f, Interest::READABLE, 7).unwrap();
    // Let B block before the first round.
    std::thread::sleep(Duration::from_millis(20));
    let t0 = Instant::now();
    let (mut rounds, mut late) = (0u64, 0u64);
    while t0.elapsed() < BUDGET {
        assert_eq!(p.write(1), 1);
        let spin = Instant::now();
        let delay = Duration::from_nanos(500 * (rounds % 64));
        while spin.elapsed() < delay {
            std::hint::spin_loop();
        }
        let mut got = now(&hep1);
        if got.is_empty() {
            late += 1;
            got = harvest(&hep1, 4, Some(Duration::from_secs(2))).unwrap();
        }
        assert_eq!(got, vec![(7, Events::IN)], "{kind:?}, round {rounds}");
        assert_eq!(p.read(16), 1);
        assert!(now(&hep1).is_empty(), "{kind:?}, round {rounds}: drained");
        rounds += 1;
    }
    let elapsed = t0.elapsed();
    stop.store(true, Ordering::Release);
    let waits = waiter.join().unwrap();
    eprintln!(
        "{kind:?} (mode {:?}, {} pumped first): {rounds} rounds in {elapsed:?}, {waits} waits of B, {late} zero-timeout waits missed their own write",
        host.driver().mode(),
        if a_first { "A" } else { "B" },
    );
    assert!(rounds >= 100, "{kind:?}: only {rounds} rounds");
    assert_eq!(
        late, 0,
        "{kind:?}: a zero-timeout wait missed a wakeup another thread's pump held"
    );
    drop(f);
}

/// The drivers with per-instance relays (io_uring's only for a thread that armed every
/// poll of its instance).
const RELAY_KINDS: [DriverKind; 2] = [DriverKind::KernelEpoll, DriverKind::IoUring];

/// The calling thread's id.
fn gettid() -> i32 {
    // SAFETY: no arguments.
    unsafe { libc::gettid() }
}

/// Context switches of thread `tid` of this process so far (voluntary and not).
fn switches(tid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
    status
        .lines()
        .filter(|l| l.contains("ctxt_switches:"))
        .map(|l| l.split(':').nth(1).unwrap().trim().parse::<u64>().unwrap())
        .sum()
}

/// Two threads waiting: a thread blocked on an idle instance sleeps on that instance's
/// relay (its own host descriptors), so activity of another instance's descriptors — made
/// while the other instance's thread is outside a wait, when no thread watches the whole
/// host — neither wakes it (before the relays, each such wakeup woke it: the global relay
/// stood in for the absent leader) nor makes it switch at all (io_uring: the task work of
/// instance 1's polls is its arming thread's, not the idle one's). Its own activity still
/// wakes it. (A thread that waits alone leads; once a second thread has waited, it gives
/// the lead up for its relay at its next wakeup: here the busy thread waits first.) The
/// idle thread registers its descriptor itself (io_uring: it armed the polls), first (the
/// io_uring driver's switch to shared mode arms what is registered from the switching
/// thread).
#[test]
fn an_idle_thread_is_not_woken_by_another_instances_activity() {
    for kind in RELAY_KINDS {
        idle_thread_not_woken(kind);
    }
}

fn idle_thread_not_woken(kind: DriverKind) {
    const ROUNDS: usize = 200;
    let (host, hep1) = setup(kind);
    let hep2 = HostEpoll::new(host.clone()).unwrap();
    let (p1, p2) = (Pipe::new(), Arc::new(Pipe::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let (go, gone) = std::sync::mpsc::channel();
    let idle = {
        let (host, hep2, p2) = (host.clone(), hep2.clone(), p2.clone());
        std::thread::spawn(move || {
            let f2 = host.open(p2.r).unwrap();
            hep2.epoll().add(&f2, Interest::READABLE, 2).unwrap();
            tx.send(gettid()).unwrap();
            gone.recv().unwrap();
            let got = harvest(&hep2, 4, Some(Duration::from_secs(20)));
            drop(f2);
            got
        })
    };
    let idle_tid = rx.recv().unwrap();
    let f1 = host.open(p1.r).unwrap();
    hep1.epoll().add(&f1, Interest::READABLE, 1).unwrap();
    assert_eq!(
        harvest(&hep1, 4, Some(Duration::from_millis(1))),
        Ok(vec![])
    );
    go.send(()).unwrap();
    // Let it block, and sleep once on its relay.
    let t0 = Instant::now();
    while hep2.epoll().blocked_threads() == 0 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(20));
    let before = hep2.host_wakeups();
    let switched = switches(idle_tid);
    for round in 0..ROUNDS {
        // Instance 1's activity while its thread is busy (outside any wait).
        assert_eq!(p1.write(1), 1);
        if round % 20 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(
            harvest(&hep1, 4, Some(Duration::from_secs(5))).unwrap(),
            vec![(1, Events::IN)]
        );
        assert_eq!(p1.read(16), 1);
    }
    let woken = hep2.host_wakeups() - before;
    let switched = switches(idle_tid) - switched;
    eprintln!("{kind:?}: the idle thread switched {switched} times, woken {woken} times");
    assert_eq!(
        woken, 0,
        "{kind:?}: instance 2's thread woken {woken} times for instance 1"
    );
    // Nothing should wake it; a few switches are left to chance (a migration).
    assert!(
        switched <= 3,
        "{kind:?}: instance 2's thread switched {switched} times in {ROUNDS} rounds"
    );
    assert!(hep2.relayed(), "{kind:?}: instance 2 sleeps on its relay");
    // Its own activity wakes it.
    assert_eq!(p2.write(1), 1);
    assert_eq!(idle.join().unwrap(), Ok(vec![(2, Events::IN)]));
    drop(f1);
}

/// A thread asleep on its instance's relay is woken for every wakeup of its descriptors —
/// also when the relay's callback runs before the driver's (the thread then synchronises
/// with the file's wakeup in progress and pumps again; io_uring: the poll's task work,
/// queued by then for this thread, runs as that synchronisation returns) and for a
/// descriptor added while it sleeps (the add pokes the relay; io_uring: that descriptor is
/// registered by another thread, so the instance is not relayed while it is there) —
/// while another thread makes noise on another instance. An instance that watches a
/// nested instance is not relayed (the nested instance's host activity must reach it),
/// and still works.
#[test]
fn a_relayed_thread_never_misses_its_instances_wakeups() {
    for kind in RELAY_KINDS {
        relayed_thread_never_misses(kind);
    }
}

/// A thread that registers a pipe of its own in `hep1` (item 1), tells `ready` (if given),
/// then writes, harvests and drains it until `stop`: activity of another instance, from a
/// second waiting thread.
fn spawn_noise(
    host: &Host,
    hep1: &HostEpoll,
    stop: &Arc<AtomicBool>,
    ready: Option<std::sync::mpsc::Sender<()>>,
) -> std::thread::JoinHandle<()> {
    let (host, hep1, stop) = (host.clone(), hep1.clone(), stop.clone());
    std::thread::spawn(move || {
        let p1 = Pipe::new();
        let f1 = host.open(p1.r).unwrap();
        hep1.epoll().add(&f1, Interest::READABLE, 1).unwrap();
        if let Some(r) = ready {
            r.send(()).unwrap();
        }
        while !stop.load(Ordering::Acquire) {
            p1.write(1);
            let _ = harvest(&hep1, 4, Some(Duration::from_millis(100)));
            p1.read(16);
        }
        drop(f1);
    })
}

fn relayed_thread_never_misses(kind: DriverKind) {
    const BUDGET: Duration = Duration::from_millis(2500);
    let (host, hep1) = setup(kind);
    let hep2 = HostEpoll::new(host.clone()).unwrap();
    let p2 = Arc::new(Pipe::new());
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel::<Vec<(u64, Events)>>();
    // The waiter registers instance 2's descriptor itself (io_uring: it arms its polls).
    let waiter = {
        let (host, hep2, p2, stop) = (host.clone(), hep2.clone(), p2.clone(), stop.clone());
        std::thread::spawn(move || {
            let f2 = host.open(p2.r).unwrap();
            hep2.epoll().add(&f2, Interest::READABLE.edge(), 2).unwrap();
            tx.send(vec![]).unwrap();
            while !stop.load(Ordering::Acquire) {
                let got = harvest(&hep2, 8, Some(Duration::from_millis(200))).unwrap();
                if !got.is_empty() {
                    tx.send(got).unwrap();
                }
            }
            drop(f2);
        })
    };
    assert_eq!(rx.recv(), Ok(vec![]));
    // Noise: instance 1's descriptor, written and drained by another thread.
    let noise = spawn_noise(&host, &hep1, &stop, None);
    let t0 = Instant::now();
    let mut rounds = 0u64;
    let mut relay_sleeps = 0;
    while t0.elapsed() < BUDGET {
        if rounds % 2 == 0 {
            // A wakeup of a descriptor the relay has held all along.
            let before = hep2.relay_sleeps();
            assert_eq!(p2.write(1), 1);
            let got = rx.recv_timeout(Duration::from_secs(5));
            assert_eq!(
                got,
                Ok(vec![(2, Events::IN)]),
                "{kind:?}: round {rounds}: wakeup lost"
            );
            relay_sleeps += hep2.relay_sleeps() - before;
            assert_eq!(p2.read(16), 1);
        } else {
            // A descriptor added while the thread (probably) sleeps, then written.
            let p = Pipe::new();
            let f = host.open(p.r).unwrap();
            if rounds % 4 == 1 {
                std::thread::sleep(Duration::from_micros(200));
            }
            hep2.epoll()
                .add(&f, Interest::READABLE.edge(), 1000 + rounds)
                .unwrap();
            assert_eq!(p.write(1), 1);
            let got = rx.recv_timeout(Duration::from_secs(5));
            assert_eq!(
                got,
                Ok(vec![(1000 + rounds, Events::IN)]),
                "{kind:?}: round {rounds}: wakeup of a new descriptor lost"
            );
            hep2.epoll().delete(&f).unwrap();
            drop(f);
        }
        rounds += 1;
    }
    // Relay sleeps ended by the wakeups of instance 2's own descriptor.
    assert!(
        relay_sleeps > 0,
        "{kind:?}: instance 2 never slept on its relay"
    );
    // Nested: instance 3 watches instance 1; a blocked thread there is not relayed.
    let hep3 = HostEpoll::new(host.clone()).unwrap();
    hep3.epoll()
        .add(hep1.epoll().file(), Interest::READABLE, 3)
        .unwrap();
    let got = harvest(&hep3, 4, Some(Duration::from_secs(5))).unwrap();
    assert_eq!(
        got,
        vec![(3, Events::IN)],
        "{kind:?}: nested readiness reaches the outer instance"
    );
    assert!(!hep3.relayed());
    stop.store(true, Ordering::Release);
    noise.join().unwrap();
    waiter.join().unwrap();
    eprintln!(
        "{kind:?}: {rounds} rounds, {} host wakeups of instance 2, {relay_sleeps} relay sleeps \
         across its own descriptor's wakeups",
        hep2.host_wakeups()
    );
}

/// A thread asleep on its instance's relay that probes its level-triggered descriptor
/// itself (the item its last harvest left on the ready list, drained since: a server's
/// connection between two requests) has that member made quiet on the relay for its sleep
/// (`relay`, "Probed members"), and every write is still reported once per wait, whichever
/// descriptor it goes to. A member left quiet by that thread's last sleep is loud again for
/// another thread that then sleeps on the instance without probing it: a write to it wakes
/// that thread.
#[test]
fn a_probed_member_goes_quiet_on_the_relay_and_nothing_is_missed() {
    for kind in RELAY_KINDS {
        probed_member_goes_quiet(kind);
    }
}

fn probed_member_goes_quiet(kind: DriverKind) {
    // The last round writes the first pipe (`ROUNDS - 1` is not `2 mod 3`).
    const ROUNDS: u64 = 299;
    let (host, hep1) = setup(kind);
    let hep2 = HostEpoll::new(host.clone()).unwrap();
    let p2 = Arc::new(Pipe::new());
    let p3 = Arc::new(Pipe::new());
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel::<Vec<(u64, Events)>>();
    // Handled: the waiter waits again only once the test has drained what it reported.
    let (ack, acked) = std::sync::mpsc::channel::<()>();
    // The waiter registers both descriptors itself (io_uring: it arms their polls).
    let waiter = {
        let (host, hep2, p2, p3, stop) = (
            host.clone(),
            hep2.clone(),
            p2.clone(),
            p3.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || {
            // Opened for input only, as libeventpoll opens them (a probe watches input).
            let f2 = host.open_for(p2.r, Events::IN).unwrap();
            let f3 = host.open_for(p3.r, Events::IN).unwrap();
            hep2.epoll().add(&f2, Interest::READABLE, 2).unwrap();
            hep2.epoll().add(&f3, Interest::READABLE, 3).unwrap();
            tx.send(vec![]).unwrap();
            // No timeouts anywhere: a wakeup lost would not be found by a later wait.
            while !stop.load(Ordering::Acquire) {
                let got = harvest(&hep2, 8, None).unwrap();
                tx.send(got).unwrap();
                acked.recv().unwrap();
            }
            (f2, f3)
        })
    };
    assert_eq!(rx.recv(), Ok(vec![]));
    // A second thread blocked in waits (so that instance 2's sleeps are relayed) on an
    // idle instance of its own: relayed too, it watches no other instance's activity, so
    // only instance 2's relay (or a probe) can wake a thread of instance 2.
    let idle = Arc::new(Pipe::new());
    let idler = {
        let (host, hep1, stop, idle) = (host.clone(), hep1.clone(), stop.clone(), idle.clone());
        std::thread::spawn(move || {
            let f = host.open_for(idle.r, Events::IN).unwrap();
            hep1.epoll().add(&f, Interest::READABLE, 1).unwrap();
            loop {
                let got = harvest(&hep1, 4, None).unwrap();
                if stop.load(Ordering::Acquire) {
                    break;
                }
                assert!(got.is_empty(), "instance 1: {got:?}");
            }
            drop(f);
        })
    };
    for round in 0..ROUNDS {
        let (pipe, token) = if round % 3 == 2 { (&p3, 3) } else { (&p2, 2) };
        if round % 4 == 1 {
            // Let the waiter fall asleep first (most rounds write while it is on its way).
            std::thread::sleep(Duration::from_micros(300));
        }
        assert_eq!(pipe.write(1), 1);
        let got = rx.recv_timeout(Duration::from_secs(5));
        assert_eq!(
            got,
            Ok(vec![(token, Events::IN)]),
            "{kind:?}: round {round}: wakeup lost or wrong"
        );
        assert_eq!(pipe.read(16), 1);
        ack.send(()).unwrap();
    }
    let quiet = hep2.relay_quiet_sleeps();
    assert!(quiet > 0, "{kind:?}: no relay sleep had a quiet member");
    // The waiter's next sleep probes the first pipe (quiet then); a write to the second
    // ends it, and with the waiter parked after that report, another thread sleeps on the
    // instance alone, probing the second pipe at most: the first must be loud again.
    assert_eq!(p3.write(1), 1);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)),
        Ok(vec![(3, Events::IN)])
    );
    assert_eq!(p3.read(16), 1);
    let (tx2, rx2) = std::sync::mpsc::channel();
    let other = {
        let hep2 = hep2.clone();
        std::thread::spawn(move || {
            // Level-triggered item 3 may be reported once more (not yet found drained).
            loop {
                let got = harvest(&hep2, 8, None).unwrap();
                if got.contains(&(2, Events::IN)) {
                    tx2.send(got).unwrap();
                    return;
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(p2.write(1), 1);
    let got = rx2.recv_timeout(Duration::from_secs(5));
    assert_eq!(
        got,
        Ok(vec![(2, Events::IN)]),
        "{kind:?}: the other thread missed the write"
    );
    other.join().unwrap();
    assert_eq!(p2.read(16), 1);
    stop.store(true, Ordering::Release);
    ack.send(()).unwrap();
    assert_eq!(idle.write(1), 1);
    idler.join().unwrap();
    drop(waiter.join().unwrap());
    eprintln!(
        "{kind:?}: {ROUNDS} rounds, {} relay sleeps, {quiet} with a quiet member",
        hep2.relay_sleeps()
    );
}

/// A thread that waits on `hep` (each wait bounded by `timeout`) until `stop`, and sends
/// every non-empty harvest.
fn spawn_harvester(
    hep: &HostEpoll,
    stop: &Arc<AtomicBool>,
    timeout: Duration,
) -> (
    std::thread::JoinHandle<()>,
    std::sync::mpsc::Receiver<Vec<(u64, Events)>>,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    let (hep, stop) = (hep.clone(), stop.clone());
    let waiter = std::thread::spawn(move || {
        while !stop.load(Ordering::Acquire) {
            let got = harvest(&hep, 8, Some(timeout)).unwrap();
            if !got.is_empty() {
                tx.send(got).unwrap();
            }
        }
    });
    (waiter, rx)
}

/// An io_uring host with noise on a first instance from a thread of its own (a second
/// waiting thread; its first call switches the driver to shared mode, arming what is
/// registered from it, before it returns), and a second instance for the test: the host,
/// the second instance, the noise's stop flag and its thread.
fn uring_second_instance_beside_noise() -> (
    Host,
    HostEpoll,
    Arc<AtomicBool>,
    std::thread::JoinHandle<()>,
) {
    let (host, hep1) = setup(DriverKind::IoUring);
    let hep2 = HostEpoll::new(host.clone()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (ready, is_ready) = std::sync::mpsc::channel();
    let noise = spawn_noise(&host, &hep1, &stop, Some(ready));
    is_ready.recv().unwrap();
    (host, hep2, stop, noise)
}

/// io_uring driver: an instance whose descriptor's polls were armed by another thread (it
/// registered the descriptor) cannot be relayed as they are — the completion of a wakeup
/// is posted by that thread's task work, which the blocked thread cannot run — so the
/// thread that alone sleeps on it takes them over (`Driver::adopt`) and is relayed from
/// then on; every wakeup still reaches it once, also when the writing thread runs user
/// code for a while after the write.
#[test]
fn uring_polls_armed_by_another_thread_are_taken_over_and_nothing_is_missed() {
    const ROUNDS: u64 = 400;
    let (host, hep2, stop, noise) = uring_second_instance_beside_noise();
    // This thread registers (arms) instance 2's descriptor.
    let p2 = Pipe::new();
    let f2 = host.open(p2.r).unwrap();
    hep2.epoll().add(&f2, Interest::READABLE.edge(), 2).unwrap();
    let (waiter, rx) = spawn_harvester(&hep2, &stop, Duration::from_millis(20));
    for round in 0..ROUNDS {
        if round % 8 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(p2.write(1), 1);
        if round % 2 == 1 {
            // User code, no system call: a completion of this thread's poll would wait.
            let t = Instant::now();
            while t.elapsed() < Duration::from_micros(100) {
                std::hint::spin_loop();
            }
        }
        let got = rx.recv_timeout(Duration::from_secs(5));
        assert_eq!(got, Ok(vec![(2, Events::IN)]), "round {round}: wakeup lost");
        assert_eq!(p2.read(16), 1);
    }
    // Nothing reported twice: no report is left over.
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(100)),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout)
    );
    assert!(hep2.relay_adoptions() >= 1, "the polls were not taken over");
    assert!(hep2.relay_sleeps() > 0, "instance 2 was not relayed");
    stop.store(true, Ordering::Release);
    noise.join().unwrap();
    waiter.join().unwrap();
    drop(f2);
}

/// io_uring driver, the race of a takeover: descriptor after descriptor is registered by
/// this thread (armed by it) while another thread alone waits on the instance, and written
/// at once — the waiting thread takes each one's polls over while the writes come. Every
/// write to a drained pipe is reported once (edge-triggered), none is lost, none repeated.
#[test]
fn uring_a_takeover_racing_writes_loses_and_repeats_nothing() {
    const PIPES: u64 = 60;
    const WRITES: u64 = 12;
    let (host, hep2, stop, noise) = uring_second_instance_beside_noise();
    let (waiter, rx) = spawn_harvester(&hep2, &stop, Duration::from_millis(5));
    for i in 0..PIPES {
        let p = Pipe::new();
        let f = host.open(p.r).unwrap();
        hep2.epoll()
            .add(&f, Interest::READABLE.edge(), 100 + i)
            .unwrap();
        for w in 0..WRITES {
            // Varied gaps: some writes land before the waiter's next sleeps, some during.
            let t = Instant::now();
            let gap = Duration::from_micros((i * 7 + w * 13) % 300);
            while t.elapsed() < gap {
                std::hint::spin_loop();
            }
            assert_eq!(p.write(1), 1);
            let got = rx.recv_timeout(Duration::from_secs(5));
            assert_eq!(
                got,
                Ok(vec![(100 + i, Events::IN)]),
                "pipe {i}, write {w}: lost or repeated"
            );
            assert_eq!(p.read(16), 1);
        }
        hep2.epoll().delete(&f).unwrap();
        drop(f);
    }
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(100)),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout)
    );
    eprintln!(
        "adoptions {} relay sleeps {}",
        hep2.relay_adoptions(),
        hep2.relay_sleeps()
    );
    // How many pipes are taken over depends on the timing (a pipe written while the waiter
    // prepares a sleep is not: its file is ready): 54 of 60 in one run on a loaded 2-core
    // machine, 14 in another beside a CI run. At least one: the race was run.
    let taken = hep2.relay_adoptions();
    assert!(taken >= 1, "{taken} takeovers of {PIPES} pipes");
    stop.store(true, Ordering::Release);
    noise.join().unwrap();
    waiter.join().unwrap();
}

/// Kernel-epoll driver: an instance of many items (over the relay's limit, 256) is not
/// relayed — its blocked thread sleeps as leader or follower — and is woken all the same.
#[test]
fn a_large_instance_is_not_relayed_and_still_wakes() {
    let (host, hep) = setup(DriverKind::KernelEpoll);
    let pipes: Vec<Pipe> = (0..300).map(|_| Pipe::new()).collect();
    let files: Vec<_> = pipes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let f = host.open(p.r).unwrap();
            hep.epoll().add(&f, Interest::READABLE, i as u64).unwrap();
            f
        })
        .collect();
    let waiter = {
        let hep = hep.clone();
        std::thread::spawn(move || harvest(&hep, 4, Some(Duration::from_secs(10))))
    };
    let t0 = Instant::now();
    while hep.epoll().blocked_threads() == 0 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(pipes[123].write(1), 1);
    assert_eq!(waiter.join().unwrap(), Ok(vec![(123, Events::IN)]));
    assert!(!hep.relayed());
    drop(files);
}

/// Kernel-epoll driver: after `fork`, the child's relay is its own (the parent's is shared
/// with it until [`Host::after_fork_child`] replaces it): a thread blocked in the child is
/// woken for its instance's descriptor, and the parent's relay keeps working.
#[test]
fn a_relay_survives_fork_in_child_and_parent() {
    let (host, hep) = setup(DriverKind::KernelEpoll);
    let (p, q) = (Pipe::new(), Pipe::new());
    let (fp, fq) = (host.open(p.r).unwrap(), host.open(q.r).unwrap());
    hep.epoll().add(&fp, Interest::READABLE, 1).unwrap();
    hep.epoll().add(&fq, Interest::READABLE, 2).unwrap();
    // Blocking sleeps of two threads (a thread alone is not relayed) make the relay and
    // sync it.
    let other = {
        let hep = hep.clone();
        std::thread::spawn(move || harvest(&hep, 4, Some(Duration::from_millis(30))))
    };
    assert_eq!(other.join().unwrap(), Ok(vec![]));
    assert_eq!(
        harvest(&hep, 4, Some(Duration::from_millis(30))),
        Ok(vec![])
    );
    assert!(hep.relayed());
    // SAFETY: the child only uses its own copies and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        host.after_fork_child();
        // Two threads wait here too (this one first, briefly).
        let _ = harvest(&hep, 4, Some(Duration::from_millis(1)));
        let waiter = {
            let hep = hep.clone();
            std::thread::spawn(move || harvest(&hep, 4, Some(Duration::from_secs(5))))
        };
        let t0 = Instant::now();
        while hep.epoll().blocked_threads() == 0 && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(20));
        p.write(1);
        let ok = waiter.join().ok() == Some(Ok(vec![(1, Events::IN)])) && hep.relayed();
        // SAFETY: leaving the child without running the parent's destructors.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child: {status:#x}"
    );
    assert_eq!(p.read(16), 1);
    let waiter = {
        let hep = hep.clone();
        std::thread::spawn(move || harvest(&hep, 4, Some(Duration::from_secs(5))))
    };
    std::thread::sleep(Duration::from_millis(20));
    q.write(1);
    assert_eq!(waiter.join().unwrap(), Ok(vec![(2, Events::IN)]));
    drop((fp, fq));
}

/// A wait whose ready list holds only host descriptors watched for input — the
/// level-triggered items the last harvest reported — puts its first harvest off into its
/// sleep, which watches their descriptors too (`HostEpoll::folded_waits`; descriptions
/// opened for input only, `Host::open_for`, as `libeventpoll` opens them): an item still
/// ready ends the wait at once, a drained one lets it sleep until new input or its timeout.
/// What it reports is what Linux's harvest at the end of that sleep reports (and, where the
/// wait is not folded, what the harvest before the sleep reports).
#[test]
fn a_wait_over_level_triggered_leftovers_reports_as_a_harvest_would() {
    for kind in KINDS {
        let (host, hep) = setup(kind);
        // Not in the io_uring driver's owned mode (this thread alone): its sleep tells no
        // probe's state (`Driver::sleep_probes`), and the wait harvests first.
        let folds_here = u64::from(host.driver().sleep_probes());
        let p = Arc::new(Pipe::new());
        let f = host.open_for(p.r, Events::IN).unwrap();
        hep.epoll().add(&f, Interest::READABLE, 1).unwrap();
        assert_eq!(p.write(2), 2);
        let long = Some(Duration::from_secs(5));
        assert_eq!(harvest(&hep, 8, long).unwrap(), vec![(1, Events::IN)]);
        // Still ready: reported at once.
        assert_eq!(p.read(1), 1);
        let t = Instant::now();
        assert_eq!(harvest(&hep, 8, long).unwrap(), vec![(1, Events::IN)]);
        assert!(t.elapsed() < Duration::from_secs(1), "{kind:?}");
        // Drained: the timeout expires with nothing, the sleep having watched the item.
        assert_eq!(p.read(1), 1);
        let folds = hep.folded_waits();
        let t = Instant::now();
        assert_eq!(
            harvest(&hep, 8, Some(Duration::from_millis(30))).unwrap(),
            vec![]
        );
        assert!(t.elapsed() >= Duration::from_millis(30), "{kind:?}");
        assert_eq!(
            hep.folded_waits(),
            folds + folds_here,
            "{kind:?}: folded or not"
        );
        // New input while asleep: the sleep ends and the harvest reports it.
        assert_eq!(p.write(1), 1);
        assert_eq!(harvest(&hep, 8, long).unwrap(), vec![(1, Events::IN)]);
        assert_eq!(p.read(1), 1);
        let folds = hep.folded_waits();
        let writer = {
            let p = p.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                assert_eq!(p.write(1), 1);
            })
        };
        let t = Instant::now();
        assert_eq!(harvest(&hep, 8, long).unwrap(), vec![(1, Events::IN)]);
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(40) && took < Duration::from_secs(2),
            "{kind:?}: {took:?}"
        );
        assert_eq!(
            hep.folded_waits(),
            folds + folds_here,
            "{kind:?}: folded or not"
        );
        writer.join().unwrap();
        // A drained item found not ready is dropped: the next zero-timeout wait is empty.
        assert_eq!(p.read(1), 1);
        assert_eq!(
            harvest(&hep, 8, Some(Duration::from_millis(1))).unwrap(),
            vec![]
        );
        assert_eq!(now(&hep), vec![]);
        drop(f);
    }
}

/// Level-triggered ping-pong between client threads and server threads that each wait on
/// an instance of their own (memcached's shape: a server reads a request until `EAGAIN`,
/// answers and waits again, the connection's item left on the ready list, so its waits are
/// folded), with every driver's threads pumping for each other: no answer is ever late.
/// A probed mask taken before a wakeup the pump delivered later, used for the harvest,
/// dropped the item that wakeup had made ready and stalled a connection for good (caught
/// by memcached under the preload, one connection in a few thousand requests); the masks
/// are now checked against the descriptor's wakeups (`host_fd::fresh`). With io_uring,
/// the server threads' first waits switch the driver from owned (by this thread, which
/// registered the connections) to shared mode while the clients write: a write between
/// the switch's question "does the old ring owe wakeups?" and the new polls' arming was
/// lost for good (the switch dropped the arming reports), 3 runs in 4 before the switch
/// recorded the files' masks first (`UringDriver::share`).
#[test]
fn level_triggered_ping_pong_across_threads_never_stalls() {
    const SERVERS: usize = 3;
    const BUDGET: Duration = Duration::from_millis(1500);
    for kind in RELAY_KINDS {
        let host = Host::new(kind).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut servers = Vec::new();
        let mut clients = Vec::new();
        for s in 0..SERVERS {
            let (a, b) = socketpair();
            let hep = HostEpoll::new(host.clone()).unwrap();
            let f = host.open_for(a, Events::IN).unwrap();
            hep.epoll().add(&f, Interest::READABLE, s as u64).unwrap();
            let stop_s = stop.clone();
            servers.push(std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                while !stop_s.load(Ordering::Acquire) {
                    let got = harvest(&hep, 8, Some(Duration::from_millis(100))).unwrap();
                    for _ in got {
                        // Read until EAGAIN, answer every byte.
                        loop {
                            // SAFETY: a buffer of 64 bytes.
                            let n = unsafe { libc::read(a, buf.as_mut_ptr().cast(), 64) };
                            if n <= 0 {
                                break;
                            }
                            // SAFETY: n bytes of the buffer.
                            assert_eq!(
                                unsafe { libc::write(a, buf.as_ptr().cast(), n as usize) },
                                n
                            );
                        }
                    }
                }
                let folds = hep.folded_waits();
                drop(f);
                // SAFETY: the server's end.
                unsafe { libc::close(a) };
                folds
            }));
            let stop_c = stop.clone();
            clients.push(std::thread::spawn(move || {
                let mut rounds = 0u64;
                let t0 = Instant::now();
                let mut pfd = libc::pollfd {
                    fd: b,
                    events: libc::POLLIN,
                    revents: 0,
                };
                while t0.elapsed() < BUDGET {
                    // SAFETY: one byte from a static buffer.
                    assert_eq!(unsafe { libc::write(b, b"q".as_ptr().cast(), 1) }, 1);
                    // SAFETY: one pollfd.
                    let r = unsafe { libc::poll(&mut pfd, 1, 5000) };
                    assert_eq!(
                        r, 1,
                        "{kind:?}: server {s}: no answer in 5 s, round {rounds}"
                    );
                    let mut c = [0u8; 1];
                    // SAFETY: a buffer of one byte.
                    assert_eq!(unsafe { libc::read(b, c.as_mut_ptr().cast(), 1) }, 1);
                    rounds += 1;
                }
                let _ = &stop_c;
                // SAFETY: the client's end.
                unsafe { libc::close(b) };
                rounds
            }));
        }
        let rounds: u64 = clients.into_iter().map(|c| c.join().unwrap()).sum();
        stop.store(true, Ordering::Release);
        let folds: u64 = servers.into_iter().map(|s| s.join().unwrap()).sum();
        eprintln!("{kind:?}: {rounds} requests, {folds} folded waits");
        assert!(folds > 0, "{kind:?}: no wait was folded");
    }
}

/// A wait put off into its sleep still makes its harvest when the sleep times out at once
/// (Linux harvests before it looks at the timeout), and a `MOD` of an item it sleeps over
/// — to output readiness, which its sleep does not watch — wakes it as Linux's `MOD` of an
/// item the scan dropped does (both found by random differential runs through the C ABI).
#[test]
fn a_folded_wait_harvests_at_a_tiny_timeout_and_is_woken_by_a_mod() {
    for kind in KINDS {
        let (host, hep) = setup(kind);
        // An item made ready by its ADD: the next wait, whatever its timeout, reports it.
        let p = Pipe::new();
        assert_eq!(p.write(1), 1);
        let f = host.open_for(p.r, Events::IN).unwrap();
        hep.epoll().add(&f, Interest::READABLE, 1).unwrap();
        assert_eq!(
            harvest(&hep, 8, Some(Duration::from_nanos(999))).unwrap(),
            vec![(1, Events::IN)],
            "{kind:?}"
        );
        // A socket's item left on the list, drained; a thread sleeps over it; a MOD asks
        // for output readiness, which the socket has.
        let (a, b) = socketpair();
        let g = host.open_for(a, Events::IN).unwrap();
        hep.epoll().add(&g, Interest::READABLE, 2).unwrap();
        // SAFETY: one byte from a static buffer.
        assert_eq!(unsafe { libc::write(b, b"x".as_ptr().cast(), 1) }, 1);
        assert_eq!(p.read(1), 1);
        assert_eq!(
            harvest(&hep, 8, Some(Duration::from_secs(5))).unwrap(),
            vec![(2, Events::IN)]
        );
        let mut c = [0u8; 1];
        // SAFETY: a buffer of one byte.
        assert_eq!(unsafe { libc::read(a, c.as_mut_ptr().cast(), 1) }, 1);
        let folds = hep.folded_waits();
        let waiter = {
            let hep = hep.clone();
            std::thread::spawn(move || harvest(&hep, 8, Some(Duration::from_secs(5))).unwrap())
        };
        std::thread::sleep(Duration::from_millis(50));
        let out = Interest::READABLE | Interest::WRITABLE;
        eventpoll_host::Host::host_fd(&g)
            .unwrap()
            .watch(out.events())
            .unwrap();
        hep.epoll().modify(&g, out, 3).unwrap();
        let t = Instant::now();
        let got = waiter.join().unwrap();
        assert_eq!(got, vec![(3, Events::OUT)], "{kind:?}");
        assert!(t.elapsed() < Duration::from_secs(2), "{kind:?}: woken late");
        if kind != DriverKind::Poll {
            assert!(
                hep.folded_waits() > folds,
                "{kind:?}: the wait was not folded"
            );
        }
        drop((f, g));
        // SAFETY: the socketpair's ends.
        unsafe {
            libc::close(a);
            libc::close(b);
        }
    }
}

/// A thread asleep over items whose scan it put off, when another thread's scan is made
/// meanwhile, is one queued after its scan (as on Linux): a wakeup goes to the thread
/// queued at the head, not to the first to see its descriptor ready. An edge-triggered item
/// made ready by its `ADD` and drained: thread A sleeps over it; a zero-timeout wait scans
/// (and drops) it; thread B blocks (at the head); a write wakes B alone, and A times out.
#[test]
fn a_scan_made_meanwhile_stands_for_the_one_put_off() {
    // Not the poll driver: it sees levels only, and reports an edge-triggered item that
    // still has input at the next wait again (`edge_triggered_with_the_poll_driver...`).
    for kind in RELAY_KINDS {
        let (host, hep) = setup(kind);
        let p = Arc::new(Pipe::new());
        assert_eq!(p.write(1), 1);
        let f = host.open_for(p.r, Events::IN).unwrap();
        hep.epoll().add(&f, Interest::READABLE.edge(), 1).unwrap();
        assert_eq!(p.read(1), 1);
        let spawn = |timeout: u64| {
            let hep = hep.clone();
            std::thread::spawn(move || {
                let t = Instant::now();
                let got = harvest(&hep, 8, Some(Duration::from_millis(timeout))).unwrap();
                (got, t.elapsed())
            })
        };
        let a = spawn(600);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(now(&hep), vec![], "{kind:?}");
        let b = spawn(5000);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(p.write(1), 1);
        let (got_b, took_b) = b.join().unwrap();
        let (got_a, took_a) = a.join().unwrap();
        assert_eq!(
            got_b,
            vec![(1, Events::IN)],
            "{kind:?}: the head thread is woken"
        );
        assert!(took_b < Duration::from_secs(2), "{kind:?}");
        assert_eq!(got_a, vec![], "{kind:?}: the other thread sleeps on");
        assert!(took_a >= Duration::from_millis(500), "{kind:?}: {took_a:?}");
        drop(f);
    }
}

/// Kernel-epoll driver: an item of the private epoll left behind under a number that
/// another file took over (its deletion by that number found nothing) is taken over by the
/// next registration of the same file under that number, which then reports; a number
/// opened twice keeps its first object's item (the second registration is refused, as
/// before), and that object goes on reporting.
#[test]
fn kernel_driver_takes_over_a_ghost_registration_not_a_live_one() {
    let (host, hep) = setup(DriverKind::KernelEpoll);
    let p = Pipe::new();
    // SAFETY: plain descriptor calls on descriptors this test owns.
    let (keep, efd) = unsafe { (libc::dup(p.r), libc::eventfd(0, libc::EFD_CLOEXEC)) };
    assert!(keep >= 0 && efd >= 0);
    let a = host.open(p.r).unwrap();
    // The number is taken by the eventfd behind the host's back; the object goes, and its
    // deletion by the number (now the eventfd's) leaves the pipe's item in place.
    // SAFETY: as above.
    assert_eq!(unsafe { libc::dup2(efd, p.r) }, p.r);
    drop(a);
    // SAFETY: as above: the number names the pipe again.
    assert_eq!(unsafe { libc::dup2(keep, p.r) }, p.r);
    let b = host.open(p.r).expect("the left-behind item is taken over");
    hep.epoll().add(&b, Interest::READABLE, 2).unwrap();
    assert!(now(&hep).is_empty());
    assert_eq!(p.write(1), 1);
    assert_eq!(now(&hep), vec![(2, Events::IN)], "the new object reports");
    assert_eq!(p.read(8), 1);
    // A second object of the same number while the first lives: refused, the first keeps
    // its item.
    assert_eq!(host.open(p.r).err(), Some(Errno::EEXIST));
    assert_eq!(p.write(1), 1);
    assert_eq!(
        now(&hep),
        vec![(2, Events::IN)],
        "the first object still reports"
    );
    drop(b);
    // SAFETY: descriptors this test opened.
    unsafe {
        libc::close(keep);
        libc::close(efd);
    }
}
