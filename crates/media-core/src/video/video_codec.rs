//! The video codecs a ladder's rungs may be encoded in, and what each
//! implies for its rungs: its API name, its rungs' name suffix, its share
//! of H.264's bitrate, the codec string planned before an encoder reports
//! its own, whether it keeps an HDR source's range; and the dynamic ranges
//! a rung's picture may have ([`VideoRange`]). Pure, a leaf: the ladder,
//! the rung names, the playlists and the job options all read it.

use serde::{Deserialize, Serialize};

/// A video codec the ladder's rungs are encoded in. H.264 plays everywhere;
/// HEVC and AV1 take fewer bytes for the same picture where players decode
/// them, and a master playlist lists them side by side (`CODECS`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    /// libx264, High profile.
    #[default]
    H264,
    /// libx265, Main profile, tagged `hvc1` (the tag Apple's players need).
    Hevc,
    /// SVT-AV1, Main profile.
    Av1,
}

impl VideoCodec {
    pub const ALL: [VideoCodec; 3] = [VideoCodec::H264, VideoCodec::Hevc, VideoCodec::Av1];

    /// Its name in the API (`h264`, `hevc`, `av1`).
    pub fn as_str(self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264",
            VideoCodec::Hevc => "hevc",
            VideoCodec::Av1 => "av1",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// What its rungs' names end with after a `-` (H.264's: nothing).
    pub fn rung_suffix(self) -> &'static str {
        match self {
            VideoCodec::H264 => "",
            other => other.as_str(),
        }
    }

    pub fn from_rung_suffix(suffix: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| *c != VideoCodec::H264 && c.rung_suffix() == suffix)
    }

    /// Its rungs' bitrate as a share of H.264's at the same size. The
    /// usual figures for these encoders are 25-30% fewer bits for HEVC and
    /// 35-40% for AV1 at equal quality; the benchmark report measures what
    /// these shares give (`bench/run.mjs`, section 11).
    pub fn bitrate_share(self) -> f64 {
        match self {
            VideoCodec::H264 => 1.0,
            VideoCodec::Hevc => 0.7,
            VideoCodec::Av1 => 0.6,
        }
    }

    /// The RFC 6381 string advertised for its rungs before the encoder
    /// reported its own (read from the stream's configuration record), in
    /// the rung's dynamic range: 10-bit (HEVC Main 10) when HDR.
    pub fn planned_codec_string(self, range: VideoRange) -> &'static str {
        match (self, range.is_sdr()) {
            (VideoCodec::H264, _) => "avc1.640028",
            (VideoCodec::Hevc, true) => "hvc1.1.6.L120.90",
            (VideoCodec::Hevc, false) => "hvc1.2.4.L120.90",
            (VideoCodec::Av1, true) => "av01.0.08M.08",
            (VideoCodec::Av1, false) => "av01.0.08M.10",
        }
    }

    /// Whether its rungs keep an HDR source's range (10-bit, the source's
    /// transfer and primaries). HEVC Main 10 and AV1 Main carry HDR where
    /// players decode them; H.264 rungs are for every player, and get the
    /// source tone-mapped to SDR BT.709.
    pub fn keeps_hdr(self) -> bool {
        self != VideoCodec::H264
    }
}

/// A rung's dynamic range, as HLS names it (`VIDEO-RANGE`): SDR, or HDR in
/// the PQ (SMPTE ST 2084, HDR10) or HLG (ARIB STD-B67) transfer.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum VideoRange {
    #[default]
    Sdr,
    Pq,
    Hlg,
}

impl VideoRange {
    /// Its `VIDEO-RANGE` value.
    pub fn as_str(self) -> &'static str {
        match self {
            VideoRange::Sdr => "SDR",
            VideoRange::Pq => "PQ",
            VideoRange::Hlg => "HLG",
        }
    }

    pub fn is_sdr(&self) -> bool {
        *self == VideoRange::Sdr
    }
}

impl VideoCodec {
    /// Whether this is H.264 (what a rung is unless a job asked for more).
    pub fn is_h264(&self) -> bool {
        *self == VideoCodec::H264
    }
}
