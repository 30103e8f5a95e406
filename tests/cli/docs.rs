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

/// Rewrites the README's generated tables from the code:
/// `cargo test --test cli regenerate_readme_tables -- --ignored`.
#[test]
#[ignore = "rewrites README.md; run by hand after changing options or exit codes"]
fn regenerate_readme_tables() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let mut readme = std::fs::read_to_string(path).expect("README.md");
    for (begin, end, table) in [
        (
            "<!-- options:begin -->",
            "<!-- options:end -->",
            qualys_connector::cli::option_table_markdown(),
        ),
        (
            "<!-- exit-codes:begin -->",
            "<!-- exit-codes:end -->",
            qualys_connector::exit::markdown_table(),
        ),
    ] {
        let start = readme.find(begin).expect("begin marker") + begin.len();
        let stop = readme.find(end).expect("end marker");
        readme.replace_range(start..stop, &format!("\n{table}"));
    }
    std::fs::write(path, readme).expect("write README.md");
}
