//! Virtual actors across runtimes sharing one NATS server: one live activation per id among
//! them (leases), commands routed to it from any runtime, and a dead runtime's ids served
//! again elsewhere once its leases expire. Each test starts its own `nats-server -js`.
#![cfg(feature = "nats")]

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use baobab::persistence::{
    ActorError, Cluster, ClusterConfig, EventSourced, EventStore, NatsStore, NatsStoreConfig,
    StreamId, VirtualActors, VirtualConfig,
};
use baobab::{Ctx, Runtime};
use serde::{Deserialize, Serialize};

use common::nats_server::NatsServer;

/// A tally of tagged additions; adding 0 is refused.
#[derive(Default, Serialize, Deserialize)]
struct Tally {
    count: u64,
    sum: u64,
}

#[derive(Serialize, Deserialize)]
struct Added(u64);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Refused {
    Zero { count: u64 },
}

impl EventSourced for Tally {
    const KIND: &'static str = "tally";
    type Command = u64;
    type Event = Added;
    type Rejection = Refused;

    fn decide(&self, n: &u64) -> Result<Vec<Added>, Refused> {
        if *n == 0 {
            Err(Refused::Zero { count: self.count })
        } else {
            Ok(vec![Added(*n)])
        }
    }

    fn apply(&mut self, Added(n): &Added) {
        self.count += 1;
        self.sum += n;
    }
}

fn store(url: &str, prefix: &str) -> Arc<NatsStore> {
    Arc::new(
        NatsStore::connect(
            url,
            NatsStoreConfig {
                prefix: prefix.into(),
                ..NatsStoreConfig::default()
            },
        )
        .unwrap(),
    )
}

fn cluster(url: &str, prefix: &str, node: &str, ttl: Duration) -> Arc<Cluster> {
    Cluster::connect(
        url,
        ClusterConfig {
            node: node.into(),
            prefix: prefix.into(),
            lease_ttl: ttl,
            ..ClusterConfig::default()
        },
    )
    .unwrap()
}

/// A runtime with clustered tallies on `url`.
struct Node {
    rt: Runtime,
    tallies: VirtualActors<Tally>,
    _cluster: Arc<Cluster>,
}

impl Node {
    fn start(url: &str, prefix: &str, name: &str, ttl: Duration, config: VirtualConfig) -> Node {
        let rt = Runtime::builder().threads(2).build();
        let cluster = cluster(url, prefix, name, ttl);
        let tallies = VirtualActors::<Tally>::start_clustered(
            rt.handle(),
            store(url, prefix),
            config,
            &cluster,
        )
        .unwrap();
        Node {
            rt,
            tallies,
            _cluster: cluster,
        }
    }

    fn ask(&self, id: &str, n: u64) -> Result<baobab::persistence::Committed, ActorError<Refused>> {
        let (tallies, id) = (self.tallies.clone(), id.to_owned());
        self.rt
            .block_on(move |mut ctx: Ctx<()>| async move { tallies.ask(&mut ctx, &id, n).await })
            .unwrap()
    }

    fn tally(&self, id: &str) -> (u64, u64, u64) {
        let (tallies, id) = (self.tallies.clone(), id.to_owned());
        self.rt
            .block_on(move |mut ctx: Ctx<()>| async move {
                tallies
                    .query(&mut ctx, &id, |t: &Tally, v| (t.count, t.sum, v))
                    .await
            })
            .unwrap()
            .unwrap()
    }
}

