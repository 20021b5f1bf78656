//! SHA-256, written out from the standard, for signing subscriber tokens.
//!
//! Spec: FIPS 180-4, "Secure Hash Standard", §4.1.2 (functions), §4.2.2
//! (constants), §5.1.1 (padding), §5.3.3 (initial hash value) and §6.2
//! (the computation), <https://nvlpubs.nist.gov/nistpubs/FIPS/NIST.FIPS.180-4.pdf>.
//! Read [`compress`] next to §6.2.2: one spec step per line.
//!
//! Pure: bytes in, 32 bytes out. Simplification: the whole message is in
//! memory (we only hash a userId and a number); a production library would
//! also offer an incremental `update`/`finalize` interface.

/// Size of a digest in bytes (256 bits).
pub const DIGEST_BYTES: usize = 32;

/// Size of a message block in bytes (512 bits); HMAC needs it too.
pub const BLOCK_BYTES: usize = 64;

/// §4.2.2: the first 32 bits of the fractional parts of the cube roots of
/// the first sixty-four primes.
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// §5.3.3: the initial hash value H(0), the first 32 bits of the fractional
/// parts of the square roots of the first eight primes.
const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// The SHA-256 digest of `message` (§6.2).
pub fn digest(message: &[u8]) -> [u8; DIGEST_BYTES] {
    // §6.2.1 step 1: set the initial hash value.
    let mut hash = H0;
    // §5.2.1: parse the padded message into 512-bit blocks, and
    // §6.2.2: process each block in turn.
    for block in padded(message).chunks_exact(BLOCK_BYTES) {
        compress(&mut hash, block);
    }
    // §6.2.2, after the last block: H(N) is the digest, words big-endian.
    let mut out = [0u8; DIGEST_BYTES];
    for (bytes, word) in out.chunks_exact_mut(4).zip(hash) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// §5.1.1: append the bit `1`, then `k` zero bits with `l + 1 + k ≡ 448
/// (mod 512)`, then the message length `l` in bits as a 64-bit big-endian
/// number. The result is a whole number of 64-byte blocks.
fn padded(message: &[u8]) -> Vec<u8> {
    let length_in_bits = (message.len() as u64).wrapping_mul(8);
    let mut out = Vec::with_capacity(message.len() + 2 * BLOCK_BYTES);
    out.extend_from_slice(message);
    out.push(0x80);
    while out.len() % BLOCK_BYTES != BLOCK_BYTES - 8 {
        out.push(0);
    }
    out.extend_from_slice(&length_in_bits.to_be_bytes());
    out
}

/// §6.2.2 steps 1–4 for one 512-bit block `M(i)`, updating `H(i-1)` to `H(i)`.
fn compress(hash: &mut [u32; 8], block: &[u8]) {
    // Step 1: prepare the message schedule W0..W63.
    let mut w = [0u32; 64];
    for (t, bytes) in block.chunks_exact(4).enumerate() {
        w[t] = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    }
    for t in 16..64 {
        w[t] = small_sigma1(w[t - 2])
            .wrapping_add(w[t - 7])
            .wrapping_add(small_sigma0(w[t - 15]))
            .wrapping_add(w[t - 16]);
    }
    // Step 2: initialise the eight working variables with H(i-1).
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *hash;
    // Step 3: sixty-four rounds.
    for t in 0..64 {
        let t1 = h
            .wrapping_add(big_sigma1(e))
            .wrapping_add(ch(e, f, g))
            .wrapping_add(K[t])
            .wrapping_add(w[t]);
        let t2 = big_sigma0(a).wrapping_add(maj(a, b, c));
        h = g;
        g = f;
        f = e;
        e = d.wrapping_add(t1);
        d = c;
        c = b;
        b = a;
        a = t1.wrapping_add(t2);
    }
    // Step 4: the intermediate hash value H(i) = working variables + H(i-1).
    for (word, variable) in hash.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *word = word.wrapping_add(variable);
    }
}

/// §4.1.2 (4.2): `Ch(x, y, z) = (x ∧ y) ⊕ (¬x ∧ z)`.
fn ch(x: u32, y: u32, z: u32) -> u32 {
    (x & y) ^ (!x & z)
}

/// §4.1.2 (4.3): `Maj(x, y, z) = (x ∧ y) ⊕ (x ∧ z) ⊕ (y ∧ z)`.
fn maj(x: u32, y: u32, z: u32) -> u32 {
    (x & y) ^ (x & z) ^ (y & z)
}

/// §4.1.2 (4.4): `Σ0(x) = ROTR²(x) ⊕ ROTR¹³(x) ⊕ ROTR²²(x)`.
fn big_sigma0(x: u32) -> u32 {
    x.rotate_right(2) ^ x.rotate_right(13) ^ x.rotate_right(22)
}

/// §4.1.2 (4.5): `Σ1(x) = ROTR⁶(x) ⊕ ROTR¹¹(x) ⊕ ROTR²⁵(x)`.
fn big_sigma1(x: u32) -> u32 {
    x.rotate_right(6) ^ x.rotate_right(11) ^ x.rotate_right(25)
}

/// §4.1.2 (4.6): `σ0(x) = ROTR⁷(x) ⊕ ROTR¹⁸(x) ⊕ SHR³(x)`.
fn small_sigma0(x: u32) -> u32 {
    x.rotate_right(7) ^ x.rotate_right(18) ^ (x >> 3)
}

/// §4.1.2 (4.7): `σ1(x) = ROTR¹⁷(x) ⊕ ROTR¹⁹(x) ⊕ SHR¹⁰(x)`.
fn small_sigma1(x: u32) -> u32 {
    x.rotate_right(17) ^ x.rotate_right(19) ^ (x >> 10)
}

/// Lowercase hex of `bytes`, for tests and for reading digests.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(message: &[u8], expected_hex: &str) {
        assert_eq!(hex(&digest(message)), expected_hex);
    }

    /// FIPS 180-4 example "SHA256.pdf", one block: "abc".
    #[test]
    fn one_block_message_abc() {
        check(
            b"abc",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        );
    }

    /// FIPS 180-4 example, two blocks: the 448-bit message.
    #[test]
    fn two_block_message_448_bits() {
        check(
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        );
    }

    /// FIPS 180-4 / NIST long message: one million `a`s.
    #[test]
    fn one_million_a() {
        check(
            &vec![b'a'; 1_000_000],
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
        );
    }

    /// The empty message is one block of padding alone.
    #[test]
    fn empty_message() {
        check(
            b"",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        );
    }

    /// Lengths around the padding boundary (55, 56, 63, 64 bytes) need one or
    /// two extra blocks; checked against python3 `hashlib.sha256`.
    #[test]
    fn padding_boundaries() {
        check(
            &[b'a'; 55],
            "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318",
        );
        check(
            &[b'a'; 56],
            "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a",
        );
        check(
            &[b'a'; 63],
            "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34",
        );
        check(
            &[b'a'; 64],
            "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb",
        );
    }

    /// The padded length is always a multiple of the block size.
    #[test]
    fn padding_fills_whole_blocks() {
        for length in 0..200 {
            assert_eq!(padded(&vec![0; length]).len() % BLOCK_BYTES, 0, "{length}");
        }
    }
}
