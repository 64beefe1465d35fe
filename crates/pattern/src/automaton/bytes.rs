//! Byte-level primitives of the scanner: finding the interesting byte in 8, 16 or 32 bytes at a
//! time, and skipping a whole value of bytes known to be valid JSON by its structure alone.
//!
//! Owns: the SWAR masks the validating scanner uses (`special` for strings, `non_digit` for numbers),
//! and the structural skippers of the prevalidated door (`skip_container_fast`, `skip_string_fast`).
//! Promises: every function reads only inside the slice it is given and never panics, whatever the
//! bytes; on valid JSON the skippers return exactly the end of the value.

/// Bytes of `w` that may be `"`, `\\`, a control byte or non-ASCII have their high bit set in the
/// result (the lowest such byte is exact; higher ones may be false alarms, which callers re-check).
#[inline]
pub(crate) fn special(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let quote = zero(w ^ (ONES * b'"' as u64));
    let backslash = zero(w ^ (ONES * b'\\' as u64));
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    quote | backslash | control | (w & HIGH)
}

/// Bytes of `w` that are not ASCII digits have their high bit set in the result (the lowest such byte
/// is exact; borrows and carries can only disturb the bytes above it).
#[inline]
pub(crate) fn non_digit(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let x = w.wrapping_sub(ONES * b'0' as u64);
    (x.wrapping_add(ONES * 0x76) | x) & HIGH
}

/// One bit per byte of `w` (bit k for byte k) where the byte equals `c`. Exact for every byte.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn eq_bits(w: u64, c: u8) -> u32 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let v = w ^ (0x0101_0101_0101_0101 * c as u64);
    let zero = !(((v & LOW7).wrapping_add(LOW7)) | v) & HIGH;
    ((zero >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32
}

/// Bit masks of one 16-byte chunk: (quotes, backslashes, `{`/`[`, `}`/`]`), bit k for byte k.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn chunk_masks(c: &[u8; 16]) -> (u32, u32, u32, u32) {
    // SAFETY: SSE2 is part of the x86_64 baseline: every x86_64 CPU has it.
    unsafe { chunk_masks_sse2(c) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn chunk_masks_sse2(c: &[u8; 16]) -> (u32, u32, u32, u32) {
    use std::arch::x86_64::*;
    let lo = i64::from_le_bytes(c[..8].try_into().expect("8 bytes"));
    let hi = i64::from_le_bytes(c[8..].try_into().expect("8 bytes"));
    let v = _mm_set_epi64x(hi, lo);
    let folded = _mm_or_si128(v, _mm_set1_epi8(0x20)); // `[` → `{`, `]` → `}`
    let quote = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8))) as u32;
    let backslash = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8))) as u32;
    let open = _mm_movemask_epi8(_mm_cmpeq_epi8(folded, _mm_set1_epi8(b'{' as i8))) as u32;
    let close = _mm_movemask_epi8(_mm_cmpeq_epi8(folded, _mm_set1_epi8(b'}' as i8))) as u32;
    (quote, backslash, open, close)
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn chunk_masks(c: &[u8; 16]) -> (u32, u32, u32, u32) {
    let lo = u64::from_le_bytes(c[..8].try_into().expect("8 bytes"));
    let hi = u64::from_le_bytes(c[8..].try_into().expect("8 bytes"));
    let both = |f: &dyn Fn(u64) -> u32| f(lo) | (f(hi) << 8);
    let fold = 0x2020_2020_2020_2020;
    (
        both(&|w| eq_bits(w, b'"')),
        both(&|w| eq_bits(w, b'\\')),
        both(&|w| eq_bits(w | fold, b'{')),
        both(&|w| eq_bits(w | fold, b'}')),
    )
}

/// Set bits of a 16-bit mask (a table: the baseline x86_64 target has no popcount instruction).
#[inline(always)]
fn ones16(m: u32) -> usize {
    static POP: [u8; 256] = {
        let mut t = [0u8; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = (i as u32).count_ones() as u8;
            i += 1;
        }
        t
    };
    (POP[(m & 0xff) as usize] + POP[((m >> 8) & 0xff) as usize]) as usize
}