#[test]
fn a_command_from_any_runtime_reaches_the_single_activation_of_its_id() {
    let server = NatsServer::start();
    let config = VirtualConfig::default();
    let a = Node::start(
        &server.url,
        "route",
        "a",
        Duration::from_secs(5),
        config.clone(),
    );
    let b = Node::start(&server.url, "route", "b", Duration::from_secs(5), config);

    assert_eq!(a.ask("x", 5).unwrap().version, 1);
    assert_eq!(a.tallies.active(), ["x"]);
    // From b: forwarded to a, which holds the lease; b activates nothing.
    assert_eq!(b.ask("x", 7).unwrap().version, 2);
    assert_eq!(b.ask("x", 1).unwrap().version, 3);
    assert!(b.tallies.active().is_empty());
    assert_eq!(a.tallies.active(), ["x"]);
    // A typed rejection crosses the wire.
    assert_eq!(
        b.ask("x", 0),
        Err(ActorError::Rejected(Refused::Zero { count: 3 }))
    );
    // A query on b does not move the actor: it folds the stored events.
    assert_eq!(b.tally("x"), (3, 13, 3));
    assert_eq!(a.tally("x"), (3, 13, 3));
    assert!(b.tallies.active().is_empty());

    // An id first asked on b lives on b.
    assert_eq!(b.ask("y", 2).unwrap().version, 1);
    assert_eq!(a.ask("y", 2).unwrap().version, 2);
    assert_eq!(b.tallies.active(), ["y"]);
    assert_eq!(a.tallies.active(), ["x"]);

    // Stopping x on a gives its lease up: the next command activates it where it is asked.
    let tallies = a.tallies.clone();
    assert!(
        a.rt.block_on(move |mut ctx: Ctx<()>| async move { tallies.stop(&mut ctx, "x").await })
            .unwrap()
            .unwrap()
    );
    let started = Instant::now();
    assert_eq!(b.ask("x", 4).unwrap().version, 4);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(b.tallies.active(), ["x", "y"]);
    assert!(a.tallies.active().is_empty());
    assert_eq!(a.tally("x"), (4, 17, 4));

    // A runtime that shuts down gives every lease up.
    b.tallies.shutdown(b.rt.handle());
    let started = Instant::now();
    assert_eq!(a.ask("y", 1).unwrap().version, 3);
    assert_eq!(a.ask("x", 1).unwrap().version, 5);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn two_runtimes_asking_the_same_ids_at_once_never_run_two_activations() {
    let server = NatsServer::start();
    // No conflict retries: a second activation writing an id would show as a conflict.
    let config = VirtualConfig {
        conflict_retries: 0,
        ..VirtualConfig::default()
    };
    let nodes = [
        Node::start(
            &server.url,
            "race",
            "a",
            Duration::from_secs(5),
            config.clone(),
        ),
        Node::start(&server.url, "race", "b", Duration::from_secs(5), config),
    ];
    const IDS: u64 = 8;
    const PER_CALLER: u64 = 40;
    let acked = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for (n, node) in nodes.iter().enumerate() {
            for caller in 0..4u64 {
                let acked = Arc::clone(&acked);
                scope.spawn(move || {
                    for i in 0..PER_CALLER {
                        let id = format!("r{}", (i + caller) % IDS);
                        let tag = (n as u64 + 1) * 1_000_000 + caller * 1000 + i + 1;
                        let committed = node.ask(&id, tag).unwrap_or_else(|error| {
                            panic!("node {n} caller {caller}: {id}: {error:?}")
                        });
                        acked.lock().unwrap().push((id, tag, committed.version));
                    }
                });
            }
        }
    });
    let active: Vec<String> = nodes.iter().flat_map(|n| n.tallies.active()).collect();
    let unique: HashSet<&String> = active.iter().collect();
    assert_eq!(
        active.len(),
        unique.len(),
        "an id active on both runtimes: {active:?}"
    );
    let reader = store(&server.url, "race");
    let acked = acked.lock().unwrap();
    assert_eq!(acked.len() as u64, 2 * 4 * PER_CALLER);
    let by_tag = stored_tags(&*reader, (0..IDS).map(|i| format!("r{i}")));
    for (id, tag, version) in acked.iter() {
        assert_eq!(by_tag.get(tag), Some(&(id.clone(), *version)));
    }
    assert_eq!(
        by_tag.len(),
        acked.len(),
        "no event but the acknowledged ones"
    );
}

