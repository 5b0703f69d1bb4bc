//! Outbound delivery (`loft_core::delivery`): what the SMTP worker is given for a job, each
//! outcome recorded once (a second worker finds nothing to do), bounces with their notice in
//! the sender's inbox, the suppression list and its effect on later sends, and held mail with
//! no delivery job until it is approved. The network side is tested in `loft-smtp`.

use std::sync::Arc;

use loft_core::events::EventKind;
use loft_core::jobs::Job;
use loft_core::mail::{DELIVERY_JOB, DeliveryStatus, Message};
use loft_core::oversight::OversightMode;
use loft_core::service::{Actor, CreateIdentityRequest, EventParams, ListSuppressionsParams};
use loft_core::store::Store;

use crate::conformance::mail::folder;
use crate::{TestLoft, expect_err, mail, test_loft};

const X: &str = "x@remote.example";
const Y: &str = "y@remote.example";

async fn claim(t: &TestLoft) -> Vec<Job> {
    t.store()
        .claim_jobs(&[DELIVERY_JOB], "test", t.loft.now(), t.loft.now().plus_secs(60), 50)
        .await
        .unwrap()
}

fn job_for<'a>(jobs: &'a [Job], rcpt: &str) -> &'a Job {
    jobs.iter()
        .find(|j| j.payload.contains(rcpt))
        .unwrap_or_else(|| panic!("no job for {rcpt}: {jobs:?}"))
}

async fn entry(t: &TestLoft, who: &Actor, m: &Message, rcpt: &str) -> loft_core::mail::Delivery {
    let m = t.loft.get_message(who, m.id.as_str()).await.unwrap();
    m.delivery
        .into_iter()
        .find(|d| d.recipient.as_str() == rcpt)
        .unwrap_or_else(|| panic!("no delivery entry for {rcpt}"))
}

