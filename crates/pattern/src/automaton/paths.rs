//! The field-path trie: which object keys lead towards a path that some rule names.
//!
//! Owns: [`Paths`], one node per path that is a rule's field path or a `.`-boundary prefix of one (the
//! root is the empty path). From a node, a key leads to the node of the joined path (`path.key`, or just
//! `key` at the root) when that path is a node; any other key's value is skipped unread. Keys that
//! contain dots work as in the flattener (`{"a.b": 1}` and `{"a": {"b": 1}}` both reach `a.b`), because
//! every node keeps an edge for every longer node it can reach in one key.
//! Promise: descending by keys reaches exactly the nodes whose path equals the flattener's joined path.

use super::FxMap;

pub type NodeId = u32;
pub const ROOT: NodeId = 0;

/// Key bytes (decoded) → child node. A key whose length no child key has is refused by one bit test
/// (most keys of an event lead nowhere, and this spares the loop's data-dependent branches). Few keys
/// (the common case: a node leads to a handful of fields) are compared directly, length first; many
/// are hashed. At most [`SEARCHED`] keys, none of
/// which needs escaping in JSON, may be searched for in a long object (see `Children::searched`).
#[derive(Debug, Clone, Default)]
pub struct Children {
    few: Vec<(Box<[u8]>, NodeId)>,
    many: FxMap<Box<[u8]>, NodeId>,
    searchable: bool,
    /// The first bytes of the searched keys' texts after their opening quote (a quote for the
    /// empty key), each once.
    firsts: Vec<u8>,
    /// Bit `min(len, 63)` set for the length of every key.
    lens: u64,
    /// Texts of which one occurs in any member of this node's objects that leads somewhere, when
    /// the member is written without escapes (see `Children::needles`); `None` when there are too
    /// many keys to search for.
    needles: Option<Vec<Box<[u8]>>>,
    /// The children of the keys that have a needle of their own, but the empty key.
    primary: Vec<NodeId>,
    /// The needles' second bytes (their first is a quote), each once.
    seconds: Vec<u8>,
    /// The empty key leads back to this node (the root's `{"": {...}}`), which no rule names: its
    /// members give leaves only through their own members, whose keys are this node's and are
    /// searched for anyway, so it needs no needle (`""`, whose second byte, a quote, would make
    /// every search test one more byte).
    quiet_empty: bool,
}

#[inline(always)]
fn len_bit(n: usize) -> u64 {
    1 << n.min(63)
}

const FEW: usize = 8;

/// The most keys a node may have for the scanner to search for them (see `Children::searched`).
pub const SEARCHED: usize = 4;

impl Children {
    pub fn is_empty(&self) -> bool {
        self.few.is_empty() && self.many.is_empty()
    }

    #[inline(always)]
    pub fn get(&self, key: &[u8]) -> Option<NodeId> {
        if self.lens & len_bit(key.len()) == 0 {
            return None;
        }
        if self.many.is_empty() {
            self.few
                .iter()
                .find(|(k, _)| same_bytes(k, key))
                .map(|&(_, n)| n)
        } else {
            self.many.get(key).copied()
        }
    }

    /// For a node with at most `SEARCHED` keys, none of which needs escaping: every key with its
    /// child (so that a key in JSON text without escapes is exactly these bytes); else nothing.
    pub fn searched(&self) -> &[(Box<[u8]>, NodeId)] {
        if self.searchable { &self.few } else { &[] }
    }

    /// The byte after the opening quote of each `searched` key's text, each once (at most
    /// `SEARCHED`).
    pub fn firsts(&self) -> &[u8] {
        &self.firsts
    }

    /// Texts, one of which occurs in the JSON text of every member of this node's objects whose key
    /// leads to a child, when that text has no backslash: for each key the string that spells it
    /// (`"key"`), or its opening quote and key alone (`"key`) where that also covers the keys that
    /// continue it with a dot (which the trie holds as edges too). A key that needs escaping is
    /// never written without a backslash, so it needs no text. `None` for a node with more than
    /// `FEW` keys (`Some(empty)` for a node without keys).
    pub fn needles(&self) -> Option<&[Box<[u8]>]> {
        if self.is_empty() {
            return Some(&[]);
        }
        self.needles.as_deref()
    }

    /// The children that the keys with a needle of their own lead to (those not continued with a
    /// dot from another key), but the empty key's: an object where all of them have been seen is
    /// unlikely to hold more members that matter (`None` with `needles`).
    pub fn primary(&self) -> Option<&[NodeId]> {
        self.needles.as_ref().map(|_| &self.primary[..])
    }

    /// The second bytes of `needles` (their first is a quote), each once.
    pub fn seconds(&self) -> &[u8] {
        &self.seconds
    }

