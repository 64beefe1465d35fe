//! Byte classification, 64 bytes at a time, with the widest instructions the CPU has.
//!
//! Owns: [`Simd`], the choice of implementation (AVX-512BW or AVX2, each with PCLMULQDQ, POPCNT,
//! BMI1 and BMI2, where run-time detection finds them; SSE2, the x86_64 baseline; a portable table
//! on any other target), [`Masks`], what one 64-byte chunk looks like (one bit per byte for each
//! class of byte the scanner needs), and the entry points that run the byte-level algorithms
//! compiled for the chosen implementation: the container validator (`validate`), the index
//! builder (`index::extend`), the search of an object for its keys (`Index::find_keys`) and of the
//! rest of an event for a quote and a byte (`find_pair`). Those algorithms are written once,
//! generic over the classifier, and inlined into one wrapper per implementation whose
//! `#[target_feature]` lets them use its instructions throughout.
//!
//! Promises: every implementation gives bit-for-bit the same masks (the unit tests compare them with
//! the table on every byte value), so no answer of the matcher depends on the CPU (the differential
//! tests and the fuzz target also run the matcher under each implementation the CPU has); an
//! implementation runs only on a CPU that has its instructions (`Simd::Avx2` asked of a CPU without
//! AVX2 runs SSE2).
//!
//! This module holds the crate's `unsafe` code: unaligned vector loads (in bounds by construction) and
//! calls into code compiled for CPU features (made only when detection found them, or for SSE2, which
//! every x86_64 CPU has).

use std::sync::atomic::{AtomicU8, Ordering};

use super::index::{self, Carry, Index};
use super::paths::SEARCHED;
use super::validate;

/// Which implementation classifies the event's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Simd {
    /// 64 bytes per instruction into mask registers (x86_64 with AVX-512F and AVX-512BW, and what
    /// `Avx2` needs).
    Avx512,
    /// 2 × 32 bytes, with carry-less multiplication for the in-string mask (x86_64 with AVX2,
    /// PCLMULQDQ, POPCNT, BMI1 and BMI2).
    Avx2,
    /// 4 × 16 bytes (the x86_64 baseline).
    Sse2,
    /// A 256-entry table, byte by byte (any target).
    Portable,
}

const ALL: [Simd; 4] = [Simd::Avx512, Simd::Avx2, Simd::Sse2, Simd::Portable];

impl Simd {
    /// The fastest implementation this CPU has (detected once, then cached).
    pub fn detected() -> Simd {
        let bits = detected_bits();
        ALL[(bits & 0xf).trailing_zeros() as usize]
    }

    /// Every implementation this CPU can run, fastest first (the portable one always).
    pub fn available() -> Vec<Simd> {
        let bits = detected_bits();
        ALL.iter()
            .copied()
            .filter(|&s| bits & (1 << s as u8) != 0)
            .collect()
    }

    /// Whether this CPU can run the implementation.
    #[inline(always)]
    pub fn is_available(self) -> bool {
        detected_bits() & (1 << self as u8) != 0
    }
}

/// Bit `s as u8` for each available implementation (bit 7 marks the cache as filled). (Inlined
/// into every dispatch: a load and a test, the detection itself out of line.)
#[inline(always)]
fn detected_bits() -> u8 {
    match CACHE.load(Ordering::Relaxed) {
        0 => detect(),
        b => b,
    }
}

static CACHE: AtomicU8 = AtomicU8::new(0);

#[cold]
#[inline(never)]
fn detect() -> u8 {
    let mut bits = 0x80 | 1 << Simd::Portable as u8;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        bits |= 1 << Simd::Sse2 as u8;
        if has!("avx2") && has!("pclmulqdq") && has!("popcnt") && has!("bmi1") && has!("bmi2") {
            bits |= 1 << Simd::Avx2 as u8;
            if has!("avx512f") && has!("avx512bw") {
                bits |= 1 << Simd::Avx512 as u8;
            }
        }
    }
    CACHE.store(bits, Ordering::Relaxed);
    bits
}

/// One 64-byte chunk, one bit per byte (bit k for byte k) for each class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Masks {
    pub quote: u64,
    pub backslash: u64,
    /// Space, tab, line feed, carriage return.
    pub ws: u64,
    /// Bytes below 0x20.
    pub ctrl: u64,
    pub lbrace: u64,
    pub lbracket: u64,
    pub rbrace: u64,
    pub rbracket: u64,
    /// `{` or `[`, and `}` or `]`: one test each (`byte | 0x20` is `{` or `}` exactly for these), for
    /// the builders that only count brackets.
    pub opening: u64,
    pub closing: u64,
    pub colon: u64,
    pub comma: u64,
    /// `0` to `9`, and `0` alone.
    pub digit: u64,
    pub zero: u64,
    pub minus: u64,
    pub dot: u64,
    /// Bytes of 0x80 or more (non-ASCII).
    pub high: u64,
}

