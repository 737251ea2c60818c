//! Member pages. The source API pages members by number (`page`, `per_page`) with a total,
//! which in SQL is an OFFSET and a COUNT: both walk every member before the page, so page 5,000
//! of an organization with 100,000 members costs a scan on every request.
//!
//! Two caches, both checked against numbers the database keeps per organization in the same
//! transaction as every change (`member_stats`), so any number of nodes can hold them and none
//! ever serves a page that is out of date:
//! - The ids of a large organization's members, in order, labelled with `version` (bumped by
//!   every join and leave). A page is a slice of them and one look-up of those rows.
//! - Finished answers (the JSON body of a page), labelled with `content_version` (bumped by
//!   every change a member list shows: joins and leaves, roles, workspaces, names and e-mails).
//!   A request reads the organization's numbers (a point read); while the label is current,
//!   the answer is the cached body.
//!
//! A label is read before the data it labels, so cached data is never older than its label; a
//! change after the read moves the number on, and the next request reads again.
use bytes::Bytes;
use orgbase_domain::OrganizationId;
use orgbase_store::{DynStore, MemberPage, MemberStats, StoreResult};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Ids kept in all, across organizations (8 bytes each: 32 MiB).
const MAX_IDS: usize = 4_000_000;
/// Bytes of cached answers kept in all, across organizations.
const MAX_PAGE_BYTES: usize = 32 * 1024 * 1024;

/// What makes one member page: the organization, the slice and the filters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    pub organization: OrganizationId,
    pub offset: u64,
    pub limit: u32,
    pub role: Option<i64>,
    pub workspace: Option<Uuid>,
    pub q: Option<String>,
}

#[derive(Default)]
struct Pages {
    /// Each answer with the `content_version` it was made at.
    bodies: HashMap<PageKey, (u64, Bytes)>,
    bytes: usize,
}

/// An organization's member ids, ascending, and the membership version they were read at.
type Listing = (u64, Arc<Vec<i64>>);

#[derive(Default)]
pub struct MemberDirectory {
    lists: Mutex<HashMap<OrganizationId, Listing>>,
    pages: Mutex<Pages>,
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

    /// The cached answer for `key`, if it was made at `content_version`.
    pub fn cached_page(&self, key: &PageKey, content_version: u64) -> Option<Bytes> {
        let pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        pages
            .bodies
            .get(key)
            .filter(|(v, _)| *v == content_version)
            .map(|(_, body)| body.clone())
    }

    /// Keeps the answer for `key`, made from data read after `content_version` was.
    pub fn keep_page(&self, key: PageKey, content_version: u64, body: Bytes) {
        let mut pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        if body.len() > MAX_PAGE_BYTES / 16 {
            return;
        }
        if pages.bytes + body.len() > MAX_PAGE_BYTES {
            // Answers made at older labels first; everything if that is not enough.
            let org = key.organization;
            let bodies = std::mem::take(&mut pages.bodies);
            pages.bodies = bodies
                .into_iter()
                .filter(|(k, (v, _))| k.organization != org || *v == content_version)
                .collect();
            pages.bytes = pages.bodies.values().map(|(_, b)| b.len()).sum();
            if pages.bytes + body.len() > MAX_PAGE_BYTES {
                pages.bodies.clear();
                pages.bytes = 0;
            }
        }
        let added = body.len();
        if let Some((_, old)) = pages.bodies.insert(key, (content_version, body)) {
            pages.bytes -= old.len();
        }
        pages.bytes += added;
    }

    /// The page of members `[offset, offset + limit)` in join order, with the total, given the
    /// organization's numbers just read; `None` when it has fewer than `min_members` (a plain
    /// query is cheap then).
    pub async fn page(
        &self,
        store: &DynStore,
        org: OrganizationId,
        stats: MemberStats,
        offset: u64,
        limit: u32,
        min_members: u64,
    ) -> StoreResult<Option<MemberPage>> {
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
