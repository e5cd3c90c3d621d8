//! Command-line arguments, parsed once (clap) into a validated [`Config`]; no other module
//! sees clap. Option names, forms (`--opt=value`) and defaults follow Valgrind's, so that
//! `valgrind` can be swapped for `memcheck` in existing scripts. Options that only mean
//! something under Valgrind's instrumentation are accepted with a one-line note.

use anyhow::{bail, Result};
use clap::{ArgAction, Parser, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;

const EXAMPLES: &str = "\
EXAMPLES:
    memcheck ./server --port 8080
        Run ./server; on exit, print bad frees and a leak summary to stderr.
    memcheck --leak-check=full --error-exitcode=1 --xml=yes --xml-file=out.%p.xml ./tests
        What a CI job runs under Valgrind today: same options, same XML.
    memcheck --leak-check=full --json=new.json ./tests && memcheck diff base.json new.json
        Fail only on leaks and errors that the base run did not have.
    memcheck --trace-children=yes make check
        Also check the programs that make runs.

To run a program named `diff`, write `memcheck -- diff ...`.";

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
    /// Valgrind's synonym of full.
    Yes,
}

/// A byte in hexadecimal, as Valgrind's --malloc-fill and --free-fill take it (`0xAB` or `AB`).
fn parse_fill(v: &str) -> std::result::Result<u8, String> {
    let digits = v
        .strip_prefix("0x")
        .or_else(|| v.strip_prefix("0X"))
        .unwrap_or(v);
    u8::from_str_radix(digits, 16).map_err(|_| "a byte in hexadecimal (00 to FF)".to_string())
}

/// Which stacks are kept for the blocks (Valgrind's --keep-stacktraces).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KeepStacktraces {
    /// Where each block was allocated and where it was freed.
    AllocAndFree,
    /// Where it was allocated; not where it was freed (a free then captures no stack).
    Alloc,
    /// Where it was freed; not where it was allocated.
    Free,
    /// Where it was allocated until it is freed, then only where it was freed.
    AllocThenFree,
    /// Neither (only the stacks of the bad calls themselves).
    None,
}

impl KeepStacktraces {
    /// What the shim is told to keep (`memcheck_wire::Header::keep`).
    pub fn captured(self) -> u32 {
        use memcheck_tracer::{KEEP_ALLOC, KEEP_FREE, KEEP_THEN_FREE};
        match self {
            KeepStacktraces::AllocAndFree => KEEP_ALLOC | KEEP_FREE,
            KeepStacktraces::AllocThenFree => KEEP_ALLOC | KEEP_FREE | KEEP_THEN_FREE,
            KeepStacktraces::Alloc => KEEP_ALLOC,
            KeepStacktraces::Free => KEEP_FREE,
            KeepStacktraces::None => 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Resolution {
    Low,
    Med,
    High,
}

/// What a flamegraph and a folded-stack file count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Metric {
    /// Bytes allocated.
    Bytes,
    /// Number of allocations.
    Allocations,
    /// Bytes live when the heap peaked.
    Peak,
    /// Bytes still allocated at exit.
    Leaked,
    /// Allocations freed before any other allocation of the same thread.
    Temporary,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GenSupp {
    No,
    Yes,
    All,
}

/// A set of leak kinds (`--show-leak-kinds`, `--errors-for-leak-kinds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LeakKinds {
    pub definite: bool,
    pub indirect: bool,
    pub possible: bool,
    pub reachable: bool,
}

impl LeakKinds {
    pub fn parse(s: &str) -> Result<LeakKinds, String> {
        let mut k = LeakKinds::default();
        for part in s.split(',') {
            match part.trim() {
                "definite" => k.definite = true,
                "indirect" => k.indirect = true,
                "possible" => k.possible = true,
                "reachable" => k.reachable = true,
                "all" => k = LeakKinds { definite: true, indirect: true, possible: true, reachable: true },
                "none" => k = LeakKinds::default(),
                other => return Err(format!("unknown leak kind {other:?} (use definite, indirect, possible, reachable, all or none)")),
            }
        }
        Ok(k)
    }

    /// Whether a loss record of JSON/XML kind `kind` is in the set.
    pub fn contains(&self, kind: &str) -> bool {
        match kind {
            "Leak_DefinitelyLost" => self.definite,
            "Leak_IndirectlyLost" => self.indirect,
            "Leak_PossiblyLost" => self.possible,
            "Leak_StillReachable" => self.reachable,
            // Blocks of a process that could not be scanned are shown with the definite ones.
            _ => self.definite,
        }
    }
}

pub use memcheck_tracer::Heuristics;

/// Parses Valgrind's --leak-check-heuristics list.
fn parse_heuristics(s: &str) -> Result<Heuristics, String> {
    let none = Heuristics {
        stdstring: false,
        length64: false,
        newarray: false,
        multipleinheritance: false,
    };
    let mut h = none;
    for part in s.split(',') {
        match part.trim() {
            "stdstring" => h.stdstring = true,
            "length64" => h.length64 = true,
            "newarray" => h.newarray = true,
            "multipleinheritance" => h.multipleinheritance = true,
            "all" => h = Heuristics::default(),
            "none" => h = none,
            other => {
                return Err(format!(
                    "unknown heuristic {other:?} (use stdstring, length64, newarray, multipleinheritance, all or none)"
                ))
            }
        }
    }
    Ok(h)
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
    /// Search for memory leaks at exit: no, summary (the default), full (every loss record).
    #[arg(
        long = "leak-check",
        value_enum,
        default_value = "summary",
        require_equals = true
    )]
    leak_check: LeakCheck,

