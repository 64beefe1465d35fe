//! The event index: where the strings, tokens and brackets of an event are, 64 bytes per [`Block`]
//! (simdjson's "stage 1"), and the scanner's navigation over it.
//!
//! Owns: [`extend`] (the lazy index, a few blocks at a time; validating, it also checks each block's
//! strings), the fused [`skip`] past a container without indexing it,
//! [`Index`] and [`Cursor`], a place in the token sequence, and the string arithmetic every builder
//! shares ([`escaped`], [`strings`], [`Carry`]).
//!
//! A *token* is the first byte of a lexical unit outside strings: `{ } [ ] : ,`, the opening quote
//! of a string, and the first byte of a *scalar*, a run of bytes outside strings that are neither
//! whitespace, operators nor quotes (numbers, `true`, `false`, `null`). Between two tokens there is
//! only whitespace or the rest of the first token, so a string or scalar is skipped by going to the
//! next token, and a container by counting its brackets, a block at a time.
//!
//! Promises: for every JSON text (where each backslash is inside a string) the masks are exact:
//! `quote` holds the quotes that open and close strings as `json::parse` reads them. Whatever the
//! bytes, building and navigating never panic and never read outside the event.

use super::paths::same_bytes;
use super::simd::Masks;

/// 64 bytes of the event (the last block is padded with spaces).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Block {
    /// Quotes that open or close a string (escaped quotes excluded).
    pub quote: u64,
    /// First bytes of tokens.
    pub token: u64,
    /// Bytes of scalars.
    pub scalar: u64,
    /// Backslashes (anywhere).
    pub backslash: u64,
    /// `{ [` and `} ]` outside strings, and how many of each.
    pub open: u64,
    pub close: u64,
    pub opens: u32,
    pub closes: u32,
}

/// What one block passes to the next.
#[derive(Debug, Clone, Copy, Default)]
pub struct Carry {
    /// 1 when the next block's first byte is escaped.
    pub escaped: u64,
    /// All ones when the next block starts inside a string.
    pub string: u64,
    /// 1 when the previous block ended inside a scalar.
    pub scalar: u64,
}

/// The bytes escaped by a backslash (simdjson's branch-free odd/even backslash-run arithmetic); `carry`
/// says whether the block's first byte is escaped, and is set for the next block.
#[inline(always)]
pub fn escaped(backslash: u64, carry: &mut u64) -> u64 {
    if backslash == 0 {
        return std::mem::take(carry);
    }
    const ODD: u64 = 0xaaaa_aaaa_aaaa_aaaa;
    // A backslash that is itself escaped starts nothing.
    let potential = backslash & !*carry;
    // Runs starting on an even byte: subtraction turns their odd bytes on; XOR with ODD then marks the
    // backslashes that escape, and the byte after every odd-length run.
    let code = (((potential << 1) | ODD).wrapping_sub(potential)) ^ ODD;
    let escaped = code ^ (backslash | *carry);
    *carry = (code & backslash) >> 63;
    escaped
}

/// The strings of one block: (unescaped quotes, bytes inside strings with the opening quote, escaped
/// bytes), updating `carry` for the next block.
#[inline(always)]
pub fn strings(m: &Masks, carry: &mut Carry, prefix_xor: &impl Fn(u64) -> u64) -> (u64, u64, u64) {
    let escaped = escaped(m.backslash, &mut carry.escaped);
    let quote = m.quote & !escaped;
    // Inside a string: from its opening quote (included) to its closing quote (excluded).
    let string = prefix_xor(quote) ^ carry.string;
    carry.string = ((string as i64) >> 63) as u64;
    (quote, string, escaped)
}

/// The block of one chunk, with the bytes inside its strings and its escaped bytes (see `strings`).
#[inline(always)]
fn block_strings(
    m: &Masks,
    carry: &mut Carry,
    prefix_xor: &impl Fn(u64) -> u64,
) -> (Block, u64, u64) {
    let (quote, string, escaped) = strings(m, carry, prefix_xor);
    let outside = !(string | quote);
    let open = m.opening & outside;
    let close = m.closing & outside;
    let ops = open | close | ((m.colon | m.comma) & outside);
    let scalar = outside & !ops & !m.ws;
    let starts = scalar & !((scalar << 1) | carry.scalar);
    carry.scalar = scalar >> 63;
    let blk = Block {
        quote,
        token: ops | (quote & string) | starts,
        scalar,
        backslash: m.backslash,
        open,
        close,
        opens: open.count_ones(),
        closes: close.count_ones(),
    };
    (blk, string, escaped)
}

