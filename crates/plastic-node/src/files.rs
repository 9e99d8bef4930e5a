//! The node's files: everything lives under one root directory.
//!
//! Paths arrive already validated as [`RelPath`] (no `..`, no absolute paths, no hidden
//! components), but a validated path can still lead out of the root through a symbolic link
//! planted inside it (`data -> /etc`). So no operation here resolves a path as a whole: each
//! walks from a descriptor of the root, one component at a time, opening every directory with
//! `O_NOFOLLOW`, and acts on the last component relative to its parent's descriptor (`renameat`,
//! `unlinkat`, which do not follow a final link either). A link is refused where it is met, at
//! open, so nothing can be swapped in between a check and its use. Links are never followed,
//! even ones that stay inside the root; `list` skips them.
//!
//! Uploads are written to a hidden temporary file and renamed over the target only after the
//! whole file's SHA-256 matched, so a failed or abandoned transfer leaves the old file as it was.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use plastic_proto::command::ChunkReply;
use plastic_proto::{FileChunk, RelPath};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Where partial uploads live, under the root. Hidden, so no request path can name it.
const PARTIAL_DIR: &str = ".partial";

#[derive(Debug, Error)]
pub enum FileError {
    #[error(
        "chunk at offset {got} of `{path}` is out of order; the node expects offset {expected}"
    )]
    OutOfOrder {
        path: String,
        got: u64,
        expected: u64,
    },
    #[error("sha256 of `{path}` does not match: expected {expected}, received data hashes to {actual}; the old file is unchanged")]
    HashMismatch {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("no such file: `{0}`")]
    NotFound(String),
    #[error("`{0}` is a directory")]
    IsDirectory(String),
    #[error(
        "`{path}`: `{link}` is a symbolic link; the node's file operations do not follow links"
    )]
    Link { path: String, link: String },
    #[error("`{path}`: `{what}` is not a directory")]
    NotADirectory { path: String, what: String },
    #[error("offset {offset} is past the end of `{path}` ({size} bytes)")]
    PastEnd {
        path: String,
        offset: u64,
        size: u64,
    },
    #[error("`{0}` already exists")]
    Exists(String),
    #[error("directory `{0}` is not empty")]
    NotEmpty(String),
    #[error("file system: {0}")]
    Io(#[from] std::io::Error),
}

impl FileError {
    pub fn kind(&self) -> &'static str {
        match self {
            FileError::OutOfOrder { .. } | FileError::PastEnd { .. } => "OutOfOrder",
            FileError::Exists(_) => "FileExistsError",
            FileError::NotEmpty(_) => "OSError",
            FileError::HashMismatch { .. } => "HashMismatch",
            FileError::NotFound(_) => "FileNotFoundError",
            FileError::IsDirectory(_) => "IsADirectoryError",
            FileError::NotADirectory { .. } => "NotADirectoryError",
            FileError::Link { .. } | FileError::Io(_) => "OSError",
        }
    }
}

impl From<Errno> for FileError {
    fn from(e: Errno) -> Self {
        FileError::Io(e.into())
    }
}

struct Transfer {
    received: u64,
    total: u64,
    /// The whole file's hash as the sender announced it: a resume must be of the same file.
    sha256: Option<String>,
    hasher: Sha256,
    /// The temporary file's name in [`PARTIAL_DIR`], and the file, open since the first chunk.
    temp: String,
    file: fs::File,
    touched: std::time::Instant,
}

/// Unfinished uploads kept at once; starting one more abandons the one idle longest, so a
/// sender that vanishes mid-transfer cannot fill the disk with temporary files.
const MAX_TRANSFERS: usize = 8;

pub struct FileStore {
    root: PathBuf,
    /// The root, opened once: every operation starts from here, not from a path.
    dir: OwnedFd,
    transfers: Mutex<HashMap<RelPath, Transfer>>,
}

/// Opens the directory `name` in `parent` without following a link.
fn open_subdir(parent: BorrowedFd<'_>, name: &str) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// What sits at `name` in `dir`, the link itself if it is one (`None`: nothing).
fn entry_type(dir: BorrowedFd<'_>, name: &str) -> Result<Option<(FileType, u64)>, Errno> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some((
            FileType::from_raw_mode(st.st_mode),
            st.st_size as u64,
        ))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

