//! The pollable contract and open file descriptions.
//!
//! - [`Pollable`] is the contract an object must meet to be watched: report its poll mask,
//!   and own a [`WaitQueue`] that it wakes whenever that mask may have changed.
//! - [`FileOps`] is the wider interface of an open file's object (read, write, release);
//!   every [`Pollable`] is a [`FileOps`] automatically.
//! - [`File`] is an *open file description*: what `dup` shares and what an epoll interest
//!   item is keyed by, together with the descriptor number. When the last [`File`] handle of
//!   a description goes away (the last descriptor is closed), the description is *released*:
//!   first every epoll item watching it is removed, then the object's
//!   [`FileOps::release`] runs (so a pipe's peer sees `HUP`) — the order of Linux's
//!   `__fput`.

use crate::errno::{Errno, Result};
use crate::event::Events;
use crate::sync::{Arc, AtomicU32, Ordering};
use crate::wait_queue::WaitQueue;
use core::any::Any;

/// The pollable contract: an object that reports a poll mask and owns a wait queue that it
/// wakes (with the bits that changed, or empty for "unspecified") whenever the mask may have
/// changed. Wake *after* changing the state the mask is computed from.
///
/// # Example: a user-defined object
///
/// A doorbell that is readable once rung; ringing wakes its queue with the bits that became
/// true, which is all an epoll instance needs to watch it.
///
/// ```
/// use eventpoll::{Epoll, Events, File, Interest, Pollable, WaitQueue, EventBuffer};
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::time::Duration;
///
/// #[derive(Default)]
/// struct Doorbell { rung: AtomicBool, queue: WaitQueue }
/// impl Pollable for Doorbell {
///     fn poll(&self) -> Events {
///         if self.rung.load(Ordering::Acquire) { Events::IN } else { Events::empty() }
///     }
///     fn wait_queue(&self) -> &WaitQueue { &self.queue }
/// }
/// impl Doorbell {
///     fn ring(&self) {
///         self.rung.store(true, Ordering::Release);
///         self.queue.wake(Events::IN); // after the state change, never before
///     }
/// }
///
/// let bell = std::sync::Arc::new(Doorbell::default());
/// let file = File::new(bell.clone());
/// let epoll = Epoll::new();
/// epoll.add(&file, Interest::READABLE, 42).unwrap();
/// let mut events = EventBuffer::with_capacity(8);
/// assert_eq!(epoll.wait(&mut events, Some(Duration::ZERO)).unwrap(), 0);
/// bell.ring();
/// assert_eq!(epoll.wait(&mut events, Some(Duration::ZERO)).unwrap(), 1);
/// assert_eq!(events.iter().next().map(|e| e.data()), Some(42));
/// ```
pub trait Pollable: Send + Sync + 'static {
    /// The current readiness (`EPOLLIN`, `EPOLLOUT`, `EPOLLHUP`, ...). Must not block and
    /// must not wake the object's own queue.
    fn poll(&self) -> Events;
    /// The queue this object wakes.
    fn wait_queue(&self) -> &WaitQueue;
}

/// Whether an operation that cannot proceed at once waits: the description's `O_NONBLOCK`
/// as `read(2)` and `write(2)` see it ([`File::io_mode`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IoMode {
    /// Wait until the operation can proceed (no `O_NONBLOCK`).
    #[default]
    Blocking,
    /// Fail with `EAGAIN` instead of waiting (`O_NONBLOCK`).
    NonBlocking,
}

impl IoMode {
    /// Whether this is [`IoMode::NonBlocking`].
    pub fn is_nonblocking(self) -> bool {
        self == IoMode::NonBlocking
    }
}