/// The 64 bytes at `at` (padded with spaces past the end).
#[inline(always)]
pub fn chunk(b: &[u8], at: usize) -> [u8; 64] {
    match b.get(at..at + 64) {
        Some(c) => c.try_into().expect("64 bytes"),
        None => {
            let mut pad = [b' '; 64];
            let rest = b.get(at..).unwrap_or_default();
            pad[..rest.len()].copy_from_slice(rest);
            pad
        }
    }
}

/// Builds the complete index of `b` (bytes known to be JSON) into `out` (for tests: the scanner
/// builds lazily, with `extend`).
#[cfg(test)]
#[inline(always)]
pub fn build(
    b: &[u8],
    out: &mut Vec<Block>,
    classify: impl Fn(&[u8; 64]) -> Masks,
    prefix_xor: impl Fn(u64) -> u64,
) {
    out.clear();
    out.resize(b.len().div_ceil(64), Block::default());
    let mut carry = Carry::default();
    let mut chunks = b.chunks_exact(64);
    let mut slots = out.iter_mut();
    for (c, slot) in (&mut chunks).zip(&mut slots) {
        let c: &[u8; 64] = c.try_into().expect("64 bytes");
        *slot = block_strings(&classify(c), &mut carry, &prefix_xor).0;
    }
    if let Some(slot) = slots.next() {
        let m = classify(&chunk(b, b.len() / 64 * 64));
        *slot = block_strings(&m, &mut carry, &prefix_xor).0;
    }
}

/// Builds up to `n` more blocks of a lazy index of `b`. With `CHECK` (bytes not known to be JSON), it
/// also checks what a block's strings hold without context (no raw control byte, every escape one
/// `json::parse` accepts) and sets `ix.bad` when they do not.
#[inline(always)]
pub fn extend<const CHECK: bool>(
    b: &[u8],
    ix: &mut Index,
    n: usize,
    classify: impl Fn(&[u8; 64]) -> Masks,
    prefix_xor: impl Fn(u64) -> u64,
) {
    for _ in 0..n {
        let at = ix.built_end();
        if at >= b.len() {
            break;
        }
        let m = match b.get(at..at + 64) {
            Some(c) => classify(c.try_into().expect("64 bytes")),
            None => classify(&chunk(b, at)),
        };
        let (blk, string, escaped) = block_strings(&m, &mut ix.carry, &prefix_xor);
        if CHECK {
            ix.bad |= m.ctrl & string != 0
                || (escaped != 0 && !super::validate::escapes_valid(b, at, escaped));
        }
        ix.escapes |= blk.backslash != 0;
        ix.blocks.push(blk);
    }
    ix.complete = ix.built_end() >= b.len();
}

/// From `at`, inside `depth` open containers, in the string state `carry`: the position after the
/// bracket that closes the outermost, found 64 bytes at a time without indexing (brackets outside
/// strings are counted; only a chunk where the count may reach zero is followed bracket by bracket).
/// `None` when the bytes end first. (It does not check that brackets pair up by kind.)
#[inline(always)]
pub fn skip(
    b: &[u8],
    mut at: usize,
    mut depth: u32,
    mut carry: Carry,
    classify: impl Fn(&[u8; 64]) -> Masks,
    prefix_xor: impl Fn(u64) -> u64,
) -> Option<usize> {
    while at < b.len() {
        let m = match b.get(at..at + 64) {
            Some(c) => classify(c.try_into().expect("64 bytes")),
            None => classify(&chunk(b, at)),
        };
        let (quote, string, _) = strings(&m, &mut carry, &prefix_xor);
        let outside = !(string | quote);
        let opens = m.opening & outside;
        let closes = m.closing & outside;
        match closer(opens, closes, closes.count_ones(), &mut depth) {
            Some(bit) => return Some(at + bit + 1),
            None => at += 64,
        }
    }
    None
}

