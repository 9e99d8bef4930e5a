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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn scripts_for_bash_zsh_and_fish_know_every_subcommand() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut crate::args::Cli::command(), "plastic", &mut out);
            let script = String::from_utf8(out).unwrap();
            for sub in [
                "eval",
                "board",
                "completions",
                "fs",
                "--broker",
                "--board-listen",
            ] {
                assert!(script.contains(sub), "{shell}: no `{sub}` in the script");
            }
        }
    }
}
