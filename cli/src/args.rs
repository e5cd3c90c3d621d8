//! Command-line arguments, parsed once (clap) into a validated [`Config`]; no other module
//! sees clap. Option names and defaults follow Valgrind's, so that `valgrind` can be swapped
//! for `memcheck` in existing scripts.

use clap::{ArgAction, Parser, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;

const EXAMPLES: &str = "\
EXAMPLES:
    memcheck ./server --port 8080
        Run ./server; on exit, print bad frees and a leak summary to stderr.
    memcheck --leak-check=full --json=report.json ./test_suite
        Show every loss record with its allocation stack, and write them as JSON too.
    memcheck --trace-children=yes make check
        Also check the programs that make runs.";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum YesNo {
    Yes,
    No,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LeakCheck {
    No,
    Summary,
    Full,
}

#[derive(Parser, Debug)]
#[command(
    name = "memcheck",
    version,
    about = "Heap checker and allocation profiler for unmodified Linux x86_64 C/C++ programs",
    after_help = EXAMPLES,
    trailing_var_arg = true
)]
struct Cli {
    /// Search for memory leaks at exit: no, summary (the default), or full (every loss record).
    #[arg(long = "leak-check", value_enum, default_value = "summary")]
    leak_check: LeakCheck,

    /// Frames shown per stack (and captured per allocation).
    #[arg(long = "num-callers", default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=256))]
    num_callers: u32,

    /// Follow programs started by exec.
    #[arg(long = "trace-children", value_enum, default_value = "no")]
    trace_children: YesNo,

    /// Bytes of freed blocks held back from reuse, so that a double free is still recognised.
    #[arg(long = "freelist-vol", default_value_t = 20_000_000)]
    freelist_vol: u64,

    /// Write the findings as JSON to FILE (schema in the README).
    #[arg(long = "json", value_name = "FILE")]
    json: Option<PathBuf>,

    /// Write the text report to FILE instead of stderr.
    #[arg(long = "log-file", value_name = "FILE")]
    log_file: Option<PathBuf>,

    /// Print only errors and leaks, no headers or summaries.
    #[arg(short = 'q', long = "quiet", action = ArgAction::SetTrue)]
    quiet: bool,

    /// The program to run, and its arguments.
    #[arg(
        required = true,
        value_name = "PROGRAM [ARGS]...",
        allow_hyphen_values = true
    )]
    command: Vec<OsString>,
}

/// Everything the run needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub leak_check: LeakCheck,
    pub num_callers: u32,
    pub trace_children: bool,
    pub freelist_vol: u64,
    pub json: Option<PathBuf>,
    pub log_file: Option<PathBuf>,
    pub quiet: bool,
    pub command: Vec<OsString>,
}

pub fn parse() -> Config {
    let cli = Cli::parse();
    Config {
        leak_check: cli.leak_check,
        num_callers: cli.num_callers,
        trace_children: cli.trace_children == YesNo::Yes,
        freelist_vol: cli.freelist_vol,
        json: cli.json,
        log_file: cli.log_file,
        quiet: cli.quiet,
        command: cli.command,
    }
}