/// In a block's brackets (`n` closers): the bit of the closer that brings `depth` to zero, or the
/// depth after them.
#[inline(always)]
fn closer(opens: u64, closes: u64, n: u32, depth: &mut u32) -> Option<usize> {
    if n < *depth {
        *depth = *depth + opens.count_ones() - n;
        return None;
    }
    let mut m = opens | closes;
    while m != 0 {
        let bit = m & m.wrapping_neg();
        if closes & bit != 0 {
            *depth -= 1;
            if *depth == 0 {
                return Some(bit.trailing_zeros() as usize);
            }
        } else {
            *depth += 1;
        }
        m ^= bit;
    }
    None
}

/// The index of an event: blocks from `origin` on, as far as they are built (all of them when
/// `complete`). The scanner builds them a few at a time as it reads on, skips a container it does
/// not read without indexing it (by counting brackets with `skip`, or validating, checking it with
/// `validate`), and restarts the index after it.
#[derive(Debug, Default)]
pub struct Index {
    pub blocks: Vec<Block>,
    /// The position of the first byte of `blocks[0]`.
    pub origin: usize,
    /// What the last block passes on (for building more).
    pub carry: Carry,
    /// Whether the blocks reach the end of the event.
    pub complete: bool,
    /// Whether any block built so far (since the event began) holds a backslash.
    pub escapes: bool,
    /// Whether a block built with checks (since the event began) holds what no JSON text does.
    pub bad: bool,
}

/// A place in the token sequence: the current token is the lowest set bit of `rest`, in block `k`.
/// `rest` is 0 past the last built token (whose position is then past the built blocks).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cursor {
    k: usize,
    rest: u64,
}

impl Cursor {
    /// Whether the cursor has run past the built blocks.
    #[inline(always)]
    pub fn exhausted(&self) -> bool {
        self.rest == 0
    }
}

impl Index {
    /// Empties the index, to build it afresh from `origin`, a position outside strings and scalars.
    pub fn restart(&mut self, origin: usize) {
        self.blocks.clear();
        self.origin = origin;
        self.carry = Carry::default();
        self.complete = false;
    }

    /// The position after the last built block.
    #[inline(always)]
    pub fn built_end(&self) -> usize {
        self.origin + 64 * self.blocks.len()
    }

    /// The position of the cursor's token (past the built blocks when it is exhausted).
    #[inline(always)]
    pub fn pos(&self, c: Cursor) -> usize {
        self.origin + c.k * 64 + c.rest.trailing_zeros() as usize
    }

    /// A cursor at the first built token at or after `at` (which is at or after `origin`).
    #[inline]
    pub fn seek(&self, at: usize) -> Cursor {
        let rel = at - self.origin;
        let k = rel / 64;
        let rest = self
            .blocks
            .get(k)
            .map_or(0, |b| b.token & (u64::MAX << (rel % 64)));
        let mut c = Cursor { k, rest };
        if rest == 0 {
            c.k += 1;
            self.refill(&mut c);
        }
        c
    }

    /// Moves the cursor to the next token.
    #[inline(always)]
    pub fn advance(&self, c: &mut Cursor) {
        c.rest &= c.rest.wrapping_sub(1);
        if c.rest == 0 {
            c.k += 1;
            self.refill(c);
        }
    }

    /// From block `c.k` on, to the first built block that has tokens (or past the built blocks).
    #[inline]
    pub fn refill(&self, c: &mut Cursor) {
        while let Some(b) = self.blocks.get(c.k) {
            if b.token != 0 {
                c.rest = b.token;
                return;
            }
            c.k += 1;
        }
        c.k = c.k.min(self.blocks.len());
        c.rest = 0;
    }

    /// The first position at or after `from` whose bit is set in `mask(block)`, among built blocks.
    #[inline(always)]
    fn find(&self, from: usize, mask: impl Fn(&Block) -> u64) -> Option<usize> {
        let rel = from.checked_sub(self.origin)?;
        let mut k = rel / 64;
        let mut m = mask(self.blocks.get(k)?) & (u64::MAX << (rel % 64));
        while m == 0 {
            k += 1;
            m = mask(self.blocks.get(k)?);
        }
        Some(self.origin + k * 64 + m.trailing_zeros() as usize)
    }

    /// The first string-delimiting quote at or after `from` among built blocks.
    #[inline(always)]
    pub fn quote(&self, from: usize) -> Option<usize> {
        self.find(from, |b| b.quote)
    }

