//! The `berth` command. All work happens in the library; `cli/` parses and prints.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
