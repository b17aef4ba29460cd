//! Writing a batch to redb, inline or on the offload thread.
//!
//! Owns: [`write_batch`] (one redb write transaction: the batch's puts and deletes plus the
//! consistent index and term in `meta`, committed durably) and [`InFlight`], a batch being
//! written on another thread: it stays readable (between the current batch and the database)
//! until the driver learns it is durable.
//!
//! Must never: commit part of a batch without its consistent index, or keep a reference to the
//! database after reporting the outcome (defragmentation needs the only one).

use super::{meta, BackendError, Bucket, Buffer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};

/// The batches of every bucket.
pub(super) type Batch = BTreeMap<Bucket, Buffer>;

/// Writes `batch` and the consistent index `applied` in one durable redb transaction.
pub(super) fn write_batch(
    db: &redb::Database,
    path: &Path,
    batch: &Batch,
    applied: (u64, u64),
    quick_repair: bool,
) -> Result<(), BackendError> {
    let mut wtx = db
        .begin_write()
        .map_err(|e| BackendError::from_redb(path, "begin write", e))?;
    for (bucket, entries) in batch {
        let mut table = wtx
            .open_table(bucket.table())
            .map_err(|e| BackendError::from_redb(path, "open table", e))?;
        for (k, v) in entries {
            let res = match v {
                Some(v) => table.insert(k.as_slice(), v.as_slice()).map(|_| ()),
                None => table.remove(k.as_slice()).map(|_| ()),
            };
            res.map_err(|e| BackendError::from_redb(path, "write", e))?;
        }
    }
    {
        let mut table = wtx
            .open_table(Bucket::Meta.table())
            .map_err(|e| BackendError::from_redb(path, "open table", e))?;
        let (index, term) = applied;
        table
            .insert(meta::CONSISTENT_INDEX, index.to_be_bytes().as_slice())
            .map_err(|e| BackendError::from_redb(path, "write", e))?;
        table
            .insert(meta::TERM, term.to_be_bytes().as_slice())
            .map_err(|e| BackendError::from_redb(path, "write", e))?;
    }
    wtx.set_quick_repair(quick_repair);
    wtx.commit()
        .map_err(|e| BackendError::from_redb(path, "commit", e))
}

/// A batch being written on the offload thread.
pub(super) struct InFlight {
    /// What it writes (still served to readers until it is known durable).
    pub(super) batch: Arc<Batch>,
    /// The consistent index it carries.
    pub(super) applied: (u64, u64),
    /// The outcome, sent once the job has dropped its database handle.
    pub(super) done: mpsc::Receiver<Result<(), BackendError>>,
    /// The database file, for errors.
    path: PathBuf,
}

impl InFlight {
    /// Hands `batch` to `offload`, which writes it with [`write_batch`].
    pub(super) fn start(
        offload: &dyn crate::seam::Offload,
        db: Arc<redb::Database>,
        path: &Path,
        batch: Batch,
        applied: (u64, u64),
        quick_repair: bool,
    ) -> InFlight {
        let batch = Arc::new(batch);
        let (tx, done) = mpsc::channel();
        let (theirs, path, job_path) = (batch.clone(), path.to_path_buf(), path.to_path_buf());
        offload.run(Box::new(move || {
            let r = write_batch(&db, &job_path, &theirs, applied, quick_repair);
            drop(db);
            let _ = tx.send(r);
        }));
        InFlight {
            batch,
            applied,
            done,
            path,
        }
    }

    /// The outcome if the write has finished (`wait`: block until it has).
    pub(super) fn outcome(&self, wait: bool) -> Option<Result<(), BackendError>> {
        let lost = || {
            Err(BackendError::io(
                &self.path,
                "commit",
                std::io::Error::other("the background commit ended without an outcome"),
            ))
        };
        if wait {
            return Some(self.done.recv().unwrap_or_else(|_| lost()));
        }
        match self.done.try_recv() {
            Ok(r) => Some(r),
            Err(mpsc::TryRecvError::Empty) => None,
            Err(mpsc::TryRecvError::Disconnected) => Some(lost()),
        }
    }
}