    /// The first byte at or after `from` that is not part of a scalar, among built blocks.
    #[inline(always)]
    pub fn scalar_end(&self, from: usize) -> Option<usize> {
        self.find(from, |b| !b.scalar)
    }

    /// Whether `b[from..to]` holds a backslash (`true` when not all of it is built).
    #[inline(always)]
    pub fn backslash(&self, from: usize, to: usize) -> bool {
        if from >= to {
            return false;
        }
        let Some(rel) = from.checked_sub(self.origin) else {
            return true;
        };
        let (k, last) = (rel / 64, (to - 1 - self.origin) / 64);
        if k == last
            && let Some(blk) = self.blocks.get(k)
        {
            let width = to - from; // at most 64
            let m = if width == 64 {
                u64::MAX
            } else {
                (1u64 << width) - 1
            };
            return (blk.backslash >> (rel % 64)) & m != 0;
        }
        (k..=last).any(|j| self.blocks.get(j).is_none_or(|b| b.backslash != 0))
    }

    /// From the position of an opening `{` or `[` (in a built block), the position after its closing
    /// bracket when that is in a built block; else the depth reached at the end of the built blocks
    /// (to go on from with `skip` and `carry`). Brackets are counted a block at a time. (It does not
    /// check that brackets pair up by kind: the bytes are known to be JSON.)
    #[inline]
    pub fn container_end(&self, open: usize) -> Result<usize, u32> {
        let from = open + 1;
        let Some(rel) = from.checked_sub(self.origin) else {
            return Err(0);
        };
        let mut k = rel / 64;
        let keep = u64::MAX << (rel % 64);
        let mut depth = 1u32;
        let Some(blk) = self.blocks.get(k) else {
            return Err(depth);
        };
        let (o, c) = (blk.open & keep, blk.close & keep);
        let mut found = closer(o, c, c.count_ones(), &mut depth);
        while found.is_none() {
            k += 1;
            let Some(blk) = self.blocks.get(k) else {
                return Err(depth);
            };
            if blk.closes < depth {
                depth = depth + blk.opens - blk.closes;
                continue;
            }
            found = closer(blk.open, blk.close, blk.closes, &mut depth);
        }
        Ok(self.origin + k * 64 + found.unwrap_or(0) + 1)
    }
}

