//! Where webhooks may point: `http(s)` URLs of public addresses. Loopback, private,
//! link-local (cloud metadata), shared, unspecified, multicast and other special addresses are
//! refused unless the allow-list (`SUMMIT_WEBHOOK_ALLOW`) names the host or a network holding
//! the address. Host names are checked where they resolve, on every connection (the HTTP
//! client resolves through `GuardedResolver`), so a name cannot be re-pointed at an internal
//! address after the check.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;

use crate::core::error::{Error, Result};

/// One allow-list entry: a host name, an address, or a network (`10.0.0.0/8`).
#[derive(Debug, Clone, PartialEq)]
enum Allowed {
    Host(String),
    Network(IpAddr, u8),
}

/// The targets policy.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    allowed: Vec<Allowed>,
}

impl Targets {
    /// From the allow-list entries (host names, addresses, networks).
    pub fn new(entries: &[String]) -> Result<Targets> {
        let allowed = entries
            .iter()
            .map(|entry| parse_entry(entry.trim()))
            .collect::<Result<_>>()?;
        Ok(Targets { allowed })
    }

    /// Checks a webhook's URL as written: `http(s)`, a host, no user info, and an allowed
    /// address (a host name must resolve, to allowed addresses only).
    pub async fn check_url(&self, url: &str) -> Result<Url> {
        let refuse = |why: String| Error::invalid("/url", why);
        let parsed = Url::parse(url).map_err(|e| refuse(format!("not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(refuse(format!(
                "the scheme must be http or https, not '{}'",
                parsed.scheme()
            )));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(refuse("a webhook URL carries no credentials".into()));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| refuse("the URL names no host".into()))?
            .to_owned();
        let port = parsed.port_or_known_default().unwrap_or(80);
        let addresses = self.resolve(&host, port).await.map_err(refuse)?;
        if addresses.is_empty() {
            return Err(refuse(format!("'{host}' does not resolve")));
        }
        Ok(parsed)
    }

    /// The allowed addresses `host` stands for; an error naming the first refused one.
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> std::result::Result<Vec<SocketAddr>, String> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map_err(|e| format!("'{host}' does not resolve: {e}"))?
                .collect(),
        };
        if let Some(refused) = addresses.iter().find(|a| !self.allows(bare, a.ip())) {
            return Err(format!(
                "'{host}' is {} ({}): webhooks may not target it unless SUMMIT_WEBHOOK_ALLOW \
                 names it",
                refused.ip(),
                special(refused.ip()).unwrap_or("not allowed")
            ));
        }
        Ok(addresses)
    }

    /// Whether `ip` (which `host` resolved to) may be a target.
    pub fn allows(&self, host: &str, ip: IpAddr) -> bool {
        if special(ip).is_none() {
            return true;
        }
        self.allowed.iter().any(|entry| match entry {
            Allowed::Host(name) => name.eq_ignore_ascii_case(host),
            Allowed::Network(network, bits) => contains(*network, *bits, ip),
        })
    }
}

fn parse_entry(entry: &str) -> Result<Allowed> {
    let invalid = || {
        Error::invalid(
            "SUMMIT_WEBHOOK_ALLOW",
            format!("'{entry}' is not a host name, an address or a network"),
        )
    };
    if let Some((address, bits)) = entry.split_once('/') {
        let ip: IpAddr = address.parse().map_err(|_| invalid())?;
        let bits: u8 = bits.parse().map_err(|_| invalid())?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if bits > max {
            return Err(invalid());
        }
        return Ok(Allowed::Network(ip, bits));
    }
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Ok(Allowed::Network(ip, if ip.is_ipv4() { 32 } else { 128 }));
    }
    if entry.is_empty() || entry.contains(['/', ' ', ':']) {
        return Err(invalid());
    }
    Ok(Allowed::Host(entry.to_ascii_lowercase()))
}

fn contains(network: IpAddr, bits: u8, ip: IpAddr) -> bool {
    match (network, ip) {
        (IpAddr::V4(net), IpAddr::V4(ip)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(net) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(ip)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(net) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

/// What makes an address non-public, if anything.
fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => {
            // IPv4-mapped (::ffff:a.b.c.d) and -compatible (::a.b.c.d) addresses are refused
            // outright (named after the IPv4 address's kind when it has one); 6to4
            // (2002:AABB:CCDD::) addresses are judged by the IPv4 address they carry.
            if let Some(v4) = v6.to_ipv4() {
                return special_v4(v4).or(Some("IPv4-compatible"));
            }
            let segments = v6.segments();
            if segments[0] == 0x2002 {
                let [a, b] = segments[1].to_be_bytes();
                let [c, d] = segments[2].to_be_bytes();
                return special_v4(Ipv4Addr::new(a, b, c, d));
            }
            special_v6(v6)
        }
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared address space")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("multicast or reserved")
    } else if a == 192 && b == 0 && ip.octets()[2] == 0 {
        Some("IETF protocol assignments")
    } else if ip.is_documentation() || (a == 198 && (b == 18 || b == 19)) {
        Some("reserved for documentation or benchmarking")
    } else {
        None
    }
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if first & 0xfe00 == 0xfc00 {
        Some("unique local (private)")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        Some("reserved for documentation")
    } else if first == 0x0064 && ip.segments()[1] == 0xff9b {
        Some("NAT64 (may reach internal IPv4)")
    } else {
        None
    }
}

/// The HTTP client's resolver: a name resolving to a refused address fails the connection.
pub struct GuardedResolver(pub Arc<Targets>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let targets = self.0.clone();
        Box::pin(async move {
            let addresses = targets
                .resolve(name.as_str(), 0)
                .await
                .map_err(|why| -> Box<dyn std::error::Error + Send + Sync> { why.into() })?;
            let addresses: reqwest::dns::Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn special_addresses_are_refused_unless_allowed() {
        let none = Targets::default();
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "::ffff:10.0.0.1",
            "2002:0a00:0001::1",
            "192.0.0.8",
        ] {
            assert!(!none.allows("h", ip(refused)), "{refused}");
        }
        assert!(none.allows("h", ip("93.184.216.34")));
        assert!(none.allows("h", ip("2606:4700::1111")));
        let some = Targets::new(&["127.0.0.0/8".into(), "intranet.local".into()]).unwrap();
        assert!(some.allows("h", ip("127.0.0.2")));
        assert!(!some.allows("h", ip("10.0.0.1")));
        assert!(some.allows("intranet.local", ip("10.0.0.1")));
        assert!(Targets::new(&["10.0.0.0/33".into()]).is_err());
    }

    #[tokio::test]
    async fn urls_are_checked() {
        let none = Targets::default();
        for bad in [
            "ftp://example.com/",
            "http://user:pw@93.184.216.34/",
            "http://127.0.0.1:8080/hook",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data",
            "not a url",
        ] {
            let error = none.check_url(bad).await.unwrap_err();
            assert!(error.to_string().contains("url") || format!("{error:?}").contains("/url"));
        }
        assert!(none.check_url("https://93.184.216.34/hook").await.is_ok());
    }
}
