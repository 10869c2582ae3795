//! Reading script files safely: a path may name a FIFO, a device or a huge file.
//!
//! A file is opened with `O_NONBLOCK` (so opening a FIFO never waits for a writer) and
//! checked on the open descriptor (so a path swapped for something else after it was looked
//! at is still refused); only a regular file is read, and only up to the limit plus one byte.

use std::fs::{File, Metadata};
use std::io::Read;
use std::path::Path;

/// Why a script file was not read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// It is not a regular file: not read. Says what it is (`a FIFO`, `a socket`...).
    #[error("not a regular file ({0}): not read")]
    NotAFile(&'static str),
    /// It is over the limit: only the limit plus one byte was read.
    #[error("field `script`: the file is over the limit of {0} bytes")]
    TooLarge(usize),
    /// It is not UTF-8.
    #[error("field `script`: the file is not UTF-8 text")]
    NotText,
    /// The operating system's error.
    #[error("cannot read the file: {0}")]
    Io(String),
}

/// Reads the script at `path`, of at most `limit` bytes, without blocking on the open and
/// without reading more than `limit + 1` bytes.
///
/// ```
/// use baobab::script::{SourceError, read_source};
///
/// let dir = std::env::temp_dir().join(format!("baobab-doc-source-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("job.rhai"), "40 + 2").unwrap();
/// assert_eq!(read_source(&dir.join("job.rhai"), 100).unwrap(), "40 + 2");
/// assert_eq!(read_source(&dir.join("job.rhai"), 3), Err(SourceError::TooLarge(3)));
/// assert_eq!(read_source("/dev/zero".as_ref(), 100), Err(SourceError::NotAFile("a character device")));
/// std::fs::remove_dir_all(dir).unwrap();
/// ```
pub fn read_source(path: &Path, limit: usize) -> Result<String, SourceError> {
    let file = open_nonblocking(path).map_err(|e| SourceError::Io(describe_io(&e)))?;
    let meta = file
        .metadata()
        .map_err(|e| SourceError::Io(describe_io(&e)))?;
    if !meta.is_file() {
        return Err(SourceError::NotAFile(kind(&meta)));
    }
    let mut bytes = Vec::with_capacity((meta.len() as usize).min(limit.saturating_add(1)));
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| SourceError::Io(describe_io(&e)))?;
    if bytes.len() > limit {
        return Err(SourceError::TooLarge(limit));
    }
    String::from_utf8(bytes).map_err(|_| SourceError::NotText)
}

/// What kind of file `meta` describes, in words.
pub fn kind(meta: &Metadata) -> &'static str {
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
    } else if meta.is_file() {
        "a file"
    } else {
        "not a file"
    }
}

/// An I/O error in words (`no such file or directory` without the code).
pub(crate) fn describe_io(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        _ => error.to_string(),
    }
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

    #[test]
    fn fifos_devices_large_and_binary_files_are_refused_without_blocking() {
        let dir = std::env::temp_dir().join(format!("baobab-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("pipe.rhai");
        let _ = std::fs::remove_file(&fifo);
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        assert_eq!(
            read_source(&fifo, 100),
            Err(SourceError::NotAFile("a FIFO"))
        );
        let big = dir.join("big.rhai");
        std::fs::write(&big, "1".repeat(101)).unwrap();
        assert_eq!(read_source(&big, 100), Err(SourceError::TooLarge(100)));
        assert_eq!(read_source(&big, 101).unwrap().len(), 101);
        std::fs::write(&big, [0xff, 0xfe]).unwrap();
        assert_eq!(read_source(&big, 100), Err(SourceError::NotText));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
