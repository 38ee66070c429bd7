//! `fork` shares instances: just before a `fork`, every eventpoll instance is handed over to
//! the kernel's epoll, so that parent and child share one instance as Linux's do.
//!
//! An instance's number already refers to a real kernel epoll `E` (it watches the
//! instance's bell; see [`crate::process`]), and `fork` shares `E` between parent and child
//! as one open file description. The prepare handler (running with the [`Gate`] held
//! exclusively, after the driver's pending wakeups were delivered) takes every item out of
//! every engine instance ([`eventpoll::Epoll::take_items`]), removes the bell from `E` and
//! adds the items to `E` itself, in an order and a way that keep what the engine had:
//!
//! 1. Inner instances first (an item watching an instance is added after that instance's
//!    own items are in its `E`).
//! 2. Items that must not be reported although their file is ready — an edge-triggered item
//!    that was already reported, a one-shot item that fired (disabled: only its flags
//!    left) — are added, and the report the kernel queues at once is taken with a
//!    zero-timeout `epoll_wait` (which also disables the one-shot item, as Linux left it).
//!    A disabled one-shot item whose file is ready for nothing cannot be disabled that way:
//!    it is left watching only `ERR|HUP`.
//! 3. The items of the ready list, in its order (the kernel queues those that are ready
//!    when they are added, in that order).
//! 4. The other items.
//!
//! An item whose number no longer refers to its file (a ghost: the number was closed while
//! another number kept the file open) is added under its old number when that number is
//! free, else under a hidden number, through a temporary duplicate that is closed at once.
//! Afterwards the instance's numbers leave the process table: every call on them goes
//! straight to the kernel, in both processes. Threads that were waiting on an instance are
//! woken ([`eventpoll_host::HostEpoll::retire`]) and carry on waiting in the kernel.
//!
//! [`Gate`]: crate::process::Gate

use crate::log::{trace, Ret};
use crate::process::{Instance, Process, Slot};
use eventpoll::{Events, TakenItem};
use eventpoll_host::sys;
use std::sync::Arc;

/// Every condition bit an item can watch (for a one-shot item to fire at once on whatever
/// its file is ready for).
const ALL_CONDITIONS: u32 = (libc::EPOLLIN
    | libc::EPOLLPRI
    | libc::EPOLLOUT
    | libc::EPOLLRDNORM
    | libc::EPOLLRDBAND
    | libc::EPOLLWRNORM
    | libc::EPOLLWRBAND
    | libc::EPOLLMSG
    | libc::EPOLLRDHUP) as u32;

/// One instance to hand over.
struct Plan {
    inst: Arc<Instance>,
    /// The numbers referring to its `E` (dups included).
    numbers: Vec<i32>,
    items: Vec<TakenItem>,
}

