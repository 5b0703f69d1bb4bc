//! `loft mail ...`: mail as one identity, with its API key.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use loft_core::mail::MessageSummary;
use loft_core::search::SearchHit;
use loft_core::service::Page;

use super::{CliError, CmdResult, Ctx, GlobalArgs, KeyNeed, decode, emit, format, note};
use loft_client::api;

#[derive(Debug, Args)]
pub struct MailArgs {
    #[command(flatten)]
    pub(super) global: GlobalArgs,
    #[command(subcommand)]
    command: MailCommand,
}

#[derive(Debug, Subcommand)]
enum MailCommand {
    /// Send a message. The body comes from --text, --text-file, or standard input when it is
    /// piped.
    Send(SendArgs),
    /// List messages, newest first (`*` marks unread).
    List(ListArgs),
    /// Search your mail by words (all must occur in the subject, sender or recipients, or
    /// body), best match first; the matched words are shown in [brackets].
    Search(SearchArgs),
    /// Show one message with its body (this marks it read).
    Read {
        /// The message's id (`msg_...`).
        id: String,
        /// Print the stored RFC 5322 message (headers and MIME parts) instead.
        #[arg(long)]
        raw: bool,
    },
    /// Save one attachment of a message (`loft mail read` lists them, numbered from 0).
    Attachment {
        /// The message's id (`msg_...`).
        id: String,
        /// Which attachment, from 0, in the order `loft mail read` lists them.
        index: u32,
        /// Where to write it (`-` for standard output). Never overwrites an existing file.
        #[arg(long, short = 'o', value_name = "PATH")]
        output: std::path::PathBuf,
    },
    /// Reply to a message (to its sender, or with --all to everyone on it).
    Reply {
        /// The id of the message to reply to (`msg_...`).
        id: String,
        #[command(flatten)]
        body: BodyArgs,
        /// Reply to everyone on the original (To and Cc), not only its sender.
        #[arg(long)]
        all: bool,
    },
    /// Forward a message to new recipients, quoted below an optional note (`Fwd:` subject).
    Forward {
        /// The id of the message to forward (`msg_...`, your copy).
        id: String,
        /// A recipient; repeat for several.
        #[arg(long, required = true, value_name = "ADDRESS")]
        to: Vec<String>,
        /// A copy recipient; repeat for several.
        #[arg(long, value_name = "ADDRESS")]
        cc: Vec<String>,
        /// A blind copy recipient; repeat for several.
        #[arg(long, value_name = "ADDRESS")]
        bcc: Vec<String>,
        /// A note above the forwarded message.
        #[arg(long)]
        text: Option<String>,
        /// As for `send`: a retry with the same key and content does not send twice.
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
        /// Send later (RFC 3339; at most a year ahead).
        #[arg(long, value_name = "TIME")]
        send_at: Option<String>,
        /// Attach a file besides the forwarded message's own; repeat for several.
        #[arg(long = "attach", value_name = "FILE")]
        attach: Vec<PathBuf>,
        /// Forward the text only, without the message's attachments.
        #[arg(long)]
        no_attachments: bool,
    },
    /// Add or remove labels, or mark a message (or with --thread every message of a thread)
    /// read or unread.
    #[command(group(ArgGroup::new("change").required(true).multiple(true).args(["add", "remove", "read", "unread"])))]
    Label {
        /// The message's id (`msg_...`), or with --thread the thread's (`thr_...`).
        id: String,
        /// ID is a thread: change every message of it in your mailbox.
        #[arg(long)]
        thread: bool,
        /// A label to add (letters, digits and `_-:./`); repeat for several.
        #[arg(long, value_name = "LABEL")]
        add: Vec<String>,
        /// A label to remove; repeat for several.
        #[arg(long, value_name = "LABEL")]
        remove: Vec<String>,
        /// Mark the message read.
        #[arg(long, conflicts_with = "unread")]
        read: bool,
        /// Mark the message unread.
        #[arg(long)]
        unread: bool,
    },
    /// Archive a message (or with --thread a whole thread): out of the inbox, still in its
    /// thread, in search and in `list --folder archive`.
    Archive(TargetArgs),
    /// Move an archived message (or thread) back to the inbox.
    Unarchive(TargetArgs),
    /// Move a message (or thread) to the trash: out of lists, threads and search until it is
    /// restored; nothing empties the trash by itself.
    Trash(TargetArgs),
    /// Take a message (or thread) out of the trash.
    Restore(TargetArgs),
    /// Delete a trashed message (or thread) for ever: only your copy, and it cannot be undone.
    Delete(TargetArgs),
    /// Cancel a mail sent with --send-at before its time: it is never sent.
    Cancel {
        /// Your sent copy (`msg_...`).
        id: String,
    },
    /// Move a mail sent with --send-at to another time.
    Reschedule {
        /// Your sent copy (`msg_...`).
        id: String,
        /// The new time (RFC 3339, e.g. 2026-12-24T09:00:00Z; at most a year ahead).
        #[arg(long, value_name = "TIME")]
        send_at: String,
    },
    /// List conversations, most recent first (`*` marks those with unread mail).
    Threads(ThreadsArgs),
    /// Show a whole conversation, oldest message first.
    Thread {
        /// The thread's id (`thr_...`).
        id: String,
        /// Show the thread's trashed mail instead of the rest.
        #[arg(long)]
        trash: bool,
    },
}

