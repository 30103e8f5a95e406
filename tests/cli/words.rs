//! Words for what happened, and secrets in server text: what the operator reads when
//! Qualys answers with something other than the report (qualys.md §3, §5), each kind
//! named with what the connector needs; server text escaped to one line; every
//! configured secret a server echoes redacted from stdout, stderr, the log file and the
//! JSON summary; and a transfer that only looks complete is fetched again.

use base64::Engine as _;
use qualys_connector_sim::qualys::{InjectedBody, ServerOptions, TemplateSource};

use crate::download::{PASSWORD, USER, qualys, yaml};
use crate::harness::{Outcome, Test, example, shared_fixture};

const NEEDED: &str = "the connector needs the ASSET_DATA_REPORT of a scan report template, in XML";

fn inject_body(
    status: u16,
    body: impl Into<Vec<u8>>,
    action: Option<&str>,
) -> Option<InjectedBody> {
    Some(InjectedBody {
        status,
        body: body.into(),
        calls: 100,
        action: action.map(str::to_string),
    })
}

fn simple_return(code: Option<&str>, text: &str) -> String {
    let code = code
        .map(|c| format!("<CODE>{c}</CODE>"))
        .unwrap_or_default();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<SIMPLE_RETURN>\n <RESPONSE>\n  <DATETIME>2026-01-01T00:00:00Z</DATETIME>\n  {code}\n  <TEXT>{text}</TEXT>\n  <ITEM_LIST><ITEM><KEY>ID</KEY><VALUE>4242</VALUE></ITEM></ITEM_LIST>\n </RESPONSE>\n</SIMPLE_RETURN>\n"
    )
}

