//! Many prefixes (or suffixes) of one field, looked up in time proportional to the number of distinct
//! operand lengths, not the number of operands.
//!
//! Owns: a hash map from operand bytes to the entries that carry it, plus the sorted set of operand
//! lengths. A lookup hashes the value's prefix (suffix) of each such length. Promise: every entry whose
//! operand is a prefix (suffix) of the value is reported, once per operand occurrence, and no other.

use super::FxMap;

/// Which end of the value the operands anchor to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Start,
    Finish,
}

#[derive(Debug, Clone)]
pub struct AffixIndex {
    end: End,
    /// Distinct operand lengths, ascending.
    lengths: Vec<usize>,
    by_operand: FxMap<Box<[u8]>, Vec<u32>>,
}

impl AffixIndex {
    pub fn new(end: End) -> Self {
        AffixIndex {
            end,
            lengths: Vec::new(),
            by_operand: FxMap::default(),
        }
    }

    pub fn insert(&mut self, operand: &[u8], entry: u32) {
        if let Err(at) = self.lengths.binary_search(&operand.len()) {
            self.lengths.insert(at, operand.len());
        }
        self.by_operand
            .entry(operand.into())
            .or_default()
            .push(entry);
    }

    /// Calls `f` with the entries of every operand that is a prefix (suffix) of `value`.
    #[inline]
    pub fn each(&self, value: &[u8], mut f: impl FnMut(&[u32])) {
        for &len in &self.lengths {
            if len > value.len() {
                break;
            }
            let part = match self.end {
                End::Start => &value[..len],
                End::Finish => &value[value.len() - len..],
            };
            if let Some(v) = self.by_operand.get_key_value(part).map(|e| e.1) {
                f(v);
            }
        }
    }
}