/// Bits of the table entries, one per class.
mod class {
    pub const QUOTE: u16 = 1;
    pub const BACKSLASH: u16 = 1 << 1;
    pub const WS: u16 = 1 << 2;
    pub const CTRL: u16 = 1 << 3;
    pub const LBRACE: u16 = 1 << 4;
    pub const LBRACKET: u16 = 1 << 5;
    pub const RBRACE: u16 = 1 << 6;
    pub const RBRACKET: u16 = 1 << 7;
    pub const COLON: u16 = 1 << 8;
    pub const COMMA: u16 = 1 << 9;
    pub const DIGIT: u16 = 1 << 10;
    pub const ZERO: u16 = 1 << 11;
    pub const MINUS: u16 = 1 << 12;
    pub const DOT: u16 = 1 << 13;
    pub const HIGH: u16 = 1 << 14;
}

/// The classes of every byte value: the definition every implementation must match.
static TABLE: [u16; 256] = {
    use class::*;
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let mut k = 0;
        if c < 0x20 {
            k |= CTRL;
        }
        if c >= 0x80 {
            k |= HIGH;
        }
        k |= match c {
            b'"' => QUOTE,
            b'\\' => BACKSLASH,
            b' ' | b'\t' | b'\n' | b'\r' => WS,
            b'{' => LBRACE,
            b'[' => LBRACKET,
            b'}' => RBRACE,
            b']' => RBRACKET,
            b':' => COLON,
            b',' => COMMA,
            b'0' => DIGIT | ZERO,
            b'1'..=b'9' => DIGIT,
            b'-' => MINUS,
            b'.' => DOT,
            _ => 0,
        };
        t[i] = k;
        i += 1;
    }
    t
};

/// The portable classifier: the table, byte by byte.
pub fn classify_portable(c: &[u8; 64]) -> Masks {
    let mut v = [0u64; 15];
    for (k, &x) in c.iter().enumerate() {
        let t = TABLE[x as usize];
        for (j, m) in v.iter_mut().enumerate() {
            *m |= u64::from((t >> j) & 1) << k;
        }
    }
    Masks {
        quote: v[0],
        backslash: v[1],
        ws: v[2],
        ctrl: v[3],
        lbrace: v[4],
        lbracket: v[5],
        rbrace: v[6],
        rbracket: v[7],
        opening: v[4] | v[5],
        closing: v[6] | v[7],
        colon: v[8],
        comma: v[9],
        digit: v[10],
        zero: v[11],
        minus: v[12],
        dot: v[13],
        high: v[14],
    }
}

/// Bit k of the result is the XOR of bits 0..=k of `x`: from a mask of quotes, the bytes inside strings.
#[inline(always)]
pub fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// Runs `$call` on the wrapper module of the chosen implementation (portable: `$portable`).
macro_rules! dispatch {
    ($simd:expr, $m:ident => $call:expr, $portable:expr) => {
        match $simd {
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 if Simd::Avx512.is_available() => {
                use x86::avx512 as $m;
                // SAFETY: the CPU has every feature the function enables (run-time detection).
                unsafe { $call }
            }
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 | Simd::Avx512 if Simd::Avx2.is_available() => {
                use x86::avx2 as $m;
                // SAFETY: the CPU has every feature the function enables (run-time detection).
                unsafe { $call }
            }
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 | Simd::Avx2 | Simd::Sse2 => {
                use x86::sse2 as $m;
                // SAFETY: SSE2 is part of the x86_64 baseline: every x86_64 CPU has it.
                unsafe { $call }
            }
            _ => $portable,
        }
    };
}

/// Builds up to `n` more blocks of the lazy index `ix` of `b` (bytes known to be JSON).
pub fn extend(simd: Simd, b: &[u8], ix: &mut Index, n: usize) {
    dispatch!(simd, m => m::extend(b, ix, n),
        index::extend::<false>(b, ix, n, classify_portable, prefix_xor))
}

/// Like `extend`, checking the strings of the blocks it builds (see `index::extend`).
pub fn extend_checked(simd: Simd, b: &[u8], ix: &mut Index, n: usize) {
    dispatch!(simd, m => m::extend_checked(b, ix, n),
        index::extend::<true>(b, ix, n, classify_portable, prefix_xor))
}

