//! `FileStore`: the embedded durable store, append-only segment files in one directory.
//!
//! # Layout
//! A directory holds segments `00000001.seg`, `00000002.seg`, … and a `LOCK` file (one open
//! store per directory, by `flock` on Unix). A segment is a sequence of frames:
//!
//! ```text
//! frame := len: u32 LE | crc32(body): u32 LE | body (len bytes)
//! body  := 1 | stream | first: u64 | count: u32 | count × (schema: u32 | n: u32 | n bytes)   an append
//!        | 2 | stream | version: u64 | schema: u32 | n: u32 | n bytes                     a snapshot
//! stream := k: u16 | k bytes of the actor type | i: u16 | i bytes of the id
//! ```
//!
//! All the events of one append are one frame, so an append is on disk whole or not at all.
//! A new segment is started when the current one would pass the configured size.
//!
//! # Recovery
//! Opening reads every frame and builds an index in memory (per stream: where each append's
//! frame is, and the latest snapshot). A frame that runs past the end of the last segment or
//! fails its checksum is a torn tail (the process died in the middle of a write): it and
//! everything after it is cut, and a warning says how many bytes. The same in an earlier
//! segment, or an append whose first version does not follow its stream's, is corruption: the
//! open fails and names the segment and offset.
//!
//! # Durability
//! An append returns once its frame is written to the file (so it survives the death of the
//! process, `kill -9` included), and, with [`Fsync::Always`] (the default), once it is on disk
//! (so it survives a power loss). Appends that wait for the disk at the same time share one
//! `fsync` (group commit).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tracing::warn;

use super::{
    EventRecord, EventStore, NewEvent, Snapshot, StoreError, StreamId, check_events,
    check_expected, check_name, check_payload,
};

/// When the file store waits for the disk (`fsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Every append and snapshot is on disk before it returns; concurrent appends share one
    /// `fsync`. Survives a power loss.
    Always,
    /// At most one `fsync` per interval, done by the append that finds the last one older:
    /// a power loss may lose the appends of the last interval; the death of the process
    /// loses nothing.
    Every(Duration),
    /// Never: the operating system writes the pages back when it likes. The death of the
    /// process loses nothing; a power loss may lose anything not yet written back.
    Never,
}

/// How a [`FileStore`] is opened.
#[derive(Debug, Clone)]
pub struct FileStoreConfig {
    /// When to wait for the disk; [`Fsync::Always`] by default.
    pub fsync: Fsync,
    /// A new segment is started when the current one would pass this size (64 MiB by
    /// default); a single frame larger than it gets a segment of its own.
    pub segment_size: u64,
}

impl Default for FileStoreConfig {
    fn default() -> Self {
        FileStoreConfig {
            fsync: Fsync::Always,
            segment_size: 64 << 20,
        }
    }
}

/// The largest frame a segment may hold: an append's events together (64 MiB).
const MAX_FRAME: usize = 64 << 20;
const FRAME_HEADER: usize = 8;
const TAG_APPEND: u8 = 1;
const TAG_SNAPSHOT: u8 = 2;

/// The embedded durable [`EventStore`]: append-only segment files with checksums in one
/// directory (see the module's documentation for the format).
///
/// ```
/// use baobab::persistence::{EventStore, FileStore, NewEvent, StreamId};
///
/// let dir = std::env::temp_dir().join(format!("baobab-doc-{}", std::process::id()));
/// let stream = StreamId::new("counter", "c1").unwrap();
/// {
///     let store = FileStore::open(&dir).unwrap();
///     let event = NewEvent { schema: 1, payload: b"{\"add\":2}".to_vec() };
///     assert_eq!(store.append(&stream, 0, &[event]).unwrap(), 1);
/// }
/// let store = FileStore::open(&dir).unwrap(); // reopened: the event is there
/// assert_eq!(store.read(&stream, 0, 10).unwrap()[0].payload, b"{\"add\":2}");
/// # drop(store);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub struct FileStore {
    dir: PathBuf,
    config: FileStoreConfig,
    inner: Mutex<Inner>,
    sync: Mutex<SyncState>,
    synced: Condvar,
    /// Set when a write or an `fsync` failed: what is on disk is no longer known, so every
    /// later call fails until the store is reopened.
    failed: AtomicBool,
    _lock: File,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.dir)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

