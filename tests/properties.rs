//! Hostile input, property-based (proptest): the stdio line codec, the JSON-RPC envelope parser
//! and the id rewriter are fed arbitrary bytes, arbitrary chunkings and deeply nested JSON. They
//! must never panic or overflow the stack, and must agree with simple reference models.
//! The same three are fuzz targets under `fuzz/` (see README, "Fuzzing").

use bytes::BytesMut;
use mcp_bridge::jsonrpc::codec::{Frame, LineCodec};
use mcp_bridge::jsonrpc::{Kind, Message, RequestId};
use mcp_bridge::router::idmap::{IdMap, UpstreamId};
use mcp_bridge::session::SessionKey;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use tokio_util::codec::Decoder;

/// Decodes `input` delivered in pieces cut at `cuts` (positions, any order, may repeat).
fn decode_chunked(max_len: usize, input: &[u8], cuts: &[usize]) -> Vec<Frame> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.push(input.len());
    cuts.sort_unstable();
    let mut codec = LineCodec::new(max_len);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut from = 0;
    for cut in cuts {
        buf.extend_from_slice(&input[from..cut]);
        from = cut;
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            out.push(frame);
        }
    }
    while let Some(frame) = codec.decode_eof(&mut buf).unwrap() {
        out.push(frame);
    }
    out
}

/// The reference: split on `\n`; a piece longer than `max_len` (counting a `\r`) is one
/// `TooLong`, any other is a line without its trailing `\r`; an empty final piece is nothing.
fn model(max_len: usize, input: &[u8]) -> Vec<Frame> {
    let mut pieces: Vec<&[u8]> = input.split(|b| *b == b'\n').collect();
    if pieces.last().is_some_and(|p| p.is_empty()) {
        pieces.pop();
    }
    pieces
        .into_iter()
        .map(|p| match p.len() > max_len {
            true => Frame::TooLong(max_len),
            false => Frame::Line(bytes::Bytes::copy_from_slice(
                p.strip_suffix(b"\r").unwrap_or(p),
            )),
        })
        .collect()
}

/// Bytes rich in the characters that matter to the codec.
fn framing_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => Just(b'\n'),
            2 => Just(b'\r'),
            5 => any::<u8>(),
            5 => b'a'..=b'z',
        ],
        0..400,
    )
}

