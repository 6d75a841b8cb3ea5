//! WAV (16-bit PCM, mono or stereo) to MP3 with LAME, crash-safe: the MP3 is encoded into a
//! `.part` file beside it, fsynced, and renamed into place only when complete, so an MP3 that
//! exists is whole. Blocking file IO and CPU: run it on `spawn_blocking`, never on a call's path.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use mp3lame_encoder::{Bitrate, Builder, FlushGap, InterleavedPcm, Mode, MonoPcm, Quality};

/// Per-channel bitrates (kbit/s) whose mono and stereo totals LAME offers.
pub(crate) const KBPS_PER_CHANNEL: [u32; 8] = [8, 16, 24, 32, 40, 48, 64, 80];

/// PCM frames encoded per step (a few KiB: the encoder never holds the whole call).
const FRAMES_PER_STEP: usize = 8192;

/// Why a WAV was not turned into an MP3.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Mp3Error {
    /// Not a RIFF/WAVE file with 16-bit PCM in one or two channels.
    #[error("{path}: {why}")]
    Unsupported {
        /// The WAV.
        path: PathBuf,
        /// What is not supported.
        why: String,
    },
    /// The WAV changed (size or modification time) while it was encoded: still being written.
    #[error("{path}: changed while it was encoded")]
    Changed {
        /// The WAV.
        path: PathBuf,
    },
    /// LAME refused the parameters or the data.
    #[error("{path}: mp3 encoder: {why}")]
    Encoder {
        /// The WAV.
        path: PathBuf,
        /// LAME's complaint.
        why: String,
    },
    /// Reading the WAV or writing the MP3 failed.
    #[error("{path}: {action} failed")]
    Io {
        /// The file acted on.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// What an encode produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Encoded {
    /// Size of the WAV.
    pub wav_bytes: u64,
    /// Size of the MP3.
    pub mp3_bytes: u64,
    /// Audio length (PCM frames over the sample rate).
    pub duration: Duration,
}

/// The audio layout of a WAV's `fmt ` chunk and where its samples are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pcm {
    channels: u16,
    sample_rate: u32,
    data_start: u64,
    data_len: u64,
}

/// The `.part` file an MP3 is written to before it is renamed into place.
pub(crate) fn part_path(mp3: &Path) -> PathBuf {
    let mut name = mp3.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    mp3.with_file_name(name)
}

