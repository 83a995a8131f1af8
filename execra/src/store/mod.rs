//! History store (SQLite). Placeholder until the history issue lands.

use std::sync::Arc;

use crate::runtime::persist::Recorder;

/// Errors from the history store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O error.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

pub(crate) fn open_recorder(
    config: &crate::runtime::RuntimeConfig,
) -> Result<Option<Arc<dyn Recorder>>, crate::runtime::Error> {
    if config.history.is_some() {
        return Err(std::io::Error::other("history is not supported by this build yet").into());
    }
    Ok(None)
}
