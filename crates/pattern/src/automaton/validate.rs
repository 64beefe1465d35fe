//! Whether a container in an event is one JSON value that `json::parse` accepts, checked 64 bytes at
//! a time: the validating door's check of the containers its walk skips (`scan` checks what it
//! reads token by token).
//!
//! Owns: [`value_end`]. Per block it classifies the bytes (`simd`), finds the strings, and then
//! checks with bit arithmetic rather than byte by byte:
//! - strings: no raw control byte inside one, every escape one of `\" \\ \/ \b \f \n \r \t \uXXXX`
//!   (UTF-8 is the caller's: `scan` checks the whole event at once, with `simdutf8`);
//! - what may follow what: for each kind of token, the next byte that is not whitespace must be one
//!   that may follow it (`:` only after a string, a value only after `{ [ : ,`, and so on). "The next
//!   non-whitespace byte" of every byte of a mask at once is one addition: `(ws + (m << 1)) & !ws`;
//! - numbers: every scalar that holds only digits, `-` and `.` is checked in bulk (`-` only first,
//!   one `.` between digits, no leading zero); any other scalar (`true`, `false`, `null`, exponents,
//!   anything else) by the scalar checks of `bytes`;
//! - nesting: the brackets alone are walked in order, with a bit stack of open containers (at most
//!   the levels the caller has left below `json::MAX_DEPTH`; its first word in a register, with no
//!   branch per bracket, while a block cannot reach past it), which gives the mask of bytes whose
//!   innermost container is an object; with it, closing brackets are checked to pair up by kind,
//!   and the successor rules tell keys from values: in an object a key follows `{` or `,`, and a
//!   `:` follows every key and nothing else.
//!
//! Promise: `value_end` accepts a container exactly when `json::parse` accepts it as a value (UTF-8
//! aside; the unit tests compare the two on generated texts, the differential tests and the fuzz
//! target through the matcher), and never panics.

use super::bytes::valid_number;
use super::index::{self, Carry};
use super::simd::Masks;
use crate::json::MAX_DEPTH;

/// Carries of the successor rules: for one mask, the bit shifted out of the previous block and the
/// carry out of its addition (both land on the next block's first byte).
#[derive(Default, Clone, Copy)]
struct Next(u64);

impl State {
    /// The bits of the block at `base` that the successor rules judge: all of them, but once the
    /// container has closed in this block, only up to its closing bracket (what follows depends on
    /// the context around it).
    #[inline(always)]
    fn sub_keep(&self, base: usize) -> u64 {
        if self.done {
            let n = self.end - base; // 1..=64
            u64::MAX >> (64 - n)
        } else {
            u64::MAX
        }
    }
}

impl Next {
    /// Bits of the first non-whitespace byte after each byte of `m` (`ws`: whitespace outside strings).
    #[inline(always)]
    fn of(&mut self, m: u64, ws: u64) -> u64 {
        let (sum, over) = ws.overflowing_add((m << 1) | self.0);
        self.0 = (m >> 63) | u64::from(over);
        sum & !ws
    }
}

#[derive(Default)]
struct State {
    carry: Carry,
    /// Successors of: what ends a value (scalars, `}`, `]`, closing quotes of values); closing
    /// quotes of keys; `[`; `:` and `,`; `{` and `,` in objects.
    next: [Next; 5],
    /// The addition that finds the closing quotes of keys.
    key: u64,
    /// Number carries: the byte after a `-`, after a `.`, after a leading zero; a digit before; the
    /// addition that marks bytes after a scalar's first `.`.
    after_minus: u64,
    after_dot: u64,
    after_zero: u64,
    digit_before: u64,
    dotted: u64,
    /// Open containers, innermost last: bit `d` of the stack is 1 for an object at depth `d`.
    depth: usize,
    stack: [u64; MAX_DEPTH / 64 + 1],
    /// Whether the innermost container is an object.
    in_object: bool,
    /// Whether the container has closed, and the position after its closing bracket.
    done: bool,
    end: usize,
    /// How many levels may nest.
    limit: usize,
}

