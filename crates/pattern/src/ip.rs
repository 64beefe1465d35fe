//! IP addresses and CIDR blocks as EventBridge matches them (event-ruler's `CIDR`).
//!
//! A `cidr` pattern is a range of addresses of one family, from the address as written up to the
//! address with the host bits set (AWS does not clear host bits: `10.0.0.5/24` covers .5 to .255). A
//! plain string in a pattern that is an IP address becomes the one-address range, so it matches the same
//! address however the event writes it. Masks must be below 32 (IPv4) and 128 (IPv6), as in AWS.

use std::net::IpAddr;

/// An inclusive range of addresses of one family, as big-endian bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IpRange {
    pub low: Vec<u8>,
    pub high: Vec<u8>,
    /// The text of the pattern, for explanations.
    pub text: String,
}

impl IpRange {
    /// Whether the string is an address inside this range (same family).
    pub fn contains_str(&self, s: &str) -> bool {
        match parse_ip(s) {
            Some(b) => self.contains(&b),
            None => false,
        }
    }

    pub fn contains(&self, addr: &[u8]) -> bool {
        addr.len() == self.low.len() && self.low.as_slice() <= addr && addr <= self.high.as_slice()
    }
}

/// Parses an IPv4 dotted quad or an IPv6 address into its bytes.
pub fn parse_ip(s: &str) -> Option<Vec<u8>> {
    // Cheap rejections first: the matcher calls this for every candidate string.
    if s.len() < 2
        || s.len() > 45
        || !s
            .bytes()
            .all(|c| c.is_ascii_hexdigit() || c == b'.' || c == b':')
    {
        return None;
    }
    match s.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => Some(a.octets().to_vec()),
        IpAddr::V6(a) => Some(a.octets().to_vec()),
    }
}

/// The one-address range for a plain pattern string that is an IP address.
pub fn single(s: &str) -> Option<IpRange> {
    parse_ip(s).map(|b| IpRange {
        low: b.clone(),
        high: b,
        text: s.to_string(),
    })
}

/// Parses a `cidr` operand, with AWS's reasons for rejecting it.
pub fn cidr(s: &str) -> Result<IpRange, String> {
    // Java's String.split drops trailing empty strings: "10.0.0.0/" has one part.
    let mut parts: Vec<&str> = s.split('/').collect();
    while parts.len() > 1 && parts.last() == Some(&"") {
        parts.pop();
    }
    if parts.len() != 2 {
        return Err("Malformed CIDR, one '/' required".into());
    }
    let bits: i64 = parts[1]
        .parse()
        .map_err(|_| "Malformed CIDR, mask bits must be an integer".to_string())?;
    if bits < 0 {
        return Err("Malformed CIDR, mask bits must not be negative".into());
    }
    let low = parse_ip(parts[0]).ok_or_else(|| format!("Nonstandard IP address: {}", parts[0]))?;
    let total = low.len() as i64 * 8;
    if low.len() == 4 && bits > 31 {
        return Err("IPv4 mask bits must be < 32".into());
    }
    if low.len() == 16 && bits > 127 {
        return Err("IPv6 mask bits must be < 128".into());
    }
    let mut host = total - bits; // bits to set, from the end
    let mut high = low.clone();
    for byte in high.iter_mut().rev() {
        if host >= 8 {
            *byte = 0xff;
        } else if host > 0 {
            *byte |= (1u8 << host) - 1;
        }
        host -= 8;
    }
    Ok(IpRange {
        low,
        high,
        text: s.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_block() {
        let r = cidr("10.0.0.0/24").unwrap();
        assert!(r.contains_str("10.0.0.255"));
        assert!(r.contains_str("10.0.0.0"));
        assert!(!r.contains_str("10.0.1.0"));
        assert!(!r.contains_str("10.0.0.256"));
        assert!(!r.contains_str("::ffff:10.0.0.1"));
    }

    #[test]
    fn host_bits_are_not_cleared_as_in_aws() {
        let r = cidr("10.0.0.5/24").unwrap();
        assert!(!r.contains_str("10.0.0.4"));
        assert!(r.contains_str("10.0.0.5"));
    }

    #[test]
    fn ipv6_block_matches_any_spelling() {
        let r = cidr("2001:db8:1234:1a00::/64").unwrap();
        assert!(r.contains_str("2001:0db8:1234:1a00:0000:0000:0000:0000"));
        assert!(r.contains_str("2001:db8:1234:1a00:ffff::1"));
        assert!(!r.contains_str("2001:0db8:123f:1a01:0000:0000:0000:0000"));
        assert!(!r.contains_str("10.0.0.1"));
    }

    #[test]
    fn aws_reasons() {
        assert_eq!(
            cidr("bad-filter").unwrap_err(),
            "Malformed CIDR, one '/' required"
        );
        assert_eq!(
            cidr("bad-/64filter").unwrap_err(),
            "Malformed CIDR, mask bits must be an integer"
        );
        assert_eq!(
            cidr("xx.11.xx/8").unwrap_err(),
            "Nonstandard IP address: xx.11.xx"
        );
        assert_eq!(
            cidr("xxxx:db8:1234:1a00::/64").unwrap_err(),
            "Nonstandard IP address: xxxx:db8:1234:1a00::"
        );
        assert_eq!(
            cidr("10.0.0.0/32").unwrap_err(),
            "IPv4 mask bits must be < 32"
        );
        assert_eq!(cidr("::/128").unwrap_err(), "IPv6 mask bits must be < 128");
        assert_eq!(
            cidr("10.0.0.0/-1").unwrap_err(),
            "Malformed CIDR, mask bits must not be negative"
        );
        assert!(cidr("0.0.0.0/0").unwrap().contains_str("255.255.255.255"));
    }

    #[test]
    fn single_address_ranges() {
        let r = single("2001:db8::1").unwrap();
        assert!(r.contains_str("2001:0db8:0:0:0:0:0:1"));
        assert!(single("not-an-ip").is_none());
        assert!(single("10.0.0").is_none());
    }
}
