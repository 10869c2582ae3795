//! The conformance suite every `EventStore` passes: each check takes a fresh, empty store.

use std::collections::BTreeSet;
use std::sync::Arc;

use baobab::persistence::{EventStore, NewEvent, Snapshot, StoreError, StreamId};

fn stream(id: &str) -> StreamId {
    StreamId::new("conformance", id).unwrap()
}

fn event(text: &str) -> NewEvent {
    NewEvent {
        schema: 1,
        payload: text.as_bytes().to_vec(),
    }
}

/// Every check, each on a store `fresh` makes.
pub fn run_all(fresh: &dyn Fn() -> Arc<dyn EventStore>) {
    an_empty_stream_has_nothing(&*fresh());
    appends_number_events_from_one_in_order(&*fresh());
    reads_start_after_a_version_and_stop_at_max(&*fresh());
    a_stale_or_early_append_conflicts_and_writes_nothing(&*fresh());
    an_empty_append_checks_the_version(&*fresh());
    streams_are_independent(&*fresh());
    snapshots_keep_the_latest_and_refuse_the_future(&*fresh());
    oversized_payloads_and_bad_names_are_refused(&*fresh());
    concurrent_writers_leave_no_gap_and_no_duplicate(fresh());
}

pub fn an_empty_stream_has_nothing(store: &dyn EventStore) {
    let s = stream("empty");
    assert_eq!(store.version(&s).unwrap(), 0);
    assert!(store.read(&s, 0, 100).unwrap().is_empty());
    assert!(store.load_snapshot(&s).unwrap().is_none());
}

pub fn appends_number_events_from_one_in_order(store: &dyn EventStore) {
    let s = stream("order");
    assert_eq!(store.append(&s, 0, &[event("a")]).unwrap(), 1);
    let batch = [
        event("b"),
        NewEvent {
            schema: 7,
            payload: vec![0, 255, 1],
        },
        event(""),
    ];
    assert_eq!(store.append(&s, 1, &batch).unwrap(), 4);
    assert_eq!(store.version(&s).unwrap(), 4);
    let events = store.read(&s, 0, 100).unwrap();
    let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
    assert_eq!(versions, [1, 2, 3, 4]);
    assert_eq!(events[0].payload, b"a");
    assert_eq!(events[2].schema, 7);
    assert_eq!(events[2].payload, [0, 255, 1]);
    assert!(events[3].payload.is_empty());
}

pub fn reads_start_after_a_version_and_stop_at_max(store: &dyn EventStore) {
    let s = stream("ranges");
    let mut version = 0;
    for chunk in 0..10 {
        let events: Vec<NewEvent> = (0..chunk % 3 + 1)
            .map(|i| event(&format!("{chunk}-{i}")))
            .collect();
        version = store.append(&s, version, &events).unwrap();
    }
    let all = store.read(&s, 0, usize::MAX).unwrap();
    assert_eq!(all.len() as u64, version);
    for after in 0..=version + 2 {
        for max in [0, 1, 2, 5, 100] {
            let got = store.read(&s, after, max).unwrap();
            let want: Vec<_> = all
                .iter()
                .filter(|e| e.version > after)
                .take(max)
                .cloned()
                .collect();
            assert_eq!(got, want, "read after {after}, max {max}");
        }
    }
}

pub fn a_stale_or_early_append_conflicts_and_writes_nothing(store: &dyn EventStore) {
    let s = stream("conflict");
    store.append(&s, 0, &[event("a"), event("b")]).unwrap();
    for expected in [0, 1, 3, 99] {
        match store.append(&s, expected, &[event("x")]) {
            Err(StoreError::Conflict {
                expected: e,
                actual: 2,
                ..
            }) => assert_eq!(e, expected),
            other => panic!("expected a conflict at {expected}, got {other:?}"),
        }
    }
    assert_eq!(store.version(&s).unwrap(), 2);
    assert_eq!(store.read(&s, 0, 10).unwrap().len(), 2);
}

pub fn an_empty_append_checks_the_version(store: &dyn EventStore) {
    let s = stream("noop");
    assert_eq!(store.append(&s, 0, &[]).unwrap(), 0);
    store.append(&s, 0, &[event("a")]).unwrap();
    assert_eq!(store.append(&s, 1, &[]).unwrap(), 1);
    assert!(matches!(
        store.append(&s, 0, &[]),
        Err(StoreError::Conflict { .. })
    ));
}

