//! Command line → one call → exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use visawatch::cli::Exit;

fn main() -> ExitCode {
    let cli = visawatch::cli::Cli::parse();
    // `visawatch history ID | head`: the reader leaving early is not a
    // crash. print! panics on a closed stdout; end quietly instead.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !closed_stdout(info.payload()) {
            default_hook(info);
        }
    }));
    // The service logs every check and alert; one-shot commands only problems.
    let default_level = match cli.command {
        visawatch::cli::Command::Daemon | visawatch::cli::Command::Serve => "info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("VISAWATCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level))
        // lettre's debug lines carry the SMTP conversation: AUTH and message bodies.
        .add_directive("lettre=info".parse().expect("static directive"));
    // Colours only for a person at a terminal (journald and pipes get plain
    // text), and never when NO_COLOR is set (no-color.org).
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let logs = tracing_subscriber::fmt()
        .with_writer(|| visawatch::report::LogWriter)
        .with_ansi(colour)
        .with_env_filter(filter);
    match cli.log_format {
        visawatch::cli::LogFormat::Json => logs.json().init(),
        visawatch::cli::LogFormat::Text => logs.init(),
    }
    // Extraction runs on the blocking pool: one thread per core is all it
    // can use, and every extra thread keeps its own malloc arena (memory).
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    visawatch::memory::one_arena_per_core(cores);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(cores + 2)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("visawatch: cannot start the runtime: {e}");
            return Exit::Usage.into();
        }
    };
    // The command runs as a task on the workers, not on this thread: the
    // checks it spawns then wake it on their own thread instead of across
    // threads (an unchanged round of 1,000 sources: 1,300 context switches
    // instead of 2,000).
    let command = runtime.block_on(async { tokio::spawn(visawatch::cli::run(cli)).await });
    let result = match command {
        Ok(result) => result,
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            if closed_stdout(&*payload) {
                return ExitCode::SUCCESS;
            }
            std::panic::resume_unwind(payload)
        }
        Err(e) => Err(anyhow::anyhow!("the command was cancelled: {e}")),
    };
    match result {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("visawatch: error: {e:#}");
            Exit::Usage.into()
        }
    }
}

/// Whether a panic is print!'s on a stdout whose reader went away.
fn closed_stdout(payload: &(dyn std::any::Any + Send)) -> bool {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    message.starts_with("failed printing to stdout") && message.contains("Broken pipe")
}
