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

use std::io::Write;
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
    let (code, relay) = runtime.block_on(async {
        let (input, (output, relay)) = (ipc_input(), ipc_output()?);
        anyhow::Ok((session::run(input, output).await, relay))
    })?;
    runtime.shutdown_background();
    // The writer is gone: the relay copies what is left and sees the end of its pipe.
    if let Some(relay) = relay {
        let _ = relay.join();
    }
    Ok(code)
}

/// stdin for the IPC channel.
///
/// When it is a pipe (the web-server spawns us so), it is read non-blocking on the runtime's
/// reactor. tokio's `Stdin` would hand every read to a blocking thread instead: two context
/// switches per IPC frame. Anything else (a terminal, a file) falls back to tokio's `Stdin`.
fn ipc_input() -> Either<pipe::Receiver, tokio::io::Stdin> {
    std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .and_then(pipe::Receiver::from_owned_fd)
        .map_or_else(|_| Either::Right(tokio::io::stdin()), Either::Left)
}

/// stdout for the IPC channel: the non-blocking write end of a pipe, which the session loop writes
/// itself (`writer.rs`).
///
/// The web-server spawns us with a pipe. Anything else (a terminal, a file: a streamer run by
/// hand) gets a pipe of our own, which a thread copies to stdout with blocking writes; `run` joins
/// it before the process exits, so that `Ended` is not lost.
fn ipc_output() -> std::io::Result<(pipe::Sender, Option<std::thread::JoinHandle<()>>)> {
    if let Ok(sender) = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .and_then(pipe::Sender::from_owned_fd)
    {
        grow_pipe(&sender);
        return Ok((sender, None));
    }
    let (sender, receiver) = pipe::pipe()?;
    let mut receiver = std::fs::File::from(receiver.into_blocking_fd()?);
    let relay = std::thread::spawn(move || {
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = std::io::copy(&mut receiver, &mut stdout).and_then(|_| stdout.flush()) {
            tracing::warn!(error = %e, "stdout relay failed");
        }
    });
    Ok((sender, Some(relay)))
}

/// The pipe's buffer as large as an unprivileged process may make it (Linux: `pipe-max-size`,
/// 1 MiB by default), from the default 64 KiB.
///
/// Why: the writer refuses a media frame while bytes of an earlier one are unwritten (`writer.rs`),
/// and a 1080p keyframe is often larger than 64 KiB. With room for a whole keyframe, the frame
/// after it is not refused merely because the keyframe is still draining into a gateway that
/// reads as fast as it can. Best effort: where the kernel refuses, the default stays.
fn grow_pipe(sender: &pipe::Sender) {
    if let Err(e) = rustix::pipe::fcntl_setpipe_size(sender, 1 << 20) {
        tracing::debug!(error = %e, "the IPC pipe keeps its size");
    }
}