/// From `b[0]`, a `{` or `[` outside strings in an event (at most `limit` levels may nest from it):
/// the length of that container when it is one JSON value as `json::parse` reads it (its strings'
/// UTF-8 aside: the caller checks the whole event's), `None` when it is not or the bytes end first.
/// Bytes after its closing bracket (in its last block) are checked only for what needs no context:
/// raw control bytes and escapes in strings, numbers.
#[inline(always)]
pub fn value_end(
    b: &[u8],
    limit: usize,
    classify: impl Fn(&[u8; 64]) -> Masks,
    prefix_xor: impl Fn(u64) -> u64,
) -> Option<usize> {
    let mut st = State {
        limit,
        ..State::default()
    };
    // (The nesting walk counts on it: no bracket closes at depth 0.)
    if !matches!(b.first(), Some(b'{' | b'[')) {
        return None;
    }
    let mut at = 0;
    while at < b.len() && !st.done {
        let m = match b.get(at..at + 64) {
            Some(c) => classify(c.try_into().expect("64 bytes")),
            None => classify(&index::chunk(b, at)),
        };
        block(b, at, &m, &mut st, &prefix_xor)?;
        at += 64;
    }
    st.done.then_some(st.end)
}

#[inline(always)]
fn block(
    b: &[u8],
    base: usize,
    m: &Masks,
    st: &mut State,
    prefix_xor: &impl Fn(u64) -> u64,
) -> Option<()> {
    let (quote, string, escaped) = index::strings(m, &mut st.carry, prefix_xor);
    if m.ctrl & string != 0 || (escaped != 0 && !escapes_valid(b, base, escaped)) {
        return None;
    }
    let outside = !(string | quote);
    // The nesting walk first, while few masks are live (the others are computed after it, not
    // kept in registers or on the stack across its loop).
    let (lbrace, lbracket) = (m.lbrace & outside, m.lbracket & outside);
    let (rbrace, rbracket) = (m.rbrace & outside, m.rbracket & outside);
    let brackets = lbrace | lbracket | rbrace | rbracket;
    let objects = if brackets == 0 {
        if st.in_object { u64::MAX } else { 0 }
    } else {
        nesting(
            base,
            brackets,
            lbrace | lbracket,
            lbrace | rbrace,
            st,
            prefix_xor,
        )?
    };
    let opening = quote & string;
    let closing = quote & !string;
    let (colon, comma) = (m.colon & outside, m.comma & outside);
    let ops = brackets | colon | comma;
    let ws = m.ws & outside;
    let scalar = outside & !ops & !ws;
    let continued = st.carry.scalar;
    let starts = scalar & !((scalar << 1) | continued);
    st.carry.scalar = scalar >> 63;
    let values = opening | starts | lbrace | lbracket;

    // What may follow what. Whitespace outside strings is rare in events (none in compact JSON):
    // without it the rules' additions are shifts, which the compiler sees when `ws` is a constant.
    let t = Tokens {
        opening,
        closing,
        string,
        starts,
        scalar,
        values,
        objects,
        lbrace,
        lbracket,
        rbrace,
        rbracket,
        colon,
        comma,
    };
    let bad = if ws == 0 {
        successors(&t, 0, st)
    } else {
        successors(&t, ws, st)
    };
    if bad & st.sub_keep(base) != 0 {
        return None;
    }

    if (scalar | st.after_minus | st.after_dot) != 0
        && !numbers(b, base, m, scalar, starts, continued, st)
    {
        return None;
    }
    Some(())
}

/// The masks of one block's tokens (outside strings) that the successor rules read.
struct Tokens {
    opening: u64,
    closing: u64,
    string: u64,
    starts: u64,
    scalar: u64,
    values: u64,
    objects: u64,
    lbrace: u64,
    lbracket: u64,
    rbrace: u64,
    rbracket: u64,
    colon: u64,
    comma: u64,
}