/// The operations of an open file's object. Implement [`Pollable`] instead when the object
/// only needs to be watched; implement this directly to add reads, writes, a release hook,
/// or to be non-pollable (like a regular file).
///
/// ```
/// use eventpoll::{Errno, Events, FileOps, WaitQueue};
/// /// A file that is not pollable: `epoll_ctl(ADD)` on it fails with `EPERM`.
/// struct Plain;
/// impl FileOps for Plain {
///     fn poll(&self) -> Events { Events::IN | Events::OUT | Events::RDNORM | Events::WRNORM }
///     fn wait_queue(&self) -> Option<&WaitQueue> { None }
/// }
/// ```
pub trait FileOps: Any + Send + Sync {
    /// The current readiness.
    fn poll(&self) -> Events;
    /// The queue the object wakes, or `None` when the object does not support poll (epoll
    /// refuses it with `EPERM`; `poll(2)` reports its [`FileOps::poll`] mask without
    /// waiting).
    fn wait_queue(&self) -> Option<&WaitQueue>;
    /// A second queue the object's epoll items (and `poll(2)` sleepers) also hang on, woken
    /// separately: Linux's FIFO opened `O_RDWR` polls both its pipe's reader and writer
    /// queues, so a wakeup of either reaches its items, each in its own queue's order.
    /// `None` (the default) for every other object.
    fn extra_wait_queue(&self) -> Option<&WaitQueue> {
        None
    }
    /// `read(2)`. `mode` is the description's `O_NONBLOCK`.
    fn read(&self, _buf: &mut [u8], _mode: IoMode) -> Result<usize> {
        Err(Errno::EINVAL)
    }
    /// `write(2)`.
    fn write(&self, _buf: &[u8], _mode: IoMode) -> Result<usize> {
        Err(Errno::EINVAL)
    }
    /// Called once, when the last descriptor of the description is closed, after every
    /// epoll item watching it has been removed.
    fn release(&self) {}
    /// Batched polling (optional). Objects whose masks are cheaper to read together — host
    /// descriptors: one `poll(2)` for many — return a non-zero *batch class*, the same for
    /// every object that their [`FileOps::poll_batch`] can handle; a harvest then polls a
    /// run of such items with one call instead of one [`FileOps::poll`] each. The default,
    /// 0, means no batching.
    ///
    /// A non-zero class also promises that polling the object changes nothing anywhere (a
    /// nested epoll instance's poll does: it drops its items found not ready): a harvest
    /// whose next items are all of one class polls them all before it copies their events
    /// out, without first asking its [`crate::EventSink`] how many slots it can write
    /// ([`crate::EventSink::room`]) — an item polled past a slot that cannot be written is
    /// then left on the ready list, unreported, as if never polled.
    fn batch_class(&self) -> usize {
        0
    }
    /// Poll `batch` — objects whose [`FileOps::batch_class`] equals this object's — at
    /// once, writing each one's mask to the same index of `out` (`out.len() ==
    /// batch.len()`). The default polls them one by one.
    fn poll_batch(&self, batch: &[&dyn FileOps], out: &mut [Events]) {
        for (file, mask) in batch.iter().zip(out.iter_mut()) {
            *mask = file.poll();
        }
    }
    /// For an object that is an epoll instance the engine does not run (a host kernel's
    /// instance, watched through an embedder): how many levels of instances lie below it
    /// (0 when it watches none; 4 or more says "too deep for any ADD"), which an ADD of it
    /// counts as Linux's `ep_loop_check` does: `ELOOP` when that plus one plus the levels
    /// of instances above the one added to exceeds 4. `None` (the default) for every other
    /// object — its ADD runs no depth check.
    ///
    /// ```
    /// use eventpoll::{Epoll, Errno, Events, File, FileOps, Interest, WaitQueue};
    /// use std::sync::Arc;
    /// /// Stands for a foreign instance with three levels of instances below it.
    /// struct Foreign(WaitQueue);
    /// impl FileOps for Foreign {
    ///     fn poll(&self) -> Events { Events::empty() }
    ///     fn wait_queue(&self) -> Option<&WaitQueue> { Some(&self.0) }
    ///     fn foreign_epoll_depth(&self) -> Option<usize> { Some(3) }
    /// }
    /// let f = File::new(Arc::new(Foreign(WaitQueue::new())));
    /// let ep = Epoll::new();
    /// ep.add(&f, Interest::READABLE, 1).unwrap(); // 3 below it + 1 + 0 above `ep`
    /// // Below `ep` now: 4 levels; + 1 + 0 above `outer`: one level too deep.
    /// let outer = Epoll::new();
    /// assert_eq!(outer.add(ep.file(), Interest::READABLE, 2), Err(Errno::ELOOP));
    /// let (top, nested) = (Epoll::new(), Epoll::new());
    /// top.add(nested.file(), Interest::READABLE, 3).unwrap();
    /// // 3 below + 1 + 1 above `nested`: too deep as well.
    /// assert_eq!(nested.add(&f, Interest::READABLE, 4), Err(Errno::ELOOP));
    /// ```
    fn foreign_epoll_depth(&self) -> Option<usize> {
        None
    }
}

