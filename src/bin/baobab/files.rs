//! Finding the `.rhai` files to run, and reading them safely.
//!
//! The paths given may be hostile: a directory tree with symlink loops or links out of it, a
//! `.rhai` name on a FIFO, a socket or a device (`/dev/zero`), a file far larger than any
//! script. So:
//! - the walk visits each directory and each file once (by device and inode), so a file
//!   reached by two names runs once, and it does not follow a symlink to a directory (a link
//!   to `/` would walk the whole host); a directory named on the command line is followed;
//! - only regular files are read; anything else becomes a row saying what it is;
//! - files are read with [`read_source`](baobab::script::read_source): the open never blocks
//!   (a FIFO swapped in after the walk looked at it is refused, not waited on), and at most
//!   the script size limit plus one byte is read.

use std::collections::HashSet;
use std::fs::Metadata;
use std::path::{Path, PathBuf};

use baobab::script::file_kind as kind;

use tracing::warn;

/// A path found by [`collect`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// A regular file (or a name for one) to run.
    File(PathBuf),
    /// Named, or found with a `.rhai` name, but not run: why.
    Skipped(PathBuf, String),
}

impl Found {
    /// The path found.
    pub(crate) fn path(&self) -> &Path {
        match self {
            Found::File(path) | Found::Skipped(path, _) => path,
        }
    }
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
            let link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
            // Follows symlinks; a stat never blocks, not even on a FIFO.
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_dir() && link => {
                    warn!(dir = %path.display(), "a symlink to a directory: not followed");
                }
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

fn describe_io(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        _ => error.to_string(),
    }
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
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_symlink_to_a_directory_is_not_followed_unless_named() {
        let dir = temp("links");
        let outside = temp("links-outside");
        std::fs::write(outside.join("elsewhere.rhai"), "1").unwrap();
        std::fs::write(dir.join("here.rhai"), "1").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("out")).unwrap();
        let found = collect(std::slice::from_ref(&dir)).unwrap();
        assert_eq!(found, vec![Found::File(dir.join("here.rhai"))]);
        let named = collect(&[dir.join("out")]).unwrap();
        assert_eq!(
            named,
            vec![Found::File(dir.join("out").join("elsewhere.rhai"))]
        );
        std::fs::remove_dir_all(dir).unwrap();
        std::fs::remove_dir_all(outside).unwrap();
    }
}
