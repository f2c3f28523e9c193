//! `streamer`: one process per browser connection (see `docs/ipc.md`).
//!
//! stdin carries `ToStreamer` IPC frames, stdout `FromStreamer` frames and nothing else; logs go to
//! stderr through `tracing` (the web-server re-emits them under the session key; `RUST_LOG`
//! filters). The exit code says why the session ended ([`session::exit`]). The process exits as
//! soon as `Ended` is flushed: ending a stream = ending a process, which frees everything.

#![forbid(unsafe_code)]

mod annexb;
mod input;
mod session;
mod webrtc;
mod wolf;
mod writer;

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let code = match run() {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "streamer failed");
            session::exit::ERROR
        }
    };
    // Exit at once: the tokio runtime would otherwise wait for its blocking stdin reader.
    std::process::exit(code);
}

fn run() -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let code = runtime.block_on(session::run(tokio::io::stdin(), tokio::io::stdout()));
    runtime.shutdown_background();
    Ok(code)
}
