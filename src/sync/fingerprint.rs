//! A host's fingerprint: SHA-256 of exactly the command lines that would be sent for it
//! (`AddHost`, every `AddScanResult`, the commit), with the `AddScanResult` lines sorted,
//! so that anything that matters to the FMC changes it (a new, fixed or changed finding;
//! `include_types`, `description_length`, `scan_mode`, `add_host`) and a mere reordering
//! of the report does not.

use ring::digest;

/// Changes when the way hosts are fingerprinted changes, so old fingerprints never match.
const VERSION: &[u8] = b"qualys-connector host fingerprint 1\n";

/// The fingerprint of one host's command block (lines ending in `\n`).
pub type Fingerprint = [u8; 32];

/// Fingerprints a host's block of command lines.
pub fn of_block(block: &[u8]) -> Fingerprint {
    let mut lines: Vec<&[u8]> = block
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    // Only the result lines are reordered: AddHost comes first and the commit last in
    // every block the pipeline writes, and those keep their places.
    let results = |l: &&[u8]| l.starts_with(b"AddScanResult,");
    let first = lines.iter().position(results).unwrap_or(lines.len());
    let end = lines.iter().rposition(results).map_or(first, |i| i + 1);
    lines[first..end].sort_unstable();
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(VERSION);
    for line in lines {
        ctx.update(line);
        ctx.update(b"\n");
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Lower-case hex, for logs and tests.
pub fn hex(fp: &Fingerprint) -> String {
    fp.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "AddHost,192.0.2.1\n\
        AddScanResult,192.0.2.1,\"QualysGuard\",1,,,\"a\",\"\",\"cve_ids: \",\"bugtraq_ids: \"\n\
        AddScanResult,192.0.2.1,\"QualysGuard\",2,443,6,\"b\",\"\",\"cve_ids: \",\"bugtraq_ids: \"\n\
        ScanFlush\n";

    #[test]
    fn what_changes_the_fingerprint_and_what_does_not() {
        let base = of_block(HOST.as_bytes());
        let reordered = "AddHost,192.0.2.1\n\
            AddScanResult,192.0.2.1,\"QualysGuard\",2,443,6,\"b\",\"\",\"cve_ids: \",\"bugtraq_ids: \"\n\
            AddScanResult,192.0.2.1,\"QualysGuard\",1,,,\"a\",\"\",\"cve_ids: \",\"bugtraq_ids: \"\n\
            ScanFlush\n";
        assert_eq!(of_block(reordered.as_bytes()), base, "order of findings");
        // Table: (change, block): every one must give another fingerprint.
        let cases = [
            ("scan_mode", HOST.replace("ScanFlush", "ScanUpdate")),
            ("add_host", HOST.replace("AddHost,192.0.2.1\n", "")),
            ("a fixed finding", HOST.replace("AddScanResult,192.0.2.1,\"QualysGuard\",1,,,\"a\",\"\",\"cve_ids: \",\"bugtraq_ids: \"\n", "")),
            ("a port", HOST.replace(",443,6,", ",8443,6,")),
            ("a title", HOST.replace("\"b\"", "\"B\"")),
            ("a CVE", HOST.replace(",2,443,6,\"b\",\"\",\"cve_ids: \"", ",2,443,6,\"b\",\"\",\"cve_ids: CVE-2024-1\"")),
            ("the address", HOST.replace("192.0.2.1", "192.0.2.2")),
        ];
        for (what, block) in cases {
            assert_ne!(of_block(block.as_bytes()), base, "{what}");
        }
        assert_eq!(hex(&base).len(), 64);
    }
}
