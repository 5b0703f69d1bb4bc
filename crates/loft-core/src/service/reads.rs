//! Results of the hottest reads (a mailbox page, `whoami` and its context), kept for as long
//! as the store has ended no write since they were read.
//!
//! The store says when it can tell ([`Store::data_epoch`](crate::store::Store::data_epoch)):
//! SQLite, one process with one writer, counts the writer's batches, and a result read while
//! the count was `n` is true while it is still `n`. So a kept result is never stale: a write
//! whose call has returned has moved the count before it returned, and every result read
//! before it is no longer used. PostgreSQL, where other nodes write, cannot tell, and every
//! read goes to the database. Nothing here replaces a check: the caller is authenticated and
//! its scopes checked before a result is looked for, and results are kept per identity.
//!
//! What is kept must depend on nothing but the data (not on the clock): a mailbox page, the
//! chain, instance caps and mode request of `whoami`, and a whole `whoami` that counts no
//! sending usage (a count over the last hour changes with the clock). A kept `whoami` is used
//! again only for a caller with the same identity, scopes and key expiry (authentication may
//! have read the caller before the epoch was read).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use super::{Loft, Shared, SharedPage};
use crate::Result;
use crate::identity::WhoAmI;
use crate::ids::{IdentityId, KeyId};
use crate::mail::{MessageQuery, MessageSummary};
use crate::store::WhoAmIContext;

/// Results of one kind, by what was asked, each with the epoch read before it was read; at
/// most `budget` in weight (a page weighs its items, anything at least 1), past which entries
/// of older epochs are dropped, and all if that is not enough.
pub(crate) struct Kept<K, V> {
    inner: Mutex<Inner<K, V>>,
    weight: fn(&V) -> usize,
    budget: usize,
}

struct Inner<K, V> {
    /// Each result with its epoch and weight.
    entries: HashMap<K, (u64, Arc<V>, usize)>,
    total: usize,
}

impl<K: Hash + Eq, V> Kept<K, V> {
    fn new(weight: fn(&V) -> usize, budget: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                total: 0,
            }),
            weight,
            budget,
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        // Nothing is half-written under this lock: a panic elsewhere leaves it usable.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, key: &K, epoch: u64) -> Option<Arc<V>> {
        let inner = self.inner();
        let (at, value, _) = inner.entries.get(key)?;
        (*at == epoch).then(|| Arc::clone(value))
    }

    fn put(&self, key: K, value: Arc<V>, epoch: u64) {
        let weight = (self.weight)(&value).max(1);
        if weight > self.budget {
            return;
        }
        let mut inner = self.inner();
        // A load that started before another one's (and ends after it) does not replace it.
        if inner.entries.get(&key).is_some_and(|(at, _, _)| *at > epoch) {
            return;
        }
        if let Some((_, _, old)) = inner.entries.remove(&key) {
            inner.total -= old;
        }
        if inner.total + weight > self.budget {
            inner.entries.retain(|_, (at, _, _)| *at == epoch);
            inner.total = inner.entries.values().map(|(_, _, w)| w).sum();
            if inner.total + weight > self.budget {
                inner.entries.clear();
                inner.total = 0;
            }
        }
        inner.total += weight;
        inner.entries.insert(key, (epoch, value, weight));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner().entries.len()
    }
}

/// Pages of 20 summaries weigh 20: about 600 bytes each, so the pages kept take a few MiB
/// at most.
const PAGE_ITEMS_BUDGET: usize = 8_192;
const CONTEXTS_BUDGET: usize = 4_096;

/// The kinds of results [`Loft`] keeps.
pub(crate) struct Reads {
    pages: Kept<(IdentityId, MessageQuery), SharedPage<MessageSummary>>,
    contexts: Kept<IdentityId, WhoAmIContext>,
    pub(super) whoamis: Kept<KeyId, Shared<WhoAmI>>,
}