impl FileStore {
    pub fn open(root: &Path) -> std::io::Result<Self> {
        fs::create_dir_all(root)?;
        let root = root.canonicalize()?;
        // Partial uploads from before a restart cannot be resumed from memory; start clean.
        // (`remove_dir_all` removes a link in its place, not what it points to.)
        let _ = fs::remove_dir_all(root.join(PARTIAL_DIR));
        let dir = rustix::fs::open(
            &root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(FileStore {
            root,
            dir,
            transfers: Mutex::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `path` would be if no link were involved: for messages and for Python's own use,
    /// never for the store's own file operations.
    pub fn path_of(&self, path: &RelPath) -> PathBuf {
        self.root.join(path.as_str())
    }

    /// The directory holding `path`'s last component, opened component by component from the
    /// root without following links (creating missing directories when `create`), and that
    /// last component's name.
    fn parent_of<'p>(
        &self,
        path: &'p RelPath,
        create: bool,
    ) -> Result<(OwnedFd, &'p str), FileError> {
        let text = path.as_str();
        let (dirs, name) = match text.rsplit_once('/') {
            Some((dirs, name)) => (Some(dirs), name),
            None => (None, text),
        };
        let mut current = rustix::io::dup(&self.dir)?;
        let Some(dirs) = dirs else {
            return Ok((current, name));
        };
        let mut walked = 0;
        for component in dirs.split('/') {
            walked += component.len() + 1;
            let so_far = &text[..walked - 1];
            let opened = match open_subdir(current.as_fd(), component) {
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(&current, component, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    open_subdir(current.as_fd(), component)
                }
                other => other,
            };
            current = match opened {
                Ok(fd) => fd,
                Err(Errno::NOENT) => return Err(FileError::NotFound(text.into())),
                // O_NOFOLLOW on a link: ELOOP. O_DIRECTORY on a file: ENOTDIR.
                Err(Errno::LOOP) => {
                    return Err(FileError::Link {
                        path: text.into(),
                        link: so_far.into(),
                    })
                }
                Err(Errno::NOTDIR) => {
                    return Err(match entry_type(current.as_fd(), component)? {
                        Some((FileType::Symlink, _)) => FileError::Link {
                            path: text.into(),
                            link: so_far.into(),
                        },
                        _ => FileError::NotADirectory {
                            path: text.into(),
                            what: so_far.into(),
                        },
                    })
                }
                Err(e) => return Err(e.into()),
            };
        }
        Ok((current, name))
    }

    /// The directory of partial uploads, created if missing; a link there is refused.
    fn partial_dir(&self) -> Result<OwnedFd, FileError> {
        let open = || open_subdir(self.dir.as_fd(), PARTIAL_DIR);
        let opened = match open() {
            Err(Errno::NOENT) => {
                match rustix::fs::mkdirat(&self.dir, PARTIAL_DIR, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                open()
            }
            other => other,
        };
        opened.map_err(|e| match e {
            Errno::LOOP | Errno::NOTDIR => FileError::Link {
                path: PARTIAL_DIR.into(),
                link: PARTIAL_DIR.into(),
            },
            e => e.into(),
        })
    }

    /// Deletes an abandoned transfer's temporary file.
    fn discard(&self, transfer: Transfer) {
        drop(transfer.file);
        if let Ok(dir) = self.partial_dir() {
            let _ = rustix::fs::unlinkat(&dir, transfer.temp.as_str(), AtFlags::empty());
        }
    }

    /// Applies one chunk. Returns the reply's result: how much of the file has arrived.
    pub fn write_chunk(&self, chunk: &FileChunk) -> Result<ChunkReply, FileError> {
        let mut transfers = self.transfers.lock().unwrap();
        if chunk.resume {
            if let Some(t) = transfers.get_mut(&chunk.filename) {
                if t.total == chunk.total && t.sha256 == chunk.sha256 {
                    t.touched = std::time::Instant::now();
                    return Ok(ChunkReply {
                        filename: chunk.filename.as_str().into(),
                        received: t.received,
                        total: t.total,
                        complete: false,
                        sha256: None,
                    });
                }
            }
            // Nothing to resume: start the transfer, as a first chunk with no bytes would.
        }
        if chunk.offset == 0 {
            // A new transfer of this file replaces any unfinished one.
            if let Some(old) = transfers.remove(&chunk.filename) {
                self.discard(old);
            }
            if transfers.len() >= MAX_TRANSFERS {
                let idlest = transfers
                    .iter()
                    .min_by_key(|(_, t)| t.touched)
                    .map(|(p, _)| p.clone());
                if let Some(old) = idlest.and_then(|p| transfers.remove(&p)) {
                    self.discard(old);
                }
            }
            let dir = self.partial_dir()?;
            // Named by a hash of the path: `a/b` and `a__b` must not share a temporary file.
            let temp = plastic_proto::file::sha256_hex(chunk.filename.as_str().as_bytes())[..32]
                .to_owned();
            let fd = rustix::fs::openat(
                &dir,
                temp.as_str(),
                OFlags::WRONLY
                    | OFlags::CREATE
                    | OFlags::TRUNC
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            )?;
            transfers.insert(
                chunk.filename.clone(),
                Transfer {
                    received: 0,
                    total: chunk.total,
                    sha256: chunk.sha256.clone(),
                    hasher: Sha256::new(),
                    temp,
                    file: fs::File::from(fd),
                    touched: std::time::Instant::now(),
                },
            );
        }
        let Some(transfer) = transfers.get_mut(&chunk.filename) else {
            return Err(FileError::OutOfOrder {
                path: chunk.filename.as_str().into(),
                got: chunk.offset,
                expected: 0,
            });
        };
        if chunk.offset != transfer.received || chunk.total != transfer.total {
            return Err(FileError::OutOfOrder {
                path: chunk.filename.as_str().into(),
                got: chunk.offset,
                expected: transfer.received,
            });
        }
        transfer.file.write_all(&chunk.content)?;
        transfer.hasher.update(&chunk.content);
        transfer.touched = std::time::Instant::now();
        transfer.received += chunk.content.len() as u64;
        let received = transfer.received;
        if !chunk.is_last() {
            return Ok(ChunkReply {
                filename: chunk.filename.as_str().into(),
                received,
                total: chunk.total,
                complete: false,
                sha256: None,
            });
        }
        let transfer = transfers.remove(&chunk.filename).expect("present above");
        let actual = plastic_proto::file::hex(&transfer.hasher.clone().finalize());
        if let Some(expected) = &chunk.sha256 {
            if *expected != actual {
                self.discard(transfer);
                return Err(FileError::HashMismatch {
                    path: chunk.filename.as_str().into(),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        // Still under the lock: a new transfer of this file would reuse its temporary name.
        let placed = self.place(&chunk.filename, &transfer);
        if placed.is_err() {
            self.discard(transfer);
        }
        placed?;
        Ok(ChunkReply {
            filename: chunk.filename.as_str().into(),
            received,
            total: chunk.total,
            complete: true,
            sha256: Some(actual),
        })
    }

    /// Renames a finished transfer's temporary file over its target.
    fn place(&self, path: &RelPath, transfer: &Transfer) -> Result<(), FileError> {
        let (parent, name) = self.parent_of(path, true)?;
        if let Some((FileType::Directory, _)) = entry_type(parent.as_fd(), name)? {
            return Err(FileError::IsDirectory(path.as_str().into()));
        }
        transfer.file.sync_all()?;
        let partial = self.partial_dir()?;
        // A link at the target itself is replaced, not followed: rename acts on the name.
        rustix::fs::renameat(&partial, transfer.temp.as_str(), &parent, name)?;
        Ok(())
    }

    /// Writes a whole small file atomically (deployed scripts).
    pub fn write_all(&self, path: &RelPath, data: &[u8]) -> Result<(), FileError> {
        let chunk = FileChunk {
            filename: path.clone(),
            content: data.to_vec(),
            offset: 0,
            total: data.len() as u64,
            sha256: None,
            resume: false,
        };
        self.write_chunk(&chunk).map(|_| ())
    }

    /// Every regular file under the root with its size, sorted by path. Symbolic links are not
    /// listed and not followed (a linked directory's contents are not the node's files), nor
    /// are hidden entries and `__pycache__`.
    pub fn list(&self) -> Result<Vec<(String, u64)>, FileError> {
        let mut out = Vec::new();
        let mut stack = vec![(rustix::io::dup(&self.dir)?, String::new())];
        while let Some((fd, prefix)) = stack.pop() {
            let mut dir = rustix::fs::Dir::read_from(&fd)?;
            let dir_fd = fd;
            while let Some(entry) = dir.read() {
                let entry = entry?;
                let Ok(name) = entry.file_name().to_str() else {
                    continue;
                };
                if name.starts_with('.') || name == "__pycache__" {
                    continue;
                }
                let rel = format!("{prefix}{name}");
                match entry_type(dir_fd.as_fd(), name)? {
                    Some((FileType::Directory, _)) => match open_subdir(dir_fd.as_fd(), name) {
                        Ok(sub) => stack.push((sub, format!("{rel}/"))),
                        // Replaced by a link or removed since it was read: not ours to list.
                        Err(Errno::LOOP | Errno::NOTDIR | Errno::NOENT) => {}
                        Err(e) => return Err(e.into()),
                    },
                    Some((FileType::RegularFile, size)) => out.push((rel, size)),
                    _ => {}
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Up to `length` bytes of a file from `offset`, the file's size, and its whole SHA-256
    /// when the bytes end the file (docs/protocol.md, "Downloads"). The file is opened without
    /// following a link, like every path here.
    pub fn read_chunk(
        &self,
        path: &RelPath,
        offset: u64,
        length: u64,
    ) -> Result<(Vec<u8>, u64, Option<String>), FileError> {
        use std::io::{Read, Seek, SeekFrom};
        let (parent, name) = self.parent_of(path, false)?;
        let fd = match rustix::fs::openat(
            &parent,
            name,
            // NONBLOCK: a FIFO a script made must not hang the read (refused below).
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Err(FileError::NotFound(path.as_str().into())),
            Err(Errno::LOOP) => {
                return Err(FileError::Link {
                    path: path.as_str().into(),
                    link: path.as_str().into(),
                })
            }
            Err(e) => return Err(e.into()),
        };
        let mut file = fs::File::from(fd);
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(FileError::IsDirectory(path.as_str().into()));
        }
        if !meta.is_file() {
            return Err(FileError::Io(std::io::Error::other(format!(
                "`{}` is not a regular file",
                path.as_str()
            ))));
        }
        let size = meta.len();
        if offset > size {
            return Err(FileError::PastEnd {
                path: path.as_str().into(),
                offset,
                size,
            });
        }
        file.seek(SeekFrom::Start(offset))?;
        let mut data = Vec::with_capacity(length.min(size - offset) as usize);
        // No more than the size read above: a file that grows meanwhile is read as it was.
        (&mut file)
            .take(length.min(size - offset))
            .read_to_end(&mut data)?;
        // A file that shrank meanwhile ends where the bytes did.
        let size = if (data.len() as u64) < length.min(size - offset) {
            offset + data.len() as u64
        } else {
            size
        };
        let sha256 = if offset + data.len() as u64 >= size {
            file.seek(SeekFrom::Start(0))?;
            let mut hasher = Sha256::new();
            std::io::copy(&mut file, &mut hasher)?;
            Some(
                hasher
                    .finalize()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
            )
        } else {
            None
        };
        Ok((data, size, sha256))
    }

    /// Creates one directory; its parent must exist.
    pub fn make_dir(&self, path: &RelPath) -> Result<(), FileError> {
        let (parent, name) = self.parent_of(path, false)?;
        match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o755)) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) => Err(FileError::Exists(path.as_str().into())),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes an empty directory (a link or a file is refused, not removed).
    pub fn remove_dir(&self, path: &RelPath) -> Result<(), FileError> {
        let (parent, name) = self.parent_of(path, false)?;
        match entry_type(parent.as_fd(), name)? {
            None => Err(FileError::NotFound(path.as_str().into())),
            Some((FileType::Directory, _)) => {
                match rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR) {
                    Ok(()) => Ok(()),
                    Err(Errno::NOTEMPTY | Errno::EXIST) => {
                        Err(FileError::NotEmpty(path.as_str().into()))
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Some(_) => Err(FileError::NotADirectory {
                path: path.as_str().into(),
                what: path.as_str().into(),
            }),
        }
    }

    pub fn remove(&self, path: &RelPath) -> Result<(), FileError> {
        let (parent, name) = self.parent_of(path, false)?;
        match entry_type(parent.as_fd(), name)? {
            None => Err(FileError::NotFound(path.as_str().into())),
            Some((FileType::Directory, _)) => Err(FileError::IsDirectory(path.as_str().into())),
            // A link is removed itself; what it points to is not touched.
            Some(_) => Ok(rustix::fs::unlinkat(&parent, name, AtFlags::empty())?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plastic_proto::file::chunks;

    /// A directory removed when the test ends.
    struct Root(tempfile::TempDir);

    impl std::ops::Deref for Root {
        type Target = Path;
        fn deref(&self) -> &Path {
            self.0.path()
        }
    }

    impl AsRef<Path> for Root {
        fn as_ref(&self) -> &Path {
            self.0.path()
        }
    }

    fn temp_root(tag: &str) -> Root {
        Root(
            tempfile::Builder::new()
                .prefix(&format!("plastic-files-{tag}-"))
                .tempdir()
                .unwrap(),
        )
    }

    #[test]
    fn chunked_upload_lands_atomically_and_bad_hash_keeps_old_file() {
        let root = temp_root("up");
        let store = FileStore::open(&root).unwrap();
        let name = RelPath::parse("data/blob.bin").unwrap();
        store.write_all(&name, b"old").unwrap();
        let data: Vec<u8> = (0..70_000u32).map(|i| (i * 7) as u8).collect();
        let msgs = chunks(&name, &data, 16 * 1024);
        // A tampered final chunk: the hash check must keep the old file.
        let mut bad = msgs.clone();
        bad.last_mut().unwrap().sha256 = Some("0".repeat(64));
        for (i, m) in bad.iter().enumerate() {
            let r = store.write_chunk(m);
            if i + 1 == bad.len() {
                assert!(matches!(r, Err(FileError::HashMismatch { .. })));
            } else {
                assert_eq!(
                    fs::read(store.path_of(&name)).unwrap(),
                    b"old",
                    "old file intact mid-transfer"
                );
            }
        }
        assert_eq!(fs::read(store.path_of(&name)).unwrap(), b"old");
        for m in &msgs {
            store.write_chunk(m).unwrap();
        }
        assert_eq!(fs::read(store.path_of(&name)).unwrap(), data);
        assert_eq!(
            store.list().unwrap(),
            vec![("data/blob.bin".to_string(), 70_000)]
        );
    }

    #[test]
    fn out_of_order_chunks_are_refused_with_the_expected_offset() {
        let root = temp_root("order");
        let store = FileStore::open(&root).unwrap();
        let name = RelPath::parse("f.bin").unwrap();
        let msgs = chunks(&name, &[1u8; 10_000], 4096);
        let err = store.write_chunk(&msgs[1]).unwrap_err();
        assert!(err.to_string().contains("expects offset 0"), "{err}");
        store.write_chunk(&msgs[0]).unwrap();
        let err = store.write_chunk(&msgs[2]).unwrap_err();
        assert!(err.to_string().contains("expects offset 4096"), "{err}");
    }

    #[test]
    fn abandoned_uploads_are_bounded() {
        let root = temp_root("abandon");
        let store = FileStore::open(&root).unwrap();
        for i in 0..MAX_TRANSFERS + 3 {
            let name = RelPath::parse(&format!("f{i}.bin")).unwrap();
            let first = chunks(&name, &[7u8; 100], 10).remove(0);
            store.write_chunk(&first).unwrap();
        }
        assert_eq!(store.transfers.lock().unwrap().len(), MAX_TRANSFERS);
        assert_eq!(
            fs::read_dir(root.join(PARTIAL_DIR)).unwrap().count(),
            MAX_TRANSFERS
        );
    }

    #[test]
    fn remove_reports_missing_files() {
        let root = temp_root("rm");
        let store = FileStore::open(&root).unwrap();
        let name = RelPath::parse("x.txt").unwrap();
        assert!(matches!(store.remove(&name), Err(FileError::NotFound(_))));
        store.write_all(&name, b"1").unwrap();
        store.remove(&name).unwrap();
        assert!(store.list().unwrap().is_empty());
    }

    /// A directory outside the root, with one file in it whose content must survive.
    fn outside(tag: &str) -> (Root, PathBuf) {
        let dir = temp_root(&format!("{tag}-outside"));
        let file = dir.join("precious.txt");
        fs::write(&file, b"keep me").unwrap();
        (dir, file)
    }

    #[test]
    fn uploads_never_follow_a_link_out_of_the_root() {
        let root = temp_root("link-up");
        let (out_dir, out_file) = outside("link-up");
        let store = FileStore::open(&root).unwrap();
        std::os::unix::fs::symlink(&out_file, root.join("evil.txt")).unwrap();
        std::os::unix::fs::symlink(&out_dir, root.join("linked")).unwrap();

        // Through a linked directory: refused where the link is met.
        let err = store
            .write_all(&RelPath::parse("linked/precious.txt").unwrap(), b"pwned")
            .unwrap_err();
        assert!(
            matches!(&err, FileError::Link { link, .. } if link == "linked"),
            "{err}"
        );
        assert_eq!(err.kind(), "OSError");
        let err = store
            .write_all(&RelPath::parse("linked/new/deeper.txt").unwrap(), b"x")
            .unwrap_err();
        assert!(matches!(err, FileError::Link { .. }), "{err}");
        assert!(!out_dir.join("new").exists());
        // Onto a link: the link is replaced by a file in the root; its target is untouched.
        store
            .write_all(&RelPath::parse("evil.txt").unwrap(), b"mine")
            .unwrap();
        assert_eq!(fs::read(&out_file).unwrap(), b"keep me");
        let meta = fs::symlink_metadata(root.join("evil.txt")).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(fs::read(root.join("evil.txt")).unwrap(), b"mine");
        // The temporary directory itself planted as a link.
        fs::remove_dir_all(root.join(PARTIAL_DIR)).unwrap();
        std::os::unix::fs::symlink(&out_dir, root.join(PARTIAL_DIR)).unwrap();
        let err = store
            .write_all(&RelPath::parse("x.txt").unwrap(), b"x")
            .unwrap_err();
        assert!(matches!(err, FileError::Link { .. }), "{err}");
        assert_eq!(
            fs::read_dir(&out_dir).unwrap().count(),
            1,
            "nothing was created outside"
        );
        assert_eq!(fs::read(&out_file).unwrap(), b"keep me");
    }

    #[test]
    fn remove_and_list_never_follow_a_link_out_of_the_root() {
        let root = temp_root("link-rm");
        let (out_dir, out_file) = outside("link-rm");
        let store = FileStore::open(&root).unwrap();
        std::os::unix::fs::symlink(&out_dir, root.join("linked")).unwrap();
        std::os::unix::fs::symlink(&out_file, root.join("evil.txt")).unwrap();
        store
            .write_all(&RelPath::parse("real/a.txt").unwrap(), b"abc")
            .unwrap();
        // Links are neither listed nor walked into.
        assert_eq!(store.list().unwrap(), vec![("real/a.txt".to_string(), 3)]);
        let err = store
            .remove(&RelPath::parse("linked/precious.txt").unwrap())
            .unwrap_err();
        assert!(matches!(err, FileError::Link { .. }), "{err}");
        assert_eq!(fs::read(&out_file).unwrap(), b"keep me");
        // Removing the link removes the link, not its target.
        store.remove(&RelPath::parse("evil.txt").unwrap()).unwrap();
        assert!(fs::symlink_metadata(root.join("evil.txt")).is_err());
        assert_eq!(fs::read(&out_file).unwrap(), b"keep me");
        // A file where a directory is expected.
        let err = store
            .remove(&RelPath::parse("real/a.txt/b").unwrap())
            .unwrap_err();
        assert!(matches!(err, FileError::NotADirectory { .. }), "{err}");
        let err = store
            .remove(&RelPath::parse("nowhere/b").unwrap())
            .unwrap_err();
        assert!(matches!(err, FileError::NotFound(_)), "{err}");
    }

    #[test]
    fn a_directory_is_not_replaced_by_an_upload() {
        let root = temp_root("dir");
        let store = FileStore::open(&root).unwrap();
        store
            .write_all(&RelPath::parse("d/f.txt").unwrap(), b"1")
            .unwrap();
        let err = store
            .write_all(&RelPath::parse("d").unwrap(), b"2")
            .unwrap_err();
        assert!(matches!(err, FileError::IsDirectory(_)), "{err}");
        assert!(matches!(
            store.remove(&RelPath::parse("d").unwrap()),
            Err(FileError::IsDirectory(_))
        ));
        // The failed upload left no temporary file behind.
        assert_eq!(
            fs::read_dir(store.root().join(PARTIAL_DIR))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn reads_come_in_chunks_with_the_hash_on_the_last_and_never_follow_a_link() {
        let root = temp_root("read");
        let (out_dir, out_file) = outside("read");
        let store = FileStore::open(&root).unwrap();
        let name = RelPath::parse("d/f.bin").unwrap();
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 3) as u8).collect();
        store.write_all(&name, &data).unwrap();
        let (first, size, sha) = store.read_chunk(&name, 0, 600).unwrap();
        assert_eq!((first.as_slice(), size, sha), (&data[..600], 1000, None));
        let (rest, _, sha) = store.read_chunk(&name, 600, 600).unwrap();
        assert_eq!(rest, &data[600..]);
        assert_eq!(
            sha.as_deref(),
            Some(plastic_proto::file::sha256_hex(&data).as_str())
        );
        let (none, _, sha) = store.read_chunk(&name, 1000, 10).unwrap();
        assert!(
            none.is_empty() && sha.is_some(),
            "offset = size ends the file"
        );
        assert!(matches!(
            store.read_chunk(&name, 1001, 10),
            Err(FileError::PastEnd { size: 1000, .. })
        ));
        let missing = RelPath::parse("nope").unwrap();
        assert!(matches!(
            store.read_chunk(&missing, 0, 10),
            Err(FileError::NotFound(_))
        ));
        // A FIFO (a script can make one) is refused at once, not read forever.
        let made = std::process::Command::new("mkfifo")
            .arg(root.join("pipe"))
            .status()
            .unwrap();
        assert!(made.success());
        let pipe = RelPath::parse("pipe").unwrap();
        assert!(matches!(
            store.read_chunk(&pipe, 0, 10),
            Err(FileError::Io(_))
        ));
        let dir = RelPath::parse("d").unwrap();
        assert!(matches!(
            store.read_chunk(&dir, 0, 10),
            Err(FileError::IsDirectory(_))
        ));
        // A link to a file outside, and a linked directory: refused, nothing read.
        std::os::unix::fs::symlink(&out_file, root.join("evil.txt")).unwrap();
        std::os::unix::fs::symlink(&*out_dir, root.join("linked")).unwrap();
        for path in ["evil.txt", "linked/precious.txt"] {
            let err = store
                .read_chunk(&RelPath::parse(path).unwrap(), 0, 10)
                .unwrap_err();
            assert!(matches!(err, FileError::Link { .. }), "{path}: {err:?}");
        }
        // Directories: made once, removed when empty, never through a link.
        let logs = RelPath::parse("logs").unwrap();
        store.make_dir(&logs).unwrap();
        assert!(matches!(store.make_dir(&logs), Err(FileError::Exists(_))));
        assert!(matches!(
            store.remove_dir(&dir),
            Err(FileError::NotEmpty(_))
        ));
        assert!(matches!(
            store.remove_dir(&name),
            Err(FileError::NotADirectory { .. })
        ));
        let linked = RelPath::parse("linked").unwrap();
        assert!(matches!(
            store.remove_dir(&linked),
            Err(FileError::NotADirectory { .. })
        ));
        assert!(out_dir.join("precious.txt").exists());
        store.remove_dir(&logs).unwrap();
        assert!(!root.join("logs").exists());
        let deep = RelPath::parse("linked/new").unwrap();
        assert!(matches!(store.make_dir(&deep), Err(FileError::Link { .. })));
    }
}
