//! Just enough JSON to write the frames and `/users`: string escaping.
//!
//! Spec: RFC 8259 §7, <https://www.rfc-editor.org/rfc/rfc8259#section-7>.
//!
//! ```text
//! string = quotation-mark *char quotation-mark
//! char   = unescaped / escape ( %x22 / %x5C / %x2F / %x62 / %x66 / %x6E / %x72 / %x74 / %x75 4HEXDIG )
//! unescaped = %x20-21 / %x23-5B / %x5D-10FFFF
//! ```
//!
//! Escaping every control character also means no userId can put a line
//! break into a `data:` line, so none can end an SSE event early or inject a
//! field of its own.

use std::fmt::{self, Write};

/// Displays a `&str` as a quoted, escaped JSON string, without allocating:
/// `format!("user={}", Quoted("a\"b"))` gives `user="a\"b"`.
#[derive(Debug, Clone, Copy)]
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        out.write_char('"')?;
        for character in self.0.chars() {
            match character {
                '"' => out.write_str("\\\"")?,
                '\\' => out.write_str("\\\\")?,
                '\n' => out.write_str("\\n")?,
                '\r' => out.write_str("\\r")?,
                '\t' => out.write_str("\\t")?,
                '\u{08}' => out.write_str("\\b")?,
                '\u{0c}' => out.write_str("\\f")?,
                control if (control as u32) < 0x20 => write!(out, "\\u{:04x}", control as u32)?,
                other => out.write_char(other)?,
            }
        }
        out.write_char('"')
    }
}

/// Appends `value` to `out` as a quoted JSON string.
pub fn write_string(out: &mut String, value: &str) {
    // Writing to a String cannot fail.
    let _ = write!(out, "{}", Quoted(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, expected: &str) {
        assert_eq!(Quoted(input).to_string(), expected);
    }

    #[test]
    fn plain_text_is_only_quoted() {
        check("alice", r#""alice""#);
        check("", r#""""#);
    }

    #[test]
    fn quote_and_backslash_are_escaped() {
        check(r#"a"b\c"#, r#""a\"b\\c""#);
    }

    #[test]
    fn line_breaks_cannot_reach_the_wire() {
        check("a\nb\rc", r#""a\nb\rc""#);
    }

    #[test]
    fn other_controls_use_unicode_escapes() {
        check("\u{0}\u{1f}\u{8}\u{c}\t", r#""\u0000\u001f\b\f\t""#);
    }

    #[test]
    fn non_ascii_passes_through() {
        check("élève ✓ 😀", "\"élève ✓ 😀\"");
    }

    #[test]
    fn delete_is_not_a_json_control() {
        check("\u{7f}", "\"\u{7f}\"");
    }
}
