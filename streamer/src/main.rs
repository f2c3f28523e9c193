//! `streamer`: one process per browser connection (see `docs/ipc.md`).
//!
//! stdin carries `ToStreamer` IPC frames, stdout `FromStreamer` frames and nothing else; logs go to
//! stderr through `tracing` (the web-server re-emits them under the session key; `RUST_LOG`
//! filters). The exit code says why the session ended ([`session::exit`]). The process exits as
//! soon as `Ended` is flushed: ending a stream = ending a process, which frees everything.

#![forbid(unsafe_code)]

mod annexb;
mod input;
mod launch_turn;
mod media_clock;
mod session;
mod webrtc;
mod writer;

use std::os::fd::AsFd;

use tokio::net::unix::pipe;
use tokio_util::either::Either;

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // stderr is a pipe to the web-server. When the web-server is gone (SIGKILL, crash), every
        // write fails with EPIPE, and tracing-subscriber would report that with `eprintln!`, which
        // panics on the same broken stderr: the streamer died at its first log line after the
        // gateway, before its teardown, and left its host session busy (tests/faults.rs, gateway
        // SIGKILLed with live streams, at the default `info` level). Lost log lines are the lesser
        // evil: the teardown (ENet disconnect, then `/cancel`) must run.
        .log_internal_errors(false)
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
    // One thread: a stream's work is a chain of small steps (datagram → access unit → IPC frame),
    // and handing each step to another worker cost more in wake-ups than the steps themselves.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let code = runtime.block_on(async {
        let (input, output) = ipc_pipes();
        session::run(input, output).await
    });
    runtime.shutdown_background();
    Ok(code)
}

/// stdin and stdout for the IPC channel.
///
/// When they are pipes (the web-server spawns us so), they are read and written non-blocking on
/// the runtime's reactor. tokio's `Stdin`/`Stdout` would hand every read and write to a blocking
/// thread instead: two context switches per IPC frame, most of this process's CPU at 60 fps.
/// Anything else (a terminal, a file) falls back to tokio's blocking-thread versions.
fn ipc_pipes() -> (
    Either<pipe::Receiver, tokio::io::Stdin>,
    Either<pipe::Sender, tokio::io::Stdout>,
) {
    let input = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .and_then(pipe::Receiver::from_owned_fd)
        .map_or_else(|_| Either::Right(tokio::io::stdin()), Either::Left);
    let output = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .and_then(pipe::Sender::from_owned_fd)
        .map_or_else(|_| Either::Right(tokio::io::stdout()), Either::Left);
    (input, output)
}
