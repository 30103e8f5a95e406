//! Deterministic, streaming generator of synthetic Qualys `ASSET_DATA_REPORT` documents
//! shaped like real ones (qualys.md §5): HEADER, RISK_SCORE_PER_HOST, HOST_LIST, GLOSSARY
//! (after the hosts as in real reports, or first on request), APPENDICES and a trailing
//! comment after the root, for the connector's scale and correctness tests.
//!
//! Determinism and memory: a host is drawn from its own random stream seeded by
//! `(seed, host index)` and a glossary entry from `(seed, QID index)`, so nothing is
//! carried from one host to the next. The only state that grows is the current host's
//! plan (its findings and the (QID, port, protocol) keys already used on it), reused
//! from host to host; output goes through one 64 KiB buffer. The HEADER's totals and
//! RISK_SCORE_PER_HOST are computed by re-planning the hosts (cheap) instead of storing
//! them, so memory does not depend on the number of hosts.
//!
//! Content: host i is 10.0.0.1 + i (skipping .0 and .255) or, every `ipv6_every`-th
//! host, an address in 2001:db8::/32 (the IPv6 literal as text and in the `v6`
//! attribute). Each host has 0.5×–1.5× `findings_per_host` findings: about 45% Vuln, 15%
//! Practice, 40% Ig; 5% of Vuln/Practice Fixed, the rest New/Active/Re-Opened (Ig half
//! without VULN_STATUS, as in real reports); about 70% on a port of one of the host's
//! services (tcp mostly), the rest host-level (no PORT, sometimes `<PORT/>`). QIDs are
//! drawn from the pool with a skew (a handful are on most hosts), sometimes repeated on
//! another port, never twice with the same (port, protocol) on a host. The glossary lists
//! the whole pool in ascending QID order (a real one lists only the QIDs found), with
//! titles that need care in CSV, HTML THREATs of 50–2000 bytes, 0–4 CVEs and 0–2
//! Bugtraq IDs. An empty report (`hosts == 0`) has no HOST_LIST and no GLOSSARY, like a
//! real one.

use std::collections::HashSet;
use std::io::{self, Write};
use std::net::Ipv6Addr;

use super::corpus::{self, FAMILIES, SERVICES, Tracking};

/// What to generate. The output is a function of this value only.
#[derive(Debug, Clone)]
pub struct GenSpec {
    /// Number of HOST elements.
    pub hosts: u64,
    /// Different seeds give different data; the same seed the same bytes.
    pub seed: u64,
    /// Average number of VULN_INFO per host (each host draws uniformly in
    /// [0.5×, 1.5×] of it).
    pub findings_per_host: u32,
    /// Size of the QID pool, which is also the number of glossary entries (at least 1
    /// when hosts have findings).
    pub qids: u32,
    /// Every Nth host is IPv6 (hosts N, 2N, …, counting from 1); 0 = none.
    pub ipv6_every: u64,
    /// GLOSSARY before HOST_LIST, as some hand-made files have it (real reports put it
    /// after).
    pub glossary_first: bool,
    /// Every Nth host (N, 2N, …) has the status of its first Vuln or Practice finding
    /// flipped (Fixed becomes Active, any other Fixed); 0 = none. The same seed with and
    /// without it gives reports whose hosts differ in those hosts only (the incremental
    /// sync's benchmark: 20 changes 5% of the hosts).
    pub change_every: u64,
}

impl Default for GenSpec {
    fn default() -> Self {
        GenSpec {
            hosts: 1_000,
            seed: 1,
            findings_per_host: 20,
            qids: 20_000,
            ipv6_every: 50,
            glossary_first: false,
            change_every: 0,
        }
    }
}

/// What was written: every count is exactly what the document holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GenSummary {
    /// HOST elements.
    pub hosts: u64,
    /// HOST elements with an IPv6 address.
    pub ipv6_hosts: u64,
    /// VULN_INFO with TYPE Vuln.
    pub vuln: u64,
    /// VULN_INFO with TYPE Practice.
    pub practice: u64,
    /// VULN_INFO with TYPE Ig.
    pub ig: u64,
    /// Vuln and Practice findings with VULN_STATUS Fixed.
    pub fixed: u64,
    /// VULN_DETAILS elements.
    pub glossary: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Vuln and Practice findings that are not Fixed: what the connector sends by default.
    pub sendable: u64,
}

/// Writes the report for `spec` to `out` and returns what it wrote. Streams: memory does
/// not depend on `spec.hosts`; writes go to `out` in 64 KiB blocks, and `out` is flushed
/// at the end.
pub fn generate(spec: &GenSpec, out: &mut impl Write) -> io::Result<GenSummary> {
    if spec.hosts > 0 && spec.findings_per_host > 0 && spec.qids == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "qids must be at least 1 when hosts have findings",
        ));
    }
    let g = Gen::new(spec);
    let mut o = Out {
        w: out,
        b: Vec::with_capacity(FLUSH_AT * 2),
        bytes: 0,
    };
    let mut summary = GenSummary::default();
    g.report(&mut o, &mut summary)?;
    summary.bytes = o.finish()?;
    Ok(summary)
}

const FLUSH_AT: usize = 1 << 16;
/// Pool QIDs spread over [FIRST_QID, FIRST_QID + QID_SPAN) when the pool is small enough,
/// like the real knowledge base.
const FIRST_QID: u64 = 6;
const QID_SPAN: u64 = 380_000;
const DAY: i64 = 86_400;
/// 2024-06-03T07:33:20Z; the generation time is this plus up to 200 days, by seed.
const EPOCH_BASE: i64 = 1_717_400_000;

const STREAM_HOST: u64 = 1;
const STREAM_TRAITS: u64 = 2;
const STREAM_TEXT: u64 = 3;
const STREAM_POOL: u64 = 4;
const STREAM_REPORT: u64 = 5;
const STREAM_JITTER: u64 = 6;
const STREAM_RESULT: u64 = 7;

