//! The encoder against a real decoder: length, size ratio, leftovers of a killed run, refusals.

use std::io::Cursor;

use symphonia::core::codecs::audio::{AudioDecoder as _, AudioDecoderOptions};
use symphonia::core::formats::{FormatOptions, FormatReader as _};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::default::codecs::MpaDecoder;
use symphonia::default::formats::MpaReader;

use super::*;

/// A 16-bit PCM WAV of `secs` seconds at `rate`: a 440 Hz tone left, 660 Hz right.
fn wav(secs: f64, rate: u32, channels: u16) -> Vec<u8> {
    let frames = (secs * f64::from(rate)) as u32;
    let data_len = frames * 2 * u32::from(channels);
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2 * u32::from(channels)).to_le_bytes());
    out.extend_from_slice(&(2 * channels).to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..frames {
        for hz in [440.0, 660.0].iter().take(usize::from(channels)) {
            let t = f64::from(i) / f64::from(rate);
            let s = ((t * hz * std::f64::consts::TAU).sin() * 8000.0) as i16;
            out.extend_from_slice(&s.to_le_bytes());
        }
    }
    out
}

/// Decodes an MP3 the way a player does (gapless, from the LAME tag): (seconds, rate, channels).
fn decode(mp3: Vec<u8>) -> (f64, u32, usize) {
    let mss = MediaSourceStream::new(
        Box::new(Cursor::new(mp3)),
        MediaSourceStreamOptions::default(),
    );
    let mut reader = MpaReader::try_new(mss, FormatOptions::default()).unwrap();
    let params = reader.tracks()[0].codec_params.clone().unwrap();
    let audio = params.audio().unwrap().clone();
    let mut decoder = MpaDecoder::try_new(&audio, &AudioDecoderOptions::default()).unwrap();
    let mut frames = 0usize;
    let mut spec = None;
    while let Some(packet) = reader.next_packet().unwrap() {
        let buf = decoder.decode(&packet).unwrap();
        frames += buf.frames();
        spec.get_or_insert((buf.spec().rate(), buf.spec().channels().count()));
    }
    let (rate, channels) = spec.unwrap();
    (frames as f64 / f64::from(rate), rate, channels)
}

fn encode_file(secs: f64, channels: u16, kbps: u32) -> (Encoded, Vec<u8>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("call.wav");
    std::fs::write(&src, wav(secs, 8000, channels)).unwrap();
    let dst = dir.path().join("call.mp3");
    let enc = wav_to_mp3(&src, &dst, kbps).unwrap();
    let bytes = std::fs::read(&dst).unwrap();
    (enc, bytes, dir)
}

#[test]
fn a_telephone_wav_becomes_an_mp3_of_the_same_length_and_a_quarter_of_the_size() {
    for (secs, channels) in [(2.0, 1), (2.0, 2), (61.5, 2)] {
        let (enc, bytes, _dir) = encode_file(secs, channels, 24);
        assert_eq!(enc.mp3_bytes, bytes.len() as u64);
        let ratio = enc.mp3_bytes as f64 / enc.wav_bytes as f64;
        let (decoded, rate, decoded_channels) = decode(bytes);
        eprintln!(
            "{secs} s x{channels}: wav {} B, mp3 {} B, ratio {ratio:.3}, decoded {decoded:.3} s",
            enc.wav_bytes, enc.mp3_bytes
        );
        assert_eq!((rate, decoded_channels), (8000, usize::from(channels)));
        assert!(
            (decoded - secs).abs() <= 0.2,
            "{decoded} s decoded of {secs} s"
        );
        assert!((enc.duration.as_secs_f64() - secs).abs() < 0.01);
        assert!(ratio <= 0.25, "ratio {ratio}");
    }
}

#[test]
fn a_part_file_left_by_a_killed_encode_is_replaced_and_never_taken_for_the_mp3() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("c.wav");
    std::fs::write(&src, wav(1.0, 8000, 1)).unwrap();
    let dst = dir.path().join("c.mp3");
    std::fs::write(part_path(&dst), b"half an mp3 from a killed run").unwrap();
    wav_to_mp3(&src, &dst, 24).unwrap();
    assert!(!part_path(&dst).exists());
    let (decoded, _, _) = decode(std::fs::read(&dst).unwrap());
    assert!((decoded - 1.0).abs() <= 0.2);
}

#[test]
fn only_16_bit_pcm_in_one_or_two_channels_is_encoded() {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("x.mp3");
    let cases: [(&str, Vec<u8>); 3] = [
        ("ogg", b"OggS0000000000000000".to_vec()),
        ("8-bit", {
            let mut w = wav(0.1, 8000, 1);
            w[34] = 8;
            w
        }),
        ("short", b"RIFF".to_vec()),
    ];
    for (name, bytes) in cases {
        let src = dir.path().join(format!("{name}.wav"));
        std::fs::write(&src, bytes).unwrap();
        let err = wav_to_mp3(&src, &dst, 24).unwrap_err();
        assert!(matches!(err, Mp3Error::Unsupported { .. }), "{name}: {err}");
        assert!(!dst.exists() && !part_path(&dst).exists(), "{name}");
    }
}
