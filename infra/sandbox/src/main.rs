//! `hmsync-sandbox`: the HubSpot and MailerLite simulators on local ports until Ctrl-C. The
//! command lives in the library (`hmsync_sandbox::cli`) so `hmsync sandbox` can reuse it.

use std::process::ExitCode;

use clap::Parser;
use hmsync_sandbox::cli::{Args, run};

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hmsync-sandbox: {e}");
            ExitCode::FAILURE
        }
    }
}