// ---------------------------------------------------------------------------------------
// Random numbers: splitmix64, one independent stream per (seed, stream, index).

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64, index: u64) -> Self {
        let s = mix(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        Rng(mix(s.wrapping_add(index.wrapping_mul(GOLDEN))))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform in [0, n) (0 when n is 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in [lo, hi].
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `per_mille` / 1000.
    fn pm(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// Index drawn with the given relative weights.
    fn weighted(&mut self, weights: &[u64]) -> usize {
        self.weighted_by(weights, |&w| w)
    }

    /// Index of an item drawn with relative weights `weight(item)`.
    fn weighted_by<T>(&mut self, items: &[T], weight: impl Fn(&T) -> u64) -> usize {
        let total: u64 = items.iter().map(&weight).sum();
        let mut x = self.below(total);
        for (i, item) in items.iter().enumerate() {
            let w = weight(item);
            if x < w {
                return i;
            }
            x -= w;
        }
        items.len().saturating_sub(1)
    }
}

// ---------------------------------------------------------------------------------------
// The QID pool: index k in [0, qids) ↦ ascending QID numbers. k % 5 < 2 are
// information-gathering QIDs (Ig findings), the others vulnerabilities (Vuln or Practice).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ig,
    Vuln,
}

/// One kind's sub-pool of size m, visited through the permutation j = (x·a + b) mod m so
/// that the most common QIDs (small x) are spread over the QID range.
#[derive(Debug, Clone, Copy)]
struct Sub {
    m: u64,
    a: u64,
    b: u64,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Sub {
    fn new(m: u64, r: &mut Rng) -> Sub {
        if m == 0 {
            return Sub { m, a: 1, b: 0 };
        }
        let mut a = ((m as f64 * 0.618_033_988_75) as u64) | 1;
        while gcd(a, m) != 1 {
            a += 2;
        }
        Sub {
            m,
            a,
            b: r.below(m),
        }
    }
}

#[derive(Debug)]
struct Pool {
    step: u64,
    seed: u64,
    ig: Sub,
    vuln: Sub,
}

/// Per-QID facts shared by the findings and the glossary.
#[derive(Debug, Clone, Copy)]
struct Traits {
    severity: u8,
    /// CVSS v2 and v3 base scores, in tenths.
    cvss2: u64,
    cvss3: u64,
}

impl Pool {
    fn new(seed: u64, n: u64) -> Pool {
        let ig_m = 2 * (n / 5) + (n % 5).min(2);
        let mut r = Rng::new(seed, STREAM_POOL, 0);
        Pool {
            step: (QID_SPAN / n.max(1)).max(1),
            seed,
            ig: Sub::new(ig_m, &mut r),
            vuln: Sub::new(n - ig_m, &mut r),
        }
    }

    fn kind(k: u64) -> Kind {
        if k % 5 < 2 { Kind::Ig } else { Kind::Vuln }
    }

    /// The QID number of pool index k; strictly increasing in k.
    fn qid(&self, k: u64) -> u64 {
        let jitter = Rng::new(self.seed, STREAM_JITTER, k).next() % self.step;
        FIRST_QID + k * self.step + jitter
    }

    /// A pool index of the given kind (of the other kind if the pool has none), skewed:
    /// a handful of QIDs are very common, the rest follow a long tail.
    fn draw(&self, kind: Kind, r: &mut Rng) -> u64 {
        let (kind, sub) = match kind {
            Kind::Ig if self.ig.m > 0 => (Kind::Ig, self.ig),
            Kind::Vuln if self.vuln.m > 0 => (Kind::Vuln, self.vuln),
            Kind::Ig => (Kind::Vuln, self.vuln),
            Kind::Vuln => (Kind::Ig, self.ig),
        };
        let m = sub.m.max(1);
        let x = if r.pm(200) {
            r.below(m.min(8))
        } else {
            let u = r.unit();
            ((m as f64 * u * u) as u64).min(m - 1)
        };
        let j = ((u128::from(x) * u128::from(sub.a) + u128::from(sub.b)) % u128::from(m)) as u64;
        match kind {
            Kind::Ig => 5 * (j / 2) + j % 2,
            Kind::Vuln => 5 * (j / 3) + 2 + j % 3,
        }
    }

    fn traits(&self, k: u64) -> Traits {
        let mut r = Rng::new(self.seed, STREAM_TRAITS, k);
        let severity = match Pool::kind(k) {
            Kind::Ig => [1u8, 1, 1, 1, 1, 1, 1, 2, 2, 3][r.below(10) as usize],
            Kind::Vuln => [1u8, 2, 3, 4, 5][r.weighted(&[10, 20, 35, 25, 10])],
        };
        let s = usize::from(severity);
        Traits {
            severity,
            cvss2: ([0, 21, 43, 50, 75, 93][s] + r.below(8)).min(100),
            cvss3: ([0, 31, 53, 65, 78, 96][s] + r.below(5)).min(100),
        }
    }
}

// ---------------------------------------------------------------------------------------
// A host's plan: everything about it except the text details of its findings.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Vuln,
    Practice,
    Ig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    New,
    Active,
    ReOpened,
    Fixed,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::New => "New",
            Status::Active => "Active",
            Status::ReOpened => "Re-Opened",
            Status::Fixed => "Fixed",
        }
    }
}

/// Where a finding is: on a service (index into SERVICES), or host-level written with
/// no PORT element or with an empty `<PORT/>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortUse {
    Absent,
    Empty,
    Svc(usize),
}

#[derive(Debug, Clone, Copy)]
struct Finding {
    k: u64,
    qid: u64,
    ty: Ty,
    port: PortUse,
    status: Option<Status>,
}

/// `change_every`: the first Vuln or Practice finding's status, flipped.
fn flip_first_status(host: &mut Host) {
    if let Some(f) = host.findings.iter_mut().find(|f| f.ty != Ty::Ig) {
        f.status = match f.status {
            Some(Status::Fixed) => Some(Status::Active),
            _ => Some(Status::Fixed),
        };
    }
}

#[derive(Debug)]
struct Host {
    ip: String,
    v6: bool,
    os: &'static str,
    tracking: Tracking,
    dns: String,
    netbios: String,
    services: Vec<usize>,
    findings: Vec<Finding>,
    /// (QID, port, protocol number) already on this host; (QID, 0, 0) for host-level.
    seen: HashSet<(u64, u16, u8)>,
}

impl Host {
    fn new() -> Host {
        Host {
            ip: String::new(),
            v6: false,
            os: "",
            tracking: Tracking::Ip,
            dns: String::new(),
            netbios: String::new(),
            services: Vec::new(),
            findings: Vec::new(),
            seen: HashSet::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Output buffer and formatting helpers.

struct Out<'w, W: Write> {
    w: &'w mut W,
    b: Vec<u8>,
    bytes: u64,
}

impl<W: Write> Out<'_, W> {
    fn maybe_flush(&mut self) -> io::Result<()> {
        if self.b.len() >= FLUSH_AT {
            self.drain()?;
        }
        Ok(())
    }

    fn drain(&mut self) -> io::Result<()> {
        self.w.write_all(&self.b)?;
        self.bytes += self.b.len() as u64;
        self.b.clear();
        Ok(())
    }

    fn finish(mut self) -> io::Result<u64> {
        self.drain()?;
        self.w.flush()?;
        Ok(self.bytes)
    }
}

fn s(b: &mut Vec<u8>, text: &str) {
    b.extend_from_slice(text.as_bytes());
}

fn u(b: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    b.extend_from_slice(&digits[i..]);
}

fn pad2(b: &mut Vec<u8>, v: u64) {
    if v < 10 {
        b.push(b'0');
    }
    u(b, v);
}

/// `7.5` from 75.
fn tenths(b: &mut Vec<u8>, t: u64) {
    u(b, t / 10);
    b.push(b'.');
    u(b, t % 10);
}

/// `<TAG>text</TAG>` plus indentation and newline.
fn elem(b: &mut Vec<u8>, indent: &str, tag: &str, text: &str) {
    s(b, indent);
    b.push(b'<');
    s(b, tag);
    b.push(b'>');
    s(b, text);
    s(b, "</");
    s(b, tag);
    s(b, ">\n");
}

fn elem_u(b: &mut Vec<u8>, indent: &str, tag: &str, v: u64) {
    s(b, indent);
    b.push(b'<');
    s(b, tag);
    b.push(b'>');
    u(b, v);
    s(b, "</");
    s(b, tag);
    s(b, ">\n");
}

fn elem_cdata(b: &mut Vec<u8>, indent: &str, tag: &str, text: &str) {
    s(b, indent);
    b.push(b'<');
    s(b, tag);
    s(b, "><![CDATA[");
    s(b, text);
    s(b, "]]></");
    s(b, tag);
    s(b, ">\n");
}

/// Days since 1970-01-01 to (year, month, day) (H. Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `2024-06-03T07:33:20Z`.
fn datetime(b: &mut Vec<u8>, t: i64) {
    let (y, m, d) = civil(t.div_euclid(DAY));
    let secs = t.rem_euclid(DAY) as u64;
    u(b, y.max(0) as u64);
    b.push(b'-');
    pad2(b, m);
    b.push(b'-');
    pad2(b, d);
    b.push(b'T');
    pad2(b, secs / 3600);
    b.push(b':');
    pad2(b, secs / 60 % 60);
    b.push(b':');
    pad2(b, secs % 60);
    b.push(b'Z');
}

fn date(b: &mut Vec<u8>, t: i64) {
    let (y, m, d) = civil(t.div_euclid(DAY));
    u(b, y.max(0) as u64);
    b.push(b'-');
    pad2(b, m);
    b.push(b'-');
    pad2(b, d);
}

fn push_u64(out: &mut String, v: u64) {
    let mut b = Vec::new();
    u(&mut b, v);
    for &c in &b {
        out.push(char::from(c));
    }
}

fn push_ipv4(out: &mut String, a: u32) {
    for (i, octet) in a.to_be_bytes().iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        push_u64(out, u64::from(*octet));
    }
}

