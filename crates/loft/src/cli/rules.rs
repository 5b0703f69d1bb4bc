//! `loft rules ...`: the operator's allow, block and hold rules for sending, receiving and
//! replying, for one identity or the whole instance.
//!
//! `list` works with the operator key (every rule, or `--identity` / `--instance`) or, when no
//! operator key is set, an identity's key (the rules in effect for that identity: how an agent's
//! owner learns why a send was refused). `add` and `remove` need the operator key.

use clap::{Args, Subcommand, ValueEnum};
use loft_core::rules::{Rule, RuleAction, RuleDirection};

use super::identity::show_list;
use super::{CmdResult, Ctx, GlobalArgs, KeyNeed, format};
use loft_client::{Client, api};

#[derive(Debug, Args)]
pub struct RulesArgs {
    #[command(flatten)]
    pub(super) global: GlobalArgs,
    #[command(subcommand)]
    command: RulesCommand,
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// List rules, newest first: every rule (operator), or the rules in effect for one identity
    /// (its own and the instance's). With an identity's key: the rules in effect for it.
    List(ListArgs),
    /// Add a rule (operator): mail whose other party matches PATTERN is allowed, blocked or
    /// held. The most specific rule wins (an identity's before the instance's; an address
    /// before `*@domain` before `*`); any `allow` rule of a direction makes an allow list.
    Add(AddArgs),
    /// Remove a rule (operator).
    Remove {
        /// The rule's id (`rul_...`).
        #[arg(value_name = "RULE_ID")]
        id: String,
    },
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only the rules in effect for this identity (`idt_...`): its own and the instance's.
    #[arg(long, value_name = "ID", conflicts_with = "instance")]
    identity: Option<String>,
    /// Only the instance rules.
    #[arg(long)]
    instance: bool,
    /// Rules per page (1 to 200; the server's default is 50).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=200))]
    limit: Option<u32>,
    /// Fetch every page, following the cursor.
    #[arg(long, conflicts_with = "cursor")]
    all: bool,
    /// Continue from the `next_cursor` of a previous page.
    #[arg(long, value_name = "CURSOR")]
    cursor: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("whom").required(true).args(["identity", "instance"])))]
struct AddArgs {
    /// The identity the rule is for (`idt_...`).
    #[arg(long, value_name = "ID")]
    identity: Option<String>,
    /// The rule is for every identity on this server.
    #[arg(long)]
    instance: bool,
    /// Which mail: outgoing (`send`, replies included), replies only (`reply`), or incoming
    /// (`receive`, matching the sender).
    #[arg(long, value_enum)]
    direction: DirectionArg,
    /// What happens to mail that matches.
    #[arg(long, value_enum)]
    action: ActionArg,
    /// An exact address (`bob@example.com`), every address of one domain (`*@example.com`), or
    /// `*` (everyone). Quote it in the shell.
    #[arg(value_name = "PATTERN")]
    pattern: String,
    /// Why, for the people and agents who read it (at most 500 characters).
    #[arg(long, value_name = "TEXT")]
    note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DirectionArg {
    /// Every outgoing mail, replies included; the pattern matches each recipient.
    Send,
    /// Mail delivered to the identity; the pattern matches the sender.
    Receive,
    /// Replies only, on top of the send rules.
    Reply,
}

impl From<DirectionArg> for RuleDirection {
    fn from(d: DirectionArg) -> Self {
        match d {
            DirectionArg::Send => RuleDirection::Send,
            DirectionArg::Receive => RuleDirection::Receive,
            DirectionArg::Reply => RuleDirection::Reply,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ActionArg {
    /// Let it through (and refuse what no rule names: an allow list).
    Allow,
    /// Refuse it.
    Block,
    /// Hold it for a reviewer's approval, in any oversight mode (not for receive yet).
    Hold,
}

impl From<ActionArg> for RuleAction {
    fn from(a: ActionArg) -> Self {
        match a {
            ActionArg::Allow => RuleAction::Allow,
            ActionArg::Block => RuleAction::Block,
            ActionArg::Hold => RuleAction::Hold,
        }
    }
}

pub async fn run(args: RulesArgs) -> CmdResult {
    let ctx = Ctx::new(args.global);
    match args.command {
        RulesCommand::List(a) => {
            let client = ctx.client(KeyNeed::OperatorFirst)?;
            list(&ctx, &client, a).await
        }
        RulesCommand::Add(a) => {
            let client = ctx.client(KeyNeed::OperatorOnly)?;
            let req = api::CreateRuleRequest {
                identity: a.identity,
                instance: a.instance.then_some(true),
                direction: a.direction.into(),
                action: a.action.into(),
                pattern: a.pattern,
                note: a.note,
            };
            ctx.show(&client, api::add_rule(&req), |r| format::rule("added", r))
                .await
        }
        RulesCommand::Remove { id } => {
            let client = ctx.client(KeyNeed::OperatorOnly)?;
            ctx.show(&client, api::remove_rule(&id), |r| format::rule("removed", r))
                .await
        }
    }
}

async fn list(ctx: &Ctx, client: &Client, a: ListArgs) -> CmdResult {
    let q = api::ListRulesParams {
        identity: a.identity,
        instance: a.instance.then_some(true),
        limit: a.limit,
        cursor: None,
    };
    show_list(
        ctx,
        client,
        (a.all, a.cursor),
        "rules",
        |cursor| api::list_rules(&api::ListRulesParams { cursor, ..q.clone() }),
        |items: &[Rule]| format::rules(items),
    )
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should fail loudly at the first surprise")]
mod tests {
    use super::super::ClientCommand;
    use super::super::tests::parse;
    use super::*;

    fn rules(args: &[&str]) -> Result<RulesCommand, clap::Error> {
        let mut all = vec!["rules"];
        all.extend_from_slice(args);
        parse(&all).map(|c| match c {
            ClientCommand::Rules(a) => a.command,
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn add_needs_exactly_one_of_identity_and_instance() {
        let RulesCommand::Add(a) = rules(&[
            "add",
            "--identity",
            "idt_x",
            "--direction",
            "send",
            "--action",
            "block",
            "*@example.com",
            "--note",
            "why",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(a.identity.as_deref(), Some("idt_x"));
        assert_eq!(RuleAction::from(a.action), RuleAction::Block);
        assert_eq!(a.pattern, "*@example.com");
        let RulesCommand::Add(a) =
            rules(&["add", "--instance", "--direction", "reply", "--action", "hold", "*"]).unwrap()
        else {
            panic!()
        };
        assert!(a.instance);
        assert_eq!(RuleDirection::from(a.direction), RuleDirection::Reply);
        for bad in [
            &["add", "--direction", "send", "--action", "block", "*"][..],
            &[
                "add",
                "--instance",
                "--identity",
                "idt_x",
                "--direction",
                "send",
                "--action",
                "block",
                "*",
            ],
            &["add", "--instance", "--direction", "sideways", "--action", "block", "*"],
            &["add", "--instance", "--direction", "send", "--action", "block"],
        ] {
            assert!(rules(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn list_and_remove_parse() {
        let RulesCommand::List(a) = rules(&["list", "--identity", "idt_x", "--all"]).unwrap() else {
            panic!()
        };
        assert_eq!(a.identity.as_deref(), Some("idt_x"));
        assert!(a.all);
        assert!(rules(&["list", "--identity", "idt_x", "--instance"]).is_err());
        let RulesCommand::Remove { id } = rules(&["remove", "rul_abc"]).unwrap() else {
            panic!()
        };
        assert_eq!(id, "rul_abc");
    }
}
