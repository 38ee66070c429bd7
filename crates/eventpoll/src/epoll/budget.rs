//! The watch budget ([`User`]): Linux's per-user `epoll_watches` counter against
//! `max_user_watches`, charged by ADD and refunded by every removal, without an atomic
//! read-modify-write on the common path.
//!
//! Linux keeps the count in a per-CPU counter; here each instance keeps a *reservation*
//! ([`Reserve`]): watches taken from the user's count in batches, handed out to its own ADDs
//! and refilled by its removals, all under the instance's `mtx` with plain loads and stores.
//! The user's count (`charged`) is the watches in use plus every instance's reservation;
//! it changes only under the user's `reserves` lock, which lists the reservations, so that
//! [`User::watches`] — `charged` minus the reservations — is exact.
//!
//! `ENOSPC` stays exactly Linux's test, "watches in use ≥ the limit": a reservation is used
//! without a look at the other instances only while `charged` ≤ the limit (then the watches
//! in use, reservations excluded, are below it); otherwise — near the limit, or after the
//! limit was lowered under the count — the ADD counts the watches in use exactly, under the
//! `reserves` lock. Batches are taken only when they fit under the limit.

use crate::errno::{Errno, Result};
use crate::prelude::*;
use crate::sync::{lock, Arc, AtomicUsize, Ordering, SpinLock};

/// Watches an instance takes from its user at once, and returns at once when it holds
/// twice as many unused.
const BATCH: usize = 32;

/// A watch budget shared by every instance of one user (Linux's per-user `epoll_watches`
/// against `/proc/sys/fs/epoll/max_user_watches`): an ADD beyond it fails with `ENOSPC`.
///
/// ```
/// use eventpoll::{User, FdTable, TableConfig, EpollEvent, Events, Errno};
/// let user = User::new(1);
/// let t = FdTable::with_config(TableConfig::default(), user.clone());
/// let ep = t.epoll_create1(0).unwrap();
/// let (a, b) = (t.eventfd(0, 0).unwrap(), t.eventfd(0, 0).unwrap());
/// let ev = EpollEvent::new(Events::IN, 0);
/// t.epoll_ctl(ep, 1, a, Some(&ev)).unwrap();
/// assert_eq!(t.epoll_ctl(ep, 1, b, Some(&ev)), Err(Errno::ENOSPC));
/// assert_eq!(user.watches(), 1);
/// ```
#[derive(Debug)]
pub struct User {
    /// Watches in use plus the instances' reservations. Stored only under `reserves`; read
    /// without it by the common path of [`User::charge`].
    charged: AtomicUsize,
    max: AtomicUsize,
    /// The reservations of the instances charging this budget, by [`Reserve::index`]
    /// (`None`: a free index, listed in `free`).
    reserves: SpinLock<Reserves>,
}

#[derive(Debug, Default)]
struct Reserves {
    slots: Vec<Option<Arc<Reserve>>>,
    free: Vec<usize>,
}

impl Reserves {
    /// The watches held unused by every instance.
    fn held(&self) -> usize {
        self.slots.iter().flatten().map(|r| r.held()).sum()
    }
}

/// One instance's reservation: watches charged to the user that none of its items uses
/// yet. Written only by its instance, under the instance's `mtx` (or, when the instance is
/// dropped, by its last owner); read by the user under its `reserves` lock.
#[derive(Debug)]
pub(crate) struct Reserve {
    held: AtomicUsize,
    index: usize,
}

impl Reserve {
    fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
    fn set(&self, held: usize) {
        self.held.store(held, Ordering::Relaxed)
    }
}

impl User {
    /// A budget of `max_watches`.
    pub fn new(max_watches: usize) -> Arc<User> {
        Arc::new(User {
            charged: AtomicUsize::new(0),
            max: AtomicUsize::new(max_watches),
            reserves: SpinLock::new(Reserves::default()),
        })
    }

    /// Watches currently charged (the items of every instance of this user).
    pub fn watches(&self) -> usize {
        let reserves = lock(&self.reserves);
        self.charged.load(Ordering::Relaxed) - reserves.held()
    }

    /// The budget.
    pub fn max_watches(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }

