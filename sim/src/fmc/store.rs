//! The server's working copy of the network map, laid out for throughput: under a
//! 100,000-host replay the server applies over a million `AddScanResult` lines, and
//! one heap `String` per text field made allocation (and the page faults of a map of
//! nearly 2 GB) most of its work. Here a finding shares its texts instead:
//!
//! - the texts that come with the vulnerability (name, description, CVE and Bugtraq
//!   lists), with the source and scanner names, repeat for every host with the same
//!   QID, so they are kept once in an `Arc` and each finding holds a pointer;
//! - a host's results are merged in place, not rebuilt;
//! - the cached texts a block's lines will be compared with are read ahead of them
//!   ([`Store::warm`]), so their cache misses overlap.
//!
//! What the map *contains* is exactly what [`NetworkMap`] would hold after the same
//! commands (`ScanFlush`/`ScanUpdate` semantics of host-input.md §4 and §6): tests and
//! `--map-out` see it through [`Store::snapshot`], which builds the public map.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::IpAddr;
use std::sync::Arc;

use super::command::{Deletion, ScanRef, split_ids, tail_fields};
use super::map::{
    FlushScope, HostEntry, NetworkMap, OsEntry, ScanResult, ServiceEntry, SourceSettings,
};

/// The most services a host holds (Host Input API Guide, p.3-9).
pub(crate) const MAX_SERVICES: usize = 100;

/// How staged results are committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Commit {
    /// `ScanFlush`: replace.
    Flush(FlushScope),
    /// `ScanUpdate` (and the implicit one on close): merge.
    Update,
}

/// Counts of one commit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CommitOutcome {
    pub(crate) applied: u64,
    pub(crate) ignored: u64,
    pub(crate) ignored_hosts: BTreeSet<IpAddr>,
}

/// What a finding shares with the other findings of its vulnerability from the same
/// source: everything but the vuln_id, port and proto.
#[derive(Debug)]
struct Texts {
    source: Arc<str>,
    scanner_id: Arc<str>,
    /// The name, description, CVE and Bugtraq fields as received ([`ScanRef::tail`]),
    /// compared with a new line's in one go.
    tail: Box<str>,
}

impl Texts {
    fn matches(&self, source: &Arc<str>, f: &ScanRef<'_>) -> bool {
        (Arc::ptr_eq(&self.source, source) || *self.source == **source)
            && *self.scanner_id == *f.scanner_id
            && *self.tail == *f.tail
    }
}

/// One staged or committed scan result: [`ScanResult`] in 24 bytes (an
/// `Option<u64>` vuln_id would make it 32).
#[derive(Clone, Debug)]
pub(crate) struct Finding {
    texts: Arc<Texts>,
    /// Meaningless when `generic`.
    vuln_id: u64,
    port: Option<u16>,
    proto: Option<u8>,
    /// A generic result (host-input.md §4): no vuln_id.
    generic: bool,
}

impl Finding {
    fn source(&self) -> &str {
        &self.texts.source
    }

    /// The vuln_id as the map has it: `None` for a generic result (which so sorts first).
    fn vuln_id(&self) -> Option<u64> {
        (!self.generic).then_some(self.vuln_id)
    }

    /// Order of the identity of a result (`ScanResult::key`): source, vuln_id, port,
    /// proto. A later result with the same key replaces an earlier one.
    fn key_cmp(&self, other: &Finding) -> Ordering {
        (self.source(), self.vuln_id(), self.port, self.proto).cmp(&(
            other.source(),
            other.vuln_id(),
            other.port,
            other.proto,
        ))
    }

    /// The map's canonical order, the derived `Ord` of [`ScanResult`]. Its first five
    /// fields include the whole key, and a host has one result per key, so the other
    /// fields never decide.
    fn order_cmp(&self, other: &Finding) -> Ordering {
        (
            self.source(),
            &*self.texts.scanner_id,
            self.vuln_id(),
            self.port,
            self.proto,
        )
            .cmp(&(
                other.source(),
                &*other.texts.scanner_id,
                other.vuln_id(),
                other.port,
                other.proto,
            ))
    }