fn run(
    server: &qualys_connector_sim::qualys::QualysServer,
    extra: &str,
    args: &[&str],
) -> (Test, Outcome) {
    let mut all = vec!["-csvfile=Output.csv"];
    all.extend_from_slice(args);
    let t = Test::new().config(&yaml(server, extra)).args(&all);
    let out = t.run();
    (t, out)
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// Qualys echoes the password and the Basic token in an error TEXT: at level 3 neither
/// reaches stdout, stderr, the log file or the JSON summary; `<redacted>` does.
#[test]
fn echoed_password_and_basic_token_are_redacted_everywhere() {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let text = xml_escape(&format!(
        "Bad request from {USER} with password {PASSWORD} (Authorization: Basic {token})"
    ));
    let server =
        qualys(|o| o.inject_body = inject_body(400, simple_return(Some("1905"), &text), None));
    for args in [
        &["-level=3", "-logfile=run.log", "-summary-json=summary.json"][..],
        &["-level=3", "-summary-json=summary.json"][..],
    ] {
        let (t, out) = run(&server, "", args);
        out.assert_code(6).assert_output_contains("<redacted>");
        let log = if t.exists("run.log") {
            t.read("run.log")
        } else {
            String::new()
        };
        let summary = t.read("summary.json");
        assert!(summary.contains("<redacted>"), "{summary}");
        for (name, text) in [
            ("stdout", &out.stdout),
            ("stderr", &out.stderr),
            ("log", &log),
            ("summary", &summary),
        ] {
            assert!(
                !text.contains("p@n&c"),
                "{name} holds the password:\n{text}"
            );
            assert!(
                !text.contains(&token),
                "{name} holds the Basic token:\n{text}"
            );
        }
        if args.contains(&"-logfile=run.log") {
            assert!(
                log.contains("password <redacted> (Authorization: Basic <redacted>)"),
                "{log}"
            );
        }
    }
}

/// A real EU bad login is HTTP 401 with CODE 2000: the bad-login hint, with the platform.
#[test]
fn eu_bad_login_gets_the_login_hint() {
    let server = qualys(|o| {
        o.inject_body = inject_body(401, simple_return(Some("2000"), "Bad Login/Password"), None);
    });
    run(&server, "", &[])
        .1
        .assert_code(6)
        .assert_output_contains("CODE 2000: Bad Login/Password")
        .assert_output_contains("single quotes")
        .assert_output_contains("check that url names your account's platform");
    // A 401 keeps its hint whatever CODE its document has.
    let server = qualys(|o| {
        o.inject_body = inject_body(401, simple_return(Some("4711"), "Access refused"), None);
    });
    run(&server, "", &[])
        .1
        .assert_code(6)
        .assert_output_contains("CODE 4711")
        .assert_output_contains("check user_id and password");
}

/// After the 409 retries run out: the limits were hit, and when to run again.
#[test]
fn exhausted_rate_limit_says_when_to_run_again() {
    let server = qualys(|o| {
        o.rate_limit_first = 100;
        o.to_wait_sec = 1;
    });
    let (_t, out) = run(&server, "qualys_retries: 1\n", &[]);
    out.assert_code(6)
        .assert_output_contains("CODE 1965")
        .assert_output_contains(
            "API rate limit was reached (CODE 1965) (it allows 300 calls per 3600 s)",
        )
        .assert_output_contains("Qualys asked to wait 1 s: run again after that");
    assert!(
        !out.output().contains("check template_id and api_path"),
        "{}",
        out.output()
    );
}

const WAS: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<WAS_SCAN_REPORT><HEADER><NAME>Web Application Scan Report</NAME></HEADER></WAS_SCAN_REPORT>\n";
const SCAN_LIST: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<SCAN_LIST_OUTPUT><RESPONSE><DATETIME>2026-01-01T00:00:00Z</DATETIME><SCAN_LIST><SCAN><REF>scan/1.2</REF></SCAN></SCAN_LIST></RESPONSE></SCAN_LIST_OUTPUT>\n";
const SCAN_ERROR: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<SCAN value=\"scan/1\">\n<ERROR number=\"19001\">Scan not found</ERROR>\n</SCAN>\n";

/// Each Qualys document that is not the report, given with -report: named, with what
/// the connector needs; exit 3, nothing written.
#[test]
fn other_qualys_documents_are_named_with_what_is_needed() {
    let host_list =
        shared_fixture("detection/host_list_ids.xml").map(|p| std::fs::read_to_string(p).unwrap());
    if host_list.is_none() {
        println!(
            "SKIP: ../shared/fixtures/qualys/detection/host_list_ids.xml absent (HOST_LIST_OUTPUT case)"
        );
    }
    let mut cases: Vec<(&str, String, &[&str])> = vec![
        (
            "New report launched",
            simple_return(None, "New report launched"),
            &[
                "a Qualys API reply, not a report: SIMPLE_RETURN: New report launched (4242)",
                NEEDED,
            ],
        ),
        (
            "WAS",
            WAS.into(),
            &[
                "WAS_SCAN_REPORT is a web application scan (WAS) report",
                NEEDED,
            ],
        ),
        (
            "SCAN_LIST_OUTPUT",
            SCAN_LIST.into(),
            &["SCAN_LIST_OUTPUT is a list of scans", NEEDED],
        ),
        (
            "SCAN ERROR",
            SCAN_ERROR.into(),
            &["Qualys returned an error instead of a report: SCAN ERROR 19001: Scan not found"],
        ),
    ];
    if let Some(doc) = host_list {
        cases.push((
            "HOST_LIST_OUTPUT",
            doc,
            &["HOST_LIST_OUTPUT is a host list", NEEDED],
        ));
    }
    for (name, doc, wants) in cases {
        let t = Test::new()
            .config("add_host: n\n")
            .file("report.xml", &doc)
            .args(&["-report=report.xml", "-csvfile=Output.csv"]);
        check(name, &t, &t.run(), 3, wants, "not a Qualys report");
    }
}

/// Exit `code`, every one of `wants` said, `never` not, no CSV written.
fn check(name: &str, t: &Test, out: &Outcome, code: i32, wants: &[&str], never: &str) {
    assert_eq!(out.code, code, "{name}: {}", out.output());
    for want in wants {
        assert!(
            out.output().contains(want),
            "{name}: lacks {want:?}\n{}",
            out.output()
        );
    }
    assert!(!out.output().contains(never), "{name}: {}", out.output());
    assert!(!t.exists("Output.csv"), "{name}");
}

/// The same documents as the answer to the fetch: named as such, never "an error".
#[test]
fn other_documents_as_the_download_are_named() {
    let cases: [(&str, String, i32, &[&str]); 3] = [
        (
            "New report launched",
            simple_return(None, "New report launched"),
            6,
            &[
                "an API reply instead of the report (SIMPLE_RETURN: New report launched (4242))",
                NEEDED,
            ],
        ),
        (
            "WAS",
            WAS.into(),
            3,
            &[
                "WAS_SCAN_REPORT is a web application scan (WAS) report",
                NEEDED,
            ],
        ),
        (
            "SCAN ERROR",
            SCAN_ERROR.into(),
            6,
            &["Qualys answered fetch with SCAN ERROR 19001: Scan not found"],
        ),
    ];
    for (name, doc, code, wants) in cases {
        let server = qualys(|o| o.inject_body = inject_body(200, doc.clone(), Some("fetch")));
        let (t, out) = run(&server, "", &[]);
        check(name, &t, &out, code, wants, "Qualys returned an error");
    }
}

/// Newlines, NUL and 0xFF in a Qualys error TEXT: one escaped line, no forged record.
#[test]
fn control_characters_in_a_qualys_error_are_one_escaped_line() {
    let mut body = b"<SIMPLE_RETURN><RESPONSE><CODE>999</CODE><TEXT>first\n2026-01-01T00:00:00Z [INFO] forged\x00 nul \xFF end</TEXT></RESPONSE></SIMPLE_RETURN>\n".to_vec();
    let server = qualys(|o| o.inject_body = inject_body(200, std::mem::take(&mut body), None));
    let (_t, out) = run(&server, "", &[]);
    out.assert_code(6).assert_output_contains(
        "CODE 999: first 2026-01-01T00:00:00Z [INFO] forged\\u{0} nul \u{FFFD} end",
    );
    let output = out.output();
    assert!(!output.contains('\0'), "{output:?}");
    assert!(
        !output
            .lines()
            .any(|l| l.starts_with("2026-01-01T00:00:00Z [INFO] forged")),
        "{output}"
    );
    // The same document given with -report.
    let doc = b"<SIMPLE_RETURN><RESPONSE><CODE>999</CODE><TEXT>first\x00\xFF end</TEXT></RESPONSE></SIMPLE_RETURN>\n";
    let t = Test::new()
        .config("add_host: n\n")
        .file("report.xml", doc)
        .args(&["-report=report.xml", "-csvfile=Output.csv"]);
    let out = t.run();
    out.assert_code(3)
        .assert_output_contains("CODE 999: first\\u{0}\u{FFFD} end");
    assert!(!out.output().contains('\0'));
}

/// A transfer cut right after a CDATA holding `</ASSET_DATA_REPORT>` ends like a whole
/// report: the parser's end of document finds it cut, the report is fetched again, and
/// the commands are those of -report of the whole file.
#[test]
fn a_cut_that_looks_complete_is_fetched_again() {
    let original = std::fs::read_to_string(example("report.xml")).unwrap();
    let doc = original.replacen(
        "<![CDATA[Example Corp]]>",
        "<![CDATA[Example Corp </ASSET_DATA_REPORT>]]>",
        1,
    );
    assert_ne!(doc, original);
    let reference = Test::new()
        .config("add_host: y\n")
        .file("cdata.xml", &doc)
        .args(&["-report=cdata.xml", "-csvfile=Output.csv"]);
    reference.run().assert_code(0);

    let scratch = Test::new().file("cdata.xml", &doc);
    let server = qualys(|o: &mut ServerOptions| {
        o.templates = vec![(
            "424242".into(),
            TemplateSource::File(scratch.path("cdata.xml")),
        )];
        o.cut_body_after = Some(b"</ASSET_DATA_REPORT>".to_vec());
    });
    let (t, out) = run(&server, "", &[]);
    out.assert_code(0)
        .assert_output_contains("the report is incomplete")
        .assert_output_contains("fetching again");
    assert_eq!(t.read("Output.csv"), reference.read("Output.csv"));
}
