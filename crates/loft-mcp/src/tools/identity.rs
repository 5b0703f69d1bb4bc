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
                 write to you), your name, the scopes of your key and who created you. Returns {identity_id, name, \
                 address, scopes, key_id, key_expires_at, chain}. Call it once to learn your address; it is not \
                 needed before each mail action.",
        }
        .calls(|api, NoArgs {}| async move { WhoAmIView::try_from(api.whoami().await?) }),
    ]
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct NoArgs {}
