//! The jobs table: claims, leases, retries, and exactly-once completion under concurrency.

use std::collections::BTreeSet;
use std::sync::Arc;

use loft_core::jobs::{JobStatus, NewJob, Retry};
use loft_core::store::Store;
use loft_core::time::Timestamp;

use crate::TEST_START;

fn at(secs: i64) -> Timestamp {
    TEST_START.plus_secs(secs)
}

fn job(kind: &str, run_at: Timestamp, max_attempts: u32) -> NewJob {
    NewJob {
        kind: kind.into(),
        payload: format!(r#"{{"n":{}}}"#, run_at.as_micros()),
        owner: None,
        run_at,
        max_attempts,
    }
}

/// Due jobs of the asked kinds are claimed once, oldest first, with a lease and an attempt
/// counted; only the lease holder completes a job, and only once.
pub async fn jobs_claim_lease_and_complete(store: Arc<dyn Store>) {
    let a = store.enqueue_job(job("smtp.deliver", at(0), 3)).await.unwrap();
    let b = store.enqueue_job(job("smtp.deliver", at(-5), 3)).await.unwrap();
    let later = store.enqueue_job(job("smtp.deliver", at(60), 3)).await.unwrap();
    let other = store.enqueue_job(job("webhook.send", at(0), 3)).await.unwrap();

    let claimed = store
        .claim_jobs(&["smtp.deliver"], "w1", at(1), at(31), 10)
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![b, a],
        "due ones, oldest first"
    );
    for j in &claimed {
        assert_eq!(j.status, JobStatus::Running);
        assert_eq!(
            (j.attempts, j.lease_owner.as_deref(), j.lease_until),
            (1, Some("w1"), Some(at(31)))
        );
    }
    assert!(
        store
            .claim_jobs(&["smtp.deliver"], "w2", at(2), at(32), 10)
            .await
            .unwrap()
            .is_empty(),
        "claimed jobs are not claimed again while leased"
    );
    assert!(
        !store.complete_job(a, "w2", at(3)).await.unwrap(),
        "not the lease holder"
    );
    assert!(store.complete_job(a, "w1", at(3)).await.unwrap());
    assert!(!store.complete_job(a, "w1", at(4)).await.unwrap(), "once");
    let done = store.get_job(a).await.unwrap().unwrap();
    assert_eq!(
        (done.status, done.finished_at, done.lease_owner),
        (JobStatus::Done, Some(at(3)), None)
    );
    // The other kind and the later job wait.
    assert_eq!(store.get_job(other).await.unwrap().unwrap().status, JobStatus::Queued);
    assert_eq!(store.get_job(later).await.unwrap().unwrap().status, JobStatus::Queued);
    let later_claim = store
        .claim_jobs(&["smtp.deliver", "webhook.send"], "w1", at(61), at(91), 1)
        .await
        .unwrap();
    assert_eq!(later_claim.len(), 1, "the limit holds");
    assert_eq!(store.get_job(999_999).await.unwrap(), None);
}

/// A worker that dies leaves its lease to expire; the job is claimed again by another, and
/// the dead worker's late completion is refused.
pub async fn jobs_expired_lease_is_claimed_again(store: Arc<dyn Store>) {
    let id = store.enqueue_job(job("smtp.deliver", at(0), 5)).await.unwrap();
    store
        .claim_jobs(&["smtp.deliver"], "crashed", at(0), at(30), 1)
        .await
        .unwrap();
    assert!(
        store
            .claim_jobs(&["smtp.deliver"], "w2", at(29), at(59), 1)
            .await
            .unwrap()
            .is_empty()
    );
    let again = store
        .claim_jobs(&["smtp.deliver"], "w2", at(31), at(61), 1)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempts), (id, 2));
    assert!(!store.complete_job(id, "crashed", at(32)).await.unwrap());
    assert!(store.complete_job(id, "w2", at(33)).await.unwrap());
}

/// A failed attempt is queued again at the retry time while attempts are left, then fails for
/// good; a permanent failure does not retry.
pub async fn jobs_retry_then_give_up(store: Arc<dyn Store>) {
    let id = store.enqueue_job(job("smtp.deliver", at(0), 2)).await.unwrap();
    store
        .claim_jobs(&["smtp.deliver"], "w", at(0), at(30), 1)
        .await
        .unwrap();
    assert!(
        store
            .fail_job(id, "w", "450 try later", Retry::At(at(100)), at(1))
            .await
            .unwrap()
    );
    let j = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(
        (j.status, j.run_at, j.last_error.as_deref()),
        (JobStatus::Queued, at(100), Some("450 try later"))
    );
    assert!(
        store
            .claim_jobs(&["smtp.deliver"], "w", at(99), at(129), 1)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .claim_jobs(&["smtp.deliver"], "w", at(100), at(130), 1)
        .await
        .unwrap();
    assert!(
        store
            .fail_job(id, "w", "450 again", Retry::At(at(200)), at(101))
            .await
            .unwrap()
    );
    let j = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(
        (j.status, j.attempts, j.finished_at),
        (JobStatus::Failed, 2, Some(at(101))),
        "attempts spent"
    );

    let p = store.enqueue_job(job("smtp.deliver", at(0), 5)).await.unwrap();
    store
        .claim_jobs(&["smtp.deliver"], "w", at(300), at(330), 1)
        .await
        .unwrap();
    assert!(
        store
            .fail_job(p, "w", "550 no such user", Retry::Never, at(301))
            .await
            .unwrap()
    );
    assert_eq!(store.get_job(p).await.unwrap().unwrap().status, JobStatus::Failed);
    assert!(
        !store.fail_job(p, "w", "again", Retry::Never, at(302)).await.unwrap(),
        "not running any more"
    );
}

/// Two workers claiming and completing concurrently: every job completes exactly once.
pub async fn jobs_two_claimers_complete_each_job_once(store: Arc<dyn Store>) {
    const JOBS: usize = 60;
    let mut ids = BTreeSet::new();
    for n in 0..JOBS {
        ids.insert(
            store
                .enqueue_job(job("smtp.deliver", at(n as i64 % 7), 3))
                .await
                .unwrap(),
        );
    }
    let mut workers = Vec::new();
    for w in ["w1", "w2"] {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claimed = store.claim_jobs(&["smtp.deliver"], w, at(10), at(40), 4).await.unwrap();
                if claimed.is_empty() {
                    return mine;
                }
                for j in claimed {
                    assert!(
                        store.complete_job(j.id, w, at(11)).await.unwrap(),
                        "{w} lost job {}",
                        j.id
                    );
                    mine.push(j.id);
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut completed = Vec::new();
    for w in workers {
        completed.extend(w.await.unwrap());
    }
    let unique: BTreeSet<i64> = completed.iter().copied().collect();
    assert_eq!(completed.len(), JOBS, "no job completed twice");
    assert_eq!(unique, ids, "every job completed");
}
