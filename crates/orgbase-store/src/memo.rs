//! Organizations by id, held in memory by a store and kept exact by their versions; both stores'
//! caches use it.
//!
//! Every change of an organization's row raises its version, so:
//! - A change names the version it made (`changed`), and no row older than the newest version
//!   named is ever kept again: a read that began before a change and ends after it cannot put
//!   back what it read.
//! - The writer keeps the row it committed (`wrote`), so the next read of it is not a miss.
//! - A change whose version is not known (a row deleted for good) drops the row and bumps a
//!   generation: a read may fill only if the generation it saw before reading is still current.
use orgbase_domain::{Organization, OrganizationId};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Rows kept before all are dropped at once.
const MAX_ORGS: usize = 20_000;
/// Versions remembered before all are forgotten at once (and the generation bumped).
const MAX_FLOORS: usize = 200_000;

pub(crate) struct OrgMemo {
    generation: u64,
    /// Each row with when it was read or written.
    orgs: HashMap<OrganizationId, (Organization, Instant)>,
    /// The highest version named by a change, per organization.
    floors: HashMap<OrganizationId, i64>,
    /// How long a row is used before it is read again (`None`: until it changes).
    ttl: Option<Duration>,
}

impl OrgMemo {
    pub(crate) fn new(ttl: Option<Duration>) -> Self {
        Self {
            generation: 0,
            orgs: HashMap::new(),
            floors: HashMap::new(),
            ttl,
        }
    }

    /// To hand back to `offer` with what is read after this call.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    fn fresh(&self, at: Instant) -> bool {
        self.ttl.is_none_or(|ttl| at.elapsed() < ttl)
    }

    pub(crate) fn get(&self, id: OrganizationId) -> Option<Organization> {
        self.orgs
            .get(&id)
            .filter(|(_, at)| self.fresh(*at))
            .map(|(o, _)| o.clone())
    }

    /// Keeps a row read (or written) after `generation` was taken, unless something newer is
    /// known.
    pub(crate) fn offer(&mut self, org: &Organization, generation: u64) {
        if self.generation != generation
            || self.floors.get(&org.id).is_some_and(|v| *v > org.version)
            || self
                .orgs
                .get(&org.id)
                .is_some_and(|(o, at)| o.version > org.version && self.fresh(*at))
        {
            return;
        }
        if self.orgs.len() >= MAX_ORGS {
            self.orgs.clear();
        }
        self.orgs.insert(org.id, (org.clone(), Instant::now()));
    }

    /// The organization changed and is now at `version` (`None`: not known).
    pub(crate) fn changed(&mut self, id: OrganizationId, version: Option<i64>) {
        let Some(version) = version else {
            self.generation += 1;
            self.orgs.remove(&id);
            return;
        };
        if self.floors.len() >= MAX_FLOORS && !self.floors.contains_key(&id) {
            self.clear();
        }
        let floor = self.floors.entry(id).or_insert(version);
        *floor = (*floor).max(version);
        if self.orgs.get(&id).is_some_and(|(o, _)| o.version < version) {
            self.orgs.remove(&id);
        }
    }

    /// This process committed `org`, having taken `generation` before writing.
    pub(crate) fn wrote(&mut self, org: &Organization, generation: u64) {
        self.changed(org.id, Some(org.version));
        self.offer(org, generation);
    }

    /// Forgets everything; reads in flight fill nothing.
    pub(crate) fn clear(&mut self) {
        self.generation += 1;
        self.orgs.clear();
        self.floors.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.orgs.len()
    }
}

/// Values by key (API keys by hash, plans by id) that a read fills and any change empties: a read
/// may fill only if no change came since it began (the generation it took is still current).
/// With a freshness bound, a value is also read again once it is that old, for what another
/// process may change (a key revoked with `orgbase keys revoke`).
pub(crate) struct Generational<V> {
    inner: std::sync::Mutex<Filled<V>>,
    /// Values kept before all are dropped at once.
    max: usize,
    fresh_for: Option<Duration>,
}

