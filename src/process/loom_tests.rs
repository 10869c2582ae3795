//! Loom models of the process protocols: the state word with the mailbox (no lost wake-up, a
//! process queued and run at most once at a time), and links racing with exits.

use std::collections::VecDeque;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::mailbox::{Mail, Mailbox};
use super::spin::SpinLock;
use super::status::ProcessState;
use crate::loom::lock;
use crate::loom::sync::Mutex;
use crate::pid::Pid;
use crate::signal::ExitReason;
use crate::signal::record::SignalState;

/// A process as the model sees it: its state, its mailbox, and a run queue of capacity one
/// (a queue holding it twice would be the bug we look for).
struct Model {
    state: ProcessState,
    mailbox: Mailbox,
    queued: AtomicUsize,
}

impl Model {
    fn new() -> Self {
        let state = ProcessState::new_queued();
        // Start idle: run once with nothing in the mailbox.
        assert!(state.transition_to_running());
        assert!(!state.transition_to_idle());
        Model {
            state,
            mailbox: Mailbox::unbounded(),
            queued: AtomicUsize::new(0),
        }
    }

    fn send(&self, n: u32) {
        self.mailbox
            .push_user(Mail::User(crate::process::mailbox::payload(n)));
        if self.state.transition_to_queued() {
            let before = self.queued.fetch_add(1, Ordering::SeqCst);
            assert_eq!(before, 0, "a process sits in a run queue at most once");
        }
    }

    /// One run if queued: drain everything, then go idle (or requeue if woken meanwhile).
    /// Returns the messages received.
    fn run_once(&self, local: &mut VecDeque<Mail>) -> usize {
        if self.queued.load(Ordering::SeqCst) == 0 {
            return 0;
        }
        self.queued.fetch_sub(1, Ordering::SeqCst);
        assert!(self.state.transition_to_running());
        let mut received = 0;
        // The receive fast path: the private queue first, then the inbox (`pop_into`).
        while local
            .pop_front()
            .or_else(|| self.mailbox.pop_into(local))
            .is_some()
        {
            self.mailbox.consumed(1);
            received += 1;
        }
        // The selective-receive path drains the rest in one batch.
        if self.mailbox.drain_into(local) > 0 {
            received += local.len();
            self.mailbox.consumed(local.len());
            local.clear();
        }
        if self.state.transition_to_idle() {
            let before = self.queued.fetch_add(1, Ordering::SeqCst);
            assert_eq!(before, 0);
        }
        received
    }
}

#[test]
fn loom_no_lost_wakeup_between_send_and_idle() {
    // Three threads on a spin lock: bound preemptions to keep the run in seconds (a lost
    // wake-up needs one preemption between the push and the state change).
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(2);
    model.check(|| {
        let model = Arc::new(Model::new());
        let senders: Vec<_> = (0..2)
            .map(|n| {
                let model = Arc::clone(&model);
                thread::spawn(move || model.send(n))
            })
            .collect();
        let mut local = VecDeque::new();
        let mut received = model.run_once(&mut local);
        for sender in senders {
            sender.join().unwrap();
        }
        // Every message sent is either received or its process is queued to receive it.
        while model.queued.load(Ordering::SeqCst) > 0 {
            received += model.run_once(&mut local);
        }
        assert_eq!(received, 2, "a message was left with its process idle");
        assert_eq!(model.mailbox.len(), 0);
    });
}

/// The inbox's spin lock: two threads each add to a counter under it, read-modify-write
/// across a preemption point. Loom's `UnsafeCell` fails the model if the lock ever lets two
/// threads at the value at once, and the sum catches a lost update.
#[test]
fn loom_spin_lock_excludes() {
    loom::model(|| {
        let lock = Arc::new(SpinLock::new(0u32));
        let other = {
            let lock = Arc::clone(&lock);
            thread::spawn(move || {
                let mut value = lock.lock();
                let seen = *value;
                thread::yield_now();
                *value = seen + 1;
            })
        };
        {
            let mut value = lock.lock();
            let seen = *value;
            thread::yield_now();
            *value = seen + 1;
        }
        other.join().unwrap();
        assert_eq!(*lock.lock(), 2);
    });
}

