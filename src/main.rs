//! The `hapwatch` binary: parses the command line and reports errors; the
//! program itself is the library's `cli`.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    // reqwest is built without a TLS provider of its own: ring, as lettre uses.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = hapwatch::cli::Cli::parse();
    match hapwatch::cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            // The binary's edge: the whole cause chain, each cause once (typed
            // errors already say their source in their own message).
            let mut text = e.to_string();
            for cause in e.chain().skip(1) {
                let cause = cause.to_string();
                if !text.ends_with(&cause) {
                    text += &format!(": {cause}");
                }
            }
            eprintln!("hapwatch: {text}");
            std::process::ExitCode::from(2)
        }
    }
}