    /// Leak kinds shown with --leak-check=full: definite,indirect,possible,reachable, all, none.
    #[arg(long = "show-leak-kinds", default_value = "definite,possible", value_parser = LeakKinds::parse, require_equals = true)]
    show_leak_kinds: LeakKinds,

    /// Leak kinds counted as errors (for the ERROR SUMMARY and --error-exitcode).
    #[arg(long = "errors-for-leak-kinds", default_value = "definite,possible", value_parser = LeakKinds::parse, require_equals = true)]
    errors_for_leak_kinds: LeakKinds,

    /// Valgrind's old spelling of --show-leak-kinds=all.
    #[arg(
        long = "show-reachable",
        value_enum,
        require_equals = true,
        hide = true
    )]
    show_reachable: Option<YesNo>,

    /// Valgrind's old spelling: --show-possibly-lost=no drops possible from --show-leak-kinds.
    #[arg(
        long = "show-possibly-lost",
        value_enum,
        require_equals = true,
        hide = true
    )]
    show_possibly_lost: Option<YesNo>,

    /// Interior pointers that still count as pointers to the start of a block:
    /// stdstring,length64,newarray,multipleinheritance, all (the default) or none.
    #[arg(long = "leak-check-heuristics", default_value = "all", value_parser = parse_heuristics, require_equals = true)]
    leak_check_heuristics: Heuristics,

    /// How many frames of the allocation stack make two leaks the same loss record:
    /// low (2), med (4), high (all, the default).
    #[arg(
        long = "leak-resolution",
        value_enum,
        default_value = "high",
        require_equals = true
    )]
    leak_resolution: Resolution,

    /// Exit with this code when errors (leaks of --errors-for-leak-kinds included) were found.
    #[arg(long = "error-exitcode", default_value_t = 0, require_equals = true)]
    error_exitcode: i32,

    /// Frames shown per stack (and captured per allocation).
    #[arg(long = "num-callers", default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=256), require_equals = true)]
    num_callers: u32,

    /// Stacks kept for each block: alloc-and-free, alloc, free, alloc-then-free (shown for a
    /// freed block: where it was freed only), none. Not capturing free stacks makes frees
    /// cheaper.
    #[arg(
        long = "keep-stacktraces",
        value_enum,
        default_value = "alloc-and-free",
        require_equals = true
    )]
    keep_stacktraces: KeepStacktraces,

    /// Fill blocks allocated by malloc, new, realloc, ... (not calloc) with this byte (hex).
    #[arg(long = "malloc-fill", value_name = "HEX", value_parser = parse_fill, require_equals = true)]
    malloc_fill: Option<u8>,

    /// Fill blocks freed by free, delete, realloc, ... with this byte (hex).
    #[arg(long = "free-fill", value_name = "HEX", value_parser = parse_fill, require_equals = true)]
    free_fill: Option<u8>,

    /// Show C++ function names demangled (yes) or as linked (no).
    #[arg(
        long = "demangle",
        value_enum,
        default_value = "yes",
        require_equals = true
    )]
    demangle: YesNo,

    /// Show the frames below main (else a stack ends at main, or at "(below main)").
    #[arg(
        long = "show-below-main",
        value_enum,
        default_value = "no",
        require_equals = true
    )]
    show_below_main: YesNo,

    /// Report frees and deletes that do not match the allocator of the block.
    #[arg(
        long = "show-mismatched-frees",
        value_enum,
        default_value = "yes",
        require_equals = true
    )]
    show_mismatched_frees: YesNo,

    /// Follow programs started by exec.
    #[arg(
        long = "trace-children",
        value_enum,
        default_value = "no",
        require_equals = true
    )]
    trace_children: YesNo,

    /// Report nothing for a forked child that does not exec.
    #[arg(
        long = "child-silent-after-fork",
        value_enum,
        default_value = "no",
        require_equals = true
    )]
    child_silent_after_fork: YesNo,

    /// Bytes of freed blocks held back from reuse, so that a double free is still recognised.
    #[arg(
        long = "freelist-vol",
        default_value_t = 20_000_000,
        require_equals = true
    )]
    freelist_vol: u64,

    /// The most freed blocks held back from reuse (with --freelist-vol, whichever comes first).
    #[arg(
        long = "freelist-blocks",
        default_value_t = 4096,
        require_equals = true
    )]
    freelist_blocks: u64,

    /// Write the text report to FILE instead of stderr (%p: the pid, %q{VAR}: $VAR).
    #[arg(long = "log-file", value_name = "FILE", require_equals = true)]
    log_file: Option<String>,

    /// Write Valgrind's XML (protocol 4) to --xml-file.
    #[arg(long = "xml", value_enum, default_value = "no", require_equals = true)]
    xml: YesNo,

    /// The XML file (%p: the pid, one file per process; %q{VAR}: $VAR).
    #[arg(long = "xml-file", value_name = "FILE", require_equals = true)]
    xml_file: Option<String>,

    /// Read suppressions from FILE (Valgrind's .supp format); may be repeated.
    #[arg(long = "suppressions", value_name = "FILE", action = ArgAction::Append, require_equals = true)]
    suppressions: Vec<PathBuf>,

    /// Print a suppression for each error and shown loss record: all (or yes), or no.
    #[arg(
        long = "gen-suppressions",
        value_enum,
        default_value = "no",
        require_equals = true
    )]
    gen_suppressions: GenSupp,

    /// Write the findings as JSON to FILE (schema in the README).
    #[arg(long = "json", value_name = "FILE", require_equals = true)]
    json: Option<PathBuf>,

    /// Write the findings as SARIF 2.1.0 to FILE (for GitHub code scanning).
    #[arg(long = "sarif", value_name = "FILE", require_equals = true)]
    sarif: Option<PathBuf>,

    /// After the run, print the allocation profile: peak heap, totals, top allocation sites.
    #[arg(long = "profile", action = ArgAction::SetTrue)]
    profile: bool,

    /// Sites listed per metric by --profile.
    #[arg(long = "top", default_value_t = 10, require_equals = true)]
    top: usize,

    /// Write a flamegraph of the allocations (SVG) to FILE.
    #[arg(long = "flamegraph", value_name = "FILE", require_equals = true)]
    flamegraph: Option<PathBuf>,

    /// Write the allocation stacks in the collapsed-stack format (flamegraph.pl, inferno,
    /// speedscope) to FILE.
    #[arg(long = "folded", value_name = "FILE", require_equals = true)]
    folded: Option<PathBuf>,

    /// Write a self-contained HTML report (flamegraph, heap over time, top sites, errors and
    /// leaks) to FILE.
    #[arg(long = "html", value_name = "FILE", require_equals = true)]
    html: Option<PathBuf>,

    /// Record a compressed trace of the run to FILE, for `memcheck report FILE` later.
    #[arg(long = "record", value_name = "FILE", require_equals = true)]
    record: Option<PathBuf>,

    /// With `memcheck report`: also look for the programs' files and their debug files in DIR
    /// (as /usr/lib/debug: DIR/.build-id/xx/yyyy.debug, or DIR/NAME).
    #[arg(long = "debug-dir", value_name = "DIR", action = ArgAction::Append, require_equals = true)]
    debug_dir: Vec<PathBuf>,

    /// Serve Prometheus metrics of the heap at http://ADDR/metrics while the program runs
    /// (e.g. 127.0.0.1:9464; port 0 picks a free port, printed at start).
    #[arg(long = "metrics-addr", value_name = "ADDR", require_equals = true)]
    metrics_addr: Option<String>,

    /// What --flamegraph and --folded count.
    #[arg(
        long = "flamegraph-metric",
        value_enum,
        default_value = "bytes",
        require_equals = true
    )]
    flamegraph_metric: Metric,

    /// Print only errors and loss records, no headers or summaries.
    #[arg(short = 'q', long = "quiet", action = ArgAction::SetTrue)]
    quiet: bool,

    /// Say more: the list of errors with their counts at the end.
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    verbose: u8,

    /// Show the list of detected and suppressed errors at exit.
    #[arg(short = 's', long = "show-error-list", action = ArgAction::SetTrue)]
    show_error_list: bool,

    /// The program to run, and its arguments.
    #[arg(
        required = true,
        value_name = "PROGRAM [ARGS]...",
        allow_hyphen_values = true
    )]
    command: Vec<OsString>,
}

