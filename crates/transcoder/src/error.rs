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
    /// A part of the pipeline stopped because another part did; the other
    /// part's own error is the one to report.
    #[error("stopped because another part of the pipeline stopped")]
    Stopped,
}

impl JobError {
    /// A source of 0 bytes, found before download (its size in storage) or after (the spooled file).
    pub fn empty_upload() -> Self {
        JobError::permanent("the upload is empty (0 bytes)")
    }

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
            JobError::Retryable(_) | JobError::ShuttingDown | JobError::Stopped => Some(true),
            JobError::LeaseLost => None,
        }
    }
}

/// Classifies an I/O error: a full disk or any I/O trouble is ours, retryable.
impl From<std::io::Error> for JobError {
    fn from(e: std::io::Error) -> Self {
        if e.raw_os_error() == Some(libc::ENOSPC) {
            JobError::Retryable(format!("the transcoder's work disk (WORK_DIR) is full ({e}); the job will be retried"))
        } else {
            JobError::Retryable(format!("I/O error: {e}"))
        }
    }
}

/// Runs `f`, turning a panic into a retryable failure of this job only (the
/// process goes on). Used around the whole pipeline of every job.
pub fn panics_fail_the_job<T>(f: impl FnOnce() -> Result<T, JobError>) -> Result<T, JobError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "unknown".into());
            Err(JobError::retryable(format!("internal error: the transcoder crashed on this job ({msg})")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_retryable_failure_and_the_caller_goes_on() {
        let r: Result<(), JobError> = panics_fail_the_job(|| panic!("index out of bounds in rung 720p"));
        assert_eq!(
            r,
            Err(JobError::retryable(
                "internal error: the transcoder crashed on this job (index out of bounds in rung 720p)"
            ))
        );
        let formatted: Result<(), JobError> = panics_fail_the_job(|| panic!("{} frames", 3));
        assert!(matches!(formatted, Err(JobError::Retryable(m)) if m.ends_with("(3 frames)")));
        assert_eq!(panics_fail_the_job(|| Ok(7)), Ok(7));
        assert_eq!(panics_fail_the_job::<()>(|| Err(JobError::permanent("bad"))), Err(JobError::permanent("bad")));
    }

    #[test]
    fn full_disks_are_retryable() {
        let e: JobError = std::io::Error::from_raw_os_error(libc::ENOSPC).into();
        assert!(matches!(e, JobError::Retryable(m) if m.contains("work disk (WORK_DIR) is full")));
        assert_eq!(JobError::permanent("x").retryable_flag(), Some(false));
        assert_eq!(JobError::LeaseLost.retryable_flag(), None);
        assert_eq!(JobError::ShuttingDown.retryable_flag(), Some(true));
    }
}
