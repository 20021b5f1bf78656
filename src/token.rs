//! Subscriber tokens: who may open `GET /sse/{userId}` when the server has
//! a subscribe secret.
//!
//! ```text
//! token   = EXPIRES "." MAC
//! EXPIRES = 1*20DIGIT            ; Unix seconds, decimal, no leading zero
//! MAC     = 43base64url          ; RFC 4648 §5, no padding
//!         = base64url(HMAC-SHA256(secret, userId_utf8 "\n" EXPIRES))
//! ```
//!
//! `userId` is the decoded id (as in the frames), `EXPIRES` the exact digits
//! of the token. A token is valid when its MAC matches (compared in constant
//! time), `EXPIRES` is in the future, and it is not further in the future
//! than the longest lifetime we mint ([`MAX_TOKEN_TTL`] plus
//! [`TOKEN_CLOCK_SKEW`]). Checking needs nothing but the secret and a clock,
//! so every instance of a cluster accepts every other's tokens.
//!
//! Spec: RFC 2104 (HMAC, in [`crate::hmac`]), RFC 4648 §5 (in
//! [`crate::base64`]). Pure: the time is a parameter, no clock is read here.
//!
//! Simplification: a token cannot be revoked before it expires; a
//! production system would keep TTLs short (as here) or add a deny list.

use crate::base64::{self, DecodeError};
use crate::hmac::{constant_time_eq, hmac_sha256};
use std::fmt;

use crate::limits::{MAX_TOKEN_BYTES, MAX_TOKEN_TTL, MIN_SUBSCRIBE_SECRET_BYTES, TOKEN_CLOCK_SKEW};
use crate::sha256::DIGEST_BYTES;

/// The subscribe secret: at least [`MIN_SUBSCRIBE_SECRET_BYTES`] bytes,
/// never printed (its `Debug` shows only the length), so a config dumped
/// in a test failure or a log cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// The secret, or `None` when it is shorter than
    /// [`MIN_SUBSCRIBE_SECRET_BYTES`].
    pub fn new(bytes: Vec<u8>) -> Option<Secret> {
        (bytes.len() >= MIN_SUBSCRIBE_SECRET_BYTES).then_some(Secret(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(out, "Secret({} bytes, redacted)", self.0.len())
    }
}

/// Why a token was refused. The client is never told which (every refusal
/// is the same `401`); [`TokenError::reason`] is for the operator's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Occurs when the token is the empty string (`?token=`).
    Empty,
    /// Occurs when the token is longer than [`MAX_TOKEN_BYTES`].
    TooLong,
    /// Occurs when there is no `.` between `EXPIRES` and `MAC`.
    NoDot,
    /// Occurs when there is more than one `.`.
    TooManyDots,
    /// Occurs when `EXPIRES` is empty, holds anything but ASCII digits (a
    /// sign, a space, a fraction), or starts with `0`.
    BadExpires,
    /// Occurs when `EXPIRES` is digits but over `u64::MAX`.
    ExpiresOverflow,
    /// Occurs when `MAC` is not strict base64url without padding.
    BadMacEncoding(DecodeError),
    /// Occurs when `MAC` decodes to anything but 32 bytes.
    WrongMacLength,
    /// Occurs when the MAC does not match: another user's token, another
    /// secret, or an altered `EXPIRES`.
    WrongMac,
    /// Occurs when `EXPIRES` is now or in the past.
    Expired,
    /// Occurs when `EXPIRES` is further ahead than any token we mint.
    TooFarAhead,
}

impl TokenError {
    /// A short lowercase reason for the log line.
    pub fn reason(self) -> &'static str {
        match self {
            TokenError::Empty => "empty token",
            TokenError::TooLong => "token too long",
            TokenError::NoDot => "token has no dot",
            TokenError::TooManyDots => "token has more than one dot",
            TokenError::BadExpires => "token expiry is not a decimal number",
            TokenError::ExpiresOverflow => "token expiry out of range",
            TokenError::BadMacEncoding(_) => "token mac is not base64url",
            TokenError::WrongMacLength => "token mac has the wrong length",
            TokenError::WrongMac => "token mac does not match (other user or secret)",
            TokenError::Expired => "token expired",
            TokenError::TooFarAhead => "token expires too far ahead",
        }
    }
}

/// A token whose shape is right; its MAC is not checked yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedToken<'a> {
    /// The `EXPIRES` digits exactly as sent: the MAC covers these.
    pub expires_text: &'a str,
    /// `EXPIRES` as a number of Unix seconds.
    pub expires: u64,
    /// The decoded MAC.
    pub mac: [u8; DIGEST_BYTES],
}

/// Makes the token for `user_id` that expires at `expires` (Unix seconds).
pub fn mint(secret: &[u8], user_id: &str, expires: u64) -> String {
    let expires_text = expires.to_string();
    let mac = compute_mac(secret, user_id, &expires_text);
    format!("{expires_text}.{}", base64::encode(&mac))
}