#[derive(Debug, Args)]
struct TargetArgs {
    /// The message's id (`msg_...`), or with --thread the thread's (`thr_...`).
    id: String,
    /// ID is a thread: every message of it in your mailbox.
    #[arg(long)]
    thread: bool,
}

#[derive(Debug, Args)]
struct SendArgs {
    /// A recipient; repeat for several.
    #[arg(long, required = true, value_name = "ADDRESS")]
    to: Vec<String>,
    /// A copy recipient; repeat for several.
    #[arg(long, value_name = "ADDRESS")]
    cc: Vec<String>,
    /// A blind copy recipient (not shown to the others); repeat for several.
    #[arg(long, value_name = "ADDRESS")]
    bcc: Vec<String>,
    /// The subject line.
    #[arg(long, short = 's')]
    subject: String,
    #[command(flatten)]
    body: BodyArgs,
}

#[derive(Debug, Args)]
struct BodyArgs {
    /// The plain-text body.
    #[arg(long, conflicts_with = "text_file")]
    text: Option<String>,
    /// Read the plain-text body from a file (`-` for standard input).
    #[arg(long, value_name = "PATH")]
    text_file: Option<PathBuf>,
    /// An HTML body, sent as an alternative to the text.
    #[arg(long, value_name = "HTML")]
    html: Option<String>,
    /// A unique string for this intended mail: running the command again with the same key
    /// and content returns the first result instead of sending twice (keys live 24 hours).
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    /// Send later, at this time (RFC 3339, e.g. 2026-12-24T09:00:00Z; at most a year ahead).
    /// Nothing reaches anyone before then; `loft mail cancel` stops it.
    #[arg(long, value_name = "TIME")]
    send_at: Option<String>,
    /// Attach a file (its name is the file's name, its type guessed from the extension);
    /// repeat for several.
    #[arg(long = "attach", value_name = "FILE")]
    attach: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FolderArg {
    /// Mail received.
    Inbox,
    /// Mail sent.
    Sent,
    /// Both.
    All,
}

impl FolderArg {
    fn as_str(self) -> &'static str {
        match self {
            FolderArg::Inbox => "inbox",
            FolderArg::Sent => "sent",
            FolderArg::All => "all",
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ListFolderArg {
    /// Mail received, not archived.
    Inbox,
    /// Mail sent.
    Sent,
    /// Archived mail, received or sent.
    Archive,
    /// Trashed mail (left out of every other folder).
    Trash,
    /// Everything but the trash.
    All,
}

impl ListFolderArg {
    fn as_str(self) -> &'static str {
        match self {
            ListFolderArg::Inbox => "inbox",
            ListFolderArg::Sent => "sent",
            ListFolderArg::Archive => "archive",
            ListFolderArg::Trash => "trash",
            ListFolderArg::All => "all",
        }
    }
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Which folder.
    #[arg(long, value_enum, default_value_t = ListFolderArg::Inbox)]
    folder: ListFolderArg,
    /// Only unread messages.
    #[arg(long)]
    unread: bool,
    /// Only messages with this label.
    #[arg(long, value_name = "LABEL")]
    label: Option<String>,
    /// Only messages from this address.
    #[arg(long, value_name = "ADDRESS")]
    from: Option<String>,
    /// Only messages in this thread (`thr_...`).
    #[arg(long = "thread", value_name = "ID")]
    thread_id: Option<String>,
    /// Messages per page (1 to 200; the server's default is 50).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=200))]
    limit: Option<u32>,
    /// Continue from the `next_cursor` of a previous page.
    #[arg(long, value_name = "CURSOR")]
    cursor: Option<String>,
}

#[derive(Debug, Args)]
struct SearchArgs {
    /// The words to find, e.g. `invoice march` or `alice@example.com`; end a word with * to
    /// match its beginning.
    #[arg(required = true, num_args = 1.., value_name = "WORD")]
    words: Vec<String>,
    /// Which folder.
    #[arg(long, value_enum, default_value_t = FolderArg::All)]
    folder: FolderArg,
    /// Results per page (1 to 100; the server's default is 20).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    limit: Option<u32>,
    /// Continue from the `next_cursor` of a previous page of the same search.
    #[arg(long, value_name = "CURSOR")]
    cursor: Option<String>,
}

#[derive(Debug, Args)]
struct ThreadsArgs {
    /// The threads of the mail in the trash (counted over it alone) instead of the others.
    #[arg(long)]
    trash: bool,
    /// Only threads with unread mail.
    #[arg(long)]
    unread: bool,
    /// Only threads with a message carrying this label.
    #[arg(long, value_name = "LABEL")]
    label: Option<String>,
    /// Threads per page (1 to 200; the server's default is 50).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=200))]
    limit: Option<u32>,
    /// Continue from the `next_cursor` of a previous page.
    #[arg(long, value_name = "CURSOR")]
    cursor: Option<String>,
}

/// The text body: `--text`, else `--text-file` (`-` = stdin), else stdin when it is not a
/// terminal. Reading stdin is passed in so that tests can supply it.
fn resolve_text(
    body: &BodyArgs,
    stdin_is_terminal: bool,
    read_stdin: impl FnOnce() -> std::io::Result<String>,
) -> Result<String, CliError> {
    let stdin =
        move || read_stdin().map_err(|e| CliError::usage(format!("cannot read the body from standard input: {e}")));
    if let Some(t) = &body.text {
        return Ok(t.clone());
    }
    match body.text_file.as_deref() {
        Some(p) if p == Path::new("-") => stdin(),
        Some(p) => std::fs::read(p)
            .map_err(|e| CliError::usage(format!("cannot read --text-file {}: {e}", p.display())))
            .and_then(|bytes| {
                String::from_utf8(bytes)
                    .map_err(|_| CliError::usage(format!("--text-file {} is not UTF-8 text", p.display())))
            }),
        None if body.html.is_some() && stdin_is_terminal => Ok(String::new()),
        None if !stdin_is_terminal => stdin(),
        None => Err(
            CliError::usage("no message body: give --text, --text-file PATH, or pipe the body on stdin")
                .with_hint("e.g. `echo 'Hello' | loft mail send --to a@x --subject Hi`"),
        ),
    }
}

fn read_stdin() -> std::io::Result<String> {
    let mut s = String::new();
    std::io::stdin().lock().read_to_string(&mut s)?;
    Ok(s)
}

/// The files of `--attach`, read and base64-encoded (the server checks names and sizes).
fn attachments_from(body: &BodyArgs) -> Result<Vec<api::NewAttachment>, CliError> {
    read_attachments(&body.attach)
}

/// Files read and base64-encoded as attachments (the server checks names and sizes).
pub(super) fn read_attachments(paths: &[PathBuf]) -> Result<Vec<api::NewAttachment>, CliError> {
    use base64::Engine as _;
    paths
        .iter()
        .map(|path| {
            let bytes =
                std::fs::read(path).map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
            let filename = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| CliError::usage(format!("--attach {}: not a file name", path.display())))?;
            Ok(api::NewAttachment {
                content_type: Some(content_type_of(&filename).to_owned()),
                filename,
                content_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
            })
        })
        .collect()
}

/// The content type of a file by its extension; `application/octet-stream` when unknown.
fn content_type_of(filename: &str) -> &'static str {
    let ext = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" => "text/plain",
        "md" => "text/markdown",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "ics" => "text/calendar",
        "json" => "application/json",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

fn text_from(body: &BodyArgs) -> Result<String, CliError> {
    resolve_text(body, std::io::stdin().is_terminal(), read_stdin)
}

/// Applies `patch` to a message, or with `thread` to every message of a thread.
async fn change(
    ctx: &Ctx,
    client: &loft_client::Client,
    id: &str,
    thread: bool,
    patch: &api::MessagePatch,
) -> CmdResult {
    if thread {
        ctx.show(client, api::update_thread(id, patch), format::thread_state)
            .await
    } else {
        ctx.show(client, api::update_message(id, patch), format::labelled).await
    }
}

pub async fn run(args: MailArgs) -> CmdResult {
    let ctx = Ctx::new(args.global);
    let client = ctx.client(KeyNeed::Identity)?;
    match args.command {
        MailCommand::Send(a) => {
            let text = text_from(&a.body)?;
            let attachments = attachments_from(&a.body)?;
            let req = api::SendMail {
                idempotency_key: a.body.idempotency_key.clone(),
                send_at: a.body.send_at.clone(),
                to: a.to,
                cc: a.cc,
                bcc: a.bcc,
                subject: a.subject,
                text,
                html: a.body.html,
                attachments,
            };
            ctx.show(&client, api::send_mail(&req), format::sent).await
        }
        MailCommand::List(a) => {
            let folder = a.folder.as_str();
            let q = api::ListMessagesParams {
                folder: Some(folder.to_owned()),
                unread: Some(a.unread),
                label: a.label,
                from: a.from,
                thread_id: a.thread_id,
                limit: a.limit,
                cursor: a.cursor,
            };
            let value = client.call_json(api::list_messages(&q)).await?;
            if ctx.json() {
                Ctx::print_json(&value);
            } else {
                let page: Page<MessageSummary> = decode(&client, value)?;
                emit(&format::messages(&page.items, Some(folder)));
                if let Some(c) = page.next_cursor {
                    note(&format!("more messages: add --cursor {c}"));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        MailCommand::Search(a) => {
            let q = api::SearchParams {
                q: a.words.join(" "),
                folder: Some(a.folder.as_str().to_owned()),
                limit: a.limit,
                cursor: a.cursor,
            };
            let value = client.call_json(api::search_messages(&q)).await?;
            if ctx.json() {
                Ctx::print_json(&value);
            } else {
                let page: Page<SearchHit> = decode(&client, value)?;
                emit(&format::search_hits(&page.items));
                if let Some(c) = page.next_cursor {
                    note(&format!("more results: add --cursor {c}"));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        MailCommand::Read { id, raw: true } => {
            let bytes = client.call_bytes(api::raw_message(&id)).await?;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&bytes);
            let _ = out.flush();
            Ok(ExitCode::SUCCESS)
        }
        MailCommand::Attachment { id, index, output } => {
            let bytes = client.call_bytes(api::get_attachment(&id, index)).await?;
            if output.as_os_str() == "-" {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&bytes);
                let _ = out.flush();
                return Ok(ExitCode::SUCCESS);
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&output)
                .map_err(|e| CliError::usage(format!("cannot create {}: {e}", output.display())))?;
            file.write_all(&bytes)
                .map_err(|e| CliError::usage(format!("cannot write {}: {e}", output.display())))?;
            note(&format!("wrote {} bytes to {}", bytes.len(), output.display()));
            Ok(ExitCode::SUCCESS)
        }
        MailCommand::Read { id, raw: false } => ctx.show(&client, api::get_message(&id), format::message).await,
        MailCommand::Reply { id, body, all } => {
            let text = text_from(&body)?;
            let attachments = attachments_from(&body)?;
            let req = api::ReplyMail {
                idempotency_key: body.idempotency_key.clone(),
                send_at: body.send_at.clone(),
                text,
                html: body.html,
                reply_all: all,
                attachments,
            };
            ctx.show(&client, api::reply(&id, &req), format::sent).await
        }
        MailCommand::Forward {
            id,
            to,
            cc,
            bcc,
            text,
            idempotency_key,
            send_at,
            attach,
            no_attachments,
        } => {
            let req = api::ForwardMail {
                to,
                cc,
                bcc,
                text: text.unwrap_or_default(),
                idempotency_key,
                send_at,
                keep_attachments: no_attachments.then_some(false),
                attachments: read_attachments(&attach)?,
            };
            ctx.show(&client, api::forward(&id, &req), format::sent).await
        }
        MailCommand::Label {
            id,
            add,
            remove,
            read,
            unread,
            thread,
        } => {
            let patch = api::MessagePatch {
                add_labels: add,
                remove_labels: remove,
                unread: if read {
                    Some(false)
                } else if unread {
                    Some(true)
                } else {
                    None
                },
                ..api::MessagePatch::default()
            };
            change(&ctx, &client, &id, thread, &patch).await
        }
        MailCommand::Archive(t) => {
            let patch = api::MessagePatch {
                archived: Some(true),
                ..api::MessagePatch::default()
            };
            change(&ctx, &client, &t.id, t.thread, &patch).await
        }
        MailCommand::Unarchive(t) => {
            let patch = api::MessagePatch {
                archived: Some(false),
                ..api::MessagePatch::default()
            };
            change(&ctx, &client, &t.id, t.thread, &patch).await
        }
        MailCommand::Trash(t) => {
            let patch = api::MessagePatch {
                trashed: Some(true),
                ..api::MessagePatch::default()
            };
            change(&ctx, &client, &t.id, t.thread, &patch).await
        }
        MailCommand::Restore(t) => {
            let patch = api::MessagePatch {
                trashed: Some(false),
                ..api::MessagePatch::default()
            };
            change(&ctx, &client, &t.id, t.thread, &patch).await
        }
        MailCommand::Delete(t) => {
            let call = if t.thread {
                api::delete_thread(&t.id)
            } else {
                api::delete_message(&t.id)
            };
            ctx.show(&client, call, format::deleted).await
        }
        MailCommand::Cancel { id } => ctx.show(&client, api::cancel_scheduled(&id), format::sent).await,
        MailCommand::Reschedule { id, send_at } => {
            let req = api::RescheduleRequest { send_at };
            ctx.show(&client, api::reschedule(&id, &req), format::sent).await
        }
        MailCommand::Threads(a) => {
            let q = api::ListThreadsParams {
                folder: a.trash.then(|| "trash".to_owned()),
                unread: Some(a.unread),
                label: a.label,
                limit: a.limit,
                cursor: a.cursor,
            };
            let value = client.call_json(api::list_threads(&q)).await?;
            if ctx.json() {
                Ctx::print_json(&value);
            } else {
                let page: Page<loft_core::mail::ThreadSummary> = decode(&client, value)?;
                emit(&format::threads(&page.items));
                if let Some(c) = page.next_cursor {
                    note(&format!("more threads: add --cursor {c}"));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        MailCommand::Thread { id, trash } => {
            let q = api::GetThreadParams {
                folder: trash.then(|| "trash".to_owned()),
            };
            ctx.show(&client, api::get_thread(&id, &q), format::thread).await
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should fail loudly at the first surprise")]
mod tests {
    use super::super::ClientCommand;
    use super::super::tests::parse;
    use super::*;

    fn mail(args: &[&str]) -> MailCommand {
        let mut all = vec!["mail"];
        all.extend_from_slice(args);
        match parse(&all).unwrap() {
            ClientCommand::Mail(a) => a.command,
            other => panic!("{other:?}"),
        }
    }

    fn body(text: Option<&str>, file: Option<&str>) -> BodyArgs {
        BodyArgs {
            text: text.map(Into::into),
            text_file: file.map(Into::into),
            html: None,
            idempotency_key: None,
            send_at: None,
            attach: vec![],
        }
    }

    fn no_stdin() -> std::io::Result<String> {
        panic!("stdin must not be read")
    }

    #[test]
    fn send_takes_repeated_recipients() {
        let MailCommand::Send(a) = mail(&[
            "send", "--to", "a@x.io", "--to", "b@x.io", "--cc", "c@x.io", "-s", "Hi", "--text", "yo",
        ]) else {
            panic!()
        };
        assert_eq!(a.to, ["a@x.io", "b@x.io"]);
        assert_eq!(a.cc, ["c@x.io"]);
        assert_eq!(a.subject, "Hi");
        assert!(
            parse(&["mail", "send", "--subject", "Hi", "--text", "x"]).is_err(),
            "--to is required"
        );
        assert!(
            parse(&["mail", "send", "--to", "a@x.io", "--text", "x"]).is_err(),
            "--subject is required"
        );
        assert!(
            parse(&[
                "mail",
                "send",
                "--to",
                "a@x.io",
                "-s",
                "s",
                "--text",
                "x",
                "--text-file",
                "f"
            ])
            .is_err(),
            "--text and --text-file conflict"
        );
    }

    #[test]
    fn body_sources() {
        assert_eq!(resolve_text(&body(Some("hi"), None), false, no_stdin).unwrap(), "hi");
        assert_eq!(
            resolve_text(&body(None, None), false, || Ok("piped".into())).unwrap(),
            "piped"
        );
        assert_eq!(
            resolve_text(&body(None, Some("-")), true, || Ok("dash".into())).unwrap(),
            "dash"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("body.txt");
        std::fs::write(&path, "from a file\n").unwrap();
        let b = body(None, Some(path.to_str().unwrap()));
        assert_eq!(resolve_text(&b, false, no_stdin).unwrap(), "from a file\n");

        // Nothing given at a terminal: a usage error, not a hang waiting for input.
        let e = resolve_text(&body(None, None), true, no_stdin).unwrap_err();
        assert_eq!(e.exit_code(), ExitCode::from(2));
        assert!(e.render().contains("--text"));
        // An HTML-only message at a terminal is fine.
        let html = BodyArgs {
            html: Some("<p>x</p>".into()),
            ..body(None, None)
        };
        assert_eq!(resolve_text(&html, true, no_stdin).unwrap(), "");

        let missing = body(None, Some(dir.path().join("nope").to_str().unwrap()));
        let e = resolve_text(&missing, false, no_stdin).unwrap_err();
        assert_eq!(e.exit_code(), ExitCode::from(2));
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(
            resolve_text(&b, false, no_stdin)
                .unwrap_err()
                .render()
                .contains("not UTF-8")
        );
    }

    #[test]
    fn list_and_label_flags() {
        let MailCommand::List(a) = mail(&["list", "--folder", "sent", "--unread", "--thread", "thr_x"]) else {
            panic!()
        };
        assert_eq!(a.folder.as_str(), "sent");
        assert!(a.unread);
        assert_eq!(a.thread_id.as_deref(), Some("thr_x"));
        assert!(parse(&["mail", "list", "--folder", "spam"]).is_err());

        let MailCommand::Label {
            add,
            remove,
            read,
            unread,
            ..
        } = mail(&["label", "msg_x", "--add", "a", "--add", "b", "--remove", "c", "--read"])
        else {
            panic!()
        };
        assert_eq!((add.len(), remove.len(), read, unread), (2, 1, true, false));
        assert!(parse(&["mail", "label", "msg_x"]).is_err(), "nothing to change");
        assert!(parse(&["mail", "label", "msg_x", "--read", "--unread"]).is_err());
    }

    #[test]
    fn reply_and_read() {
        let MailCommand::Reply { id, body, all } = mail(&["reply", "msg_x", "--text", "ok", "--all"]) else {
            panic!()
        };
        assert_eq!((id.as_str(), body.text.as_deref(), all), ("msg_x", Some("ok"), true));
        let MailCommand::Read { raw, .. } = mail(&["read", "msg_x", "--raw"]) else {
            panic!()
        };
        assert!(raw);
    }
}
