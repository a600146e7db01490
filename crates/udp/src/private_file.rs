//! Opening a file only its owner may read, never through a symbolic link:
//! the relay's transcript holds students' words.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// A file opened by [`open_private_append`].
#[derive(Debug)]
pub struct PrivateFile {
    /// Open for reading and appending.
    pub file: File,
    /// The permission bits the file had if they were looser than owner
    /// read/write and were tightened to 0600 (Unix); `None` if it was new
    /// or already private.
    pub tightened_from: Option<u32>,
}

/// Opens `path` for reading and appending, creating it with mode 0600.
///
/// - A symbolic link as the last component is refused (`O_NOFOLLOW`, in
///   the same system call as the open, so nobody can swap one in between
///   a check and the open); the error is what the OS says (`ELOOP` on
///   Linux), and the caller can tell it by looking at the path.
/// - Anything but a regular file (a directory, a device, a FIFO) is
///   refused with `InvalidInput`.
/// - An existing file readable or writable by others is tightened to 0600
///   (the caller reports it from [`PrivateFile::tightened_from`]); if that
///   is not allowed (someone else owns the file), the error is returned.
///
/// Elsewhere than Unix: a symbolic link is refused by a check before the
/// open (not atomic), and permissions are left to the system.
pub fn open_private_append(path: &Path) -> io::Result<PrivateFile> {
    imp::open_private_append(path)
}

fn not_regular() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "not a regular file")
}

#[cfg(unix)]
mod imp {
    use super::*;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};

    pub(super) fn open_private_append(path: &Path) -> io::Result<PrivateFile> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(not_regular());
        }
        let mode = meta.permissions().mode() & 0o7777;
        let mut tightened_from = None;
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            tightened_from = Some(mode);
        }
        Ok(PrivateFile {
            file,
            tightened_from,
        })
    }
}

#[cfg(not(unix))]
mod imp {
    use super::*;

    pub(super) fn open_private_append(path: &Path) -> io::Result<PrivateFile> {
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a symbolic link",
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        if !file.metadata()?.is_file() {
            return Err(not_regular());
        }
        Ok(PrivateFile {
            file,
            tightened_from: None,
        })
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn temp(name: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("udpchat-udp-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_file_is_0600() {
        let p = temp("new");
        let f = open_private_append(&p).unwrap();
        assert_eq!(f.tightened_from, None);
        assert_eq!(mode(&p), 0o600);
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn an_existing_open_file_is_tightened() {
        let p = temp("loose");
        std::fs::write(&p, "old\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let f = open_private_append(&p).unwrap();
        assert_eq!(f.tightened_from, Some(0o644));
        assert_eq!(mode(&p), 0o600);
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn a_symlink_is_refused_and_its_target_untouched() {
        let target = temp("target");
        let link = temp("link");
        std::fs::write(&target, "secret\n").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(open_private_append(&link).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "secret\n");
        assert_eq!(mode(&target), 0o644);
        let _ = std::fs::remove_file(&link);
        let _ = std::fs::remove_file(&target);
    }

    #[test]
    fn a_directory_is_refused() {
        assert!(open_private_append(&std::env::temp_dir()).is_err());
    }
}
