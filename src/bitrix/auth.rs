//! Credentials: an incoming-webhook URL (a secret as a whole) or an OAuth application whose
//! access token is refreshed on `expired_token`. Refreshes are single-flight per portal and the
//! rotated refresh token is written durably (temp file + fsync + rename) before it is used; the
//! token file is always mode 0600.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};
use url::Url;

use super::error::BitrixError;
use super::wire::{Method, TokenAnswer, refresh_query};

/// A credential whose `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// An incoming-webhook base URL (`https://{portal}/rest/{user}/{secret}/`). The whole URL is a
/// secret; `Debug` shows the host only.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(Url);

impl WebhookUrl {
    /// Parses the URL; a trailing `/` is added when missing so method names join under it.
    pub fn parse(raw: &str) -> Result<Self, BitrixError> {
        let mut url = Url::parse(raw.trim()).map_err(|_| BitrixError::Url {
            what: "webhook URL",
        })?;
        if url.cannot_be_a_base() || url.host_str().is_none() {
            return Err(BitrixError::Url {
                what: "webhook URL",
            });
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(Self(url))
    }

    /// The URL; never log it.
    pub fn expose(&self) -> &Url {
        &self.0
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookUrl({}/..)", self.0.host_str().unwrap_or("?"))
    }
}

/// OAuth application credentials. The tokens live in `token_file` (written at installation).
///
/// `portal` and `server_endpoint` are the truth: every REST request goes to `portal` and every
/// refresh to `server_endpoint`. A token file or token answer naming other endpoints is refused
/// ([`BitrixError::EndpointMismatch`]), so nobody who can write the file or answer a refresh
/// can move the tokens and the client secret elsewhere.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// The portal's REST base (`https://{portal}/rest/`).
    pub portal: Url,
    /// The authorisation server's REST base (`https://oauth.bitrix.info/rest/`).
    pub server_endpoint: Url,
    /// `client_id` of the application.
    pub client_id: String,
    /// `client_secret`; sent only to the authorisation server.
    pub client_secret: SecretString,
    /// The durable token file (JSON, see [`TokenFile`]).
    pub token_file: PathBuf,
}

/// How fsb24 authenticates to the portal.
#[derive(Debug, Clone)]
pub enum AuthSettings {
    /// Incoming webhook: the credential is in the URL path.
    Webhook(WebhookUrl),
    /// OAuth application: `auth=<access token>` in every request body.
    OAuth(OAuthSettings),
}

/// The OAuth token file: what `ONAPPINSTALL` (or a refresh) delivered.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenFile {
    /// 1-hour access token.
    pub access_token: SecretString,
    /// Single-use refresh token (rotated by every refresh).
    pub refresh_token: SecretString,
    /// Expiry of the access token (unix seconds), if known.
    #[serde(default)]
    pub expires: Option<u64>,
    /// The portal's REST base (`https://{portal}/rest/`).
    pub client_endpoint: String,
    /// The authorisation server's REST base (`https://oauth.bitrix.info/rest/`).
    pub server_endpoint: String,
    /// The portal's stable id.
    #[serde(default)]
    pub member_id: Option<String>,
}

impl fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenFile")
            .field("expires", &self.expires)
            .field("client_endpoint", &self.client_endpoint)
            .field("server_endpoint", &self.server_endpoint)
            .field("member_id", &self.member_id)
            .finish_non_exhaustive()
    }
}