struct Inner {
    streams: HashMap<StreamId, StreamIndex>,
    /// Read handles of the segments, by number (segment `n` at index `n - 1`).
    segments: Vec<Arc<File>>,
    /// The segment appends go to, and its size.
    current: Arc<File>,
    current_size: u64,
    /// Frames written so far; `SyncState::synced` says how many of them are on disk.
    written: u64,
}

#[derive(Default)]
struct StreamIndex {
    version: u64,
    appends: Vec<Location>,
    snapshot: Option<Location>,
}

/// Where one frame is: its segment, the offset of its body and the body's length, and for
/// an append the version of its first event.
#[derive(Clone, Copy)]
struct Location {
    segment: u32,
    offset: u64,
    len: u32,
    first: u64,
}

impl Location {
    /// The frame here does not decode.
    fn corrupt(&self, why: &str) -> StoreError {
        StoreError::Corrupt(format!(
            "segment {} at offset {}: {why}",
            self.segment, self.offset
        ))
    }
}

struct SyncState {
    synced: u64,
    syncing: bool,
    last: Instant,
}

impl FileStore {
    /// Opens (or creates) the store in `dir` with the default configuration.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(dir, FileStoreConfig::default())
    }

    /// Opens (or creates) the store in `dir`: reads every segment, cuts a torn tail, and
    /// fails on corruption anywhere else.
    pub fn open_with(dir: impl AsRef<Path>, config: FileStoreConfig) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io("create the directory", e))?;
        let lock = lock_dir(&dir)?;
        let mut numbers = segment_numbers(&dir)?;
        if numbers.is_empty() {
            create_segment(&dir, 1)?;
            numbers.push(1);
        }
        if numbers
            .iter()
            .enumerate()
            .any(|(i, &n)| n as usize != i + 1)
        {
            return Err(StoreError::Corrupt(format!(
                "{}: segments are not numbered 1, 2, 3, …: found {numbers:?}",
                dir.display()
            )));
        }
        let mut streams: HashMap<StreamId, StreamIndex> = HashMap::new();
        let mut segments = Vec::with_capacity(numbers.len());
        let last = *numbers.last().expect("at least one segment");
        let mut current_size = 0;
        for &number in &numbers {
            let path = segment_path(&dir, number);
            let mut bytes = Vec::new();
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(|e| StoreError::io(&format!("read {}", path.display()), e))?;
            // Frames before a bad one are indexed; the bad one and the rest are not.
            let (end, torn) = match index_segment(&bytes, number, &mut streams) {
                Ok(end) => (end, None),
                Err((offset, why, true)) if number == last => (offset, Some(why)),
                Err((offset, why, _)) => {
                    return Err(StoreError::Corrupt(format!(
                        "{} at offset {offset}: {why}",
                        path.display()
                    )));
                }
            };
            if number == last {
                if let Some(why) = torn {
                    warn!(
                        segment = %path.display(),
                        offset = end,
                        cut = bytes.len() - end,
                        why,
                        "event store: a torn write at the end of the last segment was cut"
                    );
                    let file = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(|e| StoreError::io("open the last segment", e))?;
                    file.set_len(end as u64)
                        .and_then(|()| file.sync_all())
                        .map_err(|e| StoreError::io("cut the torn tail", e))?;
                }
                current_size = end as u64;
            }
            let file =
                File::open(&path).map_err(|e| StoreError::io("open a segment for reads", e))?;
            segments.push(Arc::new(file));
        }
        streams.retain(|_, index| index.version > 0 || index.snapshot.is_some());
        let current = Arc::new(
            OpenOptions::new()
                .append(true)
                .open(segment_path(&dir, last))
                .map_err(|e| StoreError::io("open the last segment for appends", e))?,
        );
        Ok(FileStore {
            dir,
            config,
            inner: Mutex::new(Inner {
                streams,
                segments,
                current,
                current_size,
                written: 0,
            }),
            sync: Mutex::new(SyncState {
                synced: 0,
                syncing: false,
                last: Instant::now(),
            }),
            synced: Condvar::new(),
            failed: AtomicBool::new(false),
            _lock: lock,
        })
    }

    /// The directory of the store.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many streams the store holds.
    pub fn streams(&self) -> usize {
        self.lock().streams.len()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check_failed(&self) -> Result<(), StoreError> {
        if self.failed.load(Ordering::Acquire) {
            Err(StoreError::Unavailable(format!(
                "{}: an earlier write failed; reopen the store",
                self.dir.display()
            )))
        } else {
            Ok(())
        }
    }

    fn fail(&self, context: &str, error: std::io::Error) -> StoreError {
        self.failed.store(true, Ordering::Release);
        StoreError::io(context, error)
    }

    /// Writes one frame to the current segment (starting a new one first if it would pass
    /// the segment size), and returns where its body is and the frame's sequence number.
    fn write_frame(&self, inner: &mut Inner, body: &[u8]) -> Result<(Location, u64), StoreError> {
        if inner.current_size > 0
            && inner.current_size + (FRAME_HEADER + body.len()) as u64 > self.config.segment_size
        {
            if self.config.fsync != Fsync::Never {
                inner
                    .current
                    .sync_data()
                    .map_err(|e| self.fail("sync a full segment", e))?;
            }
            let number = inner.segments.len() as u32 + 1;
            let file = create_segment(&self.dir, number).inspect_err(|_| {
                self.failed.store(true, Ordering::Release);
            })?;
            let read = File::open(segment_path(&self.dir, number))
                .map_err(|e| self.fail("open a new segment", e))?;
            inner.segments.push(Arc::new(read));
            inner.current = Arc::new(file);
            inner.current_size = 0;
        }
        let mut frame = Vec::with_capacity(FRAME_HEADER + body.len());
        frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        frame.extend_from_slice(body);
        (&*inner.current)
            .write_all(&frame)
            .map_err(|e| self.fail("append to a segment", e))?;
        let location = Location {
            segment: inner.segments.len() as u32,
            offset: inner.current_size + FRAME_HEADER as u64,
            len: body.len() as u32,
            first: 0,
        };
        inner.current_size += frame.len() as u64;
        inner.written += 1;
        Ok((location, inner.written))
    }

    /// Waits until frame `sequence` is on disk, as the fsync policy asks.
    fn wait_durable(&self, sequence: u64) -> Result<(), StoreError> {
        let interval = match self.config.fsync {
            Fsync::Never => return Ok(()),
            Fsync::Always => None,
            Fsync::Every(interval) => Some(interval),
        };
        let mut state = self.sync.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if state.synced >= sequence {
                return Ok(());
            }
            if interval.is_some_and(|every| state.last.elapsed() < every) {
                return Ok(());
            }
            if !state.syncing {
                state.syncing = true;
                drop(state);
                let (file, target) = {
                    let inner = self.lock();
                    (Arc::clone(&inner.current), inner.written)
                };
                let result = file.sync_data();
                state = self.sync.lock().unwrap_or_else(PoisonError::into_inner);
                state.syncing = false;
                self.synced.notify_all();
                result.map_err(|e| self.fail("fsync a segment", e))?;
                state.synced = state.synced.max(target);
                state.last = Instant::now();
                continue;
            }
            state = self
                .synced
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            self.check_failed()?;
        }
    }

    fn read_body(file: &File, location: &Location) -> Result<Vec<u8>, StoreError> {
        let mut body = vec![0; location.len as usize];
        read_exact_at(file, &mut body, location.offset)
            .map_err(|e| StoreError::io("read a segment", e))?;
        Ok(body)
    }
}