pub fn streams_are_independent(store: &dyn EventStore) {
    let a = StreamId::new("kind-a", "same").unwrap();
    let b = StreamId::new("kind-b", "same").unwrap();
    let c = StreamId::new("kind-a", "other").unwrap();
    store.append(&a, 0, &[event("a1")]).unwrap();
    store.append(&b, 0, &[event("b1"), event("b2")]).unwrap();
    assert_eq!(store.version(&a).unwrap(), 1);
    assert_eq!(store.version(&b).unwrap(), 2);
    assert_eq!(store.version(&c).unwrap(), 0);
    assert_eq!(store.read(&a, 0, 10).unwrap()[0].payload, b"a1");
}

pub fn snapshots_keep_the_latest_and_refuse_the_future(store: &dyn EventStore) {
    let s = stream("snap");
    store
        .append(&s, 0, &[event("1"), event("2"), event("3")])
        .unwrap();
    let snap = |version: u64| Snapshot {
        version,
        schema: 2,
        payload: format!("state at {version}").into_bytes(),
    };
    store.save_snapshot(&s, &snap(2)).unwrap();
    assert_eq!(store.load_snapshot(&s).unwrap(), Some(snap(2)));
    store.save_snapshot(&s, &snap(3)).unwrap();
    assert_eq!(store.load_snapshot(&s).unwrap(), Some(snap(3)));
    store.save_snapshot(&s, &snap(1)).unwrap();
    assert_eq!(
        store.load_snapshot(&s).unwrap(),
        Some(snap(3)),
        "an older snapshot does not replace a newer one"
    );
    assert!(store.save_snapshot(&s, &snap(4)).is_err());
    assert_eq!(store.load_snapshot(&s).unwrap(), Some(snap(3)));
}

pub fn oversized_payloads_and_bad_names_are_refused(store: &dyn EventStore) {
    let s = stream("big");
    let big = NewEvent {
        schema: 1,
        payload: vec![0; baobab::persistence::store::MAX_PAYLOAD_LEN + 1],
    };
    assert!(matches!(
        store.append(&s, 0, &[big]),
        Err(StoreError::TooLarge { .. })
    ));
    assert_eq!(store.version(&s).unwrap(), 0);
    for bad in ["", "a.b", "a b", "a/b", "a*", "a>", "é", &"x".repeat(129)] {
        assert!(
            matches!(StreamId::new("k", bad), Err(StoreError::InvalidName(_))),
            "{bad:?}"
        );
        assert!(StreamId::new(bad, "id").is_err(), "{bad:?}");
    }
    assert!(StreamId::new("k", "x".repeat(128)).is_ok());
}

/// Eight threads append to one stream, each reading the version and retrying on conflict:
/// afterwards the versions are 1..=N with no gap, and every event is there exactly once.
pub fn concurrent_writers_leave_no_gap_and_no_duplicate(store: Arc<dyn EventStore>) {
    let s = stream("race");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (store, s) = (Arc::clone(&store), s.clone());
            std::thread::spawn(move || {
                for i in 0..50 {
                    let events = [event(&format!("{t}-{i}-a")), event(&format!("{t}-{i}-b"))];
                    loop {
                        let version = store.version(&s).unwrap();
                        match store.append(&s, version, &events) {
                            Ok(_) => break,
                            Err(StoreError::Conflict { .. }) => continue,
                            Err(other) => panic!("{other}"),
                        }
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let events = store.read(&s, 0, usize::MAX).unwrap();
    assert_eq!(events.len(), 800);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.version, i as u64 + 1);
    }
    let distinct: BTreeSet<&[u8]> = events.iter().map(|e| e.payload.as_slice()).collect();
    assert_eq!(distinct.len(), 800, "no event twice");
    // An append's events stay together.
    for pair in events.chunks(2) {
        let a = String::from_utf8_lossy(&pair[0].payload);
        let b = String::from_utf8_lossy(&pair[1].payload);
        assert_eq!(a.trim_end_matches("-a"), b.trim_end_matches("-b"));
    }
}
