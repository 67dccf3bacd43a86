//! The `papermap` binary: parse arguments, run, print one error and exit
//! with a status code. All logic lives in the library and `cli`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::args::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("papermap: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