    /// Change the budget (as writing `max_user_watches` does); existing watches stay.
    pub fn set_max_watches(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed)
    }

    /// A new, empty reservation for a new instance.
    pub(crate) fn register(&self) -> Arc<Reserve> {
        let mut reserves = lock(&self.reserves);
        let index = reserves.free.pop().unwrap_or(reserves.slots.len());
        let reserve = Arc::new(Reserve {
            held: AtomicUsize::new(0),
            index,
        });
        if index == reserves.slots.len() {
            reserves.slots.push(Some(reserve.clone()));
        } else {
            reserves.slots[index] = Some(reserve.clone());
        }
        reserve
    }

    /// The instance of `reserve` is gone: its unused watches go back to the user.
    pub(crate) fn unregister(&self, reserve: &Reserve) {
        let mut reserves = lock(&self.reserves);
        self.charged.store(
            self.charged.load(Ordering::Relaxed) - reserve.held(),
            Ordering::Relaxed,
        );
        reserve.set(0);
        reserves.slots[reserve.index] = None;
        reserves.free.push(reserve.index);
    }

    /// Charge one watch to the instance of `reserve` (under its `mtx`): `ENOSPC` when the
    /// watches in use have reached the limit.
    #[inline]
    pub(crate) fn charge(&self, reserve: &Reserve) -> Result<()> {
        let held = reserve.held();
        // `charged` ≤ the limit: the watches in use, which exclude this reservation, are
        // below it (see the module documentation).
        if held > 0 && self.charged.load(Ordering::Relaxed) <= self.max_watches() {
            reserve.set(held - 1);
            return Ok(());
        }
        self.charge_slow(reserve)
    }

    #[cold]
    fn charge_slow(&self, reserve: &Reserve) -> Result<()> {
        let reserves = lock(&self.reserves);
        let max = self.max_watches();
        let charged = self.charged.load(Ordering::Relaxed);
        // Below the limit even with every reservation in use, there is nothing to count.
        if charged >= max && charged - reserves.held() >= max {
            return Err(Errno::ENOSPC);
        }
        let held = reserve.held();
        if held > 0 {
            reserve.set(held - 1);
            return Ok(());
        }
        let take = if charged.saturating_add(BATCH) <= max {
            BATCH
        } else {
            1
        };
        self.charged.store(charged + take, Ordering::Relaxed);
        reserve.set(take - 1);
        Ok(())
    }

    /// Refund one watch of the instance of `reserve` (under its `mtx`).
    #[inline]
    pub(crate) fn refund(&self, reserve: &Reserve) {
        let held = reserve.held() + 1;
        if held < 2 * BATCH {
            reserve.set(held);
        } else {
            self.give_back(reserve, held, BATCH);
        }
    }

    /// Keep `keep` of the `held` unused watches of `reserve`, return the rest.
    #[cold]
    pub(crate) fn give_back(&self, reserve: &Reserve, held: usize, keep: usize) {
        let _reserves = lock(&self.reserves);
        let back = held - keep;
        self.charged.store(
            self.charged.load(Ordering::Relaxed) - back,
            Ordering::Relaxed,
        );
        reserve.set(keep);
    }

    /// Return every unused watch of `reserve` (its instance released its items).
    pub(crate) fn give_back_all(&self, reserve: &Reserve) {
        self.give_back(reserve, reserve.held(), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_never_count_as_watches_and_the_limit_is_exact() {
        let user = User::new(3);
        let (a, b) = (user.register(), user.register());
        // a takes what fits (one: a batch would pass the limit), b too, then a again.
        assert_eq!(user.charge(&a), Ok(()));
        assert_eq!(user.charge(&b), Ok(()));
        assert_eq!(user.charge(&a), Ok(()));
        assert_eq!(user.watches(), 3);
        assert_eq!(user.charge(&b), Err(Errno::ENOSPC));
        user.refund(&a);
        assert_eq!(user.watches(), 2);
        // a's refunded watch is held by a; b may still take the one free watch.
        assert_eq!(user.charge(&b), Ok(()));
        assert_eq!(user.watches(), 3);
        assert_eq!(user.charge(&a), Err(Errno::ENOSPC));
        user.refund(&b);
        user.refund(&b);
        user.unregister(&b);
        assert_eq!(user.watches(), 1); // a's one item
        assert_eq!(user.charge(&a), Ok(())); // from its reservation
        assert_eq!(user.charge(&a), Ok(())); // the last free watch
        assert_eq!(user.watches(), 3);
        assert_eq!(user.charge(&a), Err(Errno::ENOSPC));
    }

    #[test]
    fn batches_are_taken_far_from_the_limit_and_returned_past_two() {
        let user = User::new(1 << 20);
        let r = user.register();
        for n in 1..=100 {
            user.charge(&r).unwrap();
            assert_eq!(user.watches(), n);
        }
        assert!(user.charged.load(Ordering::Relaxed) <= 100 + BATCH);
        for n in (0..100).rev() {
            user.refund(&r);
            assert_eq!(user.watches(), n);
        }
        assert!(r.held() < 2 * BATCH);
        user.give_back_all(&r);
        assert_eq!(user.charged.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_lowered_limit_refuses_an_add_even_with_a_reservation() {
        let user = User::new(1 << 20);
        let r = user.register();
        user.charge(&r).unwrap();
        user.charge(&r).unwrap();
        assert!(r.held() > 0);
        user.set_max_watches(2);
        assert_eq!(user.charge(&r), Err(Errno::ENOSPC));
        user.set_max_watches(3);
        assert_eq!(user.charge(&r), Ok(()));
        assert_eq!(user.watches(), 3);
    }
}