/// `1.2.3` with small random parts.
fn version(b: &mut Vec<u8>, r: &mut Rng) {
    u(b, r.range(1, 12));
    b.push(b'.');
    u(b, r.below(20));
    b.push(b'.');
    u(b, r.below(40));
}

// ---------------------------------------------------------------------------------------
// The generator.

#[derive(Debug)]
struct Gen<'s> {
    spec: &'s GenSpec,
    pool: Pool,
    /// GENERATION_DATETIME, seconds since the epoch.
    now: i64,
}

/// Per-host risk numbers for HEADER and RISK_SCORE_PER_HOST.
struct Risk {
    /// Findings that are not Fixed.
    total: u64,
    /// Average severity of those findings, in tenths.
    security_tenths: u64,
}

impl<'s> Gen<'s> {
    fn new(spec: &'s GenSpec) -> Gen<'s> {
        let mut r = Rng::new(spec.seed, STREAM_REPORT, 0);
        let now = EPOCH_BASE + r.below(200 * DAY as u64) as i64;
        Gen {
            spec,
            pool: Pool::new(spec.seed, u64::from(spec.qids)),
            now,
        }
    }

    fn is_v6(&self, i: u64) -> bool {
        self.spec.ipv6_every > 0 && (i + 1).is_multiple_of(self.spec.ipv6_every)
    }

    /// The IPv4 address of host i: 10.0.0.1, …, 10.0.0.254, 10.0.1.1, … (never .0/.255;
    /// past 16.6 million hosts it continues in 11.0.0.0/8 and up, still unique).
    fn ipv4(i: u64) -> u32 {
        let subnet = (i / 254) as u32;
        let host = (i % 254) as u32 + 1;
        0x0A00_0000u32
            .wrapping_add(subnet.wrapping_shl(8))
            .wrapping_add(host)
    }

    /// The address of the c-th IPv6 host (c from 0): 2001:db8:0:a00::1, …
    fn ipv6(c: u64) -> Ipv6Addr {
        Ipv6Addr::from(0x2001_0db8_0000_0a00_0000_0000_0000_0000u128 | (u128::from(c) + 1))
    }

    fn report<W: Write>(&self, o: &mut Out<'_, W>, sum: &mut GenSummary) -> io::Result<()> {
        let mut host = Host::new();
        s(
            &mut o.b,
            "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n\n<!DOCTYPE ASSET_DATA_REPORT SYSTEM \
             \"https://qualysguard.qg2.apps.qualys.com/asset_data_report.dtd\">\n\
             <ASSET_DATA_REPORT>\n",
        );
        self.header(o, &mut host)?;
        if self.spec.hosts > 0 {
            self.risk_per_host(o, &mut host)?;
            if self.spec.glossary_first {
                self.glossary(o, sum)?;
            }
            s(&mut o.b, "  <HOST_LIST>\n");
            for i in 0..self.spec.hosts {
                let r = self.plan(i, &mut host);
                if self.spec.change_every > 0 && (i + 1) % self.spec.change_every == 0 {
                    flip_first_status(&mut host);
                }
                self.host(o, &host, r, sum)?;
            }
            s(&mut o.b, "  </HOST_LIST>\n");
            if !self.spec.glossary_first {
                self.glossary(o, sum)?;
            }
        }
        self.appendices(o);
        s(
            &mut o.b,
            "</ASSET_DATA_REPORT>\n<!-- SIMULATED REPORT written by qualys-sim (seed ",
        );
        u(&mut o.b, self.spec.seed);
        s(
            &mut o.b,
            "). Not produced by Qualys; every name, address and finding in it is synthetic. //--> \n",
        );
        Ok(())
    }

    // -- planning --------------------------------------------------------------------

    /// Fills `h` with host i's plan and returns its random stream, positioned for
    /// rendering the details.
    fn plan(&self, i: u64, h: &mut Host) -> Rng {
        let mut r = Rng::new(self.spec.seed, STREAM_HOST, i);
        h.ip.clear();
        h.dns.clear();
        h.netbios.clear();
        h.services.clear();
        h.findings.clear();
        h.seen.clear();

        h.v6 = self.is_v6(i);
        if h.v6 {
            let c = (i + 1) / self.spec.ipv6_every - 1;
            h.ip.push_str(&Gen::ipv6(c).to_string());
        } else {
            push_ipv4(&mut h.ip, Gen::ipv4(i));
        }
        let fam = &FAMILIES[r.weighted_by(FAMILIES, |f| f.weight)];
        h.os = r.pick(fam.os);
        h.tracking = fam.tracking[r.weighted_by(fam.tracking, |t| t.1)].0;
        let prefix = r.pick(fam.dns_prefix);
        if h.tracking == Tracking::Dns || r.pm(800) {
            h.dns.push_str(prefix);
            h.dns.push('-');
            push_u64(&mut h.dns, i + 1);
            h.dns.push('.');
            h.dns.push_str(r.pick(corpus::SITES));
            h.dns.push('.');
            h.dns.push_str(r.pick(corpus::DOMAINS));
        }
        if fam.windows {
            h.netbios.push_str(&prefix.to_ascii_uppercase());
            h.netbios.push('-');
            push_u64(&mut h.netbios, i + 1);
        }
        for (n, &svc) in fam.services.iter().enumerate() {
            if n == 0 || r.pm(450) {
                h.services.push(svc);
            }
        }

        let avg = f64::from(self.spec.findings_per_host);
        let count = (avg * (0.5 + r.unit()) + 0.5).floor() as u64;
        let mut last_port: Option<(u64, Kind)> = None;
        for _ in 0..count {
            // A few attempts to find a (QID, port, protocol) not yet on this host; with a
            // tiny pool the host simply gets fewer findings.
            for _attempt in 0..8 {
                let ty = match r.below(100) {
                    0..=44 => Ty::Vuln,
                    45..=59 => Ty::Practice,
                    _ => Ty::Ig,
                };
                let kind = if ty == Ty::Ig { Kind::Ig } else { Kind::Vuln };
                let port = if r.pm(700) {
                    PortUse::Svc(r.pick(&h.services))
                } else if r.pm(120) {
                    PortUse::Empty
                } else {
                    PortUse::Absent
                };
                // The same QID on another port of the host (a TLS issue on 443 and 8443…).
                let k = match (port, last_port) {
                    (PortUse::Svc(_), Some((lk, lkind))) if lkind == kind && r.pm(120) => lk,
                    _ => self.pool.draw(kind, &mut r),
                };
                let qid = self.pool.qid(k);
                let key = match port {
                    PortUse::Svc(i) => (qid, SERVICES[i].port, SERVICES[i].proto.number()),
                    PortUse::Absent | PortUse::Empty => (qid, 0, 0),
                };
                if !h.seen.insert(key) {
                    continue;
                }
                if let PortUse::Svc(_) = port {
                    last_port = Some((k, kind));
                }
                let status = match ty {
                    Ty::Ig if r.pm(500) => None,
                    Ty::Ig => Some(match r.below(100) {
                        0..=4 => Status::Fixed,
                        5..=19 => Status::New,
                        _ => Status::Active,
                    }),
                    Ty::Vuln | Ty::Practice if r.pm(50) => Some(Status::Fixed),
                    Ty::Vuln | Ty::Practice => Some(match r.below(100) {
                        0..=34 => Status::New,
                        35..=89 => Status::Active,
                        _ => Status::ReOpened,
                    }),
                };
                h.findings.push(Finding {
                    k,
                    qid,
                    ty,
                    port,
                    status,
                });
                break;
            }
        }
        r
    }

    fn risk(&self, h: &Host) -> Risk {
        let mut total = 0;
        let mut severity = 0;
        for f in &h.findings {
            if f.status != Some(Status::Fixed) {
                total += 1;
                severity += u64::from(self.pool.traits(f.k).severity);
            }
        }
        Risk {
            total,
            security_tenths: (severity * 10 + total / 2).checked_div(total).unwrap_or(0),
        }
    }

    // -- HEADER, RISK_SCORE_PER_HOST, APPENDICES ---------------------------------------

    fn header<W: Write>(&self, o: &mut Out<'_, W>, host: &mut Host) -> io::Result<()> {
        let mut r = Rng::new(self.spec.seed, STREAM_REPORT, 1);
        let hosts = self.spec.hosts;
        let (mut total, mut risk_sum) = (0u64, 0u64);
        for i in 0..hosts {
            self.plan(i, host);
            let risk = self.risk(host);
            total += risk.total;
            risk_sum += risk.security_tenths;
        }
        let avg = (risk_sum + hosts / 2).checked_div(hosts).unwrap_or(0);
        let b = &mut o.b;
        s(b, "  <HEADER>\n");
        elem_cdata(
            b,
            "    ",
            "COMPANY",
            r.pick(&[
                "Example Corp & S\u{f6}hne",
                "Simulated \"Training\" Company, Inc.",
                "ACME Widgets",
            ]),
        );
        s(b, "    <USERNAME>exmpl_sim");
        u(b, self.spec.seed % 100);
        s(b, "</USERNAME>\n    <GENERATION_DATETIME>");
        datetime(b, self.now);
        s(b, "</GENERATION_DATETIME>\n");
        elem_cdata(
            b,
            "    ",
            "TEMPLATE",
            "Host Input export \u{2013} all findings, severity 1-5",
        );
        s(b, "    <TARGET>\n");
        s(b, "      <USER_ASSET_GROUPS>\n");
        elem_cdata(b, "        ", "ASSET_GROUP_TITLE", "All");
        s(b, "      </USER_ASSET_GROUPS>\n");
        if hosts > 0 {
            s(b, "      <COMBINED_IP_LIST>\n");
            let range = |b: &mut Vec<u8>, start: &str, end: &str| {
                s(b, "        <RANGE>\n");
                elem(b, "          ", "START", start);
                elem(b, "          ", "END", end);
                s(b, "        </RANGE>\n");
            };
            let k = self.spec.ipv6_every;
            if k != 1 {
                // Host 0 is IPv4 unless every host is IPv6; the last IPv4 host is one of
                // the last two.
                let last = if self.is_v6(hosts - 1) {
                    hosts - 2
                } else {
                    hosts - 1
                };
                let (mut first_ip, mut last_ip) = (String::new(), String::new());
                push_ipv4(&mut first_ip, Gen::ipv4(0));
                push_ipv4(&mut last_ip, Gen::ipv4(last));
                range(b, &first_ip, &last_ip);
            }
            let v6_hosts = hosts.checked_div(k).unwrap_or(0);
            if v6_hosts > 0 {
                let first = Gen::ipv6(0).to_string();
                let last = Gen::ipv6(v6_hosts - 1).to_string();
                range(b, &first, &last);
            }
            s(b, "      </COMBINED_IP_LIST>\n");
        }
        s(b, "    </TARGET>\n    <RISK_SCORE_SUMMARY>\n");
        elem_u(b, "      ", "TOTAL_VULNERABILITIES", total);
        s(b, "      <AVG_SECURITY_RISK>");
        tenths(b, avg);
        s(b, "</AVG_SECURITY_RISK>\n      <BUSINESS_RISK>");
        u(b, (avg * 2).min(100));
        s(
            b,
            "/100</BUSINESS_RISK>\n    </RISK_SCORE_SUMMARY>\n  </HEADER>\n",
        );
        o.maybe_flush()
    }

    fn risk_per_host<W: Write>(&self, o: &mut Out<'_, W>, host: &mut Host) -> io::Result<()> {
        s(&mut o.b, "  <RISK_SCORE_PER_HOST>\n");
        for i in 0..self.spec.hosts {
            self.plan(i, host);
            let risk = self.risk(host);
            let b = &mut o.b;
            s(b, "    <HOSTS>\n");
            elem(b, "      ", "IP_ADDRESS", &host.ip);
            elem_u(b, "      ", "TOTAL_VULNERABILITIES", risk.total);
            s(b, "      <SECURITY_RISK>");
            tenths(b, risk.security_tenths);
            s(b, "</SECURITY_RISK>\n    </HOSTS>\n");
            o.maybe_flush()?;
        }
        s(&mut o.b, "  </RISK_SCORE_PER_HOST>\n");
        Ok(())
    }

    fn appendices<W: Write>(&self, o: &mut Out<'_, W>) {
        let b = &mut o.b;
        s(b, "  <APPENDICES>\n");
        if self.spec.hosts > 0 {
            // Addresses that were targeted but did not answer (TEST-NET-1, never a host's).
            let mut r = Rng::new(self.spec.seed, STREAM_REPORT, 2);
            s(
                b,
                "    <NO_RESULTS>\n      <IP_LIST>\n        <RANGE>\n          \
                 <START>192.0.2.1</START>\n          <END>192.0.2.",
            );
            u(b, r.range(1, 254));
            s(
                b,
                "</END>\n        </RANGE>\n      </IP_LIST>\n    </NO_RESULTS>\n",
            );
        }
        s(
            b,
            "    <TEMPLATE_DETAILS>\n      <FILTER_SUMMARY>\n        \
             Status:New, Active, Re-Opened, Fixed\n        Display non-running kernels:\n        \
             Off\n        Exclude non-running kernels:\n        Off\n        \
             Exclude non-running services:\n        Off\n        \
             Exclude QIDs not exploitable due to configuration:\n        Off\n        \
             Vulnerabilities:\n        State:Active\n        Potential Vulnerabilities:\n        \
             State:Active\n        Information Gathered:\n        State:Active\n        \
             Included Operating Systems:\n        All Operating Systems\n      \
             </FILTER_SUMMARY>\n    </TEMPLATE_DETAILS>\n  </APPENDICES>\n",
        );
    }

    // -- HOST ------------------------------------------------------------------------

    fn host<W: Write>(
        &self,
        o: &mut Out<'_, W>,
        h: &Host,
        mut r: Rng,
        sum: &mut GenSummary,
    ) -> io::Result<()> {
        sum.hosts += 1;
        let b = &mut o.b;
        s(b, "    <HOST>\n      <IP network_id=\"0\"");
        if h.v6 {
            sum.ipv6_hosts += 1;
            s(b, " v6=\"");
            s(b, &h.ip);
            b.push(b'"');
        }
        b.push(b'>');
        s(b, &h.ip);
        s(b, "</IP>\n");
        elem(b, "      ", "TRACKING_METHOD", h.tracking.name());
        if !h.dns.is_empty() {
            elem_cdata(b, "      ", "DNS", &h.dns);
        }
        if !h.netbios.is_empty() {
            elem_cdata(b, "      ", "NETBIOS", &h.netbios);
        } else if r.pm(100) {
            s(b, "      <NETBIOS/>\n");
        }
        elem_cdata(b, "      ", "OPERATING_SYSTEM", h.os);
        if r.pm(700) {
            s(b, "      <ASSET_GROUPS>\n");
            let first = r.below(corpus::ASSET_GROUPS.len() as u64);
            elem_cdata(
                b,
                "        ",
                "ASSET_GROUP_TITLE",
                corpus::ASSET_GROUPS[first as usize],
            );
            if r.pm(300) {
                let second = (first + 1) % corpus::ASSET_GROUPS.len() as u64;
                elem_cdata(
                    b,
                    "        ",
                    "ASSET_GROUP_TITLE",
                    corpus::ASSET_GROUPS[second as usize],
                );
            }
            s(b, "      </ASSET_GROUPS>\n");
        }
        if !h.findings.is_empty() {
            // When this host was scanned: up to three days before the report.
            let scan = self.now - r.below(3 * DAY as u64) as i64;
            s(b, "      <VULN_INFO_LIST>\n");
            for f in &h.findings {
                self.finding(&mut o.b, h, f, scan, &mut r, sum);
                o.maybe_flush()?;
            }
            s(&mut o.b, "      </VULN_INFO_LIST>\n");
        }
        s(&mut o.b, "    </HOST>\n");
        o.maybe_flush()
    }

    fn finding(
        &self,
        b: &mut Vec<u8>,
        h: &Host,
        f: &Finding,
        scan: i64,
        r: &mut Rng,
        sum: &mut GenSummary,
    ) {
        const I: &str = "          ";
        match f.ty {
            Ty::Vuln => sum.vuln += 1,
            Ty::Practice => sum.practice += 1,
            Ty::Ig => sum.ig += 1,
        }
        if f.ty != Ty::Ig {
            if f.status == Some(Status::Fixed) {
                sum.fixed += 1;
            } else {
                sum.sendable += 1;
            }
        }
        s(b, "        <VULN_INFO>\n          <QID id=\"qid_");
        u(b, f.qid);
        s(b, "\">");
        u(b, f.qid);
        s(b, "</QID>\n");
        elem(
            b,
            I,
            "TYPE",
            match f.ty {
                Ty::Vuln => "Vuln",
                Ty::Practice => "Practice",
                Ty::Ig => "Ig",
            },
        );
        let mut ssl = false;
        match f.port {
            PortUse::Svc(i) => {
                let svc = &SERVICES[i];
                ssl = svc.ssl;
                elem_u(b, I, "PORT", u64::from(svc.port));
                if r.pm(30) {
                    s(b, "          <SERVICE/>\n");
                } else {
                    elem(b, I, "SERVICE", svc.name);
                }
                elem(b, I, "PROTOCOL", svc.proto.name());
            }
            PortUse::Empty => s(b, "          <PORT/>\n"),
            PortUse::Absent => {}
        }
        elem(b, I, "SSL", if ssl { "true" } else { "false" });
        if !r.pm(10) {
            self.result(b, h, f, r);
        }
        let (last, times) = match f.status {
            Some(Status::Fixed) => (
                scan - r.range(1, 90) as i64 * DAY - r.below(DAY as u64) as i64,
                r.range(1, 60),
            ),
            Some(Status::New) => (scan, 1),
            Some(Status::ReOpened) => (scan, r.range(3, 150)),
            Some(Status::Active) | None => (scan, r.range(2, 300)),
        };
        let first = if times == 1 {
            last
        } else {
            last - (times * r.range(1, 7)).min(1100) as i64 * DAY - r.below(DAY as u64) as i64
        };
        s(b, "          <FIRST_FOUND>");
        datetime(b, first);
        s(b, "</FIRST_FOUND>\n          <LAST_FOUND>");
        datetime(b, last);
        s(b, "</LAST_FOUND>\n");
        elem_u(b, I, "TIMES_FOUND", times);
        if let Some(status) = f.status {
            elem(b, I, "VULN_STATUS", status.name());
        }
        if f.ty != Ty::Ig {
            let t = self.pool.traits(f.k);
            for (tag, base) in [("CVSS_FINAL", t.cvss2), ("CVSS3_FINAL", t.cvss3)] {
                s(b, I);
                b.push(b'<');
                s(b, tag);
                b.push(b'>');
                if r.pm(80) {
                    b.push(b'-');
                } else {
                    tenths(b, base.saturating_sub(r.below(15)));
                }
                s(b, "</");
                s(b, tag);
                s(b, ">\n");
            }
        }
        s(b, "        </VULN_INFO>\n");
    }

    /// RESULT: a tab-separated table (format="table") or free text, up to a few hundred
    /// bytes, in CDATA.
    fn result(&self, b: &mut Vec<u8>, h: &Host, f: &Finding, r: &mut Rng) {
        let port = match f.port {
            PortUse::Svc(i) => Some(&SERVICES[i]),
            PortUse::Absent | PortUse::Empty => None,
        };
        // The kind of RESULT is a property of the QID, as in real reports.
        let shape = Rng::new(self.spec.seed, STREAM_RESULT, f.k).next();
        if shape % 1000 < 750 {
            s(b, "          <RESULT format=\"table\"><![CDATA[");
            match (shape >> 16) % 10 {
                0 => {
                    s(b, "IP address\tHost name\n");
                    s(b, &h.ip);
                    b.push(b'\t');
                    s(
                        b,
                        if h.dns.is_empty() {
                            "No registered hostname"
                        } else {
                            &h.dns
                        },
                    );
                }
                1 => {
                    s(
                        b,
                        "Port\tIANA Assigned Ports/Services\tDescription\tService Detected\tOS On Redirected Port",
                    );
                    for &i in h.services.iter().take(6) {
                        let svc = &SERVICES[i];
                        b.push(b'\n');
                        u(b, u64::from(svc.port));
                        b.push(b'\t');
                        s(b, svc.name);
                        b.push(b'\t');
                        s(b, svc.description);
                        b.push(b'\t');
                        s(b, svc.name);
                        s(b, "\t ");
                    }
                }
                2 => {
                    s(b, "Algorithm\tLength\n");
                    s(b, r.pick(corpus::SSH_ALGOS));
                    b.push(b'\t');
                    u(b, r.pick(&[512, 768, 1024, 2048]));
                    s(b, " bits");
                }
                3 => {
                    s(b, "Type\tName\nkey exchange\t");
                    s(b, r.pick(corpus::KEX));
                    for _ in 0..r.range(1, 5) {
                        s(b, "\ncipher\t");
                        s(b, r.pick(corpus::CIPHERS));
                    }
                    if r.pm(500) {
                        s(b, "\nmac\t");
                        s(b, r.pick(corpus::MACS));
                    }
                }
                4 => {
                    s(
                        b,
                        "CIPHER\tKEY-EXCHANGE\tAUTHENTICATION\tMAC\tENCRYPTION(KEY-STRENGTH)\tGRADE\n",
                    );
                    s(b, r.pick(corpus::TLS_VERSIONS));
                    s(b, " WITH RC4 CIPHERs IS SUPPORTED\t \t \t \t \t ");
                    for _ in 0..r.range(1, 3) {
                        b.push(b'\n');
                        s(b, r.pick(corpus::TLS_ROWS));
                    }
                }
                5 => {
                    s(b, "Package\tInstalled Version\tRequired Version");
                    for _ in 0..r.range(1, 4) {
                        b.push(b'\n');
                        s(b, r.pick(corpus::PACKAGES));
                        b.push(b'\t');
                        version(b, r);
                        s(b, "-1.el7\t");
                        version(b, r);
                        s(b, "-3.el7_9");
                    }
                }
                6 => {
                    s(b, "Operating System\tTechnique\tID\n");
                    s(b, h.os);
                    s(b, "\tTCP/IP Fingerprint\tU");
                    u(b, r.range(1000, 9999));
                    b.push(b':');
                    u(b, port.map_or(0, |p| u64::from(p.port)));
                }
                7 => {
                    s(b, "Key\tValue\n");
                    s(b, r.pick(corpus::REG_KEYS));
                    s(b, "\t0x");
                    u(b, r.below(2));
                }
                8 => {
                    s(b, "#\tSubject\tIssuer\tExpires\n0\tCN=");
                    s(b, if h.dns.is_empty() { &h.ip } else { &h.dns });
                    s(
                        b,
                        ",O=\"Example, Inc.\",C=US\tCN=Example Issuing CA & Co., O=<none>\t",
                    );
                    date(b, self.now - r.range(1, 900) as i64 * DAY);
                }
                _ => {
                    s(b, "ICMP Reply Type\tTriggered By\tAdditional Information");
                    for _ in 0..r.range(1, 4) {
                        b.push(b'\n');
                        s(b, r.pick(corpus::ICMP_ROWS));
                    }
                }
            }
        } else {
            s(b, "          <RESULT><![CDATA[");
            match (shape >> 16) % 5 {
                0 => {
                    s(b, "Tested on port ");
                    u(b, port.map_or(22, |p| u64::from(p.port)));
                    s(b, " with an injected SYN/RST offset by 16 bytes.");
                }
                1 => {
                    s(b, "Timestamp of host (network byte ordering): ");
                    pad2(b, r.below(24));
                    b.push(b':');
                    pad2(b, r.below(60));
                    b.push(b':');
                    pad2(b, r.below(60));
                    s(b, " GMT");
                }
                2 => {
                    s(b, "Vulnerable version of ");
                    s(b, r.pick(corpus::PACKAGES));
                    s(b, " detected: ");
                    version(b, r);
                    s(b, "\nFixed version: ");
                    version(b, r);
                }
                3 => {
                    s(b, "%windir%\\System32\\");
                    s(b, r.pick(corpus::WIN_FILES));
                    s(b, "  Version is  10.0.");
                    u(b, r.range(10_240, 22_631));
                    b.push(b'.');
                    u(b, r.below(5000));
                }
                _ => {
                    s(b, "HTTP/1.1 200 OK\nServer: ");
                    s(b, r.pick(corpus::HTTP_SERVERS));
                    s(
                        b,
                        "\nX-Powered-By: PHP/5.4.16 & <none>\nSet-Cookie: sid=\"a1b2\"; path=/",
                    );
                }
            }
        }
        if f.ty == Ty::Practice && r.pm(300) {
            s(
                b,
                "\nPotential vulnerability: the check is based on the version banner only.",
            );
        }
        s(b, "]]></RESULT>\n");
    }

    // -- GLOSSARY ----------------------------------------------------------------------

    fn glossary<W: Write>(&self, o: &mut Out<'_, W>, sum: &mut GenSummary) -> io::Result<()> {
        s(&mut o.b, "  <GLOSSARY>\n    <VULN_DETAILS_LIST>\n");
        for k in 0..u64::from(self.spec.qids) {
            self.details(&mut o.b, k);
            sum.glossary += 1;
            o.maybe_flush()?;
        }
        s(&mut o.b, "    </VULN_DETAILS_LIST>\n  </GLOSSARY>\n");
        Ok(())
    }

    fn details(&self, b: &mut Vec<u8>, k: u64) {
        const I: &str = "        ";
        let qid = self.pool.qid(k);
        let kind = Pool::kind(k);
        let t = self.pool.traits(k);
        let mut r = Rng::new(self.spec.seed, STREAM_TEXT, k);

        // CVE and Bugtraq IDs first: the title and THREAT mention them.
        let n_cve = match kind {
            Kind::Vuln => r.weighted(&[25, 35, 20, 12, 8]),
            Kind::Ig => usize::from(r.pm(20)),
        };
        // Distinct IDs: often consecutive, as in real advisories.
        let mut cves = [(0u64, 0u64); 4];
        let (year, mut num) = (r.range(2008, 2024), r.range(1000, 49_999));
        for c in cves.iter_mut().take(n_cve) {
            *c = (year, num);
            num += r.range(1, 40);
        }
        let cves = &cves[..n_cve];
        let n_bid = match kind {
            Kind::Vuln => r.weighted(&[60, 30, 10]),
            Kind::Ig => 0,
        };

        s(b, "      <VULN_DETAILS id=\"qid_");
        u(b, qid);
        s(b, "\">\n        <QID id=\"qid_");
        u(b, qid);
        s(b, "\">");
        u(b, qid);
        s(b, "</QID>\n        <TITLE><![CDATA[");
        let product = title(b, &mut r, kind, cves);
        s(b, "]]></TITLE>\n");
        elem_u(b, I, "SEVERITY", u64::from(t.severity));
        elem(
            b,
            I,
            "CATEGORY",
            match kind {
                Kind::Ig => r.pick(corpus::IG_CATEGORIES),
                Kind::Vuln => r.pick(corpus::VULN_CATEGORIES),
            },
        );

        let wrap = r.pm(150);
        cdata_open(b, "THREAT", wrap);
        threat(b, &mut r, kind, product, cves);
        cdata_close(b, "THREAT", wrap);

        let wrap = r.pm(100);
        cdata_open(b, "IMPACT", wrap);
        match kind {
            Kind::Ig => s(b, "N/A"),
            Kind::Vuln => s(b, r.pick(corpus::IMPACTS)),
        }
        cdata_close(b, "IMPACT", wrap);

        let wrap = r.pm(100);
        cdata_open(b, "SOLUTION", wrap);
        match kind {
            Kind::Ig => s(b, "N/A"),
            Kind::Vuln => solution(b, &mut r, product),
        }
        cdata_close(b, "SOLUTION", wrap);

        elem_u(
            b,
            I,
            "PCI_FLAG",
            u64::from(kind == Kind::Vuln && t.severity >= 3),
        );
        s(b, "        <LAST_UPDATE>");
        datetime(
            b,
            self.now - r.range(1, 3000) as i64 * DAY + r.below(DAY as u64) as i64,
        );
        s(b, "</LAST_UPDATE>\n");

        if kind == Kind::Vuln {
            if r.pm(800) {
                s(b, "        <CVSS_SCORE>\n          <CVSS_BASE");
                if r.pm(300) {
                    s(b, " source=\"service\"");
                }
                b.push(b'>');
                tenths(b, t.cvss2);
                s(b, " (");
                s(b, r.pick(corpus::CVSS2_VECTORS));
                s(b, ")</CVSS_BASE>\n          <CVSS_TEMPORAL>");
                tenths(b, t.cvss2.saturating_sub(r.below(15)));
                s(b, " (");
                s(b, r.pick(corpus::CVSS2_TEMPORAL));
                s(b, ")</CVSS_TEMPORAL>\n        </CVSS_SCORE>\n");
            }
            if r.pm(700) {
                s(b, "        <CVSS3_SCORE>\n          <CVSS3_BASE>");
                tenths(b, t.cvss3);
                s(b, " (");
                s(b, r.pick(corpus::CVSS3_VECTORS));
                s(b, ")</CVSS3_BASE>\n          <CVSS3_TEMPORAL>");
                tenths(b, t.cvss3.saturating_sub(r.below(12)));
                s(b, " (");
                s(b, r.pick(corpus::CVSS3_TEMPORAL));
                s(b, ")</CVSS3_TEMPORAL>\n        </CVSS3_SCORE>\n");
            }
            if r.pm(200) {
                s(
                    b,
                    "        <VENDOR_REFERENCE_LIST>\n          <VENDOR_REFERENCE>\n            <ID><![CDATA[",
                );
                let start = b.len();
                advisory(b, &mut r);
                let id = String::from_utf8_lossy(&b[start..]).into_owned();
                s(b, "]]></ID>\n            <URL><![CDATA[");
                s(b, r.pick(corpus::VENDOR_SITES));
                s(b, &id);
                s(
                    b,
                    "]]></URL>\n          </VENDOR_REFERENCE>\n        </VENDOR_REFERENCE_LIST>\n",
                );
            }
        }
        if !cves.is_empty() {
            s(b, "        <CVE_ID_LIST>\n");
            for &(year, num) in cves {
                s(b, "          <CVE_ID>\n            <ID><![CDATA[");
                cve(b, year, num);
                s(
                    b,
                    "]]></ID>\n            <URL><![CDATA[http://cve.mitre.org/cgi-bin/cvename.cgi?name=",
                );
                cve(b, year, num);
                s(b, "]]></URL>\n          </CVE_ID>\n");
            }
            s(b, "        </CVE_ID_LIST>\n");
        }
        if n_bid > 0 {
            s(b, "        <BUGTRAQ_ID_LIST>\n");
            for _ in 0..n_bid {
                let id = r.range(10_000, 109_999);
                s(b, "          <BUGTRAQ_ID>\n            <ID><![CDATA[");
                u(b, id);
                s(
                    b,
                    "]]></ID>\n            <URL><![CDATA[http://www.securityfocus.com/bid/",
                );
                u(b, id);
                s(b, "]]></URL>\n          </BUGTRAQ_ID>\n");
            }
            s(b, "        </BUGTRAQ_ID_LIST>\n");
        }
        s(b, "      </VULN_DETAILS>\n");
    }
}

// ---------------------------------------------------------------------------------------
// Glossary text.

/// `<TAG><![CDATA[`, or with the CDATA on its own line (some reports wrap it).
fn cdata_open(b: &mut Vec<u8>, tag: &str, wrapped: bool) {
    s(b, "        <");
    s(b, tag);
    s(
        b,
        if wrapped {
            ">\n          <![CDATA["
        } else {
            "><![CDATA["
        },
    );
}

fn cdata_close(b: &mut Vec<u8>, tag: &str, wrapped: bool) {
    s(b, if wrapped { "]]>\n        </" } else { "]]></" });
    s(b, tag);
    s(b, ">\n");
}

fn cve(b: &mut Vec<u8>, year: u64, num: u64) {
    s(b, "CVE-");
    u(b, year);
    b.push(b'-');
    u(b, num);
}

/// A vendor advisory ID such as `RHSA-2023:1234` or `MS17-010`.
fn advisory(b: &mut Vec<u8>, r: &mut Rng) {
    match r.below(3) {
        0 => {
            s(b, "MS");
            pad2(b, r.range(8, 17));
            b.push(b'-');
            u(b, r.range(100, 199));
        }
        1 => {
            s(b, r.pick(corpus::DISTROS).1);
            b.push(b'-');
            u(b, r.range(2015, 2024));
            b.push(b':');
            u(b, r.range(1000, 9999));
        }
        _ => {
            s(b, "cisco-sa-");
            u(b, r.range(2015, 2024));
            s(b, "-sslvpn");
        }
    }
}

/// Writes a title and returns the product it is about (for THREAT and SOLUTION).
fn title(b: &mut Vec<u8>, r: &mut Rng, kind: Kind, cves: &[(u64, u64)]) -> &'static str {
    if kind == Kind::Ig {
        let t = r.pick(corpus::IG_TITLES);
        s(b, t);
        if r.pm(400) {
            b.push(b' ');
            s(b, r.pick(corpus::IG_QUALIFIERS));
        }
        return t;
    }
    let product = r.pick(corpus::PRODUCTS);
    match r.below(100) {
        0..=29 => {
            s(b, product);
            b.push(b' ');
            s(b, r.pick(corpus::ISSUES));
        }
        30..=54 => {
            let (distro, prefix) = r.pick(corpus::DISTROS);
            let package = r.pick(corpus::PACKAGES);
            s(b, distro);
            b.push(b' ');
            s(b, package);
            s(b, " (");
            s(b, prefix);
            b.push(b'-');
            u(b, r.range(2015, 2024));
            b.push(b':');
            u(b, r.range(1000, 9999));
            b.push(b')');
            return package;
        }
        55..=69 => {
            s(b, "Microsoft Windows Security Update for ");
            s(b, r.pick(corpus::MONTHS));
            b.push(b' ');
            u(b, r.range(2016, 2024));
            return "Microsoft Windows";
        }
        70..=84 => {
            s(b, product);
            s(b, " Prior to ");
            version(b, r);
            b.push(b' ');
            s(b, r.pick(corpus::ISSUES));
        }
        _ => {
            s(b, product);
            b.push(b' ');
            s(b, r.pick(corpus::ISSUES));
            if let Some(&(year, num)) = cves.first() {
                s(b, " (");
                cve(b, year, num);
                b.push(b')');
            } else {
                s(b, " - ");
                s(b, r.pick(corpus::MONTHS));
                b.push(b' ');
                u(b, r.range(2016, 2024));
            }
        }
    }
    product
}