impl Index {
    /// The members of an object's text `from..to` (between its braces, or from one of its keys to
    /// its closing brace; all of it in built blocks) whose key is one of `keys` written without
    /// escapes: strings that spell a key, at the object's own level (as many brackets open as
    /// close before them, counted from `from`), pushed to `out` as (position of the key's opening
    /// quote, its value) in order. The caller checks that a `:` follows (a string value may spell
    /// a key too). In one sweep over the blocks: the opening quotes followed by a key's first byte
    /// (`firsts`: the bits of 64 bytes that are one of those) are the places to check, since an
    /// object's keys seldom share their first byte with its other strings; a block where the
    /// brackets opened before it cannot all close is skipped.
    #[inline(always)]
    pub fn find_keys<T: Copy>(
        &self,
        b: &[u8],
        from: usize,
        to: usize,
        keys: &[(Box<[u8]>, T)],
        out: &mut Vec<(usize, T)>,
        firsts: impl Fn(&[u8; 64]) -> u64,
    ) {
        let (Some(from), Some(to)) = (from.checked_sub(self.origin), to.checked_sub(self.origin))
        else {
            return;
        };
        let mut depth = 0i64; // opening minus closing brackets from `from` to the current block
        let last = to.div_ceil(64).min(self.blocks.len());
        for k in from / 64..last {
            let blk = &self.blocks[k];
            let mut keep = u64::MAX;
            if k == from / 64 {
                keep &= u64::MAX << (from % 64);
            }
            if k == (to - 1) / 64 && !to.is_multiple_of(64) {
                keep &= (1u64 << (to % 64)) - 1;
            }
            if keep == u64::MAX && depth > i64::from(blk.closes) {
                depth += i64::from(blk.opens) - i64::from(blk.closes);
                continue;
            }
            let opening = blk.quote & blk.token & keep;
            if opening != 0 {
                // The bytes after the block's: bit i for the byte after its byte i.
                let after = chunk(b, self.origin + k * 64 + 1);
                let mut c = opening & firsts(&after);
                while c != 0 {
                    let bit = c.trailing_zeros();
                    c &= c - 1;
                    let q = self.origin + k * 64 + bit as usize;
                    let Some((_, value)) = keys.iter().find(|(key, _)| {
                        let n = key.len();
                        b.get(q + 1..q + 2 + n)
                            .is_some_and(|t| t[n] == b'"' && same_bytes(&t[..n], key))
                    }) else {
                        continue;
                    };
                    let below = keep & !(u64::MAX << bit);
                    let here = i64::from((blk.open & below).count_ones())
                        - i64::from((blk.close & below).count_ones());
                    if depth + here == 0 {
                        out.push((q, *value));
                    }
                }
            }
            depth += if keep == u64::MAX {
                i64::from(blk.opens) - i64::from(blk.closes)
            } else {
                i64::from((blk.open & keep).count_ones())
                    - i64::from((blk.close & keep).count_ones())
            };
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::simd::{self, Simd};
    use super::*;

    /// The index of `b` built lazily, `n` blocks at a time, until it is complete.
    fn complete(simd: Simd, b: &[u8], n: usize) -> Index {
        let mut ix = Index::default();
        while !ix.complete {
            simd::extend(simd, b, &mut ix, n);
        }
        ix
    }

    /// Every token position, walking a cursor from the start while the index is built a block at
    /// a time, as the scanner builds it.
    fn tokens(simd: Simd, b: &[u8]) -> Vec<usize> {
        let mut ix = Index::default();
        simd::extend(simd, b, &mut ix, 1);
        let mut out = Vec::new();
        let mut c = ix.seek(0);
        loop {
            while c.exhausted() && !ix.complete {
                simd::extend(simd, b, &mut ix, 1);
                ix.refill(&mut c);
            }
            if ix.pos(c) >= b.len() {
                return out;
            }
            out.push(ix.pos(c));
            ix.advance(&mut c);
        }
    }

    /// The masks by their definition, byte by byte, for text whose backslashes are all in strings.
    fn bytewise(b: &[u8]) -> Vec<(bool, bool, bool)> {
        let mut out = Vec::new();
        let (mut in_string, mut escaped, mut in_scalar) = (false, false, false);
        for &c in b {
            let (mut quote, mut token, mut scalar) = (false, false, false);
            if in_string {
                if escaped {
                    escaped = false;
                } else if c == b'\\' {
                    escaped = true;
                } else if c == b'"' {
                    in_string = false;
                    quote = true;
                }
                in_scalar = false;
            } else if c == b'"' {
                in_string = true;
                quote = true;
                token = true;
                in_scalar = false;
            } else if matches!(c, b'{' | b'}' | b'[' | b']' | b':' | b',') {
                token = true;
                in_scalar = false;
            } else if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                in_scalar = false;
            } else {
                scalar = true;
                token = !in_scalar;
                in_scalar = true;
            }
            out.push((quote, token, scalar));
        }
        out
    }

    pub(crate) fn next(seed: &mut u64) -> usize {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*seed >> 33) as usize
    }

    /// Random text of JSON-ish pieces, strings always closed, crossing many block boundaries.
    pub(crate) fn text(seed: &mut u64) -> Vec<u8> {
        let pieces: &[&[u8]] = &[
            b"\"a\"",
            b"\"\\\\\"",
            b"\"x\\\"y\"",
            b"\"\\\\\\\"\"",
            b"\"{[,:]}\"",
            b"\"\"",
            b"\"\\u00e9\"",
            b"\"caf\xc3\xa9\"",
            b"{",
            b"}",
            b"[",
            b"]",
            b":",
            b",",
            b" ",
            b"\n",
            b"-12.5e3",
            b"true",
            b"null",
            b"0",
            b"x",
            b"\"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz0123456789\"",
        ];
        let n = next(seed) % 200;
        let mut out = Vec::new();
        for _ in 0..n {
            out.extend_from_slice(pieces[next(seed) % pieces.len()]);
        }
        out
    }