    fn to_public(&self) -> ScanResult {
        let [name, description, cve_ids, bugtraq_ids] = tail_fields(&self.texts.tail);
        ScanResult {
            source: self.source().to_string(),
            scanner_id: self.texts.scanner_id.to_string(),
            vuln_id: self.vuln_id(),
            port: self.port,
            proto: self.proto,
            name: name.to_string(),
            description: description.to_string(),
            cve_ids: split_ids(cve_ids).map(str::to_string).collect(),
            bugtraq_ids: split_ids(bugtraq_ids).map(str::to_string).collect(),
        }
    }
}

/// One host: [`HostEntry`] with shared texts.
#[derive(Debug, Default)]
struct Host {
    mac: Option<String>,
    /// In the canonical order, one per key.
    results: Vec<Finding>,
    attributes: BTreeMap<String, String>,
    os: Option<OsEntry>,
    services: BTreeMap<(u16, u8), ServiceEntry>,
}

impl Host {
    /// Commits this host's staged results, `batch` in the order they were staged; the
    /// same outcome as rebuilding them in a `BTreeMap` by key (`reference.rs` checks it).
    fn merge(&mut self, batch: &mut Vec<Finding>, how: Commit) {
        // Stable: results with the same key keep their staging order.
        batch.sort_by(Finding::key_cmp);
        match how {
            Commit::Update => {}
            Commit::Flush(FlushScope::AllSources) => self.results.clear(),
            Commit::Flush(FlushScope::ThisSource) => {
                // `batch` is now sorted by source, the key's first field.
                self.results.retain(|r| {
                    batch
                        .binary_search_by(|n| n.source().cmp(r.source()))
                        .is_err()
                });
            }
        }
        // Kept results first, then the new ones: after the stable sort by key, the
        // last of each run of equal keys is the one that wins.
        self.results.append(batch);
        self.results.sort_by(Finding::key_cmp);
        self.results.dedup_by(|later, earlier| {
            if later.key_cmp(earlier).is_eq() {
                // `later` is removed: keep its value in the surviving slot.
                std::mem::swap(later, earlier);
                true
            } else {
                false
            }
        });
        self.results.sort_unstable_by(Finding::order_cmp);
    }
}

/// Hashes the keys of [`Store::vulns`]: a multiply-xorshift round per integer, over
/// a random seed (SipHash, the std default, cost more than the rest of the
/// lookup; the random seed keeps chosen IDs from piling into one bucket).
#[derive(Clone, Copy, Debug)]
struct IdHasher {
    seed: u64,
}

impl Default for IdHasher {
    fn default() -> Self {
        IdHasher {
            seed: RandomState::new().hash_one(0u64) | 1,
        }
    }
}

impl BuildHasher for IdHasher {
    type Hasher = IdHash;

    fn build_hasher(&self) -> IdHash {
        IdHash(self.seed)
    }
}

/// The state of one [`IdHasher`] hash.
#[derive(Clone, Copy, Debug)]
struct IdHash(u64);

