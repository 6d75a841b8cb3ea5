//! Replays the APP->FS side of the real FreeSWITCH 1.10.12 transcripts against the test peer and
//! checks that the same key frames (replies, notices, call-control events with their key headers)
//! come back in the same order; plus checks of the peer's inbound side and switch behaviour.

mod peer;
mod real;
mod transcript;
