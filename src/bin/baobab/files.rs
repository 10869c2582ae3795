//! Finding the `.rhai` files to run, and reading them safely.
//!
//! The paths given may be hostile: a directory tree with symlink loops, a `.rhai` name on a
//! FIFO, a socket or a device (`/dev/zero`), a file far larger than any script. So:
//! - the walk visits each directory and each file once (by device and inode), so a loop
//!   ends and a file reached by two names runs once;
//! - only regular files are read; anything else becomes a row saying what it is;
//! - a file is opened with `O_NONBLOCK` and checked on the open descriptor, so an open never
//!   blocks (a FIFO swapped in after the walk looked at it is refused, not waited on), and at
//!   most the script size limit plus one byte is read.

use std::collections::HashSet;
use std::fs::{File, Metadata};
use std::io::Read;
use std::path::{Path, PathBuf};

use tracing::warn;

/// A path found by [`collect`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// A regular file (or a name for one) to run.
    File(PathBuf),
    /// Named, or found with a `.rhai` name, but not run: why.
    Skipped(PathBuf, String),
}

/// Every `.rhai` file named, or found (recursively, sorted) under a directory named, each
/// once. A named path that does not exist is an error.
pub(crate) fn collect(paths: &[PathBuf]) -> Result<Vec<Found>, String> {
    let mut walk = Walk::default();
    for path in paths {
        let meta = std::fs::metadata(path)
            .map_err(|error| format!("{}: {}", path.display(), describe_io(&error)))?;
        if meta.is_dir() {
            walk.dir(path, &meta)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        } else {
            walk.file(path, &meta);
        }
    }
    Ok(walk.found)
}

#[derive(Default)]
struct Walk {
    found: Vec<Found>,
    /// Directories and files visited, by (device, inode).
    seen: HashSet<(u64, u64)>,
}

impl Walk {
    fn dir(&mut self, dir: &Path, meta: &Metadata) -> std::io::Result<()> {
        if !self.seen.insert(identity(meta)) {
            warn!(dir = %dir.display(), "directory already visited (a symlink loop?): skipped");
            return Ok(());
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for path in entries {
            let rhai = path.extension().is_some_and(|e| e == "rhai");
            // Follows symlinks; a stat never blocks, not even on a FIFO.
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_dir() => {
                    if let Err(error) = self.dir(&path, &meta) {
                        warn!(dir = %path.display(), %error, "cannot read a directory: skipped");
                    }
                }
                Ok(meta) if rhai => self.file(&path, &meta),
                Ok(_) => {}
                Err(error) if rhai => self.found.push(Found::Skipped(
                    path,
                    format!("cannot read: {}", describe_io(&error)),
                )),
                Err(_) => {}
            }
        }
        Ok(())
    }

    fn file(&mut self, path: &Path, meta: &Metadata) {
        if !meta.is_file() {
            let why = format!("not a regular file ({})", kind(meta));
            self.found.push(Found::Skipped(path.to_path_buf(), why));
        } else if self.seen.insert(identity(meta)) {
            self.found.push(Found::File(path.to_path_buf()));
        }
    }
}

#[cfg(unix)]
fn identity(meta: &Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn identity(_meta: &Metadata) -> (u64, u64) {
    // No inode numbers: nothing to compare (loops are a unix matter).
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    (
        u64::MAX,
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    )
}

/// What kind of file `meta` describes, in words.
fn kind(meta: &Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let kind = meta.file_type();
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_char_device() {
            return "a character device";
        }
        if kind.is_block_device() {
            return "a block device";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

fn describe_io(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        _ => error.to_string(),
    }
}

/// Why a script file was not read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// It is not a regular file (it changed since the walk): not read.
    NotAFile(String),
    /// Over the size limit: only the limit plus one byte was read.
    TooLarge(usize),
    /// Not UTF-8.
    NotText,
    /// The operating system's error.
    Io(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::NotAFile(kind) => write!(f, "not a regular file ({kind}): not read"),
            ReadError::TooLarge(limit) => write!(
                f,
                "field `script`: the file is over the limit of {limit} bytes (--max-script-size)"
            ),
            ReadError::NotText => f.write_str("field `script`: the file is not UTF-8 text"),
            ReadError::Io(error) => write!(f, "cannot read the file: {error}"),
        }
    }
}

/// Reads a script of at most `limit` bytes, without blocking on the open and without reading
/// more than `limit + 1` bytes.
pub(crate) fn read_script(path: &Path, limit: usize) -> Result<String, ReadError> {
    let file = open_nonblocking(path).map_err(|e| ReadError::Io(describe_io(&e)))?;
    let meta = file
        .metadata()
        .map_err(|e| ReadError::Io(describe_io(&e)))?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile(kind(&meta).to_string()));
    }
    let mut bytes = Vec::with_capacity((meta.len() as usize).min(limit.saturating_add(1)));
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::Io(describe_io(&e)))?;
    if bytes.len() > limit {
        return Err(ReadError::TooLarge(limit));
    }
    String::from_utf8(bytes).map_err(|_| ReadError::NotText)
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("baobab-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn loops_end_and_each_file_is_found_once() {
        let dir = temp("loops");
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("a/b/job.rhai"), "1").unwrap();
        std::os::unix::fs::symlink(&dir, dir.join("a/b/up")).unwrap();
        std::os::unix::fs::symlink(dir.join("a"), dir.join("a/b/again")).unwrap();
        std::os::unix::fs::symlink(dir.join("a/b/job.rhai"), dir.join("alias.rhai")).unwrap();
        let found = collect(std::slice::from_ref(&dir)).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn fifos_and_devices_are_skipped_and_never_opened() {
        let dir = temp("fifo");
        let fifo = dir.join("pipe.rhai");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        std::os::unix::fs::symlink("/dev/zero", dir.join("zero.rhai")).unwrap();
        let found = collect(std::slice::from_ref(&dir)).unwrap();
        assert_eq!(found.len(), 2);
        assert!(
            found
                .iter()
                .all(|f| matches!(f, Found::Skipped(_, why) if why.contains("not a regular file"))),
            "{found:?}"
        );
        // Read directly (as if swapped in after the walk): refused at once, not waited on.
        assert_eq!(
            read_script(&fifo, 100),
            Err(ReadError::NotAFile("a FIFO".into()))
        );
        assert_eq!(
            read_script(&dir.join("zero.rhai"), 100),
            Err(ReadError::NotAFile("a character device".into()))
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_over_the_limit_is_not_read_whole() {
        let dir = temp("large");
        let path = dir.join("big.rhai");
        std::fs::write(&path, "1".repeat(101)).unwrap();
        assert_eq!(read_script(&path, 100), Err(ReadError::TooLarge(100)));
        assert_eq!(read_script(&path, 101).unwrap().len(), 101);
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert_eq!(read_script(&path, 100), Err(ReadError::NotText));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