impl Hasher for IdHash {
    fn write(&mut self, bytes: &[u8]) {
        // Not used by u64 keys; kept correct for any other.
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        // The finaliser of splitmix64 over the seeded value.
        let mut z = (self.0 ^ n).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.0 = z ^ (z >> 31);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The [`Store::vulns`] slot of a vuln_id. Generic results share the one of
/// `u64::MAX`: the table only caches texts (a hit is compared in full), so sharing a
/// slot costs a miss at most.
fn text_slot(vuln_id: Option<u64>) -> u64 {
    vuln_id.unwrap_or(u64::MAX)
}

/// Interned texts are swept (those no finding uses any more are dropped) when there
/// are this many, or twice as many as after the last sweep.
const SWEEP_MIN: usize = 4096;

/// The network map as the server keeps it.
#[derive(Debug, Default)]
pub(crate) struct Store {
    hosts: BTreeMap<IpAddr, Host>,
    /// Source and scanner names.
    names: HashSet<Arc<str>>,
    /// The latest texts seen for each vuln_id from each source, by vuln_id and the
    /// address of the source's interned name (which the texts hold, so it stays
    /// allocated, and unique, while the entry exists).
    vulns: HashMap<(u64, usize), Arc<Texts>, IdHasher>,
    /// Size of `names` + `vulns` that triggers the next sweep.
    sweep_at: usize,
    /// One host's results during a commit, kept for its allocation.
    batch: Vec<Finding>,
    /// Hosts added by MAC address only.
    mac_only: BTreeSet<String>,
    sources: BTreeMap<String, SourceSettings>,
}

impl Store {
    /// `AddHost`: creates the host if unknown; sets the MAC (lower case) when given.
    pub(crate) fn add_host(&mut self, ip: IpAddr, mac: Option<&str>) {
        let entry = self.hosts.entry(ip).or_default();
        if let Some(mac) = mac {
            entry.mac = Some(mac.to_ascii_lowercase());
        }
    }

    /// `DeleteHost`: false when the host was not in the map.
    pub(crate) fn delete_host(&mut self, ip: IpAddr) -> bool {
        self.hosts.remove(&ip).is_some()
    }

    /// `SetAttributeValue`: false (and nothing set) when the host is not in the map.
    pub(crate) fn set_attribute(&mut self, ip: IpAddr, attribute: &str, value: &str) -> bool {
        match self.hosts.get_mut(&ip) {
            Some(host) => {
                host.attributes
                    .insert(attribute.to_string(), value.to_string());
                true
            }
            None => false,
        }
    }

    /// `AddHost,,<mac>`: a host the map knows by its MAC address only, unless a host
    /// with that MAC is already there.
    pub(crate) fn add_mac_host(&mut self, mac: &str) {
        let mac = mac.to_ascii_lowercase();
        if !self.hosts.values().any(|h| h.mac.as_deref() == Some(&mac)) {
            self.mac_only.insert(mac);
        }
    }

    /// `DeleteHost,,<mac>`: removes every host with this MAC; how many there were.
    pub(crate) fn delete_mac_host(&mut self, mac: &str) -> usize {
        let mac = mac.to_ascii_lowercase();
        let before = self.hosts.len();
        self.hosts.retain(|_, h| h.mac.as_deref() != Some(&mac));
        let removed = before - self.hosts.len();
        removed + usize::from(self.mac_only.remove(&mac))
    }

    /// `SetOS` (`Some`) and `UnsetOS` (`None`); false when the host is not in the map.
    pub(crate) fn set_os(&mut self, ip: IpAddr, os: Option<OsEntry>) -> bool {
        match self.hosts.get_mut(&ip) {
            Some(host) => {
                host.os = os;
                true
            }
            None => false,
        }
    }

    /// `AddService`: adds or replaces the service on its port and protocol. `Err` when
    /// the host is unknown or already has [`MAX_SERVICES`] others.
    pub(crate) fn add_service(
        &mut self,
        ip: IpAddr,
        service: ServiceEntry,
    ) -> Result<(), &'static str> {
        let host = self.hosts.get_mut(&ip).ok_or("not in the map")?;
        let key = (service.port, service.proto);
        if !host.services.contains_key(&key) && host.services.len() >= MAX_SERVICES {
            return Err("already has 100 services");
        }
        host.services.insert(key, service);
        Ok(())
    }

    /// `SetSourceType` / `SetMap` for `source`.
    pub(crate) fn source_settings(&mut self, source: &str) -> &mut SourceSettings {
        self.sources.entry(source.to_string()).or_default()
    }

    /// `DeleteScanResult` (probable form): removes `source`'s results on the host that
    /// match every field given; how many.
    pub(crate) fn delete_results(&mut self, source: &str, d: &Deletion) -> usize {
        let Some(host) = self.hosts.get_mut(&d.ip) else {
            return 0;
        };
        let before = host.results.len();
        host.results.retain(|r| {
            let matches = r.source() == source
                && d.vuln_id.is_none_or(|v| r.vuln_id() == Some(v))
                && d.port.is_none_or(|p| r.port == Some(p))
                && d.proto.is_none_or(|p| r.proto == Some(p));
            !matches
        });
        before - host.results.len()
    }

    /// The shared copy of a source or scanner name.
    pub(crate) fn name(&mut self, text: &str) -> Arc<str> {
        if let Some(known) = self.names.get(text) {
            return Arc::clone(known);
        }
        let new: Arc<str> = Arc::from(text);
        self.names.insert(Arc::clone(&new));
        self.maybe_sweep();
        new
    }

    /// Reads the cached texts that [`Store::finding`] will compare these lines with,
    /// in a loop of lookups that do not depend on each other: the processor then waits
    /// for the cache misses of many lines at once, where `finding` would wait for one
    /// line's after another. Only speed depends on it.
    pub(crate) fn warm<'a>(&self, source: &Arc<str>, scans: impl Iterator<Item = &'a ScanRef<'a>>) {
        let source_key = Arc::as_ptr(source).cast::<u8>() as usize;
        let mut touched = 0u8;
        for f in scans {
            if let Some(t) = self.vulns.get(&(text_slot(f.vuln_id), source_key)) {
                touched ^= t.tail.as_bytes().first().copied().unwrap_or_default();
            }
        }
        // So that the reads are not optimised away.
        std::hint::black_box(touched);
    }

