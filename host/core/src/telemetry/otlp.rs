//! OTLP's protobuf encoding of spans (`opentelemetry/proto/trace/v1`), by
//! hand: the exporter needs six messages and three wire types, which is
//! less code than a protobuf toolchain in the build.
//!
//! Field numbers are the ones in `trace.proto`, `common.proto` and
//! `resource.proto` of opentelemetry-proto 1.x.

/// One span as exported.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanData {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    pub name: String,
    pub kind: SpanKind,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub attributes: Vec<(&'static str, Value)>,
    /// `Some(message)`: the span ended in an error.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    StrList(Vec<String>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}
impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;

/// A protobuf message being written.
#[derive(Default)]
struct Message(Vec<u8>);

impl Message {
    fn varint(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.0.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.0.push(n as u8);
    }
    fn tag(&mut self, field: u32, wire: u32) {
        self.varint(u64::from(field << 3 | wire));
    }
    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.tag(field, LEN);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }
    fn message(&mut self, field: u32, m: Message) {
        self.bytes(field, &m.0);
    }
    fn uint(&mut self, field: u32, n: u64) {
        self.tag(field, VARINT);
        self.varint(n);
    }
    fn fixed64(&mut self, field: u32, n: u64) {
        self.tag(field, FIXED64);
        self.0.extend_from_slice(&n.to_le_bytes());
    }
}

fn any_value(v: &Value) -> Message {
    let mut m = Message::default();
    match v {
        Value::Str(s) => m.string(1, s),
        Value::Bool(b) => m.uint(2, u64::from(*b)),
        Value::Int(n) => m.uint(3, *n as u64),
        Value::Double(d) => m.fixed64(4, d.to_bits()),
        Value::StrList(items) => {
            let mut array = Message::default();
            for s in items {
                array.message(1, any_value(&Value::Str(s.clone())));
            }
            m.message(5, array);
        }
    }
    m
}

fn key_value(key: &str, v: &Value) -> Message {
    let mut m = Message::default();
    m.string(1, key);
    m.message(2, any_value(v));
    m
}

fn span(s: &SpanData) -> Message {
    let mut m = Message::default();
    m.bytes(1, &s.trace_id);
    m.bytes(2, &s.span_id);
    if let Some(parent) = &s.parent_span_id {
        m.bytes(4, parent);
    }
    m.string(5, &s.name);
    m.uint(6, s.kind as u64);
    m.fixed64(7, s.start_unix_nanos);
    m.fixed64(8, s.end_unix_nanos.max(s.start_unix_nanos));
    for (k, v) in &s.attributes {
        m.message(9, key_value(k, v));
    }
    let mut status = Message::default();
    match &s.error {
        // STATUS_CODE_ERROR = 2, with a message; STATUS_CODE_OK = 1.
        Some(message) => {
            status.string(2, message);
            status.uint(3, 2);
        }
        None => status.uint(3, 1),
    }
    m.message(15, status);
    m
}

/// An `ExportTraceServiceRequest` carrying `spans` from one service.
pub fn export_request(resource: &[(&'static str, Value)], scope_version: &str, spans: &[SpanData]) -> Vec<u8> {
    let mut res = Message::default();
    for (k, v) in resource {
        res.message(1, key_value(k, v));
    }
    let mut scope = Message::default();
    scope.string(1, "agentkernel");
    scope.string(2, scope_version);
    let mut scope_spans = Message::default();
    scope_spans.message(1, scope);
    for s in spans {
        scope_spans.message(2, span(s));
    }
    let mut resource_spans = Message::default();
    resource_spans.message(1, res);
    resource_spans.message(2, scope_spans);
    let mut request = Message::default();
    request.message(1, resource_spans);
    request.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_fields_match_the_protobuf_encoding() {
        let mut m = Message::default();
        m.varint(300);
        assert_eq!(m.0, [0xac, 0x02]);
        // KeyValue{key: "a", value: AnyValue{string_value: "b"}}
        assert_eq!(key_value("a", &Value::from("b")).0, [0x0a, 0x01, b'a', 0x12, 0x03, 0x0a, 0x01, b'b']);
        // A negative int64 is ten bytes of two's complement.
        assert_eq!(any_value(&Value::Int(-1)).0.len(), 1 + 10);
    }

    #[test]
    fn a_span_carries_its_ids_times_and_error_status() {
        let s = SpanData {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent_span_id: Some([3; 8]),
            name: "x".into(),
            kind: SpanKind::Client,
            start_unix_nanos: 5,
            end_unix_nanos: 4,
            attributes: vec![],
            error: Some("bad".into()),
        };
        let bytes = span(&s).0;
        assert_eq!(&bytes[..2], [0x0a, 16]);
        assert!(bytes.windows(9).any(|w| w == [0x41, 5, 0, 0, 0, 0, 0, 0, 0]), "end is never before start");
        assert!(bytes.ends_with(&[0x7a, 7, 0x12, 3, b'b', b'a', b'd', 0x18, 2]), "status ERROR with its message");
    }
}
