//! The `scimd` binary: parse the command line and hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    quiet_on_a_closed_pipe();
    scimd::cli::run(scimd::cli::Cli::parse())
}

/// `scimd audit | head -1`: a reader that stops reading is not a failure of scimd. Rust's
/// print macros panic when standard output is a closed pipe; that panic ends the process
/// as a closed pipe ends a C program, with no message (exit 141: 128 + SIGPIPE).
fn quiet_on_a_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = match info.payload().downcast_ref::<String>() {
            Some(m) => m.as_str(),
            None => info.payload().downcast_ref::<&str>().copied().unwrap_or(""),
        };
        if message.starts_with("failed printing to std") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