impl EventStore for FileStore {
    fn append(
        &self,
        stream: &StreamId,
        expected: u64,
        events: &[NewEvent],
    ) -> Result<u64, StoreError> {
        self.check_failed()?;
        let size = check_events(events)?;
        if size > MAX_FRAME - 300 {
            return Err(StoreError::TooLarge {
                len: size,
                limit: MAX_FRAME - 300,
            });
        }
        let mut inner = self.lock();
        let actual = inner.streams.get(stream).map_or(0, |s| s.version);
        check_expected(stream, expected, actual)?;
        if events.is_empty() {
            return Ok(actual);
        }
        let mut body = Vec::with_capacity(size + 300);
        body.push(TAG_APPEND);
        put_stream(&mut body, stream);
        body.extend_from_slice(&(actual + 1).to_le_bytes());
        body.extend_from_slice(&(events.len() as u32).to_le_bytes());
        for event in events {
            body.extend_from_slice(&event.schema.to_le_bytes());
            body.extend_from_slice(&(event.payload.len() as u32).to_le_bytes());
            body.extend_from_slice(&event.payload);
        }
        let (mut location, sequence) = self.write_frame(&mut inner, &body)?;
        location.first = actual + 1;
        let index = inner.streams.entry(stream.clone()).or_default();
        index.appends.push(location);
        index.version = actual + events.len() as u64;
        let version = index.version;
        drop(inner);
        self.wait_durable(sequence)?;
        Ok(version)
    }