impl Default for Reads {
    fn default() -> Self {
        Self {
            pages: Kept::new(|p| p.items.len(), PAGE_ITEMS_BUDGET),
            contexts: Kept::new(|_| 1, CONTEXTS_BUDGET),
            whoamis: Kept::new(|_| 1, CONTEXTS_BUDGET),
        }
    }
}

impl Loft {
    /// `load`'s result, or the one kept for `key` when the store has ended no write since it
    /// was read.
    async fn kept<K, V>(&self, kept: &Kept<K, V>, key: K, load: impl Future<Output = Result<V>>) -> Result<Arc<V>>
    where
        K: Hash + Eq,
    {
        let load = async { Ok((load.await?, true)) };
        self.kept_for(kept, key, |_| true, load).await
    }

    /// [`Self::kept`], using a kept result only when `usable` says so, and keeping a loaded one
    /// only when `load` says it may be (the second of its pair).
    pub(super) async fn kept_for<K, V>(
        &self,
        kept: &Kept<K, V>,
        key: K,
        usable: impl Fn(&V) -> bool,
        load: impl Future<Output = Result<(V, bool)>>,
    ) -> Result<Arc<V>>
    where
        K: Hash + Eq,
    {
        // Read before the load: a write ending during the load moves the epoch, and the result,
        // which may or may not show it, is then no longer used.
        let Some(epoch) = self.store.data_epoch() else {
            return Ok(Arc::new(load.await?.0));
        };
        if let Some(hit) = kept.get(&key, epoch)
            && usable(&hit)
        {
            return Ok(hit);
        }
        let (value, keep) = load.await?;
        let value = Arc::new(value);
        if keep {
            kept.put(key, Arc::clone(&value), epoch);
        }
        Ok(value)
    }

    /// A page of `owner`'s mailbox (see [`Self::kept`]).
    pub(super) async fn mailbox_page(
        &self,
        owner: &IdentityId,
        query: MessageQuery,
    ) -> Result<Arc<SharedPage<MessageSummary>>> {
        let load = async {
            let page = super::page(self.store.list_messages(owner, query.clone()).await?);
            Ok(SharedPage::new(page))
        };
        self.kept(&self.reads.pages, (owner.clone(), query.clone()), load).await
    }

    /// `whoami`'s context of `identity` (see [`Self::kept`]).
    pub(super) async fn whoami_context(&self, identity: &crate::identity::Identity) -> Result<Arc<WhoAmIContext>> {
        self.kept(
            &self.reads.contexts,
            identity.id.clone(),
            self.store.whoami_context(identity),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_is_used_only_in_its_epoch_and_the_budget_holds() {
        let kept: Kept<u32, Vec<u8>> = Kept::new(Vec::len, 10);
        kept.put(1, Arc::new(vec![0; 4]), 7);
        assert_eq!(kept.get(&1, 7).as_deref(), Some(&vec![0; 4]));
        assert!(kept.get(&1, 8).is_none(), "a newer epoch does not see an older result");
        assert!(kept.get(&2, 7).is_none());
        // Over the budget: results of older epochs go first.
        kept.put(2, Arc::new(vec![1; 4]), 8);
        kept.put(3, Arc::new(vec![2; 4]), 8);
        assert!(kept.get(&1, 7).is_none(), "dropped to make room");
        assert_eq!(kept.len(), 2);
        // Still over it with results of this epoch only: everything goes.
        kept.put(4, Arc::new(vec![3; 4]), 8);
        assert_eq!(kept.len(), 1);
        assert!(kept.get(&4, 8).is_some());
        // A result heavier than the whole budget is not kept.
        kept.put(5, Arc::new(vec![0; 11]), 8);
        assert!(kept.get(&5, 8).is_none());
        // A result read at an older epoch does not replace one read at a newer.
        kept.put(4, Arc::new(vec![9]), 7);
        assert_eq!(kept.get(&4, 8).as_deref(), Some(&vec![3; 4]));
        // An empty result still counts, so the number of entries is bounded too.
        for k in 10..30 {
            kept.put(k, Arc::new(Vec::new()), 8);
        }
        assert!(kept.len() <= 10);
    }
}
