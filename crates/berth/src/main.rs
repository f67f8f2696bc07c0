//! `berth`: parses the command line, calls one library function per verb,
//! prints the result. Engine errors exit 125 with one line `berth: ...`,
//! as Docker does; a closed stdout (`berth images | head -1`) exits quietly.

mod cli;
mod commands;
mod output;

use std::io;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

use cli::Cli;

/// Docker's exit status for an error of the engine itself.
const ENGINE_ERROR: u8 = 125;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(ENGINE_ERROR),
            };
        }
    };
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {}", sys::error::one_line(e.as_ref()));
            ExitCode::from(ENGINE_ERROR)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .map(|io| io.kind())
            .or_else(|| {
                c.downcast_ref::<serde_json::Error>()
                    .and_then(|j| j.io_error_kind())
            })
            == Some(io::ErrorKind::BrokenPipe)
    })
}
