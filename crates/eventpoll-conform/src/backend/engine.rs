//! The engine backend: the same operations on one [`eventpoll::FdTable`] per scenario. The
//! table numbers descriptors from 0, lowest free first, so scenario number `n` is engine
//! descriptor `n` and no mapping is needed. Its size (`RLIMIT_NOFILE`) is the kernel range's
//! ([`super::kernel::scenario_fd_limit`]), so raw numbers past the end fail alike.

use super::threads::{BlockingCall, Outcome, SelectSets, Worker};
use super::{wait_buffer_len, Address, Backend, Errno, Event, SysResult};
use crate::script::{Buffer, FifoMode, SockType, TimerSetting, WaitKind};
use eventpoll::linux::DEFAULT_MAX_USER_WATCHES;
use eventpoll::objects::fifo::Fifo;
use eventpoll::TableConfig;
use eventpoll::{EpollEvent, Events, FdTable, ITimerSpec, PollFd, Timespec, User};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The engine backend. See the module documentation.
pub struct Engine {
    /// Shared with background calls ([`Backend::spawn`]).
    pub(crate) table: Arc<FdTable>,
    /// Successful `EPOLL_CTL_ADD`s: bounds how many events a wait can return.
    pub(crate) items: usize,
    /// The FIFOs `mkfifo` made, by name: the engine's stand-in for their paths (shared
    /// with forked children, as a file system is).
    fifos: Arc<Mutex<HashMap<String, Arc<Fifo>>>>,
    /// The addresses `listen` made ([`Address`] indexes them).
    addresses: Vec<eventpoll::objects::listener::UnixAddress>,
}

/// A fresh engine backend with an empty table.
pub fn create() -> Box<dyn Backend> {
    Box::new(Engine::on_clock(eventpoll::platform::default_clock()))
}

impl Engine {
    /// An engine backend whose table runs on `clock` (its timerfds and timeouts).
    pub(crate) fn on_clock(clock: Arc<dyn eventpoll::platform::Clock>) -> Engine {
        // The kernel range's size, so that raw numbers beyond it fail the same way.
        let config = TableConfig {
            max_fds: super::kernel::scenario_fd_limit(),
            ..TableConfig::default()
        };
        Engine {
            table: Arc::new(FdTable::with_clock(
                config,
                User::new(DEFAULT_MAX_USER_WATCHES),
                clock,
            )),
            items: 0,
            fifos: Arc::default(),
            addresses: Vec::new(),
        }
    }

    /// The table of a child process (`fork P`): the same descriptions.
    pub(crate) fn forked(&self) -> Engine {
        Engine {
            table: Arc::new(self.table.fork()),
            items: self.items,
            fifos: self.fifos.clone(),
            addresses: self.addresses.clone(),
        }
    }
}

/// The engine's socket type for the format's.
fn socket_type(ty: SockType) -> eventpoll::objects::socket::SocketType {
    use eventpoll::objects::socket::SocketType;
    match ty {
        SockType::Stream => SocketType::Stream,
        SockType::Dgram => SocketType::Dgram,
        SockType::SeqPacket => SocketType::SeqPacket,
    }
}

fn err(e: eventpoll::Errno) -> Errno {
    Errno(e.raw_os_error())
}

const O_NONBLOCK: i32 = eventpoll::linux::O_NONBLOCK;

/// `SHUT_*` and other constants the engine takes as Linux numbers.
const EFD_SEMAPHORE: i32 = 1;
const CLOCK_MONOTONIC: i32 = 1;
const TFD_TIMER_ABSTIME: i32 = 1;

