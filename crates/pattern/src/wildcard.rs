//! `wildcard` operands: parsing with AWS's escapes and errors, matching, and the complexity limit.
//!
//! A `*` matches any run of characters (including none); `\*` is a literal star and `\\` a literal
//! backslash; any other backslash, and two stars in a row, are errors whose positions count from the
//! opening quote of the JSON string, as AWS reports them (`Consecutive wildcard characters at pos 26`).
//!
//! Matching is the classic greedy glob with one backtrack point: O(n·m) in the worst case, O(n) for
//! typical patterns, no recursion.
//!
//! Complexity: AWS rejects wildcards that would keep many matcher states alive at once ("Rule is too
//! complex - ..."). [`complexity`] computes, over every possible input, the largest set of pattern
//! positions that can be active at the same time, weighting a star twice (its loop and its exit), and a
//! pattern is rejected when that reaches [`MAX_COMPLEXITY`]. The measure is ours, calibrated on AWS's
//! verdicts in the conformance corpus (5 stars separated by one repeated character: rejected; a star
//! followed by five repeats of `/dir`: accepted); AWS does not publish its formula.

use std::collections::{HashMap, HashSet, VecDeque};

/// A pattern is too complex when its worst-case active-state weight reaches this.
pub const MAX_COMPLEXITY: usize = 13;

/// AWS's reason for a wildcard that is too complex.
pub const TOO_COMPLEX: &str = "Rule is too complex - try using fewer wildcard characters or fewer repeating character sequences after a wildcard character";

/// One unit of a parsed wildcard: a literal byte or a star.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Token {
    Byte(u8),
    Star,
}

/// A parsed wildcard operand.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Wildcard {
    /// The operand as written in the pattern (escapes included).
    pub text: String,
    pub tokens: Vec<Token>,
}

impl Wildcard {
    /// Parses an operand; errors carry AWS's reason.
    pub fn parse(text: &str) -> Result<Wildcard, String> {
        let b = text.as_bytes();
        let mut tokens = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'*' => {
                    if b.get(i + 1) == Some(&b'*') {
                        // +1: AWS counts from the opening quote of the JSON string.
                        return Err(format!("Consecutive wildcard characters at pos {}", i + 1));
                    }
                    tokens.push(Token::Star);
                }
                b'\\' => match b.get(i + 1) {
                    Some(&c @ (b'*' | b'\\')) => {
                        tokens.push(Token::Byte(c));
                        i += 1;
                    }
                    _ => return Err(format!("Invalid escape character at pos {}", i + 1)),
                },
                c => tokens.push(Token::Byte(c)),
            }
            i += 1;
        }
        Ok(Wildcard {
            text: text.to_string(),
            tokens,
        })
    }

    /// Whether the operand has a star (an escaped `\*` is a literal star, not a wildcard).
    pub fn has_star(&self) -> bool {
        self.tokens.contains(&Token::Star)
    }

    /// Whether `s` matches the whole pattern.
    pub fn matches(&self, s: &str) -> bool {
        let (t, s) = (&self.tokens, s.as_bytes());
        let (mut ti, mut si) = (0, 0);
        let mut backtrack: Option<(usize, usize)> = None; // (token after the last star, input position)
        while si < s.len() {
            match t.get(ti) {
                Some(Token::Star) => {
                    ti += 1;
                    backtrack = Some((ti, si));
                }
                Some(Token::Byte(c)) if *c == s[si] => {
                    ti += 1;
                    si += 1;
                }
                _ => match backtrack {
                    Some((bt, bs)) => {
                        ti = bt;
                        si = bs + 1;
                        backtrack = Some((bt, bs + 1));
                    }
                    None => return false,
                },
            }
        }
        t[ti..].iter().all(|x| *x == Token::Star)
    }

    /// Worst-case active-state weight (see the module doc), capped at [`MAX_COMPLEXITY`].
    pub fn complexity(&self) -> usize {
        complexity(&self.tokens)
    }
}