    /// An `AddScanResult` to stage, from `source` (the `SetSource` in force).
    pub(crate) fn finding(&mut self, source: &Arc<str>, f: &ScanRef<'_>) -> Finding {
        let slot = (
            text_slot(f.vuln_id),
            Arc::as_ptr(source).cast::<u8>() as usize,
        );
        let texts = match self.vulns.get(&slot) {
            Some(known) if known.matches(source, f) => Arc::clone(known),
            _ => {
                let new = self.new_texts(source, f);
                self.vulns.insert(slot, Arc::clone(&new));
                self.maybe_sweep();
                new
            }
        };
        Finding {
            texts,
            vuln_id: f.vuln_id.unwrap_or_default(),
            port: f.port,
            proto: f.proto,
            generic: f.vuln_id.is_none(),
        }
    }

    fn new_texts(&mut self, source: &Arc<str>, f: &ScanRef<'_>) -> Arc<Texts> {
        // The connector writes its source name as the scanner ID.
        let scanner_id = if *f.scanner_id == **source {
            Arc::clone(source)
        } else {
            self.name(f.scanner_id)
        };
        Arc::new(Texts {
            source: Arc::clone(source),
            scanner_id,
            tail: f.tail.into(),
        })
    }

    /// Drops the interned texts that nothing else holds, now and then, so deleted
    /// hosts and replaced texts do not pin memory for the server's lifetime.
    fn maybe_sweep(&mut self) {
        if self.names.len() + self.vulns.len() < self.sweep_at.max(SWEEP_MIN) {
            return;
        }
        // The store is only reached under the map's lock: an entry held only here
        // cannot gain a holder meanwhile.
        self.names.retain(|n| Arc::strong_count(n) > 1);
        self.vulns.retain(|_, t| Arc::strong_count(t) > 1);
        self.sweep_at = 2 * (self.names.len() + self.vulns.len());
    }

    /// Commits (and empties) `staged`, results in the order they were staged. Hosts
    /// that are not in the map are ignored, as the FMC does with `add_host: n`
    /// (host-input.md §5).
    pub(crate) fn commit(
        &mut self,
        staged: &mut Vec<(IpAddr, Finding)>,
        how: Commit,
    ) -> CommitOutcome {
        // Group by host, each host's results in staging order (a stable sort, linear
        // on the usual batch of one host).
        staged.sort_by_key(|(ip, _)| *ip);
        let mut outcome = CommitOutcome::default();
        let mut batch = std::mem::take(&mut self.batch);
        let mut items = staged.drain(..).peekable();
        while let Some((ip, first)) = items.next() {
            batch.clear();
            batch.push(first);
            while let Some((_, r)) = items.next_if(|(next, _)| *next == ip) {
                batch.push(r);
            }
            let Some(host) = self.hosts.get_mut(&ip) else {
                outcome.ignored += batch.len() as u64;
                outcome.ignored_hosts.insert(ip);
                continue;
            };
            outcome.applied += batch.len() as u64;
            host.merge(&mut batch, how);
        }
        drop(items);
        batch.clear();
        self.batch = batch;
        outcome
    }

    /// The public network map with the same content.
    pub(crate) fn snapshot(&self) -> NetworkMap {
        NetworkMap {
            hosts: self
                .hosts
                .iter()
                .map(|(ip, h)| {
                    let entry = HostEntry {
                        mac: h.mac.clone(),
                        results: h.results.iter().map(Finding::to_public).collect(),
                        attributes: h.attributes.clone(),
                        os: h.os.clone(),
                        services: h.services.values().cloned().collect(),
                    };
                    (*ip, entry)
                })
                .collect(),
            mac_only_hosts: self.mac_only.clone(),
            sources: self.sources.clone(),
        }
    }
}