    #[test]
    fn masks_match_their_bytewise_definition_under_every_implementation() {
        let mut seed = 3;
        for _ in 0..2000 {
            let t = text(&mut seed);
            let want = bytewise(&t);
            let positions: Vec<usize> = (0..want.len()).filter(|&k| want[k].1).collect();
            for simd in Simd::available() {
                let shown = || String::from_utf8_lossy(&t).into_owned();
                assert_eq!(
                    tokens(simd, &t),
                    positions,
                    "{simd:?} tokens of {}",
                    shown()
                );
                let ix = complete(simd, &t, 3);
                let mut full = Vec::new();
                simd::build(simd, &t, &mut full);
                assert_eq!(ix.blocks, full, "{simd:?}");
                for (k, &(quote, _, scalar)) in want.iter().enumerate() {
                    let b = &ix.blocks[k / 64];
                    let bit = |m: u64| m >> (k % 64) & 1 == 1;
                    assert_eq!(
                        (bit(b.quote), bit(b.scalar)),
                        (quote, scalar),
                        "{simd:?} byte {k} of {}",
                        shown()
                    );
                }
                for (n, &p) in positions.iter().enumerate() {
                    let after = ix.pos(ix.seek(p + 1));
                    match positions.get(n + 1) {
                        Some(&q) => assert_eq!(after, q),
                        None => assert!(after >= t.len()),
                    }
                }
            }
        }
    }

    #[test]
    fn container_end_finds_the_matching_closer_by_index_and_by_skipping() {
        let mut seed = 5;
        let mut checked = 0;
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for _ in 0..4000 {
            cases.push(text(&mut seed));
        }
        for depth in 1..150 {
            let t = format!(
                "{}\"]}}\\\"\"{}",
                "[{\"k\":".repeat(depth),
                "}]".repeat(depth)
            );
            cases.push(t.replace("\\\"\"}", "\"}").into_bytes());
        }
        for t in cases {
            let Ok(crate::json::Json::Array(_) | crate::json::Json::Object(_)) =
                crate::json::parse(&t)
            else {
                continue;
            };
            let start = t.iter().position(|c| !c.is_ascii_whitespace()).unwrap();
            let end = t.iter().rposition(|c| !c.is_ascii_whitespace()).unwrap() + 1;
            for simd in Simd::available() {
                let shown = || String::from_utf8_lossy(&t).into_owned();
                let ix = complete(simd, &t, 4);
                assert_eq!(ix.container_end(start), Ok(end), "{simd:?}: {}", shown());
                // Partly built: counting goes on without indexing from the last block's carry.
                let mut part = Index::default();
                simd::extend(simd, &t, &mut part, 1);
                if start < part.built_end() {
                    let got = match part.container_end(start) {
                        Ok(e) => e,
                        Err(depth) => {
                            simd::skip(simd, &t, part.built_end(), depth, part.carry).unwrap()
                        }
                    };
                    assert_eq!(got, end, "{simd:?} partly built: {}", shown());
                }
                let skipped = simd::skip(simd, &t, start + 1, 1, Carry::default());
                assert_eq!(skipped, Some(end), "{simd:?}");
                let cut = simd::skip(simd, &t[..end - 1], start + 1, 1, Carry::default());
                assert_eq!(cut, None);
            }
            checked += 1;
        }
        assert!(checked > 140, "{checked}");
    }

    #[test]
    fn long_backslash_runs_across_blocks() {
        for run in 0..140 {
            for offset in 0..3 {
                let mut t = vec![b' '; offset];
                t.push(b'"');
                t.extend(std::iter::repeat_n(b'\\', run));
                t.extend_from_slice(b"\"]");
                if run % 2 == 1 {
                    continue; // the last quote is escaped: not a string
                }
                for simd in Simd::available() {
                    let ix = complete(simd, &t, 2);
                    assert_eq!(tokens(simd, &t), vec![offset, t.len() - 1]);
                    assert_eq!(ix.quote(offset + 1), Some(offset + 1 + run));
                    assert_eq!(ix.backslash(offset + 1, offset + 1 + run), run > 0);
                }
            }
        }
    }

