//! Source allowlists (`ALLOWED_SOURCE_CIDRS`): a receiver may accept requests only from the
//! networks its sender publishes (Stripe, GitHub and Svix do; Shopify does not).
//!
//! Why: a signature proves who wrote a body, not who sends it now; an allowlist keeps everyone
//! else from making the function do any work at all (a forged request costs nothing but a 403).
//! It is defence in depth, never a replacement for verification: published ranges change, so an
//! allowlist that is out of date turns away genuine deliveries (the sender retries; the 403s
//! show in the `rejected_403` metric).
//!
//! Invariants kept here: the list is parsed once, at configuration time, and an entry that is
//! not an address or a CIDR is a start-up error naming the variable; a request whose source
//! address is absent or unparseable is refused (fail closed); IPv4-mapped IPv6 sources
//! (`::ffff:192.0.2.1`) match IPv4 entries.

use std::net::IpAddr;

use ipnet::IpNet;

/// The networks a receiver accepts requests from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceAllowlist(Vec<IpNet>);

/// An entry of the list that is neither an IP address nor a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {position} ({entry:?}) is not an IPv4/IPv6 address or CIDR block")]
pub struct AllowlistError {
    /// 1-based position in the list.
    pub position: usize,
    /// The entry as written (network addresses are not secret).
    pub entry: String,
}

impl SourceAllowlist {
    /// Parses a list separated by commas and/or whitespace: CIDR blocks (`192.0.2.0/24`,
    /// `2001:db8::/32`) or single addresses (a /32 or /128). `Ok(None)` when the list is empty
    /// (no allowlist: every source is accepted).
    pub fn parse(list: &str) -> Result<Option<Self>, AllowlistError> {
        let nets = list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
            .enumerate()
            .map(|(i, entry)| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map(|n| n.trunc())
                    .map_err(|_| AllowlistError {
                        position: i + 1,
                        entry: entry.to_owned(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((!nets.is_empty()).then_some(Self(nets)))
    }

    /// Whether `addr` lies in one of the networks.
    pub fn allows(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.0.iter().any(|n| n.contains(&addr))
    }

    /// Whether the source address as API Gateway reports it (`requestContext.http.sourceIp`) is
    /// allowed; `None` or an unparseable address is not.
    pub fn allows_source(&self, source_ip: Option<&str>) -> bool {
        source_ip
            .and_then(|s| s.trim().parse::<IpAddr>().ok())
            .is_some_and(|a| self.allows(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &str) -> SourceAllowlist {
        SourceAllowlist::parse(s)
            .expect("valid")
            .expect("non-empty")
    }

    #[test]
    fn ipv4_and_ipv6_blocks_and_single_addresses() {
        let l = list("3.18.12.63/32, 192.0.2.0/24\n2001:db8::/32 198.51.100.7");
        assert!(l.allows_source(Some("3.18.12.63")));
        assert!(!l.allows_source(Some("3.18.12.64")));
        assert!(l.allows_source(Some("192.0.2.255")));
        assert!(!l.allows_source(Some("192.0.3.0")));
        assert!(l.allows_source(Some("2001:db8:ffff::1")));
        assert!(!l.allows_source(Some("2001:db9::1")));
        assert!(l.allows_source(Some("198.51.100.7")));
        assert!(!l.allows_source(Some("198.51.100.8")));
        assert!(
            l.allows_source(Some("::ffff:192.0.2.10")),
            "IPv4-mapped IPv6"
        );
    }

    #[test]
    fn absent_or_garbage_sources_are_refused() {
        let l = list("0.0.0.0/0");
        assert!(l.allows_source(Some("203.0.113.9")));
        assert!(!l.allows_source(None));
        assert!(!l.allows_source(Some("")));
        assert!(!l.allows_source(Some("not-an-ip")));
        assert!(
            !l.allows_source(Some("::1")),
            "an IPv4 block admits no IPv6"
        );
    }

    #[test]
    fn host_bits_are_ignored_in_blocks() {
        let l = list("192.0.2.77/24");
        assert!(l.allows_source(Some("192.0.2.1")));
    }

    #[test]
    fn bad_entries_are_named_by_position() {
        let err = SourceAllowlist::parse("192.0.2.0/24, 10.0.0.0/33").expect_err("bad prefix");
        assert_eq!(err.position, 2);
        assert!(err.to_string().contains("10.0.0.0/33"));
        assert!(SourceAllowlist::parse("example.com").is_err());
        assert_eq!(SourceAllowlist::parse(" , \n").expect("empty"), None);
    }
}
