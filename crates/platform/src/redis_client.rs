//! Redis clients as every part of the platform opens them.
//!
//! With `TCP_NODELAY`: redis-rs leaves Nagle's algorithm on by default, and on a
//! connection that many requests share (a `ConnectionManager` multiplexes them all) a
//! small command written while an earlier one is unacknowledged then waits for the ACK,
//! which the server's delayed ACK holds for up to 40 ms. Under load that was the p50 of
//! every call that waits for Redis (a write's cache invalidation above all).

use redis::IntoConnectionInfo;
use redis::io::tcp::TcpSettings;

/// A client for `url` whose connections send each command at once.
pub fn open(url: &str) -> redis::RedisResult<redis::Client> {
    let info = url
        .into_connection_info()?
        .set_tcp_settings(TcpSettings::default().set_nodelay(true));
    redis::Client::open(info)
}

/// A multiplexed connection to `client`'s server, each connect and each response bounded
/// by `timeout`, with one retry: what every part of the platform shares its commands over.
pub async fn manager(
    client: &redis::Client,
    timeout: std::time::Duration,
) -> redis::RedisResult<redis::aio::ConnectionManager> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1);
    redis::aio::ConnectionManager::new_with_config(client.clone(), config).await
}