/// Checks `token` for `user_id` at time `now` (Unix seconds); returns its
/// expiry. The MAC is checked before the expiry, so a forged token is
/// logged as forged even when it is also expired.
pub fn verify(secret: &[u8], user_id: &str, token: &str, now: u64) -> Result<u64, TokenError> {
    let parsed = parse(token)?;
    let expected = compute_mac(secret, user_id, parsed.expires_text);
    if !constant_time_eq(&expected, &parsed.mac) {
        return Err(TokenError::WrongMac);
    }
    if parsed.expires <= now {
        return Err(TokenError::Expired);
    }
    let latest = now
        .saturating_add(MAX_TOKEN_TTL.as_secs())
        .saturating_add(TOKEN_CLOCK_SKEW.as_secs());
    if parsed.expires > latest {
        return Err(TokenError::TooFarAhead);
    }
    Ok(parsed.expires)
}

/// Splits and decodes a token without checking its MAC.
pub fn parse(token: &str) -> Result<ParsedToken<'_>, TokenError> {
    if token.is_empty() {
        return Err(TokenError::Empty);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLong);
    }
    let (expires_text, mac_text) = token.split_once('.').ok_or(TokenError::NoDot)?;
    if mac_text.contains('.') {
        return Err(TokenError::TooManyDots);
    }
    let digits_only = !expires_text.is_empty() && expires_text.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || expires_text.starts_with('0') {
        return Err(TokenError::BadExpires);
    }
    let expires = expires_text
        .parse()
        .map_err(|_| TokenError::ExpiresOverflow)?;
    let mac = base64::decode(mac_text).map_err(TokenError::BadMacEncoding)?;
    let mac = mac.try_into().map_err(|_| TokenError::WrongMacLength)?;
    Ok(ParsedToken {
        expires_text,
        expires,
        mac,
    })
}