#[test]
fn an_activation_whose_lease_was_taken_leaves_and_its_commands_follow_the_lease() {
    let server = NatsServer::start();
    let ttl = Duration::from_secs(1);
    let a = Node::start(&server.url, "steal", "a", ttl, VirtualConfig::default());
    let b = Node::start(&server.url, "steal", "b", ttl, VirtualConfig::default());
    assert_eq!(a.ask("x", 1).unwrap().version, 1);
    assert_eq!(a.tallies.active(), ["x"]);

    // Another writer takes x's lease for b behind a's back (as if a had been cut off past
    // the TTL): compare-and-set on the lease's revision, as a runtime does.
    let tokio = tokio::runtime::Runtime::new().unwrap();
    tokio.block_on(async {
        let client = async_nats::connect(&server.url).await.unwrap();
        let jetstream = async_nats::jetstream::new(client);
        let leases = jetstream.get_stream("STEAL_tally_LEASES").await.unwrap();
        let lease = leases
            .get_last_raw_message_by_subject("steal_lease.tally.x")
            .await
            .unwrap();
        assert_eq!(&lease.payload[..], b"a");
        let steal = async_nats::jetstream::message::PublishMessage::build()
            .payload("b".into())
            .expected_last_subject_sequence(lease.sequence);
        jetstream
            .send_publish("steal_lease.tally.x", steal)
            .await
            .unwrap()
            .await
            .unwrap();
    });
    // a's next renewal is refused: the lease is lost there.
    std::thread::sleep(ttl / 3 + Duration::from_millis(300));

    // b, which holds the lease now, serves x; a query on a must not answer from a's old
    // state: its activation, without the lease, leaves, and the query reads the store.
    assert_eq!(b.ask("x", 2).unwrap().version, 2);
    assert_eq!(b.tallies.active(), ["x"]);
    assert_eq!(a.tally("x"), (2, 3, 2));
    assert!(a.tallies.active().is_empty());
    // A command on a goes to b.
    assert_eq!(a.ask("x", 3).unwrap().version, 3);
    assert!(a.tallies.active().is_empty());
    assert_eq!(b.tally("x"), (3, 6, 3));
}

