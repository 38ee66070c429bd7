//! A stress test of the eventpoll engine: many threads doing random `epoll_ctl`, `epoll_wait`,
//! `read`, `write` and `close` on shared epoll instances of one [`FdTable`], for a set time,
//! while the harness checks the invariants epoll promises.
//!
//! # The world
//!
//! *Channels* — eventfds, and pipes whose read end is watched — each registered in at most one
//! of four instances: three top-level ones and a *nested* one, itself watched (level-triggered)
//! by instance 0. Every registration (an ADD, or a MOD) gets a fresh *generation* number,
//! carried in `data` with the channel number, and a random mode: LT, ET, LT|ONESHOT or
//! ET|ONESHOT. Threads play three roles:
//!
//! - *producers* write 1–3 tokens to a random channel (an eventfd count, or pipe bytes);
//! - *consumers* wait on a random instance (timeout 0–5 ms, `maxevents` 1–8, through
//!   `epoll_wait` or `epoll_pwait2`), and for each event check it, drain the channel and
//!   re-arm a one-shot registration; an event of the nested instance makes them harvest it;
//! - *controllers* ADD, DEL, MOD (new mode and generation), close a pipe's read end and make
//!   a new pipe (the release removes the item), or read a channel without an event.
//!
//! The harness keeps, per channel under a mutex, the current registration and the recently
//! retired ones; the engine calls run concurrently across channels and against producers.
//!
//! # Invariants (each failure is a *violation*)
//!
//! 1. *Nothing stale*: no wait reports a generation whose DEL, MOD or close had returned
//!    before the wait started (a global epoch counter, read before each wait and bumped after
//!    each retirement), nor a registration of another instance.
//! 2. *One-shot*: at most one report per arm (generation).
//! 3. *Bits*: reported events are non-empty and within `IN|ERR|HUP` (the interest plus the
//!    always-reported bits).
//! 4. *No lost event* (checkpoints): every `checkpoint_ms` all threads pause between
//!    operations; then every armed registration whose channel is readable must be reported by
//!    a non-blocking wait on its instance (LT: readable is reported; ET: the write that made
//!    it readable queued it; ONESHOT: armed and readable), instance 0 must report the nested
//!    instance exactly when the nested instance has such an item — and nothing else may be
//!    reported.
//! 5. *Tokens add up*: at the end, after a final checkpoint and drain, tokens read equal
//!    tokens written for every live channel (and never exceed them for closed pipes, whose
//!    unread bytes die with them).

use eventpoll::linux::{EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD, O_NONBLOCK};
use eventpoll::{EpollEvent, Errno, Events, FdTable, File, PollFd, Timespec};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long the random phase lasts.
    pub duration: Duration,
    /// Worker threads (producers, consumers and controllers, in the ratio 3:3:2).
    pub threads: usize,
    /// Seed of the random operation mix (the interleaving itself is the scheduler's).
    pub seed: u64,
    /// Number of channels (half eventfds, half pipes).
    pub channels: usize,
    /// Time between checkpoints.
    pub checkpoint: Duration,
    /// Producers and controllers sleep a random time up to this after each operation, so
    /// that a channel's last write before a checkpoint is not covered by the next one (a
    /// lost wakeup is only visible if no later write or MOD re-queues the item).
    pub pace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            duration: Duration::from_secs(10),
            threads: 8,
            seed: 1,
            channels: 32,
            checkpoint: Duration::from_millis(50),
            pace: Duration::from_micros(200),
        }
    }
}

/// Operation counts of a run.
#[derive(Default, Debug)]
pub struct Counts {
    /// Successful writes.
    pub writes: AtomicU64,
    /// Reads that returned data.
    pub reads: AtomicU64,
    /// `epoll_wait`/`epoll_pwait2` calls.
    pub waits: AtomicU64,
    /// Events returned by those waits (and by checkpoints).
    pub events: AtomicU64,
    /// Successful ADDs.
    pub adds: AtomicU64,
    /// Successful DELs.
    pub dels: AtomicU64,
    /// Successful MODs (including one-shot re-arms).
    pub mods: AtomicU64,
    /// ctl calls made to fail on purpose (EEXIST, ENOENT), with the right errno.
    pub ctl_errors: AtomicU64,
    /// Pipe read ends closed (and replaced).
    pub closes: AtomicU64,
    /// Checkpoints passed.
    pub checkpoints: AtomicU64,
    /// Tokens written.
    pub tokens_written: AtomicU64,
    /// Tokens read.
    pub tokens_read: AtomicU64,
}

