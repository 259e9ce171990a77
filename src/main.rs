//! The `scimd` binary: parse the command line and hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    scimd::cli::run(scimd::cli::Cli::parse())
}
