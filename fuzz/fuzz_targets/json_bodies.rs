//! Every JSON request body the REST API and the MCP door parse into core types: deserialising
//! arbitrary bytes never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loft_core::mail::{MessagePatch, ReplyMail, SendMail};
use loft_core::service::{
    BrokeredHttpRequest, CreateIdentityRequest, CreateKeyRequest, StoreCredentialRequest, UpdateIdentityRequest,
};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<SendMail>(data);
    let _ = serde_json::from_slice::<ReplyMail>(data);
    let _ = serde_json::from_slice::<MessagePatch>(data);
    let _ = serde_json::from_slice::<CreateIdentityRequest>(data);
    let _ = serde_json::from_slice::<UpdateIdentityRequest>(data);
    let _ = serde_json::from_slice::<CreateKeyRequest>(data);
    let _ = serde_json::from_slice::<StoreCredentialRequest>(data);
    let _ = serde_json::from_slice::<BrokeredHttpRequest>(data);
});
