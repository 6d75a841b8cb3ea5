//! Recording files for `attachRecord`: checks (exists, `.mp3`/`.wav`, not empty), the choice
//! between inline `FILE_CONTENT` and the two-step `uploadUrl`, and a streamed file body.
//! No HTTP here; the Bitrix client sends what this prepares.

use std::io;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::io::AsyncReadExt as _;

/// Files up to this size go inline as base64 `FILE_CONTENT` (mode A); larger ones are streamed
/// to the `uploadUrl` (mode C). Inline inflates by a third and the REST body size limit is
/// undocumented, so this stays small.
pub const DEFAULT_INLINE_MAX: u64 = 1024 * 1024;

const CHUNK: usize = 64 * 1024;

/// Why a recording cannot be attached.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
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
    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Missing { .. } | Self::Empty { .. })
    }
}

/// How a recording travels to Bitrix24.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadMode {
    /// Mode A: base64 in `FILE_CONTENT`.
    Inline,
    /// Mode C: `attachRecord` without content, then a multipart POST to `uploadUrl`.
    TwoStep,
}

/// A checked recording file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// The file.
    pub path: PathBuf,
    /// `FILENAME` (the file's own name, ending in `.mp3` or `.wav`).
    pub filename: String,
    /// Size in bytes.
    pub len: u64,
}

impl Recording {
    /// Checks the file without reading it.
    pub async fn inspect(path: &Path) -> Result<Self, RecordingError> {
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

    /// Inline when the file is at most `inline_max` bytes, two-step otherwise.
    pub fn mode(&self, inline_max: u64) -> UploadMode {
        if self.len <= inline_max {
            UploadMode::Inline
        } else {
            UploadMode::TwoStep
        }
    }

    /// The whole file as plain base64 (no data-URI prefix), for `FILE_CONTENT`.
    pub async fn read_base64(&self) -> Result<String, RecordingError> {
        let bytes = tokio::fs::read(&self.path)
            .await
            .map_err(|source| RecordingError::Io {
                path: self.path.clone(),
                source,
            })?;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    /// The file as a stream of chunks (64 KiB), for a streamed multipart upload body.
    pub async fn stream(
        &self,
    ) -> Result<impl Stream<Item = io::Result<Bytes>> + Send + 'static, RecordingError> {
        let file =
            tokio::fs::File::open(&self.path)
                .await
                .map_err(|source| RecordingError::Io {
                    path: self.path.clone(),
                    source,
                })?;
        Ok(futures_util::stream::try_unfold(
            file,
            |mut file| async move {
                let mut buf = BytesMut::with_capacity(CHUNK);
                let n = file.read_buf(&mut buf).await?;
                Ok((n > 0).then(|| (buf.freeze(), file)))
            },
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt as _;

    #[tokio::test]
    async fn small_files_go_inline_and_large_ones_in_two_steps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("call.WAV");
        std::fs::write(&path, vec![7u8; 200_000]).unwrap();
        let rec = Recording::inspect(&path).await.unwrap();
        assert_eq!(rec.filename, "call.WAV");
        assert_eq!(rec.mode(DEFAULT_INLINE_MAX), UploadMode::Inline);
        assert_eq!(rec.mode(1000), UploadMode::TwoStep);
        let streamed: Vec<Bytes> = rec.stream().await.unwrap().try_collect().await.unwrap();
        assert!(streamed.len() > 1, "streamed in chunks");
        assert_eq!(streamed.iter().map(Bytes::len).sum::<usize>(), 200_000);
        let b64 = rec.read_base64().await.unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap()
                .len(),
            200_000
        );
    }

    #[tokio::test]
    async fn missing_empty_and_foreign_files_are_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Recording::inspect(&dir.path().join("gone.mp3"))
            .await
            .unwrap_err();
        assert!(missing.is_absent() && missing.to_string().contains("gone.mp3"));
        std::fs::write(dir.path().join("empty.mp3"), b"").unwrap();
        assert!(matches!(
            Recording::inspect(&dir.path().join("empty.mp3")).await,
            Err(RecordingError::Empty { .. })
        ));
        std::fs::write(dir.path().join("x.ogg"), b"x").unwrap();
        let err = Recording::inspect(&dir.path().join("x.ogg"))
            .await
            .unwrap_err();
        assert!(matches!(err, RecordingError::UnsupportedFormat { .. }) && !err.is_absent());
    }
}