/// THREAT: HTML of varied length (about 50 to 2000 bytes), cut only between fragments.
fn threat(b: &mut Vec<u8>, r: &mut Rng, kind: Kind, product: &str, cves: &[(u64, u64)]) {
    let start = b.len();
    let x = r.unit();
    let target = match kind {
        Kind::Ig => 50 + (350.0 * x) as usize,
        Kind::Vuln => 50 + (1950.0 * x * x) as usize,
    };
    match kind {
        Kind::Ig => s(b, r.pick(corpus::IG_THREATS)),
        Kind::Vuln => match r.below(3) {
            0 => {
                s(b, product);
                s(
                    b,
                    " is prone to multiple vulnerabilities. An attacker can exploit these issues to ",
                );
                s(b, r.pick(corpus::EFFECTS));
                s(b, ".<BR>\n");
            }
            1 => {
                s(b, "A flaw was found in the ");
                s(b, r.pick(corpus::COMPONENTS));
                s(b, " of ");
                s(b, product);
                s(
                    b,
                    "; it doesn't properly validate user-supplied input, which allows remote attackers to ",
                );
                s(b, r.pick(corpus::EFFECTS));
                s(b, " via ");
                s(b, r.pick(corpus::VECTORS));
                s(b, ".<P>\n");
            }
            _ => {
                s(b, "<B>");
                s(b, product);
                s(
                    b,
                    "</B> versions before the fixed release contain a vulnerability in the ",
                );
                s(b, r.pick(corpus::COMPONENTS));
                s(b, " that can be triggered via ");
                s(b, r.pick(corpus::VECTORS));
                s(b, ".<P>\n");
            }
        },
    }
    let mut item = 1;
    while b.len() - start < target {
        let mark = b.len();
        match r.below(if kind == Kind::Ig { 2 } else { 7 }) {
            0 => {
                s(
                    b,
                    "<P>QID Detection Logic (Authenticated):<BR>\nThis QID checks the version of &quot;",
                );
                s(b, r.pick(corpus::WIN_FILES));
                s(b, "&quot; and flags installations older than ");
                version(b, r);
                s(b, ".<P>\n");
            }
            1 => {
                s(b, "<UL><LI>");
                s(b, r.pick(corpus::COMPONENTS));
                s(b, "</LI><LI>");
                s(b, r.pick(corpus::COMPONENTS));
                s(b, "</LI></UL>\n");
            }
            2 | 3 => {
                u(b, item);
                item += 1;
                s(b, ". The ");
                s(b, r.pick(corpus::COMPONENTS));
                s(b, " in ");
                s(b, product);
                s(b, " allows remote attackers to ");
                s(b, r.pick(corpus::EFFECTS));
                s(b, " via ");
                s(b, r.pick(corpus::VECTORS));
                s(b, ".");
                if !cves.is_empty() {
                    let (year, num) = cves[r.below(cves.len() as u64) as usize];
                    s(b, " (");
                    cve(b, year, num);
                    b.push(b')');
                }
                s(b, " <BR>\n");
            }
            4 => {
                s(b, "<P><B>Affected Versions:</B><BR>\n");
                s(b, product);
                s(b, " versions prior to ");
                version(b, r);
                s(b, "<BR>\n");
            }
            5 => {
                s(b, "For more information, see <A HREF=\"");
                s(b, r.pick(corpus::VENDOR_SITES));
                let id_start = b.len();
                advisory(b, r);
                let id = b[id_start..].to_vec();
                s(b, "\" TARGET=\"_blank\">");
                b.extend_from_slice(&id);
                s(b, "</A>.<BR>\n");
            }
            _ => {
                s(
                    b,
                    "<P>Input such as &amp;lt;script&amp;gt;alert(1)&amp;lt;/script&amp;gt; is reflected \
                     without encoding; the &lt;form&gt; element's &quot;action&quot; attribute isn't \
                     validated &amp; cookies aren't marked HttpOnly.\n",
                );
            }
        }
        if b.len() - start > 2000 {
            b.truncate(mark);
            break;
        }
    }
}

