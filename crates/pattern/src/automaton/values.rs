//! The value matchers of one field path: for a leaf value, which conditions accept it.
//!
//! Owns: [`FieldIndex`], one index per operator family (exact strings and numbers by hash, prefixes and
//! suffixes by [`AffixIndex`], ignore-case forms on the folded value, wildcards by [`GlobIndex`], numeric
//! ranges by [`RangeIndex`], IP addresses and CIDR blocks, `exists: true`, and `anything-but` by
//! [`AnythingButIndex`]). Each leaf value is decoded once and folded at most once.
//! Promise: `eval` pushes a condition id (possibly more than once) exactly when some matcher of that
//! condition accepts the value under `eval::accepts`; `exists: false` accepts no value.

use super::FxMap;
use super::affix::{AffixIndex, End};
use super::anything_but::AnythingButIndex;
use super::glob::GlobIndex;
use super::numbers::RangeIndex;
use crate::ast::{Literal, Matcher};
use crate::ip::{IpRange, parse_ip};
use crate::number::comparable;

/// A leaf value as the scanner found it: strings decoded, numbers as their text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    Str(&'a str),
    Num(&'a str),
    Bool(bool),
    Null,
}

/// Reusable buffers for evaluating values.
#[derive(Debug, Default)]
pub struct ValueScratch {
    /// A string value lower-cased (see `Folded`).
    pub folded: Folded,
    pub glob: Vec<u64>,
    pub excluded: Vec<u32>,
}

/// A string value lower-cased as the pattern parser does (`str::to_lowercase`): an ASCII value of
/// at most 16 bytes a word at a time into a fixed buffer (most values are short; byte by byte
/// into a `Vec`, folding cost 80 instructions a value), a longer ASCII value byte by byte into
/// `long`, any other by `str::to_lowercase`. Allocates only for non-ASCII values (and to grow
/// `long`).
#[derive(Debug, Default)]
pub struct Folded {
    short: [u8; 16],
    long: Vec<u8>,
}

impl Folded {
    /// `s` lower-cased.
    #[inline]
    pub fn of(&mut self, s: &str) -> &[u8] {
        let b = s.as_bytes();
        let n = b.len();
        let ascii = super::bytes::is_ascii(b);
        if n > 16 || !ascii {
            self.long.clear();
            if ascii {
                self.long.extend(b.iter().map(u8::to_ascii_lowercase));
            } else {
                self.long.extend_from_slice(s.to_lowercase().as_bytes());
            }
            return &self.long;
        }
        // Two words that overlap when the value is shorter than both: the bytes they share are
        // folded alike. (Fixed-size copies: no call to memcpy.)
        let w8 = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let w4 = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let out = &mut self.short;
        match n {
            8..=16 => {
                out[..8].copy_from_slice(&lower_ascii(w8(0)).to_le_bytes());
                out[n - 8..n].copy_from_slice(&lower_ascii(w8(n - 8)).to_le_bytes());
            }
            4..=7 => {
                let lower = |w: u32| lower_ascii(u64::from(w)) as u32;
                out[..4].copy_from_slice(&lower(w4(0)).to_le_bytes());
                out[n - 4..n].copy_from_slice(&lower(w4(n - 4)).to_le_bytes());
            }
            _ => {
                for (o, c) in out.iter_mut().zip(b) {
                    *o = c.to_ascii_lowercase();
                }
            }
        }
        &self.short[..n]
    }
}

/// The ASCII bytes of `w` (every byte below 0x80) with `A` to `Z` lower-cased, all at once: adding
/// 0x3f sets a byte's high bit from `A` up, adding 0x25 from `[` up (no sum carries into the next
/// byte), and the bytes between get 0x20.
#[inline(always)]
fn lower_ascii(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let from_a = w.wrapping_add(ONES * 0x3f);
    let past_z = w.wrapping_add(ONES * 0x25);
    w | ((from_a & !past_z & (ONES * 0x80)) >> 2)
}

#[derive(Debug, Clone)]
pub struct FieldIndex {
    strings: FxMap<Box<str>, Vec<u32>>,
    numbers: FxMap<i64, Vec<u32>>,
    /// Numbers outside the comparable range, by text.
    number_texts: FxMap<Box<str>, Vec<u32>>,
    trues: Vec<u32>,
    falses: Vec<u32>,
    nulls: Vec<u32>,
    /// `exists: true`: any leaf.
    present: Vec<u32>,
    prefixes: AffixIndex,
    suffixes: AffixIndex,
    prefixes_folded: AffixIndex,
    suffixes_folded: AffixIndex,
    equals_folded: FxMap<Box<[u8]>, Vec<u32>>,
    globs: GlobIndex,
    ranges: RangeIndex,
    ips: Vec<(IpRange, u32)>,
    anything_but: AnythingButIndex,
    /// Whether any matcher needs the folded string / the comparable number.
    folds: bool,
    compares: bool,
}

impl FieldIndex {
    pub fn new() -> Self {
        FieldIndex {
            strings: FxMap::default(),
            numbers: FxMap::default(),
            number_texts: FxMap::default(),
            trues: Vec::new(),
            falses: Vec::new(),
            nulls: Vec::new(),
            present: Vec::new(),
            prefixes: AffixIndex::new(End::Start),
            suffixes: AffixIndex::new(End::Finish),
            prefixes_folded: AffixIndex::new(End::Start),
            suffixes_folded: AffixIndex::new(End::Finish),
            equals_folded: FxMap::default(),
            globs: GlobIndex::new(),
            ranges: RangeIndex::default(),
            ips: Vec::new(),
            anything_but: AnythingButIndex::new(),
            folds: false,
            compares: false,
        }
    }

