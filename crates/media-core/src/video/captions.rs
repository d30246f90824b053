//! Caption tracks: reading an uploaded WebVTT or SRT file, strictly, into
//! cues; writing them back as one normalised WebVTT file (what storage
//! keeps); and cutting that into the segmented WebVTT of an HLS subtitle
//! rendition (RFC 8216 3.5, with the `X-TIMESTAMP-MAP` that places its
//! cues on the video's timeline). Pure.
//!
//! What is accepted, and why:
//! - UTF-8 text of at most [`MAX_CAPTION_BYTES`], a byte-order mark allowed.
//! - WebVTT: the `WEBVTT` header, cues with optional identifiers and
//!   settings, `NOTE` blocks (dropped). `STYLE` and `REGION` blocks are
//!   refused: players apply them unevenly, and the platform serves the
//!   cues alone.
//! - SRT: numbered cues with `HH:MM:SS,mmm --> HH:MM:SS,mmm` timings; its
//!   `<font …>` tags, which WebVTT has no counterpart for, are dropped.
//! - Cue text may carry WebVTT's own markup only: `<b>`, `<i>`, `<u>`,
//!   `<c…>`, `<v …>`, `<lang …>`, `<ruby>`, `<rt>`, timestamps
//!   `<00:00:01.000>`, and the `&amp;`-style escapes. Anything else (HTML,
//!   `<script>`) is refused, with the line it is on.
//! - A cue ends after it starts, within [`MAX_CAPTION_S`]; at most
//!   [`MAX_CUES`] cues.
//!
//! Every refusal names the line (1-based) it found the fault on.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The largest caption file accepted (Stream's limit is about this too).
pub const MAX_CAPTION_BYTES: usize = 512 * 1024;
/// The most cues a track may have.
pub const MAX_CUES: usize = 20_000;
/// The latest time a cue may end at (24 h), as a video's longest.
pub const MAX_CAPTION_S: f64 = 86_400.0;
/// The most caption tracks a video may have.
pub const MAX_TRACKS: usize = 20;

/// One cue: when it shows, how (WebVTT settings), and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Cue {
    pub start_ms: u64,
    pub end_ms: u64,
    /// WebVTT cue settings (`line:0 align:start`), empty for SRT.
    pub settings: String,
    /// One or more lines of text, with WebVTT markup only.
    pub text: String,
}

/// A caption track of a video, as `/job-status` and the captions routes list it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptionTrack {
    /// A BCP 47 language tag, e.g. `en`, `pt-BR`.
    #[cfg_attr(feature = "openapi", schema(example = "en"))]
    pub language: String,
    /// What players show in their captions menu.
    #[cfg_attr(feature = "openapi", schema(example = "English"))]
    pub label: String,
    /// Cues in the track.
    pub cues: u32,
    /// The stored WebVTT's size, bytes.
    pub bytes: u64,
    /// The file format it was uploaded in (`vtt` or `srt`).
    pub source_format: CaptionFormat,
}

/// The format a caption file was uploaded in.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptionFormat {
    Vtt,
    Srt,
}

/// Why a caption file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", match .line { Some(l) => format!("line {l}: {}", .message), None => .message.clone() })]
pub struct CaptionError {
    /// The 1-based line the fault is on, when it is on one.
    pub line: Option<usize>,
    pub message: String,
}

fn at(line: usize, message: impl Into<String>) -> CaptionError {
    CaptionError { line: Some(line), message: message.into() }
}

fn whole(message: impl Into<String>) -> CaptionError {
    CaptionError { line: None, message: message.into() }
}

/// A language tag in its usual spelling (`pt-BR`), or why it is not one: a
/// primary subtag of 2-3 letters, then subtags of 1-8 letters or digits,
/// 35 characters at most.
pub fn language_tag(s: &str) -> Result<String, String> {
    let refuse = || format!("{s:?} is not a language tag like \"en\" or \"pt-BR\"");
    if s.is_empty() || s.len() > 35 {
        return Err(refuse());
    }
    let mut out = Vec::new();
    for (i, part) in s.split('-').enumerate() {
        let ok = if i == 0 {
            (2..=3).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphabetic())
        } else {
            (1..=8).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphanumeric())
        };
        if !ok {
            return Err(refuse());
        }
        out.push(match (i, part.len()) {
            (0, _) => part.to_ascii_lowercase(),
            (_, 2) if part.bytes().all(|b| b.is_ascii_alphabetic()) => part.to_ascii_uppercase(),
            (_, 4) if part.bytes().all(|b| b.is_ascii_alphabetic()) => {
                let lower = part.to_ascii_lowercase();
                lower[..1].to_ascii_uppercase() + &lower[1..]
            }
            _ => part.to_ascii_lowercase(),
        });
    }
    Ok(out.join("-"))
}

