//! `fork` shares instances: just before a `fork`, every eventpoll instance is handed over to
//! the kernel's epoll, so that parent and child share one instance as Linux's do.
//!
//! An instance's number already refers to a real kernel epoll `E` (it watches the
//! instance's bell; see [`crate::process`]), and `fork` shares `E` between parent and child
//! as one open file description. The prepare handler (running with the [`Gate`] held
//! exclusively, after the driver's pending wakeups were delivered) takes every item out of
//! every engine instance ([`eventpoll::Epoll::take_items`]), removes the bells from the
//! `E`s and adds the items to the `E`s themselves, in an order and a way that keep what the
//! engine had. The order is one schedule over the items of all instances that keeps:
//!
//! - **each file's wake order**: a file wakes its items newest registration first, so one
//!   file's items (of every instance) are added in their registration order
//!   ([`eventpoll::TakenItem::seq`]);
//! - **each ready list's order**: the kernel queues an item that is ready when it is added,
//!   so an instance's ready-list items are added in ready-list order;
//! - **nesting**: an item that watches an instance is added after that instance's items
//!   (so that it is queued if the instance is ready);
//! - **quiet items first**: an instance's ready-list items wait for its quiet items, items
//!   that must not be reported although their file is ready —
//!   an edge-triggered item already reported, a one-shot item that fired (disabled: only
//!   its flags left) — are added while their `E` has nothing queued, and the report the
//!   kernel queues at once is taken with a zero-timeout `epoll_wait` (which also disables
//!   the one-shot item, as Linux left it).
//!
//! Within those constraints items go quiet ones first, then ready-list ones, then the rest;
//! when the constraints form a cycle (possible only with several instances or numbers on
//! one file), the first item in that preference goes next. A quiet item also goes before
//! its file's older ready-list items of the same instance (whose queued reports would
//! otherwise be taken with its own), so that file then wakes those items in the other
//! order. A disabled one-shot item whose
//! file is ready for nothing cannot be disabled by a report: it is left watching only
//! `ERR|HUP`. A quiet item that the constraints put after a queued item of its `E` cannot
//! have its report taken without taking that item's: an edge-triggered one is then
//! reported once more, a disabled one-shot one watches only `ERR|HUP`.
//!
//! An item whose number no longer refers to its file (a ghost: the number was closed while
//! another number kept the file open) is added under its old number when that number is
//! free, else under a hidden number, through a temporary duplicate that is closed at once.
//! Afterwards the instances' numbers leave the process table: every call on them goes
//! straight to the kernel, in both processes. Threads that were waiting on an instance are
//! woken ([`eventpoll_host::HostEpoll::retire`]) and carry on waiting in the kernel.
//!
//! [`Gate`]: crate::process::Gate

use crate::log::{trace, Ret};
use crate::process::{HostDesc, Instance, Process, Slot};
use eventpoll::{Events, TakenItem};
use eventpoll_host::{sys, HostFd};
use std::collections::HashMap;
use std::sync::Arc;

/// Every condition bit an item can watch (for a one-shot item to fire at once on whatever
/// its file is ready for).
const ALL_CONDITIONS: u32 = HostFd::IN_BITS.union(HostFd::OUT_BITS).bits();

/// One instance to hand over.
struct Plan {
    inst: Arc<Instance>,
    /// The numbers referring to its `E` (dups included).
    numbers: Vec<i32>,
    items: Vec<TakenItem>,
}

/// How an item is added.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A one-shot item that fired: added armed for everything, its report taken.
    Disabled,
    /// An edge-triggered item off the ready list: if its file is ready, its report is taken.
    Reported,
    /// On the ready list.
    Listed,
    /// Any other item.
    Plain,
}

impl Kind {
    /// Must not be reported although its file may be ready (its report is taken back).
    fn is_quiet(self) -> bool {
        matches!(self, Kind::Disabled | Kind::Reported)
    }
}

/// One item in the schedule.
struct Node {
    plan: usize,
    item: TakenItem,
    kind: Kind,
    /// Its target's queue (in `Schedule::targets`).
    target: usize,
    /// The plan of the instance it watches, if it watches one.
    watches_plan: Option<usize>,
    /// Its place on its instance's ready list (`Kind::Listed`; 0 for the others).
    ready_pos: usize,
}

/// Queues of node indices, each consumed in order (entries may be taken out of turn when
/// a cycle is broken: `done` skips them).
struct Queue {
    nodes: Vec<usize>,
    at: usize,
}

impl Queue {
    fn head(&mut self, done: &[bool]) -> Option<usize> {
        while self.at < self.nodes.len() && done[self.nodes[self.at]] {
            self.at += 1;
        }
        self.nodes.get(self.at).copied()
    }

