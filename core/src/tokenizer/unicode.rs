//! Unicode classes used by the pre-tokenizers: `\p{L}`, `\p{N}`, `\p{P}` and
//! `\s`, plus GPT-2's byte <-> unicode mapping.
//!
//! General categories come from the `unicode-properties` crate (no_std
//! tables); `\s` is the Unicode `White_Space` property, the same set as
//! llama.cpp's `unicode_set_whitespace` and the Rust/Python regex `\s`.

use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

/// `\p{L}`: general category L*.
pub const LETTER: u8 = 1;
/// `\p{N}`: general category N*.
pub const NUMBER: u8 = 2;
/// `\s`: the `White_Space` property.
pub const WHITESPACE: u8 = 4;
/// `\p{P}`: general category P*.
pub const PUNCTUATION: u8 = 8;

/// Whether `c` has the Unicode `White_Space` property.
pub fn is_whitespace(c: char) -> bool {
    matches!(
        c,
        '\u{9}'..='\u{d}'
            | ' '
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// The class flags of `c` (a combination of [`LETTER`], [`NUMBER`],
/// [`WHITESPACE`], [`PUNCTUATION`]; 0 for anything else).
pub fn flags(c: char) -> u8 {
    if c.is_ascii() {
        return ascii_flags(c as u8);
    }
    let ws = if is_whitespace(c) { WHITESPACE } else { 0 };
    let cat = match c.general_category_group() {
        GeneralCategoryGroup::Letter => LETTER,
        GeneralCategoryGroup::Number => NUMBER,
        GeneralCategoryGroup::Punctuation => PUNCTUATION,
        _ => 0,
    };
    ws | cat
}

fn ascii_flags(b: u8) -> u8 {
    match b {
        b'a'..=b'z' | b'A'..=b'Z' => LETTER,
        b'0'..=b'9' => NUMBER,
        b'\t'..=b'\r' | b' ' => WHITESPACE,
        b'!'..=b'#' | b'%'..=b'*' | b','..=b'/' | b':' | b';' | b'?' | b'@' | b'['..=b']' => {
            PUNCTUATION
        }
        b'_' | b'{' | b'}' => PUNCTUATION,
        _ => 0,
    }
}

/// GPT-2's byte -> unicode mapping (`bytes_to_unicode` in OpenAI's
/// `encoder.py`): printable bytes map to themselves, the other 68 bytes to
/// U+0100.. in byte order.
pub fn byte_to_char(b: u8) -> char {
    match b {
        b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff => char::from(b),
        _ => {
            // Count the unprintable bytes below `b`: 0..=0x20 (33), 0x7f..=0xa0 (34), 0xad.
            let n = match b {
                0..=0x20 => u32::from(b),
                0x7f..=0xa0 => 33 + u32::from(b - 0x7f),
                _ => 67, // 0xad
            };
            // 0x100 + n is at most 0x143: always a valid scalar value.
            char::from_u32(0x100 + n).unwrap_or('\u{fffd}')
        }
    }
}

/// Inverse of [`byte_to_char`]; `None` for characters outside the mapping.
pub fn char_to_byte(c: char) -> Option<u8> {
    let u = u32::from(c);
    match u {
        0x21..=0x7e | 0xa1..=0xac | 0xae..=0xff => u8::try_from(u).ok(),
        0x100..=0x120 => u8::try_from(u - 0x100).ok(),
        0x121..=0x142 => u8::try_from(u - 0x121 + 0x7f).ok(),
        0x143 => Some(0xad),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_map_is_a_bijection() {
        let mut seen = [false; 0x144];
        for b in 0..=255u8 {
            let c = byte_to_char(b);
            assert_eq!(char_to_byte(c), Some(b));
            let i = c as usize;
            assert!(!seen[i]);
            seen[i] = true;
        }
        // Known points from GPT-2: space -> 'Ġ' (U+0120), newline -> 'Ċ' (U+010A).
        assert_eq!(byte_to_char(b' '), '\u{120}');
        assert_eq!(byte_to_char(b'\n'), '\u{10a}');
        assert_eq!(byte_to_char(0xad), '\u{143}');
    }

    #[test]
    fn classes() {
        assert_eq!(flags('a'), LETTER);
        assert_eq!(flags('é'), LETTER);
        assert_eq!(flags('中'), LETTER);
        assert_eq!(flags('٣'), NUMBER);
        assert_eq!(flags('½'), NUMBER);
        assert_eq!(flags('\u{3000}'), WHITESPACE);
        assert_eq!(flags('\u{a0}'), WHITESPACE);
        assert_eq!(flags('\u{85}'), WHITESPACE);
        assert_eq!(flags('«'), PUNCTUATION);
        assert_eq!(flags('$'), 0);
        assert_eq!(flags('\u{301}'), 0);
        for b in 0..128u8 {
            let c = char::from(b);
            let slow = (if is_whitespace(c) { WHITESPACE } else { 0 })
                | match c.general_category_group() {
                    GeneralCategoryGroup::Letter => LETTER,
                    GeneralCategoryGroup::Number => NUMBER,
                    GeneralCategoryGroup::Punctuation => PUNCTUATION,
                    _ => 0,
                };
            assert_eq!(flags(c), slow, "{b:#x}");
        }
    }
}
