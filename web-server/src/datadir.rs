//! File modes of the data directory: it holds the store (client private keys, encrypted), the
//! store key, the credentials and the embedded host's identity, so nobody but the owner may read
//! any of it.
//!
//! Two layers, because SQLite and the embedded host create files themselves: the process umask is
//! set to 0077 at start ([`restrict_umask`]), and every directory/file already under the data
//! directory is tightened to 0700/0600 with a warning naming it ([`secure_tree`]), which repairs a
//! data directory written by an older version or under a wide umask.

use std::io;
use std::path::Path;

/// Mode of the data directory and of every directory under it.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every regular file under the data directory.
pub const FILE_MODE: u32 = 0o600;

/// Sets the process umask to 0077 so every file and directory created afterwards (by us, SQLite,
/// the embedded host) is owner-only regardless of the umask we were started with. Returns the
/// previous umask. Process-wide: call it once at start, before threads create files.
#[cfg(unix)]
pub fn restrict_umask() -> u32 {
    // SAFETY: umask(2) cannot fail and has no memory-safety preconditions.
    unsafe { libc::umask(0o077) as u32 }
}

/// Not Unix: modes do not apply.
#[cfg(not(unix))]
pub fn restrict_umask() -> u32 {
    0
}

/// Creates `dir` (and parents) if needed, then tightens it and everything under it: directories
/// to 0700, regular files to 0600. Sockets and symlinks are left alone (a socket's mode is
/// irrelevant when its directory is 0700; a symlink is not followed). Each change is logged as a
/// warning naming the path. Returns how many modes were changed.
pub fn secure_tree(dir: &Path) -> io::Result<usize> {
    create_private_dir(dir)?;
    let mut changed = 0;
    walk(dir, &mut changed)?;
    Ok(changed)
}

/// Creates `dir` and its missing parents; a newly created leaf is 0700 from the start.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

fn walk(path: &Path, changed: &mut usize) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    let ft = meta.file_type();
    if ft.is_dir() {
        *changed += usize::from(tighten(path, &meta, DIR_MODE)?);
        for entry in std::fs::read_dir(path)? {
            walk(&entry?.path(), changed)?;
        }
    } else if ft.is_file() {
        *changed += usize::from(tighten(path, &meta, FILE_MODE)?);
    }
    Ok(())
}

/// Tightens one existing file or directory to `mode` if group/other have any access; `true` if it
/// changed. A file that does not exist is not an error (SQLite's `-shm` may come and go).
pub fn tighten_path(path: &Path, mode: u32) -> io::Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => tighten(path, &meta, mode),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn tighten(path: &Path, meta: &std::fs::Metadata, mode: u32) -> io::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    let current = meta.permissions().mode() & 0o7777;
    if current & 0o077 == 0 {
        return Ok(false);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    tracing::warn!(
        path = %path.display(),
        from = format!("{current:o}"),
        to = format!("{mode:o}"),
        "tightened the mode of a data-directory entry readable by others"
    );
    Ok(true)
}

#[cfg(not(unix))]
fn tighten(_path: &Path, _meta: &std::fs::Metadata, _mode: u32) -> io::Result<bool> {
    Ok(false)
}

/// Creates `path` as an empty 0600 file if it does not exist (so SQLite, which copies the main
/// database file's mode to its `-wal`/`-shm` files, starts from 0600), and tightens it if it does.
pub fn ensure_private_file(path: &Path) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE);
    }
    options.open(path)?;
    tighten_path(path, FILE_MODE)?;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn wide_entries_are_tightened_and_narrow_ones_kept() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(data.join("sub"), std::fs::Permissions::from_mode(0o775)).unwrap();
        std::fs::write(data.join("a.db"), b"x").unwrap();
        std::fs::set_permissions(data.join("a.db"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        std::fs::write(data.join("sub/k"), b"x").unwrap();
        std::fs::set_permissions(data.join("sub/k"), std::fs::Permissions::from_mode(0o400))
            .unwrap();
        assert_eq!(secure_tree(&data).unwrap(), 3);
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("sub")), 0o700);
        assert_eq!(mode(&data.join("a.db")), 0o600);
        // Already owner-only: left as it is.
        assert_eq!(mode(&data.join("sub/k")), 0o400);
        assert_eq!(secure_tree(&data).unwrap(), 0);

        let fresh = root.path().join("fresh/nested");
        secure_tree(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);
        ensure_private_file(&fresh.join("f")).unwrap();
        assert_eq!(mode(&fresh.join("f")), 0o600);
    }
}