impl TokenFile {
    /// Reads a token file.
    pub async fn load(path: &Path) -> Result<Self, BitrixError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| store_error(path, "read", e))?;
        serde_json::from_slice(&bytes).map_err(|e| BitrixError::TokenFile {
            path: path.to_owned(),
            source: Arc::new(e),
        })
    }

    /// Writes the file durably: a temp file beside it, fsync, rename over, fsync the directory.
    /// Returns only once the new content survives a crash.
    pub async fn save(&self, path: &Path) -> Result<(), BitrixError> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| BitrixError::TokenFile {
            path: path.to_owned(),
            source: Arc::new(e),
        })?;
        let owned = path.to_owned();
        tokio::task::spawn_blocking(move || write_durably(&owned, &bytes))
            .await
            .map_err(|e| store_error(path, "write", std::io::Error::other(e)))?
            .map_err(|(action, e)| store_error(path, action, e))
    }

    /// The file after a refresh: new tokens, the same endpoints. An answer that names other
    /// endpoints is refused: the configured ones stay the only place tokens are sent.
    fn refreshed(
        &self,
        answer: TokenAnswer,
        access: String,
        refresh: String,
    ) -> Result<Self, BitrixError> {
        let pairs = [
            (
                "client_endpoint of the token answer",
                &answer.client_endpoint,
                &self.client_endpoint,
            ),
            (
                "server_endpoint of the token answer",
                &answer.server_endpoint,
                &self.server_endpoint,
            ),
        ];
        for (what, said, ours) in pairs {
            if let Some(said) = said {
                check_endpoint(what, said, ours)?;
            }
        }
        Ok(Self {
            access_token: SecretString(access),
            refresh_token: SecretString(refresh),
            expires: answer.expires,
            client_endpoint: self.client_endpoint.clone(),
            server_endpoint: self.server_endpoint.clone(),
            member_id: answer.member_id.or_else(|| self.member_id.clone()),
        })
    }
}

/// A REST base as written (`https://host/rest` or `.../rest/`), normalised for comparison.
fn rest_base(text: &str) -> Option<Url> {
    let mut text = text.trim().to_owned();
    if !text.ends_with('/') {
        text.push('/');
    }
    Url::parse(&text).ok()
}

/// Refuses `found` unless it is the same REST base as `expected`.
fn check_endpoint(what: &'static str, found: &str, expected: &str) -> Result<(), BitrixError> {
    match (rest_base(found), rest_base(expected)) {
        (Some(a), Some(b)) if a == b => Ok(()),
        _ => Err(BitrixError::EndpointMismatch {
            what,
            found: found.chars().take(200).collect(),
            expected: expected.to_owned(),
        }),
    }
}

