//! The `scimd` binary: parse the command line and hand over to the library.

use clap::Parser;

/// jemalloc rather than glibc's malloc: a write's memory is allocated on an HTTP thread and
/// freed on the writer's, which glibc pays for in arena locks and consolidation (BENCHMARKS.md,
/// seventeenth section). SQLite keeps glibc's (the crate's symbols are prefixed). Built
/// with its background thread on (`Cargo.toml`), which returns freed memory to the system
/// within seconds even when nothing else allocates.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