/// From just after an opening bracket or brace, the index after the matching closer. Thirty-two (then
/// sixteen) bytes at a time: quote bits give the in-string mask by a prefix XOR, and brackets outside
/// strings are counted; a chunk holding a backslash, or where the depth may reach zero, is walked byte
/// by byte.
pub(crate) fn skip_container_fast(b: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 1usize;
    let mut in_string = false;
    loop {
        // Thirty-two bytes per step while they last (two 16-byte classifications joined).
        while let Some(chunk) = b.get(i..i + 32) {
            let (q0, b0, o0, c0) = chunk_masks(chunk[..16].try_into().expect("16 bytes"));
            let (q1, b1, o1, c1) = chunk_masks(chunk[16..].try_into().expect("16 bytes"));
            if (b0 | b1) != 0 {
                break;
            }
            let mut p = q0 | (q1 << 16);
            p ^= p << 1;
            p ^= p << 2;
            p ^= p << 4;
            p ^= p << 8;
            p ^= p << 16;
            if in_string {
                p = !p;
            }
            let outside = !p;
            let closes = (c0 | (c1 << 16)) & outside;
            let n = ones16(closes & 0xffff) + ones16(closes >> 16);
            if n >= depth {
                break;
            }
            let opens = (o0 | (o1 << 16)) & outside;
            depth = depth + ones16(opens & 0xffff) + ones16(opens >> 16) - n;
            in_string = p & 0x8000_0000 != 0;
            i += 32;
        }
        if let Some(chunk) = b.get(i..i + 16) {
            let (quotes, backslashes, opens, closes) =
                chunk_masks(chunk.try_into().expect("16 bytes"));
            if backslashes == 0 {
                let mut p = quotes;
                p ^= p << 1;
                p ^= p << 2;
                p ^= p << 4;
                p ^= p << 8;
                if in_string {
                    p = !p;
                }
                p &= 0xffff;
                let outside = !p & 0xffff;
                let closes = ones16(closes & outside);
                if closes < depth {
                    depth = depth + ones16(opens & outside) - closes;
                    in_string = p & 0x8000 != 0;
                    i += 16;
                    continue;
                }
            }
        }
        // Byte by byte, to the end of the chunk (or of the input).
        let end = (i + 16).min(b.len());
        if i >= end {
            return None;
        }
        let mut escaped = false;
        while i < end || escaped {
            let c = *b.get(i)?;
            i += 1;
            if in_string {
                if escaped {
                    escaped = false;
                } else if c == b'\\' {
                    escaped = true;
                } else if c == b'"' {
                    in_string = false;
                }
            } else {
                match c {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// From just after an opening quote, the index after the closing quote (escapes skipped unread).
#[inline]
pub(crate) fn skip_string_fast(b: &[u8], mut i: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    loop {
        while let Some(chunk) = b.get(i..i + 8) {
            let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            let m = zero(w ^ (ONES * b'"' as u64)) | zero(w ^ (ONES * b'\\' as u64));
            if m != 0 {
                i += (m.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        match b.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pseudo-random valid JSON value, long enough to cross many 16-byte chunks.
    fn next(seed: &mut u64) -> usize {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*seed >> 33) as usize
    }

    fn value(seed: &mut u64, depth: usize, out: &mut String) {
        let strings = [
            r#""a""#,
            r#""[{\"}]""#,
            r#""\\""#,
            r#""x\\\"]""#,
            r#""""#,
            r#""{{{""#,
        ];
        match if depth > 4 {
            next(seed) % 3
        } else {
            next(seed) % 5
        } {
            0 => out.push_str(strings[next(seed) % strings.len()]),
            1 => out.push_str("-122.42925025966552"),
            2 => out.push_str("true"),
            k => {
                let object = k == 3;
                out.push(if object { '{' } else { '[' });
                for i in 0..next(seed) % 6 {
                    if i > 0 {
                        out.push(',');
                    }
                    if object {
                        out.push_str(strings[next(seed) % strings.len()]);
                        out.push(':');
                    }
                    value(seed, depth + 1, out);
                }
                out.push(if object { '}' } else { ']' });
            }
        }
    }

    #[test]
    fn fast_container_skip_finds_the_matching_closer() {
        let mut seed = 7;
        let mut checked = 0;
        for _ in 0..3000 {
            let mut v = String::new();
            value(&mut seed, 0, &mut v);
            if !v.starts_with(['{', '[']) {
                continue;
            }
            assert!(crate::json::parse(v.as_bytes()).is_ok(), "{v}");
            let tail = format!("{v}, 1]");
            assert_eq!(
                skip_container_fast(tail.as_bytes(), 1),
                Some(v.len()),
                "{v}"
            );
            assert_eq!(skip_container_fast(&v.as_bytes()[..v.len() - 1], 1), None);
            checked += 1;
        }
        assert!(checked > 1000);
    }

    #[test]
    fn skippers_never_panic_on_arbitrary_bytes() {
        let mut seed = 11;
        let alphabet = b"{}[]\\\"\",:ax1 \xff";
        for len in 0..200 {
            for _ in 0..20 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| alphabet[next(&mut seed) % alphabet.len()])
                    .collect();
                for start in 0..len.min(3) {
                    let _ = skip_container_fast(&bytes, start);
                    let _ = skip_string_fast(&bytes, start);
                }
            }
        }
    }
}
