//! The tracer's errors.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("ptrace is not permitted here ({0})")]
    PtraceDenied(String),
    #[error("cannot execute {path}: {source}")]
    Exec { path: String, source: io::Error },
    #[error("cannot create the shared memory: {0}")]
    Shm(io::Error),
    #[error("cannot start the program: {0}")]
    Spawn(io::Error),
    #[error("cannot write the trace: {0}")]
    Record(io::Error),
    #[error(transparent)]
    TraceFile(#[from] crate::trace::TraceFileError),
    #[error("ptrace failed: {0}")]
    Ptrace(#[from] nix::Error),
}
