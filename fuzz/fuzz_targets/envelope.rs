//! The JSON-RPC envelope parser on arbitrary bytes: never panics or overflows the stack, and
//! whatever it accepts it writes back as a message it accepts again, of the same kind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_bridge::jsonrpc::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Message::parse(data) {
        let again = Message::parse(&msg.to_json_with_id(msg.request_id())).expect("re-parses");
        assert_eq!(again.kind(), msg.kind());
        assert_eq!(again.request_id(), msg.request_id());
    }
});
