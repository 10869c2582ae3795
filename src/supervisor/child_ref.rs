//! [`ChildRef`]: a typed reference to a supervised child that follows its restarts.
//!
//! The supervisor keeps, for each child, a slot holding the pid of the child's current
//! process (none while it is stopped): it fills the slot when it starts the child and empties
//! it when the child exits or is stopped. A `ChildRef` shares that slot, so it names the live
//! process, never a pid gone stale with a restart. The slot belongs to the supervisor's record
//! of the child: a child deleted and added again, or a whole supervisor restarted by its own
//! supervisor (which starts its children afresh), has a new slot, and a reference taken before
//! stays `NoProc`; take a new one (through the parent's `ChildRef` for a nested supervisor).

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::supervisor::Supervisor;
use crate::{Addr, AddrError, Handle, Pid, SendError};

/// Where a child's pid is kept: generation and index, and a flag (above any index the process
/// table can give) set while the child is stopped, so the last pid is still known. `EMPTY`
/// before the first start.
#[derive(Debug)]
pub(crate) struct ChildSlot(AtomicU64);

const STOPPED: u64 = 1 << 31;
const EMPTY: u64 = u64::MAX;

impl Default for ChildSlot {
    fn default() -> Self {
        ChildSlot(AtomicU64::new(EMPTY))
    }
}

impl ChildSlot {
    /// The child runs as `pid`.
    pub(crate) fn set(&self, pid: Pid) {
        let bits = (u64::from(pid.generation()) << 32) | u64::from(pid.index());
        self.0.store(bits, Ordering::Release);
    }

    /// The child stopped.
    pub(crate) fn clear(&self) {
        let bits = self.0.load(Ordering::Acquire);
        if bits != EMPTY {
            self.0.store(bits | STOPPED, Ordering::Release);
        }
    }

    /// The child's pid (`None` before its first start), and whether it runs.
    fn get(&self) -> Option<(Pid, bool)> {
        let bits = self.0.load(Ordering::Acquire);
        (bits != EMPTY).then(|| {
            let index = (bits as u32) & !(STOPPED as u32);
            (Pid::new(index, (bits >> 32) as u32), bits & STOPPED == 0)
        })
    }
}

/// A supervised child, by reference: its current process, whatever restarts happened since
/// the reference was taken. `M` is the type of the messages the child takes, checked each
/// time an address is made. Get one with [`Supervisor::child`] or [`Supervisor::child_ref`],
/// or when starting a child: [`Supervisor::start_child_ref`],
/// [`DynamicSupervisor::start_child_ref`](super::DynamicSupervisor::start_child_ref).
///
/// ```
/// use std::time::Duration;
/// use baobab::server::{Server, ServerMsg};
/// use baobab::supervisor::{ChildSpec, Strategy, Supervisor, SupervisorSpec};
/// use baobab::{Ctx, ExitReason, Runtime};
///
/// struct Doubler;
/// impl Server for Doubler {
///     type Call = u32;
///     type Reply = u32;
///     type Cast = ();
///     fn handle_call(&mut self, n: u32, _: &mut Ctx<ServerMsg<Self>>) -> Result<u32, ExitReason> {
///         Ok(n * 2)
///     }
/// }
///
/// let rt = Runtime::new();
/// let h = rt.handle();
/// let spec = SupervisorSpec::new(Strategy::OneForOne)
///     .child(ChildSpec::worker("doubler", |start| start.spawn(Doubler)));
/// let sup = Supervisor::start(h, spec).unwrap();
/// let doubler = sup.child_ref::<ServerMsg<Doubler>>(h, "doubler").unwrap();
///
/// let before = doubler.pid().unwrap();
/// h.exit(before, ExitReason::error("crash"));
/// // The same reference reaches the restarted child.
/// let answer = loop {
///     match doubler.addr() {
///         Ok(addr) if addr.pid() != before => break h.call(&addr, 21, Duration::from_secs(1)),
///         _ => std::thread::yield_now(),
///     }
/// };
/// assert_eq!(answer, Ok(42));
/// ```
pub struct ChildRef<M> {
    id: Arc<str>,
    slot: Arc<ChildSlot>,
    handle: Handle,
    _message: PhantomData<fn(M)>,
}

impl<M> Clone for ChildRef<M> {
    fn clone(&self) -> Self {
        ChildRef {
            id: Arc::clone(&self.id),
            slot: Arc::clone(&self.slot),
            handle: self.handle.clone(),
            _message: PhantomData,
        }
    }
}

impl<M> std::fmt::Debug for ChildRef<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildRef")
            .field("id", &self.id)
            .field("pid", &self.slot.get().map(|(pid, _)| pid))
            .finish()
    }
}

impl<M: Send + 'static> ChildRef<M> {
    pub(crate) fn new(id: Arc<str>, slot: Arc<ChildSlot>, handle: Handle) -> Self {
        ChildRef {
            id,
            slot,
            handle,
            _message: PhantomData,
        }
    }

    /// The child's id in its spec.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The pid of the child's current process, if it runs.
    pub fn pid(&self) -> Option<Pid> {
        match self.slot.get() {
            Some((pid, true)) if self.handle.is_alive(pid) => Some(pid),
            _ => None,
        }
    }

    /// The child's current process as an `Addr<M>`: [`AddrError::NoProc`] while it is stopped
    /// (between an exit and its restart, or for good; the pid is its last one, or
    /// [`Pid::EXTERNAL`] if the reference never saw one), [`AddrError::WrongType`] if its
    /// process takes another message type than `M`.
    pub fn addr(&self) -> Result<Addr<M>, AddrError> {
        match self.slot.get() {
            Some((pid, true)) => self.handle.addr_of(pid),
            Some((pid, false)) => Err(AddrError::NoProc(pid)),
            None => Err(AddrError::NoProc(Pid::EXTERNAL)),
        }
    }

    /// Sends to the child's current process. While the child is not running, the send fails
    /// with [`SendError::NoName`] (its id), as a send to a name nobody holds.
    pub fn send(&self, message: M) -> Result<(), SendError> {
        match self.addr() {
            Ok(addr) => self.handle.send(&addr, message),
            Err(AddrError::NoProc(_)) => Err(SendError::NoName(self.id.to_string())),
            Err(AddrError::WrongType { pid, expected, .. }) => Err(SendError::WrongType {
                name: self.id.to_string(),
                pid,
                expected,
            }),
        }
    }
}

impl ChildRef<super::SupervisorMsg> {
    /// A child that is a supervisor: its current process, as a [`Supervisor`].
    pub fn supervisor(&self) -> Result<Supervisor, AddrError> {
        self.addr().map(Supervisor::from_addr)
    }
}