/// `HMAC-SHA256(secret, userId_utf8 "\n" EXPIRES)`. The line break cannot
/// occur in a userId (route.rs refuses control characters), so no two
/// (userId, EXPIRES) pairs sign the same bytes.
fn compute_mac(secret: &[u8], user_id: &str, expires_text: &str) -> [u8; DIGEST_BYTES] {
    let mut message = Vec::with_capacity(user_id.len() + 1 + expires_text.len());
    message.extend_from_slice(user_id.as_bytes());
    message.push(b'\n');
    message.extend_from_slice(expires_text.as_bytes());
    hmac_sha256(secret, &message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    /// Tokens computed with python3's `hmac`, `hashlib` and `base64`:
    /// `f"{exp}." + urlsafe_b64encode(hmac.new(secret, f"{user}\n{exp}".encode(),
    /// sha256).digest()).rstrip(b"=").decode()`.
    const PYTHON_VECTORS: &[(&[u8], &str, u64, &str)] = &[
        (
            SECRET,
            "alice",
            1700000000,
            "1700000000.BKulQHZ1mfIStLGNu_S7orEIQ89YWuwqUS060L54auM",
        ),
        (
            SECRET,
            "bob",
            1700000000,
            "1700000000.tMmhn3oQbwGKaxRxMoCeNYkmHDbKJAaf5o6oUkOCggM",
        ),
        (
            SECRET,
            "élève",
            4102444800,
            "4102444800.TxqfU4bioeQu1rXBuxfBpEpCcTi8-Hx2VsDDLhrVaX4",
        ),
        (
            &[b'k'; 100],
            "a\"b c/d",
            1,
            "1.prSaq5DLSCKtWcDnwfWDtXMjfTLMft-j9hv3gMbt2Y0",
        ),
        (
            SECRET,
            "alice",
            u64::MAX,
            "18446744073709551615.7VsK-zL94BCB2EI_lmgmyiC7paNtZrx2DGm9JTgK2Bg",
        ),
    ];

    /// A secret is at least 32 bytes, and its `Debug` hides it.
    #[test]
    fn secrets_are_long_and_not_printed() {
        assert_eq!(Secret::new(vec![b'x'; 31]), None);
        let secret = Secret::new(SECRET.to_vec()).expect("32 bytes");
        assert_eq!(secret.as_bytes(), SECRET);
        assert_eq!(format!("{secret:?}"), "Secret(32 bytes, redacted)");
    }

    #[track_caller]
    fn check(token: &str, now: u64, expected: Result<u64, TokenError>) {
        assert_eq!(verify(SECRET, "alice", token, now), expected, "{token:?}");
    }

    /// Our tokens are byte for byte the ones Python computes.
    #[test]
    fn mint_matches_python() {
        for &(secret, user_id, expires, expected) in PYTHON_VECTORS {
            assert_eq!(mint(secret, user_id, expires), expected, "{user_id:?}");
        }
    }

    /// Python's tokens verify, each just before its expiry.
    #[test]
    fn python_tokens_verify() {
        for &(secret, user_id, expires, token) in PYTHON_VECTORS {
            let now = expires - 1;
            assert_eq!(verify(secret, user_id, token, now), Ok(expires), "{token}");
        }
    }

    /// A token is valid strictly before its expiry, and not too far ahead.
    #[test]
    fn expiry_window() {
        let token = "1700000000.BKulQHZ1mfIStLGNu_S7orEIQ89YWuwqUS060L54auM";
        check(token, 1699999999, Ok(1700000000));
        check(token, 1700000000, Err(TokenError::Expired));
        check(token, 1800000000, Err(TokenError::Expired));
        let earliest = 1700000000 - MAX_TOKEN_TTL.as_secs() - TOKEN_CLOCK_SKEW.as_secs();
        check(token, earliest, Ok(1700000000));
        check(token, earliest - 1, Err(TokenError::TooFarAhead));
        let forever = "18446744073709551615.7VsK-zL94BCB2EI_lmgmyiC7paNtZrx2DGm9JTgK2Bg";
        check(forever, 1700000000, Err(TokenError::TooFarAhead));
    }

    /// A token is bound to its user and to the secret.
    #[test]
    fn wrong_user_or_secret_is_refused() {
        let bob = "1700000000.tMmhn3oQbwGKaxRxMoCeNYkmHDbKJAaf5o6oUkOCggM";
        check(bob, 1699999999, Err(TokenError::WrongMac));
        let other_secret = [b'x'; 32];
        let token = mint(&other_secret, "alice", 1700000000);
        check(&token, 1699999999, Err(TokenError::WrongMac));
        // An expired forgery is reported as a forgery.
        check(&token, 1800000000, Err(TokenError::WrongMac));
    }

    /// Hostile tokens: every malformation has its own reason, and none panics.
    #[test]
    fn hostile_tokens() {
        let now = 1699999999;
        let mac = "BKulQHZ1mfIStLGNu_S7orEIQ89YWuwqUS060L54auM";
        let bad_mac = |error| Err(TokenError::BadMacEncoding(error));
        check("", now, Err(TokenError::Empty));
        check("1700000000", now, Err(TokenError::NoDot));
        check(mac, now, Err(TokenError::NoDot));
        check(
            &format!("1700000000.{mac}."),
            now,
            Err(TokenError::TooManyDots),
        );
        check(&format!("1.7.{mac}"), now, Err(TokenError::TooManyDots));
        check("...", now, Err(TokenError::TooManyDots));
        check(&format!(".{mac}"), now, Err(TokenError::BadExpires));
        check(
            &format!("+1700000000.{mac}"),
            now,
            Err(TokenError::BadExpires),
        );
        check(&format!("-1.{mac}"), now, Err(TokenError::BadExpires));
        check(&format!("17e8.{mac}"), now, Err(TokenError::BadExpires));
        check(
            &format!(" 1700000000.{mac}"),
            now,
            Err(TokenError::BadExpires),
        );
        check(
            &format!("01700000000.{mac}"),
            now,
            Err(TokenError::BadExpires),
        );
        check(&format!("١٧.{mac}"), now, Err(TokenError::BadExpires));
        check(
            &format!("18446744073709551616.{mac}"),
            now,
            Err(TokenError::ExpiresOverflow),
        );
        check(
            &format!("99999999999999999999.{mac}"),
            now,
            Err(TokenError::ExpiresOverflow),
        );
        check(
            &format!("{}.{mac}", "9".repeat(21)),
            now,
            Err(TokenError::TooLong),
        );
        check(&"1".repeat(10_000), now, Err(TokenError::TooLong));
        check(
            &format!("1700000000.{mac}="),
            now,
            bad_mac(DecodeError::InvalidCharacter),
        );
        check(
            "1700000000.BKulQHZ1mfIStLGNu+S7orEIQ89YWuwqUS060L54auM",
            now,
            bad_mac(DecodeError::InvalidCharacter),
        );
        check(
            "1700000000.BKulQHZ1mfIStLGNu/S7orEIQ89YWuwqUS060L54auM",
            now,
            bad_mac(DecodeError::InvalidCharacter),
        );
        check("1700000000.", now, Err(TokenError::WrongMacLength));
        check("1700000000.AAAA", now, Err(TokenError::WrongMacLength));
        check(
            &format!("1700000000.{mac}A"),
            now,
            Err(TokenError::WrongMacLength),
        );
        check(
            &format!("1700000000.{mac}AA"),
            now,
            bad_mac(DecodeError::InvalidLength),
        );
        check(
            &format!("1700000000.{}", &mac[..42]),
            now,
            bad_mac(DecodeError::NonCanonical),
        );
        check(
            &format!("1700000000.{}", &mac[..41]),
            now,
            bad_mac(DecodeError::InvalidLength),
        );
        check(
            &format!("1700000000.{}", &mac[..40]),
            now,
            Err(TokenError::WrongMacLength),
        );
        // A valid MAC with the expiry changed no longer matches.
        check(&format!("1700000001.{mac}"), now, Err(TokenError::WrongMac));
    }
}