/// The outcome of a run.
#[derive(Debug)]
pub struct Report {
    /// The configuration run.
    pub config: Config,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// Operation counts.
    pub counts: Counts,
    /// Number of invariant violations (0 expected).
    pub violations: u64,
    /// The first violations, described.
    pub first_violations: Vec<String>,
}

impl Report {
    /// A multi-line human summary.
    pub fn summary(&self) -> String {
        let c = &self.counts;
        let g = |a: &AtomicU64| a.load(SeqCst);
        let ops = g(&c.writes)
            + g(&c.reads)
            + g(&c.waits)
            + g(&c.adds)
            + g(&c.dels)
            + g(&c.mods)
            + g(&c.ctl_errors)
            + g(&c.closes);
        let mut s = format!(
            "eventpoll-stress: {:.1} s, {} threads, seed {}, {} channels, pace {} us\n\
             operations: {ops} ({:.0}/s)\n  \
             writes {} reads {} waits {} events {}\n  \
             ctl: add {} del {} mod {} expected-errors {}; closes {}\n\
             checkpoints: {}\n\
             tokens: written {} read {}\n\
             violations: {}\n",
            self.elapsed.as_secs_f64(),
            self.config.threads,
            self.config.seed,
            self.config.channels,
            self.config.pace.as_micros(),
            ops as f64 / self.elapsed.as_secs_f64().max(1e-9),
            g(&c.writes),
            g(&c.reads),
            g(&c.waits),
            g(&c.events),
            g(&c.adds),
            g(&c.dels),
            g(&c.mods),
            g(&c.ctl_errors),
            g(&c.closes),
            g(&c.checkpoints),
            g(&c.tokens_written),
            g(&c.tokens_read),
            self.violations,
        );
        for v in &self.first_violations {
            s.push_str("  ");
            s.push_str(v);
            s.push('\n');
        }
        s
    }
}

// ----- a small PRNG (splitmix64): the mix only needs to be varied and reproducible -----

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

// ----- the world -----

/// Instances: 0..3 top level, 3 nested (watched by 0).
const INSTANCES: usize = 4;
const NESTED: usize = 3;
/// `data` of the nested instance's item in instance 0.
const NESTED_TAG: u64 = u64::MAX;
const GEN_BITS: u32 = 48;
/// Retired generations remembered per channel.
const HISTORY: usize = 512;
/// How long a checkpoint may wait for the workers to pause before the run is declared hung.
const STALL: Duration = Duration::from_secs(20);

fn encode(channel: usize, gen: u64) -> u64 {
    ((channel as u64) << GEN_BITS) | gen
}
fn decode(data: u64) -> (usize, u64) {
    ((data >> GEN_BITS) as usize, data & ((1 << GEN_BITS) - 1))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Lt,
    Et,
    LtOneshot,
    EtOneshot,
}

impl Mode {
    fn random(rng: &mut Rng) -> Mode {
        [Mode::Lt, Mode::Et, Mode::LtOneshot, Mode::EtOneshot][rng.below(4)]
    }
    fn events(self) -> Events {
        match self {
            Mode::Lt => Events::IN,
            Mode::Et => Events::IN | Events::ET,
            Mode::LtOneshot => Events::IN | Events::ONESHOT,
            Mode::EtOneshot => Events::IN | Events::ET | Events::ONESHOT,
        }
    }
    fn oneshot(self) -> bool {
        matches!(self, Mode::LtOneshot | Mode::EtOneshot)
    }
}

#[derive(Clone, Copy, Debug)]
struct Reg {
    gen: u64,
    inst: usize,
    mode: Mode,
    /// One-shot: not yet reported since armed. Always true otherwise.
    armed: bool,
    reports: u32,
}

#[derive(Clone, Copy, Debug)]
struct Retired {
    inst: usize,
    mode: Mode,
    /// The epoch counter's value taken right after the DEL/MOD/close returned.
    epoch: u64,
    reports: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    EventFd,
    Pipe,
}