impl Backend for Engine {
    fn name(&self) -> &'static str {
        "engine"
    }

    fn epoll_create(&mut self, size: i32) -> SysResult<i32> {
        self.table.epoll_create(size).map_err(err)
    }

    fn epoll_create1(&mut self, flags: i32) -> SysResult<i32> {
        self.table.epoll_create1(flags).map_err(err)
    }

    fn pipe(&mut self) -> SysResult<(i32, i32)> {
        self.table.pipe2(O_NONBLOCK).map_err(err)
    }

    fn set_pipe_size(&mut self, fd: i32, size: i32) -> SysResult<i32> {
        self.table.set_pipe_size(fd, size).map_err(err)
    }

    fn eventfd(&mut self, init: u32, semaphore: bool) -> SysResult<i32> {
        let flags = O_NONBLOCK | if semaphore { EFD_SEMAPHORE } else { 0 };
        self.table.eventfd(init, flags).map_err(err)
    }

    fn socketpair(&mut self, ty: SockType) -> SysResult<(i32, i32)> {
        self.table
            .socketpair(socket_type(ty), O_NONBLOCK)
            .map_err(err)
    }

    fn timerfd(&mut self) -> SysResult<i32> {
        self.table
            .timerfd_create(CLOCK_MONOTONIC, O_NONBLOCK)
            .map_err(err)
    }

    fn settime(&mut self, fd: i32, setting: TimerSetting) -> SysResult<()> {
        let one_ns = Timespec {
            tv_sec: 0,
            tv_nsec: 1,
        };
        let (flags, value, interval) = match setting {
            // 1 ns after the clock's epoch: in the past for any clock.
            TimerSetting::Expired => (TFD_TIMER_ABSTIME, one_ns, Timespec::default()),
            TimerSetting::Disarm => (0, Timespec::default(), Timespec::default()),
            TimerSetting::Every {
                interval_ms,
                at_once,
            } => {
                let period = Timespec {
                    tv_sec: i64::from(interval_ms / 1000),
                    tv_nsec: i64::from(interval_ms % 1000) * 1_000_000,
                };
                (0, if at_once { one_ns } else { period }, period)
            }
        };
        let spec = ITimerSpec { interval, value };
        self.table.timerfd_settime(fd, flags, &spec).map_err(err)?;
        if let TimerSetting::Every { at_once: true, .. } = setting {
            // A relative 1 ns fires from the clock's timer thread: wait (bounded) until it
            // has, as the kernel backend does.
            poll_call(&self.table, fd, Events::IN.bits() as i16, 1000)?;
        }
        Ok(())
    }

    fn regular_file(&mut self) -> SysResult<i32> {
        self.table.open_regular().map_err(err)
    }

    fn dev_null(&mut self) -> SysResult<i32> {
        self.table.open_null(O_NONBLOCK).map_err(err)
    }

    fn mkfifo(&mut self, name: &str) -> SysResult<()> {
        let mut fifos = self.fifos.lock().unwrap_or_else(|e| e.into_inner());
        if fifos.contains_key(name) {
            return Err(Errno(libc::EEXIST));
        }
        fifos.insert(name.to_string(), Fifo::new());
        Ok(())
    }

    fn open_fifo(&mut self, name: &str, mode: FifoMode) -> SysResult<i32> {
        let fifo = self
            .fifos
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or(Errno(libc::ENOENT))?;
        let access = match mode {
            FifoMode::Read => libc::O_RDONLY,
            FifoMode::Write => libc::O_WRONLY,
            FifoMode::ReadWrite => libc::O_RDWR,
        };
        self.table
            .open_fifo(&fifo, access | O_NONBLOCK)
            .map_err(err)
    }

    fn epoll_ctl(&mut self, epfd: i32, op: i32, fd: i32, event: Option<Event>) -> SysResult<()> {
        let ev = event.map(|(bits, data)| EpollEvent::new(Events::from_bits_retain(bits), data));
        self.table
            .epoll_ctl(epfd, op, fd, ev.as_ref())
            .map_err(err)?;
        if op == eventpoll::linux::EPOLL_CTL_ADD {
            self.items += 1;
        }
        Ok(())
    }

    fn epoll_wait(
        &mut self,
        epfd: i32,
        maxevents: i32,
        kind: WaitKind,
        buffer: Buffer,
    ) -> SysResult<Vec<Event>> {
        wait_call(&self.table, epfd, maxevents, kind, buffer, self.items)
    }

    fn poll(&mut self, fd: i32, events: i16) -> SysResult<i16> {
        poll_call(&self.table, fd, events, 0)
    }

    fn write(&mut self, fd: i32, data: &[u8]) -> SysResult<usize> {
        self.table.write(fd, data).map_err(err)
    }

    fn read(&mut self, fd: i32, buf: &mut [u8]) -> SysResult<usize> {
        self.table.read(fd, buf).map_err(err)
    }

    fn shutdown(&mut self, fd: i32, how: i32) -> SysResult<()> {
        self.table.shutdown(fd, how).map_err(err)
    }

    fn close(&mut self, fd: i32) -> SysResult<()> {
        self.table.close(fd).map_err(err)
    }

    fn dup(&mut self, fd: i32) -> SysResult<i32> {
        self.table.dup(fd).map_err(err)
    }

    fn dup2(&mut self, fd: i32, target: i32) -> SysResult<i32> {
        self.table.dup2(fd, target).map_err(err)
    }

    fn dup3(&mut self, fd: i32, target: i32, flags: i32) -> SysResult<i32> {
        self.table.dup3(fd, target, flags).map_err(err)
    }

    fn dupfd(&mut self, fd: i32, min: i32) -> SysResult<i32> {
        self.table.dup_min(fd, min).map_err(err)
    }

    fn close_range(&mut self, first: u32, last: u32, flags: u32) -> SysResult<()> {
        self.table.close_range(first, last, flags).map_err(err)
    }

    fn fork(&mut self) -> super::Forked {
        // The child's table refers to the same descriptions; dropping it (`exit P`) closes
        // the child's descriptors.
        super::Forked::Local(Box::new(self.forked()))
    }

    fn unix_listen(&mut self, ty: SockType, backlog: i32) -> SysResult<(i32, Address)> {
        let (fd, addr) = self
            .table
            .unix_listen(socket_type(ty), backlog, O_NONBLOCK)
            .map_err(err)?;
        self.addresses.push(addr);
        Ok((fd, Address(self.addresses.len() - 1)))
    }

    fn unix_connect(&mut self, addr: Address) -> SysResult<i32> {
        let a = self
            .addresses
            .get(addr.0)
            .ok_or(Errno(libc::ECONNREFUSED))?;
        self.table.unix_connect(a, O_NONBLOCK).map_err(err)
    }

    fn accept(&mut self, fd: i32) -> SysResult<i32> {
        self.table.accept4(fd, O_NONBLOCK).map_err(err)
    }

    fn spawn(&mut self, call: BlockingCall) -> Worker {
        let table = self.table.clone();
        let items = self.items;
        Worker::spawn_engine(move || blocking_call(&table, items, call))
    }
}