/// `memcheck diff BASE.json NEW.json`.
#[derive(Parser, Debug)]
#[command(
    name = "memcheck diff",
    about = "List loss records and errors of NEW that BASE did not have (or that grew); exit 1 if any"
)]
struct DiffCli {
    base: PathBuf,
    new: PathBuf,
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub leak_check: LeakCheck,
    pub show_leak_kinds: LeakKinds,
    pub errors_for_leak_kinds: LeakKinds,
    pub heuristics: Heuristics,
    /// Frames compared to group leaks into loss records (None: all).
    pub leak_resolution: Option<usize>,
    pub error_exitcode: i32,
    pub num_callers: u32,
    pub keep_stacktraces: KeepStacktraces,
    pub show_mismatched_frees: bool,
    pub malloc_fill: Option<u8>,
    pub free_fill: Option<u8>,
    pub demangle: bool,
    pub show_below_main: bool,
    pub trace_children: bool,
    pub child_silent_after_fork: bool,
    pub freelist: memcheck_tracer::Freelist,
    pub log_file: Option<String>,
    pub xml_file: Option<String>,
    pub suppressions: Vec<PathBuf>,
    pub gen_suppressions: bool,
    pub json: Option<PathBuf>,
    pub sarif: Option<PathBuf>,
    pub quiet: bool,
    pub show_error_list: bool,
    pub profile: bool,
    pub top: usize,
    pub flamegraph: Option<PathBuf>,
    pub folded: Option<PathBuf>,
    pub html: Option<PathBuf>,
    pub metrics_addr: Option<String>,
    pub record: Option<PathBuf>,
    pub debug_dirs: Vec<PathBuf>,
    pub metric: Metric,
    /// The options as given (for XML's <vargv>).
    pub options: Vec<String>,
    pub command: Vec<OsString>,
}