/// The largest weight of a set of simultaneously active positions, over all inputs, capped at
/// [`MAX_COMPLEXITY`]. Explores the subset automaton breadth-first; stops early at the cap.
pub fn complexity(tokens: &[Token]) -> usize {
    let n = tokens.len();
    let weight = |set: &[usize]| -> usize {
        set.iter()
            .map(|&p| {
                if p < n && tokens[p] == Token::Star {
                    2
                } else if p < n {
                    1
                } else {
                    0
                }
            })
            .sum()
    };
    // Epsilon closure: a star may be skipped.
    let close = |set: &mut Vec<usize>| {
        let mut i = 0;
        while i < set.len() {
            let p = set[i];
            if p < n && tokens[p] == Token::Star && !set.contains(&(p + 1)) {
                set.push(p + 1);
            }
            i += 1;
        }
        set.sort_unstable();
        set.dedup();
    };
    // The bytes that can make a difference, plus one stand-in for "any other byte".
    let mut alphabet: Vec<Option<u8>> = tokens
        .iter()
        .filter_map(|t| {
            if let Token::Byte(b) = t {
                Some(Some(*b))
            } else {
                None
            }
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    alphabet.push(None);

    let mut start = vec![0];
    close(&mut start);
    let mut best = weight(&start);
    let mut seen: HashSet<Vec<usize>> = HashSet::new();
    let mut queue = VecDeque::from([start]);
    let mut memo: HashMap<(usize, Option<u8>), Option<usize>> = HashMap::new();
    // Bound the exploration: the pattern length bounds useful depth, and the cap ends it early.
    const MAX_SUBSETS: usize = 20_000;
    while let Some(set) = queue.pop_front() {
        if best >= MAX_COMPLEXITY || seen.len() > MAX_SUBSETS {
            break;
        }
        if !seen.insert(set.clone()) {
            continue;
        }
        for &c in &alphabet {
            let mut next = Vec::new();
            for &p in &set {
                if p >= n {
                    continue;
                }
                match tokens[p] {
                    Token::Star => next.push(p),
                    Token::Byte(b) => {
                        let step = *memo
                            .entry((p, c))
                            .or_insert((Some(b) == c).then_some(p + 1));
                        if let Some(q) = step {
                            next.push(q);
                        }
                    }
                }
            }
            close(&mut next);
            if next.is_empty() || seen.contains(&next) {
                continue;
            }
            best = best.max(weight(&next));
            queue.push_back(next);
        }
    }
    best.min(MAX_COMPLEXITY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Wildcard {
        Wildcard::parse(s).unwrap()
    }

    #[test]
    fn matching() {
        assert!(w("*").matches(""));
        assert!(w("").matches(""));
        assert!(!w("").matches("a"));
        assert!(w("a*").matches("a"));
        assert!(w("*/dir/*").matches("x/dir/y"));
        assert!(w("/Users/*/doc.txt").matches("/Users/ls_user/dir/dir/dir/dir/dir/doc.txt"));
        assert!(!w("/Users/*/doc.txt").matches("/Users/ls_user/dir/notmatchingdoc.txt2"));
        assert!(w("2*0*1*7").matches("2017"));
        assert!(w("2*0*1*7").matches("2a0b1c7"));
        assert!(!w("2*0*1*7").matches("2a0b1c7x"));
        assert!(w("*aab").matches("aaab"));
        assert!(w("a*b*c").matches("abbbc"));
        assert!(!w("a*b*c").matches("acb"));
    }

    #[test]
    fn escapes() {
        assert!(w(r"a\*b").matches("a*b"));
        assert!(!w(r"a\*b").matches("axb"));
        assert!(w(r"a\\b").matches(r"a\b"));
        assert!(w(r"\\*").matches(r"\anything"));
        assert_eq!(
            Wildcard::parse(r"a\b").unwrap_err(),
            "Invalid escape character at pos 2"
        );
        assert_eq!(
            Wildcard::parse("ab\\").unwrap_err(),
            "Invalid escape character at pos 3"
        );
    }

    #[test]
    fn consecutive_stars_position_counts_the_quote() {
        assert_eq!(
            Wildcard::parse("arn:aws:events:us-east-1:**:event-bus/*").unwrap_err(),
            "Consecutive wildcard characters at pos 26"
        );
    }

    #[test]
    fn complexity_is_calibrated_on_the_corpus() {
        assert!(w("*:*:*:*:*:event-bus/*").complexity() >= MAX_COMPLEXITY);
        for ok in [
            "arn:aws:events:us-east-1:*:event-bus/*",
            "/Users/*/dir/dir/dir/dir/dir/doc.txt",
            "/Users/*/doc.txt",
            "*/dir/*",
            "2*0*1*7",
            "3*5*2",
            "VA*IL",
            "*218",
            "143*",
        ] {
            assert!(
                w(ok).complexity() < MAX_COMPLEXITY,
                "{ok}: {}",
                w(ok).complexity()
            );
        }
        // Long runs of one repeated character after a star are what make a wildcard expensive.
        assert!(w(&format!("*{}", "a".repeat(20))).complexity() >= MAX_COMPLEXITY);
    }

    #[test]
    fn complexity_of_long_patterns_is_bounded_in_time() {
        let long: String = (0..500)
            .map(|i| {
                if i % 7 == 0 {
                    '*'
                } else {
                    (b'a' + (i % 3) as u8) as char
                }
            })
            .collect();
        let _ = w(&long).complexity();
    }
}
