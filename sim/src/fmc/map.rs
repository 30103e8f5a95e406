//! The simulated network map: hosts and their third-party scan results, and how
//! `ScanFlush` / `ScanUpdate` apply staged results to it (host-input.md §4; the
//! unknowns of §6 are `FlushScope` and the known-hosts list).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::command::ScanFields;

/// The FMC's network map as far as Host Input touches it. Results are kept sorted, so
/// two maps with the same content compare equal.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct NetworkMap {
    /// Hosts by address.
    pub hosts: BTreeMap<IpAddr, HostEntry>,
}

/// One host of the network map.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct HostEntry {
    /// MAC address given with `AddHost,<ip>,<mac>` (lower case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Scan results, sorted; at most one per (source, vuln_id, port, proto).
    #[serde(default)]
    pub results: Vec<ScanResult>,
    /// Attributes set with `SetAttributeValue`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// One third-party vulnerability on a host (host-input.md §4, AddScanResult fields).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScanResult {
    /// The `SetSource` name in force when the result was added.
    pub source: String,
    pub scanner_id: String,
    pub vuln_id: u64,
    pub port: Option<u16>,
    /// 6 (tcp) or 17 (udp).
    pub proto: Option<u8>,
    pub name: String,
    pub description: String,
    pub cve_ids: Vec<String>,
    pub bugtraq_ids: Vec<String>,
}

impl HostEntry {
    /// A host with these results, in the map's canonical order (a later result with
    /// the same source, vuln_id, port and proto replaces an earlier one).
    pub fn with_results(results: impl IntoIterator<Item = ScanResult>) -> HostEntry {
        let mut by_key = BTreeMap::new();
        for r in results {
            by_key.insert(r.key(), r);
        }
        let mut results: Vec<ScanResult> = by_key.into_values().collect();
        results.sort();
        HostEntry {
            results,
            ..HostEntry::default()
        }
    }
}

impl ScanResult {
    /// The identity of a result: a later one with the same key replaces it.
    fn key(&self) -> (String, u64, Option<u16>, Option<u8>) {
        (self.source.clone(), self.vuln_id, self.port, self.proto)
    }

    pub(crate) fn from_fields(source: &str, f: ScanFields) -> (IpAddr, ScanResult) {
        (
            f.ip,
            ScanResult {
                source: source.to_string(),
                scanner_id: f.scanner_id,
                vuln_id: f.vuln_id,
                port: f.port,
                proto: f.proto,
                name: f.name,
                description: f.description,
                cve_ids: f.cve_ids,
                bugtraq_ids: f.bugtraq_ids,
            },
        )
    }
}

/// What `ScanFlush` clears on a host before adding the staged results (host-input.md
/// §6: "Whether ScanFlush clears only this scanner's results or all results").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FlushScope {
    /// Only the results of the source(s) being flushed.
    #[default]
    ThisSource,
    /// Every result on the host, whatever its source.
    AllSources,
}

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

impl NetworkMap {
    /// The entry of `ip`, if the host is in the map.
    pub fn host(&self, ip: IpAddr) -> Option<&HostEntry> {
        self.hosts.get(&ip)
    }

    /// Total number of scan results over all hosts.
    pub fn result_count(&self) -> usize {
        self.hosts.values().map(|h| h.results.len()).sum()
    }

    /// `AddHost`: creates the host if unknown; sets the MAC when one is given.
    pub(crate) fn add_host(&mut self, ip: IpAddr, mac: Option<String>) {
        let entry = self.hosts.entry(ip).or_default();
        if mac.is_some() {
            entry.mac = mac;
        }
    }

    /// Commits staged results. Hosts that are not in the map are ignored, as the FMC
    /// does with `add_host: n` (host-input.md §5).
    pub(crate) fn commit(
        &mut self,
        staged: Vec<(IpAddr, ScanResult)>,
        how: Commit,
    ) -> CommitOutcome {
        let mut by_host: BTreeMap<IpAddr, Vec<ScanResult>> = BTreeMap::new();
        for (ip, r) in staged {
            by_host.entry(ip).or_default().push(r);
        }
        let mut outcome = CommitOutcome::default();
        for (ip, results) in by_host {
            let Some(host) = self.hosts.get_mut(&ip) else {
                outcome.ignored += results.len() as u64;
                outcome.ignored_hosts.insert(ip);
                continue;
            };
            outcome.applied += results.len() as u64;
            let mut kept: BTreeMap<_, ScanResult> = BTreeMap::new();
            let sources: BTreeSet<&str> = results.iter().map(|r| r.source.as_str()).collect();
            for r in std::mem::take(&mut host.results) {
                let keep = match how {
                    Commit::Update => true,
                    Commit::Flush(FlushScope::ThisSource) => !sources.contains(r.source.as_str()),
                    Commit::Flush(FlushScope::AllSources) => false,
                };
                if keep {
                    kept.insert(r.key(), r);
                }
            }
            for r in results {
                kept.insert(r.key(), r);
            }
            let mut list: Vec<ScanResult> = kept.into_values().collect();
            list.sort();
            host.results = list;
        }
        outcome
    }
}
