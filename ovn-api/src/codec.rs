//! JSON-RPC 1.0 framing as OVSDB uses it: JSON objects concatenated on a byte stream with no
//! delimiter. The [`Decoder`] scans incoming bytes once (tracking nesting, strings and escapes)
//! to find where each top-level object ends, then parses just that slice, so a 30 MB monitor
//! reply arriving in 64 KiB reads costs O(n), not O(n²). Pure code: bytes in, messages out.
//!
//! Malformed, truncated or oversized input is an error, never a panic.

use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};

/// Default limit for one message (the initial monitor reply of a large NB can be tens of MB).
pub const DEFAULT_MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// A JSON-RPC message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A request (`id` not null) or a notification (`id` null).
    Request {
        /// Method name.
        method: String,
        /// Parameters (an array).
        params: Json,
        /// Request id; `Json::Null` for notifications.
        id: Json,
    },
    /// A response to a request.
    Response {
        /// `result` (null on error).
        result: Json,
        /// `error` (null on success).
        error: Json,
        /// Id of the request answered.
        id: Json,
    },
}

impl Message {
    /// Builds a request.
    pub fn request(method: &str, params: Json, id: u64) -> Self {
        Message::Request {
            method: method.to_owned(),
            params,
            id: Json::from(id),
        }
    }

    /// Converts a parsed JSON value into a message.
    pub fn from_json(j: Json) -> Result<Self> {
        let Json::Object(mut o) = j else {
            return Err(proto("message is not a JSON object"));
        };
        if let Some(method) = o.remove("method") {
            let Json::String(method) = method else {
                return Err(proto("\"method\" is not a string"));
            };
            let params = o.remove("params").unwrap_or(Json::Array(Vec::new()));
            let id = o.remove("id").unwrap_or(Json::Null);
            Ok(Message::Request { method, params, id })
        } else if o.contains_key("result") || o.contains_key("error") {
            let result = o.remove("result").unwrap_or(Json::Null);
            let error = o.remove("error").unwrap_or(Json::Null);
            let id = o.remove("id").unwrap_or(Json::Null);
            Ok(Message::Response { result, error, id })
        } else {
            Err(proto(
                "message has neither \"method\" nor \"result\"/\"error\"",
            ))
        }
    }

    /// The JSON form.
    pub fn to_json(&self) -> Json {
        let mut o = Map::new();
        match self {
            Message::Request { method, params, id } => {
                o.insert("method".into(), Json::String(method.clone()));
                o.insert("params".into(), params.clone());
                o.insert("id".into(), id.clone());
            }
            Message::Response { result, error, id } => {
                o.insert("result".into(), result.clone());
                o.insert("error".into(), error.clone());
                o.insert("id".into(), id.clone());
            }
        }
        Json::Object(o)
    }

    /// Serialises the message to bytes for the wire.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising a `serde_json::Value` cannot fail (all map keys are strings).
        serde_json::to_vec(&self.to_json()).unwrap_or_default()
    }
}

fn proto(reason: impl Into<String>) -> Error {
    Error::Protocol {
        remote: "decoder".into(),
        reason: reason.into(),
    }
}

/// Incremental splitter and parser for a stream of concatenated JSON objects.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Where scanning resumes in `buf`.
    pos: usize,
    /// Start of the current (incomplete) object in `buf`, if one has started.
    start: Option<usize>,
    depth: u32,
    in_string: bool,
    escape: bool,
    max: usize,
    failed: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MESSAGE)
    }
}

impl Decoder {
    /// A decoder refusing messages larger than `max` bytes.
    pub fn new(max: usize) -> Self {
        Decoder {
            buf: Vec::new(),
            pos: 0,
            start: None,
            depth: 0,
            in_string: false,
            escape: false,
            max,
            failed: false,
        }
    }

    /// Appends bytes read from the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// True when bytes of an incomplete message are buffered (so EOF now means truncation).
    pub fn has_partial(&self) -> bool {
        self.start.is_some()
            || self.buf[self.pos..]
                .iter()
                .any(|b| !b.is_ascii_whitespace())
    }

    /// Returns the next complete message, `Ok(None)` if more bytes are needed. After an error
    /// the stream is unusable and every later call fails too.
    pub fn next_message(&mut self) -> Result<Option<Message>> {
        match self.next_json() {
            Ok(Some(j)) => Message::from_json(j)
                .map(Some)
                .inspect_err(|_| self.failed = true),
            other => other.map(|_| None),
        }
    }

    /// Returns the next complete top-level JSON value (always an object or array).
    pub fn next_json(&mut self) -> Result<Option<Json>> {
        if self.failed {
            return Err(proto("stream already failed"));
        }
        let r = self.scan();
        if r.is_err() {
            self.failed = true;
            self.buf.clear();
        }
        r
    }

