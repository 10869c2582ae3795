//! `rediss://` URLs (feature `redis-tls`): a private redis-server with TLS on a self-signed
//! certificate (made with `openssl`), a job submitted and run through it.
#![cfg(feature = "redis-tls")]

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baobab::bridge::{Client, Profile, RedisConfig, RedisStore};
use baobab::jobs::{Job, JobActor, JobStatus, PoolConfig, WorkerPool};
use baobab::script::RhaiActor;
use baobab::script::SandboxConfig;
use common::{SAFETY, runtime};

#[test]
fn jobs_run_through_a_tls_redis() {
    let dir = std::env::temp_dir().join(format!("baobab-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stderr(Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(made.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--save",
            "",
            "--appendonly",
            "no",
            "--tls-auth-clients",
            "no",
        ])
        .args(["--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
        .arg("--tls-cert-file")
        .arg(dir.join("cert.pem"))
        .arg("--tls-key-file")
        .arg(dir.join("key.pem"))
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server");
    let url = format!("rediss://127.0.0.1:{port}/#insecure");
    let start = Instant::now();
    let client = loop {
        let client = Client::new(&url, Profile::Hero).unwrap();
        if client.status("nothing").is_ok() {
            break client;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "TLS Redis did not answer"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let rt = runtime();
    let store = Arc::new(RedisStore::new(RedisConfig::new(&url)).unwrap());
    let mut config = PoolConfig::new("tls");
    config.workers = 1;
    let factory: baobab::jobs::ActorFactory =
        Arc::new(|| Arc::new(RhaiActor::new("tls", SandboxConfig::default())) as Arc<dyn JobActor>);
    let pool = WorkerPool::start(rt.handle(), store, factory, config).unwrap();
    let id = client
        .submit(Job::builder("40 + 2").actor_id("tls").build().unwrap())
        .unwrap();
    let job = client.await_result(&id, SAFETY).unwrap();
    assert_eq!(
        (job.status, job.output.as_deref()),
        (JobStatus::Finished, Some("42"))
    );
    pool.shutdown(Duration::from_secs(1)).unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(dir);
}