/// Token accounting of one incarnation of a channel's object.
#[derive(Default)]
struct Tokens {
    written: AtomicU64,
    read: AtomicU64,
}

/// One incarnation of a channel's object: its writing end and its tokens. Dropped (and the
/// object with it) once the channel moved on and no producer holds it; only the tokens are
/// kept for the final accounting.
struct Incarnation {
    writer: File,
    tokens: Arc<Tokens>,
}

struct ChannelState {
    kind: Kind,
    /// The descriptor read and registered (an eventfd, or a pipe's read end).
    fd: i32,
    inc: Arc<Incarnation>,
    reg: Option<Reg>,
    next_gen: u64,
    retired: HashMap<u64, Retired>,
}

struct Channel {
    kind: Kind,
    state: Mutex<ChannelState>,
}

struct World {
    table: FdTable,
    eps: [i32; INSTANCES],
    channels: Vec<Channel>,
    /// Tokens of the incarnations whose read end was closed.
    dead: Mutex<Vec<Arc<Tokens>>>,
    epoch: AtomicU64,
    /// Workers hold it for reading during each operation; checkpoints take it for writing.
    pause: RwLock<()>,
    stop: AtomicBool,
    counts: Counts,
    violations: AtomicU64,
    first_violations: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl World {
    fn new(cfg: &Config) -> Result<World, Errno> {
        let table = FdTable::new();
        let mut eps = [0; INSTANCES];
        for ep in &mut eps {
            *ep = table.epoll_create1(0)?;
        }
        table.epoll_ctl(
            eps[0],
            EPOLL_CTL_ADD,
            eps[NESTED],
            Some(&EpollEvent::new(Events::IN, NESTED_TAG)),
        )?;
        let mut channels = Vec::new();
        for c in 0..cfg.channels.max(2) {
            let kind = if c % 2 == 0 {
                Kind::EventFd
            } else {
                Kind::Pipe
            };
            let (fd, inc) = Self::make_object(&table, kind)?;
            channels.push(Channel {
                kind,
                state: Mutex::new(ChannelState {
                    kind,
                    fd,
                    inc,
                    reg: None,
                    next_gen: 0,
                    retired: HashMap::new(),
                }),
            });
        }
        Ok(World {
            table,
            eps,
            channels,
            dead: Mutex::new(Vec::new()),
            epoch: AtomicU64::new(0),
            pause: RwLock::new(()),
            stop: AtomicBool::new(false),
            counts: Counts::default(),
            violations: AtomicU64::new(0),
            first_violations: Mutex::new(Vec::new()),
        })
    }

    fn make_object(table: &FdTable, kind: Kind) -> Result<(i32, Arc<Incarnation>), Errno> {
        let (fd, writer) = match kind {
            Kind::EventFd => {
                let fd = table.eventfd(0, O_NONBLOCK)?;
                (fd, table.get(fd)?)
            }
            Kind::Pipe => {
                let (r, w) = eventpoll::objects::pipe::pipe(O_NONBLOCK);
                (table.install(r, eventpoll::OpenFlags::empty())?, w)
            }
        };
        let inc = Arc::new(Incarnation {
            writer,
            tokens: Arc::default(),
        });
        Ok((fd, inc))
    }

    fn violation(&self, what: String) {
        self.violations.fetch_add(1, SeqCst);
        let mut v = lock(&self.first_violations);
        if v.len() < 20 {
            v.push(what);
        }
    }

    fn count(&self, c: &AtomicU64) {
        c.fetch_add(1, SeqCst);
    }

    /// Retire the current registration of a channel (its DEL, MOD or close has returned).
    fn retire(&self, st: &mut ChannelState) {
        if let Some(r) = st.reg.take() {
            let epoch = self.epoch.fetch_add(1, SeqCst);
            st.retired.insert(
                r.gen,
                Retired {
                    inst: r.inst,
                    mode: r.mode,
                    epoch,
                    reports: r.reports,
                },
            );
            if st.retired.len() > HISTORY {
                let oldest = *st.retired.keys().min().expect("non-empty");
                st.retired.remove(&oldest);
            }
        }
    }

    fn ctl(
        &self,
        st: &ChannelState,
        c: usize,
        op: i32,
        inst: usize,
        mode: Mode,
        gen: u64,
    ) -> Result<(), Errno> {
        let ev = EpollEvent::new(mode.events(), encode(c, gen));
        self.table.epoll_ctl(self.eps[inst], op, st.fd, Some(&ev))
    }

    /// A new registration of `c` in `inst` (ADD), or a new mode and generation (MOD).
    fn register(&self, st: &mut ChannelState, c: usize, op: i32, inst: usize, mode: Mode) {
        let gen = st.next_gen;
        st.next_gen += 1;
        match self.ctl(st, c, op, inst, mode, gen) {
            Ok(()) => {
                if op == EPOLL_CTL_MOD {
                    self.retire(st);
                    self.count(&self.counts.mods);
                } else {
                    self.count(&self.counts.adds);
                }
                st.reg = Some(Reg {
                    gen,
                    inst,
                    mode,
                    armed: true,
                    reports: 0,
                });
            }
            Err(e) => self.violation(format!(
                "channel {c}: ctl op {op} on instance {inst} failed with {} (harness state {:?})",
                e, st.reg
            )),
        }
    }

    /// Read a channel until it is empty; returns whether anything was read.
    fn drain(&self, st: &ChannelState) -> bool {
        let mut buf = [0u8; 256];
        let mut any = false;
        loop {
            match self.table.read(st.fd, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let tokens = match st.kind {
                        Kind::EventFd => u64::from_ne_bytes(buf[..8].try_into().expect("8 bytes")),
                        Kind::Pipe => n as u64,
                    };
                    st.inc.tokens.read.fetch_add(tokens, SeqCst);
                    self.counts.tokens_read.fetch_add(tokens, SeqCst);
                    self.count(&self.counts.reads);
                    any = true;
                }
                Err(Errno::EAGAIN) => break,
                Err(e) => {
                    self.violation(format!("read of fd {} failed with {}", st.fd, e));
                    break;
                }
            }
        }
        any
    }

