//! The README's tables are generated from the code's single sources; these tests keep the
//! two identical, so documentation cannot drift from behaviour.

fn readme_section(begin: &str, end: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find(begin)
        .unwrap_or_else(|| panic!("README lacks {begin}"))
        + begin.len();
    let stop = readme
        .find(end)
        .unwrap_or_else(|| panic!("README lacks {end}"));
    readme[start..stop].trim_start_matches('\n').to_string()
}

#[test]
fn readme_option_table_matches_the_parser() {
    assert_eq!(
        readme_section("<!-- options:begin -->", "<!-- options:end -->"),
        qualys_connector::cli::option_table_markdown()
    );
}

#[test]
fn readme_exit_codes_match_the_code() {
    assert_eq!(
        readme_section("<!-- exit-codes:begin -->", "<!-- exit-codes:end -->"),
        qualys_connector::exit::markdown_table()
    );
}
