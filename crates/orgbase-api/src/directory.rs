//! Member pages of large organizations. The source API pages members by number (`page`,
//! `per_page`) with a total, which in SQL is an OFFSET and a COUNT: both walk every member before
//! the page, so page 5,000 of an organization with 100,000 members costs a scan on every request.
//!
//! Instead, the ids of a large organization's members are kept here, in order, together with
//! the version of its membership (`member_stats.version`, bumped by the database in the same
//! transaction as every join and leave). A request reads that version (a point read); while it
//! is the cached one, the page is a slice of the cached ids and one look-up of those rows. Any
//! node, any number of nodes: the version lives in the database, so a cached list is never used
//! once it is out of date.
use orgbase_domain::OrganizationId;
use orgbase_store::{DynStore, MemberPage, StoreResult};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Ids kept in all, across organizations (8 bytes each: 32 MiB).
const MAX_IDS: usize = 4_000_000;

/// An organization's member ids, ascending, and the membership version they were read at.
type Listing = (u64, Arc<Vec<i64>>);

#[derive(Default)]
pub struct MemberDirectory {
    lists: Mutex<HashMap<OrganizationId, Listing>>,
    /// One load at a time, so a burst of requests on a cold list loads it once.
    loading: tokio::sync::Mutex<()>,
}

impl MemberDirectory {
    fn cached(&self, org: OrganizationId, version: u64) -> Option<Arc<Vec<i64>>> {
        let lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        lists
            .get(&org)
            .filter(|(v, _)| *v == version)
            .map(|(_, ids)| ids.clone())
    }

    /// The cached list of any version.
    fn latest(&self, org: OrganizationId) -> Option<Listing> {
        let lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        lists.get(&org).cloned()
    }

    fn keep(&self, org: OrganizationId, version: u64, ids: Arc<Vec<i64>>) {
        let mut lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        let held: usize = lists
            .iter()
            .filter(|(o, _)| **o != org)
            .map(|(_, (_, l))| l.len())
            .sum();
        if held + ids.len() > MAX_IDS {
            lists.clear();
        }
        if ids.len() <= MAX_IDS {
            lists.insert(org, (version, ids));
        }
    }

    /// The page of members `[offset, offset + limit)` in join order, with the total; `None` when
    /// the organization has fewer than `min_members` (a plain query is cheap then).
    pub async fn page(
        &self,
        store: &DynStore,
        org: OrganizationId,
        offset: u64,
        limit: u32,
        min_members: u64,
    ) -> StoreResult<Option<MemberPage>> {
        // The common case, one round trip: slice the cached list, and read the rows together
        // with the current version; if the version is still the list's, that is the page.
        if let Some((version, ids)) = self.latest(org) {
            let (start, end) = bounds(ids.len(), offset, limit);
            let (stats, members) = store
                .members_by_ids_with_stats(org, &ids[start..end])
                .await?;
            if stats.version == version && stats.members >= min_members {
                return Ok(Some(MemberPage {
                    members,
                    total: ids.len() as u64,
                }));
            }
        }
        let stats = store.member_stats(org).await?;
        if stats.members < min_members {
            return Ok(None);
        }
        let ids = match self.cached(org, stats.version) {
            Some(ids) => ids,
            None => {
                let _one_at_a_time = self.loading.lock().await;
                match self.cached(org, stats.version) {
                    Some(ids) => ids,
                    None => {
                        // Read after the version: if a member joined meanwhile, this list is
                        // newer than its label, and the next request (seeing the new version)
                        // loads again. It is never older than its label.
                        let ids = Arc::new(store.member_ids(org).await?);
                        self.keep(org, stats.version, ids.clone());
                        ids
                    }
                }
            }
        };
        let len = ids.len() as u64;
        let (start, end) = bounds(ids.len(), offset, limit);
        let members = store.members_by_ids(org, &ids[start..end]).await?;
        Ok(Some(MemberPage {
            members,
            total: len,
        }))
    }
}

/// The slice `[offset, offset + limit)` of a list of `len`, clamped.
fn bounds(len: usize, offset: u64, limit: u32) -> (usize, usize) {
    let len = len as u64;
    let start = offset.min(len) as usize;
    let end = offset.saturating_add(limit as u64).min(len) as usize;
    (start, end)
}