    fn scan(&mut self) -> Result<Option<Json>> {
        let mut i = self.pos;
        while i < self.buf.len() {
            let c = self.buf[i];
            if self.in_string {
                if self.escape {
                    self.escape = false;
                } else if c == b'\\' {
                    self.escape = true;
                } else if c == b'"' {
                    self.in_string = false;
                }
            } else if self.start.is_none() {
                match c {
                    b' ' | b'\t' | b'\r' | b'\n' => {}
                    b'{' | b'[' => {
                        self.start = Some(i);
                        self.depth = 1;
                    }
                    _ => {
                        return Err(proto(format!(
                            "unexpected byte 0x{c:02x} between messages (expected '{{')"
                        )));
                    }
                }
            } else {
                match c {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => {
                        self.depth += 1;
                        if self.depth > 1024 {
                            return Err(proto("JSON nested deeper than 1024 levels"));
                        }
                    }
                    b'}' | b']' => {
                        self.depth -= 1;
                        if self.depth == 0 {
                            let start = self.start.take().unwrap_or(0);
                            let end = i + 1;
                            if end - start > self.max {
                                return Err(Error::Oversized {
                                    remote: "decoder".into(),
                                    limit: self.max,
                                });
                            }
                            let parsed = serde_json::from_slice::<Json>(&self.buf[start..end]);
                            self.buf.drain(..end);
                            self.pos = 0;
                            return parsed
                                .map(Some)
                                .map_err(|e| proto(format!("invalid JSON: {e}")));
                        }
                    }
                    _ => {}
                }
            }
            i += 1;
            if let Some(start) = self.start
                && i - start > self.max
            {
                return Err(Error::Oversized {
                    remote: "decoder".into(),
                    limit: self.max,
                });
            }
        }
        self.pos = i;
        if self.start.is_none() {
            // Only whitespace so far: drop it so the buffer does not grow.
            self.buf.clear();
            self.pos = 0;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn drain(d: &mut Decoder) -> Result<Vec<Message>> {
        let mut out = Vec::new();
        while let Some(m) = d.next_message()? {
            out.push(m);
        }
        Ok(out)
    }

    #[test]
    fn splits_concatenated_messages() {
        let mut d = Decoder::default();
        d.feed(br#"{"id":1,"result":{"a":"}{"},"error":null}{"method":"echo","params":[],"id":"echo"}  "#);
        let msgs = drain(&mut d).unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(
            msgs[0],
            Message::Response {
                result: json!({"a": "}{"}),
                error: Json::Null,
                id: json!(1)
            }
        );
        assert!(matches!(&msgs[1], Message::Request { method, .. } if method == "echo"));
        assert!(!d.has_partial());
    }

    #[test]
    fn escaped_quotes_do_not_end_strings() {
        let mut d = Decoder::default();
        d.feed(br#"{"method":"x","params":["a\"}\\"],"id":null}"#);
        let m = drain(&mut d).unwrap();
        assert_eq!(
            m[0],
            Message::Request {
                method: "x".into(),
                params: json!(["a\"}\\"]),
                id: Json::Null
            }
        );
    }

    #[test]
    fn truncated_input_waits_then_reports_partial() {
        let mut d = Decoder::default();
        d.feed(br#"{"id":1,"result":[1,2"#);
        assert!(d.next_message().unwrap().is_none());
        assert!(d.has_partial());
    }

    #[test]
    fn malformed_inputs_are_errors() {
        for bad in [
            &b"42"[..],
            b"\"str\"",
            b"{\"a\" 1}",
            b"{\"a\":}",
            b"[1,2]",
            b"{}",
            b"{\"method\":1}",
            b"nul",
        ] {
            let mut d = Decoder::default();
            d.feed(bad);
            assert!(drain(&mut d).is_err(), "{}", String::from_utf8_lossy(bad));
            assert!(d.next_message().is_err(), "stays failed");
        }
    }

    #[test]
    fn oversized_is_an_error_even_before_the_end() {
        let mut d = Decoder::new(64);
        d.feed(b"{\"method\":\"x\",\"params\":[\"");
        d.feed(&[b'a'; 100]);
        assert!(matches!(
            d.next_message(),
            Err(Error::Oversized { limit: 64, .. })
        ));
    }

    #[test]
    fn deep_nesting_is_an_error() {
        let mut d = Decoder::default();
        d.feed(&vec![b'['; 5000]);
        assert!(d.next_message().is_err());
    }

    fn arb_json() -> impl Strategy<Value = Json> {
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            any::<i64>().prop_map(Json::from),
            "[ -~]{0,10}".prop_map(Json::String),
            "[{}\\[\\]\"\\\\]{0,4}".prop_map(Json::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
                prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                    .prop_map(|m| Json::Object(m.into_iter().collect())),
            ]
        })
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            ("[a-z_]{1,10}", arb_json(), any::<u32>()).prop_map(|(m, p, id)| Message::Request {
                method: m,
                params: p,
                id: Json::from(id)
            }),
            (arb_json(), any::<u32>()).prop_map(|(r, id)| Message::Response {
                result: r,
                error: Json::Null,
                id: Json::from(id)
            }),
        ]
    }

    proptest! {
        #[test]
        fn any_chunking_yields_the_same_messages(msgs in prop::collection::vec(arb_message(), 1..6),
                                                 cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8)) {
            let mut bytes = Vec::new();
            for m in &msgs {
                bytes.extend(m.encode());
                bytes.extend(b"\n");
            }
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len())).collect();
            points.push(bytes.len());
            points.sort();
            let mut d = Decoder::default();
            let mut got = Vec::new();
            let mut last = 0;
            for p in points {
                d.feed(&bytes[last..p]);
                last = p;
                got.extend(drain(&mut d).unwrap());
            }
            prop_assert_eq!(got, msgs);
            prop_assert!(!d.has_partial());
        }

        #[test]
        fn truncation_never_yields_a_bogus_message(m in arb_message(), cut in any::<prop::sample::Index>()) {
            let bytes = m.encode();
            let n = cut.index(bytes.len());
            let mut d = Decoder::default();
            d.feed(&bytes[..n]);
            prop_assert!(d.next_message().unwrap().is_none());
        }

        #[test]
        fn random_bytes_never_panic(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8),
                                    max in 1usize..200) {
            let mut d = Decoder::new(max);
            for c in chunks {
                d.feed(&c);
                while let Ok(Some(_)) = d.next_message() {}
            }
        }

        #[test]
        fn json_like_garbage_never_panics(s in "[{}\\[\\]\",:a-z0-9\\\\ ]{0,80}") {
            let mut d = Decoder::new(1000);
            d.feed(s.as_bytes());
            while let Ok(Some(_)) = d.next_message() {}
        }
    }
}
