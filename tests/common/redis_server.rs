//! A private Redis for a test: `redis-server` on a unix socket in a temp dir (or the server
//! at `BAOBAB_REDIS_URL` when set). Never the shared one on port 6379. A missing
//! `redis-server` fails the test: it is installed on these machines and CI must not skip.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestRedis {
    pub url: String,
    child: Option<Child>,
    dir: Option<PathBuf>,
    /// Every write on disk before it is acknowledged (`appendfsync always`), so a restart
    /// keeps what Redis acknowledged.
    durable: bool,
}

impl TestRedis {
    pub fn start() -> TestRedis {
        if let Ok(url) = std::env::var("BAOBAB_REDIS_URL") {
            return TestRedis {
                url,
                child: None,
                dir: None,
                durable: false,
            };
        }
        TestRedis::private()
    }

    /// A server of this process's own, whatever `BAOBAB_REDIS_URL` says.
    pub fn private() -> TestRedis {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("baobab-redis-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TestRedis::at(dir)
    }

    /// The socket a server started with [`TestRedis::at`]`(dir)` listens on.
    pub fn socket_in(dir: &std::path::Path) -> PathBuf {
        dir.join("redis.sock")
    }

    /// A server listening on [`TestRedis::socket_in`]`(dir)`; `dir` (which must exist) is
    /// removed when it is dropped.
    pub fn at(dir: PathBuf) -> TestRedis {
        TestRedis::launch(dir, false)
    }

    /// A private server that keeps every acknowledged write on disk (append-only file,
    /// fsynced before each reply), so [`TestRedis::restart`] loses nothing it acknowledged.
    pub fn durable() -> TestRedis {
        let dir = std::env::temp_dir().join(format!(
            "baobab-redis-durable-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TestRedis::launch(dir, true)
    }

    /// Kills the server (SIGKILL) and starts it again on the same socket and data.
    pub fn restart(&mut self, down: Duration) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        std::thread::sleep(down);
        let dir = self.dir.take().expect("a private server");
        let _ = std::fs::remove_file(TestRedis::socket_in(&dir));
        let again = TestRedis::launch(dir, self.durable);
        *self = again;
    }

    fn launch(dir: PathBuf, durable: bool) -> TestRedis {
        let socket = TestRedis::socket_in(&dir);
        let persistence: &[&str] = if durable {
            &["--appendonly", "yes", "--appendfsync", "always"]
        } else {
            &["--appendonly", "no"]
        };
        let child = Command::new("redis-server")
            .args(["--port", "0", "--save", ""])
            .args(persistence)
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (tests never use the shared Redis)");
        let url = format!("redis+unix://{}", socket.display());
        let redis = TestRedis {
            url,
            child: Some(child),
            dir: Some(dir),
            durable,
        };
        let start = Instant::now();
        loop {
            if let Ok(client) = redis::Client::open(redis.url.as_str())
                && let Ok(mut conn) = client.get_connection()
                && redis::cmd("PING").query::<String>(&mut conn).is_ok()
            {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        redis
    }

    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// The server's pid (to pause it with SIGSTOP), when this test started it.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A name no other test uses (tests may share a server through `BAOBAB_REDIS_URL`).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}
