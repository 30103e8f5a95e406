//! Which FMC data a state row describes. Two runs share state only when they send the
//! same source's results for the same scope to the same FMC: its address and port, and
//! the SHA-256 of the FMC's CA certificate in the `.pkcs12` file (a client re-enrolled on
//! the same FMC keeps its state: the FMC's data did not change; another FMC never reuses
//! it, even at the same address).

use ring::digest;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// `host:port` as given (`-server`, `-port`).
    pub fmc: String,
    /// Lower-case hex SHA-256 of the DER CA certificate.
    pub ca_sha256: String,
    /// The Host Input source name (`source`).
    pub source: String,
    /// What the data covers: `template <id>`, or `report file` for `-report` without a
    /// template.
    pub scope: String,
}

impl Destination {
    pub fn new(server: &str, port: u16, ca_der: &[u8], source: &str, scope: String) -> Destination {
        let hash = digest::digest(&digest::SHA256, ca_der);
        Destination {
            fmc: format!("{server}:{port}"),
            ca_sha256: hash.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
            source: source.to_string(),
            scope,
        }
    }

    /// The scope of a report template's data.
    pub fn template_scope(template: Option<&str>) -> String {
        match template {
            Some(id) if !id.is_empty() => format!("template {id}"),
            _ => "report file".into(),
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FMC {} (CA sha256 {}…), source {}, {}",
            self.fmc,
            &self.ca_sha256[..self.ca_sha256.len().min(16)],
            self.source,
            self.scope
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_of_the_identity_counts() {
        let base = Destination::new("10.0.0.1", 8307, b"ca", "QualysGuard", "template 1".into());
        let others = [
            Destination::new("10.0.0.2", 8307, b"ca", "QualysGuard", "template 1".into()),
            Destination::new("10.0.0.1", 8308, b"ca", "QualysGuard", "template 1".into()),
            Destination::new(
                "10.0.0.1",
                8307,
                b"other ca",
                "QualysGuard",
                "template 1".into(),
            ),
            Destination::new("10.0.0.1", 8307, b"ca", "Qualys EU", "template 1".into()),
            Destination::new("10.0.0.1", 8307, b"ca", "QualysGuard", "template 2".into()),
        ];
        for other in others {
            assert_ne!(other, base);
        }
        assert_eq!(base.ca_sha256.len(), 64);
        assert_eq!(
            Destination::template_scope(Some("424242")),
            "template 424242"
        );
        assert_eq!(Destination::template_scope(None), "report file");
    }
}
