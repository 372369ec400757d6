//! Where deliveries may go: `http`/`https` URLs whose addresses are public.
//! Loopback, private, link-local (and unspecified, multicast, documentation,
//! shared and unique-local) addresses are refused unless allowed, when the
//! subscription names an address, and again when a delivery connects:
//! the connector dials only addresses that passed the check.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::Uri;
use hyper_util::client::legacy::connect::dns::Name;

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

/// Refuse a delivery to an address given literally in its URL (the
/// connector dials those without asking the [`Resolver`]).
pub fn check_literal(t: &Target, allow_private: bool) -> Result<(), String> {
    match t.host.parse::<IpAddr>() {
        Ok(ip) if !allow_private && !is_public(ip) => {
            Err(format!("{ip} is a loopback, private or link-local address"))
        }
        _ => Ok(()),
    }
}

/// The delivery connector's resolver. It refuses a host when any of its
/// addresses may not be reached, and the connector then dials exactly the
/// addresses checked: a name cannot change between the check and the
/// connection (DNS rebinding).
#[derive(Debug, Clone, Copy)]
pub struct Resolver {
    /// Whether loopback, private and link-local addresses are allowed.
    pub allow_private: bool,
}

impl tower::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str();
            // The connector puts the URL's port on each address.
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
                .await
                .map_err(|e| std::io::Error::other(format!("resolving {host}: {e}")))?
                .collect();
            if addrs.is_empty() {
                return Err(std::io::Error::other(format!("{host} has no address")));
            }
            if !allow_private && addrs.iter().any(|a| !is_public(a.ip())) {
                return Err(std::io::Error::other(format!(
                    "{host} resolves to a loopback, private or link-local address"
                )));
            }
            Ok(addrs.into_iter())
        })
    }
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