    fn read(
        &self,
        stream: &StreamId,
        after: u64,
        max: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.check_failed()?;
        let reads: Vec<(Arc<File>, Location)> = {
            let inner = self.lock();
            let Some(index) = inner.streams.get(stream) else {
                return Ok(Vec::new());
            };
            // The append holding event `after + 1`, and the ones after it.
            let start = index
                .appends
                .partition_point(|location| location.first <= after)
                .saturating_sub(1);
            // Versions have no gaps: the last event wanted is `after + max`.
            let last_wanted = after.saturating_add(max as u64);
            index.appends[start..]
                .iter()
                .take_while(|location| location.first <= last_wanted)
                .map(|location| {
                    let file = Arc::clone(&inner.segments[location.segment as usize - 1]);
                    (file, *location)
                })
                .collect()
        };
        let mut events = Vec::new();
        for (file, location) in reads {
            let body = Self::read_body(&file, &location)?;
            let (_, records) = decode_append(&body).map_err(|why| location.corrupt(&why))?;
            for record in records {
                if record.version > after && events.len() < max {
                    events.push(record);
                }
            }
        }
        Ok(events)
    }

    fn version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.check_failed()?;
        Ok(self.lock().streams.get(stream).map_or(0, |s| s.version))
    }

    fn save_snapshot(&self, stream: &StreamId, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.check_failed()?;
        check_payload(snapshot.payload.len())?;
        let mut inner = self.lock();
        let index = inner.streams.get(stream);
        let version = index.map_or(0, |s| s.version);
        if snapshot.version > version {
            return Err(StoreError::Corrupt(format!(
                "snapshot of {stream} at version {} is past the stream's version {version}",
                snapshot.version
            )));
        }
        if index
            .and_then(|s| s.snapshot)
            .is_some_and(|old| old.first > snapshot.version)
        {
            return Ok(());
        }
        let mut body = Vec::with_capacity(snapshot.payload.len() + 300);
        body.push(TAG_SNAPSHOT);
        put_stream(&mut body, stream);
        body.extend_from_slice(&snapshot.version.to_le_bytes());
        body.extend_from_slice(&snapshot.schema.to_le_bytes());
        body.extend_from_slice(&(snapshot.payload.len() as u32).to_le_bytes());
        body.extend_from_slice(&snapshot.payload);
        let (mut location, sequence) = self.write_frame(&mut inner, &body)?;
        location.first = snapshot.version;
        inner.streams.entry(stream.clone()).or_default().snapshot = Some(location);
        drop(inner);
        self.wait_durable(sequence)
    }

    fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        self.check_failed()?;
        let (file, location) = {
            let inner = self.lock();
            let Some(location) = inner.streams.get(stream).and_then(|s| s.snapshot) else {
                return Ok(None);
            };
            (
                Arc::clone(&inner.segments[location.segment as usize - 1]),
                location,
            )
        };
        let body = Self::read_body(&file, &location)?;
        decode_snapshot(&body)
            .map(|(_, snapshot)| Some(snapshot))
            .map_err(|why| location.corrupt(&why))
    }
}

fn segment_path(dir: &Path, number: u32) -> PathBuf {
    dir.join(format!("{number:08}.seg"))
}

