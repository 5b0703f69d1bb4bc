//! The identity's tools: who the caller is.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Hints, ToolDef, ToolSpec};
use crate::views::WhoAmIView;

/// The identity tools, in the order they are listed.
pub(super) fn tools() -> Vec<ToolDef> {
    vec![
        ToolSpec {
            name: "identity_whoami",
            title: "Who am I",
            scopes: &[],
            hints: Hints::READ,
            description: "Show which identity you act as: your own email address (give it to others so they can \
                 write to you), your name, the scopes of your key, your oversight mode, who created you, your \
                 sending budget, and your request for another oversight mode if you made one (open, or denied \
                 with the operator's reason). Returns {identity_id, name, address, scopes, key_id, key_expires_at, \
                 oversight_mode, chain, sending, mode_request}: `sending` has your caps on mails per hour, mails \
                 per day and new recipients per day (yours and the server's, with what you used; null is no cap) \
                 and whether first contact with a new address is held for a reviewer. Call it once to learn your \
                 address; it is not needed before each mail action.",
        }
        .calls(|api, NoArgs {}| async move { WhoAmIView::try_from(api.whoami().await?) }),
    ]
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct NoArgs {}