impl Config {
    pub fn full(&self) -> bool {
        matches!(self.leak_check, LeakCheck::Full | LeakCheck::Yes)
    }

    /// Whether the run must keep the allocation profile.
    pub fn wants_profile(&self) -> bool {
        self.profile || self.flamegraph.is_some() || self.folded.is_some() || self.html.is_some()
    }
}

pub enum Invocation {
    Run(Config),
    Diff {
        base: PathBuf,
        new: PathBuf,
    },
    /// `memcheck report TRACE [OPTIONS]`: the reports of a recorded run.
    Report {
        cfg: Config,
        trace: PathBuf,
    },
}

/// Valgrind options without effect under memcheck: accepted so that scripts keep working.
const IGNORED: &[(&str, &str)] = &[
    (
        "track-origins",
        "memcheck does not track uninitialised values",
    ),
    (
        "undef-value-errors",
        "memcheck does not track uninitialised values",
    ),
    ("partial-loads-ok", "memcheck does not check loads"),
    (
        "expensive-definedness-checks",
        "memcheck does not track uninitialised values",
    ),
    ("redzone-size", "memcheck has no redzones"),
    ("smc-check", "memcheck does not translate code"),
    (
        "read-var-info",
        "memcheck reads debug information after the run",
    ),
    ("read-inline-info", "memcheck always shows inlined frames"),
    ("vgdb", "there is no gdbserver in memcheck"),
    ("vgdb-error", "there is no gdbserver in memcheck"),
    ("vgdb-prefix", "there is no gdbserver in memcheck"),
    ("track-fds", "memcheck does not track file descriptors"),
    ("time-stamp", "memcheck reports after the run"),
    ("max-stackframe", "memcheck does not check stack accesses"),
    ("main-stacksize", "the program runs natively"),
    ("fair-sched", "the program's threads run natively"),
    (
        "fullpath-after",
        "the JSON and XML reports carry full paths",
    ),
    ("run-libc-freeres", "glibc's freeres always runs at exit"),
    ("run-cxx-freeres", "libstdc++'s freeres always runs at exit"),
    ("sim-hints", "the program runs natively"),
    (
        "soname-synonyms",
        "memcheck interposes by symbol in every library",
    ),
    ("error-limit", "memcheck has no error limit"),
    ("show-emwarns", "the program runs natively"),
    (
        "default-suppressions",
        "memcheck has no default suppressions",
    ),
    ("alignment", "the program's own allocator alignment is kept"),
    ("workaround-gcc296-bugs", "not needed"),
    ("xtree-memory", "use --profile / --flamegraph"),
    ("xtree-leak", "use --json or --xml"),
];

