//! Files that appear whole or not at all: written under a temporary name beside the
//! destination, fsynced, then renamed into place. Every file the pipeline produces goes through
//! [`AtomicFile`].
//!
//! Temporary names are `.{file name}.{host}-{pid}.{random}.tmp`: hidden, with no product's
//! extension (nothing listing outputs takes one for a finished file), and saying which machine
//! and process writes them, so that [`remove_stale_temp_files`] can tell a leftover of a killed
//! run from the work of a live process, here or on another machine sharing the folder. (The
//! `--annotate` video is written by the `media` crate's encoder, under a name of the same
//! pattern, so the same sweep removes its leftovers.)

use std::ffi::OsString;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context as _, Result};
use tempfile::NamedTempFile;

/// A file being written to a temporary name beside its destination. [`commit`](Self::commit)
/// puts it in place; dropped without it, the temporary file is removed and nothing appears.
#[derive(Debug)]
pub struct AtomicFile {
    dest: PathBuf,
    out: BufWriter<NamedTempFile>,
}

impl AtomicFile {
    /// Creates `dest`'s folder if need be, and the temporary file in it.
    pub fn create(dest: &Path) -> Result<Self> {
        let dir = folder_of(dest);
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let name = dest
            .file_name()
            .with_context(|| format!("{}: not a file name", dest.display()))?;
        let mut prefix = OsString::from(".");
        prefix.push(name);
        prefix.push(format!(".{}-{}.", host(), std::process::id()));
        let mut builder = tempfile::Builder::new();
        builder
            .prefix(&prefix)
            .suffix(SUFFIX)
            .rand_bytes(RANDOM_LEN);
        // tempfile's default is 0600; a product gets the usual 0666 less the umask.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let file = builder
            .tempfile_in(dir)
            .with_context(|| format!("creating a temporary file beside {}", dest.display()))?;
        Ok(Self {
            dest: dest.to_path_buf(),
            out: BufWriter::new(file),
        })
    }

    /// Flushes, fsyncs and renames the file into place (replacing any file there).
    pub fn commit(self) -> Result<()> {
        let Self { dest, out } = self;
        let file = out.into_inner().map_err(|e| e.into_error());
        file.and_then(|f| f.as_file().sync_all().map(|()| f))
            .and_then(|f| f.persist(&dest).map_err(|e| e.error))
            .with_context(|| format!("writing {}", dest.display()))?;
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.out.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// `bytes` to `dest`, atomically (see [`AtomicFile`]).
pub fn write_file(dest: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(dest)?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", dest.display()))?;
    file.commit()
}

/// The folder `path` is in (`.` for a bare file name).
pub(crate) fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

const SUFFIX: &str = ".tmp";
const RANDOM_LEN: usize = 6;

/// This machine's name as it appears in temporary names: the kernel's host name with anything
/// but ASCII letters, digits and `-` (dots included) turned into `_`, so that it holds no `.`
/// and the name parses from the right; `localhost` when it cannot be read.
fn host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(gethostname)
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        name.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    })
}

#[cfg(unix)]
#[allow(unsafe_code)]
fn gethostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes, which gethostname does not exceed.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec()).ok()
}

#[cfg(not(unix))]
fn gethostname() -> Option<String> {
    None
}

/// The host and process id in a temporary name of ours
/// (`.{file name}.{host}-{pid}.{random}.tmp`); `None` for any other name.
fn parse_temp_name(name: &[u8]) -> Option<(&[u8], u32)> {
    let rest = name.strip_prefix(b".")?.strip_suffix(SUFFIX.as_bytes())?;
    let (rest, random) = rsplit_once(rest, b'.')?;
    if random.len() != RANDOM_LEN || !random.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    let (rest, pid) = rsplit_once(rest, b'-')?;
    if pid.is_empty() || !pid.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let pid: u32 = std::str::from_utf8(pid).ok()?.parse().ok()?;
    let (file, host) = rsplit_once(rest, b'.')?;
    (!file.is_empty() && !host.is_empty()).then_some((host, pid))
}

fn rsplit_once(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let i = s.iter().rposition(|&b| b == sep)?;
    Some((&s[..i], &s[i + 1..]))
}

/// Whether process `pid` of this machine is known to have ended. Unsure (no `/proc`, no right
/// to ask) counts as running.
fn process_gone(pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    if Path::new("/proc/self").exists() {
        return !Path::new(&format!("/proc/{pid}")).exists();
    }
    no_such_process(pid)
}