#[test]
fn clustered_actors_under_a_supervisor_keep_serving_other_runtimes_across_a_restart() {
    use baobab::supervisor::{Strategy, Supervisor, SupervisorSpec};

    let server = NatsServer::start();
    let ttl = Duration::from_secs(5);
    let rt = Runtime::builder().threads(2).build();
    let a_cluster = cluster(&server.url, "tree", "a", ttl);
    let (spec, tallies) = VirtualActors::<Tally>::clustered_child_spec(
        rt.handle(),
        "tallies",
        store(&server.url, "tree"),
        VirtualConfig::default(),
        &a_cluster,
    )
    .unwrap();
    let tree = Supervisor::start(
        rt.handle(),
        SupervisorSpec::new(Strategy::OneForOne).child(spec),
    )
    .unwrap();
    let a = Node {
        rt,
        tallies,
        _cluster: a_cluster,
    };
    let b = Node::start(&server.url, "tree", "b", ttl, VirtualConfig::default());
    assert_eq!(a.ask("z", 3).unwrap().version, 1);
    assert_eq!(b.ask("z", 4).unwrap().version, 2);
    assert!(b.tallies.active().is_empty());

    // a's router crashes and its supervisor restarts it: the leases its activations held
    // are given up, and z lives wherever it is asked for next, with every event.
    let router = a.tallies.router().unwrap();
    a.rt.handle().exit(router, baobab::ExitReason::Kill);
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.tallies.router() == Some(router) || !a.tallies.active().is_empty() {
        assert!(Instant::now() < deadline, "the router was not restarted");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(b.ask("z", 5).unwrap().version, 3);
    assert_eq!(a.ask("z", 6).unwrap().version, 4);
    assert_eq!(b.tallies.active(), ["z"]);
    assert_eq!(a.tally("z"), (4, 18, 4));
    tree.shutdown(a.rt.handle());
}

#[test]
fn hostile_messages_on_the_command_subject_and_in_a_lease_get_clear_errors() {
    let server = NatsServer::start();
    let a = Node::start(
        &server.url,
        "hostile",
        "a",
        Duration::from_secs(2),
        VirtualConfig::default(),
    );
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let client = tokio.block_on(async_nats::connect(&server.url)).unwrap();
    let request = |payload: &'static [u8]| -> serde_json::Value {
        tokio.block_on(async {
            let reply = client
                .request("hostile_node.a.tally", payload.into())
                .await
                .unwrap();
            serde_json::from_slice(&reply.payload).unwrap()
        })
    };
    // The wire format, as another client would write it. An id active nowhere is not
    // activated by a forwarded command: the sender is told to activate it itself.
    assert_eq!(
        request(br#"{"id":"h1","command":5}"#),
        serde_json::json!("NotHere")
    );
    assert_eq!(a.ask("h1", 5).unwrap().version, 1);
    assert_eq!(
        request(br#"{"id":"h1","command":2}"#),
        serde_json::json!({"Committed": {"version": 2, "events": 1}})
    );
    assert_eq!(
        request(br#"{"id":"h1","command":0}"#),
        serde_json::json!({"Rejected": {"Zero": {"count": 2}}})
    );
    assert_eq!(
        request(br#"{"id":"../x","command":5}"#),
        serde_json::json!({"Store": {"InvalidName": "../x"}})
    );
    for garbage in [
        &b"not json"[..],
        br#"{"id":"h1","command":"five"}"#,
        br#"{"id":"h1"}"#,
        b"",
    ] {
        let reply = request(garbage);
        let reason = reply["Encode"]["reason"].as_str().unwrap_or_else(|| {
            panic!(
                "{reply}: not an Encode error for {:?}",
                String::from_utf8_lossy(garbage)
            )
        });
        assert!(
            reason.starts_with("a forwarded command does not decode"),
            "{reason}"
        );
    }
    assert_eq!(
        a.tally("h1"),
        (2, 7, 2),
        "nothing but the valid commands ran"
    );

    // A lease that names no valid node is reported as corrupt, not followed.
    tokio.block_on(async {
        let jetstream = async_nats::jetstream::new(client.clone());
        jetstream
            .publish("hostile_lease.tally.g", "not a node!".into())
            .await
            .unwrap()
            .await
            .unwrap();
    });
    match a.ask("g", 1) {
        Err(ActorError::Store(baobab::persistence::StoreError::Corrupt(why))) => {
            assert!(why.contains("names no valid node"), "{why}")
        }
        other => panic!("expected a corrupt lease, got {other:?}"),
    }
}

#[test]
fn a_lease_ttl_under_the_minimum_and_a_second_actor_type_registration_are_refused() {
    let server = NatsServer::start();
    let refused = Cluster::connect(
        &server.url,
        ClusterConfig {
            lease_ttl: Duration::ZERO,
            ..ClusterConfig::default()
        },
    );
    assert!(
        matches!(refused, Err(baobab::persistence::StoreError::Unavailable(why)) if why.contains("lease_ttl"))
    );
    let rt = Runtime::builder().threads(1).build();
    let cluster = cluster(&server.url, "twice", "a", Duration::from_secs(5));
    let first = VirtualActors::<Tally>::start_clustered(
        rt.handle(),
        store(&server.url, "twice"),
        VirtualConfig::default(),
        &cluster,
    )
    .unwrap();
    let second = VirtualActors::<Tally>::start_clustered(
        rt.handle(),
        store(&server.url, "twice"),
        VirtualConfig::default(),
        &cluster,
    );
    assert!(second.unwrap_err().to_string().contains("already run"));
    // Once the first is shut down, the type can start again on this connection.
    first.shutdown(rt.handle());
    VirtualActors::<Tally>::start_clustered(
        rt.handle(),
        store(&server.url, "twice"),
        VirtualConfig::default(),
        &cluster,
    )
    .unwrap()
    .shutdown(rt.handle());
}

/// Every stored event of `ids`, checked gap-free: tag → (id, version).
fn stored_tags(
    store: &dyn EventStore,
    ids: impl Iterator<Item = String>,
) -> HashMap<u64, (String, u64)> {
    let mut by_tag = HashMap::new();
    for id in ids {
        let events = store
            .read(&StreamId::new("tally", id.clone()).unwrap(), 0, usize::MAX)
            .unwrap();
        for (i, event) in events.iter().enumerate() {
            assert_eq!(event.version, i as u64 + 1, "no gap in {id}");
            let Added(tag) = serde_json::from_slice(&event.payload).unwrap();
            let again = by_tag.insert(tag, (id.clone(), event.version));
            assert!(again.is_none(), "tag {tag} stored twice");
        }
    }
    by_tag
}

mod three_processes {
    use super::*;

    const IDS: usize = 16;
    const TTL: Duration = Duration::from_secs(2);
    const WORKERS: u64 = 6;

    fn now_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    }

    /// The worker number of the probes in the tags.
    const PROBES: u64 = 900;

    /// Sends `tag` to `id` and writes its outcome as a line of the output.
    async fn ask_logged(
        tallies: &VirtualActors<Tally>,
        ctx: &mut Ctx<()>,
        out: &Mutex<std::fs::File>,
        id: String,
        tag: u64,
    ) {
        let issued = now_ms();
        let text = match tallies.ask(ctx, &id, tag).await {
            Ok(c) => format!("OK {issued} {} {id} {tag} {}\n", now_ms(), c.version),
            Err(error) => format!("ERR {issued} {} {id} {tag} {error:?}\n", now_ms()),
        };
        line(out, text);
    }

    fn line(out: &Mutex<std::fs::File>, text: String) {
        out.lock().unwrap().write_all(text.as_bytes()).unwrap();
    }

    /// One runtime of the three-process test: `WORKERS` processes send tagged commands to
    /// ids in turn until the deadline, and probes (a process each) two more every 100 ms;
    /// each outcome is a line of the output file, and every 100 ms a line lists the ids
    /// active here.
    #[test]
    #[ignore = "a runtime of the three-process test, run by it"]
    fn cluster_node_child() {
        let var = |name: &str| std::env::var(name).expect("run by the three-process test");
        let url = var("BAOBAB_CLUSTER_URL");
        let node: u64 = var("BAOBAB_CLUSTER_NODE").parse().unwrap();
        let secs: u64 = var("BAOBAB_CLUSTER_SECS").parse().unwrap();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(var("BAOBAB_CLUSTER_OUT"))
            .unwrap();
        let out = Arc::new(Mutex::new(out));
        let n = Node::start(
            &url,
            "three",
            &format!("n{node}"),
            TTL,
            VirtualConfig {
                call_timeout: Duration::from_secs(5),
                // No retry: two activations of one id writing at once would show as a
                // conflict error, which fails the test.
                conflict_retries: 0,
                ..VirtualConfig::default()
            },
        );
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut watches = Vec::new();
        for worker in 0..WORKERS {
            let (tallies, out) = (n.tallies.clone(), Arc::clone(&out));
            let watch =
                n.rt.handle()
                    .spawn(move |mut ctx: Ctx<()>| async move {
                        let mut i = 0u64;
                        while Instant::now() < deadline {
                            i += 1;
                            let id = format!("k{}", (i * 7 + worker * 5 + node) as usize % IDS);
                            let tag = node * 1_000_000_000 + worker * 1_000_000 + i;
                            ask_logged(&tallies, &mut ctx, &out, id, tag).await;
                        }
                    })
                    .unwrap();
            watches.push(n.rt.handle().watch(watch.pid()));
        }
        // Probes, each in a process of its own, two every 100 ms over every id: a worker
        // stuck on a command whose runtime died cannot hold up the sampling of the others.
        let mut probe = 0u64;
        while Instant::now() < deadline {
            let active = n.tallies.active().join(",");
            line(&out, format!("OWN {} {active}\n", now_ms()));
            for _ in 0..2 {
                probe += 1;
                let (tallies, out) = (n.tallies.clone(), Arc::clone(&out));
                let id = format!("k{}", probe as usize % IDS);
                let tag = node * 1_000_000_000 + PROBES * 1_000_000 + probe;
                let pid =
                    n.rt.handle()
                        .spawn(move |mut ctx: Ctx<()>| async move {
                            ask_logged(&tallies, &mut ctx, &out, id, tag).await;
                        })
                        .unwrap()
                        .pid();
                watches.push(n.rt.handle().watch(pid));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for watch in watches {
            watch.wait_timeout(Duration::from_secs(30)).unwrap();
        }
        n.tallies.shutdown(n.rt.handle());
    }

    #[derive(Debug)]
    struct Outcome {
        issued: u64,
        done: u64,
        id: String,
        tag: u64,
        result: Result<u64, String>,
    }

    /// The outcomes and the last list of active ids in one runtime's output (a line cut
    /// short by a kill is skipped).
    fn parse(text: &str) -> (Vec<Outcome>, Vec<String>) {
        let mut outcomes = Vec::new();
        let mut own = Vec::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.splitn(6, ' ').collect();
            match fields.as_slice() {
                ["OWN", _, ids] => own = ids.split(',').map(str::to_owned).collect(),
                ["OWN", _] => own.clear(),
                [kind @ ("OK" | "ERR"), issued, done, id, tag, rest] => {
                    let (Ok(issued), Ok(done), Ok(tag)) =
                        (issued.parse(), done.parse(), tag.parse())
                    else {
                        continue;
                    };
                    let result = if *kind == "OK" {
                        match rest.parse() {
                            Ok(version) => Ok(version),
                            Err(_) => continue,
                        }
                    } else {
                        Err(rest.to_string())
                    };
                    outcomes.push(Outcome {
                        issued,
                        done,
                        id: id.to_string(),
                        tag,
                        result,
                    });
                }
                _ => {}
            }
        }
        own.retain(|id| !id.is_empty());
        (outcomes, own)
    }

    #[test]
    fn three_runtimes_one_killed_mid_load_lose_nothing_and_its_ids_move_within_the_ttl() {
        let server = NatsServer::start();
        let dir = std::env::temp_dir().join(format!("baobab-cluster-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let spawn = |node: u64, secs: u64| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "three_processes::cluster_node_child",
                    "--ignored",
                    "--nocapture",
                ])
                .env("BAOBAB_CLUSTER_URL", &server.url)
                .env("BAOBAB_CLUSTER_NODE", node.to_string())
                .env("BAOBAB_CLUSTER_SECS", secs.to_string())
                .env("BAOBAB_CLUSTER_OUT", dir.join(format!("n{node}")))
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        };
        let survivors = [spawn(1, 12), spawn(2, 12)];
        let mut victim = spawn(3, 60);
        // Mid-load: every runtime has been serving commands for a while.
        std::thread::sleep(Duration::from_secs(4));
        victim.kill().unwrap();
        let killed = now_ms();
        victim.wait().unwrap();
        for child in survivors {
            let status = child.wait_with_output().unwrap().status;
            assert!(status.success(), "a surviving runtime failed: {status}");
        }

        let read = |node: u64| std::fs::read_to_string(dir.join(format!("n{node}"))).unwrap();
        let (dead_outcomes, dead_ids) = parse(&read(3));
        assert!(!dead_ids.is_empty(), "the killed runtime held no id");
        let mut outcomes = dead_outcomes;
        let mut survivor_outcomes = Vec::new();
        for node in [1, 2] {
            let (mine, _) = parse(&read(node));
            survivor_outcomes.extend(mine);
        }
        assert!(!survivor_outcomes.is_empty());

        // Nothing failed but commands in flight at the kill (their outcome is unknown): sent
        // to the killed runtime before the server saw its connection close.
        for o in outcomes.iter().chain(&survivor_outcomes) {
            if let Err(error) = &o.result {
                assert!(
                    error == "Timeout" && o.issued <= killed + 1000,
                    "a command failed: {o:?} (killed at {killed})"
                );
            }
        }

        // The dead runtime's ids are served again within the TTL plus one second.
        let mut slowest = Duration::ZERO;
        for id in &dead_ids {
            let first = survivor_outcomes
                .iter()
                .filter(|o| &o.id == id && o.result.is_ok() && o.issued >= killed)
                .map(|o| o.done)
                .min()
                .unwrap_or_else(|| panic!("{id} was never served again"));
            let waited = Duration::from_millis(first - killed);
            assert!(
                waited <= TTL + Duration::from_secs(1),
                "{id} served again {waited:?} after the kill"
            );
            slowest = slowest.max(waited);
        }
        eprintln!(
            "{} ids of the killed runtime, the last served again {slowest:?} after the kill (TTL {TTL:?})",
            dead_ids.len()
        );

        // Every acknowledged command's event is stored, once, at the version its reply gave;
        // the streams have no gap and hold nothing else but commands in flight at the kill.
        outcomes.extend(survivor_outcomes);
        let reader = store(&server.url, "three");
        let by_tag = stored_tags(&*reader, (0..IDS).map(|i| format!("k{i}")));
        let mut acked = 0;
        for o in &outcomes {
            if let Ok(version) = o.result {
                acked += 1;
                assert_eq!(by_tag.get(&o.tag), Some(&(o.id.clone(), version)), "{o:?}");
            }
        }
        let unacked: HashSet<u64> = by_tag
            .keys()
            .copied()
            .filter(|tag| !outcomes.iter().any(|o| o.tag == *tag && o.result.is_ok()))
            .collect();
        for tag in &unacked {
            // Stored but not acknowledged: the dead runtime's last commands (its reply line
            // was never written) or a timed-out command in flight at the kill.
            let dead = tag / 1_000_000_000 == 3;
            let timed_out = outcomes
                .iter()
                .any(|o| o.tag == *tag && o.result.as_ref().is_err_and(|e| e == "Timeout"));
            assert!(dead || timed_out, "tag {tag} stored without a command");
        }
        assert!(acked > 100, "too little load: {acked} commands");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
