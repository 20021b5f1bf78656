//! HMAC-SHA256: a keyed hash, so only the holder of the secret can make a
//! valid subscriber token.
//!
//! Spec: RFC 2104 §2, <https://www.rfc-editor.org/rfc/rfc2104#section-2>,
//! with SHA-256 as `H` (block size `B` = 64 bytes, output `L` = 32 bytes);
//! test vectors from RFC 4231 §4, <https://www.rfc-editor.org/rfc/rfc4231#section-4>.
//!
//! ```text
//! HMAC(K, text) = H(K XOR opad, H(K XOR ipad, text))
//! ipad = the byte 0x36 repeated B times
//! opad = the byte 0x5C repeated B times
//! ```
//!
//! Pure: bytes in, bytes out.

use crate::sha256::{self, BLOCK_BYTES, DIGEST_BYTES};

/// RFC 2104 §2: the inner padding byte.
const IPAD: u8 = 0x36;

/// RFC 2104 §2: the outer padding byte.
const OPAD: u8 = 0x5c;

/// HMAC-SHA256 of `message` under `key` (RFC 2104 §2, steps 1–7).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; DIGEST_BYTES] {
    // "Applications that use keys longer than B bytes will first hash the
    // key using H and then use the resultant L byte string as the actual key."
    let hashed_key;
    let key = if key.len() > BLOCK_BYTES {
        hashed_key = sha256::digest(key);
        &hashed_key[..]
    } else {
        key
    };
    // Step 1: append zeros to the end of K to create a B byte string.
    let mut padded_key = [0u8; BLOCK_BYTES];
    padded_key[..key.len()].copy_from_slice(key);
    // Step 2: XOR the B byte string computed in step 1 with ipad.
    // Step 3: append the stream of data 'text' to the B byte string from step 2.
    let mut inner = Vec::with_capacity(BLOCK_BYTES + message.len());
    inner.extend(padded_key.iter().map(|byte| byte ^ IPAD));
    inner.extend_from_slice(message);
    // Step 4: apply H to the stream generated in step 3.
    let inner_digest = sha256::digest(&inner);
    // Step 5: XOR the B byte string computed in step 1 with opad.
    // Step 6: append the H result from step 4 to the B byte string from step 5.
    let mut outer = Vec::with_capacity(BLOCK_BYTES + DIGEST_BYTES);
    outer.extend(padded_key.iter().map(|byte| byte ^ OPAD));
    outer.extend_from_slice(&inner_digest);
    // Step 7: apply H to the stream generated in step 6 and output the result.
    sha256::digest(&outer)
}

/// Compares without an early exit, so the time taken does not tell an
/// attacker how many leading bytes of a MAC were right. (The length still
/// shows; a MAC's length is public anyway.)
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sha256::hex;

    /// Checks the first `expected_hex.len() / 2` bytes of the MAC, so RFC
    /// 4231 case 5 (truncated to 128 bits) uses the same helper.
    #[track_caller]
    fn check(key: &[u8], message: &[u8], expected_hex: &str) {
        let mac = hex(&hmac_sha256(key, message));
        assert_eq!(&mac[..expected_hex.len()], expected_hex);
    }

    /// RFC 4231 §4.2, test case 1: a 20-byte key.
    #[test]
    fn rfc4231_case_1() {
        check(
            &[0x0b; 20],
            b"Hi There",
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        );
    }

    /// RFC 4231 §4.3, test case 2: a key shorter than the output.
    #[test]
    fn rfc4231_case_2() {
        check(
            b"Jefe",
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        );
    }

    /// RFC 4231 §4.4, test case 3: key and data of repeated bytes.
    #[test]
    fn rfc4231_case_3() {
        check(
            &[0xaa; 20],
            &[0xdd; 50],
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
        );
    }

    /// RFC 4231 §4.5, test case 4: a 25-byte key 0x01..0x19.
    #[test]
    fn rfc4231_case_4() {
        let key: Vec<u8> = (1..=25).collect();
        check(
            &key,
            &[0xcd; 50],
            "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
        );
    }

    /// RFC 4231 §4.6, test case 5: output truncated to 128 bits.
    #[test]
    fn rfc4231_case_5_truncated() {
        check(
            &[0x0c; 20],
            b"Test With Truncation",
            "a3b6167473100ee06e0c796c2955552b",
        );
    }

    /// RFC 4231 §4.7, test case 6: a key longer than the block is hashed first.
    #[test]
    fn rfc4231_case_6() {
        check(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        );
    }

    /// RFC 4231 §4.8, test case 7: long key and data longer than a block.
    #[test]
    fn rfc4231_case_7() {
        check(
            &[0xaa; 131],
            b"This is a test using a larger than block-size key and a larger than \
              block-size data. The key needs to be hashed before being used by the \
              HMAC algorithm.",
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
        );
    }

    /// Equal inputs compare equal; any difference, or another length, does not.
    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