#[test]
fn loom_wake_while_running_requeues_exactly_once() {
    loom::model(|| {
        let state = Arc::new(ProcessState::new_queued());
        assert!(state.transition_to_running());
        let wakers: Vec<_> = (0..2)
            .map(|_| {
                let state = Arc::clone(&state);
                thread::spawn(move || state.transition_to_queued())
            })
            .collect();
        let requeue = state.transition_to_idle();
        let pushed_by_wakers = wakers
            .into_iter()
            .map(|w| w.join().unwrap())
            .filter(|pushed| *pushed)
            .count();
        // Exactly one party queues the process: the runner (woken while running) or one
        // waker (woke it after it went idle).
        assert_eq!(usize::from(requeue) + pushed_by_wakers, 1);
    });
}

/// Two processes' signal records, linked the way `Shared::link` does it (both spin locks, lower pid
/// first), racing with the exit of the second (`take_for_exit`, then signalling what it took).
#[test]
fn loom_link_racing_with_exit_is_seen_or_refused() {
    // Two spin locks taken by two threads: bound preemptions to keep the run in seconds (a
    // link missed by the exit needs one preemption between the exit's take and the link).
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(|| {
        let a = Arc::new(SpinLock::new(SignalState::default()));
        let b = Arc::new(SpinLock::new(SignalState::default()));
        let (pa, pb) = (Pid::new(1, 0), Pid::new(2, 0));
        let signalled = Arc::new(AtomicUsize::new(0));

        let exiting = {
            let (a, b, signalled) = (Arc::clone(&a), Arc::clone(&b), Arc::clone(&signalled));
            thread::spawn(move || {
                let relations = b.lock().take_for_exit();
                for link in relations.map(|r| r.links.clone()).unwrap_or_default() {
                    assert_eq!(link, pa);
                    let mut a = a.lock();
                    if a.remove_link(pb) {
                        a.set_pending_exit(ExitReason::error("b died"));
                        signalled.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        };
        let linked = {
            let mut first = a.lock();
            let mut second = b.lock();
            if first.exited || second.exited {
                false
            } else {
                first.add_link(pb);
                second.add_link(pa);
                true
            }
        };
        exiting.join().unwrap();
        let a = a.lock();
        if linked {
            assert_eq!(
                signalled.load(Ordering::SeqCst),
                1,
                "a link made before the exit is signalled"
            );
            assert!(a.pending_exit.is_some());
        } else {
            assert_eq!(signalled.load(Ordering::SeqCst), 0);
        }
        assert!(
            a.relations().is_none_or(|r| r.links.is_empty()),
            "no stale link remains"
        );
    });
}

/// The code of a process is touched by one thread at a time: the one that queued it runs it,
/// a wake-up while it runs makes the runner run it again, and loom's `UnsafeCell` panics on
/// any overlapping access to the `CodeSlot`.
#[test]
fn loom_code_slot_is_touched_by_one_thread() {
    use super::run::CodeSlot;

    struct Process {
        state: ProcessState,
        code: CodeSlot,
        slices: AtomicUsize,
    }

    /// What a scheduler thread does with a process it took from a run queue.
    fn run(process: &Process) {
        loop {
            assert!(process.state.transition_to_running());
            // SAFETY: this thread won `transition_to_running`.
            unsafe { process.code.with_mut(|code| assert!(code.is_none())) };
            process.slices.fetch_add(1, Ordering::SeqCst);
            if !process.state.transition_to_idle() {
                return;
            }
        }
    }

    loom::model(|| {
        let process = Arc::new(Process {
            state: ProcessState::new_queued(),
            code: CodeSlot::empty(),
            slices: AtomicUsize::new(0),
        });
        // The spawner fills the slot before the first push.
        // SAFETY: no run queue holds the process yet.
        unsafe { process.code.with_mut(|code| assert!(code.is_none())) };
        let wakers: Vec<_> = (0..2)
            .map(|_| {
                let process = Arc::clone(&process);
                thread::spawn(move || {
                    if process.state.transition_to_queued() {
                        run(&process);
                    }
                })
            })
            .collect();
        run(&process);
        for waker in wakers {
            waker.join().unwrap();
        }
        assert!(process.slices.load(Ordering::SeqCst) >= 1);
    });
}

/// The invariant a run-queue `Task` relies on (promise 1 of `engine/task.rs`, kept as
/// `run.rs` says): no task for a process is ever taken from a queue after its last slice
/// dropped the table's reference. Two wakers race with a runner that runs the process twice
/// (the second slice is its last); the queue holds plain pointers, as the real run queues do,
/// and `alive` stands for the table's reference. Requeueing an `EXITING` process, or
/// finishing while a task is still queued, fails the model.
#[test]
fn loom_no_task_outlives_the_tables_reference() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(|| {
        let state = Arc::new(ProcessState::new_queued());
        let alive = Arc::new(loom::sync::atomic::AtomicBool::new(true));
        // The spawn's push: the process starts queued.
        let queue = Arc::new(Mutex::new(vec![Arc::as_ptr(&state) as usize]));
        let done = Arc::new(AtomicUsize::new(0));
        let wakers: Vec<_> = (0..2)
            .map(|_| {
                let (state, queue, done) =
                    (Arc::clone(&state), Arc::clone(&queue), Arc::clone(&done));
                thread::spawn(move || {
                    if state.transition_to_queued() {
                        lock(&queue).push(Arc::as_ptr(&state) as usize);
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        let mut slices = 0;
        loop {
            let task = lock(&queue).pop();
            let Some(task) = task else {
                if done.load(Ordering::SeqCst) == 2 && lock(&queue).is_empty() {
                    break;
                }
                thread::yield_now();
                continue;
            };
            assert_eq!(task, Arc::as_ptr(&state) as usize);
            assert!(
                alive.load(Ordering::SeqCst),
                "a task was taken after the table's reference went"
            );
            assert!(state.transition_to_running());
            slices += 1;
            if slices == 2 {
                // `finish`: the state goes EXITING, then the table drops its reference.
                state.transition_to_exiting();
                alive.store(false, Ordering::SeqCst);
            } else if state.transition_to_idle() {
                lock(&queue).push(Arc::as_ptr(&state) as usize);
            }
        }
        for waker in wakers {
            waker.join().unwrap();
        }
    });
}

/// A waker that counts its wake-ups.
struct CountingWaker(AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// `Overflow::Wait`: a sender that finds the mailbox full while its owner takes a message
/// either gets in or is woken (so it tries again); it is never left waiting for room that
/// was made before its waker was seen.
#[test]
fn loom_a_waiting_sender_is_never_forgotten() {
    use super::mailbox::{Offered, Overflow};
    // Two spin locks and a mutex: bound preemptions to keep the run in seconds (the lost
    // wake-up needs one preemption between the sender's check and its waker's registration).
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(|| {
        let mailbox = Arc::new(Mailbox::bounded(1, Overflow::Wait));
        mailbox.push_user(Mail::User(crate::process::mailbox::payload(0u32)));
        let owner = {
            let mailbox = Arc::clone(&mailbox);
            thread::spawn(move || {
                let mut local = VecDeque::new();
                let taken = mailbox.pop_into(&mut local);
                assert!(taken.is_some());
                mailbox.consumed(1);
            })
        };
        let counter = std::sync::Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(std::sync::Arc::clone(&counter));
        let offered = mailbox.offer(Mail::User(crate::process::mailbox::payload(1u32)), &waker);
        owner.join().unwrap();
        match offered {
            Offered::Done(pushed) => assert_eq!(pushed, super::mailbox::Pushed::Queued(1)),
            Offered::Full(_) => assert!(
                counter.0.load(Ordering::SeqCst) > 0,
                "a full offer must be woken once room is made"
            ),
        }
    });
}
