//! The `qualys-connector` binary: everything happens in `qualys_connector::run`.

fn main() {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let code = qualys_connector::run::main(&argv);
    #[allow(clippy::exit)] // the one place the process exits, with the documented code
    std::process::exit(code);
}
