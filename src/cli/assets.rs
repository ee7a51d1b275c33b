//! `hapwatch generate-assets DIR` (hidden): the man page and shell
//! completions, generated from the clap definitions for the .deb.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::CommandFactory as _;

#[derive(clap::Args, Debug)]
pub struct AssetsArgs {
    /// Where to write the man pages and the bash, zsh and fish completions.
    pub dir: PathBuf,
}

pub fn run(args: AssetsArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let mut cmd = super::Cli::command();
    // hapwatch.1 and a page per subcommand (hapwatch-serve.1, …), which it names.
    clap_mangen::generate_to(cmd.clone(), &args.dir).context("man pages")?;
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        clap_complete::generate_to(shell, &mut cmd, "hapwatch", &args.dir)
            .with_context(|| format!("{shell} completions"))?;
    }
    Ok(ExitCode::SUCCESS)
}