    fn readable(&self, fd: i32) -> bool {
        let mut p = [PollFd {
            fd,
            events: Events::IN.bits() as i16,
            revents: 0,
        }];
        matches!(self.table.poll(&mut p, 0), Ok(1)) && p[0].revents & Events::IN.bits() as i16 != 0
    }

    /// Check and act on one reported event of instance `inst`, from a wait that started at
    /// epoch `start`.
    fn process(&self, inst: usize, ev: EpollEvent, start: u64, rng: &mut Rng) {
        self.count(&self.counts.events);
        let bits = ev.events();
        if ev.data() == NESTED_TAG {
            if inst != 0 || bits != Events::IN {
                self.violation(format!(
                    "nested tag from instance {inst} with {}",
                    bits.names()
                ));
            }
            let start = self.epoch.load(SeqCst);
            self.harvest(NESTED, 1 + rng.below(8), 0, start, rng);
            return;
        }
        let (c, gen) = decode(ev.data());
        let Some(ch) = self.channels.get(c) else {
            self.violation(format!("event with unknown data {:#x}", ev.data()));
            return;
        };
        if bits.is_empty() || !(Events::IN | Events::ERR | Events::HUP).contains(bits) {
            self.violation(format!(
                "channel {c} gen {gen}: reported bits {}",
                bits.names()
            ));
        }
        let mut st = lock(&ch.state);
        let retired = st.retired.get(&gen).copied();
        let next_gen = st.next_gen;
        match (st.reg.as_mut(), retired) {
            (Some(r), _) if r.gen == gen => {
                if r.inst != inst {
                    self.violation(format!(
                        "channel {c} gen {gen}: registered in instance {}, reported by {inst}",
                        r.inst
                    ));
                }
                r.reports += 1;
                if r.mode.oneshot() {
                    if r.reports > 1 {
                        self.violation(format!(
                            "channel {c} gen {gen}: one-shot reported {} times",
                            r.reports
                        ));
                    }
                    r.armed = false;
                }
            }
            (_, Some(old)) => {
                if old.epoch < start {
                    self.violation(format!(
                        "channel {c} gen {gen}: reported by a wait that started after its \
                         removal (removed at epoch {}, wait started at {start})",
                        old.epoch
                    ));
                }
                if old.inst != inst {
                    self.violation(format!(
                        "channel {c} gen {gen}: was in instance {}, reported by {inst}",
                        old.inst
                    ));
                }
                let n = old.reports + 1;
                st.retired.get_mut(&gen).expect("present").reports = n;
                if old.mode.oneshot() && n > 1 {
                    self.violation(format!(
                        "channel {c} gen {gen}: one-shot reported {n} times"
                    ));
                }
            }
            _ if gen >= next_gen => {
                self.violation(format!("channel {c}: unknown generation {gen}"));
            }
            _ => {} // retired long ago and forgotten
        }
        self.drain(&st);
        if let Some(r) = st.reg {
            if r.mode.oneshot() && !r.armed && rng.chance(90) {
                self.register(&mut st, c, EPOLL_CTL_MOD, r.inst, Mode::random(rng));
            }
        }
    }

