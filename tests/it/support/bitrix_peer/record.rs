//! `telephony.externalCall.attachRecord` (reference §6.10): mode A inline base64, mode B
//! download from `RECORD_URL`, mode C two-step upload to a URL served by the peer itself.
//! Every received file is stored byte for byte so tests can compare it to the original.

use base64::Engine;
use serde_json::json;

use super::auth::random_token;
use super::envelope::{ApiError, MethodOk};
use super::methods::Ctx;
use super::multipart;
use super::params::Params;
use super::state::{PendingUpload, Shared, StoredRecord};

/// attachRecord in all three modes.
pub async fn attach(shared: &Shared, ctx: &Ctx, p: &Params) -> Result<MethodOk, ApiError> {
    let style = shared.lock().switches.error_style;
    let call_id = p.str("CALL_ID").unwrap_or_default();
    let record_url = p.non_empty("RECORD_URL");
    let filename = p.str("FILENAME");
    if record_url.is_none() && filename.is_none() {
        return Err(ApiError::core(
            style,
            "Required parameters are not set. Request should contain or URL or FILENAME parameter",
        ));
    }
    let finished = shared
        .lock()
        .call(&call_id)
        .is_some_and(|c| c.finished.is_some());
    if !finished {
        return Err(ApiError::core(
            style,
            "Call is not found in the statistic table. Call is not finished yet.",
        ));
    }
    if let Some(url) = record_url {
        let name = filename
            .filter(|f| !f.trim().is_empty())
            .unwrap_or_else(|| file_name_of(&url));
        check_extension(style, &name)?;
        let bytes = download(shared, style, &url).await?;
        return store(shared, style, call_id, name, bytes, "url");
    }
    let name = filename.unwrap_or_default();
    if name.trim().is_empty() {
        return Err(ApiError::core(style, "File name is empty"));
    }
    match p.raw("FILE_CONTENT") {
        Some(content) => {
            check_extension(style, &name)?;
            let text = super::params::scalar_string(content).unwrap_or_default();
            if text.is_empty() {
                return Err(ApiError::core(style, "File content is empty."));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| {
                    ApiError::core(
                        style,
                        "File content is not properly encoded. Base64 encoding is expected.",
                    )
                })?;
            store(shared, style, call_id, name, bytes, "inline")
        }
        None => Ok(MethodOk::of(upload_offer(shared, ctx, call_id))),
    }
}

fn upload_offer(shared: &Shared, ctx: &Ctx, call_id: String) -> serde_json::Value {
    let token = random_token();
    shared.update(|st| st.uploads.insert(token.clone(), PendingUpload { call_id }));
    let auth = match &ctx.auth {
        super::auth::AuthKind::OAuth { token } => token.clone(),
        _ => String::new(),
    };
    let url = format!(
        "{}/rest/upload.json?auth={auth}&token={token}",
        shared.base_url
    );
    json!({"uploadUrl": url, "fieldName": "file"})
}

fn file_name_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.path_segments()
                .and_then(|mut s| s.next_back().map(str::to_owned))
        })
        .unwrap_or_default()
}

fn check_extension(style: super::options::ErrorStyle, name: &str) -> Result<(), ApiError> {
    let lower = name.trim().to_ascii_lowercase();
    if lower.is_empty() {
        return Err(ApiError::core(style, "File name is empty"));
    }
    if lower.ends_with(".mp3") || lower.ends_with(".wav") {
        Ok(())
    } else {
        Err(ApiError::core(
            style,
            "Wrong file extension. Only wav and mp3 are allowed",
        ))
    }
}

async fn download(
    shared: &Shared,
    style: super::options::ErrorStyle,
    url: &str,
) -> Result<Vec<u8>, ApiError> {
    let response = shared
        .http
        .get(url)
        .send()
        .await
        .map_err(|e| ApiError::core(style, format!("NETWORK: {e}")))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(ApiError::core(
            style,
            format!("Server returns HTTP error code {status}"),
        ));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| ApiError::core(style, format!("NETWORK: {e}")))?;
    Ok(bytes.to_vec())
}

/// Whether `bytes` look like a WAV (RIFF/WAVE) or MP3 (ID3 tag or MPEG frame sync) file.
pub fn is_audio(bytes: &[u8]) -> bool {
    let wav = bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WAVE";
    let id3 = bytes.starts_with(b"ID3");
    let frame = bytes.len() >= 2 && bytes[0] == 0xFF && bytes[1] & 0xE0 == 0xE0;
    wav || id3 || frame
}

fn store(
    shared: &Shared,
    style: super::options::ErrorStyle,
    call_id: String,
    filename: String,
    bytes: Vec<u8>,
    mode: &'static str,
) -> Result<MethodOk, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::core(style, "File content is empty."));
    }
    // The real check is undocumented ("a valid audio record"); this text is the peer's own.
    if !is_audio(&bytes) {
        return Err(ApiError::core(style, "File is not a valid audio record"));
    }
    let file_id = shared.update(|st| {
        let file_id = st.next_id();
        st.records.push(StoredRecord {
            call_id,
            file_id,
            filename,
            bytes,
            mode,
        });
        file_id
    });
    Ok(MethodOk::of(json!({"FILE_ID": file_id})))
}

/// The upload URL of mode C: multipart with the file in part `file`; one use per token.
pub fn upload(
    shared: &Shared,
    token: &str,
    content_type: &str,
    body: &[u8],
) -> Result<MethodOk, ApiError> {
    let style = shared.lock().switches.error_style;
    let pending = shared.lock().uploads.get(token).cloned();
    let Some(pending) = pending else {
        return Err(ApiError::invalid_token());
    };
    let parts = multipart::boundary(content_type)
        .and_then(|b| multipart::parse(body, &b))
        .ok_or_else(|| ApiError::argument("Multipart body expected"))?;
    let part = parts
        .into_iter()
        .find(|p| p.name == "file")
        .ok_or_else(|| ApiError::core(style, "File content is empty."))?;
    let name = part.filename.unwrap_or_default();
    check_extension(style, &name)?;
    let ok = store(shared, style, pending.call_id, name, part.data, "upload")?;
    shared.update(|st| st.uploads.remove(token));
    Ok(ok)
}
