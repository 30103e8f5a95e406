//! The connector against the ways a server may put its messages on the wire
//! (host-input.md §2, §6): header and value in records of their own (fmc-sim's
//! default), cut at random byte positions (`split_writes`), over TLS 1.2 only
//! (`tls12_only`), and both. Every delivery must give the map of the default server.

use qualys_connector_sim::fmc::{EnrollOptions, NetworkMap, ServerOptions};
use qualys_connector_sim::qualys::{GenSpec, generate};

use crate::fmc::{Fmc, map_findings, send};
use crate::harness::{Test, example};

fn deliver(report: &std::path::Path, configure: impl FnOnce(&mut ServerOptions)) -> NetworkMap {
    let mut fmc = Fmc::start(configure);
    let test = Test::new().config("add_host: y\n");
    fmc.enroll_into(&test, "CertFile.pkcs12", &EnrollOptions::default());
    let (_t, out) = send(test, &fmc, report, &[]);
    out.assert_code(0)
        .assert_output_contains("findings confirmed");
    fmc.stop()
}

#[test]
fn split_writes_and_tls_1_2_deliver_the_same_map() {
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("generated.xml");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&generated).unwrap());
    generate(
        &GenSpec {
            hosts: 300,
            seed: 21,
            ..GenSpec::default()
        },
        &mut file,
    )
    .unwrap();
    drop(file);
    // (report, max_size): the small fixture in one block, the generated one in many.
    let reports = [(example("report.xml"), 524_288), (generated, 8000)];
    for (report, max_size) in &reports {
        let reference = map_findings(&deliver(report, |o| o.max_size = *max_size));
        assert!(!reference.is_empty());
        let variants: [(bool, bool); 3] = [(true, false), (false, true), (true, true)];
        for (split, tls12) in variants {
            let map = deliver(report, |o| {
                o.max_size = *max_size;
                o.split_writes = split;
                o.tls12_only = tls12;
            });
            assert_eq!(
                map_findings(&map),
                reference,
                "split_writes {split}, tls12_only {tls12}, {}",
                report.display()
            );
        }
    }
}