/// The bytes that break a successor rule (`ws`: whitespace outside strings). Keys: the strings
/// after `{`, and after `,` in objects. After `{` only a key or `}` may come, after `,` in an
/// object only a key: the member rule refuses everything else but `}` (which after `,` the
/// separator rule refuses).
#[inline(always)]
fn successors(t: &Tokens, ws: u64, st: &mut State) -> u64 {
    let [n_end, n_key, n_lbracket, n_sep, n_member] = &mut st.next;
    let member = n_member.of(t.lbrace | (t.comma & t.objects), ws);
    let (sum, over) = t.string.overflowing_add((member & t.opening) | st.key);
    st.key = u64::from(over);
    let key_end = sum & t.closing;
    let ends = t.scalar | t.rbrace | t.rbracket | (t.closing & !key_end);
    let (colon, comma) = (t.colon, t.comma);
    (colon & !t.objects)
        | (member & (t.starts | t.lbrace | t.lbracket | colon | comma | t.rbracket))
        | (n_end.of(ends, ws) & (t.values | colon))
        | (n_key.of(key_end, ws) & !colon)
        | (n_lbracket.of(t.lbracket, ws) & (colon | comma | t.rbrace))
        | (n_sep.of(colon | comma, ws) & (colon | comma | t.rbrace | t.rbracket))
}

/// The scalars with a byte in this block (or ending just before it, when `continued`): in bulk when
/// they hold only digits, `-` and `.`; else (or when the bulk rules object, which a scalar crossing
/// from a block checked one by one may cause) one by one.
#[inline(always)]
fn numbers(
    b: &[u8],
    base: usize,
    m: &Masks,
    s: u64,
    starts: u64,
    continued: u64,
    st: &mut State,
) -> bool {
    let (digit, minus, dot) = (m.digit & s, m.minus & s, m.dot & s);
    let after_minus = (minus << 1) | st.after_minus;
    let after_dot = (dot << 1) | st.after_dot;
    // Where the integer part starts, and a zero there.
    let lead = ((starts & !minus) | after_minus) & m.zero & s;
    let after_zero = (lead << 1) | st.after_zero;
    // Bytes from each scalar's first `.` to its end: adding the dots carries through the scalar.
    let (sum, over) = s.overflowing_add(dot);
    let (marked, over2) = sum.overflowing_add(st.dotted);
    st.after_minus = minus >> 63;
    st.after_dot = dot >> 63;
    st.after_zero = lead >> 63;
    let digit_before = (digit << 1) | st.digit_before;
    st.digit_before = digit >> 63;
    st.dotted = u64::from(over | over2);
    let other = s & !(digit | minus | dot);
    let bad = (minus & !starts)
        | (after_minus & !digit)
        | (dot & !digit_before)
        | (after_dot & !digit)
        | (after_zero & digit)
        | (dot & marked);
    (other | bad) == 0 || one_by_one(b, base, continued != 0, starts)
}

/// Checks by the scalar rules (`bytes::valid_number`, or the words `true`, `false`, `null`) every
/// scalar that starts in this block, and, when `continued`, the one that runs into it (or up to it)
/// from an earlier block.
#[cold]
#[inline(never)]
fn one_by_one(b: &[u8], base: usize, continued: bool, mut starts: u64) -> bool {
    // Outside strings, as here, the bytes that end a scalar (or come before one).
    let bound = |c: &u8| {
        matches!(
            c,
            b' ' | b'\t' | b'\n' | b'\r' | b'{' | b'}' | b'[' | b']' | b':' | b',' | b'"'
        )
    };
    let check = |start: usize| {
        let end = b[start..]
            .iter()
            .position(bound)
            .map_or(b.len(), |n| start + n);
        match b[start] {
            b'-' | b'0'..=b'9' => valid_number(b, start, end),
            _ => matches!(&b[start..end], b"true" | b"false" | b"null"),
        }
    };
    // (A container's first byte is a bracket, so the walk back stops inside it.)
    if continued && !check(b[..base].iter().rposition(bound).map_or(0, |n| n + 1)) {
        return false;
    }
    while starts != 0 {
        let start = base + starts.trailing_zeros() as usize;
        starts &= starts - 1;
        if !check(start) {
            return false;
        }
    }
    true
}

