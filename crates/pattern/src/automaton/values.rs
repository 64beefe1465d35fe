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
    /// A string value lower-cased (as bytes: filled without a copy call; see `fold_into`).
    pub folded: Vec<u8>,
    pub glob: Vec<u64>,
    pub excluded: Vec<u32>,
}

/// Lower-cases as the pattern parser does (`str::to_lowercase`), without allocating for ASCII (nor
/// calling memcpy for a short value: the ASCII bytes are folded as they are copied).
pub fn fold_into(s: &str, out: &mut Vec<u8>) {
    out.clear();
    if super::bytes::is_ascii(s.as_bytes()) {
        out.extend(s.bytes().map(|c| c.to_ascii_lowercase()));
    } else {
        out.extend_from_slice(s.to_lowercase().as_bytes());
    }
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
                if let Some(c) = self.strings.get(s) {
                    out.extend_from_slice(c);
                }
                let b = s.as_bytes();
                self.prefixes.each(b, |c| out.extend_from_slice(c));
                self.suffixes.each(b, |c| out.extend_from_slice(c));
                if self.folds {
                    fold_into(s, &mut tmp.folded);
                    let f = tmp.folded.as_slice();
                    if let Some(c) = self.equals_folded.get(f) {
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
