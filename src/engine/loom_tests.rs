//! Loom model of the park protocol: a push of work while the only idle thread goes to sleep
//! never leaves that work unclaimed with the thread parked.

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::park::Sleepers;

#[test]
fn loom_work_pushed_while_a_thread_parks_is_never_stranded() {
    loom::model(|| {
        let sleepers = Arc::new(Sleepers::new());
        let work = Arc::new(AtomicUsize::new(0));

        let worker = {
            let (sleepers, work) = (Arc::clone(&sleepers), Arc::clone(&work));
            thread::spawn(move || {
                // The worker loop: look for work, sleep when there is none, until it took one.
                loop {
                    if work
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        return;
                    }
                    if sleepers.sleep(|| work.load(Ordering::SeqCst) > 0) {
                        sleepers.stop_searching();
                    }
                }
            })
        };
        // The producer: make work visible, then wake a sleeper.
        work.fetch_add(1, Ordering::SeqCst);
        sleepers.notify_one();
        // If the protocol lost the wake-up, the worker parks forever and loom reports a
        // deadlock here.
        worker.join().unwrap();
        assert_eq!(work.load(Ordering::SeqCst), 0);
    });
}

/// Two producers push while the only worker sleeps and searches: the "no wake while someone
/// searches" rule must not strand the second push.
#[test]
fn loom_push_while_a_thread_searches_is_still_taken() {
    // Three threads with loops: bound preemptions to keep the run in seconds; every lost
    // wake-up found so far in such protocols needs at most two.
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(|| {
        let sleepers = Arc::new(Sleepers::new());
        let work = Arc::new(AtomicUsize::new(0));
        let worker = {
            let (sleepers, work) = (Arc::clone(&sleepers), Arc::clone(&work));
            thread::spawn(move || {
                let mut taken = 0;
                let mut searching = false;
                while taken < 2 {
                    let found = work
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    if searching {
                        searching = false;
                        sleepers.stop_searching();
                    }
                    if found {
                        taken += 1;
                    } else {
                        searching = sleepers.sleep(|| work.load(Ordering::SeqCst) > 0);
                    }
                }
                if searching {
                    sleepers.stop_searching();
                }
            })
        };
        let producer = {
            let (sleepers, work) = (Arc::clone(&sleepers), Arc::clone(&work));
            thread::spawn(move || {
                work.fetch_add(1, Ordering::SeqCst);
                sleepers.notify_one();
            })
        };
        work.fetch_add(1, Ordering::SeqCst);
        sleepers.notify_one();
        producer.join().unwrap();
        worker.join().unwrap();
        assert_eq!(work.load(Ordering::SeqCst), 0);
    });
}