/// Walks the block's brackets in order against the stack of open containers (`opens`: which of
/// them open, `braces`: which are `{` or `}`); returns the mask of bytes whose innermost container
/// is an object (for a bracket: the container around it), or `None` when they do not nest. It stops
/// at the bracket that closes the outermost.
#[inline(always)]
fn nesting(
    base: usize,
    brackets: u64,
    opens: u64,
    braces: u64,
    st: &mut State,
    prefix_xor: &impl Fn(u64) -> u64,
) -> Option<u64> {
    if st.depth + brackets.count_ones() as usize > st.limit.min(63) {
        return deep(base, brackets, opens, braces, st);
    }
    // No bracket of the block can open a level past the stack's first word or the limit: the word
    // stays in a register, and opening and closing differ only in data (a bracket writes its kind
    // at the depth it opens, above the top when it closes; the innermost container's kind is the
    // bit below the new depth). The loop marks the brackets after which the innermost container's
    // kind changes; the kind before each byte is then the parity of the marks before it.
    let initial = u64::from(st.in_object);
    let (mut depth, mut inner, mut word) = (st.depth, initial, st.stack[0]);
    let mut changes = 0u64;
    let (brackets_in, mut brackets) = (brackets, brackets);
    while brackets != 0 {
        let bit = brackets.trailing_zeros();
        brackets &= brackets - 1;
        let brace = (braces >> bit) & 1;
        let open = (opens >> bit) & 1;
        word = (word & !(1 << depth)) | (brace << depth);
        // (Depth is at least 1 here: the walk stops when the outermost closes.)
        depth = depth + 2 * open as usize - 1;
        if depth == 0 {
            // It closes the outermost: what follows is not judged by the successor rules.
            st.done = true;
            st.end = base + bit as usize + 1;
            inner = 0;
            break;
        }
        let now = (word >> (depth - 1)) & 1;
        changes |= (inner ^ now) << bit;
        inner = now;
    }
    let objects = prefix_xor(changes << 1) ^ initial.wrapping_neg();
    // A closing bracket must close a container of its kind: the kind before it.
    let closes = (brackets_in & !opens) & st.sub_keep(base);
    if closes & (objects ^ braces) != 0 {
        return None;
    }
    st.depth = depth;
    st.in_object = inner == 1;
    st.stack[0] = word;
    Some(objects)
}

/// `nesting` with the stack in memory, for blocks that may open levels past its first word.
#[cold]
#[inline(never)]
fn deep(base: usize, mut brackets: u64, opens: u64, braces: u64, st: &mut State) -> Option<u64> {
    let mut objects = 0u64;
    let mut from = 0u32;
    let (mut depth, mut in_object) = (st.depth, st.in_object);
    while brackets != 0 {
        let bit = brackets.trailing_zeros();
        brackets &= brackets - 1;
        // The bytes from the previous bracket (excluded) to this one (included), when in an object.
        let span = (u64::MAX << from) & (u64::MAX >> (63 - bit));
        objects |= span & u64::from(in_object).wrapping_neg();
        from = bit + 1;
        let brace = (braces >> bit) & 1 == 1;
        if (opens >> bit) & 1 == 1 {
            if depth == st.limit {
                return None;
            }
            let word = &mut st.stack[depth / 64];
            let b = 1u64 << (depth % 64);
            *word = if brace { *word | b } else { *word & !b };
            depth += 1;
            in_object = brace;
        } else {
            if depth == 0 || in_object != brace {
                return None;
            }
            depth -= 1;
            if depth == 0 {
                st.done = true;
                in_object = false;
                st.end = base + bit as usize + 1;
                break;
            }
            let d = depth - 1;
            in_object = (st.stack[d / 64] >> (d % 64)) & 1 == 1;
        }
    }
    if in_object && from < 64 {
        objects |= u64::MAX << from;
    }
    st.depth = depth;
    st.in_object = in_object;
    Some(objects)
}

