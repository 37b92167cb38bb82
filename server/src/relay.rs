//! `tracking-server relay`: consumes the JetStream stream that ingest nodes publish
//! to (the `nats` sink) with a durable pull consumer, and writes the events into a
//! write-ahead log of its own, through the same de-duplication as ingest
//! ([`AppState::accept`]). Its sinks (tracking log, Segment: whatever its routing
//! configures) consume that log exactly as on a single node.
//!
//! A message is acknowledged only once its event is durable in the relay's log, so
//! a relay crash redelivers (and the id de-duplication drops what was already
//! stored). Ingest nodes and relay workers scale separately: several ingest nodes
//! share one stream, JetStream drops re-publishes by `Nats-Msg-Id`, and relays that
//! share the durable consumer each take a part of the stream.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::pull, AckKind};
use async_nats::ServerAddr;
use futures_util::{FutureExt as _, StreamExt as _};
use tokio::sync::watch;

use crate::app::Pipeline;
use crate::config::{RelayConfig, ServerConfig};
use crate::ingest::{EventText, Stored};
use crate::sinks::driver::Backoff;
use crate::sinks::nats::{check_stream_name, connect};
use crate::state::AppState;

impl RelayConfig {
    fn check(&self) -> anyhow::Result<Vec<ServerAddr>> {
        let servers = self.url.servers().map_err(|e| anyhow::anyhow!("[relay] {e}"))?;
        check_stream_name(&self.stream).map_err(|e| anyhow::anyhow!("[relay] {e}"))?;
        check_stream_name(&self.consumer).map_err(|e| anyhow::anyhow!("[relay] consumer: {e}"))?;
        anyhow::ensure!(self.batch >= 1, "[relay] batch must be at least 1");
        anyhow::ensure!(self.ack_wait_secs >= 1, "[relay] ack_wait_secs must be at least 1");
        anyhow::ensure!(self.max_ack_pending >= self.batch as i64, "[relay] max_ack_pending must be at least batch");
        Ok(servers)
    }

    fn consumer_config(&self) -> pull::Config {
        pull::Config {
            durable_name: Some(self.consumer.clone()),
            description: Some("tracking-server relay".into()),
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(self.ack_wait_secs),
            max_ack_pending: self.max_ack_pending,
            ..Default::default()
        }
    }
}

/// A relay that publishes to the stream it consumes would feed itself.
fn refuse_loops(config: &ServerConfig) -> anyhow::Result<()> {
    let routing = config.routing()?;
    for sink in routing.sinks() {
        if sink.kind == "nats" {
            let options =
                crate::sinks::nats::Options::from_table(sink.options).map_err(|e| anyhow::anyhow!("sink `{}`: {e}", sink.path))?;
            anyhow::ensure!(
                options.stream != config.relay.stream,
                "sink `{}` publishes to stream {}, which this relay consumes: events would go round in circles",
                sink.path,
                options.stream
            );
        }
    }
    Ok(())
}

/// Runs the relay until SIGTERM or SIGINT, then drains: the batch in hand is stored
/// and acknowledged, no more is taken, the sinks write everything stored, the log
/// is synced. Serves `/healthz`, `/readyz` and `/metrics` on `listen`.
pub async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    let servers = config.relay.check()?;
    refuse_loops(&config)?;
    let ingest = Pipeline::start(&config)?;
    let state = ingest.state.clone();
    let (stop_tx, stop_rx) = watch::channel(false);
    let consumer = {
        let relay = config.relay.clone();
        let state = state.clone().into_inner();
        std::thread::Builder::new()
            .name("relay consumer".into())
            .spawn(move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime.block_on(consume(relay, servers, state, stop_rx)),
                Err(error) => tracing::error!(%error, "cannot start the relay's runtime"),
            })
            .context("starting the relay consumer")?
    };

    let http_state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(http_state.clone())
            .route("/healthz", web::get().to(crate::http::health::healthz))
            .route("/readyz", web::get().to(crate::http::health::readyz))
            .route("/metrics", web::get().to(crate::http::health::metrics))
    })
    .workers(1)
    .disable_signals()
    .bind(&config.listen)
    .with_context(|| format!("binding {}", config.listen))?;
    for address in server.addrs() {
        // Tests and scripts read this line to find a port chosen by the system.
        println!("listening on http://{address}");
    }
    tracing::info!(stream = %config.relay.stream, consumer = %config.relay.consumer, data_dir = %config.data_dir.display(), "relay started");
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        crate::app::stop_signal().await;
        tracing::info!("stopping: storing the batch in hand, taking no more");
        state.ready.store(false, Ordering::SeqCst);
        let _ = stop_tx.send(true);
        handle.stop(true).await;
    });
    server.await?;
    tokio::task::spawn_blocking(move || {
        let _ = consumer.join();
        tracing::info!("draining sinks");
        ingest.shutdown();
    })
    .await?;
    tracing::info!("stopped");
    Ok(())
}

/// Payload bytes stored in one append at most (a message holds up to a `nats` sink's
/// `max_message_bytes`; the log takes records up to 64 MiB).
const MAX_APPEND_BYTES: usize = 8 << 20;