    /// One wait on `inst` and the processing of what it returns.
    fn harvest(&self, inst: usize, maxevents: usize, timeout_us: u64, start: u64, rng: &mut Rng) {
        let mut buf = vec![EpollEvent::default(); maxevents];
        self.count(&self.counts.waits);
        let r = if rng.chance(25) {
            let ts = Timespec {
                tv_sec: 0,
                tv_nsec: (timeout_us * 1000) as i64,
            };
            self.table
                .epoll_pwait2(self.eps[inst], &mut buf, maxevents as i32, Some(&ts))
        } else {
            let ms = timeout_us.div_ceil(1000) as i32;
            self.table
                .epoll_wait(self.eps[inst], &mut buf, maxevents as i32, ms)
        };
        match r {
            Ok(n) => {
                for ev in &buf[..n] {
                    self.process(inst, *ev, start, rng);
                }
            }
            Err(e) => self.violation(format!("epoll_wait on instance {inst}: {}", e)),
        }
    }

    // ----- roles -----

    fn producer(&self, rng: &mut Rng) -> bool {
        let c = rng.below(self.channels.len());
        let ch = &self.channels[c];
        let inc = lock(&ch.state).inc.clone();
        let k = 1 + rng.below(3) as u64;
        let r = match ch.kind {
            Kind::EventFd => inc.writer.write(&k.to_ne_bytes()).map(|_| k),
            Kind::Pipe => inc.writer.write(&b"xyz"[..k as usize]).map(|n| n as u64),
        };
        match r {
            Ok(n) => {
                inc.tokens.written.fetch_add(n, SeqCst);
                self.counts.tokens_written.fetch_add(n, SeqCst);
                self.count(&self.counts.writes);
            }
            // Full, or the read end was closed under us.
            Err(Errno::EAGAIN | Errno::EPIPE) => {}
            Err(e) => self.violation(format!("write to channel {c}: {}", e)),
        }
        true
    }

    fn consumer(&self, rng: &mut Rng) {
        let inst = rng.below(INSTANCES);
        let maxevents = 1 + rng.below(8);
        let timeout_us = [0, 0, 100, 1000, 2000, 5000][rng.below(6)];
        let start = self.epoch.load(SeqCst);
        self.harvest(inst, maxevents, timeout_us, start, rng);
    }

