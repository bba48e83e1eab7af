//! The content-addressed blob store on disk.
//!
//! Layout under the root: `sha256/<first two hex digits>/<all 64 hex digits>` for
//! blobs and `tmp/` for writes in progress (same file system, so the final rename is
//! atomic).
//!
//! Nothing here knows who uses a blob; [`BlobStore::sweep`] deletes the blobs a caller
//! says are unused, under the rules in `blob/sweep.rs`.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

mod sweep;

pub use sweep::{DEFAULT_GRACE, SweepCandidates, Swept};

/// The SHA-256 of a blob's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest(Sha256::digest(bytes).into())
    }

    /// The 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = StoreError;

    /// Accepts `sha256:<64 hex>` or the bare 64 hex digits.
    fn from_str(s: &str) -> Result<Self, StoreError> {
        let hex_part = s.strip_prefix("sha256:").unwrap_or(s);
        let mut out = [0u8; 32];
        match hex::decode_to_slice(hex_part, &mut out) {
            Ok(()) => Ok(Digest(out)),
            Err(_) => Err(StoreError::BadDigest(s.to_string())),
        }
    }
}

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// No blob with this digest is stored.
    #[error("blob {0} is not in the store")]
    NotFound(Digest),
    /// A digest string is malformed.
    #[error("`{0}` is not a SHA-256 digest (expected 64 hex digits)")]
    BadDigest(String),
}

impl StoreError {
    fn io(path: &Path, source: io::Error) -> Self {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether the error comes from a full disk (or quota), where retrying later or
    /// elsewhere may help but the caller should not treat the data as corrupt.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Io { source, .. } => is_enospc(source),
            _ => false,
        }
    }
}

/// Whether an I/O error means "no space left" (ENOSPC) or "quota exceeded" (EDQUOT).
pub(crate) fn is_enospc(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || matches!(e.raw_os_error(), Some(28) | Some(122))
}

/// Blobs stored under their SHA-256 in a directory.
///
/// Cheap to clone; every method is synchronous (call it from `spawn_blocking` in async
/// code). Several processes may share one root: writes go through unique temporary
/// files and a rename, and storing a blob that exists already only refreshes its
/// modification time (which keeps [`BlobStore::sweep`] off it for the grace period).
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl BlobStore {
    /// A store rooted at `root` (created on the first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        BlobStore { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with this digest lives (whether or not it exists).
    pub fn path_of(&self, digest: &Digest) -> PathBuf {
        let hex = digest.to_hex();
        self.root.join("sha256").join(&hex[..2]).join(hex)
    }

    /// Whether the blob is stored.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path_of(digest).is_file()
    }

    /// Opens a stored blob for reading.
    pub fn open(&self, digest: &Digest) -> Result<File, StoreError> {
        let path = self.path_of(digest);
        File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::NotFound(*digest)
            } else {
                StoreError::io(&path, e)
            }
        })
    }

    /// Stores the content of the file at `path`.
    pub fn put_file(&self, path: &Path) -> Result<Digest, StoreError> {
        let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
        self.put_reader(file)
    }

    /// Stores `bytes`.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        self.put_reader(bytes)
    }

    /// Stores everything `reader` yields, hashing while writing to a temporary file,
    /// then renames it into place (or drops it when the blob exists already). On any
    /// error, including a full disk, the temporary file is removed and nothing under
    /// the blob's name changes.
    pub fn put_reader(&self, mut reader: impl Read) -> Result<Digest, StoreError> {
        let mut w = self.writer()?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StoreError::io(&w.tmp, e)),
            };
            w.write_all(&buf[..n])
                .map_err(|e| StoreError::io(&w.tmp, e))?;
        }
        w.commit()
    }
}

