//! Recording uploads for `attachRecord`, streamed from disk: mode A base64-encodes the file
//! into the JSON body chunk by chunk, mode C sends it as a multipart part. Neither holds the
//! file in memory.

use std::io;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures_util::stream::{self, StreamExt as _};
use reqwest::RequestBuilder;
use tokio::io::AsyncReadExt as _;

use super::error::BitrixError;
use super::wire::{AttachInlineBody, Method};
use crate::ids::BitrixCallId;

/// Bytes read per chunk; a multiple of 3 so chunks base64-encode without padding.
const CHUNK: usize = 3 * 16 * 1024;

/// The file name Bitrix24 accepts for a recording: the path's own name, ending in `.mp3` or
/// `.wav`.
pub(super) fn recording_name(method: Method, path: &Path) -> Result<String, BitrixError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".mp3") || lower.ends_with(".wav") {
        Ok(name)
    } else {
        Err(recording_error(
            method,
            path,
            "only .mp3 and .wav recordings are accepted".into(),
        ))
    }
}

fn recording_error(method: Method, path: &Path, reason: String) -> BitrixError {
    BitrixError::Recording {
        method: method.name(),
        path: path.to_owned(),
        reason,
    }
}

/// Size of a recording on disk.
pub(super) async fn recording_len(method: Method, path: &Path) -> Result<u64, BitrixError> {
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|e| recording_error(method, path, e.to_string()))?;
    if meta.len() == 0 {
        return Err(recording_error(method, path, "file is empty".into()));
    }
    Ok(meta.len())
}

/// `attachRecord` mode A: `FILE_CONTENT` inline.
pub(crate) struct Inline {
    pub(crate) call_id: BitrixCallId,
    pub(crate) path: PathBuf,
    pub(crate) filename: String,
}

impl Inline {
    /// Attaches the streamed JSON body (with an exact `Content-Length`) to `req`.
    pub(crate) async fn request(
        &self,
        req: RequestBuilder,
        token: Option<&str>,
    ) -> Result<RequestBuilder, BitrixError> {
        let method = Method::AttachRecord;
        let file = tokio::fs::File::open(&self.path)
            .await
            .map_err(|e| recording_error(method, &self.path, e.to_string()))?;
        let len = file
            .metadata()
            .await
            .map_err(|e| recording_error(method, &self.path, e.to_string()))?
            .len();
        let prefix = AttachInlineBody::prefix(&self.call_id, &self.filename, token);
        let total =
            prefix.len() as u64 + 4 * len.div_ceil(3) + AttachInlineBody::SUFFIX.len() as u64;
        let body = stream::once(async move { Ok::<_, io::Error>(Bytes::from(prefix)) })
            .chain(base64_chunks(file))
            .chain(stream::once(async {
                Ok(Bytes::from_static(AttachInlineBody::SUFFIX.as_bytes()))
            }));
        Ok(req
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::CONTENT_LENGTH, total)
            .body(reqwest::Body::wrap_stream(body)))
    }
}

/// The file as base64 text, one chunk at a time.
fn base64_chunks(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = io::Result<Bytes>> + Send + 'static {
    stream::try_unfold(file, |mut file| async move {
        let mut buf = vec![0u8; CHUNK];
        let mut filled = 0;
        while filled < CHUNK {
            let n = file.read(&mut buf[filled..]).await?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            return Ok(None);
        }
        Ok(Some((Bytes::from(STANDARD.encode(&buf[..filled])), file)))
    })
}

/// Mode C, step 2: the multipart body with the file streamed from disk.
pub(crate) async fn upload_request(
    req: RequestBuilder,
    method: Method,
    field: &str,
    path: &Path,
    filename: &str,
) -> Result<RequestBuilder, BitrixError> {
    let part = reqwest::multipart::Part::file(path)
        .await
        .map_err(|e| recording_error(method, path, e.to_string()))?
        .file_name(filename.to_owned());
    Ok(req.multipart(reqwest::multipart::Form::new().part(field.to_owned(), part)))
}
