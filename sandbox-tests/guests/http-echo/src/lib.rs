//! What `echo` does, as a `wasi:http/proxy` component for `wasmtime serve`:
//! read the JSON body, answer `{"text": <its text>, "data": null}`. The same
//! work as the direct call to `echo` (parse a JSON request, write a JSON
//! reply) in the shape the wasmtime CLI serves, so benches/chat_load.rs can
//! put the two hosts side by side under the same load.
use std::io::Write as _;

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

wasip2::http::proxy::export!(HttpEcho);

struct HttpEcho;

/// The most request bytes read: the host's HTTP body limit
/// (`agentkernel_server::MAX_BODY_BYTES`), so both read as much.
const MAX_BODY: usize = 1 << 20;

fn read_body(request: &IncomingRequest) -> Vec<u8> {
    let mut bytes = Vec::new();
    let Ok(body) = request.consume() else { return bytes };
    if let Ok(stream) = body.stream() {
        while bytes.len() < MAX_BODY {
            match stream.blocking_read((MAX_BODY - bytes.len()) as u64) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(_) => break, // closed: the whole body is read
            }
        }
    }
    let _ = IncomingBody::finish(body);
    bytes
}

impl Guest for HttpEcho {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let body = read_body(&request);
        let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
        let text = parsed.as_ref().and_then(|v| v["text"].as_str()).unwrap_or_default();
        let reply = serde_json::json!({"text": text, "data": null}).to_string();

        let headers = Fields::from_list(&[("content-type".to_string(), b"application/json".to_vec())])
            .unwrap_or_else(|_| Fields::new());
        let response = OutgoingResponse::new(headers);
        let out_body = response.body().expect("a new response has a body");
        ResponseOutparam::set(response_out, Ok(response));
        if let Ok(mut stream) = out_body.write() {
            // `std::io::Write` splits the reply into the writes the stream
            // allows (one `blocking-write-and-flush` takes at most 4 KiB).
            let _ = stream.write_all(reply.as_bytes()).and_then(|()| std::io::Write::flush(&mut stream));
        }
        let _ = OutgoingBody::finish(out_body, None);
    }
}
