//! mailroom: SMTP, POP3 and IMAP over one durable store, in one binary.
//! This crate is the binary: command line, config, wiring and shutdown.
#![forbid(unsafe_code)]

mod cli;
mod cluster_presence;
mod commands;
mod config;
mod datadir;
mod health;
mod serve;
mod shared;
mod shared_throttle;
mod srskey;
mod transfer;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Before anything is created: the data directory is private (SPEC 6).
    datadir::restrict_umask();
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help and --version are successes; anything else is a usage
            // error, which exits 1 like every other failure.
            let _ = e.print();
            if !e.use_stderr() {
                return ExitCode::SUCCESS;
            }
            // The parse failed, so the subcommand is not known from clap:
            // an LDA called with bad arguments exits EX_USAGE.
            let deliver = std::env::args().skip(1).any(|a| a == "deliver");
            return ExitCode::from(if deliver {
                cli::exit::USAGE
            } else {
                cli::exit::FAILURE
            });
        }
    };
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // Not eprintln!: it panics when stderr is closed.
            let _ = writeln!(std::io::stderr(), "mailroom: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