#[cfg(unix)]
#[allow(unsafe_code)]
fn no_such_process(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 sends nothing, it only checks that `pid` (> 0: one process) exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

#[cfg(not(unix))]
fn no_such_process(_pid: i32) -> bool {
    false
}

/// Removes, under `root` (recursively, not following symbolic links), the temporary files that
/// an [`AtomicFile`] of this machine left behind when its process died. Files of other
/// machines (shards elsewhere may share the folder), of live processes, and anything not named
/// like ours are kept. Best effort: what cannot be listed or removed is logged and skipped.
/// Returns the number of files removed.
///
/// Processes are told apart by host name and process id: two containers sharing a host name
/// but not a process namespace could remove each other's files (the writer then fails when it
/// commits; it never leaves a wrong file in place).
pub fn remove_stale_temp_files(root: &Path) -> usize {
    let mut removed = 0;
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::warn!(
                    "listing {} for stale temporary files: {e}",
                    folder.display()
                );
                continue;
            }
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                folders.push(entry.path());
                continue;
            }
            let name = entry.file_name();
            let stale = kind.is_file()
                && parse_temp_name(name.as_encoded_bytes())
                    .is_some_and(|(h, pid)| h == host().as_bytes() && process_gone(pid));
            if !stale {
                continue;
            }
            let path = entry.path();
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!("removed stale temporary file {}", path.display());
                    removed += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("removing {}: {e}", path.display()),
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn commit_puts_the_whole_file_in_place() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dest = tmp.path().join("sub/out.json");
        let mut file = AtomicFile::create(&dest).expect("create");
        file.write_all(b"hello ").expect("write");
        // While writing: one hidden temporary file naming this host and process, no product.
        let during = names(&tmp.path().join("sub"));
        assert_eq!(during.len(), 1, "{during:?}");
        let prefix = format!(".out.json.{}-{}.", host(), std::process::id());
        assert!(
            during[0].starts_with(&prefix) && during[0].ends_with(".tmp"),
            "{during:?}"
        );
        assert_eq!(
            parse_temp_name(during[0].as_bytes()),
            Some((host().as_bytes(), std::process::id()))
        );
        file.write_all(b"world\n").expect("write");
        file.commit().expect("commit");
        assert_eq!(
            std::fs::read_to_string(&dest).expect("read"),
            "hello world\n"
        );
        assert_eq!(names(&tmp.path().join("sub")), ["out.json"]);
        // Replaces what was there.
        write_file(&dest, b"again").expect("write_file");
        assert_eq!(std::fs::read_to_string(&dest).expect("read"), "again");
        assert_eq!(names(&tmp.path().join("sub")), ["out.json"]);
    }

    #[cfg(unix)]
    #[test]
    fn committed_file_is_readable_by_others_as_umask_allows() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = tempfile::tempdir().expect("tempdir");
        let dest = tmp.path().join("x.txt");
        write_file(&dest, b"x").expect("write");
        let mode = std::fs::metadata(&dest).expect("stat").permissions().mode();
        // Not tempfile's 0600: at least the owner's read-write, and nothing executable.
        assert_eq!(mode & 0o600, 0o600, "{mode:o}");
        assert_eq!(mode & 0o111, 0, "{mode:o}");
    }

    #[test]
    fn drop_without_commit_leaves_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dest = tmp.path().join("out.bin");
        let mut file = AtomicFile::create(&dest).expect("create");
        file.write_all(&[1, 2, 3]).expect("write");
        drop(file);
        assert!(names(tmp.path()).is_empty());
    }

    #[test]
    fn the_annotate_encoders_temp_name_is_one_of_ours() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let writer = media::VideoWriter::create(&dir.path().join("a.mp4"), 32, 32, 5)?;
        let names: Vec<_> = std::fs::read_dir(dir.path())?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()?;
        assert_eq!(names.len(), 1, "{names:?}");
        let parsed = parse_temp_name(names[0].as_encoded_bytes());
        assert_eq!(
            parsed,
            Some((host().as_bytes(), std::process::id())),
            "{names:?}"
        );
        drop(writer);
        Ok(())
    }

    #[test]
    fn temp_names_parse_from_the_right() {
        assert_eq!(
            parse_temp_name(b".a.b-c.mp4.jsonl.node-7-12.aB3xY9.tmp"),
            Some((&b"node-7"[..], 12))
        );
        for other in [
            &b".bunny.mp4.jsonl.records-1.tmp"[..],
            b"a.mp4.jsonl.node-12.aB3xY9.tmp",
            b".a.node-12.aB3xY9.partial",
            b".a.node-x12.aB3xY9.tmp",
            b".a.node-12.aB-xY9.tmp",
            b".node-12.aB3xY9.tmp",
            b"out.jsonl",
        ] {
            assert_eq!(parse_temp_name(other), None, "{}", other.escape_ascii());
        }
    }

    #[test]
    fn stale_cleanup_removes_only_dead_processes_temps_of_this_host() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let sub = tmp.path().join("a/b");
        std::fs::create_dir_all(&sub).expect("mkdir");
        // A process that has certainly ended: a child, waited for.
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let dead = child.id();
        child.wait().expect("wait");
        let live = std::process::id();
        let name = |host: &str, pid: u32| format!(".clip.mp4.jsonl.{host}-{pid}.Ab12Cd.tmp");
        let files = [
            (sub.join(name(host(), dead)), false),
            (tmp.path().join(name(host(), 0x7fff_fff0)), false),
            (sub.join(name(host(), live)), true),
            (sub.join(name("other-host", dead)), true),
            (sub.join(".clip.mp4.jsonl.records-1.tmp"), true),
            (sub.join("clip.mp4.jsonl"), true),
        ];
        for (path, _) in &files {
            std::fs::write(path, b"x").expect("write");
        }
        assert_eq!(remove_stale_temp_files(tmp.path()), 2);
        for (path, kept) in &files {
            assert_eq!(path.exists(), *kept, "{}", path.display());
        }
        // A missing folder is nothing to clean.
        assert_eq!(remove_stale_temp_files(&tmp.path().join("missing")), 0);
    }
}