/// Encodes `wav` into `mp3` at `kbps_per_channel` (one of [`KBPS_PER_CHANNEL`]), replacing any
/// `.part` a killed run left. `mp3` appears only once complete and on disk.
pub(crate) fn wav_to_mp3(
    wav: &Path,
    mp3: &Path,
    kbps_per_channel: u32,
) -> Result<Encoded, Mp3Error> {
    let io = |path: &Path, action| {
        let path = path.to_owned();
        move |source| Mp3Error::Io {
            path,
            action,
            source,
        }
    };
    let before = stamp(wav).map_err(io(wav, "stat"))?;
    let mut reader = BufReader::new(File::open(wav).map_err(io(wav, "open"))?);
    let pcm = read_header(&mut reader, before.0).map_err(|why| Mp3Error::Unsupported {
        path: wav.to_owned(),
        why,
    })?;
    let part = part_path(mp3);
    let file = File::create(&part).map_err(io(&part, "create"))?;
    let mut out = BufWriter::new(file);
    let frames = encode(&mut reader, &mut out, pcm, kbps_per_channel).map_err(|e| match e {
        Step::Read(source) => io(wav, "read")(source),
        Step::Write(source) => io(&part, "write")(source),
        Step::Lame(why) => Mp3Error::Encoder {
            path: wav.to_owned(),
            why,
        },
    })?;
    let file = out
        .into_inner()
        .map_err(|e| io(&part, "write")(e.into_error()))?;
    file.sync_all().map_err(io(&part, "fsync"))?;
    let mp3_bytes = file.metadata().map_err(io(&part, "stat"))?.len();
    drop(file);
    if stamp(wav).map_err(io(wav, "stat"))? != before {
        let _ = std::fs::remove_file(&part);
        return Err(Mp3Error::Changed {
            path: wav.to_owned(),
        });
    }
    std::fs::rename(&part, mp3).map_err(io(mp3, "rename"))?;
    // The rename itself survives a power cut only once the directory is synced.
    if let Some(dir) = mp3.parent() {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(Encoded {
        wav_bytes: before.0,
        mp3_bytes,
        duration: Duration::from_secs_f64(frames as f64 / f64::from(pcm.sample_rate)),
    })
}

/// Size and modification time: what "still being written" would change.
fn stamp(path: &Path) -> io::Result<(u64, Option<SystemTime>)> {
    let meta = std::fs::metadata(path)?;
    Ok((meta.len(), meta.modified().ok()))
}

/// Walks the RIFF chunks to `fmt ` and `data`; `file_len` bounds a `data` size left open.
fn read_header(r: &mut impl Read, file_len: u64) -> Result<Pcm, String> {
    let mut riff = [0u8; 12];
    r.read_exact(&mut riff)
        .map_err(|_| "shorter than a WAV header".to_owned())?;
    if &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
        return Err("not a RIFF/WAVE file".to_owned());
    }
    let mut pos = 12u64;
    let mut format: Option<(u16, u32)> = None;
    loop {
        let mut head = [0u8; 8];
        r.read_exact(&mut head)
            .map_err(|_| "no data chunk".to_owned())?;
        pos += 8;
        let len = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
        match &head[0..4] {
            b"fmt " => {
                let mut fmt = vec![0u8; usize::try_from(len).unwrap_or(0).min(64)];
                r.read_exact(&mut fmt)
                    .map_err(|_| "truncated fmt chunk".to_owned())?;
                skip(r, len + (len & 1) - fmt.len() as u64)?;
                format = Some(pcm_format(&fmt)?);
            }
            b"data" => {
                let (channels, sample_rate) = format.ok_or("data before fmt chunk")?;
                return Ok(Pcm {
                    channels,
                    sample_rate,
                    data_start: pos,
                    data_len: len.min(file_len.saturating_sub(pos)),
                });
            }
            _ => skip(r, len + (len & 1))?,
        }
        pos += len + (len & 1);
    }
}

fn skip(r: &mut impl Read, n: u64) -> Result<(), String> {
    let copied = io::copy(&mut r.take(n), &mut io::sink()).map_err(|e| e.to_string())?;
    if copied == n {
        Ok(())
    } else {
        Err("truncated chunk".to_owned())
    }
}

/// `(channels, sample rate)` of a 16-bit PCM `fmt ` chunk (plain or WAVE_FORMAT_EXTENSIBLE).
fn pcm_format(fmt: &[u8]) -> Result<(u16, u32), String> {
    if fmt.len() < 16 {
        return Err("fmt chunk too short".to_owned());
    }
    let u16_at = |i: usize| u16::from_le_bytes([fmt[i], fmt[i + 1]]);
    let tag = u16_at(0);
    let channels = u16_at(2);
    let sample_rate = u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]);
    let bits = u16_at(14);
    // WAVE_FORMAT_EXTENSIBLE carries the real format in its sub-format GUID's first two bytes.
    let pcm = tag == 1 || (tag == 0xFFFE && fmt.len() >= 26 && u16_at(24) == 1);
    if !pcm || bits != 16 {
        return Err(format!(
            "format {tag:#06x} with {bits}-bit samples is not 16-bit PCM"
        ));
    }
    if !(1..=2).contains(&channels) || sample_rate == 0 {
        return Err(format!("{channels} channels at {sample_rate} Hz"));
    }
    Ok((channels, sample_rate))
}

/// Where an encode step failed.
enum Step {
    Read(io::Error),
    Write(io::Error),
    Lame(String),
}