/// Reads an uploaded caption file: its format, and its cues in order of start.
pub fn parse_caption(bytes: &[u8]) -> Result<(CaptionFormat, Vec<Cue>), CaptionError> {
    if bytes.len() > MAX_CAPTION_BYTES {
        return Err(whole(format!(
            "the file is {} bytes; a caption track may be at most {MAX_CAPTION_BYTES}",
            bytes.len()
        )));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
        at(line, "the file is not UTF-8 text")
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    let first = lines.iter().position(|l| !l.trim().is_empty());
    let (format, mut cues) = match first.map(|i| lines[i]) {
        Some(l) if l == "WEBVTT" || l.starts_with("WEBVTT ") || l.starts_with("WEBVTT\t") => {
            (CaptionFormat::Vtt, parse_blocks(&lines, first.unwrap_or(0) + 1, CaptionFormat::Vtt)?)
        }
        Some(l) if l.trim().bytes().all(|b| b.is_ascii_digit()) => {
            (CaptionFormat::Srt, parse_blocks(&lines, first.unwrap_or(0), CaptionFormat::Srt)?)
        }
        Some(_) => {
            return Err(at(
                first.unwrap_or(0) + 1,
                "neither WebVTT (which starts with WEBVTT) nor SRT (which starts with a cue number)",
            ))
        }
        None => return Err(whole("the file is empty")),
    };
    if cues.is_empty() {
        return Err(whole("the file has no cue"));
    }
    cues.sort_by_key(|c| (c.start_ms, c.end_ms));
    Ok((format, cues))
}

/// The cues of the blocks from line index `from`.
fn parse_blocks(lines: &[&str], from: usize, format: CaptionFormat) -> Result<Vec<Cue>, CaptionError> {
    let mut cues = Vec::new();
    let mut i = from;
    // WebVTT: the header's own lines run to the first blank line.
    if format == CaptionFormat::Vtt {
        while i < lines.len() && !lines[i].trim().is_empty() {
            i += 1;
        }
    }
    while i < lines.len() {
        if lines[i].trim().is_empty() {
            i += 1;
            continue;
        }
        let start = i;
        while i < lines.len() && !lines[i].trim().is_empty() {
            i += 1;
        }
        let block = &lines[start..i];
        if format == CaptionFormat::Vtt {
            let head = block[0];
            if head == "NOTE" || head.starts_with("NOTE ") || head.starts_with("NOTE\t") {
                continue;
            }
            if head == "STYLE" || head == "REGION" {
                return Err(at(start + 1, format!("{head} blocks are not accepted; upload the cues alone")));
            }
        }
        // The timing line: the first or, after an identifier (SRT: the cue number), the second.
        let timing_at = match block.iter().position(|l| l.contains("-->")) {
            Some(0) if format == CaptionFormat::Vtt => 0,
            Some(1) => 1,
            _ => {
                return Err(at(
                    start + 1,
                    "a cue without a timing line like 00:00:01.000 --> 00:00:03.000 as its first or second line",
                ))
            }
        };
        if format == CaptionFormat::Srt && !block[0].trim().bytes().all(|b| b.is_ascii_digit()) {
            return Err(at(start + 1, format!("an SRT cue starts with its number, not {:?}", block[0])));
        }
        let line_no = start + timing_at + 1;
        let (start_ms, end_ms, settings) = timing(block[timing_at], format).map_err(|m| at(line_no, m))?;
        let mut text = Vec::new();
        for (k, l) in block[timing_at + 1..].iter().enumerate() {
            let n = line_no + 1 + k;
            let l = if format == CaptionFormat::Srt { drop_font_tags(l) } else { (*l).to_owned() };
            check_markup(&l).map_err(|m| at(n, m))?;
            text.push(l);
        }
        if text.iter().all(|l| l.trim().is_empty()) {
            return Err(at(line_no, "a cue without text"));
        }
        cues.push(Cue { start_ms, end_ms, settings, text: text.join("\n") });
        if cues.len() > MAX_CUES {
            return Err(at(line_no, format!("more than {MAX_CUES} cues")));
        }
    }
    Ok(cues)
}

/// `start --> end [settings]`, in milliseconds.
fn timing(line: &str, format: CaptionFormat) -> Result<(u64, u64, String), String> {
    let (a, rest) = line.split_once("-->").ok_or("no -->")?;
    let rest = rest.trim_start();
    let (b, settings) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
    let start = timestamp(a.trim(), format)?;
    let end = timestamp(b.trim(), format)?;
    if end <= start {
        return Err(format!("the cue ends ({}) before it starts ({})", b.trim(), a.trim()));
    }
    if end as f64 / 1000.0 > MAX_CAPTION_S {
        return Err(format!("the cue ends after {MAX_CAPTION_S} s"));
    }
    let settings = settings.trim();
    if format == CaptionFormat::Srt && !settings.is_empty() {
        return Err(format!("unexpected text after the SRT timing: {settings:?}"));
    }
    if settings.chars().any(|c| c == '<' || c == '>' || c == '&') {
        return Err(format!("cue settings may not hold markup: {settings:?}"));
    }
    Ok((start, end, settings.to_owned()))
}

/// `[hh:]mm:ss.mmm` (WebVTT) or `hh:mm:ss,mmm` (SRT), in milliseconds.
fn timestamp(s: &str, format: CaptionFormat) -> Result<u64, String> {
    let bad = || match format {
        CaptionFormat::Vtt => format!("{s:?} is not a time like 00:01.000 or 00:00:01.000"),
        CaptionFormat::Srt => format!("{s:?} is not a time like 00:00:01,000"),
    };
    let sep = if format == CaptionFormat::Srt { ',' } else { '.' };
    let (clock, ms) = s.split_once(sep).ok_or_else(bad)?;
    if ms.len() != 3 || !ms.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let parts: Vec<&str> = clock.split(':').collect();
    let digits = |p: &str, max_len: usize| {
        (!p.is_empty() && p.len() <= max_len && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse::<u64>().ok())?
    };
    let (h, m, sec) = match (format, parts.as_slice()) {
        (CaptionFormat::Vtt, [m, sec]) if m.len() == 2 && sec.len() == 2 => (0, digits(m, 2), digits(sec, 2)),
        (_, [h, m, sec]) if m.len() == 2 && sec.len() == 2 => {
            (digits(h, 3).ok_or_else(bad)?, digits(m, 2), digits(sec, 2))
        }
        _ => return Err(bad()),
    };
    let (m, sec) = (m.ok_or_else(bad)?, sec.ok_or_else(bad)?);
    if m > 59 || sec > 59 {
        return Err(bad());
    }
    Ok(((h * 60 + m) * 60 + sec) * 1000 + ms.parse::<u64>().map_err(|_| bad())?)
}

/// SRT's `<font …>` and `</font>`, which WebVTT has no counterpart for.
fn drop_font_tags(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let tail = &rest[open..];
        let close = tail.find('>');
        let tag = close.map(|c| tail[1..c].trim().to_ascii_lowercase());
        match (close, tag) {
            (Some(c), Some(t)) if t == "/font" || t == "font" || t.starts_with("font ") => rest = &tail[c + 1..],
            _ => {
                out.push('<');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// WebVTT cue text: only its own tags and escapes.
fn check_markup(line: &str) -> Result<(), String> {
    let mut rest = line;
    while let Some(pos) = rest.find(['<', '&']) {
        let tail = &rest[pos..];
        if tail.starts_with('&') {
            let end = tail.find(';').filter(|&e| e <= 10).ok_or("a bare & (write &amp;)")?;
            let entity = &tail[1..end];
            let known = ["amp", "lt", "gt", "lrm", "rlm", "nbsp"].contains(&entity)
                || entity.strip_prefix('#').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if !known {
                return Err(format!("&{entity}; is not a WebVTT escape"));
            }
            rest = &tail[end + 1..];
            continue;
        }
        let end = tail.find('>').ok_or("a < that opens no tag (write &lt;)")?;
        let tag = &tail[1..end];
        if timestamp(tag, CaptionFormat::Vtt).is_ok() {
            rest = &tail[end + 1..];
            continue;
        }
        let name = tag.trim_start_matches('/');
        let name = name.split(['.', ' ', '\t']).next().unwrap_or("");
        let allowed = matches!(name, "b" | "i" | "u" | "c" | "ruby" | "rt" | "v" | "lang");
        if !allowed {
            return Err(format!("<{tag}> is not WebVTT cue markup (b, i, u, c, v, lang, ruby, rt, timestamps)"));
        }
        rest = &tail[end + 1..];
    }
    Ok(())
}

fn write_time(s: &mut String, ms: u64) {
    let _ = write!(s, "{:02}:{:02}:{:02}.{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
}

fn write_cue(s: &mut String, c: &Cue) {
    write_time(s, c.start_ms);
    s.push_str(" --> ");
    write_time(s, c.end_ms);
    if !c.settings.is_empty() {
        s.push(' ');
        s.push_str(&c.settings);
    }
    s.push('\n');
    s.push_str(&c.text);
    s.push_str("\n\n");
}

/// The cues as one WebVTT file: what storage keeps for a track.
pub fn to_webvtt(cues: &[Cue]) -> String {
    let mut s = String::from("WEBVTT\n\n");
    for c in cues {
        write_cue(&mut s, c);
    }
    s
}

/// Segment `seq` of a subtitle rendition: the cues shown between `start_s`
/// and `end_s` (a cue across a boundary is in both segments, as RFC 8216
/// allows), its times on the video's timeline. `X-TIMESTAMP-MAP` maps
/// local time 0 to presentation time 0 of the video (90 kHz), where the
/// ladder's timeline starts.
pub fn webvtt_segment(cues: &[Cue], start_s: f64, end_s: f64) -> String {
    let (from, to) = ((start_s * 1000.0).round() as u64, (end_s * 1000.0).round() as u64);
    let mut s = String::from("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n");
    for c in cues.iter().filter(|c| c.start_ms < to && c.end_ms > from) {
        write_cue(&mut s, c);
    }
    s
}

/// A subtitle rendition's media playlist: segments of `segment_s` over
/// `duration_s` (the last one shorter), named `{seq}.vtt`; VOD.
pub fn subtitle_playlist(duration_s: f64, segment_s: f64) -> String {
    let segment_s = if segment_s.is_finite() && segment_s > 0.0 { segment_s } else { 4.0 };
    let duration_s = if duration_s.is_finite() { duration_s.max(0.001) } else { segment_s };
    let count = (duration_s / segment_s).ceil().max(1.0) as u32;
    let mut s = String::from("#EXTM3U\n#EXT-X-VERSION:7\n");
    let _ = writeln!(s, "#EXT-X-TARGETDURATION:{}", segment_s.ceil() as u32);
    s.push_str("#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n");
    for seq in 0..count {
        let d = (duration_s - f64::from(seq) * segment_s).min(segment_s);
        let _ = writeln!(s, "#EXTINF:{d:.6},\n{}", subtitle_segment_name(seq));
    }
    s.push_str("#EXT-X-ENDLIST\n");
    s
}

/// The window of subtitle segment `seq`.
pub fn subtitle_segment_window(seq: u32, segment_s: f64) -> (f64, f64) {
    (f64::from(seq) * segment_s, f64::from(seq + 1) * segment_s)
}

/// A subtitle segment's file name.
pub fn subtitle_segment_name(seq: u32) -> String {
    format!("{seq:05}.vtt")
}

/// The `EXT-X-MEDIA` lines of a master's subtitle group `group`, one per
/// track (the first is the default), with their playlists under `subs/`.
pub fn subtitle_media_lines(group: &str, tracks: &[CaptionTrack]) -> String {
    let mut s = String::new();
    for (i, t) in tracks.iter().enumerate() {
        let default = if i == 0 { "YES" } else { "NO" };
        let label = t.label.replace(['"', '\n', '\r'], "");
        let _ = writeln!(
            s,
            "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"{group}\",NAME=\"{label}\",LANGUAGE=\"{}\",DEFAULT={default},AUTOSELECT=YES,FORCED=NO,URI=\"subs/{}/index.m3u8\"",
            t.language, t.language
        );
    }
    s
}

/// A master playlist with the subtitle group added: its `EXT-X-MEDIA` lines
/// before the first variant, and `SUBTITLES="{group}"` on every variant.
/// The master as it was when there is no track.
pub fn with_subtitles(master: &str, tracks: &[CaptionTrack]) -> String {
    if tracks.is_empty() {
        return master.to_owned();
    }
    const GROUP: &str = "subs";
    let mut out = String::with_capacity(master.len() + 256);
    let mut added = false;
    for line in master.lines() {
        if let Some(attrs) = line.strip_prefix("#EXT-X-STREAM-INF:") {
            if !added {
                out.push_str(&subtitle_media_lines(GROUP, tracks));
                added = true;
            }
            let _ = writeln!(out, "#EXT-X-STREAM-INF:{attrs},SUBTITLES=\"{GROUP}\"");
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<(CaptionFormat, Vec<Cue>), CaptionError> {
        parse_caption(s.as_bytes())
    }

    #[test]
    fn webvtt_and_srt_read_to_the_same_cues() {
        let vtt = "\u{feff}WEBVTT - a title\nKind: captions\n\nNOTE a comment\nacross lines\n\nintro\n00:01.000 --> 00:00:03.500 line:0 align:start\n<v Ann>Hello</v> &amp; <i>welcome</i>\n\n00:00:04.000 --> 00:00:05.000\nSecond <00:00:04.500>line\n";
        let (f, cues) = parse(vtt).unwrap();
        assert_eq!(f, CaptionFormat::Vtt);
        assert_eq!(cues.len(), 2);
        assert_eq!((cues[0].start_ms, cues[0].end_ms, cues[0].settings.as_str()), (1000, 3500, "line:0 align:start"));
        let srt = "1\r\n00:00:01,000 --> 00:00:03,500\r\n<font color=\"red\">Hello</font> &amp; <i>welcome</i>\r\n\r\n2\r\n00:00:04,000 --> 00:00:05,000\r\nSecond\r\nline two\r\n";
        let (f, cues) = parse(srt).unwrap();
        assert_eq!(f, CaptionFormat::Srt);
        assert_eq!(cues[0].text, "Hello &amp; <i>welcome</i>", "SRT's font tags dropped");
        assert_eq!(
            to_webvtt(&cues),
            "WEBVTT\n\n00:00:01.000 --> 00:00:03.500\nHello &amp; <i>welcome</i>\n\n00:00:04.000 --> 00:00:05.000\nSecond\nline two\n\n"
        );
        // What storage keeps reads back to the same cues.
        assert_eq!(parse(&to_webvtt(&cues)).unwrap().1, cues);
    }

    #[test]
    fn faults_are_refused_with_their_line() {
        let cases = [
            ("", "the file is empty"),
            ("hello\n", "line 1: neither WebVTT"),
            ("WEBVTT\n\n00:01.000 -> 00:02.000\nhi\n", "line 3: a cue without a timing line"),
            ("WEBVTT\n\n00:02.000 --> 00:01.000\nhi\n", "line 3: the cue ends (00:01.000) before it starts"),
            (
                "WEBVTT\n\n00:01.000 --> 00:02.000\n<script>alert(1)</script>\n",
                "line 4: <script> is not WebVTT cue markup",
            ),
            (
                "WEBVTT\n\n00:01.000 --> 00:02.000\nok\n\n00:03.000 --> 00:04.000\n<b>x</b> <img src=x>\n",
                "line 7: <img src=x>",
            ),
            ("WEBVTT\n\n00:01.000 --> 00:02.000\nfish & chips\n", "line 4: a bare &"),
            ("WEBVTT\n\n00:01.000 --> 00:02.000\na < b\n", "line 4: a < that opens no tag"),
            ("WEBVTT\n\nSTYLE\n::cue { color: red }\n", "line 3: STYLE blocks are not accepted"),
            ("WEBVTT\n\n00:01.000 --> 00:02.000\n\n", "line 3: a cue without text"),
            ("WEBVTT\n\nNOTE only a note\n", "the file has no cue"),
            ("WEBVTT\n\n00:1.000 --> 00:02.000\nhi\n", "line 3: \"00:1.000\" is not a time"),
            ("WEBVTT\n\n00:00:61.000 --> 00:02:00.000\nhi\n", "line 3: \"00:00:61.000\" is not a time"),
            ("1\n00:00:01.000 --> 00:00:02.000\nhi\n", "line 2: \"00:00:01.000\" is not a time like 00:00:01,000"),
            ("1\n00:00:01,000 --> 00:00:02,000 X1:0\nhi\n", "line 2: unexpected text after the SRT timing"),
            (
                "1\n00:00:01,000 --> 00:00:02,000\nhi\n\nx\n00:00:03,000 --> 00:00:04,000\nyo\n",
                "line 5: an SRT cue starts with its number",
            ),
            ("WEBVTT\n\n00:01.000 --> 25:00:00.000\nhi\n", "line 3: the cue ends after"),
        ];
        for (text, says) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.starts_with(says), "{text:?}: {e}");
        }
        let e = parse_caption(b"WEBVTT\n\n00:01.000 --> 00:02.000\nbad \xff byte\n").unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        let big = vec![b'a'; MAX_CAPTION_BYTES + 1];
        assert!(parse_caption(&big).unwrap_err().to_string().contains("at most 524288"));
    }

    #[test]
    fn language_tags_are_checked_and_spelt_one_way() {
        assert_eq!(language_tag("en"), Ok("en".into()));
        assert_eq!(language_tag("PT-br"), Ok("pt-BR".into()));
        assert_eq!(language_tag("zh-hant-tw"), Ok("zh-Hant-TW".into()));
        assert_eq!(language_tag("es-419"), Ok("es-419".into()));
        for bad in ["", "e", "english", "en_US", "en--us", "en-", "../x", "en-toolongsubtag", "e1"] {
            assert!(language_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn segments_hold_the_cues_they_overlap_on_the_video_s_timeline() {
        let (_, cues) =
            parse("WEBVTT\n\n00:01.000 --> 00:02.000\na\n\n00:03.500 --> 00:04.500\nb\n\n00:09.000 --> 00:10.000\nc\n")
                .unwrap();
        let first = webvtt_segment(&cues, 0.0, 4.0);
        assert!(first.starts_with("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n"), "{first}");
        assert!(first.contains("\na\n") && first.contains("\nb\n") && !first.contains("\nc\n"), "{first}");
        let second = webvtt_segment(&cues, 4.0, 8.0);
        assert!(
            second.contains("00:00:03.500 --> 00:00:04.500\nb\n") && !second.contains("\na\n"),
            "across the cut: {second}"
        );
        assert!(!webvtt_segment(&cues, 8.0, 9.0).contains("\nc\n"), "ends where c starts");
        let playlist = subtitle_playlist(10.0, 4.0);
        assert!(playlist.contains("#EXT-X-TARGETDURATION:4\n"));
        assert_eq!(playlist.matches("#EXTINF:").count(), 3);
        assert!(playlist.contains("#EXTINF:2.000000,\n00002.vtt\n#EXT-X-ENDLIST\n"), "{playlist}");
        assert_eq!(subtitle_segment_window(2, 4.0), (8.0, 12.0));
    }

    #[test]
    fn a_master_gets_its_subtitle_group() {
        let master = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"avc1.640028\"\n720p/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2\n480p/index.m3u8\n";
        assert_eq!(with_subtitles(master, &[]), master);
        let track = |language: &str, label: &str| CaptionTrack {
            language: language.into(),
            label: label.into(),
            cues: 1,
            bytes: 10,
            source_format: CaptionFormat::Vtt,
        };
        let m = with_subtitles(master, &[track("en", "English"), track("fr", "Fran\"çais")]);
        assert!(m.contains("#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"English\",LANGUAGE=\"en\",DEFAULT=YES,AUTOSELECT=YES,FORCED=NO,URI=\"subs/en/index.m3u8\"\n"), "{m}");
        assert!(m.contains("NAME=\"Français\",LANGUAGE=\"fr\",DEFAULT=NO"), "{m}");
        assert_eq!(m.matches(",SUBTITLES=\"subs\"\n").count(), 2, "{m}");
        assert!(m.find("TYPE=SUBTITLES").unwrap() < m.find("#EXT-X-STREAM-INF").unwrap());
    }
}