/// Takes batches from the stream until stopped; failures reconnect with backoff.
async fn consume(relay: RelayConfig, servers: Vec<ServerAddr>, state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    loop {
        match consume_until_error(&relay, &servers, &state, &mut stop, &mut backoff).await {
            Ok(()) => return,
            Err(error) => {
                state.metrics.relay_errors.inc();
                if *stop.borrow() {
                    return;
                }
                let delay = backoff.next_delay();
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "relay: consuming the stream failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

async fn consume_until_error(
    relay: &RelayConfig,
    servers: &[ServerAddr],
    state: &AppState,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Backoff,
) -> Result<(), String> {
    let client = connect(servers, "tracking-server relay", Duration::from_secs(5)).await.map_err(|e| format!("connecting to NATS: {e}"))?;
    let js = jetstream::new(client);
    let stream = js
        .get_stream(&relay.stream)
        .await
        .map_err(|e| format!("stream {} (is an ingest node with a `nats` sink running?): {e}", relay.stream))?;
    let consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(&relay.consumer, relay.consumer_config())
        .await
        .map_err(|e| format!("consumer {} on stream {}: {e}", relay.consumer, relay.stream))?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(relay.batch)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| format!("pulling from consumer {}: {e}", relay.consumer))?;
    tracing::info!(stream = %relay.stream, consumer = %relay.consumer, "relay: consuming");
    loop {
        let first = tokio::select! {
            _ = stop.changed() => {
                // Store what has already arrived; the rest of the pull is delivered
                // again after `ack_wait`.
                let mut ready = Vec::new();
                while let Some(Some(Ok(message))) = messages.next().now_or_never() {
                    ready.push(message);
                }
                store_and_ack(ready, state, stop).await?;
                return Ok(());
            }
            next = messages.next() => next,
        };
        let mut batch = match first {
            Some(Ok(message)) => vec![message],
            Some(Err(e)) => return Err(format!("pulling messages: {e}")),
            None => return Err("the consumer's message stream ended".into()),
        };
        // Take what has arrived with it (each batch is one durable append, one log
        // record: its bytes stay well below the log's record limit).
        let mut failure = None;
        let mut bytes = batch[0].payload.len();
        while batch.len() < relay.batch && bytes < MAX_APPEND_BYTES {
            match tokio::time::timeout(Duration::from_millis(2), messages.next()).await {
                Ok(Some(Ok(message))) => {
                    bytes += message.payload.len();
                    batch.push(message);
                }
                Ok(Some(Err(e))) => {
                    failure = Some(format!("pulling messages: {e}"));
                    break;
                }
                Ok(None) | Err(_) => break,
            }
        }
        if !store_and_ack(batch, state, stop).await? {
            return Ok(());
        }
        backoff.reset();
        if let Some(failure) = failure {
            return Err(failure);
        }
    }
}

/// A stream message as the record the relay stores: its shared context and its events
/// with their ids, or why it is none. The `nats` sink publishes runs of a request's
/// events (`{"context":…,"events":[…]}`; earlier versions a `{}` context and each event
/// whole, or one event alone).
fn record_of(payload: &[u8]) -> Result<(&str, Vec<EventText>), &'static str> {
    let text = std::str::from_utf8(payload).map_err(|_| "not UTF-8")?;
    match crate::record::parts(text) {
        Ok(Some(parts)) => {
            if event_model::view::EventView::parse(parts.context).is_err() {
                return Err("its shared context is not a JSON object");
            }
            Ok((parts.context, parts.events.into_iter().map(event_of).collect::<Result<_, _>>()?))
        }
        Ok(None) => Ok(("{}", vec![event_of(text)?])),
        Err(_) => Err("not JSON"),
    }
}

/// One event (a JSON object) and its id.
fn event_of(text: &str) -> Result<EventText, &'static str> {
    let view = event_model::view::EventView::parse(text).map_err(|_| "not a JSON object")?;
    let id = view.get_str("id").and_then(|id| uuid::Uuid::parse_str(&id).ok());
    // A redelivered message brings its ids again, minted or not.
    Ok(EventText { id, id_given: id.is_some(), json: text.to_owned() })
}

/// Appends the batch's events to the relay's log (de-duplicated by id), then
/// acknowledges the messages. A full or failing log is retried: nothing is
/// acknowledged before it is stored. Returns `false` if asked to stop before the
/// batch could be stored (JetStream delivers it again later).
async fn store_and_ack(batch: Vec<jetstream::Message>, state: &AppState, stop: &watch::Receiver<bool>) -> Result<bool, String> {
    let metrics = &state.metrics;
    let mut readable = Vec::with_capacity(batch.len());
    let mut records = Vec::with_capacity(batch.len());
    for message in &batch {
        match record_of(&message.payload) {
            Ok(record) => {
                records.push(record);
                readable.push(message);
            }
            Err(error) => {
                let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
                tracing::error!(%error, sequence, "relay: a stream message is not an event; terminating its delivery");
                metrics.relay_messages.with_label_values(&["unreadable"]).inc();
                if let Err(error) = message.ack_with(AckKind::Term).await {
                    tracing::warn!(%error, "relay: could not terminate an unreadable message");
                }
            }
        }
    }
    let Some(last) = readable.last() else { return Ok(true) };
    let pending = last.info().map(|i| i.pending).unwrap_or(0);
    // One record per message, one durable append for the batch.
    let records: Vec<(&str, &[EventText])> = records.iter().map(|(context, events)| (*context, events.as_slice())).collect();
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let outcomes = loop {
        match state.store.accept_records(&records).await {
            Ok(outcomes) => break outcomes,
            Err(error) => {
                metrics.relay_errors.inc();
                if *stop.borrow() {
                    tracing::warn!(%error, "relay: stopping before a batch could be stored; it is delivered again");
                    return Ok(false);
                }
                let delay = backoff.next_delay();
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "relay: the log cannot take the batch; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    };
    let stored = outcomes.iter().filter(|o| **o == Stored::Accepted).count() as u64;
    metrics.relay_messages.with_label_values(&["stored"]).inc_by(stored);
    metrics.relay_messages.with_label_values(&["duplicate"]).inc_by(outcomes.len() as u64 - stored);
    let mut failed = None;
    for message in &readable {
        if let Err(error) = message.ack().await {
            // Stored already: the redelivery is dropped as a duplicate.
            failed = Some(format!("acknowledging: {error}"));
        }
    }
    metrics.relay_pending.set(pending as i64);
    match failed {
        Some(error) => Err(error),
        None => Ok(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_stored_events() {
        let id = "0192f3a0-7b1c-7d2e-8f3a-0123456789ab";
        let payload = format!(r#"{{"name":"a.b.c","timestamp":"t","data":{{"id":"nope"}},"context":{{}},"id":"{id}"}}"#);
        let id_of = |p: &[u8]| record_of(p).map(|(_, e)| e[0].id);
        assert_eq!(id_of(payload.as_bytes()).unwrap(), Some(uuid::Uuid::parse_str(id).unwrap()));
        assert_eq!(id_of(br#"{"name":"a","data":{}}"#).unwrap(), None, "an event without an id is stored, not de-duplicated");
        assert_eq!(id_of(br#"{"name":"a\"b","id":"not-a-uuid"}"#).unwrap(), None);
        assert!(id_of(b"[1, 2]").is_err());
        assert!(id_of(b"{\"name\":").is_err());
        assert!(id_of(b"plain text").is_err());
        assert!(id_of(br#"{"name":"a","data":{"s":"\ud83d"}}"#).is_ok(), "a lone surrogate is an event like any other");
        // A run as earlier versions published it: a `{}` context, each event whole.
        let run = format!(r#"{{"context":{{}},"events":[{payload},{{"name":"b","data":{{}}}}]}}"#);
        let (context, events) = record_of(run.as_bytes()).unwrap();
        assert_eq!(context, "{}");
        assert_eq!(events.len(), 2);
        assert_eq!(
            (events[0].json.as_str(), events[0].id, events[1].id),
            (payload.as_str(), Some(uuid::Uuid::parse_str(id).unwrap()), None)
        );
        // A run as the sink publishes it: the record's shared context once.
        let shared = format!(r#"{{"context":{{"user_id":7,"session":"s"}},"events":[{payload}]}}"#);
        let (context, events) = record_of(shared.as_bytes()).unwrap();
        assert_eq!((context, events.len()), (r#"{"user_id":7,"session":"s"}"#, 1));
        assert_eq!(events[0].json, payload, "each event as published: its own context only");
        assert!(record_of(br#"{"context":{},"events":[{"name":"a"},5]}"#).is_err(), "every event of a run is an object");
        for context in [r#""odd""#, "[1]", "null"] {
            let odd = format!(r#"{{"context":{context},"events":[{{"name":"a"}}]}}"#);
            assert!(record_of(odd.as_bytes()).is_err(), "a shared context that is not an object: {context}");
        }
    }

    #[test]
    fn configuration() {
        let config: ServerConfig = toml::from_str("[relay]\nurl = \"nats://a:1,nats://b:2\"\nconsumer = \"r1\"\nbatch = 100").unwrap();
        assert_eq!(config.relay.check().unwrap().len(), 2);
        assert_eq!(config.relay.stream, "TRACKING");
        assert_eq!(config.relay.consumer_config().durable_name.as_deref(), Some("r1"));
        let bad: ServerConfig = toml::from_str("[relay]\nconsumer = \"a.b\"").unwrap();
        assert!(bad.relay.check().unwrap_err().to_string().contains("consumer"));
        assert!(toml::from_str::<ServerConfig>("[relay]\nbtach = 1").is_err());
        let looped: ServerConfig = toml::from_str("[routing.backends.js]\ntype = \"nats\"\n").unwrap();
        assert!(refuse_loops(&looped).unwrap_err().to_string().contains("round in circles"));
        let other: ServerConfig = toml::from_str("[routing.backends.js]\ntype = \"nats\"\nstream = \"ARCHIVE\"\n").unwrap();
        assert!(refuse_loops(&other).is_ok());
    }
}
