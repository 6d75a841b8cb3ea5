//! Which configured agent extensions are registered, and how many live channels each has.
//!
//! Fed by [`SwitchEvent`]s from the inbound connection plus a full snapshot after every
//! (re)connect. Readers (the queue) never wait: every query is a short DashMap shard read.

use std::sync::Arc;

use dashmap::DashMap;

use super::switch_event::SwitchEvent;
use crate::ids::ChannelId;

/// One agent extension's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionPresence {
    /// The extension.
    pub extension: String,
    /// Whether sofia holds a registration for it.
    pub registered: bool,
    /// Channels currently up on its phone (ringing or talking, ours or internal).
    pub live_channels: usize,
}

#[derive(Debug, Default)]
struct Inner {
    registered: DashMap<String, bool>,
    /// Live channel -> extension, for configured extensions only.
    channels: DashMap<ChannelId, String>,
}

/// Shared, lock-free-to-read presence table. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Presence {
    inner: Arc<Inner>,
}

impl Presence {
    /// Tracks `extensions`; events about other extensions are ignored.
    pub fn new(extensions: impl IntoIterator<Item = String>) -> Self {
        let presence = Self::default();
        for ext in extensions {
            presence.inner.registered.insert(ext, false);
        }
        presence
    }

    /// The tracked extensions.
    pub fn extensions(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .inner
            .registered
            .iter()
            .map(|e| e.key().clone())
            .collect();
        all.sort();
        all
    }

    /// Whether `ext` is registered (false for unknown extensions).
    pub fn is_registered(&self, ext: &str) -> bool {
        self.inner.registered.get(ext).is_some_and(|r| *r)
    }

    /// Number of live channels on `ext`'s phone.
    pub fn live_channels(&self, ext: &str) -> usize {
        self.inner
            .channels
            .iter()
            .filter(|c| c.value() == ext)
            .count()
    }

    /// Every tracked extension, sorted.
    pub fn snapshot(&self) -> Vec<ExtensionPresence> {
        self.extensions()
            .into_iter()
            .map(|ext| ExtensionPresence {
                registered: self.is_registered(&ext),
                live_channels: self.live_channels(&ext),
                extension: ext,
            })
            .collect()
    }

    /// Applies one switch event.
    pub fn apply(&self, event: &SwitchEvent) {
        match event {
            SwitchEvent::Registered { user, .. } => self.set_registered(user, true),
            SwitchEvent::Unregistered { user } | SwitchEvent::Expired { user } => {
                self.set_registered(user, false);
            }
            SwitchEvent::ChannelCreated {
                channel,
                extension: Some(ext),
            }
            | SwitchEvent::LegAnswered {
                leg: channel,
                extension: Some(ext),
            } if self.inner.registered.contains_key(ext.as_str()) => {
                self.inner.channels.insert(channel.clone(), ext.clone());
            }
            SwitchEvent::ChannelHangupComplete { channel, .. } => {
                self.inner.channels.remove(channel);
            }
            _ => {}
        }
    }

    /// Records a registration state read from a snapshot (`sofia_contact`).
    pub fn set_registered(&self, ext: &str, registered: bool) {
        if let Some(mut entry) = self.inner.registered.get_mut(ext) {
            *entry = registered;
        }
    }

    /// Replaces the live channel table with a snapshot (`show channels`): `(channel, extension)`.
    pub fn replace_channels(&self, live: impl IntoIterator<Item = (ChannelId, String)>) {
        self.inner.channels.clear();
        for (channel, ext) in live {
            if self.inner.registered.contains_key(ext.as_str()) {
                self.inner.channels.insert(channel, ext);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::esl::HangupCause;

    fn presence() -> Presence {
        Presence::new(["1011".to_owned(), "1012".to_owned()])
    }

    #[test]
    fn registration_events_flip_registered_for_tracked_extensions_only() {
        let p = presence();
        p.apply(&SwitchEvent::Registered {
            user: "1011".into(),
            expires: Some(3600),
        });
        p.apply(&SwitchEvent::Registered {
            user: "9999".into(),
            expires: Some(3600),
        });
        assert!(p.is_registered("1011"));
        assert!(!p.is_registered("9999"));
        p.apply(&SwitchEvent::Unregistered {
            user: "1011".into(),
        });
        assert!(!p.is_registered("1011"));
        p.apply(&SwitchEvent::Registered {
            user: "1012".into(),
            expires: Some(5),
        });
        p.apply(&SwitchEvent::Expired {
            user: "1012".into(),
        });
        assert!(!p.is_registered("1012"));
    }

    #[test]
    fn live_channels_count_creates_minus_hangups_including_calls_we_never_saw() {
        let p = presence();
        let created = |id: &str| SwitchEvent::ChannelCreated {
            channel: ChannelId::new(id),
            extension: Some("1011".into()),
        };
        p.apply(&created("a"));
        p.apply(&created("b"));
        p.apply(&created("a")); // duplicate delivery does not double count
        assert_eq!(p.live_channels("1011"), 2);
        p.apply(&SwitchEvent::ChannelHangupComplete {
            channel: ChannelId::new("a"),
            extension: Some("1011".into()),
            cause: HangupCause::NormalClearing,
            sip_term_status: None,
            sip_hangup_disposition: None,
            end: crate::esl::ChannelEnd::default(),
        });
        assert_eq!(p.live_channels("1011"), 1);
        assert_eq!(p.live_channels("1012"), 0);
    }

    #[test]
    fn snapshot_replaces_stale_channels_after_reconnect() {
        let p = presence();
        p.apply(&SwitchEvent::ChannelCreated {
            channel: ChannelId::new("gone"),
            extension: Some("1011".into()),
        });
        p.replace_channels([
            (ChannelId::new("x"), "1012".to_owned()),
            (ChannelId::new("y"), "7".to_owned()),
        ]);
        p.set_registered("1012", true);
        assert_eq!(
            p.snapshot(),
            vec![
                ExtensionPresence {
                    extension: "1011".into(),
                    registered: false,
                    live_channels: 0
                },
                ExtensionPresence {
                    extension: "1012".into(),
                    registered: true,
                    live_channels: 1
                },
            ]
        );
    }
}