/// A background call on the engine (run on the thread or task that blocks in it).
pub(crate) fn blocking_call(table: &FdTable, items: usize, call: BlockingCall) -> Outcome {
    match call {
        BlockingCall::Wait {
            epfd,
            maxevents,
            kind,
            buffer,
        } => Outcome::Events(wait_call(table, epfd, maxevents, kind, buffer, items)),
        BlockingCall::Poll { fd, timeout_ms } => {
            Outcome::Poll(poll_call(table, fd, crate::exec::POLL_ALL, timeout_ms))
        }
        BlockingCall::Select { fd, timeout_ms } => {
            Outcome::Select(select_call(table, fd, timeout_ms))
        }
    }
}

/// One wait call on the engine (foreground or background).
fn wait_call(
    table: &FdTable,
    epfd: i32,
    maxevents: i32,
    kind: WaitKind,
    buffer: Buffer,
    items: usize,
) -> SysResult<Vec<Event>> {
    let mut buf = vec![EpollEvent::default(); wait_buffer_len(maxevents, items)];
    // A NULL pointer is an empty buffer: any event to copy out is EFAULT; `buf=N` is a
    // buffer of N entries (the next copy faults).
    let out: &mut [EpollEvent] = match buffer {
        Buffer::Full => &mut buf,
        Buffer::Null => &mut [],
        Buffer::Slots(n) => {
            buf.resize(buf.len().max(n), EpollEvent::default());
            &mut buf[..n]
        }
    };
    let n = match kind {
        WaitKind::Wait { timeout_ms } => table.epoll_wait(epfd, out, maxevents, timeout_ms),
        WaitKind::Pwait {
            timeout_ms,
            sigsetsize,
        } => {
            let mask = [0u8; 128];
            table.epoll_pwait(epfd, out, maxevents, timeout_ms, Some(&mask), sigsetsize)
        }
        WaitKind::Pwait2 { timeout } => {
            let ts = timeout.map(|(tv_sec, tv_nsec)| Timespec { tv_sec, tv_nsec });
            table.epoll_pwait2(epfd, out, maxevents, ts.as_ref())
        }
    }
    .map_err(err)?;
    Ok(out
        .iter()
        .take(n)
        .map(|e| (e.events().bits(), e.data()))
        .collect())
}

/// `poll()` on one descriptor of the engine's table.
fn poll_call(table: &FdTable, fd: i32, events: i16, timeout_ms: i32) -> SysResult<i16> {
    let mut p = [PollFd {
        fd,
        events,
        revents: 0,
    }];
    table.poll(&mut p, timeout_ms).map_err(err)?;
    Ok(p[0].revents)
}

/// `select()` with `fd` in all three sets, as the kernel does it: a poll asking for the
/// three sets' bits, the result mapped back to sets; a descriptor closed at the call is
/// `EBADF`, one closed by another thread during the wait is `NVAL`, which Linux (since
/// 6.x, `POLLIN_SET`/`POLLOUT_SET`/`POLLEX_SET` include `EPOLLNVAL`) reports in every set.
fn select_call(table: &FdTable, fd: i32, timeout_ms: i32) -> SysResult<SelectSets> {
    // POLLIN_SET | POLLOUT_SET | POLLEX_SET
    let want = (Events::IN
        | Events::RDNORM
        | Events::RDBAND
        | Events::OUT
        | Events::WRNORM
        | Events::WRBAND
        | Events::PRI)
        .bits() as i16;
    if fd < -1 {
        return Err(Errno(libc::EINVAL)); // nfds = fd + 1 < 0
    }
    if fd == -1 {
        // nfds = 0: a plain sleep for the timeout.
        table.poll(&mut [], timeout_ms).map_err(err)?;
        return Ok(SelectSets::from_mask(0));
    }
    if table.get(fd).is_err() {
        return Err(Errno(libc::EBADF)); // max_select_fd, before any wait
    }
    let revents = poll_call(table, fd, want, timeout_ms)? as u16 as u32;
    if revents & Events::NVAL.bits() != 0 {
        // fd is in all three sets.
        return Ok(SelectSets {
            count: 3,
            read: true,
            write: true,
            except: true,
        });
    }
    Ok(SelectSets::from_mask(revents))
}