/// Streams the samples through LAME into `out`, then writes the LAME tag over the first frame
/// (it carries the encoder delay and padding, so decoders play exactly the recorded length).
/// Returns the PCM frames encoded.
fn encode(
    r: &mut BufReader<File>,
    out: &mut BufWriter<File>,
    pcm: Pcm,
    kbps_per_channel: u32,
) -> Result<u64, Step> {
    let mut lame = builder(pcm, kbps_per_channel)
        .and_then(|b| b.build().map_err(|e| e.to_string()))
        .map_err(Step::Lame)?;
    r.seek(SeekFrom::Start(pcm.data_start))
        .map_err(Step::Read)?;
    let channels = usize::from(pcm.channels);
    let mut left = pcm.data_len / 2 / channels as u64 * 2 * channels as u64;
    let mut bytes = vec![0u8; FRAMES_PER_STEP * 2 * channels];
    let mut samples: Vec<i16> = Vec::with_capacity(FRAMES_PER_STEP * channels);
    let mut mp3: Vec<u8> = Vec::new();
    let mut frames = 0u64;
    while left > 0 {
        let take = usize::try_from(left.min(bytes.len() as u64)).unwrap_or(bytes.len());
        r.read_exact(&mut bytes[..take]).map_err(Step::Read)?;
        left -= take as u64;
        samples.clear();
        samples.extend(
            bytes[..take]
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]])),
        );
        frames += (samples.len() / channels) as u64;
        mp3.clear();
        mp3.reserve(mp3lame_encoder::max_required_buffer_size(samples.len()));
        let written = if channels == 1 {
            lame.encode_to_vec(MonoPcm(&samples), &mut mp3)
        } else {
            lame.encode_to_vec(InterleavedPcm(&samples), &mut mp3)
        };
        written.map_err(|e| Step::Lame(e.to_string()))?;
        out.write_all(&mp3).map_err(Step::Write)?;
    }
    mp3.clear();
    mp3.reserve(7200);
    lame.flush_to_vec::<FlushGap>(&mut mp3)
        .map_err(|e| Step::Lame(e.to_string()))?;
    out.write_all(&mp3).map_err(Step::Write)?;
    let mut tag = Vec::with_capacity(lame.lame_tag_size());
    if lame.lame_tag_encode_to_vec(&mut tag).is_some() {
        out.seek(SeekFrom::Start(0)).map_err(Step::Write)?;
        out.write_all(&tag).map_err(Step::Write)?;
    }
    out.flush().map_err(Step::Write)?;
    Ok(frames)
}

fn builder(pcm: Pcm, kbps_per_channel: u32) -> Result<Builder, String> {
    let err = |e: mp3lame_encoder::BuildError| e.to_string();
    let mut b = Builder::new().ok_or("cannot allocate the encoder")?;
    let channels = u8::try_from(pcm.channels).map_err(|e| e.to_string())?;
    b.set_num_channels(channels).map_err(err)?;
    b.set_sample_rate(pcm.sample_rate).map_err(err)?;
    // Keep telephone rates as they are (LAME would pick its own otherwise).
    if [8_000, 11_025, 12_000, 16_000, 22_050, 24_000].contains(&pcm.sample_rate) {
        b.set_output_sample_rate(NonZeroU32::new(pcm.sample_rate))
            .map_err(err)?;
    }
    let total = kbps_per_channel * u32::from(pcm.channels);
    b.set_brate(bitrate(total).ok_or(format!("no {total} kbit/s MP3 bitrate"))?)
        .map_err(err)?;
    b.set_mode(if channels == 1 {
        Mode::Mono
    } else {
        Mode::JointStereo
    })
    .map_err(err)?;
    b.set_quality(Quality::Good).map_err(err)?;
    b.set_to_write_vbr_tag(true).map_err(err)?;
    Ok(b)
}

fn bitrate(kbps: u32) -> Option<Bitrate> {
    Some(match kbps {
        8 => Bitrate::Kbps8,
        16 => Bitrate::Kbps16,
        24 => Bitrate::Kbps24,
        32 => Bitrate::Kbps32,
        40 => Bitrate::Kbps40,
        48 => Bitrate::Kbps48,
        64 => Bitrate::Kbps64,
        80 => Bitrate::Kbps80,
        96 => Bitrate::Kbps96,
        128 => Bitrate::Kbps128,
        160 => Bitrate::Kbps160,
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
