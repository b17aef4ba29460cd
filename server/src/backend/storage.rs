//! redb's `StorageBackend` over the seam's `DiskFile`, so the backend's reads, writes and
//! fsyncs go through the same disk (real or simulated) as the WAL.

use crate::seam::DiskFile;
use std::io;
use std::sync::Arc;

/// A database file seen through the seam.
#[derive(Debug, Clone)]
pub(crate) struct DiskStorage {
    pub(crate) file: Arc<dyn DiskFile>,
}

impl redb::StorageBackend for DiskStorage {
    fn len(&self) -> Result<u64, io::Error> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.file.read_at(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        // redb calls this synchronously from inside a commit; the sim disk charges no latency
        // here (the backend commit is off the raft loop's fsync path, as in etcd).
        self.file.sync_data_now()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.file.write_at(offset, data)
    }
}
