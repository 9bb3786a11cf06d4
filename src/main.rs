//! The `revenant` binary: all the work is in the library (`revenant::cli`).

fn main() {
    // Users see what went wrong and what to do; locations and backtraces only on request (RUST_LIB_BACKTRACE=1).
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: set before any other thread exists.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    // Colours only on a terminal and without NO_COLOR (files and pipes get plain text).
    revenant::cli::install_error_hook();
    let code = match revenant::cli::main_with_args(std::env::args().collect()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:?}");
            revenant::cli::exit::REFUSED
        }
    };
    std::process::exit(code);
}
