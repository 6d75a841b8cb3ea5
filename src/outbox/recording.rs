//! Recording files for `attachRecord`: checks (exists, `.mp3`/`.wav`, not empty) before the
//! Bitrix client streams them (`bitrix::record`). No HTTP here.

use std::io;
use std::path::{Path, PathBuf};

/// Why a recording cannot be attached.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordingError {
    /// The file does not exist (recording failed or was removed): finish goes out without it.
    #[error("recording {path}: file is missing")]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file is empty; Bitrix24 would refuse it ("File content is empty").
    #[error("recording {path}: file is empty")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// Bitrix24 accepts only `.mp3` and `.wav`.
    #[error("recording {path}: only .mp3 and .wav can be attached")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
    },
    /// Reading the file failed.
    #[error("recording {path}: cannot read")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl RecordingError {
    /// Whether the attach should be dropped with a warning (`Missing`, `Empty`) rather than
    /// retried or dead-lettered.
    pub(crate) fn is_absent(&self) -> bool {
        matches!(self, Self::Missing { .. } | Self::Empty { .. })
    }
}

/// A checked recording file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordingFile {
    /// The file.
    pub path: PathBuf,
    /// `FILENAME` (the file's own name, ending in `.mp3` or `.wav`).
    pub filename: String,
    /// Size in bytes.
    pub len: u64,
}

impl RecordingFile {
    /// Checks the file without reading it.
    pub(crate) async fn inspect(path: &Path) -> Result<Self, RecordingError> {
        let owned = || path.to_path_buf();
        let filename = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let lower = filename.to_ascii_lowercase();
        if !(lower.ends_with(".mp3") || lower.ends_with(".wav")) {
            return Err(RecordingError::UnsupportedFormat { path: owned() });
        }
        let meta = match tokio::fs::metadata(path).await {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(RecordingError::Missing { path: owned() });
            }
            Err(source) => {
                return Err(RecordingError::Io {
                    path: owned(),
                    source,
                });
            }
        };
        if meta.len() == 0 {
            return Err(RecordingError::Empty { path: owned() });
        }
        Ok(Self {
            path: owned(),
            filename,
            len: meta.len(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_is_inspected_with_its_own_name_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("call.WAV");
        std::fs::write(&path, vec![7u8; 200_000]).unwrap();
        let rec = RecordingFile::inspect(&path).await.unwrap();
        assert_eq!(rec.filename, "call.WAV");
        assert_eq!(rec.len, 200_000);
    }

    #[tokio::test]
    async fn missing_empty_and_foreign_files_are_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = RecordingFile::inspect(&dir.path().join("gone.mp3"))
            .await
            .unwrap_err();
        assert!(missing.is_absent() && missing.to_string().contains("gone.mp3"));
        std::fs::write(dir.path().join("empty.mp3"), b"").unwrap();
        assert!(matches!(
            RecordingFile::inspect(&dir.path().join("empty.mp3")).await,
            Err(RecordingError::Empty { .. })
        ));
        std::fs::write(dir.path().join("x.ogg"), b"x").unwrap();
        let err = RecordingFile::inspect(&dir.path().join("x.ogg"))
            .await
            .unwrap_err();
        assert!(matches!(err, RecordingError::UnsupportedFormat { .. }) && !err.is_absent());
    }
}
