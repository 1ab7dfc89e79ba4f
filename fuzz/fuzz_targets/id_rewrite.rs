//! The id rewriter on arbitrary request lines from arbitrary sessions: every accepted request
//! gets a unique upstream id, and resolving it gives back exactly its session and id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_bridge::jsonrpc::{Kind, Message};
use mcp_bridge::router::idmap::IdMap;
use mcp_bridge::session::SessionKey;

fuzz_target!(|data: &[u8]| {
    let mut map: IdMap<()> = IdMap::new();
    let mut issued = Vec::new();
    // Each line is one message; its first byte picks one of four sessions.
    for line in data.split(|b| *b == b'\n') {
        let Some((&who, text)) = line.split_first() else {
            continue;
        };
        let Ok(msg) = Message::parse(text) else {
            continue;
        };
        if msg.kind() != Ok(Kind::Request) {
            continue;
        }
        let session = SessionKey(u64::from(who % 4));
        let id = msg.request_id().expect("requests have ids").clone();
        if let Ok(up) = map.allocate(session, id.clone(), ()) {
            let rewritten = Message::parse(&msg.to_json_with_id(Some(&up))).expect("re-parses");
            assert_eq!(
                serde_json::to_value(rewritten.request_id()).unwrap(),
                serde_json::json!(up.0)
            );
            issued.push((up, session, id));
        }
    }
    for (up, session, id) in issued {
        let entry = map.resolve(up).expect("issued ids resolve once");
        assert_eq!((entry.session, entry.client_id), (session, id));
    }
    assert!(map.is_empty());
});