/// `https://`, or plain `http://` to this machine only (a local test portal or a TLS proxy on
/// the same host). Everything that carries a credential is checked with this.
pub fn secure_or_loopback(url: &Url) -> bool {
    match (url.scheme(), url.host()) {
        ("https", Some(_)) => true,
        ("http", Some(url::Host::Ipv4(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Ipv6(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Domain(d))) => d.eq_ignore_ascii_case("localhost"),
        _ => false,
    }
}

fn store_error(path: &Path, action: &'static str, e: std::io::Error) -> BitrixError {
    BitrixError::TokenStore {
        path: path.to_owned(),
        action,
        source: Arc::new(e),
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new content, and so
/// that the live tokens are never readable by anyone but the owner:
///
/// - the temp file gets a random name in the same directory and is created with `create_new`
///   (`O_EXCL`: it never follows a planted symlink nor reuses someone else's file);
/// - it is created with mode 0600 (the umask can only remove bits), so the renamed file is 0600
///   whatever the old file's mode was.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), (&'static str, std::io::Error)> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| ("create temp file", e))?;
    let tmp_path = tmp.clone();
    let written = (move || {
        file.write_all(bytes).map_err(|e| ("write temp file", e))?;
        file.sync_all().map_err(|e| ("fsync temp file", e))?;
        drop(file);
        std::fs::rename(&tmp_path, path).map_err(|e| ("rename", e))
    })();
    if written.is_err() {
        // Best effort: the temp file holds live tokens; the original error is what matters.
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ("fsync directory", e))
}

/// The token URL of an authorisation server: `server_endpoint` with its trailing `/rest/`
/// replaced by `/oauth/token/` (regions use different servers, so it is never hard-coded).
pub(crate) fn token_url(server_endpoint: &str) -> Result<Url, BitrixError> {
    let bad = || BitrixError::Url {
        what: "server_endpoint",
    };
    let trimmed = server_endpoint.trim().trim_end_matches('/');
    let root = trimmed.strip_suffix("/rest").ok_or_else(bad)?;
    Url::parse(&format!("{root}/oauth/token/")).map_err(|_| bad())
}

struct Current {
    access: SecretString,
    generation: u64,
}

struct RefreshState {
    /// `None` until the token file exists (the application is not installed yet).
    tokens: Option<TokenFile>,
    /// Tokens received but not yet durably saved; never used until they are.
    unsaved: Option<TokenFile>,
}

/// Live OAuth state of one portal.
pub(crate) struct OAuth {
    server_endpoint: Url,
    client_id: String,
    client_secret: SecretString,
    path: PathBuf,
    current: RwLock<Current>,
    refresh: tokio::sync::Mutex<RefreshState>,
    refreshes: AtomicU64,
    /// The configured portal, which the token file must name.
    portal: Url,
    /// Set once tokens are loaded: the fast path of [`OAuth::ensure_tokens`].
    loaded: std::sync::atomic::AtomicBool,
}

impl OAuth {
    /// Loads the token file and checks it names the configured portal and token server.
    pub(crate) async fn load(settings: &OAuthSettings) -> Result<Self, BitrixError> {
        for (what, url) in [
            ("portal", &settings.portal),
            ("server_endpoint", &settings.server_endpoint),
        ] {
            if !secure_or_loopback(url) {
                return Err(BitrixError::Insecure { what });
            }
        }
        token_url(settings.server_endpoint.as_str())?;
        // No file yet: the application is not installed. Calls go on (their writes wait in the
        // outbox as during an outage) and the file is read again before each request.
        let tokens = match TokenFile::load(&settings.token_file).await {
            Ok(tokens) => Some(tokens),
            Err(BitrixError::TokenStore { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                warn!(
                    path = %settings.token_file.display(),
                    "no OAuth token file yet: install the local application (README, \"Bitrix24 \
                     application\"); calls go on and their Bitrix24 writes wait in the outbox"
                );
                None
            }
            Err(e) => return Err(e),
        };
        let oauth = Self {
            server_endpoint: settings.server_endpoint.clone(),
            client_id: settings.client_id.clone(),
            client_secret: settings.client_secret.clone(),
            path: settings.token_file.clone(),
            current: RwLock::new(Current {
                access: SecretString::new(String::new()),
                generation: 0,
            }),
            refresh: tokio::sync::Mutex::new(RefreshState {
                tokens: None,
                unsaved: None,
            }),
            refreshes: AtomicU64::new(0),
            portal: settings.portal.clone(),
            loaded: std::sync::atomic::AtomicBool::new(false),
        };
        if let Some(tokens) = tokens {
            oauth.adopt(&mut *oauth.refresh.lock().await, tokens)?;
        }
        Ok(oauth)
    }

    /// Checks that `tokens` name the configured portal and token server, then uses them.
    fn adopt(&self, state: &mut RefreshState, tokens: TokenFile) -> Result<(), BitrixError> {
        check_endpoint(
            "client_endpoint of the token file",
            &tokens.client_endpoint,
            self.portal.as_str(),
        )?;
        check_endpoint(
            "server_endpoint of the token file",
            &tokens.server_endpoint,
            self.server_endpoint.as_str(),
        )?;
        {
            let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
            cur.access = tokens.access_token.clone();
        }
        state.tokens = Some(tokens);
        self.loaded.store(true, Ordering::Release);
        Ok(())
    }

    /// Before a request: tokens are loaded, or the token file is read now. Until the file
    /// exists every request fails with a retryable `TokenStore` error, so the outbox keeps
    /// the writes (as in an outage) and delivers them once the application is installed.
    pub(crate) async fn ensure_tokens(&self) -> Result<(), BitrixError> {
        if self.loaded.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut state = self.refresh.lock().await;
        if state.tokens.is_some() {
            return Ok(());
        }
        let tokens = TokenFile::load(&self.path).await?;
        self.adopt(&mut state, tokens)?;
        info!(path = %self.path.display(), "OAuth token file found; delivering to Bitrix24");
        Ok(())
    }

    /// Takes the tokens of a new installation: checked against the configured endpoints,
    /// saved durably first, then used (the old refresh token died with the re-install).
    pub(crate) async fn install(&self, tokens: TokenFile) -> Result<(), BitrixError> {
        check_endpoint(
            "client_endpoint of the installation",
            &tokens.client_endpoint,
            self.portal.as_str(),
        )?;
        check_endpoint(
            "server_endpoint of the installation",
            &tokens.server_endpoint,
            self.server_endpoint.as_str(),
        )?;
        let mut state = self.refresh.lock().await;
        tokens.save(&self.path).await?;
        state.unsaved = None;
        self.adopt(&mut state, tokens)?;
        let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
        cur.generation += 1;
        Ok(())
    }

    /// The `member_id` of the installation in use, if any.
    pub(crate) async fn member_id(&self) -> Option<String> {
        let state = self.refresh.lock().await;
        match &state.tokens {
            Some(tokens) => tokens.member_id.clone(),
            // Not loaded yet: the file may exist all the same.
            None => TokenFile::load(&self.path).await.ok()?.member_id,
        }
    }

    /// The access token to use now and its generation (pass it back to [`OAuth::refresh`]).
    pub(crate) fn access(&self) -> (SecretString, u64) {
        let cur = self.current.read().unwrap_or_else(|p| p.into_inner());
        (cur.access.clone(), cur.generation)
    }

    /// How many refreshes this process performed.
    pub(crate) fn refresh_count(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// Replaces the access token of generation `seen`. Single-flight: callers that saw the
    /// same generation wait for one refresh and share its result. Cancel-safe: a cancelled
    /// caller leaves received tokens in `unsaved` for the next one.
    pub(crate) async fn refresh(
        &self,
        http: &reqwest::Client,
        seen: u64,
        method: Method,
    ) -> Result<(), BitrixError> {
        let mut state = self.refresh.lock().await;
        if self.access().1 != seen {
            return Ok(());
        }
        let fresh = match (state.unsaved.take(), &state.tokens) {
            (Some(t), _) => t,
            (None, Some(tokens)) => self.fetch(http, tokens, method).await?,
            // Nothing to refresh from yet: the token file may have appeared meanwhile.
            (None, None) => {
                let tokens = TokenFile::load(&self.path).await?;
                return self.adopt(&mut state, tokens);
            }
        };
        state.unsaved = Some(fresh.clone());
        if let Err(err) = fresh.save(&self.path).await {
            error!(
                error = &err as &dyn std::error::Error,
                "new refresh token not saved; holding it back"
            );
            return Err(err);
        }
        state.unsaved = None;
        state.tokens = Some(fresh.clone());
        {
            let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
            cur.access = fresh.access_token;
            cur.generation += 1;
        }
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        info!(method = method.name(), "access token refreshed");
        Ok(())
    }

    async fn fetch(
        &self,
        http: &reqwest::Client,
        tokens: &TokenFile,
        method: Method,
    ) -> Result<TokenFile, BitrixError> {
        let url = token_url(self.server_endpoint.as_str())?;
        let query = refresh_query(
            &self.client_id,
            self.client_secret.expose(),
            tokens.refresh_token.expose(),
        );
        let answer = http
            .get(url)
            .query(&query)
            .send()
            .await
            .map_err(|e| BitrixError::transport(Method::TokenRefresh.name(), e))?;
        let status = answer.status().as_u16();
        let bytes = answer
            .bytes()
            .await
            .map_err(|e| BitrixError::transport(Method::TokenRefresh.name(), e))?;
        let parsed: Result<TokenAnswer, _> = serde_json::from_slice(&bytes);
        match parsed {
            Ok(a) if a.error.is_none() && (200..300).contains(&status) => {
                match (a.access_token.clone(), a.refresh_token.clone()) {
                    (Some(access), Some(refresh)) => tokens.refreshed(a, access, refresh),
                    _ => Err(BitrixError::decode(
                        Method::TokenRefresh.name(),
                        serde::de::Error::custom("token answer lacks tokens"),
                    )),
                }
            }
            Ok(a) if status < 500 => Err(BitrixError::Reauthorise {
                method: method.name(),
                code: a.error.unwrap_or_default(),
                description: a.error_description.unwrap_or_default(),
            }),
            Ok(_) => Err(BitrixError::Status {
                method: Method::TokenRefresh.name(),
                status,
            }),
            Err(_) if status >= 400 => Err(BitrixError::Status {
                method: Method::TokenRefresh.name(),
                status,
            }),
            Err(e) => Err(BitrixError::decode(Method::TokenRefresh.name(), e)),
        }
    }
}

/// The credential in use by a client.
pub(crate) enum Auth {
    /// Webhook: nothing to add to requests (the secret is in the base URL).
    Webhook,
    /// OAuth: `auth=<token>` in every body.
    OAuth(Arc<OAuth>),
}

impl Auth {
    /// The token to send (if any) and its generation.
    pub(crate) fn access(&self) -> (Option<SecretString>, u64) {
        match self {
            Self::Webhook => (None, 0),
            Self::OAuth(o) => {
                let (token, generation) = o.access();
                (Some(token), generation)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn token_url_replaces_the_trailing_rest_segment() {
        assert_eq!(
            token_url("https://oauth.bitrix.info/rest/")
                .unwrap()
                .as_str(),
            "https://oauth.bitrix.info/oauth/token/"
        );
        assert_eq!(
            token_url("https://oauth.bitrix24.tech/rest")
                .unwrap()
                .as_str(),
            "https://oauth.bitrix24.tech/oauth/token/"
        );
        assert!(token_url("https://oauth.bitrix.info/other/").is_err());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let hook = WebhookUrl::parse("https://acme.bitrix24.de/rest/1/s3cr3tw3bh00k").unwrap();
        assert_eq!(
            hook.expose().as_str(),
            "https://acme.bitrix24.de/rest/1/s3cr3tw3bh00k/"
        );
        let tokens = TokenFile {
            access_token: SecretString::new("acc3ss"),
            refresh_token: SecretString::new("r3fr3sh"),
            expires: None,
            client_endpoint: "https://acme.bitrix24.de/rest/".into(),
            server_endpoint: "https://oauth.bitrix.info/rest/".into(),
            member_id: None,
        };
        let oauth = AuthSettings::OAuth(OAuthSettings {
            portal: Url::parse("https://acme.bitrix24.de/rest/").unwrap(),
            server_endpoint: Url::parse("https://oauth.bitrix.info/rest/").unwrap(),
            client_id: "local.1".into(),
            client_secret: SecretString::new("cl13nts3cr3t"),
            token_file: "/tmp/t.json".into(),
        });
        let shown = format!(
            "{:?} {:?} {:?} {:?}",
            hook,
            tokens,
            oauth,
            AuthSettings::Webhook(hook.clone())
        );
        for secret in ["s3cr3tw3bh00k", "acc3ss", "r3fr3sh", "cl13nts3cr3t"] {
            assert!(!shown.contains(secret), "{secret} leaked in {shown}");
        }
        assert!(shown.contains("acme.bitrix24.de"));
    }

    #[test]
    fn malformed_webhook_urls_are_refused_without_echoing_them() {
        let err = WebhookUrl::parse("not a url s3cr3t").unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"));
    }

    fn sample_tokens() -> TokenFile {
        TokenFile {
            access_token: SecretString::new("acc3ss"),
            refresh_token: SecretString::new("r3fr3sh"),
            expires: Some(1),
            client_endpoint: "https://p/rest/".into(),
            server_endpoint: "https://o/rest/".into(),
            member_id: None,
        }
    }

    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn a_saved_token_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        // A fresh file, and one an operator made 0600 before the first refresh.
        sample_tokens().save(&path).await.unwrap();
        assert_eq!(mode_of(&path), 0o600, "fresh token file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        sample_tokens().save(&path).await.unwrap();
        assert_eq!(mode_of(&path), 0o600, "token file after a refresh");
    }

    #[tokio::test]
    async fn saving_never_follows_a_link_planted_at_a_temp_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        // The temp name the old code used, planted as a symlink to another file.
        std::os::unix::fs::symlink(&victim, dir.path().join(".tokens.json.tmp")).unwrap();
        sample_tokens().save(&path).await.unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(TokenFile::load(&path).await.unwrap(), sample_tokens());
        assert!(
            !std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink(),
            "the token file is a regular file"
        );
    }

    #[tokio::test]
    async fn token_file_round_trips_through_a_durable_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let tokens = TokenFile {
            access_token: SecretString::new("a"),
            refresh_token: SecretString::new("r"),
            expires: Some(1),
            client_endpoint: "https://p/rest/".into(),
            server_endpoint: "https://o/rest/".into(),
            member_id: Some("m".into()),
        };
        tokens.save(&path).await.unwrap();
        assert_eq!(TokenFile::load(&path).await.unwrap(), tokens);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left behind"
        );
    }
}
