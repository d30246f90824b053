//! The RFC 6381 codec strings a master playlist's `CODECS` advertises for a
//! rung, read from what its encoder made: `avc1.640028` for H.264,
//! `hvc1.1.6.L120.90` for HEVC (ISO/IEC 14496-15, annex E), `av01.0.08M.08`
//! for AV1 (the AV1 ISOBMFF binding, section 5). A player decides from
//! these, before fetching anything, which variants it can decode, so they
//! come from the configuration record the muxer wrote into the rung's init
//! segment (`avcC`, `hvcC`, `av1C`), never from what was asked for. Pure.

use std::fmt::Write as _;

use crate::video::isobmff::boxes;

/// The codec string of the first video track of an fMP4 init segment
/// (`ftyp` + `moov`), from its sample entry's configuration record; `None`
/// when it has no `avc1`/`avc3`, `hvc1`/`hev1` or `av01` entry.
pub fn video_codec_string(init: &[u8]) -> Option<String> {
    let moov = child(init, b"moov")?;
    for trak in children(moov).into_iter().filter(|(k, _)| k == b"trak").map(|(_, b)| b) {
        let stbl = child(trak, b"mdia").and_then(|b| child(b, b"minf")).and_then(|b| child(b, b"stbl"))?;
        let stsd = child(stbl, b"stsd")?;
        // A full box (4 bytes) and an entry count (4), then the sample entries.
        for (kind, entry) in children(stsd.get(8..)?) {
            // A visual sample entry's fixed fields take 78 bytes before its boxes.
            let Some(boxes) = entry.get(78..) else { continue };
            let string = match &kind {
                b"avc1" | b"avc3" => child(boxes, b"avcC").and_then(avc1_codec_string),
                b"hvc1" | b"hev1" => {
                    child(boxes, b"hvcC").and_then(|c| hevc_codec_string(std::str::from_utf8(&kind).ok()?, c))
                }
                b"av01" => child(boxes, b"av1C").and_then(av1_codec_string),
                _ => continue,
            };
            return string;
        }
    }
    None
}

/// The RFC 6381 string of an H.264 stream (`avc1.PPCCLL`), read from its
/// decoder configuration: an `avcC` record or Annex B SPS/PPS.
pub fn avc1_codec_string(extradata: &[u8]) -> Option<String> {
    let sps = if extradata.first() == Some(&1) && extradata.len() >= 4 {
        &extradata[1..4]
    } else {
        // Annex B: find the first NAL of type 7 (SPS) after a start code.
        let mut i = 0;
        loop {
            let rest = extradata.get(i..)?;
            let pos = rest.windows(3).position(|w| w == [0, 0, 1])?;
            let nal = i + pos + 3;
            if extradata.get(nal)? & 0x1f == 7 {
                break extradata.get(nal + 1..nal + 4)?;
            }
            i = nal;
        }
    };
    Some(format!("avc1.{:02x}{:02x}{:02x}", sps[0], sps[1], sps[2]))
}

/// `hvc1.1.6.L120.90` from an `hvcC` record: profile space and profile,
/// the compatibility flags bit-reversed in hex, tier and level, then the
/// constraint bytes up to the last non-zero one.
pub fn hevc_codec_string(tag: &str, hvcc: &[u8]) -> Option<String> {
    if hvcc.len() < 13 || hvcc[0] != 1 {
        return None;
    }
    let space = ["", "A", "B", "C"][usize::from(hvcc[1] >> 6)];
    let tier = if hvcc[1] & 0x20 != 0 { 'H' } else { 'L' };
    let profile = hvcc[1] & 0x1f;
    let compat = u32::from_be_bytes(hvcc[2..6].try_into().ok()?).reverse_bits();
    let mut s = format!("{tag}.{space}{profile}.{compat:x}.{tier}{}", hvcc[12]);
    let constraints = &hvcc[6..12];
    let used = constraints.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    for b in &constraints[..used] {
        let _ = write!(s, ".{b:x}");
    }
    Some(s)
}

/// `av01.0.08M.08` from an `av1C` record: profile, level and tier, bit depth.
pub fn av1_codec_string(av1c: &[u8]) -> Option<String> {
    if av1c.len() < 4 || av1c[0] != 0x81 {
        return None;
    }
    let profile = av1c[1] >> 5;
    let level = av1c[1] & 0x1f;
    let tier = if av1c[2] & 0x80 != 0 { 'H' } else { 'M' };
    let depth = match (av1c[2] & 0x40 != 0, av1c[2] & 0x20 != 0) {
        (true, true) => 12,
        (true, false) => 10,
        _ => 8,
    };
    Some(format!("av01.{profile}.{level:02}{tier}.{depth:02}"))
}

