//! Where deliveries may go: `http`/`https` URLs whose addresses are public.
//! Loopback, private, link-local (and unspecified, multicast, documentation,
//! shared and unique-local) addresses are refused unless allowed, when the
//! subscription names an address and again when a delivery resolves it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::http::Uri;

use crate::error::{ApiError, ApiResult};

/// A parsed delivery target.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL.
    pub uri: Uri,
    /// Host name or address, without brackets.
    pub host: String,
    /// Port, explicit or the scheme's.
    pub port: u16,
}

/// Parse `url` as a delivery target.
pub fn parse(url: &str) -> Result<Target, String> {
    if url.len() > 2000 {
        return Err("must be at most 2000 characters".into());
    }
    let uri: Uri = url.parse().map_err(|_| "is not a URL".to_string())?;
    let default_port = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("http") => 80,
        Some("https") => 443,
        _ => return Err("must be an http or https URL".into()),
    };
    let auth = uri.authority().ok_or("must name a host")?;
    if auth.as_str().contains('@') {
        return Err("must not carry user information".into());
    }
    let host = auth.host().trim_matches(['[', ']']).to_string();
    if host.is_empty() {
        return Err("must name a host".into());
    }
    let port = auth.port_u16().unwrap_or(default_port);
    Ok(Target { uri, host, port })
}

/// Whether deliveries may go to `ip` when private targets are not allowed.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let shared = a == 100 && (64..128).contains(&b);
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || shared
        || a == 0)
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = first & 0xfe00 == 0xfc00;
    let link_local = first & 0xffc0 == 0xfe80;
    !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || unique_local || link_local)
}

/// Check a subscription's URL (422 on `url` when refused). Names are
/// resolved only at delivery, so a subscription never waits on DNS.
pub async fn check_url(url: &str, allow_private: bool) -> ApiResult<()> {
    let t = parse(url).map_err(|m| ApiError::invalid("url", m))?;
    if allow_private {
        return Ok(());
    }
    let forbidden = match t.host.parse::<IpAddr>() {
        Ok(ip) => !is_public(ip),
        Err(_) => {
            let h = t.host.to_ascii_lowercase();
            h == "localhost" || h.ends_with(".localhost")
        }
    };
    if forbidden {
        return Err(ApiError::invalid(
            "url",
            "points at a loopback, private or link-local address",
        ));
    }
    Ok(())
}

/// Resolve a target for a delivery; an error when any address is refused.
pub async fn resolve(t: &Target, allow_private: bool) -> Result<Vec<SocketAddr>, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((t.host.as_str(), t.port))
        .await
        .map_err(|e| format!("resolving {}: {e}", t.host))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{} has no address", t.host));
    }
    if !allow_private && addrs.iter().any(|a| !is_public(a.ip())) {
        return Err(format!(
            "{} resolves to a loopback, private or link-local address",
            t.host
        ));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().expect(ip)), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::1"] {
            assert!(is_public(ip.parse().expect(ip)), "{ip}");
        }
    }

    #[test]
    fn urls_need_http_and_a_host_without_user_information() {
        assert!(parse("https://hooks.example.com/x").is_ok());
        assert_eq!(parse("http://[::1]:8080/").map(|t| t.port).ok(), Some(8080));
        for bad in [
            "ftp://x.io/",
            "https://user:pw@x.io/",
            "not a url",
            "/relative",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
