//! One pass over the raw event bytes: descend only into keys that lead to a rule's field, skip
//! everything else with a validating byte-level skipper, and decode only the leaves that rules name.
//!
//! Owns: [`scan`] and the per-call [`Scratch`] it fills: the leaves found at rule fields (with their
//! array trail, as `flatten` assigns it), and the `(condition, leaf)` hits their values produce.
//! Promises:
//! - accepts exactly the inputs `json::parse` accepts (same grammar, same depth limit), so an event is
//!   rejected by both doors or by neither; on rejection the caller asks `json::parse` for the message;
//! - leaves, values and array positions are those of `flatten` restricted to rule fields, including
//!   "the last duplicate key wins" (the leaves of an overridden key are marked dead);
//! - never panics, never recurses deeper than `json::MAX_DEPTH`.

use super::Machine;
use super::paths::{NodeId, ROOT};
use super::values::{Scalar, ValueScratch};
use crate::json::{self, Json, MAX_DEPTH};

/// A leaf at a rule field.
#[derive(Debug, Clone, Copy)]
pub struct LeafRec {
    pub field: u32,
    pub trail_start: u32,
    pub trail_len: u32,
    pub alive: bool,
}

/// Reusable per-call state of the matcher. Most of it follows the size of the events; two stamp tables
/// (one word per condition and per field) follow the rule set and are only ever grown, never cleared,
/// so reusing one scratch (as `RuleSet::matches` does per thread) makes a call allocation-free.
#[derive(Debug, Default)]
pub struct Scratch {
    pub(crate) leaves: Vec<LeafRec>,
    pub(crate) trails: Vec<(u32, u32)>,
    trail: Vec<(u32, u32)>,
    pub(crate) hits: Vec<(u32, u32)>,
    /// Relevant keys of the objects being scanned: (child node, first leaf, end leaf).
    seen: Vec<(NodeId, u32, u32)>,
    pub(crate) any_dead: bool,
    next_array: u32,
    values: ValueScratch,
    evals: Vec<u32>,
    /// Hit conditions in order of first hit, with the range of their leaves in `pooled`.
    pub(crate) groups: Vec<(u32, u32, u32)>,
    pub(crate) pooled: Vec<u32>,
    /// Per condition: (epoch when hit, its hits' range); per field: epoch when a leaf was seen.
    pub(crate) epoch: u32,
    pub(crate) cond_slot: Vec<(u32, u32, u32)>,
    pub(crate) field_seen: Vec<u32>,
    pub(crate) pools: Vec<(u32, u32)>,
    pub(crate) chosen: Vec<u32>,
    pub(crate) matched: Vec<u32>,
    /// One bit per rule, all zero between calls.
    pub(crate) rule_bits: Vec<u64>,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch::default()
    }

    fn reset(&mut self) {
        self.leaves.clear();
        self.trails.clear();
        self.trail.clear();
        self.hits.clear();
        self.seen.clear();
        self.any_dead = false;
        self.next_array = 0;
    }
}

/// The input is not JSON (or not an object); the caller derives the exact error.
#[derive(Debug)]
pub struct Rejected;

type R<T> = Result<T, Rejected>;

/// Which bytes end a bare word (`true`, `false`, `null`), as `json::Reader::keyword` decides.
const fn word_end(c: u8) -> bool {
    matches!(
        c,
        b' ' | b'\t' | b'\n' | b'\r' | b',' | b':' | b'[' | b']' | b'{' | b'}' | b'"'
    )
}

