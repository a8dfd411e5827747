//! `POST /v1/chat` (JSON, or server-sent events with `"stream": true`) and
//! `GET /v1/sessions/{id}`.
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc::Receiver;
use tokio::task::JoinHandle;

use super::auth::Caller;
use super::trace_context::IncomingTrace;
use super::detached::{DetachedPlace, RunsBusy};
use super::{App, error, json_rejection};
use agentkernel_core::api::ErrorBody;
use agentkernel_core::chat::{Accepted, ChatError, ChatRequest, ChatResponse, Conversation};
use agentkernel_runtime::trace::Event;

pub(super) fn chat_error(e: &ChatError) -> Response {
    let status = match e {
        ChatError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
        ChatError::UnknownAgent(_) => StatusCode::NOT_FOUND,
        ChatError::NoRouter => StatusCode::CONFLICT,
        ChatError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.code(), e.to_string())
}

pub(super) async fn chat(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    IncomingTrace(parent): IncomingTrace,
    body: Result<Json<ChatRequest>, JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(rej) => return json_rejection(rej),
    };
    let conversation = Conversation::Session { id: req.session.clone() };
    // Client mistakes are answered before any stream opens: a plain JSON
    // error with its 4xx status, not an `error` event after a 200.
    let accepted = match app.chat.accept(&req, &caller.principal(), conversation).await {
        Ok(a) => a.traced("/v1/chat", parent),
        Err(e) => return chat_error(&e),
    };
    if !req.stream {
        return match app.chat.run(accepted, None).await {
            Ok(resp) => Json(resp).into_response(),
            Err(e) => chat_error(&e),
        };
    }
    let Ok(place) = app.detached_runs.try_acquire(&caller.principal().name) else { return busy_response() };
    let (events, task) = spawn_streaming(app, accepted, place);
    Sse::new(sse_events(events, task)).keep_alive(KeepAlive::default()).into_response()
}

/// A chat run that outlives its client's connection, in a task of its own.
pub(super) type DetachedRun = JoinHandle<Result<ChatResponse, ChatError>>;

/// The HTTP answer when no detached-run place is free (`detached.rs`).
pub(super) fn busy_response() -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, RunsBusy::CODE, RunsBusy::MESSAGE)
}

/// Runs an accepted chat request in its own task, which holds `place`
/// until it ends; `events` gets its events.
pub(super) fn spawn_run(
    app: Arc<App>,
    accepted: Accepted,
    events: Option<tokio::sync::mpsc::Sender<Event>>,
    place: DetachedPlace,
) -> DetachedRun {
    tokio::spawn(async move {
        let _place = place;
        app.chat.run(accepted, events).await
    })
}

/// Runs an accepted chat request in its own task, reporting its events on
/// the returned channel. The request runs to the end (and is recorded)
/// even if the client goes away, holding `place` (one of the app's
/// detached-run places, taken by the caller) meanwhile. The channel
/// holds at most `stream_buffer_events`: a client reading more slowly than
/// the request runs misses progress events (a `lagged` event says how
/// many), never the result, and never slows the agents down (see
/// `Trace::emit`).
pub(super) fn spawn_streaming(app: Arc<App>, accepted: Accepted, place: DetachedPlace) -> (Receiver<Event>, DetachedRun) {
    let (tx, rx) = tokio::sync::mpsc::channel(app.stream_buffer_events);
    (rx, spawn_run(app, accepted, Some(tx), place))
}

/// The SSE stream of `/v1/chat`: one event per trace event (named by its
/// `type`), then `done` with the whole response or `error`.
fn sse_events(
    events: Receiver<Event>,
    task: JoinHandle<Result<ChatResponse, ChatError>>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    stream::unfold((events, Some(task)), |(mut events, task)| async move {
        // The sender lives in the request's scope: the channel closes when
        // the request is over, and the result follows.
        if let Some(event) = events.recv().await {
            let kind = serde_json::to_value(&event).ok().and_then(|v| v["type"].as_str().map(String::from)).unwrap_or_default();
            let sse = SseEvent::default().event(kind).json_data(&event).unwrap_or_default();
            return Some((Ok(sse), (events, task)));
        }
        let task = task?;
        let sse = match task.await {
            Ok(Ok(resp)) => SseEvent::default().event("done").json_data(&resp),
            Ok(Err(e)) => SseEvent::default().event("error").json_data(ErrorBody::new(e.code(), e.to_string())),
            Err(e) => SseEvent::default().event("error").json_data(ErrorBody::new("host-error", e.to_string())),
        };
        Some((Ok(sse.unwrap_or_default()), (events, None)))
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct TranscriptQuery {
    limit: Option<u32>,
}

pub(super) async fn session(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<TranscriptQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(200).min(1000);
    match app.chat.transcript(&caller.name, &id, limit).await {
        Ok(turns) if turns.is_empty() => error(StatusCode::NOT_FOUND, "not-found", format!("no session `{id}`")),
        Ok(turns) => Json(json!({"session": id, "turns": turns})).into_response(),
        Err(e) => chat_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use agentkernel_runtime::trace::{Event, Trace};

    fn token(text: &str) -> Event {
        Event::Token { span: 0, agent: "a".into(), text: text.into() }
    }

    /// A client that does not read holds at most the buffer; what it missed
    /// is reported once it reads again, and emitting never waits.
    #[test]
    fn a_slow_reader_misses_events_not_memory() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let trace = Trace::new(Some(tx));
        for i in 0..10_000 {
            trace.emit(token(&i.to_string()));
        }
        let first: Vec<Event> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(first.len(), 8, "the buffer bounds what is held");
        trace.emit(token("after"));
        let next: Vec<Event> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert!(matches!(next[0], Event::Lagged { missed: 9_992 }), "{:?}", next[0]);
        assert!(matches!(&next[1], Event::Token { text, .. } if text == "after"));
    }
}
