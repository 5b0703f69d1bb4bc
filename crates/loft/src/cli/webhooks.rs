//! `loft webhooks ...`: endpoints that receive events as signed HTTP posts (Standard
//! Webhooks), their delivery log, replay and secret rotation.
//!
//! With an identity's key (`LOFT_API_KEY`) the commands manage that identity's endpoints, for
//! its own events; with the operator key (`LOFT_ADMIN_KEY`), every endpoint, and `add` registers
//! an instance-wide one (or one identity's, `--identity`). The identity key wins when both are
//! set.

use clap::{Args, Subcommand};
use loft_core::webhooks::{WebhookCreated, WebhookDelivery, WebhookEndpoint};

use super::format::{Fields, Table, clean, time};
use super::identity::show_list;
use super::{CmdResult, Ctx, GlobalArgs, KeyNeed};
use loft_client::api;

#[derive(Debug, Args)]
pub struct WebhooksArgs {
    #[command(flatten)]
    pub(super) global: GlobalArgs,
    #[command(subcommand)]
    command: WebhooksCommand,
}

#[derive(Debug, Subcommand)]
enum WebhooksCommand {
    /// Register an endpoint; prints its signing secret (`whsec_...`) this once.
    Add(AddArgs),
    /// List endpoints, newest first.
    List(PageArgs),
    /// Show one endpoint.
    Show {
        /// The endpoint (`whk_...`).
        id: String,
    },
    /// Change an endpoint's URL, types or description, or pause and resume it.
    Update(UpdateArgs),
    /// Remove an endpoint and its delivery log.
    Remove {
        /// The endpoint (`whk_...`).
        id: String,
    },
    /// A new signing secret, printed this once; the old one signs beside it for 24 hours.
    RotateSecret {
        /// The endpoint (`whk_...`).
        id: String,
    },
    /// An endpoint's delivery log, newest first (event, attempt, status, duration, error).
    Deliveries {
        /// The endpoint (`whk_...`).
        id: String,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Post a logged delivery's event again now (same `webhook-id`, a new signature).
    Replay {
        /// The endpoint (`whk_...`).
        id: String,
        /// The logged delivery (`whd_...`).
        delivery_id: String,
    },
}

#[derive(Debug, Args)]
struct AddArgs {
    /// Where to post events (`https://...`).
    url: String,
    /// Event types, repeated or comma-separated (`message.received`, `approval.*`); none:
    /// every type the key may see.
    #[arg(long = "type", value_name = "TYPE", value_delimiter = ',')]
    types: Vec<String>,
    /// What the endpoint is for (at most 500 characters).
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,
    /// Operator only: only this identity's events.
    #[arg(long, value_name = "ID")]
    identity: Option<String>,
}

#[derive(Debug, Args)]
struct UpdateArgs {
    /// The endpoint (`whk_...`).
    id: String,
    /// A new URL.
    #[arg(long)]
    url: Option<String>,
    /// Replaces the types (repeated or comma-separated).
    #[arg(long = "type", value_name = "TYPE", value_delimiter = ',')]
    types: Option<Vec<String>>,
    /// A new description (empty: none).
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,
    /// Resume deliveries (from where they stopped).
    #[arg(long, conflicts_with = "disable")]
    enable: bool,
    /// Pause deliveries.
    #[arg(long)]
    disable: bool,
}

#[derive(Debug, Args)]
struct PageArgs {
    /// Items per page (1 to 200).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=200))]
    limit: Option<u32>,
    /// Fetch every page.
    #[arg(long, conflicts_with = "cursor")]
    all: bool,
    /// Continue from a previous page's `next_cursor`.
    #[arg(long, value_name = "CURSOR")]
    cursor: Option<String>,
}

fn endpoint(what: &str, w: &WebhookEndpoint) -> String {
    let mut f = Fields::default();
    f.add("webhook", format!("{} ({what})", w.id))
        .add("url", clean(&w.url))
        .add(
            "whose",
            w.identity
                .as_ref()
                .map_or_else(|| "every identity".to_owned(), ToString::to_string),
        )
        .add(
            "types",
            if w.types.is_empty() {
                "all".to_owned()
            } else {
                w.types.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            },
        )
        .add("enabled", if w.enabled { "yes" } else { "no" })
        .add("position", w.position.clone());
    if let Some(d) = &w.description {
        f.add("description", clean(d));
    }
    if let Some(r) = &w.disabled_reason {
        f.add("disabled", clean(r));
    }
    if let Some(s) = w.failing_since {
        f.add("failing", format!("since {} ({} attempts)", time(s), w.failures));
    }
    f.add("created", time(w.created_at));
    f.render()
}

fn created(what: &str, c: &WebhookCreated) -> String {
    format!(
        "{}secret   {}\n(shown once: give it to the receiver's Standard Webhooks library)\n",
        endpoint(what, &c.endpoint),
        c.secret
    )
}

fn endpoints(items: &[WebhookEndpoint]) -> String {
    if items.is_empty() {
        return "no webhooks\n".into();
    }
    let mut t = Table::new(&["ID", "URL", "ENABLED", "POSITION", "TYPES"]);
    for w in items {
        t.row(vec![
            w.id.to_string(),
            clean(&w.url),
            if w.enabled { "yes" } else { "no" }.into(),
            w.position.clone(),
            if w.types.is_empty() {
                "all".into()
            } else {
                w.types.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(",")
            },
        ]);
    }
    t.render()
}

fn deliveries(items: &[WebhookDelivery]) -> String {
    if items.is_empty() {
        return "no deliveries\n".into();
    }
    let mut t = Table::new(&["ID", "EVENT", "ATTEMPT", "STATUS", "MS", "AT", "ERROR"]);
    for d in items {
        t.row(vec![
            d.id.to_string(),
            format!("{} {}", d.event_id, d.event_type.as_str()),
            format!("{}{}", d.attempt, if d.replay { " (replay)" } else { "" }),
            d.status_code.map_or_else(|| "-".into(), |c| c.to_string()),
            d.duration_ms.to_string(),
            time(d.at),
            clean(d.error.as_deref().unwrap_or("")),
        ]);
    }
    t.render()
}

pub async fn run(args: WebhooksArgs) -> CmdResult {
    let ctx = Ctx::new(args.global);
    let client = ctx.client(KeyNeed::IdentityFirst)?;
    match args.command {
        WebhooksCommand::Add(a) => {
            let req = api::CreateWebhookRequest {
                url: a.url,
                types: a.types,
                description: a.description,
                identity: a.identity,
            };
            ctx.show(&client, api::create_webhook(&req), |c| created("added", c))
                .await
        }
        WebhooksCommand::List(p) => {
            let q = api::ListWebhooksParams {
                cursor: None,
                limit: p.limit,
            };
            show_list(
                &ctx,
                &client,
                (p.all, p.cursor),
                "webhooks",
                |cursor| api::list_webhooks(&api::ListWebhooksParams { cursor, ..q.clone() }),
                |items: &[WebhookEndpoint]| endpoints(items),
            )
            .await
        }
        WebhooksCommand::Show { id } => ctx.show(&client, api::get_webhook(&id), |w| endpoint("", w)).await,
        WebhooksCommand::Update(a) => {
            let req = api::UpdateWebhookRequest {
                url: a.url,
                types: a.types,
                description: a.description,
                enabled: if a.enable {
                    Some(true)
                } else if a.disable {
                    Some(false)
                } else {
                    None
                },
            };
            ctx.show(&client, api::update_webhook(&a.id, &req), |w| endpoint("updated", w))
                .await
        }
        WebhooksCommand::Remove { id } => {
            ctx.show(&client, api::delete_webhook(&id), |w| endpoint("removed", w))
                .await
        }
        WebhooksCommand::RotateSecret { id } => {
            ctx.show(&client, api::rotate_webhook_secret(&id), |c| created("new secret", c))
                .await
        }
        WebhooksCommand::Deliveries { id, page } => {
            let q = api::ListWebhooksParams {
                cursor: None,
                limit: page.limit,
            };
            show_list(
                &ctx,
                &client,
                (page.all, page.cursor),
                "deliveries",
                |cursor| api::list_webhook_deliveries(&id, &api::ListWebhooksParams { cursor, ..q.clone() }),
                |items: &[WebhookDelivery]| deliveries(items),
            )
            .await
        }
        WebhooksCommand::Replay { id, delivery_id } => {
            ctx.show(&client, api::replay_webhook_delivery(&id, &delivery_id), |d| {
                deliveries(std::slice::from_ref(d))
            })
            .await
        }
    }
}
