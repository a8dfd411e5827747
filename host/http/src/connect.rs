//! Resolving a host, checking every address, and connecting to a checked one.
//!
//! Why not a client with its own resolver and pool (e.g. reqwest with a
//! filtering `Resolve`)? The check depends on the calling agent's scope
//! (`allow_addresses`), which a client-wide resolver cannot see, and a shared
//! connection pool would let one agent reuse a connection another agent's
//! policy opened. So each hop does the three steps itself: resolve the name
//! (or take the literal), check *every* address with the scope's
//! [`AddressPolicy`], then `connect` to one of those same `SocketAddr`s. No
//! name is resolved a second time anywhere, so there is no window for DNS
//! rebinding between the check and the connect. TLS then runs over that
//! socket with the URL's host as the server name (certificate checked by
//! rustls), and hyper's HTTP/1.1 connection API speaks over it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use url::Url;

use crate::addr::{AddressPolicy, canonical};
use crate::limits::{MAX_ADDRESSES, MAX_CONNECT_ATTEMPTS};
use crate::scope::normalise_host;
use crate::types::FetchError;

/// Every address the URL's host stands for, each checked; refused as a whole
/// when any of them is forbidden (a name that mixes public and internal
/// addresses is treated as hostile rather than filtered).
pub(crate) async fn resolve_checked(
    url: &Url,
    policy: &AddressPolicy,
) -> Result<Vec<SocketAddr>, FetchError> {
    let port = url.port_or_known_default().unwrap_or(0);
    let host = normalise_host(url).unwrap_or_default();
    let found: Vec<IpAddr> = match url.host() {
        Some(url::Host::Ipv4(v4)) => vec![IpAddr::V4(v4)],
        Some(url::Host::Ipv6(v6)) => vec![IpAddr::V6(v6)],
        _ => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| FetchError::Transport(format!("cannot resolve {host}: {e}")))?
            .take(MAX_ADDRESSES)
            .map(|sa| sa.ip())
            .collect(),
    };
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for ip in found {
        let ip = canonical(ip);
        policy.check(ip).map_err(|why| {
            let label = if host == ip.to_string() {
                why
            } else {
                format!("{host} resolves to {why}")
            };
            FetchError::AddressNotAllowed(label)
        })?;
        let sa = SocketAddr::new(ip, port);
        if !addrs.contains(&sa) {
            addrs.push(sa);
        }
    }
    if addrs.is_empty() {
        return Err(FetchError::Transport(format!("{host} has no addresses")));
    }
    Ok(addrs)
}

/// Connects to the first checked address that accepts, trying at most
/// [`MAX_CONNECT_ATTEMPTS`], each with an equal share of the time left so one
/// black-holed address cannot use up the whole budget.
pub(crate) async fn tcp(addrs: &[SocketAddr], limit: Instant) -> Result<TcpStream, FetchError> {
    let tried = &addrs[..addrs.len().min(MAX_CONNECT_ATTEMPTS)];
    let mut last = String::new();
    for (i, addr) in tried.iter().enumerate() {
        let left = limit.saturating_duration_since(Instant::now());
        let share = left / u32::try_from(tried.len() - i).unwrap_or(1);
        match tokio::time::timeout(share, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = format!("connect to {addr}: {e}"),
            Err(_) => last = format!("connect to {addr}: timed out"),
        }
    }
    if Instant::now() >= limit {
        return Err(FetchError::Timeout);
    }
    Err(FetchError::Transport(last))
}

/// TLS over an established connection, verifying the certificate for the URL's host.
pub(crate) async fn tls(
    config: &Arc<rustls::ClientConfig>,
    url: &Url,
    stream: TcpStream,
) -> Result<TlsStream<TcpStream>, FetchError> {
    let host = normalise_host(url).unwrap_or_default();
    let name = match url.host() {
        Some(url::Host::Ipv4(v4)) => ServerName::IpAddress(IpAddr::V4(v4).into()),
        Some(url::Host::Ipv6(v6)) => ServerName::IpAddress(IpAddr::V6(v6).into()),
        _ => ServerName::try_from(host.clone()).map_err(|e| {
            FetchError::Transport(format!("{host:?} is not a valid TLS server name: {e}"))
        })?,
    };
    tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, stream)
        .await
        .map_err(|e| FetchError::Transport(format!("TLS with {host}: {e}")))
}