/// The generation, and the values with when each was read.
type Filled<V> = (u64, HashMap<String, (V, Instant)>);

impl<V: Clone> Generational<V> {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            inner: std::sync::Mutex::new((0, HashMap::new())),
            max,
            fresh_for: None,
        }
    }

    /// Values are served for at most `age`, then read again.
    pub(crate) fn fresh_for(mut self, age: Duration) -> Self {
        self.fresh_for = Some(age);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Filled<V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value, or the generation to hand back to `offer` with what is read after this call.
    pub(crate) fn get(&self, key: &str) -> Result<V, u64> {
        let c = self.lock();
        c.1.get(key)
            .filter(|(_, at)| self.fresh_for.is_none_or(|age| at.elapsed() < age))
            .map(|(v, _)| v.clone())
            .ok_or(c.0)
    }

    pub(crate) fn offer(&self, key: &str, value: &V, generation: u64) {
        let mut c = self.lock();
        if c.0 != generation {
            return;
        }
        if c.1.len() >= self.max {
            c.1.clear();
        }
        c.1.insert(key.to_owned(), (value.clone(), Instant::now()));
    }

    /// The value of `key` changed: it goes, and reads in flight fill nothing.
    pub(crate) fn forget(&self, key: &str) {
        let mut c = self.lock();
        c.0 += 1;
        c.1.remove(key);
    }

    /// Something changed: everything goes, and reads in flight fill nothing.
    pub(crate) fn clear(&self) {
        let mut c = self.lock();
        c.0 += 1;
        c.1.clear();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use orgbase_domain::{
        now, CountryCode, NewOrganization, OrgName, OrgType, OrganizationPatch, Slug,
    };

    pub(crate) fn org(version: i64) -> Organization {
        let mut o = NewOrganization {
            name: OrgName::parse("name", "Acme").unwrap(),
            slug: None,
            country_code: CountryCode::parse("countryCode", "US").unwrap(),
            org_type: OrgType::Normal,
            parent_id: None,
            owner: None,
            rest: OrganizationPatch::default(),
        }
        .build(
            OrganizationId::new(),
            Slug::parse("slug", "acme").unwrap(),
            now(),
        )
        .unwrap();
        o.version = version;
        o
    }

    #[test]
    fn a_row_read_before_a_change_is_not_kept_after_it() {
        let mut m = OrgMemo::new(None);
        let v1 = org(1);
        let g = m.generation();
        m.changed(v1.id, Some(2));
        m.offer(&v1, g);
        assert!(m.get(v1.id).is_none(), "version 1 is older than the change");
        let mut v2 = v1.clone();
        v2.version = 2;
        m.offer(&v2, g);
        assert_eq!(m.get(v1.id).unwrap().version, 2);
    }

    #[test]
    fn the_writer_keeps_what_it_wrote_until_something_newer() {
        let mut m = OrgMemo::new(None);
        let o = org(3);
        m.wrote(&o, m.generation());
        assert_eq!(m.get(o.id).unwrap().version, 3);
        m.changed(o.id, Some(3));
        assert_eq!(
            m.get(o.id).unwrap().version,
            3,
            "its own change, named again"
        );
        m.changed(o.id, Some(4));
        assert!(m.get(o.id).is_none());
        m.wrote(&o, m.generation());
        assert!(m.get(o.id).is_none(), "a late write of an older version");
    }

    #[test]
    fn an_unknown_change_drops_the_row_and_reads_in_flight() {
        let mut m = OrgMemo::new(None);
        let (a, b) = (org(1), org(1));
        let g = m.generation();
        m.changed(a.id, None);
        m.offer(&b, g);
        assert!(m.get(b.id).is_none(), "a read begun before the change");
        m.offer(&b, m.generation());
        assert!(m.get(b.id).is_some());
    }

    #[test]
    fn rows_expire() {
        let mut m = OrgMemo::new(Some(Duration::from_millis(20)));
        let o = org(1);
        m.offer(&o, m.generation());
        assert!(m.get(o.id).is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert!(m.get(o.id).is_none());
    }
}