/// Whether clap knows the option `arg` (`--name[=value]`, or short flags such as `-q`, `-sv`).
fn known_option(arg: &str) -> bool {
    use clap::CommandFactory;
    let cmd = Cli::command();
    if let Some(long) = arg.strip_prefix("--") {
        let name = long.split('=').next().unwrap_or("");
        return name == "help"
            || name == "version"
            || cmd.get_arguments().any(|a| a.get_long() == Some(name));
    }
    let shorts = arg.trim_start_matches('-');
    !shorts.is_empty()
        && shorts
            .chars()
            .all(|c| c == 'h' || c == 'V' || cmd.get_arguments().any(|a| a.get_short() == Some(c)))
}

/// Parses the process arguments (notes for ignored Valgrind options go to stderr).
pub fn parse() -> Result<Invocation> {
    let raw: Vec<OsString> = std::env::args_os().collect();
    if raw.get(1).is_some_and(|a| a == "report") {
        // memcheck report TRACE [OPTIONS]: the options of a run, the trace in place of the program.
        let Some(trace) = raw.get(2).cloned() else {
            bail!("memcheck report needs a trace file: memcheck report FILE [OPTIONS]")
        };
        let mut args = vec![raw[0].clone()];
        args.extend(raw[3..].iter().cloned());
        args.push(trace.clone());
        let Invocation::Run(cfg) = parse_from(args)? else {
            unreachable!("a run")
        };
        // (A trace keeps what its run kept: --keep-stacktraces and --*-fill are the run's.)
        return Ok(Invocation::Report {
            cfg,
            trace: PathBuf::from(trace),
        });
    }
    let inv = parse_from(raw)?;
    if let Invocation::Run(cfg) = &inv {
        if cfg.wants_profile() && cfg.keep_stacktraces.captured() & memcheck_tracer::KEEP_ALLOC == 0
        {
            bail!(
                "--profile, --flamegraph, --folded and --html need allocation stacks: not with --keep-stacktraces={}",
                cfg.keep_stacktraces
                    .to_possible_value()
                    .map(|v| v.get_name().to_string())
                    .unwrap_or_default()
            );
        }
    }
    Ok(inv)
}

