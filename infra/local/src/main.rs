//! The `hmsync` command. `hmsync demo` is the quickest way to watch a sync happen.

use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "hmsync", version, about = "Two-way contact sync between HubSpot and MailerLite")]
enum Command {
    /// Simulated HubSpot and MailerLite with generated contacts, a demo connection synced at once,
    /// and the status page.
    Demo(hmsync::demo::DemoArgs),
    /// The config API, status page, webhooks, worker and schedule against real HubSpot and
    /// MailerLite (or `hmsync sandbox`).
    Serve(hmsync::serve::ServeArgs),
    /// A read-only check of the connections in a data dir against the real HubSpot and
    /// MailerLite accounts: credentials, scopes, webhooks, fields, rate limits, the public URL.
    /// Exit code 1 when a finding is an error.
    Doctor(hmsync::doctor::DoctorArgs),
    /// Only the two simulators, for testing your own integrations.
    Sandbox(hmsync_sandbox::cli::Args),
    /// The benchmark: request counts, sync time against the rate-limit bound, latencies, cold starts.
    Bench(hmsync::bench::BenchArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    match Command::parse() {
        Command::Demo(args) => hmsync::demo::run(args).await?,
        Command::Serve(args) => hmsync::serve::run(args).await?,
        Command::Doctor(args) => {
            let ok = hmsync::doctor::run(args).await?;
            return Ok(if ok { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE });
        }
        Command::Sandbox(args) => hmsync_sandbox::cli::run(args).await?,
        Command::Bench(args) => hmsync::bench::run(args).await?,
    }
    Ok(std::process::ExitCode::SUCCESS)
}