/// Delivered, deferred, bounced: each outcome lands once in the sender copy's report, with its
/// event; a bounce brings a notice into the sender's inbox, threaded under the mail, and a hard
/// bounce suppresses the address for every identity until the operator lifts it.
pub async fn delivery_outcomes_bounces_and_suppression(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (a_c, a) = t.identity("a").await;
    let (_, b) = t.identity("b").await;
    let op = t.operator().await;
    let sent = t.send(&a, &[X, Y], "Proposal", "Hello from a.").await;
    let jobs = claim(&t).await;
    assert_eq!(jobs.len(), 2);

    // What the worker sends: the stored message with the identity and oversight headers.
    let dx = t
        .loft
        .prepare_delivery(job_for(&jobs, X))
        .await
        .unwrap()
        .expect("x is queued");
    let text = String::from_utf8_lossy(&dx.bytes).into_owned();
    assert!(
        text.starts_with(&format!(
            "X-Loft-Identity: {} ({})\r\nX-Loft-Oversight: autonomous\r\n",
            a_c.identity.address,
            a_c.identity.id.as_str()
        )),
        "{text}"
    );
    assert!(text.contains("Subject: Proposal"), "{text}");
    assert_eq!(dx.from, a_c.identity.address);
    assert_eq!(dx.recipient.as_str(), X);

    // A temporary failure keeps it queued and says so.
    let retry = t.loft.now().plus_secs(60);
    assert!(
        t.loft
            .delivery_deferred(&dx, "451 4.3.0 try later", retry)
            .await
            .unwrap()
    );
    let e = entry(&t, &a, &sent, X).await;
    assert_eq!(e.status, DeliveryStatus::Queued);
    assert!(e.detail.contains("451 4.3.0 try later"), "{e:?}");

    // Delivered once: a second outcome for the same recipient finds nothing to do.
    assert!(t.loft.delivery_succeeded(&dx, "250 2.0.0 queued as 42").await.unwrap());
    let e = entry(&t, &a, &sent, X).await;
    assert_eq!(e.status, DeliveryStatus::Delivered);
    assert!(e.detail.contains("250 2.0.0 queued as 42"), "{e:?}");
    assert!(!t.loft.delivery_succeeded(&dx, "250 again").await.unwrap());
    assert!(!t.loft.delivery_bounced(&dx, "550 late", true).await.unwrap());
    assert!(t.loft.prepare_delivery(job_for(&jobs, X)).await.unwrap().is_none());
    assert!(
        t.all_messages(&a, folder("inbox")).await.is_empty(),
        "nothing bounced yet"
    );

    // A hard bounce: status, notice, event, suppression.
    let dy = t
        .loft
        .prepare_delivery(job_for(&jobs, Y))
        .await
        .unwrap()
        .expect("y is queued");
    assert!(
        t.loft
            .delivery_bounced(&dy, "550 5.1.1 <y@remote.example>: no such user", true)
            .await
            .unwrap()
    );
    let e = entry(&t, &a, &sent, Y).await;
    assert_eq!(e.status, DeliveryStatus::Bounced);
    assert!(e.detail.contains("550 5.1.1"), "{e:?}");
    let inbox = t.all_messages(&a, folder("inbox")).await;
    assert_eq!(inbox.len(), 1);
    let notice = t.loft.get_message(&a, inbox[0].id.as_str()).await.unwrap();
    assert!(notice.from.as_str().starts_with("mailer-daemon@"), "{notice:?}");
    assert!(
        notice
            .subject
            .starts_with("Undelivered mail returned to sender: Proposal")
    );
    assert!(
        notice.text.contains(Y) && notice.text.contains("550 5.1.1"),
        "{}",
        notice.text
    );
    assert_eq!(notice.thread_id, sent.thread_id, "the notice joins the mail's thread");
    let raw = t.loft.raw_message(&a, notice.id.as_str()).await.unwrap();
    let raw = String::from_utf8_lossy(&raw);
    assert!(
        raw.contains("multipart/report") && raw.contains("message/delivery-status"),
        "{raw}"
    );
    assert!(raw.contains("Final-Recipient: rfc822; y@remote.example"), "{raw}");

    let kinds: Vec<EventKind> = t
        .loft
        .list_events(&a, EventParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| e.kind)
        .collect();
    for k in [EventKind::MessageDelivered, EventKind::MessageBounced] {
        assert_eq!(kinds.iter().filter(|x| **x == k).count(), 1, "{k:?} in {kinds:?}");
    }

    // The suppression: listed for the operator only; sends to it refused for everyone, with
    // nothing written; lifted by the operator.
    let list = t
        .loft
        .list_suppressions(&op, ListSuppressionsParams::default())
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].address.as_str(), Y);
    assert_eq!(list.items[0].message_id, sent.id);
    let e = expect_err(t.loft.list_suppressions(&a, ListSuppressionsParams::default()).await);
    assert_eq!(e.code(), "operator_only");
    let before = t.all_messages(&b, folder("sent")).await.len();
    let e = expect_err(t.loft.send(&b, mail(&[X, Y], "Again", "x")).await);
    assert_eq!(e.code(), "recipient_suppressed", "{e:?}");
    assert!(e.to_string().contains(Y) && e.to_string().contains("550 5.1.1"), "{e}");
    assert_eq!(t.all_messages(&b, folder("sent")).await.len(), before);
    assert!(claim(&t).await.is_empty());
    let e = expect_err(t.loft.remove_suppression(&a, Y).await);
    assert_eq!(e.code(), "operator_only");
    let lifted = t.loft.remove_suppression(&op, Y).await.unwrap();
    assert_eq!(lifted.address.as_str(), Y);
    assert_eq!(expect_err(t.loft.remove_suppression(&op, Y).await).code(), "not_found");
    t.send(&b, &[Y], "Again", "x").await;
    assert_eq!(claim(&t).await.len(), 1);

    // A soft bounce (out of time) notifies but does not suppress.
    let again = t.send(&a, &["z@remote.example"], "Soft", "x").await;
    let jobs = claim(&t).await;
    let dz = t.loft.prepare_delivery(&jobs[0]).await.unwrap().unwrap();
    assert!(
        t.loft
            .delivery_bounced(&dz, "451 4.4.1 connection refused (delivery lifetime exceeded)", false)
            .await
            .unwrap()
    );
    assert_eq!(
        entry(&t, &a, &again, "z@remote.example").await.status,
        DeliveryStatus::Bounced
    );
    assert_eq!(t.all_messages(&a, folder("inbox")).await.len(), 2);
    let list = t
        .loft
        .list_suppressions(&op, ListSuppressionsParams::default())
        .await
        .unwrap();
    assert!(list.items.is_empty(), "{list:?}");
}