    fn set_needles(&mut self) {
        self.primary.clear();
        self.seconds.clear();
        if !self.many.is_empty() {
            self.needles = None;
            return;
        }
        let keys: Vec<&[u8]> = self
            .few
            .iter()
            .map(|(k, _)| &k[..])
            .filter(|k| searchable(k))
            .collect();
        // `a` covers `b` in the form `"a`: `b` is `a.` and more.
        let dotted = |a: &[u8], b: &[u8]| {
            !a.is_empty() && b.len() > a.len() && b.starts_with(a) && b[a.len()] == b'.'
        };
        let mut needles = Vec::new();
        for (k, node) in self.few.iter().filter(|(k, _)| searchable(k)) {
            let k = &k[..];
            if keys.iter().any(|&a| dotted(a, k)) || (k.is_empty() && self.quiet_empty) {
                continue;
            }
            if !k.is_empty() {
                self.primary.push(*node);
            }
            let mut t = Vec::with_capacity(k.len() + 2);
            t.push(b'"');
            t.extend_from_slice(k);
            if k.is_empty() || !keys.iter().any(|&b| dotted(k, b)) {
                t.push(b'"');
            }
            if !self.seconds.contains(&t[1]) {
                self.seconds.push(t[1]);
            }
            needles.push(t.into_boxed_slice());
        }
        self.needles = Some(needles);
    }

    /// Whether the empty key leads back to this node and the node is no rule's field (see
    /// `quiet_empty`).
    fn set_quiet_empty(&mut self, quiet: bool) {
        self.quiet_empty = quiet;
        if self.needles.is_some() {
            self.set_needles();
        }
    }

    fn insert_if_absent(&mut self, key: &[u8], node: NodeId) {
        if self.get(key).is_some() {
            return;
        }
        self.lens |= len_bit(key.len());
        if self.many.is_empty() && self.few.len() < FEW {
            self.few.push((key.into(), node));
            self.searchable =
                self.few.len() <= SEARCHED && self.few.iter().all(|(k, _)| searchable(k));
            self.firsts.clear();
            if self.searchable {
                for (k, _) in &self.few {
                    let c = k.first().copied().unwrap_or(b'"');
                    if !self.firsts.contains(&c) {
                        self.firsts.push(c);
                    }
                }
            }
            self.set_needles();
            return;
        }
        self.needles = None;
        self.searchable = false;
        self.firsts.clear();
        for (k, n) in self.few.drain(..) {
            self.many.insert(k, n);
        }
        self.many.insert(key.into(), node);
    }
}

/// `a == b`, inline for the short keys of events (two overlapping words, no call to `bcmp`).
#[inline(always)]
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let w8 = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
    let w4 = |s: &[u8], i: usize| u32::from_le_bytes(s[i..i + 4].try_into().expect("4 bytes"));
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => w4(a, 0) == w4(b, 0) && w4(a, n - 4) == w4(b, n - 4),
        8..=16 => w8(a, 0) == w8(b, 0) && w8(a, n - 8) == w8(b, n - 8),
        _ => a == b,
    }
}

/// Whether a key, written as a JSON string without escapes, is the key itself: no quote, backslash
/// or control byte in it.
fn searchable(key: &[u8]) -> bool {
    !key.iter().any(|&c| c == b'"' || c == b'\\' || c < 0x20)
}

#[derive(Debug, Clone, Default)]
pub struct Node {
    pub children: Children,
    /// The field whose leaves sit at this path, if some rule names it.
    pub field: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Paths {
    pub nodes: Vec<Node>,
    by_path: FxMap<Box<str>, NodeId>,
    fields: u32,
}

impl Paths {
    pub fn new() -> Self {
        let mut by_path = FxMap::default();
        by_path.insert("".into(), ROOT);
        let mut root = Node::default();
        // `{"": {...}}` keeps the path empty, as the flattener joins it.
        root.children.insert_if_absent(b"", ROOT);
        root.children.set_quiet_empty(true);
        Paths {
            nodes: vec![root],
            by_path,
            fields: 0,
        }
    }

    pub fn field_count(&self) -> usize {
        self.fields as usize
    }

    fn node(&mut self, path: &str) -> (NodeId, bool) {
        if let Some(&n) = self.by_path.get(path) {
            return (n, false);
        }
        let n = self.nodes.len() as NodeId;
        self.nodes.push(Node::default());
        self.by_path.insert(path.into(), n);
        (n, true)
    }

    /// The field number of a rule path, creating the nodes and edges that lead to it.
    pub fn field(&mut self, path: &str) -> u32 {
        // The chain: root, every `.`-boundary prefix, the path itself.
        let mut chain: Vec<&str> = vec![""];
        for (i, c) in path.bytes().enumerate() {
            if c == b'.' {
                chain.push(&path[..i]);
            }
        }
        chain.push(path);
        chain.dedup();
        let ids: Vec<NodeId> = chain.iter().map(|p| self.node(p).0).collect();
        for j in 1..chain.len() {
            for i in 0..j {
                let key = if chain[i].is_empty() {
                    chain[j]
                } else {
                    &chain[j][chain[i].len() + 1..]
                };
                let (from, to) = (ids[i], ids[j]);
                self.nodes[from as usize]
                    .children
                    .insert_if_absent(key.as_bytes(), to);
            }
        }
        let last = *ids.last().expect("chain is never empty") as usize;
        match self.nodes[last].field {
            Some(f) => f,
            None => {
                let f = self.fields;
                self.fields += 1;
                self.nodes[last].field = Some(f);
                if last == ROOT as usize {
                    // `{"": 1}` now gives a leaf: the empty key needs its needle.
                    self.nodes[last].children.set_quiet_empty(false);
                }
                f
            }
        }
    }
}