    fn controller(&self, rng: &mut Rng) -> bool {
        let c = rng.below(self.channels.len());
        let ch = &self.channels[c];
        let mut st = lock(&ch.state);
        let choice = rng.below(100);
        match (choice, st.reg) {
            (0..=29, None) => self.register(
                &mut st,
                c,
                EPOLL_CTL_ADD,
                rng.below(INSTANCES),
                Mode::random(rng),
            ),
            (0..=29, Some(r)) => {
                // Adding again to the same instance: EEXIST.
                match self.ctl(&st, c, EPOLL_CTL_ADD, r.inst, r.mode, r.gen) {
                    Err(Errno::EEXIST) => self.count(&self.counts.ctl_errors),
                    other => self.violation(format!("channel {c}: second ADD gave {other:?}")),
                }
            }
            (30..=54, Some(r)) => {
                match self
                    .table
                    .epoll_ctl(self.eps[r.inst], EPOLL_CTL_DEL, st.fd, None)
                {
                    Ok(()) => {
                        self.retire(&mut st);
                        self.count(&self.counts.dels);
                    }
                    Err(e) => self.violation(format!("channel {c}: DEL failed with {}", e)),
                }
            }
            (30..=54, None) => {
                let inst = rng.below(INSTANCES);
                match self
                    .table
                    .epoll_ctl(self.eps[inst], EPOLL_CTL_DEL, st.fd, None)
                {
                    Err(Errno::ENOENT) => self.count(&self.counts.ctl_errors),
                    other => self.violation(format!("channel {c}: DEL of nothing gave {other:?}")),
                }
            }
            (55..=79, Some(r)) => {
                self.register(&mut st, c, EPOLL_CTL_MOD, r.inst, Mode::random(rng))
            }
            (55..=79, None) => {
                let inst = rng.below(INSTANCES);
                match self.ctl(&st, c, EPOLL_CTL_MOD, inst, Mode::Lt, 0) {
                    Err(Errno::ENOENT) => self.count(&self.counts.ctl_errors),
                    other => self.violation(format!("channel {c}: MOD of nothing gave {other:?}")),
                }
            }
            (80..=89, _) if ch.kind == Kind::Pipe => {
                // Close the read end: its release removes the item, racing the producers'
                // wakeups; then a new pipe takes the channel over.
                match self.table.close(st.fd) {
                    Ok(()) => {
                        self.retire(&mut st);
                        self.count(&self.counts.closes);
                    }
                    Err(e) => self.violation(format!("channel {c}: close failed with {}", e)),
                }
                match Self::make_object(&self.table, Kind::Pipe) {
                    Ok((fd, inc)) => {
                        let old = std::mem::replace(&mut st.inc, inc);
                        st.fd = fd;
                        lock(&self.dead).push(old.tokens.clone());
                    }
                    Err(e) => self.violation(format!("new pipe: {}", e)),
                }
            }
            _ => {
                // A read with no event (it races the producers' writes and wakeups).
                self.drain(&st);
            }
        }
        true
    }

    // ----- checkpoints -----

