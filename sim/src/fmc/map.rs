//! The simulated network map as tests and `--map-out` see it: hosts and their
//! third-party scan results (host-input.md §4; the unknowns of §6 are `FlushScope` and
//! the known-hosts list). The server keeps its working copy in `store.rs`, which
//! applies `ScanFlush` / `ScanUpdate` and builds this map on demand.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The FMC's network map as far as Host Input touches it. Results are kept sorted, so
/// two maps with the same content compare equal.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct NetworkMap {
    /// Hosts by address.
    pub hosts: BTreeMap<IpAddr, HostEntry>,
    /// Hosts known by their MAC address only (`AddHost,,<mac>`, lower case).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub mac_only_hosts: BTreeSet<String>,
    /// What `SetSourceType` and `SetMap` set, by source name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, SourceSettings>,
}

/// A source's settings (host-input.md §4, second table).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct SourceSettings {
    /// 2 = scanner, 3 = application (the FMC's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<u8>,
    /// The third-party product map set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_set: Option<String>,
}

/// `SetOS`: the operating system's first three fields.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct OsEntry {
    pub vendor: String,
    pub product: String,
    pub version: String,
}

/// `AddService`: one service, by port and protocol.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServiceEntry {
    pub port: u16,
    /// 6 (tcp) or 17 (udp).
    pub proto: u8,
    pub server: String,
    pub vendor: String,
    pub version: String,
}

/// One host of the network map.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct HostEntry {
    /// MAC address given with `AddHost,<ip>,<mac>` (lower case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Scan results, sorted; at most one per (source, vuln_id, port, proto), so one
    /// generic result per source.
    #[serde(default)]
    pub results: Vec<ScanResult>,
    /// Attributes set with `SetAttributeValue`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// Set with `SetOS`, cleared with `UnsetOS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<OsEntry>,
    /// Added with `AddService`, sorted by port and protocol (at most 100).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceEntry>,
}

/// One third-party vulnerability on a host (host-input.md §4, AddScanResult fields).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScanResult {
    /// The `SetSource` name in force when the result was added.
    pub source: String,
    pub scanner_id: String,
    /// `None` for a generic result (host-input.md §4): shown on the host under its
    /// scanner, mapped to no vulnerability, so it raises no impact flag.
    pub vuln_id: Option<u64>,
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
    fn key(&self) -> (String, Option<u64>, Option<u16>, Option<u8>) {
        (self.source.clone(), self.vuln_id, self.port, self.proto)
    }

    /// A generic result: no vulnerability (host-input.md §4).
    pub fn is_generic(&self) -> bool {
        self.vuln_id.is_none()
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

impl NetworkMap {
    /// The entry of `ip`, if the host is in the map.
    pub fn host(&self, ip: IpAddr) -> Option<&HostEntry> {
        self.hosts.get(&ip)
    }

    /// Total number of scan results over all hosts.
    pub fn result_count(&self) -> usize {
        self.hosts.values().map(|h| h.results.len()).sum()
    }

    /// Scan results that are vulnerabilities (not generic results), over all hosts.
    pub fn vulnerability_count(&self) -> usize {
        self.hosts
            .values()
            .flat_map(|h| &h.results)
            .filter(|r| !r.is_generic())
            .count()
    }
}
