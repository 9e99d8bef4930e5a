//! `plastic completions SHELL`: completion scripts generated from the command line's own
//! definition, so they never fall behind it.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use clap_complete::Shell;

#[derive(Debug, Args, Clone)]
#[command(
    after_help = "Examples:\n  plastic completions bash > ~/.local/share/bash-completion/completions/plastic\n  plastic completions zsh > ~/.zfunc/_plastic\n  plastic completions fish > ~/.config/fish/completions/plastic.fish"
)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell
    pub shell: Shell,
}

/// Writes the completion script for `command` (the whole command line) to standard output.
pub fn run(args: CompletionsArgs, mut command: clap::Command) -> Result<ExitCode> {
    clap_complete::generate(args.shell, &mut command, "plastic", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
