//! Nesting checks for ADD: loops and depth (`ELOOP`), and wakeup-path limits (`EINVAL`).
//!
//! Both run only when nesting is involved (the target is an instance, or the instance being
//! added to is itself watched), under the global `NEST_CHECK` lock and without any
//! instance's `mtx` held by the caller; they lock each visited instance's `mtx` briefly.
//!
//! - Loop/depth (Linux's `ep_loop_check`): `down` = how many levels of instances lie below
//!   the target (reaching the instance being added to is a loop); `up` = how many lie above
//!   that instance. `down + 1 + up > EP_MAX_NESTS` is `ELOOP`: a chain of five instances is
//!   accepted, a sixth link is refused.
//! - Wakeup paths (Linux's `reverse_path_check`): for each plain file whose paths change —
//!   the target, or the plain files below a target instance — count the paths from it up to
//!   top-level instances by length; paths through 1, 2, 3, 4 intermediate instances are
//!   limited to 500, 100, 50, 10 (direct watches are unlimited), and longer ones refused.

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

/// Refuse (with `ELOOP`) adding `to` into `ep` when it would close a loop or nest too deep.
/// Plain files below `to` are appended to `files` for the wakeup-path check.
pub(super) fn loop_check(
    ep: &Arc<EpollShared>,
    to: &Arc<EpollShared>,
    files: &mut Vec<Arc<dyn FileOps>>,
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

fn depth_below(
    ep: &EpollShared,
    depth: usize,
    inserting_into: usize,
    memo: &mut BTreeMap<usize, usize>,
    files: &mut Vec<Arc<dyn FileOps>>,
) -> usize {
    if let Some(&d) = memo.get(&id(ep)) {
        return d;
    }
    let (children, plain) = ep.children();
    for f in plain {
        if !files
            .iter()
            .any(|g| core::ptr::addr_eq(Arc::as_ptr(g), Arc::as_ptr(&f)))
        {
            files.push(f);
        }
    }
    let mut result = 0;
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
pub(super) fn reverse_path_check(files: &[Arc<dyn FileOps>]) -> bool {
    files.iter().all(|f| {
        let watchers: Vec<Arc<EpollShared>> = f
            .wait_queue()
            .map(|q| q.items().into_iter().map(|(ep, _)| ep).collect())
            .unwrap_or_default();
        let mut counts = [0usize; EP_MAX_NESTS + 1];
        paths_ok(&watchers, 0, &mut counts)
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
