//! Opening the connector's own files safely: the one place that opens what it reads
//! (`-pkcs12`, `-plugininfo`, `-report`, `ca_bundle`) and what it writes (`-csvfile`,
//! `-logfile`, `-summary-json`, `keep_report` copies and the hidden temporary files
//! beside them). Any later state, cache or lock file opens through here too.
//!
//! Inputs must be regular files (or symbolic links to one): they are opened without
//! blocking and checked with `fstat`, so a FIFO or a device given by mistake is refused
//! at once instead of hanging the run.
//!
//! Outputs follow symbolic links the way the kernel's `fs.protected_symlinks` does: in a
//! sticky, world-writable directory (like /tmp) a link is followed only when it belongs
//! to the running user or to the directory's owner, so another user cannot point the
//! connector, running as root, at a file it must not replace. Each link on the way is
//! checked with `lstat` while the path is resolved by hand, and what was checked is then
//! opened without following links again (`O_NOFOLLOW`, or a rename, which never follows).

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::OFlags;
use tempfile::NamedTempFile;

/// As Linux's `MAXSYMLINKS`: more links than this on one path is a loop.
const MAX_LINKS: usize = 40;

/// How many numbered names `persist_new` tries after the plain one.
const MAX_SUFFIX: u32 = 1000;

/// A link that the link rule refuses to follow (module comment).
#[derive(Debug, thiserror::Error)]
#[error(
    "refusing to follow the symbolic link {} owned by uid {owner}: in the sticky, world-writable directory {} only links owned by this user (uid {me}) or by the directory's owner (uid {dir_owner}) are followed, as the kernel's fs.protected_symlinks does; remove the link or choose another path",
    .link.display(),
    .dir.display()
)]
pub struct UntrustedLink {
    pub link: PathBuf,
    pub owner: u32,
    pub dir: PathBuf,
    pub dir_owner: u32,
    pub me: u32,
}

/// Where a path really is once its symbolic links are followed under the link rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Absolute; no component is a symbolic link unless `magic`.
    pub path: PathBuf,
    /// The path goes through a procfs "magic" link (`/dev/stdout` is
    /// `/proc/self/fd/1`): such a link names an open file, not a path, so it is opened
    /// by following it. Only the process itself owns these, so nobody can plant one.
    pub magic: bool,
}

/// What a file that is not a regular file is, for error messages.
pub fn describe(kind: fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

fn flags(flags: OFlags) -> i32 {
    // The open(2) flags fit in a C int; `custom_flags` takes one.
    flags.bits() as i32
}

/// Opens an input file for reading. Anything but a regular file (or a link to one) is
/// refused with an error saying what it is. `O_NONBLOCK` makes opening a FIFO return at
/// once (open(2): a FIFO opened for reading otherwise waits for a writer); on a regular
/// file the flag has no effect, so the file reads as usual.
pub fn open_input(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags(OFlags::NONBLOCK))
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("it is {}, not a regular file", describe(kind)),
        ));
    }
    Ok(file)
}

/// Resolves `path` component by component, checking every symbolic link followed
/// against the link rule. A missing last component is fine (the file to create).
pub fn resolve(path: &Path) -> io::Result<Resolved> {
    let mut resolved = if path.is_absolute() {
        PathBuf::from("/")
    } else {
        std::env::current_dir()?
    };
    let mut pending = Vec::new();
    push_components(&mut pending, path);
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&name);
        let meta = match fs::symlink_metadata(&candidate) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound && pending.is_empty() => {
                return Ok(Resolved {
                    path: candidate,
                    magic: false,
                });
            }
            Err(e) => return Err(e),
        };
        if !meta.file_type().is_symlink() {
            resolved = candidate;
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(io::Error::other("too many levels of symbolic links"));
        }
        check_link(&candidate, &meta, &resolved)?;
        if on_procfs(&resolved) {
            let mut path = candidate;
            while let Some(name) = pending.pop() {
                path.push(name);
            }
            return Ok(Resolved { path, magic: true });
        }
        let target = fs::read_link(&candidate)?;
        if target.is_absolute() {
            resolved = PathBuf::from("/");
        }
        push_components(&mut pending, &target);
    }
    Ok(Resolved {
        path: resolved,
        magic: false,
    })
}

/// Pushes the names of `path` so that the first comes off the stack first.
fn push_components(pending: &mut Vec<OsString>, path: &Path) {
    let names: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    pending.extend(names.into_iter().rev());
}

