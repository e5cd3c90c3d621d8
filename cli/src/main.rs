//! The `memcheck` binary: parse the arguments, check the program, run it under the tracer,
//! then symbolise and write the reports. The exit status is the program's own; if the program
//! died of a signal, memcheck ends by the same signal.

#![forbid(unsafe_code)]

mod args;
mod report;
mod symbolize;
mod validate;

use anyhow::{Context, Result};
use memcheck_tracer::{ExitStatus, TraceError};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// memcheck's own failures: a one-line message and exit code 2.
fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("memcheck: {msg}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let cfg = args::parse();
    match run(&cfg) {
        Ok(code) => code,
        Err(e) => fail(format!("{e:#}")),
    }
}

fn explain(e: TraceError) -> anyhow::Error {
    match e {
        TraceError::PtraceDenied(why) => anyhow::anyhow!(
            "ptrace is not permitted here ({why}); allow it with `sysctl kernel.yama.ptrace_scope=0`, or in a container run it with --cap-add=SYS_PTRACE (docker) or a seccomp profile that allows ptrace"
        ),
        other => anyhow::Error::new(other),
    }
}

fn run(cfg: &args::Config) -> Result<ExitCode> {
    let program = validate::resolve(&PathBuf::from(&cfg.command[0]))?;
    validate::check(&program)?;
    let shim = validate::shim_path()?;
    let opts = memcheck_tracer::Options {
        program,
        args: cfg.command.clone(),
        shim: shim.clone(),
        depth: cfg.num_callers,
        trace_children: cfg.trace_children,
        freelist_vol: cfg.freelist_vol,
    };
    // The terminal's SIGINT and SIGQUIT go to the program; memcheck waits for it to end.
    memcheck_tracer::ignore_terminal_signals();
    let result = memcheck_tracer::run(&opts).map_err(explain)?;

    let mut sym = symbolize::Symbolizer::default();
    let report = report::build(cfg, &result, &mut sym, &shim);
    let mut out: Box<dyn Write> = match &cfg.log_file {
        Some(p) => Box::new(
            std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?,
        ),
        None => Box::new(std::io::stderr().lock()),
    };
    report::text::write(&mut out, cfg, &report).or_else(ignore_broken_pipe)?;
    out.flush().or_else(ignore_broken_pipe)?;
    if let Some(p) = &cfg.json {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?,
        );
        report::json::write(&mut f, &report)?;
        f.flush()?;
    }
    Ok(match result.status {
        ExitStatus::Code(c) => ExitCode::from(c as u8),
        ExitStatus::Signal(s) => die_by_signal(s),
    })
}

fn ignore_broken_pipe(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(e)
    }
}

/// Ends memcheck by the signal that ended the program, so the shell sees the same status.
fn die_by_signal(sig: i32) -> ExitCode {
    memcheck_tracer::die_by_signal(sig);
    ExitCode::from((128 + sig) as u8)
}