fn parse_from(raw: Vec<OsString>) -> Result<Invocation> {
    if raw.get(1).is_some_and(|a| a == "diff") {
        let d = DiffCli::parse_from(
            std::iter::once(OsString::from("memcheck diff")).chain(raw[2..].iter().cloned()),
        );
        return Ok(Invocation::Diff {
            base: d.base,
            new: d.new,
        });
    }
    let mut kept = vec![raw[0].clone()];
    let mut options = Vec::new();
    let mut i = 1;
    while i < raw.len() {
        let a = raw[i].to_string_lossy().into_owned();
        if a == "--" || !a.starts_with('-') {
            break;
        }
        let name = a
            .trim_start_matches('-')
            .split('=')
            .next()
            .unwrap_or("")
            .to_string();
        let value = a.split_once('=').map(|x| x.1.to_string());
        if name == "tool" {
            if value.as_deref() != Some("memcheck") {
                bail!("--tool={}: memcheck only does what Valgrind's memcheck tool does (--tool=memcheck)", value.unwrap_or_default());
            }
        } else if let Some((_, why)) = IGNORED.iter().find(|(n, _)| *n == name) {
            eprintln!("memcheck: note: {a} has no effect ({why}); ignored");
        } else if !known_option(&a) {
            bail!("unknown option {a} (see memcheck --help)");
        } else {
            kept.push(raw[i].clone());
        }
        options.push(a);
        i += 1;
    }
    kept.extend(raw[i..].iter().cloned());
    let cli = match Cli::try_parse_from(&kept) {
        Ok(c) => c,
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                e.exit()
            }
            _ => {
                let msg = e.to_string();
                let first = msg
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("bad arguments");
                bail!(
                    "{} (see memcheck --help)",
                    first.trim_start_matches("error: ")
                );
            }
        },
    };
    let mut show = cli.show_leak_kinds;
    if cli.show_reachable == Some(YesNo::Yes) {
        show = LeakKinds {
            definite: true,
            indirect: true,
            possible: true,
            reachable: true,
        };
    }
    if cli.show_possibly_lost == Some(YesNo::No) {
        show.possible = false;
    }
    let xml_file = match (cli.xml, cli.xml_file) {
        (YesNo::Yes, Some(f)) => Some(f),
        (YesNo::Yes, None) => bail!("--xml=yes needs --xml-file=FILE"),
        (YesNo::No, Some(_)) => bail!("--xml-file needs --xml=yes"),
        (YesNo::No, None) => None,
    };
    let cfg = Config {
        leak_check: cli.leak_check,
        show_leak_kinds: show,
        errors_for_leak_kinds: cli.errors_for_leak_kinds,
        heuristics: cli.leak_check_heuristics,
        leak_resolution: match cli.leak_resolution {
            Resolution::Low => Some(2),
            Resolution::Med => Some(4),
            Resolution::High => None,
        },
        error_exitcode: cli.error_exitcode,
        num_callers: cli.num_callers,
        keep_stacktraces: cli.keep_stacktraces,
        show_mismatched_frees: cli.show_mismatched_frees == YesNo::Yes,
        malloc_fill: cli.malloc_fill,
        free_fill: cli.free_fill,
        demangle: cli.demangle == YesNo::Yes,
        show_below_main: cli.show_below_main == YesNo::Yes,
        trace_children: cli.trace_children == YesNo::Yes,
        child_silent_after_fork: cli.child_silent_after_fork == YesNo::Yes,
        freelist: memcheck_tracer::Freelist {
            vol: cli.freelist_vol,
            blocks: cli.freelist_blocks,
        },
        log_file: cli.log_file,
        xml_file,
        suppressions: cli.suppressions,
        gen_suppressions: cli.gen_suppressions != GenSupp::No,
        json: cli.json,
        sarif: cli.sarif,
        quiet: cli.quiet,
        profile: cli.profile,
        top: cli.top,
        flamegraph: cli.flamegraph,
        folded: cli.folded,
        html: cli.html,
        metrics_addr: cli.metrics_addr,
        record: cli.record,
        debug_dirs: cli.debug_dir,
        metric: cli.flamegraph_metric,
        show_error_list: cli.show_error_list || cli.verbose > 0,
        options,
        command: cli.command,
    };
    Ok(Invocation::Run(cfg))
}

/// Expands Valgrind's `%p` (the pid) and `%q{VAR}` (an environment variable) in a file name.
pub fn expand_file_name(template: &str, pid: u32) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('p') {
            out.push_str(&pid.to_string());
            rest = a;
        } else if let Some(a) = after.strip_prefix("q{") {
            match a.find('}') {
                Some(j) => {
                    out.push_str(&std::env::var(&a[..j]).unwrap_or_default());
                    rest = &a[j + 1..];
                }
                None => {
                    out.push_str("%q{");
                    rest = a;
                }
            }
        } else if let Some(a) = after.strip_prefix('%') {
            out.push('%');
            rest = a;
        } else {
            out.push('%');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_name_templates() {
        std::env::set_var("MEMCHECK_TEST_JOB", "j7");
        assert_eq!(expand_file_name("out.%p.xml", 42), "out.42.xml");
        assert_eq!(
            expand_file_name("log-%q{MEMCHECK_TEST_JOB}-%p", 3),
            "log-j7-3"
        );
        assert_eq!(expand_file_name("100%%", 1), "100%");
    }

    #[test]
    fn leak_kinds() {
        let k = LeakKinds::parse("definite,reachable").unwrap();
        assert!(k.definite && k.reachable && !k.possible && !k.indirect);
        assert!(LeakKinds::parse("bogus").is_err());
        assert_eq!(LeakKinds::parse("none").unwrap(), LeakKinds::default());
    }
}
