//! Byte strings → lists of entries: the exact lookups of the value matchers (string values, their
//! folded forms, the operands of prefixes and suffixes).
//!
//! Owns: [`ByteMap`]. A map of at most `FEW` keys (most fields' rules name a handful of values) is
//! searched without hashing: a key whose length no key has is refused by one bit test, the others are
//! compared length first, by two overlapping words (`paths::same_bytes`). A larger map is hashed.
//! Promise: `get` returns exactly the entries inserted under bytes equal to the key, in the order they
//! were inserted.

use super::FxMap;
use super::paths::same_bytes;

/// Most keys compared one by one rather than hashed (hashing a short value and probing cost about
/// as much as comparing this many keys, most of which the length test refuses). Measured with
/// callgrind on the benchmark's sets: a branch-free compare of all keys' words at once cost more.
const FEW: usize = 8;

#[derive(Debug, Clone, Default)]
pub struct ByteMap {
    few: Vec<(Box<[u8]>, Vec<u32>)>,
    many: FxMap<Box<[u8]>, Vec<u32>>,
    /// Bit `min(len, 63)` set for the length of every key.
    lens: u64,
}

#[inline(always)]
fn len_bit(n: usize) -> u64 {
    1 << n.min(63)
}

impl ByteMap {
    /// The entries of `key`, to push to (created empty when absent).
    pub fn entry(&mut self, key: &[u8]) -> &mut Vec<u32> {
        self.lens |= len_bit(key.len());
        if self.many.is_empty() {
            if let Some(i) = self.few.iter().position(|(k, _)| k[..] == *key) {
                return &mut self.few[i].1;
            }
            if self.few.len() < FEW {
                self.few.push((key.into(), Vec::new()));
                return &mut self.few.last_mut().expect("just pushed").1;
            }
            self.many.extend(self.few.drain(..));
        }
        self.many.entry(key.into()).or_default()
    }

    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&[u32]> {
        if self.lens & len_bit(key.len()) == 0 {
            return None;
        }
        if self.many.is_empty() {
            self.few
                .iter()
                .find(|(k, _)| same_bytes(k, key))
                .map(|(_, v)| &v[..])
        } else {
            self.many.get(key).map(|v| &v[..])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ByteMap;

    #[test]
    fn finds_exactly_what_was_inserted_few_or_many() {
        for n in [0, 1, 3, 8, 9, 40, 200] {
            let mut m = ByteMap::default();
            // Lengths 1 to 23; the long ones differ only in their middle byte, which the words
            // of a key longer than 16 bytes do not cover.
            let key = |i: usize| {
                let mut k = format!("k{}", "x".repeat(i % 23)).into_bytes();
                let mid = k.len() / 2;
                if k.len() > 16 {
                    k[mid] = b'a' + (i % 7) as u8;
                }
                k
            };
            for i in 0..n {
                // (Keys 0 and 23 are the same bytes: their entries share a list.)
                m.entry(&key(i)).push(i as u32);
            }
            for i in 0..n {
                let want: Vec<u32> = (0..n)
                    .filter(|&j| key(j) == key(i))
                    .map(|j| j as u32)
                    .collect();
                assert_eq!(m.get(&key(i)), Some(&want[..]), "{n} keys, key {i}");
            }
            for absent in [&b""[..], b"k", b"x", b"kxy", &[b'x'; 70]] {
                if (0..n).all(|i| key(i) != absent) {
                    assert_eq!(m.get(absent), None, "{n} keys, {absent:?}");
                }
            }
        }
    }

    #[test]
    fn long_keys_that_share_their_words_are_told_apart() {
        let mut m = ByteMap::default();
        let key = |c: u8| {
            let mut k = vec![b'x'; 20];
            k[10] = c;
            k
        };
        for c in b"abcdef" {
            m.entry(&key(*c)).push(u32::from(*c));
        }
        for c in b"abcdef" {
            assert_eq!(m.get(&key(*c)), Some(&[u32::from(*c)][..]));
        }
        assert_eq!(m.get(&key(b'z')), None);
    }
}