    /// The first entry not done and not passed over by `pass`.
    fn first_not(&mut self, done: &[bool], pass: impl Fn(usize) -> bool) -> Option<usize> {
        self.head(done)?;
        self.nodes[self.at..]
            .iter()
            .copied()
            .find(|&n| !done[n] && !pass(n))
    }
}

impl Process {
    /// Hand every instance over to the kernel (see the module documentation). Called by the
    /// `fork` prepare handler with the gate held exclusively.
    pub(crate) fn hand_over_instances(&self) {
        // One pass over the table: the instances (with their numbers) and the host
        // descriptions, both by description id.
        let mut plans: Vec<Plan> = Vec::new();
        let mut plan_of: HashMap<usize, usize> = HashMap::new();
        let mut descs: HashMap<usize, Arc<HostDesc>> = HashMap::new();
        for (n, slot) in self.slots() {
            match slot {
                Slot::Epoll(inst) => {
                    let id = inst.hep.epoll().file().description_id();
                    let next = plans.len();
                    let i = *plan_of.entry(id).or_insert(next);
                    if i == next {
                        plans.push(Plan {
                            inst,
                            numbers: Vec::new(),
                            items: Vec::new(),
                        });
                    }
                    plans[i].numbers.push(n);
                }
                Slot::Host(d) => {
                    descs.entry(d.file.description_id()).or_insert(d);
                }
                Slot::Hidden => {}
            }
        }
        if plans.is_empty() {
            return;
        }
        for p in &mut plans {
            p.items = p.inst.hep.epoll().take_items();
        }
        // The host no longer needs to watch for these items.
        for p in &plans {
            let key = Arc::as_ptr(&p.inst) as usize;
            for it in &p.items {
                if let Some(d) = descs.get(&it.target_id()) {
                    d.record(key, it.fd, None);
                }
            }
        }
        for d in descs.values() {
            let _ = d.ask_host(None);
        }
        // The numbers that refer to each target.
        let mut numbers: HashMap<usize, Vec<i32>> =
            descs.iter().map(|(&id, d)| (id, d.numbers())).collect();
        for (&id, &i) in &plan_of {
            numbers.insert(id, plans[i].numbers.clone());
        }
        for p in &plans {
            let _ = sys::epoll_ctl(
                p.numbers[0],
                libc::EPOLL_CTL_DEL,
                p.inst.hep.bell().fd(),
                None,
            );
        }
        let order = schedule(&plans, &plan_of);
        let mut lost = vec![0usize; plans.len()];
        for node in &order {
            let e = plans[node.plan].numbers[0];
            let it = &node.item;
            let none = Vec::new();
            let nums = numbers.get(&it.target_id()).unwrap_or(&none);
            let ok = self.under_number(it.fd, nums, |fd| add(e, fd, it, node.kind));
            lost[node.plan] += usize::from(!ok);
        }
        for (p, lost) in plans.iter().zip(lost) {
            let (e, items) = (p.numbers[0], p.items.len());
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

/// Add one item to the kernel epoll `e` under number `fd` (see the module documentation).
fn add(e: i32, fd: i32, it: &TakenItem, kind: Kind) -> sys::SysResult<()> {
    let bits = it.events.bits();
    let ctl = |op, ev| sys::epoll_ctl(e, op, fd, Some((ev, it.data)));
    // Nothing queued in `e` yet (a readable epoll has a ready item queued): a report the
    // kernel queues now can be taken back alone.
    let clean = || sys::poll_mask(e) & libc::POLLIN as u32 == 0;
    match kind {
        Kind::Disabled => {
            if !clean() {
                return ctl(libc::EPOLL_CTL_ADD, bits);
            }
            ctl(libc::EPOLL_CTL_ADD, bits | ALL_CONDITIONS)?;
            if take_one(e) == 0 {
                ctl(libc::EPOLL_CTL_MOD, bits)?;
            }
            Ok(())
        }
        Kind::Reported => {
            let ready = sys::poll_mask(fd) & bits != 0;
            let clean = ready && clean();
            ctl(libc::EPOLL_CTL_ADD, bits)?;
            if clean {
                take_one(e);
            }
            Ok(())
        }
        Kind::Listed => {
            // On the ready list although its file is not ready for it (a wakeup queued it
            // that its poll does not confirm: Linux keeps it there, in its place, until a
            // harvest polls it). The kernel queues an item only if it is ready when
            // added, so it is added watching every condition its file is ready for and
            // narrowed at once: `EPOLL_CTL_MOD` never takes a queued item off the list.
            // Not possible for an exclusive item (no `MOD`) or a file ready for nothing.
            let now = sys::poll_mask(fd);
            // `ERR` and `HUP` count for every item.
            let always = (libc::EPOLLERR | libc::EPOLLHUP) as u32;
            let any = ALL_CONDITIONS | libc::EPOLLRDHUP as u32;
            let ready = now & (bits | always) & (any | always) != 0;
            if !ready && now & any != 0 && bits & libc::EPOLLEXCLUSIVE as u32 == 0 {
                ctl(libc::EPOLL_CTL_ADD, bits | any)?;
                return ctl(libc::EPOLL_CTL_MOD, bits);
            }
            ctl(libc::EPOLL_CTL_ADD, bits)
        }
        Kind::Plain => ctl(libc::EPOLL_CTL_ADD, bits),
    }
}

/// Take one queued report off a kernel epoll without blocking; returns how many (0 or 1).
fn take_one(e: i32) -> usize {
    let mut buf = [libc::epoll_event { events: 0, u64: 0 }];
    sys::epoll_wait(e, &mut buf, 0).unwrap_or(0)
}

/// The items of every plan in the order they are added (see the module documentation).
fn schedule(plans: &[Plan], plan_of: &HashMap<usize, usize>) -> Vec<Node> {
    let mut nodes = Vec::new();
    let mut target_index: HashMap<usize, usize> = HashMap::new();
    let mut targets: Vec<Queue> = Vec::new();
    let mut listed: Vec<Queue> = Vec::new();
    let mut remaining: Vec<usize> = Vec::new();
    for (pi, p) in plans.iter().enumerate() {
        let mut ready = Vec::new();
        for it in &p.items {
            let mut ready_pos = 0;
            let kind = if (it.events - Events::PRIVATE).is_empty() {
                Kind::Disabled
            } else if it.ready {
                ready_pos = ready.len();
                ready.push(nodes.len());
                Kind::Listed
            } else if it.events.contains(Events::ET) {
                Kind::Reported
            } else {
                Kind::Plain
            };
            let next = targets.len();
            let target = *target_index.entry(it.target_id()).or_insert(next);
            if target == next {
                targets.push(Queue {
                    nodes: Vec::new(),
                    at: 0,
                });
            }
            targets[target].nodes.push(nodes.len());
            nodes.push(Node {
                ready_pos,
                plan: pi,
                item: *it,
                kind,
                target,
                watches_plan: plan_of.get(&it.target_id()).copied(),
            });
        }
        listed.push(Queue {
            nodes: ready,
            at: 0,
        });
        remaining.push(p.items.len());
    }
    for q in &mut targets {
        q.nodes.sort_by_key(|&n| nodes[n].item.seq);
    }
    // Preference: quiet items, then ready-list items (in order), then the rest; by
    // registration within each.
    let mut pending: Vec<usize> = (0..nodes.len()).collect();
    pending.sort_by_key(|&n| {
        let node = &nodes[n];
        let class = match node.kind {
            Kind::Disabled | Kind::Reported => 0,
            Kind::Listed => 1,
            Kind::Plain => 2,
        };
        (class, node.ready_pos, node.item.seq)
    });
    // Quiet items not yet added, per plan: a plan's ready-list items wait for them.
    let mut quiet_left = vec![0usize; plans.len()];
    for node in nodes.iter().filter(|n| n.kind.is_quiet()) {
        quiet_left[node.plan] += 1;
    }
    let emit = |n: usize, done: &mut [bool], remaining: &mut [usize], quiet_left: &mut [usize]| {
        done[n] = true;
        remaining[nodes[n].plan] -= 1;
        if nodes[n].kind.is_quiet() {
            quiet_left[nodes[n].plan] -= 1;
        }
    };
    let mut done = vec![false; nodes.len()];
    let mut out_order = Vec::with_capacity(nodes.len());
    while !pending.is_empty() {
        let mut rest = Vec::with_capacity(pending.len());
        for &n in &pending {
            let node = &nodes[n];
            // A quiet item goes before its file's older ready-list items of its own
            // instance: once those are queued, its report could not be taken alone (the
            // file then wakes those two in the other order: the lesser deviation).
            let quiet = node.kind.is_quiet();
            let first = targets[node.target].first_not(&done, |m| {
                quiet && nodes[m].plan == node.plan && nodes[m].kind == Kind::Listed
            });
            let free = first == Some(n)
                && (node.kind != Kind::Listed
                    || (quiet_left[node.plan] == 0 && listed[node.plan].head(&done) == Some(n)))
                && node
                    .watches_plan
                    .is_none_or(|j| j == node.plan || remaining[j] == 0);
            if free {
                emit(n, &mut done, &mut remaining, &mut quiet_left);
                out_order.push(n);
            } else {
                rest.push(n);
            }
        }
        if rest.len() == pending.len() {
            // A cycle: the most preferred item goes next.
            let n = rest.remove(0);
            emit(n, &mut done, &mut remaining, &mut quiet_left);
            out_order.push(n);
        }
        pending = rest;
    }
    let mut slots: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
    out_order
        .into_iter()
        .filter_map(|n| slots[n].take())
        .collect()
}
