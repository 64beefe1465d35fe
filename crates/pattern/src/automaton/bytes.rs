//! Byte-level checks of scalars: whether a run of bytes is exactly one JSON number, eight digits at a
//! time, and whether it is ASCII.
//!
//! Owns: [`valid_number`] (the number grammar `json::parse` applies) and its SWAR digit mask, and
//! [`is_ascii`].
//! Promise: reads only inside the slice it is given and never panics, whatever the bytes.

/// Bytes of `w` that are not ASCII digits have their high bit set in the result (the lowest such byte
/// is exact; borrows and carries can only disturb the bytes above it).
#[inline(always)]
fn non_digit(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let x = w.wrapping_sub(ONES * b'0' as u64);
    (x.wrapping_add(ONES * 0x76) | x) & HIGH
}

/// How many ASCII digits start at `i`, up to `end`. (Eight at a time may read past `end`, within `b`:
/// the count stops at the first non-digit either way.)
#[inline(always)]
fn digits(b: &[u8], mut i: usize, end: usize) -> usize {
    let s = i;
    while let Some(chunk) = b.get(i..i + 8) {
        let m = non_digit(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        if m != 0 {
            return (i + (m.trailing_zeros() / 8) as usize).min(end) - s;
        }
        i += 8;
    }
    while i < end && b[i].is_ascii_digit() {
        i += 1;
    }
    i.min(end) - s
}

/// Whether `b[start..end]` is exactly one number of JSON's grammar (`-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?`),
/// as `json::parse` reads numbers. (`end` is where the scalar stops: whitespace, an operator, a quote
/// or the end of the text, which are exactly the bytes `json::parse` lets follow a number.)
#[inline]
pub fn valid_number(b: &[u8], start: usize, end: usize) -> bool {
    if end > b.len() || start >= end {
        return false;
    }
    let mut i = start + usize::from(b[start] == b'-');
    let n = digits(b, i, end);
    if n == 0 || (n > 1 && b[i] == b'0') {
        return false;
    }
    i += n;
    if i < end && b[i] == b'.' {
        i += 1;
        let n = digits(b, i, end);
        if n == 0 {
            return false;
        }
        i += n;
    }
    if i < end && (b[i] | 0x20) == b'e' {
        i += 1;
        if i < end && matches!(b[i], b'+' | b'-') {
            i += 1;
        }
        let n = digits(b, i, end);
        if n == 0 {
            return false;
        }
        i += n;
    }
    i == end
}

/// Whether `t` is ASCII: up to 16 bytes (most values) by at most two overlapping loads, inline;
/// longer texts by std's `is_ascii` (which is not inlined, and on short texts costs a call).
#[inline(always)]
pub fn is_ascii(t: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let n = t.len();
    let w8 = |i: usize| u64::from_le_bytes(t[i..i + 8].try_into().expect("8 bytes"));
    let w4 = |i: usize| u64::from(u32::from_le_bytes(t[i..i + 4].try_into().expect("4 bytes")));
    match n {
        0 => true,
        1..=3 => (t[0] | t[n / 2] | t[n - 1]) < 0x80,
        4..=7 => (w4(0) | w4(n - 4)) & HIGH == 0,
        8..=16 => (w8(0) | w8(n - 8)) & HIGH == 0,
        _ => t.is_ascii(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_the_reader_reads_them() {
        for (t, ok) in [
            ("0", true),
            ("-0", true),
            ("12345678901234567890", true),
            ("-122.42925025966552", true),
            ("1e5", true),
            ("1E+5", true),
            ("1.5e-007", true),
            ("01", false),
            ("-", false),
            ("1.", false),
            (".5", false),
            ("1e", false),
            ("1e+", false),
            ("--1", false),
            ("1.2.3", false),
            ("1x", false),
            ("+1", false),
            ("1e5e5", false),
            ("0x10", false),
            ("", false),
        ] {
            assert_eq!(valid_number(t.as_bytes(), 0, t.len()), ok, "{t}");
            let json = format!("[{t}]");
            if !t.is_empty() {
                assert_eq!(crate::json::parse(json.as_bytes()).is_ok(), ok, "{t}");
            }
        }
    }

    #[test]
    fn ascii_as_std_says() {
        for n in 0..40 {
            let t = vec![b'a'; n];
            assert!(is_ascii(&t), "{n}");
            for i in 0..n {
                for c in [0x80, 0xc3, 0xff] {
                    let mut u = t.clone();
                    u[i] = c;
                    assert!(!is_ascii(&u), "{n} bytes, {c:#x} at {i}");
                }
            }
        }
    }
}
