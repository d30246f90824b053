//! Encrypted HLS (RFC 8216 `METHOD=AES-128`): the rules the transcoder
//! writes by and players decrypt by.
//!
//! - Each media segment is encrypted whole with AES-128-CBC and PKCS#7
//!   padding (RFC 8216 §4.3.2.4); the init segment (`#EXT-X-MAP`) stays in
//!   the clear.
//! - One random 16-byte key per attempt, stored at
//!   [`ObjectKey::HlsKey`](crate::keys::ObjectKey::HlsKey) (outside `hls/`,
//!   so no public route serves it) and written before any segment.
//! - No `IV` attribute: a player then uses the segment's media sequence
//!   number as a 16-byte big-endian integer (RFC 8216 §5.2). Rung playlists
//!   start at `#EXT-X-MEDIA-SEQUENCE:0` and segment `n` is `{n:05}.m4s`, so
//!   a segment's sequence number in its file name is its IV.
//! - The `#EXT-X-KEY` tag comes right after `#EXT-X-MAP`: a key applies to
//!   what follows it, so the init segment is read in the clear and every
//!   media segment with the key. Its URI `../key` is relative to the rung
//!   playlist (`{base}/{rung}/index.m3u8`), so from
//!   `/hls/t/{token}/720p/index.m3u8` it resolves to `/hls/t/{token}/key`,
//!   the token-guarded key route.

/// Bytes in an AES-128 key (and in an IV).
pub const KEY_LEN: usize = 16;

/// Bytes in one cipher block; an encrypted segment is a whole number of them.
pub const BLOCK_LEN: usize = 16;

/// The key's URI as a rung playlist names it.
pub const KEY_URI: &str = "../key";

/// The IV of the segment with media sequence number `sequence`: the
/// number as a 128-bit big-endian integer (RFC 8216 §5.2, no `IV` attribute).
pub fn segment_iv(sequence: u64) -> [u8; KEY_LEN] {
    u128::from(sequence).to_be_bytes()
}

/// The `#EXT-X-KEY` tag (with its newline) for segments encrypted with the key at `uri`.
pub fn key_tag(uri: &str) -> String {
    format!("#EXT-X-KEY:METHOD=AES-128,URI=\"{uri}\"\n")
}

/// The size of a segment of `clear_len` bytes once encrypted: PKCS#7
/// always adds 1-16 bytes, up to the next whole block.
pub fn encrypted_len(clear_len: usize) -> usize {
    (clear_len / BLOCK_LEN + 1) * BLOCK_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_iv_is_the_media_sequence_number_big_endian() {
        assert_eq!(segment_iv(0), [0; 16]);
        let mut one = [0; 16];
        one[15] = 1;
        assert_eq!(segment_iv(1), one);
        let iv = segment_iv(0x0102_0304);
        assert_eq!(iv[..12], [0; 12]);
        assert_eq!(iv[12..], [1, 2, 3, 4]);
        assert_eq!(u128::from_be_bytes(segment_iv(u64::MAX)), u128::from(u64::MAX));
    }

    #[test]
    fn the_key_tag_names_aes_128_and_the_uri_without_an_iv() {
        assert_eq!(key_tag(KEY_URI), "#EXT-X-KEY:METHOD=AES-128,URI=\"../key\"\n");
        assert!(!key_tag(KEY_URI).contains("IV="), "the IV comes from the sequence number");
    }

    #[test]
    fn padding_always_adds_between_one_and_sixteen_bytes() {
        assert_eq!(encrypted_len(0), 16);
        assert_eq!(encrypted_len(15), 16);
        assert_eq!(encrypted_len(16), 32);
        assert_eq!(encrypted_len(1_000_001), 1_000_016);
    }

    #[test]
    fn the_key_uri_resolves_to_the_key_route_from_a_rung_playlist() {
        // RFC 3986 resolution, as players do it.
        let base = url::Url::parse("https://v.example/hls/t/eyJ.x.y/720p/index.m3u8").unwrap();
        assert_eq!(base.join(KEY_URI).unwrap().as_str(), "https://v.example/hls/t/eyJ.x.y/key");
        // And a public (unsigned) path could only reach a name outside the output.
        let public = url::Url::parse("https://v.example/hls/app/vid/out1/720p/index.m3u8").unwrap();
        assert_eq!(public.join(KEY_URI).unwrap().path(), "/hls/app/vid/out1/key");
    }
}