/// The members of an object that spell one of `keys` (see `Index::find_keys`); `firsts`: the
/// keys' first bytes, each once (`Children::firsts`).
#[allow(clippy::too_many_arguments)]
pub fn find_keys<T: Copy>(
    simd: Simd,
    ix: &Index,
    b: &[u8],
    from: usize,
    to: usize,
    keys: &[(Box<[u8]>, T)],
    firsts: &[u8],
    out: &mut Vec<(usize, T)>,
) {
    // With the first bytes in N slots (1, 2 or `SEARCHED`: one per key).
    macro_rules! with {
        ($n:expr) => {{
            let set: [u8; $n] = filled(firsts, b'"');
            dispatch!(simd, m => m::find_keys(ix, b, from, to, keys, out, &set),
                ix.find_keys(b, from, to, keys, out, |c| eq_portable(c, &set)))
        }};
    }
    match firsts.len() {
        0 | 1 => with!(1),
        2 => with!(2),
        _ => with!(SEARCHED),
    }
}

/// `bytes` (at most N) repeated to fill N slots, for the searches' fixed-size sets of bytes;
/// `empty`'s when there are none. (Byte by byte: `copy_from_slice` of a few bytes was a call to
/// memcpy on every search.)
#[inline(always)]
fn filled<const N: usize>(bytes: &[u8], empty: u8) -> [u8; N] {
    assert!(bytes.len() <= N);
    let fill = bytes.first().copied().unwrap_or(empty);
    std::array::from_fn(|i| bytes.get(i).copied().unwrap_or(fill))
}

/// The bits of the bytes of `c` equal to one of `set` (any target).
fn eq_portable<const N: usize>(c: &[u8; 64], set: &[u8; N]) -> u64 {
    c.iter()
        .enumerate()
        .fold(0, |m, (i, y)| m | (u64::from(set.contains(y)) << i))
}

/// From the `{` or `[` at `open`, the position after the container when it is one JSON value (at
/// most `limit` levels deep; see `validate::value_end`).
pub fn value_end(simd: Simd, b: &[u8], open: usize, limit: usize) -> Option<usize> {
    let b = b.get(open..)?;
    let n = dispatch!(simd, m => m::value_end(b, limit),
        validate::value_end(b, limit, classify_portable, prefix_xor))?;
    Some(open + n)
}

/// The first position at or after `at` of a backslash, or of a quote followed by one of `seconds`
/// (at most 8 bytes), for which `take` is true, 64 bytes at a time.
pub fn find_pair(
    simd: Simd,
    b: &[u8],
    at: usize,
    seconds: &[u8],
    take: impl Fn(usize) -> bool,
) -> Option<usize> {
    if seconds.len() <= 2 {
        find_pair_n::<2>(simd, b, at, seconds, &take)
    } else if seconds.len() <= 4 {
        find_pair_n::<4>(simd, b, at, seconds, &take)
    } else {
        find_pair_n::<8>(simd, b, at, seconds, &take)
    }
}

#[inline(always)]
fn find_pair_n<const N: usize>(
    simd: Simd,
    b: &[u8],
    at: usize,
    seconds: &[u8],
    take: &impl Fn(usize) -> bool,
) -> Option<usize> {
    // (A set with no byte has none to find but backslashes.)
    let set: [u8; N] = filled(seconds, b'\\');
    match simd {
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 if Simd::Avx512.is_available() => {
            // SAFETY: the CPU has every feature the function enables (run-time detection).
            unsafe { x86::find_pair_avx512(b, at, &set, take) }
        }
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 | Simd::Avx512 if Simd::Avx2.is_available() => {
            // SAFETY: the CPU has every feature the function enables (run-time detection).
            unsafe { x86::find_pair_avx2(b, at, &set, take) }
        }
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 | Simd::Avx2 | Simd::Sse2 => {
            // SAFETY: SSE2 is part of the x86_64 baseline: every x86_64 CPU has it.
            unsafe { x86::find_pair_sse2(b, at, &set, take) }
        }
        _ => find_pair_portable(b, at, &set, take),
    }
}

/// `find_pair` byte by byte (any target).
fn find_pair_portable(
    b: &[u8],
    at: usize,
    seconds: &[u8],
    take: &impl Fn(usize) -> bool,
) -> Option<usize> {
    (at..b.len()).find(|&p| {
        let c = b[p];
        (c == b'\\' || (c == b'"' && b.get(p + 1).is_some_and(|n| seconds.contains(n)))) && take(p)
    })
}

/// From `at`, inside `depth` open containers in the string state `carry`: the position after the
/// bracket that closes the outermost (see `index::skip`).
pub fn skip(simd: Simd, b: &[u8], at: usize, depth: u32, carry: Carry) -> Option<usize> {
    dispatch!(simd, m => m::skip(b, at, depth, carry),
        index::skip(b, at, depth, carry, classify_portable, prefix_xor))
}

