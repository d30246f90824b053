//! How a job can fail, and whether trying again could help. The video
//! service retries `Retryable` failures (bounded) and ends the job on
//! `Permanent` ones; `LeaseLost` means someone else owns the job now, so the
//! transcoder stops quietly.

/// Why an attempt did not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// The input itself is the problem (not a video, corrupt, unsupported):
    /// the message is for the person who uploaded it.
    #[error("{0}")]
    Permanent(String),
    /// Our side or a dependency failed (network, storage, disk, a bug).
    #[error("{0}")]
    Retryable(String),
    /// The lease is gone (expired and re-leased, or the job ended): stop.
    #[error("the lease on this job was lost")]
    LeaseLost,
    /// This transcoder is shutting down and handed the job back.
    #[error("the transcoder shut down before finishing; the job will be retried")]
    ShuttingDown,
}

impl JobError {
    pub fn permanent(msg: impl Into<String>) -> Self {
        JobError::Permanent(msg.into())
    }

    pub fn retryable(msg: impl Into<String>) -> Self {
        JobError::Retryable(msg.into())
    }

    /// How the video service should treat it (`None`: do not report at all).
    pub fn retryable_flag(&self) -> Option<bool> {
        match self {
            JobError::Permanent(_) => Some(false),
            JobError::Retryable(_) | JobError::ShuttingDown => Some(true),
            JobError::LeaseLost => None,
        }
    }
}

/// Classifies an I/O error: a full disk or any I/O trouble is ours, retryable.
impl From<std::io::Error> for JobError {
    fn from(e: std::io::Error) -> Self {
        if e.raw_os_error() == Some(libc::ENOSPC) {
            JobError::Retryable(format!("the transcoder's disk is full: {e}"))
        } else {
            JobError::Retryable(format!("I/O error: {e}"))
        }
    }
}
