//! The address guard: webhook requests go only to public addresses. An endpoint's URL is checked
//! when it is saved (every address its host resolves to) and again on every connection: the
//! HTTP client resolves names through [`GuardedResolver`], which hands it only public addresses,
//! so the address connected to is one that was checked (a name that resolves to a public
//! address when saved and to a private one later, DNS rebinding, gets nowhere). A URL naming an
//! IP address is checked before the request, as no resolution happens for it.
//!
//! `ORGBASE_WEBHOOK_ALLOW_PRIVATE=true` lifts the guard, for tests and private networks.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Whether `ip` is an address webhook requests must not reach: loopback, private, shared
/// (carrier-grade NAT, which also holds some clouds' metadata services), link-local (the
/// `169.254.169.254` metadata services), multicast, broadcast, unspecified, documentation and
/// benchmarking ranges, and IPv6's unique-local (AWS's `fd00:ec2::254`), link-local, site-local,
/// multicast, and IPv4-mapped or -translated forms of any of those.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_v4(v4);
            }
            let s = v6.segments();
            let v4_at = |i: usize| {
                Ipv4Addr::new(
                    (s[i] >> 8) as u8,
                    s[i] as u8,
                    (s[i + 1] >> 8) as u8,
                    s[i + 1] as u8,
                )
            };
            // 6to4 (2002::/16) carries an IPv4 address in its bits 16-47; IPv4-translated
            // (::ffff:0:a.b.c.d) in its last 32.
            if s[0] == 0x2002 {
                return is_private_v4(v4_at(1));
            }
            if s[0..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0 {
                return is_private_v4(v4_at(6));
            }
            // Teredo (2001::/32) tunnels to hidden addresses; local-use NAT64 (64:ff9b:1::/48);
            // discard-only (100::/64).
            if (s[0] == 0x2001 && s[1] == 0)
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1)
                || (s[0] == 0x100 && s[1..4] == [0, 0, 0])
            {
                return true;
            }
            // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                let v4 =
                    Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
                return is_private_v4(v4);
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || v6 == Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1)
                // IPv4-compatible (deprecated) ::a.b.c.d
                || (s[0..6] == [0, 0, 0, 0, 0, 0] && is_private_v4(Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                )))
        }
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared, carrier-grade NAT
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240 // reserved
}

/// Why a URL may not receive webhooks, or `Ok` for one that may: a host that resolves, and
/// only to public addresses (unless `allow_private`).
pub async fn check_url(raw: &str, allow_private: bool) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|e| format!("is not a URL: {e}"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err("must be an http(s) URL".into());
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<IpAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
        Some(url::Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
        Some(url::Host::Domain(name)) => tokio::net::lookup_host((name, port))
            .await
            .map_err(|e| format!("its host {name} does not resolve: {e}"))?
            .map(|a| a.ip())
            .collect(),
        None => return Err("has no host".into()),
    };
    if addrs.is_empty() {
        return Err("its host resolves to no address".into());
    }
    if !allow_private {
        // Which address is not said: the answer must not map a private network.
        if addrs.iter().any(|ip| is_private(*ip)) {
            return Err(
                "reaches a private, loopback, link-local or otherwise internal address: \
                 webhooks go to public addresses only (ORGBASE_WEBHOOK_ALLOW_PRIVATE=true lifts \
                 this on a private network)"
                    .into(),
            );
        }
    }
    Ok(())
}

/// Resolves names for the HTTP client, keeping only public addresses (unless allowed), so that
/// the address connected to is always one that passed.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| allow_private || !is_private(a.ip()))
                .collect();
            if kept.is_empty() {
                let why: Box<dyn std::error::Error + Send + Sync> = if found.is_empty() {
                    format!("{host} resolves to no address").into()
                } else {
                    // Which addresses is not said: attempts are shown to the endpoint's owner.
                    format!("{host} resolves only to internal addresses: refused").into()
                };
                return Err(why);
            }
            let addrs: reqwest::dns::Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_private() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0:127.0.0.1",
            "2002:a9fe:a9fe::",
            "2002:7f00:1::",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "64:ff9b:1::a00:1",
            "100::1",
            "64:ff9b::a00:1",
            "ff02::1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "8.8.8.8",
        ] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn urls_to_internal_addresses_are_refused() {
        for url in [
            "http://127.0.0.1:9000/hook",
            "https://10.0.0.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]:8080/",
            "http://localhost:8080/",
        ] {
            assert!(check_url(url, false).await.is_err(), "{url}");
            assert!(check_url(url, true).await.is_ok(), "{url}");
        }
    }
}
