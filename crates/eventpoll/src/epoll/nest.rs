//! Nesting checks for ADD: loops and depth (`ELOOP`), and wakeup-path limits (`EINVAL`).
//!
//! Both run only when nesting is involved (the target is an instance, or the instance being
//! added to is itself watched), under the global `NEST_CHECK` lock and without any
//! instance's `mtx` held by the caller; they lock each visited instance's `mtx` briefly.
//!
//! - Loop/depth (Linux's `ep_loop_check`): `down` = how many levels of instances lie below
//!   the target (reaching the instance being added to is a loop); `up` = how many lie above
//!   that instance. `down + 1 + up > EP_MAX_NESTS` is `ELOOP`: a chain of five instances is
//!   accepted, a sixth link is refused. An instance outside the engine (a host's kernel
//!   instance) counts the levels its object reports (`FileOps::foreign_epoll_depth`), as a
//!   target and below an instance; a loop through one cannot be seen.
//! - Wakeup paths (Linux's `reverse_path_check`): for each plain file whose paths change —
//!   the target, or the plain files below a target instance — count the paths from it up to
//!   top-level instances by length; paths through 1, 2, 3, 4 intermediate instances are
//!   limited to 500, 100, 50, 10 (direct watches are unlimited), and longer ones refused.
//!   Paths start at the items of that *open file description* (Linux walks the file's
//!   `f_ep`), not at everything hooked on its object's wait queue: two opens of one FIFO, or
//!   a pipe's two ends, share wait queues but not paths. Which items watch a description is
//!   read before the instance's `mtx` is taken ([`PathFile::of`]), since reading another
//!   instance's items needs its `mtx`, which may not be taken while ours is held.

use super::{EpollShared, EP_MAX_NESTS};
use crate::errno::{Errno, Result};
use crate::file::FileOps;
use crate::prelude::*;
use crate::sync::Arc;
use alloc::collections::BTreeMap;

/// Serialises every nesting check (Linux's `epnested_mutex`).
pub(super) static NEST_CHECK: crate::sync::GlobalMutex<()> = crate::sync::GlobalMutex::new(());

/// Path limits by number of intermediate instances (index 0: direct watches, unlimited).
const PATH_LIMITS: [usize; EP_MAX_NESTS + 1] = [1000, 500, 100, 50, 10];

fn id(ep: &EpollShared) -> usize {
    ep as *const EpollShared as usize
}

/// A plain file (an open file description) whose wakeup paths an ADD changes, with the
/// instances whose items watch it (one entry per item: Linux's `f_ep`).
pub(super) struct PathFile {
    watchers: Vec<Arc<EpollShared>>,
}

impl PathFile {
    /// The items that watch the description `key` of object `ops` now, found through the
    /// object's wait queue, each instance asked under its `mtx` whether its item there is
    /// for this description. Called under `NEST_CHECK`, with no instance's `mtx` held.
    pub(super) fn of(key: usize, ops: &Arc<dyn FileOps>) -> PathFile {
        let watchers = ops
            .wait_queue()
            .map(|q| q.items())
            .unwrap_or_default()
            .into_iter()
            .filter(|(ep, slot)| ep.item_key(*slot) == Some(key))
            .map(|(ep, _)| ep)
            .collect();
        PathFile { watchers }
    }

    /// Count the item being added (watching this description from `ep`).
    pub(super) fn with_new_item(mut self, ep: Arc<EpollShared>) -> PathFile {
        self.watchers.push(ep);
        self
    }
}

/// Refuse (with `ELOOP`) adding `to` into `ep` when it would close a loop or nest too deep.
/// Plain files below `to` (descriptions, by key) are appended to `files` for the wakeup-path
/// check.
pub(super) fn loop_check(
    ep: &Arc<EpollShared>,
    to: &Arc<EpollShared>,
    files: &mut Vec<(usize, Arc<dyn FileOps>)>,
) -> Result<()> {
    let mut memo = BTreeMap::new();
    let down = depth_below(to, 0, id(ep), &mut memo, files);
    if down > EP_MAX_NESTS {
        return Err(Errno::ELOOP);
    }
    let up = depth_above(ep, &mut memo);
    if down + 1 + up > EP_MAX_NESTS {
        return Err(Errno::ELOOP);
    }
    Ok(())
}

/// Refuse (with `ELOOP`) adding an instance outside the engine with `down` levels of
/// instances below it into `ep`: Linux's depth rule, `down + 1 + up > EP_MAX_NESTS` (a
/// loop through it cannot be seen from here).
pub(super) fn depth_check(ep: &Arc<EpollShared>, down: usize) -> Result<()> {
    if down > EP_MAX_NESTS {
        return Err(Errno::ELOOP);
    }
    let up = depth_above(ep, &mut BTreeMap::new());
    if down + 1 + up > EP_MAX_NESTS {
        return Err(Errno::ELOOP);
    }
    Ok(())
}

fn depth_below(
    ep: &EpollShared,
    depth: usize,
    inserting_into: usize,
    memo: &mut BTreeMap<usize, usize>,
    files: &mut Vec<(usize, Arc<dyn FileOps>)>,
) -> usize {
    if let Some(&d) = memo.get(&id(ep)) {
        return d;
    }
    let (children, plain) = ep.children();
    let mut result = 0;
    for (key, f) in plain {
        // An instance outside the engine counts its own levels (see
        // `FileOps::foreign_epoll_depth`); the files below it are out of sight.
        if let Some(d) = f.foreign_epoll_depth() {
            result = result.max(d.saturating_add(1).min(EP_MAX_NESTS + 1));
            continue;
        }
        if !files.iter().any(|(k, _)| *k == key) {
            files.push((key, f));
        }
    }
    for child in children {
        result = if id(&child) == inserting_into || depth > EP_MAX_NESTS {
            EP_MAX_NESTS + 1
        } else {
            result.max(depth_below(&child, depth + 1, inserting_into, memo, files) + 1)
        };
        if result > EP_MAX_NESTS {
            break;
        }
    }
    memo.insert(id(ep), result);
    result
}

fn depth_above(ep: &EpollShared, memo: &mut BTreeMap<usize, usize>) -> usize {
    if let Some(&d) = memo.get(&id(ep)) {
        return d;
    }
    let result = ep
        .parents()
        .iter()
        .map(|p| depth_above(p, memo) + 1)
        .max()
        .unwrap_or(0);
    memo.insert(id(ep), result);
    result
}

/// Whether every file in `files` stays within the wakeup-path limits.
pub(super) fn reverse_path_check(files: &[PathFile]) -> bool {
    files.iter().all(|f| {
        let mut counts = [0usize; EP_MAX_NESTS + 1];
        paths_ok(&f.watchers, 0, &mut counts)
    })
}

fn paths_ok(eps: &[Arc<EpollShared>], depth: usize, counts: &mut [usize]) -> bool {
    if depth > EP_MAX_NESTS {
        return false;
    }
    eps.iter().all(|ep| {
        let parents = ep.parents();
        if parents.is_empty() {
            depth == 0 || {
                counts[depth] += 1;
                counts[depth] <= PATH_LIMITS[depth]
            }
        } else {
            paths_ok(&parents, depth + 1, counts)
        }
    })
}
