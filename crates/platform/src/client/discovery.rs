//! Addresses of a dependency: one URL or several (comma-separated), each of which may be a
//! DNS name resolving to many pods. A single IP address is one lazily connected channel;
//! anything else is a balanced channel whose endpoints follow DNS, re-resolved every
//! `RESOLVE_EVERY`, and requests are spread per request, not per connection.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, Result};

const RESOLVE_EVERY: Duration = Duration::from_secs(15);

/// The endpoint settings every outgoing connection uses.
fn endpoint(uri: &str, connect_timeout: Duration) -> Result<Endpoint> {
    Ok(Endpoint::from_shared(uri.to_owned())
        .map_err(|e| Error::internal(format!("bad service URL {uri:?}: {e}")))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true))
}

/// A channel to `urls` (comma-separated), connected lazily.
pub(crate) fn channel(urls: &str, connect_timeout: Duration) -> Result<Channel> {
    let urls: Vec<&str> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    let [only] = urls.as_slice() else {
        return balanced(&urls, connect_timeout);
    };
    let endpoint = endpoint(only, connect_timeout)?;
    let is_ip = endpoint.uri().host().is_some_and(|host| {
        host.trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok()
    });
    if is_ip {
        Ok(endpoint.connect_lazy())
    } else {
        balanced(&urls, connect_timeout)
    }
}

fn balanced(urls: &[&str], connect_timeout: Duration) -> Result<Channel> {
    if urls.is_empty() {
        return Err(Error::internal("a service URL is empty"));
    }
    let mut targets = Vec::with_capacity(urls.len());
    for url in urls {
        let endpoint = endpoint(url, connect_timeout)?;
        let uri = endpoint.uri().clone();
        let scheme = uri.scheme_str().unwrap_or("http").to_owned();
        let host = uri.host().unwrap_or("localhost").to_owned();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        targets.push((scheme, host, port));
    }
    let (channel, changes) = Channel::balance_channel::<SocketAddr>(64);
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| Error::internal("service clients need a runtime"))?;
    runtime.spawn(async move {
        let mut current = HashSet::<SocketAddr>::new();
        loop {
            let mut found = HashSet::new();
            for (_, host, port) in &targets {
                match tokio::net::lookup_host((host.as_str(), *port)).await {
                    Ok(addrs) => found.extend(addrs),
                    Err(error) => tracing::warn!(%host, %error, "cannot resolve a dependency"),
                }
            }
            for gone in current.difference(&found) {
                if changes.send(Change::Remove(*gone)).await.is_err() {
                    return;
                }
            }
            for new in found.difference(&current) {
                let scheme = targets.first().map_or("http", |(s, _, _)| s.as_str());
                let Ok(endpoint) = endpoint(&format!("{scheme}://{new}"), connect_timeout) else {
                    continue;
                };
                if changes.send(Change::Insert(*new, endpoint)).await.is_err() {
                    return;
                }
            }
            current = found;
            tokio::time::sleep(RESOLVE_EVERY).await;
        }
    });
    Ok(channel)
}