    pub fn insert(&mut self, m: &Matcher, cond: u32) {
        match m {
            Matcher::Exact(Literal::String(s)) => self
                .strings
                .entry(s.as_str().into())
                .or_default()
                .push(cond),
            Matcher::Exact(Literal::Number(n)) => match n.cmp {
                Some(c) => {
                    self.compares = true;
                    self.numbers.entry(c).or_default().push(cond)
                }
                None => self
                    .number_texts
                    .entry(n.text.as_str().into())
                    .or_default()
                    .push(cond),
            },
            Matcher::Exact(Literal::Bool(true)) => self.trues.push(cond),
            Matcher::Exact(Literal::Bool(false)) => self.falses.push(cond),
            Matcher::Exact(Literal::Null) => self.nulls.push(cond),
            Matcher::Ip(r) | Matcher::Cidr(r) => self.ips.push((r.clone(), cond)),
            Matcher::Prefix(p) => self.prefixes.insert(p.as_bytes(), cond),
            Matcher::Suffix(p) => self.suffixes.insert(p.as_bytes(), cond),
            Matcher::PrefixIgnoreCase(p) => {
                self.folds = true;
                self.prefixes_folded.insert(p.as_bytes(), cond)
            }
            Matcher::SuffixIgnoreCase(p) => {
                self.folds = true;
                self.suffixes_folded.insert(p.as_bytes(), cond)
            }
            Matcher::EqualsIgnoreCase(p) => {
                self.folds = true;
                self.equals_folded
                    .entry(p.as_bytes().into())
                    .or_default()
                    .push(cond)
            }
            Matcher::Wildcard(w) => self.globs.insert(w, cond),
            Matcher::AnythingBut(a) => {
                self.compares = true;
                self.anything_but.insert(a, cond)
            }
            Matcher::Numeric(r) => {
                self.compares = true;
                self.ranges.insert(r, cond)
            }
            Matcher::Exists(true) => self.present.push(cond),
            Matcher::Exists(false) => {} // about absence; decided per branch
        }
    }

    /// Pushes every condition that accepts the value.
    pub fn eval(&self, v: &Scalar, tmp: &mut ValueScratch, out: &mut Vec<u32>) {
        out.extend_from_slice(&self.present);
        let mut cmp = None;
        match *v {
            Scalar::Str(s) => {
                // (By `get_key_value` rather than `get`, here and in `AffixIndex`: the compiler
                // inlines more of it, about 10 instructions a lookup fewer; BENCHMARKS.md.)
                if let Some(c) = self.strings.get_key_value(s).map(|e| e.1) {
                    out.extend_from_slice(c);
                }
                let b = s.as_bytes();
                self.prefixes.each(b, |c| out.extend_from_slice(c));
                self.suffixes.each(b, |c| out.extend_from_slice(c));
                if self.folds {
                    let f = tmp.folded.of(s);
                    if let Some(c) = self.equals_folded.get_key_value(f).map(|e| e.1) {
                        out.extend_from_slice(c);
                    }
                    self.prefixes_folded.each(f, |c| out.extend_from_slice(c));
                    self.suffixes_folded.each(f, |c| out.extend_from_slice(c));
                }
                if !self.globs.is_empty() {
                    self.globs.each(b, &mut tmp.glob, |c| out.push(c));
                }
                if !self.ips.is_empty()
                    && let Some(addr) = parse_ip(s)
                {
                    for (r, c) in &self.ips {
                        if r.contains(&addr) {
                            out.push(*c);
                        }
                    }
                }
            }
            Scalar::Num(t) => {
                if self.compares {
                    cmp = comparable(t);
                }
                match cmp {
                    Some(c) => {
                        if let Some(v) = self.numbers.get(&c) {
                            out.extend_from_slice(v);
                        }
                        self.ranges.each(c, |e| out.push(e));
                    }
                    None => {
                        if let Some(v) = self.number_texts.get(t) {
                            out.extend_from_slice(v);
                        }
                    }
                }
            }
            Scalar::Bool(true) => out.extend_from_slice(&self.trues),
            Scalar::Bool(false) => out.extend_from_slice(&self.falses),
            Scalar::Null => out.extend_from_slice(&self.nulls),
        }
        if !self.anything_but.is_empty() {
            self.anything_but.eval(v, cmp, tmp, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Folded;

    /// Every ASCII byte at every position of values of every length to 20 (both word paths, their
    /// overlaps, the byte loop, and the longer values), and non-ASCII values, as
    /// `str::to_lowercase` folds them.
    #[test]
    fn folds_as_to_lowercase() {
        let mut f = Folded::default();
        let base = b"AbZz@[`{09Q_Mm~ YaXx";
        for n in 0..=20 {
            for at in 0..n {
                for c in 0u8..0x80 {
                    let mut v = base[..n].to_vec();
                    v[at] = c;
                    let s = std::str::from_utf8(&v).expect("ASCII");
                    assert_eq!(f.of(s), s.to_lowercase().as_bytes(), "{s:?}");
                }
            }
        }
        for s in [
            "ÀÉÎ",
            "İstanbul",
            "ΣΑΣ ΣΑΣ",
            "Straße",
            "aÀ",
            "ABCDEFGHIJKLMNOPQ",
            "ÀBCDEFGHIJKLMNOPQRST",
        ] {
            assert_eq!(f.of(s), s.to_lowercase().as_bytes(), "{s:?}");
        }
    }
}
