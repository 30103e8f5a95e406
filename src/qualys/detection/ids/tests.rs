//! The Host List's ID set: the real answers and made-up ones.

use super::*;

fn ids(doc: &[u8]) -> (Result<IdsSummary, DocError>, Vec<IdRange>) {
    let mut out = Vec::new();
    let r = parse(doc, &mut |r| {
        out.push(r);
        Ok(())
    });
    (r, out)
}

#[test]
fn real_and_made_up_id_sets() {
    let dir = std::path::Path::new("../shared/fixtures/qualys/detection");
    if dir.exists() {
        let (s, got) = ids(&std::fs::read(dir.join("host_list_ids.xml")).unwrap());
        assert_eq!(s.unwrap().ids, 1);
        assert_eq!(
            got,
            vec![IdRange {
                first: 107800671,
                last: 107800671
            }]
        );
        let (s, got) = ids(&std::fs::read(dir.join("host_list_ids_none.xml")).unwrap());
        assert_eq!((s.unwrap().ids, got.len()), (0, 0));
    } else {
        println!("SKIP: {} is absent", dir.display());
    }
    let doc = "<HOST_LIST_OUTPUT><RESPONSE><DATETIME>x</DATETIME><ID_SET><ID>5</ID>\
        <ID_RANGE>10-19</ID_RANGE><ID_RANGE>9-1</ID_RANGE><ID>z</ID></ID_SET></RESPONSE></HOST_LIST_OUTPUT>";
    let (s, got) = ids(doc.as_bytes());
    let s = s.unwrap();
    assert_eq!(
        got,
        vec![
            IdRange { first: 5, last: 5 },
            IdRange {
                first: 10,
                last: 19
            }
        ]
    );
    assert_eq!((s.ids, s.ranges, s.bad), (11, 2, 2));
}