/// The numbers of the segments in `dir`, in order.
fn segment_numbers(dir: &Path) -> Result<Vec<u32>, StoreError> {
    let mut numbers = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| StoreError::io("list the directory", e))? {
        let entry = entry.map_err(|e| StoreError::io("list the directory", e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".seg")) else {
            continue;
        };
        let number = stem
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("a segment named {name:?}")))?;
        numbers.push(number);
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// Creates segment `number` for appends, and makes its directory entry durable.
fn create_segment(dir: &Path, number: u32) -> Result<File, StoreError> {
    let file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(segment_path(dir, number))
        .map_err(|e| StoreError::io("create a segment", e))?;
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("sync the directory", e))?;
    Ok(file)
}

/// Takes the directory's lock file: one open store per directory.
fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))
        .map_err(|e| StoreError::io("open the lock file", e))?;
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // A lock released a moment ago may still be held for a moment by a child process
        // this one forked while the store was open (until the child's `exec` closes its copy
        // of the descriptor): so a held lock is tried again for up to half a second.
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
        loop {
            // SAFETY: `flock` on a descriptor this function owns, open for as long as the
            // call.
            let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if locked == 0 {
                break;
            }
            if std::time::Instant::now() >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "{} is open in another store (its LOCK is held)",
                    dir.display()
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    Ok(file)
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// A bad frame: its offset, why, and whether it is torn (cut short or failing its checksum,
/// as a write the process died in leaves it) rather than whole but wrong.
type BadFrame = (usize, String, bool);

/// Indexes the frames of one segment; `Ok` with the end of the last frame, or `Err` with the
/// first bad one. The frames before a bad one are indexed.
fn index_segment(
    bytes: &[u8],
    segment: u32,
    streams: &mut HashMap<StreamId, StreamIndex>,
) -> Result<usize, BadFrame> {
    let mut at = 0;
    while at < bytes.len() {
        let body = frame_at(bytes, at).map_err(|why| (at, why, true))?;
        let offset = (at + FRAME_HEADER) as u64;
        let mut location = Location {
            segment,
            offset,
            len: body.len() as u32,
            first: 0,
        };
        match body.first() {
            Some(&TAG_APPEND) => {
                let (stream, records) = decode_append(body).map_err(|why| (at, why, false))?;
                let index = streams.entry(stream.clone()).or_default();
                let first = records.first().map_or(0, |r| r.version);
                if first != index.version + 1 {
                    return Err((
                        at,
                        format!(
                            "an append to {stream} starts at version {first}, the stream is at {}",
                            index.version
                        ),
                        false,
                    ));
                }
                location.first = first;
                index.version += records.len() as u64;
                index.appends.push(location);
            }
            Some(&TAG_SNAPSHOT) => {
                let (stream, snapshot) = decode_snapshot(body).map_err(|why| (at, why, false))?;
                let index = streams.entry(stream).or_default();
                location.first = snapshot.version;
                index.snapshot = Some(location);
            }
            other => return Err((at, format!("unknown frame tag {other:?}"), false)),
        }
        at += FRAME_HEADER + body.len();
    }
    Ok(at)
}

/// The body of the frame at `at`, if whole and its checksum matches.
fn frame_at(bytes: &[u8], at: usize) -> Result<&[u8], String> {
    let header = bytes
        .get(at..at + FRAME_HEADER)
        .ok_or("a frame header cut short")?;
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    if len > MAX_FRAME {
        return Err(format!("a frame of {len} bytes, over the limit"));
    }
    if len == 0 {
        // Never written (every body has its tag): zeros where a write did not land.
        return Err("an empty frame".into());
    }
    let body = bytes
        .get(at + FRAME_HEADER..at + FRAME_HEADER + len)
        .ok_or("a frame cut short")?;
    if crc32fast::hash(body) != crc {
        return Err("a checksum mismatch".into());
    }
    Ok(body)
}

fn put_stream(body: &mut Vec<u8>, stream: &StreamId) {
    for name in [stream.kind(), stream.id()] {
        body.extend_from_slice(&(name.len() as u16).to_le_bytes());
        body.extend_from_slice(name.as_bytes());
    }
}

/// A cursor over a frame body.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("a frame body cut short".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2")))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }

    fn name(&mut self) -> Result<String, String> {
        let len = self.u16()? as usize;
        let name = std::str::from_utf8(self.take(len)?)
            .map_err(|_| "a stream name that is not UTF-8")?
            .to_owned();
        check_name(&name).map_err(|e| e.to_string())?;
        Ok(name)
    }

    fn stream(&mut self) -> Result<StreamId, String> {
        let kind = self.name()?;
        let id = self.name()?;
        StreamId::new(kind, id).map_err(|e| e.to_string())
    }

    fn end(&self) -> Result<(), String> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} bytes after the end of a frame body",
                self.0.len()
            ))
        }
    }
}

