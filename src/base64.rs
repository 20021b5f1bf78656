//! base64url without padding: how a token carries its 32-byte MAC in a URL.
//!
//! Spec: RFC 4648 §5 ("Base 64 Encoding with URL and Filename Safe
//! Alphabet") and §3.2 (padding may be left out when the length is known
//! otherwise), <https://www.rfc-editor.org/rfc/rfc4648#section-5>.
//!
//! ```text
//! value 0..25 → A..Z, 26..51 → a..z, 52..61 → 0..9, 62 → '-', 63 → '_'
//! each 3 bytes (24 bits) → 4 characters of 6 bits; a final 1 or 2 bytes
//! → 2 or 3 characters, the unused low bits zero (§3.5)
//! ```
//!
//! Decoding is strict, as §3.3 and §3.5 allow: any character outside the
//! alphabet (padding `=` included), a length that no byte string encodes to
//! (4n + 1), or non-zero unused bits is an error, so every byte string has
//! exactly one accepted encoding. Pure.

/// RFC 4648 §5, Table 2: the URL- and filename-safe alphabet.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Why a text is not base64url without padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Occurs when a character is not in the §5 alphabet (`=`, `+`, `/`,
    /// whitespace included).
    InvalidCharacter,
    /// Occurs when the length is 4n + 1: one character holds only 6 bits,
    /// not a whole byte.
    InvalidLength,
    /// Occurs when the unused low bits of the last character are not zero
    /// (§3.5), so the text is not the one encoding of its bytes.
    NonCanonical,
}

/// Encodes `bytes` as base64url without padding.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        // Up to 24 bits, big-endian, missing bytes as zero.
        let bits = group.iter().enumerate().fold(0u32, |bits, (index, &byte)| {
            bits | u32::from(byte) << (16 - 8 * index)
        });
        // 1 byte → 2 characters, 2 → 3, 3 → 4 (no padding, §3.2).
        for index in 0..=group.len() {
            let value = (bits >> (18 - 6 * index)) & 0x3f;
            out.push(char::from(ALPHABET[value as usize]));
        }
    }
    out
}

/// Decodes base64url without padding, strictly (see the module doc).
pub fn decode(text: &str) -> Result<Vec<u8>, DecodeError> {
    let text = text.as_bytes();
    if text.len() % 4 == 1 {
        return Err(DecodeError::InvalidLength);
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    for group in text.chunks(4) {
        let mut bits = 0u32;
        for (index, &character) in group.iter().enumerate() {
            let value = sextet(character).ok_or(DecodeError::InvalidCharacter)?;
            bits |= u32::from(value) << (18 - 6 * index);
        }
        // 2 characters → 1 byte, 3 → 2, 4 → 3; the rest are unused bits.
        let byte_count = group.len() - 1;
        let unused_mask = (1u32 << (24 - 8 * byte_count)) - 1;
        if bits & unused_mask != 0 {
            return Err(DecodeError::NonCanonical);
        }
        for index in 0..byte_count {
            out.push((bits >> (16 - 8 * index)) as u8);
        }
    }
    Ok(out)
}

/// The 6-bit value of one alphabet character, or `None`.
fn sextet(character: u8) -> Option<u8> {
    match character {
        b'A'..=b'Z' => Some(character - b'A'),
        b'a'..=b'z' => Some(character - b'a' + 26),
        b'0'..=b'9' => Some(character - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes `bytes`, compares, and decodes the text back.
    #[track_caller]
    fn check(bytes: &[u8], text: &str) {
        assert_eq!(encode(bytes), text, "encode {bytes:?}");
        assert_eq!(decode(text), Ok(bytes.to_vec()), "decode {text:?}");
    }

    #[track_caller]
    fn check_invalid(text: &str, expected: DecodeError) {
        assert_eq!(decode(text), Err(expected), "decode {text:?}");
    }

    /// RFC 4648 §10's vectors, with the padding removed (§3.2); they use no
    /// character where the §4 and §5 alphabets differ.
    #[test]
    fn rfc4648_section_10_vectors() {
        check(b"", "");
        check(b"f", "Zg");
        check(b"fo", "Zm8");
        check(b"foo", "Zm9v");
        check(b"foob", "Zm9vYg");
        check(b"fooba", "Zm9vYmE");
        check(b"foobar", "Zm9vYmFy");
    }

    /// Values 62 and 63 are `-` and `_` in the §5 alphabet (`+` and `/` in §4).
    #[test]
    fn url_safe_characters() {
        check(&[0xfb, 0xff], "-_8");
        check(&[0xff, 0xff, 0xff], "____");
        check(&[0xf8], "-A");
        check(&[0x00, 0x00, 0x00], "AAAA");
    }

    /// Every byte value survives a round trip.
    #[test]
    fn round_trip_every_byte() {
        let bytes: Vec<u8> = (0..=255).collect();
        for length in 0..bytes.len() {
            let slice = &bytes[length..];
            assert_eq!(decode(&encode(slice)), Ok(slice.to_vec()));
        }
    }

    /// Padding, the §4 alphabet, whitespace, impossible lengths and non-zero
    /// unused bits are refused.
    #[test]
    fn strict_decoding() {
        check_invalid("Zg==", DecodeError::InvalidCharacter);
        check_invalid("Zm8=", DecodeError::InvalidCharacter);
        check_invalid("+_8", DecodeError::InvalidCharacter);
        check_invalid("-/8", DecodeError::InvalidCharacter);
        check_invalid("Zm 9", DecodeError::InvalidCharacter);
        check_invalid("Zm9\n", DecodeError::InvalidCharacter);
        check_invalid("é", DecodeError::InvalidCharacter);
        check_invalid("Z", DecodeError::InvalidLength);
        check_invalid("Zm9vY", DecodeError::InvalidLength);
        check_invalid("Zh", DecodeError::NonCanonical);
        check_invalid("Zm9", DecodeError::NonCanonical);
    }
}