/// Builds the complete index of `b` (bytes known to be JSON) into `out`.
#[cfg(test)]
pub fn build(simd: Simd, b: &[u8], out: &mut Vec<index::Block>) {
    dispatch!(simd, m => m::build(b, out), index::build(b, out, classify_portable, prefix_xor))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Masks;

    /// One wrapper per entry point, compiled with the implementation's features, into which the
    /// generic algorithm and the classifier are inlined.
    macro_rules! wrappers {
        ($name:ident, $features:literal, $classify:ident, $eq:ident, $prefix_xor:path) => {
            pub mod $name {
                use super::super::super::index::{self, Carry, Index};
                use super::super::super::validate;

                #[target_feature(enable = $features)]
                pub unsafe fn extend(b: &[u8], ix: &mut Index, n: usize) {
                    if ix.blocks.is_empty() {
                        super::prefetch(&b[ix.origin.min(b.len())..]);
                    }
                    index::extend::<false>(b, ix, n, |c| super::$classify(c), |x| $prefix_xor(x))
                }

                #[target_feature(enable = $features)]
                pub unsafe fn extend_checked(b: &[u8], ix: &mut Index, n: usize) {
                    if ix.blocks.is_empty() {
                        super::prefetch(&b[ix.origin.min(b.len())..]);
                    }
                    index::extend::<true>(b, ix, n, |c| super::$classify(c), |x| $prefix_xor(x))
                }

                #[target_feature(enable = $features)]
                pub unsafe fn find_keys<T: Copy, const N: usize>(
                    ix: &Index,
                    b: &[u8],
                    from: usize,
                    to: usize,
                    keys: &[(Box<[u8]>, T)],
                    out: &mut Vec<(usize, T)>,
                    set: &[u8; N],
                ) {
                    ix.find_keys(b, from, to, keys, out, |c| super::$eq(c, set))
                }

                #[target_feature(enable = $features)]
                pub unsafe fn value_end(b: &[u8], limit: usize) -> Option<usize> {
                    validate::value_end(b, limit, |c| super::$classify(c), |x| $prefix_xor(x))
                }

                #[target_feature(enable = $features)]
                pub unsafe fn skip(b: &[u8], at: usize, depth: u32, carry: Carry) -> Option<usize> {
                    index::skip(
                        b,
                        at,
                        depth,
                        carry,
                        |c| super::$classify(c),
                        |x| $prefix_xor(x),
                    )
                }

                #[cfg(test)]
                #[target_feature(enable = $features)]
                pub unsafe fn build(b: &[u8], out: &mut Vec<index::Block>) {
                    index::build(b, out, |c| super::$classify(c), |x| $prefix_xor(x))
                }
            }
        };
    }

    wrappers!(
        avx512,
        "avx512f,avx512bw,avx2,pclmulqdq,popcnt,bmi1,bmi2",
        classify_avx512,
        eq_avx512,
        super::prefix_xor_clmul
    );
    wrappers!(
        avx2,
        "avx2,pclmulqdq,popcnt,bmi1,bmi2",
        classify_avx2,
        eq_avx2,
        super::prefix_xor_clmul
    );
    wrappers!(
        sse2,
        "sse2",
        classify_sse2,
        eq_sse2,
        super::super::prefix_xor
    );

    /// The bits of the bytes of `c` equal to one of `set`, by vectors of 64, 32 and 16 bytes.
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    pub fn eq_avx512<const N: usize>(c: &[u8; 64], set: &[u8; N]) -> u64 {
        // SAFETY: the unaligned load reads the 64 bytes of the array.
        let v = unsafe { _mm512_loadu_si512(c.as_ptr().cast()) };
        set.iter().fold(0, |m, &x| {
            m | _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(x as i8))
        })
    }

    /// `eq_*` by `64 / $lanes` vectors of `$lanes` bytes.
    macro_rules! eq_impl {
        ($name:ident, $features:literal, $lanes:expr, $load:path, $set1:path, $zero:path, $cmp:path,
         $or:path, $mask:expr) => {
            #[target_feature(enable = $features)]
            #[inline]
            pub fn $name<const N: usize>(c: &[u8; 64], set: &[u8; N]) -> u64 {
                let mut m = 0u64;
                for k in 0..64 / $lanes {
                    // SAFETY: the unaligned load reads `$lanes` bytes of the 64-byte array.
                    let v = unsafe { $load(c.as_ptr().add($lanes * k).cast()) };
                    let hit = set
                        .iter()
                        .fold($zero(), |h, &x| $or(h, $cmp(v, $set1(x as i8))));
                    m |= $mask(hit) << ($lanes * k);
                }
                m
            }
        };
    }
    eq_impl!(
        eq_avx2,
        "avx2",
        32,
        _mm256_loadu_si256,
        _mm256_set1_epi8,
        _mm256_setzero_si256,
        _mm256_cmpeq_epi8,
        _mm256_or_si256,
        |h| u64::from(_mm256_movemask_epi8(h) as u32)
    );
    eq_impl!(
        eq_sse2,
        "sse2",
        16,
        _mm_loadu_si128,
        _mm_set1_epi8,
        _mm_setzero_si128,
        _mm_cmpeq_epi8,
        _mm_or_si128,
        |h| u64::from(_mm_movemask_epi8(h) as u16)
    );

    /// `find_pair` 64 bytes at a time (`64 / $lanes` vectors of `$lanes` bytes, one branch) while
    /// 65 bytes remain, then the last bytes by `$tail`; `$seconds` the second bytes (4 or 8,
    /// repeated to fill). (A vector per step, 32 bytes with AVX2, spent as much on the loop and
    /// its branch as on the compares.)
    macro_rules! find_pair_impl {
        ($name:ident, $features:literal, $lanes:expr, $load:path, $set1:path, $cmp:expr, $or:expr,
         $and:expr, $mask:expr, $tail:ident) => {
            #[target_feature(enable = $features)]
            pub unsafe fn $name<const N: usize>(
                b: &[u8],
                mut at: usize,
                seconds: &[u8; N],
                take: &impl Fn(usize) -> bool,
            ) -> Option<usize> {
                let quote = $set1(b'"' as i8);
                let backslash = $set1(b'\\' as i8);
                let next: [_; N] = seconds.map(|c| $set1(c as i8));
                // The hits among 64 bytes at `p`, with the byte after them.
                let hits = |p: *const u8| {
                    let mut m = 0u64;
                    for k in 0..64 / $lanes {
                        // SAFETY: the callers pass a pointer to 65 readable bytes.
                        let (v0, v1) = unsafe {
                            let q = p.add(k * $lanes);
                            ($load(q.cast()), $load(q.add(1).cast()))
                        };
                        let mut hit = $cmp(v1, next[0]);
                        for n in &next[1..] {
                            hit = $or(hit, $cmp(v1, *n));
                        }
                        let part: u64 = $mask($or($and(hit, $cmp(v0, quote)), $cmp(v0, backslash)));
                        m |= part << (k * $lanes);
                    }
                    m
                };
                // The first of the hits at `at` that `take` takes.
                let first = |mut m: u64, at: usize| {
                    while m != 0 {
                        let p = at + m.trailing_zeros() as usize;
                        if take(p) {
                            return Some(p);
                        }
                        m &= m - 1;
                    }
                    None
                };
                while at + 64 < b.len() {
                    // SAFETY: bytes at..at + 65 are inside `b` (the loop's condition).
                    let m = hits(unsafe { b.as_ptr().add(at) });
                    if m != 0
                        && let Some(p) = first(m, at)
                    {
                        return Some(p);
                    }
                    at += 64;
                }
                $tail!(64, b, at, hits, first, next, quote, backslash)
            }
        };
    }

    /// The last bytes (at most the width) by one more step that ends at the event's last byte: it
    /// overlaps bytes the loop searched, whose hits are dropped, so that nothing is copied (a copy
    /// into a padded buffer cost a memcpy call, and the vector loads from it stalled on the stores
    /// that had just written it). The step covers every position but the last, where only a
    /// backslash can be a hit. Texts no longer than the width are padded.
    macro_rules! overlapping_tail {
        ($width:expr, $b:ident, $at:ident, $hits:ident, $first:ident, $next:ident, $quote:ident,
         $backslash:ident) => {{
            let len = $b.len();
            let m = if $at >= len {
                0
            } else if len <= $width {
                // (Spaces are never a quote or a backslash: every hit is inside `b`.)
                let mut pad = [b' '; 2 * $width];
                pad[..len].copy_from_slice($b);
                $hits(pad.as_ptr()) >> $at
            } else {
                // The loop ended, so `at + width >= len`: the step at `p` covers positions `p`
                // to `len - 2`, and its bits below `at - p` (1 to the width) are searched already.
                let p = len - $width - 1;
                // SAFETY: the step reads bytes p..len, inside `b`.
                let step = $hits(unsafe { $b.as_ptr().add(p) }).checked_shr(($at - p) as u32);
                step.unwrap_or(0) | (u64::from($b[len - 1] == b'\\') << (len - 1 - $at))
            };
            // (One call of `first`: with more, it was no longer inlined.)
            $first(m, $at)
        }};
    }

    /// The last bytes (at most 64) by masked loads, which read nothing past `b` and give zeros
    /// there (never a quote or a backslash, so every hit is inside `b`).
    macro_rules! masked_tail {
        ($width:expr, $b:ident, $at:ident, $hits:ident, $first:ident, $next:ident, $quote:ident,
         $backslash:ident) => {{
            let n = $b.len().saturating_sub($at); // 0..=64
            let keep = |n: usize| if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
            let p = $b.as_ptr().wrapping_add($at);
            // SAFETY: the masks select only bytes inside `b` (`n` from `at`, `n - 1` from
            // `at + 1`), and masked-off lanes are not read.
            let (v0, v1) = unsafe {
                (
                    _mm512_maskz_loadu_epi8(keep(n), p.cast()),
                    _mm512_maskz_loadu_epi8(keep(n.saturating_sub(1)), p.wrapping_add(1).cast()),
                )
            };
            let mut hit = _mm512_cmpeq_epi8_mask(v1, $next[0]);
            for c in &$next[1..] {
                hit |= _mm512_cmpeq_epi8_mask(v1, *c);
            }
            let m =
                (hit & _mm512_cmpeq_epi8_mask(v0, $quote)) | _mm512_cmpeq_epi8_mask(v0, $backslash);
            $first(m, $at)
        }};
    }

    find_pair_impl!(
        find_pair_avx512,
        "avx512f,avx512bw",
        64,
        _mm512_loadu_si512,
        _mm512_set1_epi8,
        |a, b| _mm512_cmpeq_epi8_mask(a, b),
        |a: u64, b: u64| a | b,
        |a: u64, b: u64| a & b,
        |m: u64| m,
        masked_tail
    );
    find_pair_impl!(
        find_pair_avx2,
        "avx2",
        32,
        _mm256_loadu_si256,
        _mm256_set1_epi8,
        |a, b| _mm256_cmpeq_epi8(a, b),
        |a, b| _mm256_or_si256(a, b),
        |a, b| _mm256_and_si256(a, b),
        |m| u64::from(_mm256_movemask_epi8(m) as u32),
        overlapping_tail
    );
    find_pair_impl!(
        find_pair_sse2,
        "sse2",
        16,
        _mm_loadu_si128,
        _mm_set1_epi8,
        |a, b| _mm_cmpeq_epi8(a, b),
        |a, b| _mm_or_si128(a, b),
        |a, b| _mm_and_si128(a, b),
        |m| u64::from(_mm_movemask_epi8(m) as u16),
        overlapping_tail
    );

    /// Asks for every cache line of the event (up to 4 KiB) at once, so that they arrive together
    /// rather than one per block as the builder reaches them.
    #[inline(always)]
    pub fn prefetch(b: &[u8]) {
        for at in (0..b.len().min(4096)).step_by(64) {
            // SAFETY: a prefetch is only a hint: it never faults, and the address is inside `b`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(b.as_ptr().add(at).cast()) };
        }
    }

    /// simdjson's one-instruction whitespace test: a byte is whitespace when `WS[byte & 15] == byte`
    /// (a byte of 0x80 or more looks up 0 and never matches).
    const WS: [u8; 16] = [
        b' ', 100, 100, 100, 17, 100, 113, 2, 100, b'\t', b'\n', 112, 100, b'\r', 100, 100,
    ];

    #[target_feature(enable = "pclmulqdq")]
    #[inline]
    pub fn prefix_xor_clmul(x: u64) -> u64 {
        // Carry-less multiplication by all ones: bit k is the XOR of bits 0..=k.
        let v = _mm_set_epi64x(0, x as i64);
        _mm_cvtsi128_si64(_mm_clmulepi64_si128::<0>(v, _mm_set1_epi8(-1))) as u64
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    pub fn classify_avx512(c: &[u8; 64]) -> Masks {
        // SAFETY: the unaligned load reads the 64 bytes of the array.
        let v = unsafe { _mm512_loadu_si512(c.as_ptr().cast()) };
        let eq = |c: u8| _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(c as i8));
        let x = i128::from_le_bytes(WS);
        let (lo, hi) = (x as i64, (x >> 64) as i64);
        let table = _mm512_set_epi64(hi, lo, hi, lo, hi, lo, hi, lo);
        let digits = _mm512_sub_epi8(v, _mm512_set1_epi8(b'0' as i8));
        let folded = _mm512_or_si512(v, _mm512_set1_epi8(0x20));
        Masks {
            quote: eq(b'"'),
            backslash: eq(b'\\'),
            ws: _mm512_cmpeq_epi8_mask(_mm512_shuffle_epi8(table, v), v),
            ctrl: _mm512_cmple_epu8_mask(v, _mm512_set1_epi8(0x1f)),
            lbrace: eq(b'{'),
            lbracket: eq(b'['),
            rbrace: eq(b'}'),
            rbracket: eq(b']'),
            opening: _mm512_cmpeq_epi8_mask(folded, _mm512_set1_epi8(b'{' as i8)),
            closing: _mm512_cmpeq_epi8_mask(folded, _mm512_set1_epi8(b'}' as i8)),
            colon: eq(b':'),
            comma: eq(b','),
            digit: _mm512_cmple_epu8_mask(digits, _mm512_set1_epi8(9)),
            zero: eq(b'0'),
            minus: eq(b'-'),
            dot: eq(b'.'),
            high: _mm512_movepi8_mask(v),
        }
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    pub fn classify_avx2(c: &[u8; 64]) -> Masks {
        // SAFETY: the two unaligned loads read bytes 0..32 and 32..64 of the 64-byte array.
        let halves = unsafe {
            [
                _mm256_loadu_si256(c.as_ptr().cast()),
                _mm256_loadu_si256(c.as_ptr().add(32).cast()),
            ]
        };
        let x = i128::from_le_bytes(WS);
        let (lo, hi) = (x as i64, (x >> 64) as i64);
        let table = _mm256_set_epi64x(hi, lo, hi, lo);
        macro_rules! both {
            ($f:expr) => {{
                let f = $f;
                let a = _mm256_movemask_epi8(f(halves[0])) as u32;
                let b = _mm256_movemask_epi8(f(halves[1])) as u32;
                u64::from(a) | (u64::from(b) << 32)
            }};
        }
        let eq = |c: u8| both!(|v| _mm256_cmpeq_epi8(v, _mm256_set1_epi8(c as i8)));
        // Unsigned `v <= n`: `min(v, n) == v`.
        let le =
            |v: __m256i, n: u8| _mm256_cmpeq_epi8(_mm256_min_epu8(v, _mm256_set1_epi8(n as i8)), v);
        let folded_eq = |v: __m256i, c: u8| {
            _mm256_cmpeq_epi8(
                _mm256_or_si256(v, _mm256_set1_epi8(0x20)),
                _mm256_set1_epi8(c as i8),
            )
        };
        Masks {
            quote: eq(b'"'),
            backslash: eq(b'\\'),
            ws: both!(|v| _mm256_cmpeq_epi8(_mm256_shuffle_epi8(table, v), v)),
            ctrl: both!(|v| le(v, 0x1f)),
            lbrace: eq(b'{'),
            lbracket: eq(b'['),
            rbrace: eq(b'}'),
            rbracket: eq(b']'),
            opening: both!(|v| folded_eq(v, b'{')),
            closing: both!(|v| folded_eq(v, b'}')),
            colon: eq(b':'),
            comma: eq(b','),
            digit: both!(|v| le(_mm256_sub_epi8(v, _mm256_set1_epi8(b'0' as i8)), 9)),
            zero: eq(b'0'),
            minus: eq(b'-'),
            dot: eq(b'.'),
            high: both!(|v| v),
        }
    }

    #[target_feature(enable = "sse2")]
    #[inline]
    pub fn classify_sse2(c: &[u8; 64]) -> Masks {
        // SAFETY: the unaligned loads read bytes 16k..16k+16 of the 64-byte array (k < 4).
        let q = unsafe {
            [0, 16, 32, 48].map(|o| _mm_loadu_si128(c.as_ptr().add(o).cast::<__m128i>()))
        };
        macro_rules! all {
            ($f:expr) => {{
                let f = $f;
                let mut m = 0u64;
                for (k, v) in q.iter().enumerate() {
                    m |= u64::from(_mm_movemask_epi8(f(*v)) as u16) << (16 * k);
                }
                m
            }};
        }
        let is = |v: __m128i, c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
        let eq = |c: u8| all!(|v| is(v, c));
        let le = |v: __m128i, n: u8| _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(n as i8)), v);
        Masks {
            quote: eq(b'"'),
            backslash: eq(b'\\'),
            ws: all!(|v| {
                _mm_or_si128(
                    _mm_or_si128(is(v, b' '), is(v, b'\t')),
                    _mm_or_si128(is(v, b'\n'), is(v, b'\r')),
                )
            }),
            ctrl: all!(|v| le(v, 0x1f)),
            lbrace: eq(b'{'),
            lbracket: eq(b'['),
            rbrace: eq(b'}'),
            rbracket: eq(b']'),
            opening: all!(|v| is(_mm_or_si128(v, _mm_set1_epi8(0x20)), b'{')),
            closing: all!(|v| is(_mm_or_si128(v, _mm_set1_epi8(0x20)), b'}')),
            colon: eq(b':'),
            comma: eq(b','),
            digit: all!(|v| le(_mm_sub_epi8(v, _mm_set1_epi8(b'0' as i8)), 9)),
            zero: eq(b'0'),
            minus: eq(b'-'),
            dot: eq(b'.'),
            high: all!(|v| v),
        }
    }

    #[cfg(test)]
    pub fn classify_for_tests(simd: super::Simd, c: &[u8; 64]) -> Masks {
        assert!(simd.is_available());
        match simd {
            // SAFETY: the CPU has the features (asserted just above; SSE2 always).
            super::Simd::Avx512 => unsafe { classify_avx512(c) },
            super::Simd::Avx2 => unsafe { classify_avx2(c) },
            _ => unsafe { classify_sse2(c) },
        }
    }

    #[cfg(test)]
    pub fn prefix_xor_for_tests(x: u64) -> u64 {
        assert!(super::Simd::Avx2.is_available());
        // SAFETY: the CPU has PCLMULQDQ (part of what `Avx2` requires, asserted just above).
        unsafe { prefix_xor_clmul(x) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks() -> Vec<[u8; 64]> {
        let mut out = Vec::new();
        // Every byte value in every position, and random chunks.
        for start in 0..4u32 {
            for rot in [0u32, 17, 40] {
                let mut c = [0u8; 64];
                for (k, x) in c.iter_mut().enumerate() {
                    *x = (start * 64 + (k as u32 + rot) % 64) as u8;
                }
                out.push(c);
            }
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut c = [0u8; 64];
            for x in c.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let alphabet =
                    b"{}[]:,\" \t\n\r\\ax0159.-eE+\x0c\x1a\x1f\x20\x7b\x5d\x80\xff\x2f\x3a";
                *x = alphabet[(seed % alphabet.len() as u64) as usize];
            }
            out.push(c);
        }
        out
    }

    #[test]
    fn every_implementation_classifies_like_the_table() {
        for c in chunks() {
            let want = classify_portable(&c);
            // The table itself, spot-checked.
            assert_eq!(
                want.quote.count_ones() as usize,
                c.iter().filter(|&&x| x == b'"').count()
            );
            #[cfg(target_arch = "x86_64")]
            for simd in Simd::available() {
                if simd != Simd::Portable {
                    assert_eq!(x86::classify_for_tests(simd, &c), want, "{simd:?} on {c:?}");
                }
            }
        }
    }

    #[test]
    fn prefix_xor_is_the_running_parity() {
        let mut seed = 12345u64;
        for _ in 0..1000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let x = seed;
            let mut want = 0u64;
            let mut p = 0;
            for k in 0..64 {
                p ^= (x >> k) & 1;
                want |= p << k;
            }
            assert_eq!(prefix_xor(x), want);
            #[cfg(target_arch = "x86_64")]
            if Simd::Avx2.is_available() {
                assert_eq!(x86::prefix_xor_for_tests(x), want);
            }
        }
    }

    #[test]
    fn detection_is_stable_and_available() {
        assert_eq!(Simd::detected(), Simd::detected());
        assert!(Simd::detected().is_available());
        assert!(Simd::Portable.is_available());
        assert_eq!(Simd::available()[0], Simd::detected());
    }

    /// Every implementation finds what the portable loop finds, from every start, in texts of every
    /// length around the vector widths (so that each tail case comes up: shorter than a vector,
    /// ending on one, a hit in the last byte), whether `take` takes a hit or passes it over.
    #[test]
    fn every_implementation_finds_pairs_like_the_loop() {
        let mut texts: Vec<Vec<u8>> = Vec::new();
        let alphabet = b"\"\\pSMx ";
        let mut seed = 7u32;
        for len in 0..=140 {
            for _ in 0..3 {
                let t: Vec<u8> = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                        alphabet[(seed >> 16) as usize % alphabet.len()]
                    })
                    .collect();
                texts.push(t);
            }
            let mut t = vec![b'x'; len];
            if let Some(c) = t.last_mut() {
                *c = b'\\';
            }
            texts.push(t.clone());
            if len >= 2 {
                t[len - 2] = b'"';
                t[len - 1] = b'p';
                texts.push(t);
            }
        }
        for seconds in [&b"p"[..], b"pS", b"pSMa", b"pSMabcde", b""] {
            for t in &texts {
                for at in 0..=t.len() {
                    for skip_odd in [false, true] {
                        let take = |p: usize| !skip_odd || p.is_multiple_of(2);
                        let want = find_pair(Simd::Portable, t, at, seconds, take);
                        for simd in Simd::available() {
                            let got = find_pair(simd, t, at, seconds, take);
                            assert_eq!(
                                got,
                                want,
                                "{simd:?} {:?} from {at} for {:?}",
                                String::from_utf8_lossy(t),
                                String::from_utf8_lossy(seconds)
                            );
                        }
                    }
                }
            }
        }
    }
}
