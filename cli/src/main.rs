//! The `memcheck` binary: parse the arguments, check the program, run it under the tracer,
//! then symbolise and write the reports. The exit status is the program's own (or
//! --error-exitcode when errors were found); if the program died of a signal, memcheck ends by
//! the same signal. memcheck's own failures print one `memcheck: ...` line and exit with 2.

#![forbid(unsafe_code)]

mod args;
mod diff;
mod metrics;
mod report;
mod symbolize;
mod validate;

use anyhow::{Context, Result};
use args::{expand_file_name, Config, Invocation};
use memcheck_tracer::{ExitStatus, TraceError};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("memcheck: {msg}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let result = match args::parse() {
        Ok(Invocation::Run(cfg)) => run(&cfg),
        Ok(Invocation::Diff { base, new }) => diff::run(&base, &new),
        Ok(Invocation::Report { cfg, trace }) => report_trace(&cfg, &trace),
        Err(e) => Err(e),
    };
    match result {
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

fn create(path: &str) -> Result<std::io::BufWriter<std::fs::File>> {
    let f = std::fs::File::create(path).with_context(|| format!("cannot write {path}"))?;
    Ok(std::io::BufWriter::new(f))
}

fn run(cfg: &Config) -> Result<ExitCode> {
    let program = validate::resolve(&PathBuf::from(&cfg.command[0]))?;
    validate::check(&program)?;
    let shim = validate::shim_path()?;
    let mut supps = Vec::new();
    for s in &cfg.suppressions {
        supps.extend(report::supp::parse_file(s)?);
    }
    let opts = memcheck_tracer::Options {
        program,
        args: cfg.command.clone(),
        shim: shim.clone(),
        depth: if cfg.wants_profile() || cfg.record.is_some() {
            cfg.num_callers.max(report::PROFILE_DEPTH)
        } else {
            cfg.num_callers
        },
        keep: cfg.keep_stacktraces.captured(),
        malloc_fill: cfg.malloc_fill,
        free_fill: cfg.free_fill,
        trace_children: cfg.trace_children,
        freelist: cfg.freelist,
        heuristics: cfg.heuristics,
        // A recorded run keeps the profile too, so that `memcheck report` can show any output
        // later.
        profile: cfg.wants_profile() || cfg.record.is_some(),
        metrics: None,
        record: cfg.record.clone(),
    };
    let mut opts = opts;
    if let Some(addr) = &cfg.metrics_addr {
        let m = std::sync::Arc::new(memcheck_tracer::Metrics::default());
        let bound = metrics::serve(addr, m.clone())?;
        eprintln!("memcheck: serving metrics at http://{bound}/metrics");
        opts.metrics = Some(m);
    }
    // The terminal's SIGINT and SIGQUIT go to the program; memcheck waits for it to end.
    memcheck_tracer::ignore_terminal_signals();
    let started = Instant::now();
    let result = memcheck_tracer::run(&opts).map_err(explain)?;
    let elapsed = started.elapsed();
    emit(cfg, &result, elapsed, &shim, &supps, true)
}

/// `memcheck report TRACE`: the outputs of a recorded run.
fn report_trace(cfg: &Config, trace: &std::path::Path) -> Result<ExitCode> {
    let mut supps = Vec::new();
    for s in &cfg.suppressions {
        supps.extend(report::supp::parse_file(s)?);
    }
    let result = memcheck_tracer::replay(trace, cfg.wants_profile(), cfg.freelist)
        .map_err(anyhow::Error::new)?;
    let shim = validate::shim_path().unwrap_or_else(|_| PathBuf::from("libmemcheck_shim.so"));
    // The command is the recorded program's, not the trace file's.
    let mut cfg = cfg.clone();
    if let Some(root) = result
        .processes
        .iter()
        .find(|p| p.pid == result.root_pid)
        .or(result.processes.first())
    {
        cfg.command = root.cmdline.iter().map(std::ffi::OsString::from).collect();
    }
    emit(
        &cfg,
        &result,
        std::time::Duration::ZERO,
        &shim,
        &supps,
        false,
    )
}

/// Writes every output the options ask for; returns the exit code of the run.
/// `live`: the program ran now (memcheck then ends as it did, a signal included); else the
/// outputs are those of a recorded run, and a signal is an exit code 128+N.
fn emit(
    cfg: &Config,
    result: &memcheck_tracer::RunResult,
    elapsed: std::time::Duration,
    shim: &std::path::Path,
    supps: &[report::supp::Suppression],
    live: bool,
) -> Result<ExitCode> {
    let mut sym = symbolize::Symbolizer::with_debug_dirs(cfg.debug_dirs.clone());
    let report = report::build(cfg, result, &mut sym, shim, supps);
    // A forked child that did not exec stays silent with --child-silent-after-fork=yes.
    let shown: Vec<&report::Process> = report
        .processes
        .iter()
        .filter(|p| !cfg.child_silent_after_fork || p.execed)
        .collect();

    // The text report: stderr, or --log-file (one file per process with %p).
    match &cfg.log_file {
        None => {
            let mut err = std::io::stderr().lock();
            for p in &shown {
                write_text(&mut err, cfg, p).or_else(ignore_broken_pipe)?;
            }
        }
        Some(t) if t.contains("%p") => {
            for p in &shown {
                let mut f = create(&expand_file_name(t, p.pid))?;
                write_text(&mut f, cfg, p)?;
                f.flush()?;
            }
        }
        Some(t) => {
            let mut f = create(&expand_file_name(t, result.root_pid))?;
            for p in &shown {
                write_text(&mut f, cfg, p)?;
            }
            f.flush()?;
        }
    }
    // XML: one document per process (%p), or the program's own process only.
    if let Some(t) = &cfg.xml_file {
        for p in &shown {
            if !t.contains("%p") && p.pid != result.root_pid {
                continue;
            }
            let mut f = create(&expand_file_name(t, p.pid))?;
            report::xml::write_process(&mut f, cfg, p, elapsed)?;
            f.flush()?;
        }
    }
    if let Some(p) = &cfg.json {
        let mut f = create(&p.display().to_string())?;
        report::json::write(&mut f, &report)?;
        f.flush()?;
    }
    if let Some(p) = &cfg.sarif {
        let root = std::env::current_dir().context("cannot read the working directory")?;
        let mut f = create(&p.display().to_string())?;
        serde_json::to_writer_pretty(&mut f, &report::sarif::build(&report, &root))?;
        writeln!(f)?;
        f.flush()?;
    }
    if cfg.folded.is_some() || cfg.flamegraph.is_some() {
        let lines = report::profile::folded(&report, cfg.metric);
        if let Some(p) = &cfg.folded {
            let mut f = create(&p.display().to_string())?;
            for l in &lines {
                writeln!(f, "{l}")?;
            }
            f.flush()?;
        }
        if let Some(p) = &cfg.flamegraph {
            let mut f = create(&p.display().to_string())?;
            report::profile::flamegraph(&lines, cfg.metric, &mut f)
                .with_context(|| format!("cannot draw {}", p.display()))?;
            f.flush()?;
        }
    }
    if let Some(p) = &cfg.html {
        let mut f = create(&p.display().to_string())?;
        report::html::write(&mut f, cfg, &report)?;
        f.flush()?;
    }
    let errors: u64 = report
        .processes
        .iter()
        .map(|p| p.error_summary.errors)
        .sum();
    Ok(match result.status {
        ExitStatus::Code(_) if cfg.error_exitcode != 0 && errors > 0 => {
            ExitCode::from(cfg.error_exitcode as u8)
        }
        ExitStatus::Code(c) => ExitCode::from(c as u8),
        ExitStatus::Signal(s) if live => die_by_signal(s),
        ExitStatus::Signal(s) => ExitCode::from((128 + s) as u8),
    })
}

/// The text report of one process, with the profile after it when asked for.
fn write_text(w: &mut dyn Write, cfg: &Config, p: &report::Process) -> std::io::Result<()> {
    report::text::write_process(w, cfg, p)?;
    if cfg.profile {
        report::profile::write_process(w, cfg, p)?;
    }
    Ok(())
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