impl Process {
    /// Hand every instance over to the kernel (see the module documentation). Called by the
    /// `fork` prepare handler with the gate held exclusively.
    pub(crate) fn hand_over_instances(&self) {
        let slots = self.slots();
        let mut plans: Vec<Plan> = Vec::new();
        for (n, slot) in &slots {
            if let Slot::Epoll(inst) = slot {
                match plans.iter_mut().find(|p| Arc::ptr_eq(&p.inst, inst)) {
                    Some(p) => p.numbers.push(*n),
                    None => plans.push(Plan {
                        inst: inst.clone(),
                        numbers: vec![*n],
                        items: Vec::new(),
                    }),
                }
            }
        }
        if plans.is_empty() {
            return;
        }
        for p in &mut plans {
            p.items = p.inst.hep.epoll().take_items();
        }
        // The host no longer needs to watch for these items.
        let descs = self.host_descs();
        for p in &plans {
            let key = Arc::as_ptr(&p.inst) as usize;
            for it in &p.items {
                if let Some(d) = descs.iter().find(|d| it.targets(&d.file)) {
                    d.record(key, it.fd, None);
                }
            }
        }
        for d in &descs {
            let _ = d.ask_host(None);
        }
        // The numbers that refer to an item's target.
        let numbers_of = |it: &TakenItem| -> Vec<i32> {
            if let Some(d) = descs.iter().find(|d| it.targets(&d.file)) {
                return d.numbers();
            }
            plans
                .iter()
                .find(|p| it.targets(p.inst.hep.epoll().file()))
                .map(|p| p.numbers.clone())
                .unwrap_or_default()
        };
        for i in inner_first(&plans) {
            let plan = &plans[i];
            let e = plan.numbers[0];
            let _ = sys::epoll_ctl(e, libc::EPOLL_CTL_DEL, plan.inst.hep.bell().fd(), None);
            let mut rest = Vec::new();
            let mut lost = 0;
            // Step 2: items that must stay quiet.
            for it in &plan.items {
                let bits = it.events.bits();
                let disabled = (it.events - Events::PRIVATE).is_empty();
                let numbers = numbers_of(it);
                if disabled {
                    lost += !self.under_number(it.fd, &numbers, |fd| {
                        sys::epoll_ctl(
                            e,
                            libc::EPOLL_CTL_ADD,
                            fd,
                            Some((bits | ALL_CONDITIONS, it.data)),
                        )?;
                        if take_one(e) == 0 {
                            sys::epoll_ctl(e, libc::EPOLL_CTL_MOD, fd, Some((bits, it.data)))?;
                        }
                        Ok(())
                    }) as usize;
                } else if !it.ready && it.events.contains(Events::ET) {
                    lost += !self.under_number(it.fd, &numbers, |fd| {
                        let ready = sys::poll_mask(fd) & bits != 0;
                        sys::epoll_ctl(e, libc::EPOLL_CTL_ADD, fd, Some((bits, it.data)))?;
                        if ready {
                            take_one(e);
                        }
                        Ok(())
                    }) as usize;
                } else {
                    rest.push((it, numbers));
                }
            }
            // Steps 3 and 4: the ready list in order, then the others (`take_items` order).
            for (it, numbers) in rest {
                lost += !self.under_number(it.fd, &numbers, |fd| {
                    sys::epoll_ctl(
                        e,
                        libc::EPOLL_CTL_ADD,
                        fd,
                        Some((it.events.bits(), it.data)),
                    )
                }) as usize;
            }
            let items = plan.items.len();
            trace(
                || format!("fork: instance {e} to the kernel: {items} items, {lost} not carried"),
                Ret(0),
            );
        }
        for p in &plans {
            p.inst.hep.retire();
            drop(self.set(p.inst.hep.bell().fd(), None));
            for &n in &p.numbers {
                drop(self.set(n, None));
            }
        }
    }

    /// Run `add` with a number that refers to the item's target and equals `fd` when it
    /// can: `fd` itself when it still refers to it; else a temporary duplicate of one of
    /// `numbers` at `fd` when `fd` is free, or at a hidden number (closed afterwards). An
    /// item with no known number is dropped (its file is gone, or was never known). Returns
    /// whether `add` ran and succeeded.
    fn under_number(
        &self,
        fd: i32,
        numbers: &[i32],
        add: impl FnOnce(i32) -> sys::SysResult<()>,
    ) -> bool {
        if numbers.contains(&fd) {
            return add(fd).is_ok();
        }
        let Some(&src) = numbers.first() else {
            return false;
        };
        let tmp = if fd >= 0 && fd < self.hidden_base && !sys::is_open(fd) {
            sys::dup3(src, fd, libc::O_CLOEXEC)
        } else {
            sys::fcntl(src, libc::F_DUPFD_CLOEXEC, self.hidden_base as libc::c_long)
        };
        let Ok(t) = tmp else { return false };
        let ok = add(t).is_ok();
        let _ = sys::close(t);
        ok
    }
}

/// Take one queued report off a kernel epoll without blocking; returns how many (0 or 1).
fn take_one(e: i32) -> usize {
    let mut buf = [libc::epoll_event { events: 0, u64: 0 }];
    sys::epoll_wait(e, &mut buf, 0).unwrap_or(0)
}

/// The plans' indices, each instance after every instance one of its items watches.
fn inner_first(plans: &[Plan]) -> Vec<usize> {
    fn visit(i: usize, plans: &[Plan], done: &mut Vec<bool>, out: &mut Vec<usize>) {
        if done[i] {
            return;
        }
        done[i] = true;
        for it in &plans[i].items {
            if let Some(j) = plans
                .iter()
                .position(|p| it.targets(p.inst.hep.epoll().file()))
            {
                visit(j, plans, done, out);
            }
        }
        out.push(i);
    }
    let mut done = vec![false; plans.len()];
    let mut out = Vec::with_capacity(plans.len());
    for i in 0..plans.len() {
        visit(i, plans, &mut done, &mut out);
    }
    out
}