/// The link rule (module comment) for `link` found in `dir`, which has no links in it.
fn check_link(link: &Path, meta: &fs::Metadata, dir: &Path) -> io::Result<()> {
    let dir_meta = fs::metadata(dir)?;
    let mode = dir_meta.mode();
    let sticky_and_world_writable = mode & 0o1000 != 0 && mode & 0o002 != 0;
    let me = rustix::process::geteuid().as_raw();
    if !sticky_and_world_writable || meta.uid() == me || meta.uid() == dir_meta.uid() {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        UntrustedLink {
            link: link.to_path_buf(),
            owner: meta.uid(),
            dir: dir.to_path_buf(),
            dir_owner: dir_meta.uid(),
            me,
        },
    ))
}

fn on_procfs(dir: &Path) -> bool {
    rustix::fs::statfs(dir).is_ok_and(|s| s.f_type == rustix::fs::PROC_SUPER_MAGIC)
}

/// Options that open exactly what `resolved` names: no link is followed again, so a
/// link planted after the check makes the open fail instead of redirecting it.
fn no_follow(options: &mut OpenOptions, resolved: &Resolved) {
    if !resolved.magic {
        options.custom_flags(flags(OFlags::NOFOLLOW));
    }
}

/// Opens a file to append to (the log file), creating it if needed.
pub fn open_append(path: &Path) -> io::Result<File> {
    let resolved = resolve(path)?;
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    no_follow(&mut options, &resolved);
    options.open(&resolved.path)
}

/// A file being written.
#[derive(Debug)]
pub enum Output {
    /// A hidden temporary file beside `target`, for `commit` to rename over it.
    Replace { tmp: NamedTempFile, target: PathBuf },
    /// A device or pipe (`/dev/null`, `/dev/stdout`), written as it goes: renaming over
    /// it would destroy it.
    Direct { file: File, target: PathBuf },
}

/// Starts writing the file at `path`, which appears complete or not at all (see
/// `Output`). `tmp_prefix` starts the temporary file's name; a directory is refused.
pub fn create_output(path: &Path, tmp_prefix: &str) -> io::Result<Output> {
    let resolved = resolve(path)?;
    match fs::metadata(&resolved.path) {
        Ok(meta) if meta.is_dir() => {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "is a directory",
            ));
        }
        Ok(meta) if !meta.is_file() => {
            let mut options = OpenOptions::new();
            options.write(true);
            no_follow(&mut options, &resolved);
            let file = options.open(&resolved.path)?;
            return Ok(Output::Direct {
                file,
                target: resolved.path,
            });
        }
        _ => {}
    }
    let tmp = temporary_in(parent(&resolved.path), tmp_prefix)?;
    Ok(Output::Replace {
        tmp,
        target: resolved.path,
    })
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("/"),
    }
}

/// A hidden temporary file in `dir` (links in `dir` followed under the link rule),
/// removed when dropped. `tempfile` creates it with `O_EXCL`, which never follows a link.
pub fn temporary_in(dir: &Path, prefix: &str) -> io::Result<NamedTempFile> {
    let dir = resolve(dir)?;
    tempfile::Builder::new()
        .prefix(prefix)
        .suffix(".tmp")
        .tempfile_in(&dir.path)
}

/// Syncs `tmp`, renames it over `target` and makes the rename durable.
pub fn commit(tmp: NamedTempFile, target: &Path) -> io::Result<()> {
    tmp.as_file().sync_all()?;
    tmp.persist(target).map_err(|e| e.error)?;
    sync_dir(parent(target));
    Ok(())
}