fn solution(b: &mut Vec<u8>, r: &mut Rng, product: &str) {
    if r.pm(200) {
        s(
            b,
            "Workaround:<BR>\nDisable the affected service &amp; restrict access to the port with a firewall.<P>\n",
        );
    }
    s(b, "Customers are advised to upgrade to ");
    s(b, product);
    b.push(b' ');
    version(b, r);
    s(
        b,
        " or later to remediate these vulnerabilities.\n<P>Patch:<BR>\n\
         Following are links for downloading patches to fix the vulnerabilities:\n<P> <A HREF=\"",
    );
    s(b, r.pick(corpus::VENDOR_SITES));
    let id_start = b.len();
    advisory(b, r);
    let id = b[id_start..].to_vec();
    s(b, "\" TARGET=\"_blank\">");
    b.extend_from_slice(&id);
    s(b, "</A>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        let mut b = Vec::new();
        datetime(&mut b, 0);
        b.push(b' ');
        datetime(&mut b, 1_717_400_000);
        b.push(b' ');
        datetime(&mut b, 951_782_400); // 2000-02-29
        assert_eq!(
            String::from_utf8(b).unwrap(),
            "1970-01-01T00:00:00Z 2024-06-03T07:33:20Z 2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn pool_qids_ascend_and_draws_stay_in_pool() {
        for n in [1u64, 2, 3, 5, 7, 20, 1000, 20_000, 1_000_000] {
            let pool = Pool::new(9, n);
            let mut prev = 0;
            for k in 0..n.min(5000) {
                let q = pool.qid(k);
                assert!(q > prev || k == 0, "n={n} k={k}");
                prev = q;
            }
            let mut r = Rng::new(1, 2, 3);
            for _ in 0..2000 {
                for kind in [Kind::Ig, Kind::Vuln] {
                    assert!(pool.draw(kind, &mut r) < n, "n={n}");
                }
            }
        }
    }
}