/// Arbitrary JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::hash_map(".{0,8}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn request_id() -> impl Strategy<Value = RequestId> {
    prop_oneof![
        any::<i64>().prop_map(RequestId::Number),
        ".{0,12}".prop_map(RequestId::String),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn line_codec_matches_the_model_for_any_bytes_and_chunking(
        input in framing_bytes(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        max_len in 0usize..64,
    ) {
        let frames = decode_chunked(max_len, &input, &cuts);
        prop_assert_eq!(frames, model(max_len, &input));
    }

    #[test]
    fn envelope_parser_never_panics_on_arbitrary_bytes(input in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(msg) = Message::parse(&input) {
            // Whatever it accepts, it writes back as a message it accepts again.
            let again = Message::parse(&msg.to_json_with_id::<RequestId>(None)).unwrap();
            prop_assert_eq!(again.kind().unwrap(), msg.kind().unwrap());
        }
    }

    #[test]
    fn envelope_parser_keeps_payloads_and_ids_intact(
        id in proptest::option::of(request_id()),
        method in proptest::option::of("[a-z/_]{1,20}"),
        payload in json_value(),
        response_error in any::<bool>(),
    ) {
        let mut msg = json!({"jsonrpc": "2.0"});
        if let Some(id) = &id {
            msg["id"] = json!(id);
        }
        let kind = match (&method, &id) {
            (Some(m), _) => {
                msg["method"] = json!(m);
                msg["params"] = payload.clone();
                if id.is_some() { Kind::Request } else { Kind::Notification }
            }
            (None, Some(_)) => {
                msg[if response_error { "error" } else { "result" }] = payload.clone();
                Kind::Response
            }
            (None, None) => {
                prop_assert!(Message::parse(msg.to_string().as_bytes()).is_err());
                return Ok(());
            }
        };
        // `null` counts as present only for `result`: `"params": null` is dropped and a response
        // whose only member is `"error": null` is not a response.
        if payload.is_null() && (method.is_some() || response_error) {
            match method {
                Some(_) => prop_assert!(Message::parse(msg.to_string().as_bytes()).unwrap().params.is_none()),
                None => prop_assert!(Message::parse(msg.to_string().as_bytes()).is_err()),
            }
            return Ok(());
        }
        let parsed = Message::parse(msg.to_string().as_bytes()).unwrap();
        prop_assert_eq!(parsed.kind().unwrap(), kind);
        prop_assert_eq!(parsed.request_id(), id.as_ref());
        // Written back, the payload is the same JSON text (raw, so floats keep every digit).
        let out = Message::parse(&parsed.to_json_with_id(parsed.request_id())).unwrap();
        let raw = |m: &Message| {
            let member = m.params.as_ref().or(m.result.as_ref()).or(m.error.as_ref());
            member.map(|r| r.get().to_string())
        };
        prop_assert_eq!(raw(&out), Some(payload.to_string()));
        prop_assert_eq!(out.request_id(), id.as_ref());
        prop_assert_eq!(out.method.as_deref(), method.as_deref());
        prop_assert_eq!(out.error.is_some(), kind == Kind::Response && response_error);
    }

    #[test]
    fn id_rewriting_round_trips_every_id_to_its_own_session(
        requests in prop::collection::vec((0u64..4, request_id()), 1..60),
    ) {
        let mut map: IdMap<()> = IdMap::new();
        let mut model: HashMap<(u64, RequestId), ()> = HashMap::new();
        let mut issued: Vec<(UpstreamId, u64, RequestId)> = Vec::new();
        for (session, client_id) in requests {
            let line = json!({"jsonrpc": "2.0", "id": client_id, "method": "tools/call", "params": {}});
            let msg = Message::parse(line.to_string().as_bytes()).unwrap();
            let result = map.allocate(SessionKey(session), msg.request_id().unwrap().clone(), ());
            let duplicate = model.insert((session, client_id.clone()), ()).is_some();
            prop_assert_eq!(result.is_err(), duplicate, "duplicates only within one session");
            let Ok(up) = result else { continue };
            // The child sees the upstream id in place of the client's, the rest unchanged.
            let rewritten: Value = serde_json::from_slice(&msg.to_json_with_id(Some(&up))).unwrap();
            prop_assert_eq!(&rewritten["id"], &json!(up.0));
            prop_assert_eq!(&rewritten["method"], "tools/call");
            prop_assert!(issued.iter().all(|(u, _, _)| *u != up), "upstream ids are unique");
            issued.push((up, session, client_id));
        }
        // Responses in reverse order resolve to exactly the session and id (type included).
        for (up, session, client_id) in issued.into_iter().rev() {
            let entry = map.resolve(up).unwrap();
            prop_assert_eq!(entry.session, SessionKey(session));
            prop_assert_eq!(entry.client_id, client_id);
            prop_assert!(map.resolve(up).is_none(), "a response resolves once");
        }
        prop_assert!(map.is_empty());
    }

    #[test]
    fn deeply_nested_json_never_overflows_the_stack(
        depth in 1usize..200_000,
        open in prop_oneof![Just("["), Just("{\"a\":")],
        place in 0usize..3,
    ) {
        let close = if open == "[" { "]" } else { "}" };
        let nested = format!("{}1{}", open.repeat(depth), close.repeat(depth));
        let text = match place {
            0 => format!(r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{nested}}}"#),
            1 => format!(r#"{{"jsonrpc":"2.0","id":{nested},"result":{{}}}}"#),
            _ => nested.clone(),
        };
        // On a thread with a runtime worker's stack (2 MiB): an overflow would abort the run.
        let kind = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || Message::parse(text.as_bytes()).map(|m| m.kind()))
            .unwrap()
            .join()
            .expect("no panic");
        match place {
            // Params stay raw text, scanned without recursion and passed on as they are.
            0 => prop_assert_eq!(kind, Ok(Ok(Kind::Request))),
            // A nested id, or a bare array or object, is not a JSON-RPC message.
            _ => prop_assert!(kind.is_err()),
        }
    }
}
