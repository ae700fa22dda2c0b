//! Command line → one call → exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = visawatch::cli::Cli::parse();
    // The service logs every check and alert; one-shot commands only problems.
    let default_level = match cli.command {
        visawatch::cli::Command::Daemon => "info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("VISAWATCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level))
        // lettre's debug lines carry the SMTP conversation: AUTH and message bodies.
        .add_directive("lettre=info".parse().expect("static directive"));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match cli.log_format {
        visawatch::cli::LogFormat::Json => logs.json().init(),
        visawatch::cli::LogFormat::Text => logs.init(),
    }
    // Extraction runs on the blocking pool: one thread per core is all it
    // can use, and every extra thread keeps its own malloc arena (memory).
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(cores + 2)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("visawatch: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(visawatch::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("visawatch: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