impl<T: Pollable> FileOps for T {
    fn poll(&self) -> Events {
        Pollable::poll(self)
    }
    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(Pollable::wait_queue(self))
    }
}

pub(crate) struct OpenFile {
    pub(crate) ops: Arc<dyn FileOps>,
    pub(crate) flags: AtomicU32,
}

impl OpenFile {
    /// The description's identity in interest keys: its address, stable while it lives
    /// (items are removed before it is freed).
    pub(crate) fn key(&self) -> usize {
        self as *const OpenFile as usize
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        // Linux's __fput: eventpoll_release() first, then the object's release. The items
        // watching this description are hooked on its object's queue.
        if let Some(queue) = self.ops.wait_queue() {
            queue.release_items(self.key());
        }
        self.ops.release();
    }
}

/// An open file description: a shared handle to an object plus its status flags
/// (`O_NONBLOCK`). Cloning a `File` is taking another reference (as `dup` does); dropping
/// the last one releases the description.
///
/// ```
/// use eventpoll::{File, objects::eventfd::{EventFd, EventFdMode}};
/// let f = File::new(EventFd::new(0, EventFdMode::Counter));
/// let g = f.clone(); // same description
/// assert!(f.same_description(&g));
/// ```
#[derive(Clone)]
pub struct File {
    pub(crate) inner: Arc<OpenFile>,
}

impl core::fmt::Debug for File {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("File")
            .field("description", &Arc::as_ptr(&self.inner))
            .finish()
    }
}

impl File {
    /// A new open file description for `object` (blocking mode).
    pub fn new<T: FileOps>(object: Arc<T>) -> File {
        File::from_ops(object, 0)
    }

    /// A new description with status `flags` (`O_NONBLOCK`).
    pub fn with_flags<T: FileOps>(object: Arc<T>, flags: i32) -> File {
        File::from_ops(object, flags)
    }

    pub(crate) fn from_ops(ops: Arc<dyn FileOps>, flags: i32) -> File {
        File {
            inner: Arc::new(OpenFile {
                ops,
                flags: AtomicU32::new(flags as u32),
            }),
        }
    }

    /// The object behind the description.
    pub fn ops(&self) -> &Arc<dyn FileOps> {
        &self.inner.ops
    }

    /// The object, if it is a `T`.
    pub fn downcast<T: FileOps>(&self) -> Option<&T> {
        let any: &dyn Any = &*self.inner.ops;
        any.downcast_ref::<T>()
    }

    /// An identity of the open file description: equal for two handles exactly when they
    /// refer to the same description (while one of them is alive).
    ///
    /// ```
    /// use eventpoll::objects::pipe::pipe;
    /// let (r, w) = pipe(0);
    /// assert_eq!(r.description_id(), r.clone().description_id());
    /// assert_ne!(r.description_id(), w.description_id());
    /// ```
    pub fn description_id(&self) -> usize {
        self.inner.key()
    }

    /// Whether both handles refer to the same open file description.
    pub fn same_description(&self, other: &File) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The status flags (`O_NONBLOCK`, ...).
    pub fn flags(&self) -> i32 {
        self.inner.flags.load(Ordering::Relaxed) as i32
    }

    /// Set the status flags (`fcntl(F_SETFL)`).
    pub fn set_flags(&self, flags: i32) {
        self.inner.flags.store(flags as u32, Ordering::Relaxed)
    }

    /// Whether `O_NONBLOCK` is set.
    pub fn is_nonblocking(&self) -> bool {
        self.flags() & crate::event::O_NONBLOCK != 0
    }

    /// How reads and writes on the description behave when they cannot proceed.
    pub fn io_mode(&self) -> IoMode {
        if self.is_nonblocking() {
            IoMode::NonBlocking
        } else {
            IoMode::Blocking
        }
    }

    /// The current poll mask of the object.
    pub fn poll(&self) -> Events {
        self.inner.ops.poll()
    }

    /// `read(2)` on the description.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        self.inner.ops.read(buf, self.io_mode())
    }

    /// `write(2)` on the description.
    pub fn write(&self, buf: &[u8]) -> Result<usize> {
        self.inner.ops.write(buf, self.io_mode())
    }
}
