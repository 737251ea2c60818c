//! The client's address. Behind a load balancer or reverse proxy the TCP peer is the proxy, and
//! the client is named in `Forwarded` (RFC 7239) or `X-Forwarded-For`. Those headers are taken
//! only from a peer in `ORGBASE_TRUSTED_PROXIES`, and read from the right: each trusted proxy
//! appends the address it received from, so the right-most address that is not a trusted proxy
//! is the client (anything left of it was written by the client itself, and proves nothing).
//! One address serves the login throttle, the rate limits and the audit log's `clientAddress`.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use axum::http::{header, HeaderMap};
use ipnet::IpNet;

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// CIDRs or single addresses, separated by commas or blanks: `10.0.0.0/8, 192.168.1.7`.
    pub fn parse(s: &str) -> Result<Self, String> {
        s.split([',', ' ', '\t', '\n'])
            .filter(|p| !p.is_empty())
            .map(|p| {
                IpNet::from_str(p)
                    .or_else(|_| IpAddr::from_str(p).map(IpNet::from))
                    .map_err(|_| {
                        format!("{p:?} is neither an address nor a CIDR such as 10.0.0.0/8")
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, a: IpAddr) -> bool {
        let a = canonical(a);
        self.0.iter().any(|n| n.contains(&a))
    }

    /// The client of a request that came from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let forwarded: Vec<&str> = headers
            .get_all(header::FORWARDED)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let hops: Vec<Option<IpAddr>> = if !forwarded.is_empty() {
            forwarded
                .iter()
                .flat_map(|v| v.split(','))
                .map(forwarded_for)
                .collect()
        } else {
            headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(|h| parse_node(h.trim()))
                .collect()
        };
        // From the right: past every trusted proxy, to the first address that is not one. A hop
        // that names no address (`unknown`, an obfuscated name, garbage) ends the walk: the
        // proxy that wrote it is as far as can be known.
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(a) = hop.map(canonical) else {
                break;
            };
            client = a;
            if !self.trusts(a) {
                break;
            }
        }
        client
    }
}

/// An IPv4 address written as IPv6 (`::ffff:10.0.0.1`) is the IPv4 address.
fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The `for=` of one `Forwarded` element (`for=192.0.2.60;proto=http;by=…`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_node(v.trim().trim_matches('"')))?
    })
}

/// A node as the headers write it: `192.0.2.60`, `192.0.2.60:4711`, `[2001:db8::17]`,
/// `[2001:db8::17]:4711`, or a bare IPv6 address (as `X-Forwarded-For` often has it).
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Some(rest) = s.strip_prefix('[') {
        return rest
            .split(']')
            .next()?
            .parse::<Ipv6Addr>()
            .ok()
            .map(IpAddr::V6);
    }
    if let Ok(a) = s.parse::<IpAddr>() {
        return Some(a);
    }
    let (host, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_headers_count_only_from_a_trusted_peer() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 192.168.1.7").unwrap();
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(trusted.client(ip("198.51.100.1"), &h), ip("198.51.100.1"));
        assert_eq!(trusted.client(ip("10.1.2.3"), &h), ip("203.0.113.9"));
        assert_eq!(trusted.client(ip("192.168.1.7"), &h), ip("203.0.113.9"));
        assert_eq!(trusted.client(ip("192.168.1.8"), &h), ip("192.168.1.8"));
        // Nobody trusted (the default): always the peer.
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("10.1.2.3"), &h), ip("10.1.2.3"));
        // A mapped IPv4 peer is the IPv4 address.
        assert_eq!(trusted.client(ip("::ffff:10.1.2.3"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        // The client wrote 1.1.1.1 itself; 203.0.113.9 reached the first proxy (10.0.0.2).
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.0.0.2")]);
        assert_eq!(trusted.client(ip("10.0.0.1"), &h), ip("203.0.113.9"));
        // Two header lines are one list.
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "203.0.113.9, 10.0.0.2"),
        ]);
        assert_eq!(trusted.client(ip("10.0.0.1"), &h), ip("203.0.113.9"));
        // Every hop trusted: the left-most.
        let h = headers(&[("x-forwarded-for", "10.0.0.3, 10.0.0.2")]);
        assert_eq!(trusted.client(ip("10.0.0.1"), &h), ip("10.0.0.3"));
        // Garbage right of the client: the proxy that wrote it is as far as is known.
        let h = headers(&[("x-forwarded-for", "203.0.113.9, junk, 10.0.0.2")]);
        assert_eq!(trusted.client(ip("10.0.0.1"), &h), ip("10.0.0.2"));
        // No header: the peer.
        assert_eq!(
            trusted.client(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn forwarded_is_read_before_x_forwarded_for() {
        let trusted = TrustedProxies::parse("10.0.0.0/8,2001:db8:ffff::/48").unwrap();
        let h = headers(&[
            (
                "forwarded",
                r#"for=1.1.1.1, for="[2001:db8:cafe::17]:4711";proto=https, For=10.0.0.2:80;by=10.0.0.1"#,
            ),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(trusted.client(ip("10.0.0.1"), &h), ip("2001:db8:cafe::17"));
        let h = headers(&[("forwarded", "for=unknown, for=10.0.0.2")]);
        assert_eq!(trusted.client(ip("10.0.0.1"), &h), ip("10.0.0.2"));
        let h = headers(&[("forwarded", "proto=https;for=\"203.0.113.9:1234\"")]);
        assert_eq!(
            trusted.client(ip("2001:db8:ffff::1"), &h),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_setting_names_what_it_cannot_read() {
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert_eq!(TrustedProxies::parse("10.0.0.0/8 ::1").unwrap().0.len(), 2);
        let e = TrustedProxies::parse("10.0.0.0/8,10.0.0.0/33").unwrap_err();
        assert!(e.contains("10.0.0.0/33"), "{e}");
    }
}