    #[test]
    fn navigation_never_panics_on_arbitrary_bytes() {
        let mut seed = 11;
        let alphabet = b"{}[]\\\"\",:ax1 \xff";
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[next(&mut seed) % alphabet.len()])
                .collect();
            for simd in Simd::available() {
                let ix = complete(simd, &bytes, 2);
                let mut c = ix.seek(0);
                while ix.pos(c) < bytes.len() {
                    let p = ix.pos(c);
                    let _ = ix.quote(p + 1);
                    let _ = ix.scalar_end(p);
                    let _ = ix.backslash(p, bytes.len());
                    if let Err(d) = ix.container_end(p) {
                        let _ = simd::skip(simd, &bytes, ix.built_end(), d, ix.carry);
                    }
                    let _ = simd::skip(simd, &bytes, p + 1, 1, Carry::default());
                    ix.advance(&mut c);
                }
                let mut out = Vec::new();
                let keys = [(b"a"[..].into(), 0u32)];
                simd::find_keys(simd, &ix, &bytes, 0, bytes.len(), &keys, b"a", &mut out);
            }
        }
    }

    /// A JSON object without escapes whose keys and string values come from a few texts that
    /// share first bytes and lengths (and include the empty string and `:`), nested up to `depth`.
    fn object(seed: &mut u64, depth: usize, out: &mut Vec<u8>) {
        const WORDS: [&str; 8] = [
            "STREET", "ST_TYPE", "SAFE", "TO_ST", "", ":", "S", "STREET ",
        ];
        let word = |seed: &mut u64, out: &mut Vec<u8>| {
            out.push(b'"');
            out.extend_from_slice(WORDS[next(seed) % WORDS.len()].as_bytes());
            out.push(b'"');
        };
        out.push(b'{');
        for m in 0..next(seed) % 12 {
            if m > 0 {
                out.push(b',');
            }
            word(seed, out);
            out.push(b':');
            match next(seed) % 6 {
                0 | 1 => word(seed, out),
                2 if depth > 0 => object(seed, depth - 1, out),
                3 if depth > 0 => {
                    out.push(b'[');
                    object(seed, depth - 1, out);
                    out.extend_from_slice(b",\"S\",[1]]");
                }
                _ => out.extend_from_slice(b"12"),
            }
        }
        out.push(b'}');
    }

    #[test]
    fn find_keys_finds_exactly_the_strings_at_the_objects_level_that_spell_a_key() {
        let mut seed = 5;
        let keysets: [&[&str]; 5] = [
            &["STREET"],
            &["STREET", "ST_TYPE"],
            &["", ":"],
            &["S", "SAFE", "TO_ST", "STREET "],
            &["ST_TYPE", "TO_ST"],
        ];
        for round in 0..3000 {
            let mut t = Vec::new();
            object(&mut seed, 3, &mut t);
            // Sometimes from a key inside the object rather than after its brace.
            let from = match t.iter().position(|&c| c == b',') {
                Some(p) if round % 3 == 0 && t[p - 1] != b']' => p + 1,
                _ => 1,
            };
            let keyset = keysets[round % keysets.len()];
            let keys: Vec<(Box<[u8]>, usize)> = keyset
                .iter()
                .enumerate()
                .map(|(i, k)| (k.as_bytes().into(), i))
                .collect();
            let mut firsts: Vec<u8> = Vec::new();
            for k in keyset {
                let c = k.bytes().next().unwrap_or(b'"');
                if !firsts.contains(&c) {
                    firsts.push(c);
                }
            }
            // By hand: the strings at depth 0 from `from`, with the key each spells.
            let mut want = Vec::new();
            let (mut depth, mut p) = (0i64, from);
            while p < t.len() - 1 {
                match t[p] {
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => depth -= 1,
                    b'"' => {
                        let end = p + 1 + t[p + 1..].iter().position(|&c| c == b'"').unwrap();
                        if depth == 0
                            && let Some(i) =
                                keyset.iter().position(|k| k.as_bytes() == &t[p + 1..end])
                        {
                            want.push((p, i));
                        }
                        p = end;
                    }
                    _ => {}
                }
                p += 1;
            }
            for simd in Simd::available() {
                let ix = complete(simd, &t, 2);
                let mut got = Vec::new();
                simd::find_keys(simd, &ix, &t, from, t.len() - 1, &keys, &firsts, &mut got);
                assert_eq!(
                    got,
                    want,
                    "{simd:?} keys {keyset:?} from {from} in {}",
                    String::from_utf8_lossy(&t)
                );
            }
        }
    }
}