    /// With every worker paused: everything that must be reported is, and nothing else.
    fn checkpoint(&self, rng: &mut Rng) {
        let mut expected: [Vec<u64>; INSTANCES] = Default::default();
        for (c, ch) in self.channels.iter().enumerate() {
            let st = lock(&ch.state);
            if let Some(r) = st.reg {
                if r.armed && self.readable(st.fd) {
                    expected[r.inst].push(encode(c, r.gen));
                }
            }
        }
        let nested_ready = !expected[NESTED].is_empty();
        if nested_ready {
            expected[0].push(NESTED_TAG);
        }
        let cap = self.channels.len() + 2;
        let mut reported: [Vec<EpollEvent>; INSTANCES] = Default::default();
        // Instance 0 first: its report of the nested instance must not depend on the
        // harvest of the nested instance below.
        for inst in [0, NESTED, 1, 2] {
            let mut buf = vec![EpollEvent::default(); cap];
            match self
                .table
                .epoll_wait(self.eps[inst], &mut buf, cap as i32, 0)
            {
                Ok(n) => reported[inst] = buf[..n].to_vec(),
                Err(e) => self.violation(format!("checkpoint wait: {}", e)),
            }
        }
        for inst in 0..INSTANCES {
            let mut got: Vec<u64> = reported[inst].iter().map(|e| e.data()).collect();
            got.sort_unstable();
            let mut want = expected[inst].clone();
            want.sort_unstable();
            if got != want {
                let show = |v: &[u64]| {
                    v.iter()
                        .map(|&d| {
                            if d == NESTED_TAG {
                                "nested".to_string()
                            } else {
                                let (c, g) = decode(d);
                                format!("c{c}/g{g}")
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                self.violation(format!(
                    "checkpoint: instance {inst} reported [{}], expected [{}]",
                    show(&got),
                    show(&want)
                ));
            }
        }
        let start = self.epoch.load(SeqCst);
        for (inst, evs) in reported.iter_mut().enumerate() {
            for ev in std::mem::take(evs) {
                if ev.data() == NESTED_TAG {
                    self.count(&self.counts.events);
                    continue; // the nested instance was harvested above
                }
                self.process(inst, ev, start, rng);
            }
        }
        self.count(&self.counts.checkpoints);
    }

    fn final_accounting(&self) {
        for (c, ch) in self.channels.iter().enumerate() {
            let st = lock(&ch.state);
            self.drain(&st);
            let t = &st.inc.tokens;
            let (w, r) = (t.written.load(SeqCst), t.read.load(SeqCst));
            if w != r {
                self.violation(format!("channel {c}: {w} tokens written, {r} read"));
            }
        }
        for t in lock(&self.dead).iter() {
            let (w, r) = (t.written.load(SeqCst), t.read.load(SeqCst));
            if r > w {
                self.violation(format!("closed pipe: {w} tokens written, {r} read"));
            }
        }
    }
}

/// Run the stress test.
///
/// ```
/// use eventpoll_stress::{run, Config};
/// use std::time::Duration;
/// let report = run(Config { duration: Duration::from_millis(200), threads: 3, ..Config::default() });
/// assert_eq!(report.violations, 0, "{}", report.summary());
/// ```
pub fn run(cfg: Config) -> Report {
    let started = Instant::now();
    let world = match World::new(&cfg) {
        Ok(w) => Arc::new(w),
        Err(e) => {
            return Report {
                config: cfg,
                elapsed: started.elapsed(),
                counts: Counts::default(),
                violations: 1,
                first_violations: vec![format!("setup failed: {}", e)],
            }
        }
    };
    let threads = cfg.threads.max(3);
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let world = world.clone();
            let mut rng = Rng(cfg.seed ^ (i as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F));
            std::thread::Builder::new()
                .name(format!("stress-{i}"))
                .spawn(move || {
                    let pace = cfg.pace.as_micros() as usize;
                    while !world.stop.load(SeqCst) {
                        let paced = {
                            let _op = world.pause.read().unwrap_or_else(|e| e.into_inner());
                            match i % 8 {
                                0 | 3 | 6 => world.producer(&mut rng),
                                1 | 4 | 7 => {
                                    world.consumer(&mut rng);
                                    false
                                }
                                _ => world.controller(&mut rng),
                            }
                        };
                        if paced && pace > 0 {
                            let us = rng.below(pace + 1) as u64;
                            std::thread::sleep(Duration::from_micros(us));
                        }
                    }
                })
                .expect("spawn a worker")
        })
        .collect();
    // Watchdog: every operation is bounded (waits time out within 5 ms), so a checkpoint
    // that cannot pause the workers for STALL means an engine call hangs (a deadlock, or a
    // timeout that never fires). Nothing can be joined then: report and exit.
    let waiting_since = Arc::new(Mutex::new(None::<Instant>));
    let watchdog = {
        let (world, waiting_since) = (world.clone(), waiting_since.clone());
        std::thread::spawn(move || {
            while !world.stop.load(SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
                if lock(&waiting_since).is_some_and(|t| t.elapsed() > STALL) {
                    eprintln!(
                        "eventpoll-stress: VIOLATION: workers did not pause within {STALL:?}: \
                         an engine call hangs (deadlock or lost timeout)"
                    );
                    std::process::exit(3);
                }
            }
        })
    };
    let mut rng = Rng(cfg.seed);
    let deadline = started + cfg.duration;
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        std::thread::sleep(cfg.checkpoint.min(deadline - now));
        *lock(&waiting_since) = Some(Instant::now());
        let _all = world.pause.write().unwrap_or_else(|e| e.into_inner());
        *lock(&waiting_since) = None;
        world.checkpoint(&mut rng);
    }
    world.stop.store(true, SeqCst);
    let _ = watchdog.join();
    for w in workers {
        if w.join().is_err() {
            world.violation("a worker thread panicked".into());
        }
    }
    world.checkpoint(&mut rng);
    world.final_accounting();
    let world = Arc::try_unwrap(world).unwrap_or_else(|_| panic!("workers joined"));
    let first_violations = world
        .first_violations
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    Report {
        config: cfg,
        elapsed: started.elapsed(),
        counts: world.counts,
        violations: world.violations.load(SeqCst),
        first_violations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_encoding_round_trips() {
        assert_eq!(decode(encode(17, 123_456)), (17, 123_456));
        // Only channel 0xFFFF at the last generation could collide with the nested tag.
        assert_ne!(encode(0xFFFE, (1 << GEN_BITS) - 1), NESTED_TAG);
    }
}