/// Bytes of `w` that may be `"`, `\\`, a control byte or non-ASCII have their high bit set in the
/// result (the lowest such byte is exact; higher ones may be false alarms, which callers re-check).
#[inline]
fn special(w: u64) -> u64 {
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
fn non_digit(w: u64) -> u64 {
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

/// From just after an opening bracket or brace, the index after the matching closer. Sixteen bytes at
/// a time: quote bits give the in-string mask by a prefix XOR, and brackets outside strings are
/// counted; a chunk holding a backslash, or where the depth may reach zero, is walked byte by byte.
fn skip_container_fast(b: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 1usize;
    let mut in_string = false;
    loop {
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
fn skip_string_fast(b: &[u8], mut i: usize) -> Option<usize> {
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

/// Scans one event. `Ok(true)` when it is an object (the scratch then holds its leaves and hits),
/// `Ok(false)` when it is valid JSON but not an object.
pub fn scan(m: &Machine, b: &[u8], trusted: bool, s: &mut Scratch) -> R<bool> {
    s.reset();
    let mut sc = Scanner {
        trusted,
        m,
        b,
        i: 0,
        depth: 0,
        s,
    };
    sc.ws();
    let object = sc.peek() == Some(b'{');
    if object {
        sc.object(ROOT)?;
    } else {
        sc.skip_validating()?;
    }
    sc.ws();
    if sc.i < b.len() {
        return Err(Rejected);
    }
    Ok(object)
}

struct Scanner<'a, 'm, 's> {
    /// Whether the bytes are known to be valid JSON: values no rule names are then skipped by their
    /// structure alone (quotes, escapes, brackets), without validating them.
    trusted: bool,
    m: &'m Machine,
    b: &'a [u8],
    i: usize,
    depth: usize,
    s: &'s mut Scratch,
}

impl<'a> Scanner<'a, '_, '_> {
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline(always)]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            self.i += 1;
        }
    }

    #[inline]
    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Rejected);
        }
        Ok(())
    }

    /// After `"`: finds the closing quote, validating escapes, control bytes and UTF-8. Returns the
    /// raw content range and whether it holds escapes; leaves `i` after the closing quote.
    #[inline(always)]
    fn string_raw(&mut self) -> R<(usize, usize, bool)> {
        let b = self.b;
        let start = self.i + 1;
        let mut i = start;
        let mut escaped = false;
        let mut high = false;
        loop {
            // Eight bytes at a time until one may be a quote, a backslash, a control or a non-ASCII byte.
            while let Some(chunk) = b.get(i..i + 8) {
                let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
                let m = special(w);
                if m != 0 {
                    i += (m.trailing_zeros() / 8) as usize;
                    break;
                }
                i += 8;
            }
            let Some(&c) = b.get(i) else {
                return Err(Rejected);
            };
            match c {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    match b.get(i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                        Some(b'u') => {
                            let ok = b
                                .get(i + 2..i + 6)
                                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
                            if !ok {
                                return Err(Rejected);
                            }
                            i += 6;
                        }
                        _ => return Err(Rejected),
                    }
                }
                0..=0x1f => return Err(Rejected),
                0x80.. => {
                    high = true;
                    i += 1;
                }
                _ => i += 1, // a false alarm of `special`
            }
        }
        if high && std::str::from_utf8(&b[start..i]).is_err() {
            return Err(Rejected);
        }
        self.i = i + 1;
        Ok((start, i, escaped))
    }

    /// Decodes a validated string's content (with its quotes at `start-1` and `end`).
    fn decode(&self, start: usize, end: usize) -> R<String> {
        match json::parse(&self.b[start - 1..=end]) {
            Ok(Json::String(s)) => Ok(s),
            _ => Err(Rejected),
        }
    }

    #[inline(always)]
    fn number(&mut self) -> R<(usize, usize)> {
        let b = self.b;
        let start = self.i;
        let mut i = start;
        let digits = |i: &mut usize| {
            let s = *i;
            // Eight bytes at a time: the lowest byte that is not a digit is exact.
            while let Some(chunk) = b.get(*i..*i + 8) {
                let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
                let m = non_digit(w);
                if m != 0 {
                    *i += (m.trailing_zeros() / 8) as usize;
                    return *i - s;
                }
                *i += 8;
            }
            while let Some(c) = b.get(*i)
                && c.is_ascii_digit()
            {
                *i += 1;
            }
            *i - s
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        let int_start = i;
        let n = digits(&mut i);
        if n == 0 || (n > 1 && b[int_start] == b'0') {
            return Err(Rejected);
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if digits(&mut i) == 0 {
                return Err(Rejected);
            }
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                return Err(Rejected);
            }
        }
        if let Some(&c) = b.get(i)
            && (c.is_ascii_alphanumeric() || c == b'.' || c == b'+' || c == b'-')
        {
            return Err(Rejected);
        }
        self.i = i;
        Ok((start, i))
    }

    fn keyword(&mut self) -> R<Scalar<'static>> {
        let start = self.i;
        let mut end = start;
        while end < self.b.len() && !word_end(self.b[end]) {
            end += 1;
        }
        let v = match &self.b[start..end] {
            b"true" => Scalar::Bool(true),
            b"false" => Scalar::Bool(false),
            b"null" => Scalar::Null,
            _ => return Err(Rejected),
        };
        self.i = end;
        Ok(v)
    }

    /// After `{` or `,` in an object being skipped: a key and its colon.
    #[inline(always)]
    fn skip_key(&mut self) -> R<()> {
        self.ws();
        if self.peek() != Some(b'"') {
            return Err(Rejected);
        }
        self.string_raw()?;
        self.ws();
        if self.peek() != Some(b':') {
            return Err(Rejected);
        }
        self.i += 1;
        Ok(())
    }

    /// Skips a value no rule names.
    #[inline]
    fn skip_value(&mut self) -> R<()> {
        if self.trusted {
            self.skip_structure()
        } else {
            self.skip_validating()
        }
    }

    /// Skips a value of bytes known to be valid JSON: finds its end by quotes, escapes and brackets,
    /// eight bytes at a time. On invalid bytes it still never reads out of bounds or panics.
    fn skip_structure(&mut self) -> R<()> {
        self.ws();
        let b = self.b;
        let mut i = self.i;
        match b.get(i) {
            Some(b'"') => {
                self.i = skip_string_fast(b, i + 1).ok_or(Rejected)?;
                Ok(())
            }
            Some(b'{' | b'[') => {
                self.i = skip_container_fast(b, i + 1).ok_or(Rejected)?;
                Ok(())
            }
            Some(_) => {
                while let Some(&c) = b.get(i) {
                    if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    i += 1;
                }
                if i == self.i {
                    return Err(Rejected);
                }
                self.i = i;
                Ok(())
            }
            None => Err(Rejected),
        }
    }

    /// Skips any value, validating it. Iterative: nesting is a bit stack (1 = object), not recursion.
    fn skip_validating(&mut self) -> R<()> {
        // Scalars (most skipped values) need no nesting stack.
        self.ws();
        match self.peek() {
            Some(b'"') => return self.string_raw().map(|_| ()),
            Some(b'-' | b'0'..=b'9') => return self.number().map(|_| ()),
            Some(b'{' | b'[') => {}
            Some(_) => return self.keyword().map(|_| ()),
            None => return Err(Rejected),
        }
        let mut kinds = [0u64; MAX_DEPTH / 64 + 1];
        let mut level = 0usize;
        'value: loop {
            self.ws();
            match self.peek() {
                Some(b'{') => {
                    self.enter()?;
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                        self.depth -= 1;
                    } else {
                        kinds[level / 64] |= 1 << (level % 64);
                        level += 1;
                        self.skip_key()?;
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    self.enter()?;
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b']') {
                        self.i += 1;
                        self.depth -= 1;
                    } else {
                        kinds[level / 64] &= !(1 << (level % 64));
                        level += 1;
                        continue 'value;
                    }
                }
                Some(b'"') => {
                    self.string_raw()?;
                }
                Some(b'-' | b'0'..=b'9') => {
                    self.number()?;
                }
                Some(_) => {
                    self.keyword()?;
                }
                None => return Err(Rejected),
            }
            // After a value: close finished containers, or go on to the next member.
            loop {
                if level == 0 {
                    return Ok(());
                }
                let object = kinds[(level - 1) / 64] & (1 << ((level - 1) % 64)) != 0;
                self.ws();
                match self.peek() {
                    Some(b',') => {
                        self.i += 1;
                        if object {
                            self.skip_key()?;
                        }
                        continue 'value;
                    }
                    Some(b'}') if object => {}
                    Some(b']') if !object => {}
                    _ => return Err(Rejected),
                }
                self.i += 1;
                self.depth -= 1;
                level -= 1;
            }
        }
    }

    /// An object whose path is `node`'s.
    fn object(&mut self, node: NodeId) -> R<()> {
        self.enter()?;
        self.i += 1;
        let base = self.s.seen.len();
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            self.depth -= 1;
            return Ok(());
        }
        let m = self.m;
        let children = &m.paths.nodes[node as usize].children;
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(Rejected);
            }
            let (ks, ke, escaped) = self.string_raw()?;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(Rejected);
            }
            self.i += 1;
            let child = if children.is_empty() {
                None
            } else if escaped {
                let k = self.decode(ks, ke)?;
                children.get(k.as_bytes())
            } else {
                children.get(&self.b[ks..ke])
            };
            match child {
                Some(c) => {
                    let first = self.s.leaves.len() as u32;
                    let dup = self.s.seen[base..].iter().position(|x| x.0 == c);
                    if let Some(p) = dup {
                        // An earlier occurrence of this key is overridden: its leaves no longer count.
                        let (_, a, z) = self.s.seen[base + p];
                        for l in &mut self.s.leaves[a as usize..z as usize] {
                            l.alive = false;
                        }
                        self.s.any_dead = true;
                    }
                    self.value(c)?;
                    let end = self.s.leaves.len() as u32;
                    match dup {
                        Some(p) => self.s.seen[base + p] = (c, first, end),
                        None => self.s.seen.push((c, first, end)),
                    }
                }
                None => self.skip_value()?,
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    self.depth -= 1;
                    self.s.seen.truncate(base);
                    return Ok(());
                }
                _ => return Err(Rejected),
            }
        }
    }

    /// An array whose path is `node`'s: every element sits at the same path, one array position each.
    fn array(&mut self, node: NodeId) -> R<()> {
        self.enter()?;
        self.i += 1;
        let id = self.s.next_array;
        self.s.next_array += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            self.depth -= 1;
            return Ok(());
        }
        let mut ix = 0u32;
        loop {
            self.s.trail.push((id, ix));
            self.value(node)?;
            self.s.trail.pop();
            ix += 1;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(Rejected),
            }
        }
    }

    /// A value whose path is `node`'s.
    fn value(&mut self, node: NodeId) -> R<()> {
        self.ws();
        let n = &self.m.paths.nodes[node as usize];
        let field = n.field;
        match self.peek() {
            Some(b'{') if !n.children.is_empty() => self.object(node),
            Some(b'[') => self.array(node),
            Some(b'"') if field.is_some() => {
                let (a, z, escaped) = self.string_raw()?;
                let b: &'a [u8] = self.b;
                if escaped {
                    let s = self.decode(a, z)?;
                    self.leaf(field, Scalar::Str(&s));
                } else {
                    // Validated UTF-8 by `string_raw`.
                    let s = std::str::from_utf8(&b[a..z]).map_err(|_| Rejected)?;
                    self.leaf(field, Scalar::Str(s));
                }
                Ok(())
            }
            Some(b'-' | b'0'..=b'9') if field.is_some() => {
                let (a, z) = self.number()?;
                let b: &'a [u8] = self.b;
                let t = std::str::from_utf8(&b[a..z]).map_err(|_| Rejected)?;
                self.leaf(field, Scalar::Num(t));
                Ok(())
            }
            Some(c) if field.is_some() && c != b'{' => {
                let v = self.keyword()?;
                self.leaf(field, v);
                Ok(())
            }
            _ => self.skip_value(),
        }
    }

    fn leaf(&mut self, field: Option<u32>, v: Scalar) {
        let Some(f) = field else { return };
        let s = &mut *self.s;
        let leaf = s.leaves.len() as u32;
        s.leaves.push(LeafRec {
            field: f,
            trail_start: s.trails.len() as u32,
            trail_len: s.trail.len() as u32,
            alive: true,
        });
        s.trails.extend_from_slice(&s.trail);
        s.evals.clear();
        self.m.fields[f as usize].eval(&v, &mut s.values, &mut s.evals);
        for &c in &s.evals {
            s.hits.push((c, leaf));
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
}