fn decode_append(body: &[u8]) -> Result<(StreamId, Vec<EventRecord>), String> {
    let mut reader = Reader(body);
    if reader.take(1)? != [TAG_APPEND] {
        return Err("not an append".into());
    }
    let stream = reader.stream()?;
    let first = reader.u64()?;
    let count = reader.u32()?;
    if first == 0 || count == 0 {
        return Err(format!("an append of {count} events from version {first}"));
    }
    let mut records = Vec::with_capacity(count.min(1024) as usize);
    for n in 0..u64::from(count) {
        let schema = reader.u32()?;
        let len = reader.u32()? as usize;
        records.push(EventRecord {
            version: first + n,
            schema,
            payload: reader.take(len)?.to_vec(),
        });
    }
    reader.end()?;
    Ok((stream, records))
}

fn decode_snapshot(body: &[u8]) -> Result<(StreamId, Snapshot), String> {
    let mut reader = Reader(body);
    if reader.take(1)? != [TAG_SNAPSHOT] {
        return Err("not a snapshot".into());
    }
    let stream = reader.stream()?;
    let version = reader.u64()?;
    let schema = reader.u32()?;
    let len = reader.u32()? as usize;
    let payload = reader.take(len)?.to_vec();
    reader.end()?;
    Ok((
        stream,
        Snapshot {
            version,
            schema,
            payload,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_with_a_bad_checksum_or_length_is_refused() {
        let body = [TAG_APPEND, 0, 0];
        let mut frame = Vec::new();
        frame.extend_from_slice(&3u32.to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        frame.extend_from_slice(&body);
        assert!(frame_at(&frame, 0).is_ok());
        frame[9] ^= 1;
        assert!(frame_at(&frame, 0).unwrap_err().contains("checksum"));
        assert!(frame_at(&frame[..7], 0).unwrap_err().contains("header"));
        assert!(frame_at(&frame[..10], 0).unwrap_err().contains("cut short"));
        let mut huge = Vec::new();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&[0; 4]);
        assert!(frame_at(&huge, 0).unwrap_err().contains("over the limit"));
    }

    #[test]
    fn an_append_body_round_trips_and_a_short_one_is_refused() {
        let stream = StreamId::new("k", "i").unwrap();
        let mut body = vec![TAG_APPEND];
        put_stream(&mut body, &stream);
        body.extend_from_slice(&5u64.to_le_bytes());
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&7u32.to_le_bytes());
        body.extend_from_slice(&2u32.to_le_bytes());
        body.extend_from_slice(b"hi");
        let (decoded, records) = decode_append(&body).unwrap();
        assert_eq!(decoded, stream);
        assert_eq!(records[0].version, 5);
        assert_eq!(records[0].schema, 7);
        assert_eq!(records[0].payload, b"hi");
        assert!(decode_append(&body[..body.len() - 1]).is_err());
        body.push(0);
        assert!(decode_append(&body).unwrap_err().contains("after the end"));
    }

    #[test]
    fn a_read_past_the_end_of_a_segment_fails() {
        // `read_exact_at` past the end of a file fails instead of returning short data.
        let dir = std::env::temp_dir().join(format!("baobab-eof-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        std::fs::write(&path, b"abc").unwrap();
        let file = File::open(&path).unwrap();
        let mut buf = [0; 4];
        let error = read_exact_at(&file, &mut buf, 0).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