/// The boxes in `bytes`, as (type, body); none when one of them is malformed.
fn children(bytes: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let boxes = boxes(bytes, 0, bytes.len()).unwrap_or_default();
    boxes.into_iter().map(|(kind, _, body, end)| (kind, &bytes[body..end])).collect()
}

fn child<'a>(bytes: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    children(bytes).into_iter().find(|(k, _)| k == kind).map(|(_, b)| b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(body);
        b
    }

    /// An init segment whose one track has `entry` with `config` in it.
    fn init(entry: &[u8; 4], config: &[u8; 4], record: &[u8]) -> Vec<u8> {
        let sample_entry = boxed(entry, &[vec![0; 78], boxed(config, record)].concat());
        let stsd = boxed(b"stsd", &[vec![0, 0, 0, 0, 0, 0, 0, 1], sample_entry].concat());
        let stbl = boxed(b"stbl", &stsd);
        let trak = boxed(b"trak", &boxed(b"mdia", &[boxed(b"mdhd", &[0; 24]), boxed(b"minf", &stbl)].concat()));
        [boxed(b"ftyp", b"isom"), boxed(b"moov", &[boxed(b"mvhd", &[0; 100]), trak].concat())].concat()
    }

    #[test]
    fn each_codec_s_string_comes_from_its_record() {
        assert_eq!(avc1_codec_string(&[1, 100, 0, 40, 0xff]).as_deref(), Some("avc1.640028"));
        // Annex B with an SEI first, then the SPS: Main 3.1.
        let annexb = [0, 0, 0, 1, 0x06, 5, 5, 0, 0, 1, 0x67, 77, 0x40, 31, 0xAA];
        assert_eq!(avc1_codec_string(&annexb).as_deref(), Some("avc1.4d401f"));
        assert_eq!(avc1_codec_string(&[0, 0, 1, 0x68, 1]), None);
        assert_eq!(avc1_codec_string(&[]), None);
        // HEVC Main, Main tier, level 4 (120), progressive-source + frame-only constraints.
        let main = [1, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 120, 0xf0];
        assert_eq!(hevc_codec_string("hvc1", &main).as_deref(), Some("hvc1.1.6.L120.90"));
        // Main 10, High tier, level 5.1 (153), two constraint bytes.
        let main10 = [1, 0x22, 0x20, 0, 0, 0, 0xb0, 0x10, 0, 0, 0, 0, 153, 0xf0];
        assert_eq!(hevc_codec_string("hev1", &main10).as_deref(), Some("hev1.2.4.H153.b0.10"));
        assert_eq!(hevc_codec_string("hvc1", &main[..12]), None);
        // AV1 Main profile, level 4.0 (8), Main tier, 8 and 10 bits.
        assert_eq!(av1_codec_string(&[0x81, 0x08, 0x0c, 0]).as_deref(), Some("av01.0.08M.08"));
        assert_eq!(av1_codec_string(&[0x81, 0x0d, 0x4c, 0]).as_deref(), Some("av01.0.13M.10"));
        assert_eq!(av1_codec_string(&[0x81, 0x2d, 0xe0, 0]).as_deref(), Some("av01.1.13H.12"));
        assert_eq!(av1_codec_string(&[0x80, 0x08, 0x0c, 0]), None);
    }

    #[test]
    fn an_init_segment_is_read_down_to_its_sample_entry() {
        let hevc = init(b"hvc1", b"hvcC", &[1, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93, 0xf0]);
        assert_eq!(video_codec_string(&hevc).as_deref(), Some("hvc1.1.6.L93.90"));
        let av1 = init(b"av01", b"av1C", &[0x81, 0x04, 0x0c, 0]);
        assert_eq!(video_codec_string(&av1).as_deref(), Some("av01.0.04M.08"));
        let avc = init(b"avc1", b"avcC", &[1, 0x64, 0, 0x1f, 0xff]);
        assert_eq!(video_codec_string(&avc).as_deref(), Some("avc1.64001f"));
        // Audio only, a cut-short box, or nothing at all.
        assert_eq!(video_codec_string(&init(b"mp4a", b"esds", &[0; 30])), None);
        assert_eq!(video_codec_string(&hevc[..hevc.len() - 3]), None);
        assert_eq!(video_codec_string(&[]), None);
    }
}
