//! Recordings as a listener gets them: the attached MP3 decoded (gapless, as players do), the
//! WAV FreeSWITCH wrote measured from its header.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use symphonia::core::codecs::audio::{AudioDecoder as _, AudioDecoderOptions};
use symphonia::core::formats::{FormatOptions, FormatReader as _};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::default::codecs::MpaDecoder;
use symphonia::default::formats::MpaReader;

/// What a decoded MP3 holds.
#[derive(Debug, Clone, Copy)]
pub struct Decoded {
    /// Seconds of audio after the encoder's delay and padding are trimmed.
    pub secs: f64,
    /// Sample rate.
    pub rate: u32,
    /// Channels.
    pub channels: usize,
}

/// Decodes every frame of `mp3`; panics if it is not a valid MP3.
pub fn decode_mp3(mp3: &[u8]) -> Decoded {
    let source = Box::new(Cursor::new(mp3.to_vec()));
    let mss = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
    let mut reader = MpaReader::try_new(mss, FormatOptions::default()).expect("an MP3 stream");
    let params = reader.tracks()[0]
        .codec_params
        .clone()
        .expect("codec params");
    let audio = params.audio().expect("an audio track").clone();
    let mut decoder = MpaDecoder::try_new(&audio, &AudioDecoderOptions::default()).unwrap();
    let (mut frames, mut spec) = (0usize, None);
    while let Some(packet) = reader.next_packet().expect("readable MP3 frames") {
        let buf = decoder.decode(&packet).expect("decodable MP3 frames");
        frames += buf.frames();
        spec.get_or_insert((buf.spec().rate(), buf.spec().channels().count()));
    }
    let (rate, channels) = spec.expect("at least one frame");
    Decoded {
        secs: frames as f64 / f64::from(rate),
        rate,
        channels,
    }
}

/// Seconds of audio in a 16-bit PCM WAV with a 44-byte header (what the switch peer writes).
pub fn wav_secs(wav: &[u8]) -> f64 {
    let u16_at = |i: usize| u16::from_le_bytes([wav[i], wav[i + 1]]);
    let rate = u32::from_le_bytes([wav[24], wav[25], wav[26], wav[27]]);
    let frame_bytes = u32::from(u16_at(22)) * 2;
    (wav.len() - 44) as f64 / f64::from(rate * frame_bytes)
}

/// The MP3 fsb24 makes from the WAV at `wav` (and attaches): beside it, same name.
pub fn mp3_beside(wav: &Path) -> PathBuf {
    wav.with_extension("mp3")
}
