//! The local application installed on the peer: its first tokens written as fsb24's token
//! file, and the OAuth settings that point at the peer (as an admin sets them up).

use std::path::{Path, PathBuf};

use fsb24::bitrix::{AuthSettings, BitrixSettings, OAuthSettings, SecretString, TokenFile};

use super::BitrixPeer;

impl BitrixPeer {
    /// Writes the installer's tokens to `dir/tokens.json` and returns OAuth settings for this
    /// portal with that file.
    pub async fn install_app(&self, dir: &Path) -> (BitrixSettings, PathBuf) {
        let path = dir.join("tokens.json");
        let pair = self.tokens();
        let file = TokenFile {
            access_token: SecretString::new(pair.access),
            refresh_token: SecretString::new(pair.refresh),
            expires: None,
            client_endpoint: self.rest_url(),
            server_endpoint: self.rest_url(),
            member_id: Some(self.options().member_id.clone()),
        };
        file.save(&path).await.unwrap();
        let rest = url::Url::parse(&self.rest_url()).unwrap();
        let auth = AuthSettings::OAuth(OAuthSettings {
            portal: rest.clone(),
            server_endpoint: rest,
            client_id: self.options().client_id.clone(),
            client_secret: SecretString::new(self.options().client_secret.clone()),
            token_file: path.clone(),
        });
        (BitrixSettings::new(auth), path)
    }
}