/// Nothing leaves unapproved: a held mail has no delivery job until a reviewer approves it,
/// and the worker's header then names the reviewer.
pub async fn delivery_held_mail_waits_for_approval(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, agent) = t
        .identity_with(CreateIdentityRequest {
            name: "agent".into(),
            oversight_mode: Some(OversightMode::GatedSend),
            ..Default::default()
        })
        .await;
    let op = t.operator().await;
    let held = t.loft.send(&agent, mail(&[X], "Held", "x")).await.unwrap();
    assert!(held.delivery.iter().all(|d| d.status == DeliveryStatus::Held));
    assert!(claim(&t).await.is_empty(), "held mail has no delivery job");
    let approval = held.approval.expect("held");
    t.loft.approve(&op, approval.id.as_str()).await.unwrap();
    let jobs = claim(&t).await;
    assert_eq!(jobs.len(), 1);
    let d = t.loft.prepare_delivery(&jobs[0]).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&d.bytes).into_owned();
    assert!(text.contains("X-Loft-Oversight: approved-by operator\r\n"), "{text}");
}

/// An address suppressed after a mail to it was written (held for a reviewer, or scheduled)
/// is not tried when the mail is released: the delivery records it `bounced`, naming the
/// suppression, with a notice to the sender, and the worker is given nothing to send.
pub async fn delivery_suppressed_meanwhile_bounces_without_a_try(store: Arc<dyn Store>) {
    let t = test_loft(store);
    let (_, gated) = t
        .identity_with(CreateIdentityRequest {
            name: "gated".into(),
            oversight_mode: Some(OversightMode::GatedSend),
            ..Default::default()
        })
        .await;
    let (_, other) = t.identity("other").await;
    let op = t.operator().await;
    // Written while the address is fine: one held, one scheduled an hour ahead.
    let held = t.loft.send(&gated, mail(&[X], "Held", "x")).await.unwrap();
    let later = t
        .loft
        .send(
            &other,
            loft_core::mail::SendMail {
                send_at: Some(t.loft.now().plus_secs(3600).to_rfc3339()),
                ..mail(&[X], "Later", "x")
            },
        )
        .await
        .unwrap();
    assert!(claim(&t).await.is_empty());

    // Meanwhile another mail to the address bounces hard: it is suppressed.
    let first = t.send(&other, &[X], "First", "x").await;
    let jobs = claim(&t).await;
    assert_eq!(jobs.len(), 1);
    let d = t.loft.prepare_delivery(&jobs[0]).await.unwrap().unwrap();
    assert!(
        t.loft
            .delivery_bounced(&d, "550 5.1.1 no such user", true)
            .await
            .unwrap()
    );
    assert_eq!(entry(&t, &other, &first, X).await.status, DeliveryStatus::Bounced);

    // The reviewer approves the held mail, and the scheduled one comes due.
    t.loft
        .approve(&op, held.approval.as_ref().unwrap().id.as_str())
        .await
        .unwrap();
    t.clock.advance_secs(3601);
    let released = loft_core::runner::JobRunner::new(t.loft.clone(), "runner")
        .run_due()
        .await
        .unwrap();
    // The release, and the held mail's notice job (decided already: it writes nothing).
    assert_eq!(released.completed, 2, "the scheduled mail is released");
    // (The first mail's job is claimed again too: the test never completed it.)
    let jobs = claim(&t).await;
    for m in [&held, &later] {
        assert!(jobs.iter().any(|j| j.payload.contains(m.id.as_str())), "{jobs:?}");
    }
    for job in &jobs {
        assert!(
            t.loft.prepare_delivery(job).await.unwrap().is_none(),
            "nothing to send to a suppressed address"
        );
    }
    for (who, m) in [(&gated, &held), (&other, &later)] {
        let e = entry(&t, who, m, X).await;
        assert_eq!(e.status, DeliveryStatus::Bounced, "{e:?}");
        assert!(
            e.detail.contains("suppression list") && e.detail.contains("550 5.1.1"),
            "{e:?}"
        );
    }
    // Each sender got its notice (the other identity two: the hard bounce and this one).
    assert_eq!(t.all_messages(&gated, folder("inbox")).await.len(), 1);
    assert_eq!(t.all_messages(&other, folder("inbox")).await.len(), 2);
}