/// A blob being written: bytes go to a temporary file and are hashed on the way;
/// [`BlobWriter::commit`] moves the file into place. Dropping it without committing
/// removes the temporary file.
pub struct BlobWriter {
    store: BlobStore,
    tmp: PathBuf,
    guard: TempGuard,
    file: io::BufWriter<File>,
    hasher: Sha256,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobWriter")
            .field("tmp", &self.tmp)
            .finish_non_exhaustive()
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl BlobWriter {
    /// The digest of the bytes written so far: what [`BlobWriter::commit`] would store
    /// them under. Lets a caller check an expected digest without hashing again.
    pub fn digest(&self) -> Digest {
        Digest(self.hasher.clone().finalize().into())
    }

    /// Makes the blob durable and visible under its digest.
    pub fn commit(self) -> Result<Digest, StoreError> {
        let BlobWriter {
            store,
            tmp,
            guard,
            file,
            hasher,
        } = self;
        let file = file
            .into_inner()
            .map_err(|e| StoreError::io(&tmp, e.into_error()))?;
        file.sync_all().map_err(|e| StoreError::io(&tmp, e))?;
        drop(file);
        let digest = Digest(hasher.finalize().into());
        store.install(&tmp, guard, digest)
    }
}

impl BlobStore {
    /// Starts writing a blob whose digest is known only at the end.
    pub fn writer(&self) -> Result<BlobWriter, StoreError> {
        let (tmp, guard, file) = self.temp_file()?;
        Ok(BlobWriter {
            store: self.clone(),
            tmp,
            guard,
            file: io::BufWriter::with_capacity(256 * 1024, file),
            hasher: Sha256::new(),
        })
    }

    fn temp_file(&self) -> Result<(PathBuf, TempGuard, File), StoreError> {
        let tmp_dir = self.root.join("tmp");
        fs::create_dir_all(&tmp_dir).map_err(|e| StoreError::io(&tmp_dir, e))?;
        let tmp = tmp_dir.join(format!(
            "{}-{}.part",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let guard = TempGuard(Some(tmp.clone()));
        let file = File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
        Ok((tmp, guard, file))
    }

    fn install(&self, tmp: &Path, guard: TempGuard, digest: Digest) -> Result<Digest, StoreError> {
        let dest = self.path_of(&digest);
        // Stored already: refresh its modification time instead, so a sweep counts it
        // as just written — the caller is about to record it. If that fails (a sweep
        // just removed it), this copy goes into place as for a new blob.
        if dest.is_file() && refresh(&dest).is_ok() {
            return Ok(digest);
        }
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        }
        fs::rename(tmp, &dest).map_err(|e| StoreError::io(&dest, e))?;
        guard.disarm();
        Ok(digest)
    }
}

/// Sets the file's modification time to now.
fn refresh(path: &Path) -> io::Result<()> {
    File::open(path)?.set_modified(SystemTime::now())
}

/// Removes a temporary file unless disarmed.
struct TempGuard(Option<PathBuf>);

impl TempGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_reads_back_and_dedupes() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path().join("blobs"));
        let a = store.put_bytes(b"hello").unwrap();
        assert_eq!(a, Digest::of(b"hello"));
        assert!(store.contains(&a));
        let mut text = String::new();
        store.open(&a).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello");
        let b = store.put_reader(&b"hello"[..]).unwrap();
        assert_eq!(a, b);
        let tmp_left = fs::read_dir(dir.path().join("blobs/tmp")).unwrap().count();
        assert_eq!(tmp_left, 0, "no temporary file is left behind");
    }

    #[test]
    fn put_file_hashes_the_file_content() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, vec![7u8; 1_000_000]).unwrap();
        let store = BlobStore::new(dir.path().join("blobs"));
        let d = store.put_file(&f).unwrap();
        assert_eq!(d, Digest::of(&vec![7u8; 1_000_000]));
        assert_eq!(fs::metadata(store.path_of(&d)).unwrap().len(), 1_000_000);
    }

    #[test]
    fn a_writer_knows_its_digest_before_committing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let mut w = store.writer().unwrap();
        w.write_all(b"hel").unwrap();
        w.write_all(b"lo").unwrap();
        let before = w.digest();
        assert_eq!(before, Digest::of(b"hello"));
        assert_eq!(
            w.commit().unwrap(),
            before,
            "commit stores under the same digest"
        );
    }

    #[test]
    fn missing_blob_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let d = Digest::of(b"absent");
        assert!(!store.contains(&d));
        assert!(matches!(store.open(&d), Err(StoreError::NotFound(x)) if x == d));
    }

    #[test]
    fn digest_round_trips_through_text() {
        let d = Digest::of(b"x");
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert_eq!(d.to_hex().parse::<Digest>().unwrap(), d);
        assert!("sha256:zz".parse::<Digest>().is_err());
    }

    #[test]
    fn failed_reader_leaves_nothing_behind() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("boom"))
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        assert!(store.put_reader(Failing).is_err());
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }
}