/// Whether every escaped byte (absolute offsets `base + bit`) is one `json::parse` accepts.
#[cold]
#[inline(never)]
pub(super) fn escapes_valid(b: &[u8], base: usize, mut escaped: u64) -> bool {
    while escaped != 0 {
        let at = base + escaped.trailing_zeros() as usize;
        escaped &= escaped - 1;
        match b.get(at) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {}
            Some(b'u') => {
                let hex = b.get(at + 1..at + 5);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::super::index::tests::{next, text};
    use super::super::simd::{self, Simd};
    use crate::json::MAX_DEPTH;

    /// Whether `t` is one JSON object by `value_end` (as the validating door checks an object it
    /// skips: UTF-8 being the whole event's), under `simd`.
    fn whole(simd: Simd, t: &[u8], at: usize, limit: usize) -> Option<usize> {
        let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r');
        let first = at + t[at..].iter().position(|c| !ws(c))?;
        if !matches!(t[first], b'{' | b'[') || std::str::from_utf8(t).is_err() {
            return None;
        }
        simd::value_end(simd, t, first, limit)
    }

    /// `value_end` agrees with the reader on `t` as a whole event (an object), and on `t` as the
    /// value of a member inside an object, with more members after it.
    fn agree(t: &[u8]) {
        let shown = || String::from_utf8_lossy(t).into_owned();
        let want = matches!(crate::json::parse(t), Ok(crate::json::Json::Object(_)));
        let inner = [&b"{\"k\":"[..], t, b",\"z\":[{\"y\":1}]}"].concat();
        let want_inner = crate::json::parse(&inner).is_ok();
        let trailing_ws = |b: &[u8]| b.iter().all(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'));
        let starts_container = t
            .iter()
            .find(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
            .is_some_and(|c| matches!(c, b'{' | b'['));
        for simd in Simd::available() {
            let got = t.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'{')
                && whole(simd, t, 0, MAX_DEPTH).is_some_and(|e| trailing_ws(&t[e..]));
            assert_eq!(got, want, "{simd:?} on {}", shown());
            if starts_container {
                let got = whole(simd, &inner, 5, MAX_DEPTH - 1)
                    .is_some_and(|e| e <= 5 + t.len() && trailing_ws(&inner[e..5 + t.len()]));
                assert_eq!(got, want_inner, "{simd:?} inside an object: {}", shown());
            }
        }
    }

    #[test]
    fn accepts_exactly_what_the_reader_accepts_on_random_text() {
        let mut seed = 17;
        for _ in 0..20_000 {
            let mut t = text(&mut seed);
            if next(&mut seed).is_multiple_of(2) {
                t.insert(0, b'{');
            }
            agree(&t);
        }
    }

    /// Valid objects, then every one-byte deletion, duplication and substitution of them.
    #[test]
    fn accepts_exactly_what_the_reader_accepts_near_valid_objects() {
        let objects: &[&str] = &[
            r#"{"a":1}"#,
            r#"{"a": [1, -2.5, 3e5, 0, -0, 0.25, "x", true, false, null, {}, []], "b": {"c": {"d": "e\"\\"}}}"#,
            r#" { "type":"Feature","properties":{"MAPBLKLOT":"0001001","BLKLOT":"0001001"},"geometry":{"type":"Polygon","coordinates":[[{"x":-122.42292,"y":37.80874,"z":0.0},{"x":-122.42300,"y":37.80870,"z":0.0}]]}} "#,
            "{\"k\":\"caf\u{e9} \\u00e9 \\ud83d\\ude80\",\"n\":[[[[]]]],\"e\":{},\"s\":\"\"}",
            r#"{"":"","a":{"":{"":[1e-7,1E+7,123456789012345678901234567890,-1.0e0]}}}"#,
        ];
        let mut cases = Vec::new();
        for o in objects {
            let o = o.as_bytes();
            cases.push(o.to_vec());
            for i in 0..o.len() {
                let mut del = o.to_vec();
                del.remove(i);
                cases.push(del);
                let mut dup = o.to_vec();
                dup.insert(i, o[i]);
                cases.push(dup);
                for c in [
                    b'"', b'\\', b'{', b'}', b'[', b']', b':', b',', b' ', b'0', b'1', b'-', b'.',
                    b'e', b'x', 0x01, 0xff,
                ] {
                    let mut sub = o.to_vec();
                    sub[i] = c;
                    cases.push(sub);
                }
            }
        }
        // And shifted across block boundaries.
        for c in cases {
            agree(&c);
            for pad in [1, 40, 63] {
                let mut p = vec![b' '; pad];
                p.extend_from_slice(&c);
                agree(&p);
            }
        }
    }

    /// A random JSON value: all the grammar's forms, with random whitespace.
    fn value(seed: &mut u64, depth: usize, out: &mut Vec<u8>) {
        let ws = |seed: &mut u64, out: &mut Vec<u8>| {
            if next(seed).is_multiple_of(4) {
                out.extend_from_slice([&b" "[..], b"\n", b"\t ", b"\r\n  "][next(seed) % 4]);
            }
        };
        ws(seed, out);
        let scalars: &[&[u8]] = &[
            b"0",
            b"-0",
            b"1",
            b"-12",
            b"3.25",
            b"-0.5",
            b"1e5",
            b"2E-3",
            b"-1.5e+10",
            b"123456789012345678901",
            b"true",
            b"false",
            b"null",
            b"\"\"",
            b"\"a\"",
            b"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
            b"\"\\u00e9\\uD83D\\ude80\"",
            b"\"caf\xc3\xa9 {[:,]}\"",
            b"\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"",
        ];
        match if depth > 5 { 0 } else { next(seed) % 4 } {
            0 | 1 => out.extend_from_slice(scalars[next(seed) % scalars.len()]),
            k => {
                let object = k == 2;
                out.push(if object { b'{' } else { b'[' });
                let n = next(seed) % 5;
                for i in 0..n {
                    if i > 0 {
                        out.push(b',');
                    }
                    if object {
                        ws(seed, out);
                        out.extend_from_slice(
                            [&b"\"k\""[..], b"\"\"", b"\"a.b\"", b"\"\\u0041\""][next(seed) % 4],
                        );
                        ws(seed, out);
                        out.push(b':');
                    }
                    value(seed, depth + 1, out);
                }
                ws(seed, out);
                out.push(if object { b'}' } else { b']' });
            }
        }
        ws(seed, out);
    }

    #[test]
    fn accepts_exactly_what_the_reader_accepts_on_generated_and_mutated_json() {
        let mut seed = 41;
        let alphabet = b"{}[]:,\" \\0159-.eE+tfnulx\x01\xc3\xff";
        let (mut valid, mut mutants_valid) = (0, 0);
        for _ in 0..6000 {
            let mut t = vec![b'{'];
            let n = next(&mut seed) % 6;
            for i in 0..n {
                if i > 0 {
                    t.push(b',');
                }
                t.extend_from_slice(b"\"f\":");
                value(&mut seed, 1, &mut t);
            }
            t.push(b'}');
            agree(&t);
            valid += usize::from(crate::json::parse(&t).is_ok());
            for _ in 0..4 {
                let mut u = t.clone();
                let at = next(&mut seed) % u.len();
                match next(&mut seed) % 3 {
                    0 => {
                        u.remove(at);
                    }
                    1 => u.insert(at, alphabet[next(&mut seed) % alphabet.len()]),
                    _ => u[at] = alphabet[next(&mut seed) % alphabet.len()],
                }
                agree(&u);
                mutants_valid += usize::from(crate::json::parse(&u).is_ok());
            }
        }
        // The generator writes valid JSON, and mutations break most of it, not all.
        assert_eq!(valid, 6000);
        assert!((1000..20_000).contains(&mutants_valid), "{mutants_valid}");
    }

    #[test]
    fn numbers_crossing_blocks_and_deep_nesting() {
        for n in [
            "1",
            "-0",
            "0.5",
            "-122.42925025966552",
            "1.5e-3",
            "12345678901234567890.123",
            "01",
            "1.2.3",
            "-",
            "1.",
            "--1",
            "1-2",
        ] {
            for pad in 0..70 {
                let t = format!("{{\"{}\":{n}}}", "k".repeat(pad));
                agree(t.as_bytes());
            }
        }
        // Objects and arrays nested past the stack's first word (and past the limit), closed by
        // the right kinds and by a wrong one at each depth.
        for depth in [40, 63, 64, 65, 130, 255, 256, 257] {
            let open: String = (0..depth)
                .map(|i| if i % 3 == 0 { "[" } else { "{\"k\":" })
                .collect();
            let close: Vec<&str> = (0..depth)
                .rev()
                .map(|i| if i % 3 == 0 { "]" } else { "}" })
                .collect();
            let t = format!("{{\"a\":{open}1{}}}", close.concat());
            agree(t.as_bytes());
            for wrong in [0, 1, depth / 2, depth - 1] {
                let mut c = close.clone();
                c[wrong] = if c[wrong] == "]" { "}" } else { "]" };
                agree(format!("{{\"a\":{open}1{}}}", c.concat()).as_bytes());
            }
        }
        for depth in [511, 512, 513] {
            let t = format!(
                "{{\"a\":{}{}}}",
                "[".repeat(depth - 1),
                "]".repeat(depth - 1)
            );
            agree(t.as_bytes());
        }
    }
}