/// Best effort: a directory that cannot be synced still holds the renamed file.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Gives `tmp` (made by `temporary_in`) the name `<stem>.<ext>` in its directory, or
/// `<stem>-2.<ext>`, `<stem>-3.<ext>`, ... when that is taken: a file already there is
/// never replaced (the rename is `renameat2(RENAME_NOREPLACE)` or `link`, atomic either
/// way). Returns the name given.
pub fn persist_new(mut tmp: NamedTempFile, stem: &str, ext: &str) -> io::Result<PathBuf> {
    tmp.as_file().sync_all()?;
    let dir = parent(tmp.path()).to_path_buf();
    for n in 1..=MAX_SUFFIX {
        let name = match n {
            1 => format!("{stem}.{ext}"),
            n => format!("{stem}-{n}.{ext}"),
        };
        let path = dir.join(name);
        match tmp.persist_noclobber(&path) {
            Ok(_) => {
                sync_dir(&dir);
                return Ok(path);
            }
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => tmp = e.file,
            Err(e) => return Err(e.error),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "{} and {MAX_SUFFIX} numbered names after it are taken",
            dir.join(format!("{stem}.{ext}")).display()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    /// A sticky, world-writable directory (like /tmp) inside a temporary directory.
    fn sticky_dir() -> (tempfile::TempDir, PathBuf) {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("shared");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
        (base, dir)
    }

    const NOBODY: u32 = 65534;

    #[test]
    fn inputs_must_be_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::from(0o600)).unwrap();
        let regular = dir.path().join("file");
        fs::write(&regular, "x").unwrap();
        let link = dir.path().join("link");
        symlink(&regular, &link).unwrap();
        let cases: [(&Path, Option<&str>); 5] = [
            (&fifo, Some("it is a FIFO (named pipe), not a regular file")),
            (dir.path(), Some("it is a directory")),
            (Path::new("/dev/null"), Some("it is a character device")),
            (&regular, None),
            (&link, None),
        ];
        for (path, want) in cases {
            match (open_input(path), want) {
                (Ok(_), None) => {}
                (Err(e), Some(want)) => assert!(e.to_string().contains(want), "{path:?}: {e}"),
                (got, want) => panic!("{path:?}: {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn resolve_follows_links_and_dot_dot() {
        let base = tempfile::tempdir().unwrap();
        let base_path = fs::canonicalize(base.path()).unwrap();
        fs::create_dir(base_path.join("real")).unwrap();
        symlink("real", base_path.join("alias")).unwrap();
        symlink("../real/file", base_path.join("real/up")).unwrap();
        let cases = [
            ("alias/new.csv", "real/new.csv"),
            ("alias/up", "real/file"),
            ("alias/../real/./x", "real/x"),
        ];
        for (given, want) in cases {
            let got = resolve(&base_path.join(given)).unwrap();
            assert_eq!(got.path, base_path.join(want), "{given}");
            assert!(!got.magic);
        }
        symlink("loop", base_path.join("loop")).unwrap();
        let err = resolve(&base_path.join("loop")).unwrap_err().to_string();
        assert!(err.contains("too many levels"), "{err}");
    }

    #[test]
    fn dev_stdout_is_a_magic_link() {
        let got = resolve(Path::new("/dev/stdout")).unwrap();
        assert!(got.magic, "{got:?}");
        assert!(got.path.starts_with("/proc"), "{got:?}");
    }

    #[test]
    fn links_in_sticky_directories() {
        if !is_root() {
            println!("SKIP: not root, cannot give a link to another user");
            return;
        }
        let (_base, dir) = sticky_dir();
        let victim = dir.join("victim");
        fs::write(&victim, "root only\n").unwrap();
        let foreign = dir.join("foreign.csv");
        symlink(&victim, &foreign).unwrap();
        std::os::unix::fs::lchown(&foreign, Some(NOBODY), Some(NOBODY)).unwrap();
        let own = dir.join("own.csv");
        symlink(&victim, &own).unwrap();

        let err = resolve(&foreign).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        let text = err.to_string();
        assert!(
            text.contains("foreign.csv") && text.contains("uid 65534"),
            "{text}"
        );
        let err = open_append(&foreign).unwrap_err().to_string();
        assert!(err.contains("refusing to follow"), "{err}");
        assert_eq!(resolve(&own).unwrap().path, victim);

        // The same foreign link in an ordinary directory is followed, as before.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(resolve(&foreign).unwrap().path, victim);
    }

    #[test]
    fn output_replaces_what_a_link_points_to() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        let link = dir.path().join("out.json");
        fs::write(&real, "old").unwrap();
        symlink(&real, &link).unwrap();
        let Output::Replace { tmp, target } = create_output(&link, ".out.").unwrap() else {
            panic!("a regular file is replaced");
        };
        fs::write(tmp.path(), "new").unwrap();
        commit(tmp, &target).unwrap();
        assert_eq!(fs::read_to_string(&real).unwrap(), "new");
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(matches!(
            create_output(Path::new("/dev/null"), ".x.").unwrap(),
            Output::Direct { .. }
        ));
    }

    #[test]
    fn persist_new_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let mut names = Vec::new();
        for content in ["one", "two", "three"] {
            let tmp = temporary_in(dir.path(), ".keep.").unwrap();
            fs::write(tmp.path(), content).unwrap();
            names.push(persist_new(tmp, "424242-20260101T000000Z", "xml").unwrap());
        }
        let file_names: Vec<String> = names
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            file_names,
            [
                "424242-20260101T000000Z.xml",
                "424242-20260101T000000Z-2.xml",
                "424242-20260101T000000Z-3.xml"
            ]
        );
        for (name, content) in names.iter().zip(["one", "two", "three"]) {
            assert_eq!(fs::read_to_string(name).unwrap(), content);
        }
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            3,
            "no temporary left"
        );
    }
}
