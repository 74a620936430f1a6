//! MCP's older HTTP transport ("HTTP with SSE", protocol 2024-11-05), which the SDK no
//! longer ships: a GET opens an event stream whose first `endpoint` event names the URL
//! to POST messages to; the server's messages arrive as `message` events on the stream.

use std::pin::Pin;

use eventsource_stream::Eventsource;
use futures::{Sink, Stream, StreamExt};
use reqwest::header::{ACCEPT, HeaderMap};
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};

/// Messages to the server.
pub type Outgoing = Pin<Box<dyn Sink<ClientJsonRpcMessage, Error = std::io::Error> + Send>>;
/// Messages from the server; ends when the stream breaks.
pub type Incoming = Pin<Box<dyn Stream<Item = ServerJsonRpcMessage> + Send>>;

/// Opens the event stream at `url` and waits for its `endpoint` event.
pub async fn connect(url: &str, headers: HeaderMap) -> Result<(Outgoing, Incoming), String> {
    let client = reqwest::Client::new();
    let base = reqwest::Url::parse(url).map_err(|e| format!("url: {e}"))?;
    let response = client
        .get(base.clone())
        .headers(headers.clone())
        .header(ACCEPT, "text/event-stream")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("the event stream answered {}", response.status()));
    }
    let mut events = response.bytes_stream().eventsource();
    let endpoint = loop {
        match events.next().await {
            Some(Ok(event)) if event.event == "endpoint" => break event.data,
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(format!("the event stream failed: {error}")),
            None => return Err("the event stream ended before naming its endpoint".into()),
        }
    };
    let post_to = base
        .join(endpoint.trim())
        .map_err(|e| format!("the endpoint event is not a URL: {e}"))?;
    let incoming = events
        .take_while(|event| std::future::ready(event.is_ok()))
        .filter_map(|event| async move {
            let event = event.ok()?;
            if event.event != "message" && !event.event.is_empty() {
                return None;
            }
            serde_json::from_str::<ServerJsonRpcMessage>(&event.data).ok()
        });
    let outgoing = futures::sink::unfold(
        (client, post_to, headers),
        |(client, url, headers), message: ClientJsonRpcMessage| async move {
            let response = client
                .post(url.clone())
                .headers(headers.clone())
                .json(&message)
                .send()
                .await
                .map_err(std::io::Error::other)?;
            if !response.status().is_success() {
                return Err(std::io::Error::other(format!(
                    "a message was refused: {}",
                    response.status()
                )));
            }
            Ok((client, url, headers))
        },
    );
    Ok((Box::pin(outgoing), Box::pin(incoming)))
}
