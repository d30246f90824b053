//! Encrypted HLS segments: one random AES-128 key per attempt, and each
//! media segment encrypted whole with AES-128-CBC and PKCS#7 padding, its IV
//! the segment's media sequence number (the rules are media-core's
//! [`media_core::video::encryption`]). The publisher stores the key before
//! any segment and encrypts each media segment just before its upload; init
//! segments stay clear.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use media_core::video::encryption::{segment_iv, KEY_LEN};

use crate::error::JobError;

type Encryptor = cbc::Encryptor<aes::Aes128>;
type Decryptor = cbc::Decryptor<aes::Aes128>;

/// One attempt's segment key.
#[derive(Clone)]
pub struct SegmentCipher {
    key: [u8; KEY_LEN],
}

impl std::fmt::Debug for SegmentCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself, in logs or panics.
        f.write_str("SegmentCipher(..)")
    }
}

impl SegmentCipher {
    /// A fresh key from the operating system's random source.
    pub fn random() -> Result<Self, JobError> {
        let mut key = [0u8; KEY_LEN];
        getrandom::getrandom(&mut key)
            .map_err(|e| JobError::retryable(format!("no random bytes for the segment key: {e}")))?;
        Ok(Self { key })
    }

    /// The cipher of a known key (the key object's bytes).
    pub fn from_key(key: [u8; KEY_LEN]) -> Self {
        Self { key }
    }

    /// The key's bytes: what the key object holds and players fetch.
    pub fn key(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    /// Segment `sequence` (its media sequence number), encrypted.
    pub fn encrypt(&self, sequence: u32, clear: &[u8]) -> Vec<u8> {
        let iv = segment_iv(u64::from(sequence));
        Encryptor::new(&self.key.into(), &iv.into()).encrypt_padded_vec::<Pkcs7>(clear)
    }

    /// Segment `sequence` decrypted, or `None` when it is not a whole
    /// number of blocks or its padding is wrong (another key, another IV).
    pub fn decrypt(&self, sequence: u32, encrypted: &[u8]) -> Option<Vec<u8>> {
        let iv = segment_iv(u64::from(sequence));
        Decryptor::new(&self.key.into(), &iv.into()).decrypt_padded_vec::<Pkcs7>(encrypted).ok()
    }
}

#[cfg(test)]
mod tests {
    use media_core::video::encryption::encrypted_len;

    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// NIST SP 800-38A's AES-128 vectors: with sequence 0 (an all-zero
    /// IV) the first CBC block is the block cipher of P1 (F.1.1); with
    /// sequence 1 it is the cipher of P1 ^ 0x00..01.
    #[test]
    fn aes_128_cbc_matches_the_nist_vectors() {
        let key: [u8; 16] = hex("2b7e151628aed2a6abf7158809cf4f3c").try_into().unwrap();
        let c = SegmentCipher::from_key(key);
        let p1 = hex("6bc1bee22e409f96e93d7e117393172a");
        let out = c.encrypt(0, &p1);
        assert_eq!(out.len(), 32, "one block and a whole block of padding");
        assert_eq!(out[..16], hex("3ad77bb40d7a3660a89ecaf32466ef97")[..]);
        // F.2.1's first block: IV 00..0f, P1 -> 7649abac...; the same block
        // cipher input (P1 ^ IV) reached from sequence 1's IV (00..01).
        let iv = hex("000102030405060708090a0b0c0d0e0f");
        let mut input: Vec<u8> = p1.iter().zip(&iv).map(|(p, v)| p ^ v).collect();
        input[15] ^= 1;
        assert_eq!(c.encrypt(1, &input)[..16], hex("7649abac8119b246cee98e9b12e9197d")[..]);
    }

    #[test]
    fn segments_round_trip_with_their_own_sequence_number_only() {
        let c = SegmentCipher::random().unwrap();
        for len in [0usize, 1, 15, 16, 17, 4096, 100_003] {
            let clear: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let enc = c.encrypt(7, &clear);
            assert_eq!(enc.len(), encrypted_len(len));
            assert_eq!(c.decrypt(7, &enc).as_deref(), Some(&clear[..]), "{len}");
            if len >= 16 {
                assert_ne!(enc[..16], clear[..16]);
                // Another sequence number (IV) garbles the first block.
                assert_ne!(c.decrypt(8, &enc).as_deref().map(|d| &d[..16]), Some(&clear[..16]));
            }
        }
        // Two attempts never share a key.
        assert_ne!(SegmentCipher::random().unwrap().key(), c.key());
        assert_eq!(format!("{c:?}"), "SegmentCipher(..)");
    }

    #[test]
    fn the_same_segment_differs_under_another_sequence_number() {
        let c = SegmentCipher::from_key([0x42; 16]);
        let clear = vec![0u8; 64];
        assert_ne!(c.encrypt(0, &clear), c.encrypt(1, &clear));
    }
}
