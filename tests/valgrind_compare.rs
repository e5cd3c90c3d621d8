//! memcheck against Valgrind, record for record. Each test runs one fixture of the corpus
//! (tests/fixtures/{c,cpp}/vg_*) under Valgrind and under memcheck with the same options
//! (`--leak-check=full --show-leak-kinds=all --xml=yes --xml-file=DIR/out.%p.xml`, plus
//! `--trace-children=yes` where a program execs), parses both tools' XML (protocol 4) and
//! compares, for every process, the multiset of records:
//!
//! - a loss record: (kind, `<leakedbytes>`, `<leakedblocks>`, file:line);
//! - any other error: (kind, the first `<auxwhat>` with its addresses masked, file:line);
//!
//! where file:line is the first frame of the error's first stack that lies in one of the
//! fixture's own source files. A record without such a frame (a block glibc or libstdc++
//! allocated for itself) is compared by its other fields only. Processes are matched by their
//! command line and their depth in the process tree.
//!
//! Where the two tools differ for a reason that is documented (README, "Known differences from
//! Valgrind"), the difference is corrected record by record by the allow-list `documented()`
//! below, and the correction is shown in the listing; nothing else is loosened. A mismatch
//! prints both tools' records side by side.

mod common;
use common::*;
use quick_xml::events::Event;
use quick_xml::Reader;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

// ---------------------------------------------------------------------------------------------
// The XML documents
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tool {
    Valgrind,
    Memcheck,
}

#[derive(Default, Debug, Clone)]
struct Frame {
    func: Option<String>,
    file: Option<String>,
    line: Option<u64>,
}

/// One `<error>` element (a loss record or another error).
#[derive(Default, Debug, Clone)]
struct XmlError {
    kind: String,
    leaked_bytes: Option<u64>,
    leaked_blocks: Option<u64>,
    auxwhat: Vec<String>,
    stacks: Vec<Vec<Frame>>,
}

/// One XML document: one process.
#[derive(Default, Debug)]
struct Doc {
    file: PathBuf,
    pid: u64,
    ppid: u64,
    argv: Vec<String>,
    errors: Vec<XmlError>,
}

fn parse_doc(path: &Path) -> Doc {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut r = Reader::from_str(&text);
    r.config_mut().trim_text(true);
    let mut doc = Doc {
        file: path.to_path_buf(),
        ..Doc::default()
    };
    let mut open: Vec<String> = Vec::new();
    let mut cur: Option<XmlError> = None;
    loop {
        let ev = r
            .read_event()
            .unwrap_or_else(|e| panic!("{}: bad XML: {e}\n{text}", path.display()));
        match ev {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                open.push(name);
                let p: Vec<&str> = open.iter().map(String::as_str).collect();
                match p.as_slice() {
                    ["valgrindoutput", "error"] => cur = Some(XmlError::default()),
                    ["valgrindoutput", "error", "stack"] => {
                        cur.as_mut().unwrap().stacks.push(Vec::new())
                    }
                    ["valgrindoutput", "error", "stack", "frame"] => cur
                        .as_mut()
                        .unwrap()
                        .stacks
                        .last_mut()
                        .unwrap()
                        .push(Frame::default()),
                    _ => {}
                }
            }
            Event::End(_) => {
                let p: Vec<&str> = open.iter().map(String::as_str).collect();
                if p.as_slice() == ["valgrindoutput", "error"] {
                    doc.errors.push(cur.take().unwrap());
                }
                open.pop();
            }
            Event::Text(t) => {
                let v = t
                    .unescape()
                    .unwrap_or_else(|e| panic!("{}: bad text: {e}", path.display()))
                    .into_owned();
                let p: Vec<&str> = open.iter().map(String::as_str).collect();
                let num = || {
                    v.parse::<u64>()
                        .unwrap_or_else(|_| panic!("{}: not a number: {v}", path.display()))
                };
                match p.as_slice() {
                    ["valgrindoutput", "pid"] => doc.pid = num(),
                    ["valgrindoutput", "ppid"] => doc.ppid = num(),
                    ["valgrindoutput", "args", "argv", "exe" | "arg"] => doc.argv.push(v),
                    ["valgrindoutput", "error", rest @ ..] => {
                        let e = cur.as_mut().unwrap();
                        match rest {
                            ["kind"] => e.kind = v,
                            ["auxwhat"] => e.auxwhat.push(v),
                            ["xwhat", "leakedbytes"] => e.leaked_bytes = Some(num()),
                            ["xwhat", "leakedblocks"] => e.leaked_blocks = Some(num()),
                            ["stack", "frame", field] => {
                                let f = e.stacks.last_mut().unwrap().last_mut().unwrap();
                                match *field {
                                    "fn" => f.func = Some(v),
                                    "file" => f.file = Some(v),
                                    "line" => f.line = Some(num()),
                                    _ => {}
                                }
                            }
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(
        open.is_empty(),
        "{}: truncated XML document:\n{text}",
        path.display()
    );
    doc
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

/// What is compared. For a loss record `aux` is empty; for another error `bytes` and `blocks`
/// are 0.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Record {
    kind: String,
    bytes: u64,
    blocks: u64,
    aux: String,
    at: Option<(String, u64)>,
    /// Per stack of the record (the call's, then where the block was freed and allocated):
    /// whether it was kept, rather than Valgrind's `0x0: ???` (--keep-stacktraces).
    kept: Vec<bool>,
}

/// A record with what is shown beside it (not compared): the function of the fixture frame,
/// and the allow-list correction applied to it, if any.
#[derive(Clone, Debug)]
struct Shown {
    rec: Record,
    func: String,
    note: String,
}

impl std::fmt::Display for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = match &self.at {
            Some((file, line)) => format!("{file}:{line}"),
            None => "(no fixture frame)".to_string(),
        };
        let kept: String = self
            .kept
            .iter()
            .map(|&k| if k { '+' } else { '-' })
            .collect();
        if self.aux.is_empty() {
            write!(
                f,
                "{} {}B/{} @ {at} [{kept}]",
                self.kind, self.bytes, self.blocks
            )
        } else {
            write!(f, "{} \"{}\" @ {at} [{kept}]", self.kind, self.aux)
        }
    }
}

/// `text` with every hexadecimal address replaced by `0x_` (addresses differ between runs and
/// tools; what the address is said to be must not).
fn mask_addresses(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("0x") {
        let digits = rest[i + 2..]
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(rest.len() - i - 2);
        out.push_str(&rest[..i]);
        out.push_str(if digits > 0 { "0x_" } else { "0x" });
        rest = &rest[i + 2 + digits..];
    }
    out.push_str(rest);
    out
}

/// The functions of all the frames of an error's first stack.
fn stack_functions(e: &XmlError) -> Vec<&str> {
    e.stacks
        .first()
        .map(|s| s.iter().filter_map(|f| f.func.as_deref()).collect())
        .unwrap_or_default()
}

/// The documented differences between the tools, each corrected on the one record it concerns
/// (and said so in the listing). Returns the note to show, or "" when nothing applies.
fn documented(tool: Tool, e: &XmlError, rec: &mut Record) -> String {
    let fns = stack_functions(e);
    // README, "Known differences": glibc's thread-pointer (TLS) vector, which pthread_create
    // allocates for a new thread (calloc in allocate_dtv under _dl_allocate_tls; "possibly
    // lost" in both tools as the thread descriptor points 16 bytes inside it), has one more
    // 16-byte slot under memcheck because the LD_PRELOADed shim is a module with TLS of its
    // own: 288 bytes per block instead of Valgrind's 272.
    if tool == Tool::Memcheck
        && rec.kind == "Leak_PossiblyLost"
        && fns
            .iter()
            .any(|f| f.contains("_dl_allocate_tls") || f.contains("allocate_dtv"))
    {
        rec.bytes -= 16 * rec.blocks;
        return "allow-list: shim's TLS slot, -16 B per block".into();
    }
    String::new()
}

fn records(tool: Tool, doc: &Doc, sources: &[&str]) -> Vec<Shown> {
    let mut v: Vec<Shown> = doc
        .errors
        .iter()
        .map(|e| {
            let first = e.stacks.first().cloned().unwrap_or_default();
            let fixture_frame = first.iter().find(|f| {
                f.file
                    .as_deref()
                    .is_some_and(|file| sources.iter().any(|s| s == &file))
            });
            let leak = e.kind.starts_with("Leak_");
            let mut rec = Record {
                kind: e.kind.clone(),
                bytes: if leak {
                    e.leaked_bytes
                        .unwrap_or_else(|| panic!("no leakedbytes: {e:?}"))
                } else {
                    0
                },
                blocks: if leak {
                    e.leaked_blocks
                        .unwrap_or_else(|| panic!("no leakedblocks: {e:?}"))
                } else {
                    0
                },
                aux: if leak {
                    String::new()
                } else {
                    mask_addresses(e.auxwhat.first().map(String::as_str).unwrap_or("(none)"))
                },
                at: fixture_frame.map(|f| (f.file.clone().unwrap(), f.line.unwrap_or(0))),
                kept: e
                    .stacks
                    .iter()
                    .map(|s| s.iter().any(|f| f.func.is_some()))
                    .collect(),
            };
            let note = documented(tool, e, &mut rec);
            let func = fixture_frame
                .and_then(|f| f.func.clone())
                .unwrap_or_else(|| {
                    // No fixture frame: show the innermost frames instead.
                    stack_functions(e)
                        .into_iter()
                        .take(4)
                        .collect::<Vec<_>>()
                        .join(" < ")
                });
            Shown { rec, func, note }
        })
        .collect();
    v.sort_by(|a, b| a.rec.cmp(&b.rec));
    v
}

/// Both sorted record lists side by side: matched records on one row, a record of one tool
/// only with `-` on the other side (and `<<` marking the row).
fn side_by_side(vg: &[Shown], mc: &[Shown]) -> String {
    let cell = |s: &Shown| {
        let mut t = format!("{}  [{}]", s.rec, s.func);
        if !s.note.is_empty() {
            write!(t, "  ({})", s.note).unwrap();
        }
        t
    };
    let rows = {
        let (mut i, mut j) = (0, 0);
        let mut rows: Vec<(String, String, bool)> = Vec::new();
        while i < vg.len() || j < mc.len() {
            let ord = match (vg.get(i), mc.get(j)) {
                (Some(a), Some(b)) => a.rec.cmp(&b.rec),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match ord {
                std::cmp::Ordering::Equal => {
                    rows.push((cell(&vg[i]), cell(&mc[j]), false));
                    i += 1;
                    j += 1;
                }
                std::cmp::Ordering::Less => {
                    rows.push((cell(&vg[i]), "-".into(), true));
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    rows.push(("-".into(), cell(&mc[j]), true));
                    j += 1;
                }
            }
        }
        rows
    };
    let w = rows
        .iter()
        .map(|r| r.0.chars().count())
        .max()
        .unwrap_or(0)
        .max(8);
    let mut out = format!("   {:w$} | memcheck\n", "valgrind");
    for (a, b, diff) in rows {
        writeln!(out, "{} {a:w$} | {b}", if diff { "<<" } else { "  " }).unwrap();
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Running both tools
// ---------------------------------------------------------------------------------------------

static SEQ: AtomicUsize = AtomicUsize::new(0);

struct ToolRun {
    code: Option<i32>,
    stderr: String,
    docs: Vec<Doc>,
}

fn run_tool(tool: Tool, dir: &Path, opts: &[String], prog: &Path, args: &[&str]) -> ToolRun {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let mut cmd = match tool {
        Tool::Valgrind => Command::new("valgrind"),
        Tool::Memcheck => Command::new(memcheck_bin()),
    };
    cmd.args(opts)
        .arg(format!("--xml-file={}/out.%p.xml", dir.display()))
        .arg(prog)
        .args(args)
        .stdin(Stdio::null());
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool:?} (valgrind must be installed): {e}"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    files.sort();
    ToolRun {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        docs: files.iter().map(|f| parse_doc(f)).collect(),
    }
}

/// A process's identity across the two runs: its command line (the program's file name and
/// its arguments) and its depth in the tree of the run's processes.
fn process_key(doc: &Doc, docs: &[Doc]) -> String {
    let mut depth = 0;
    let mut ppid = doc.ppid;
    while let Some(p) = docs.iter().find(|d| d.pid == ppid) {
        depth += 1;
        ppid = p.ppid;
        assert!(depth < 64, "cycle in the process tree");
    }
    let mut argv = doc.argv.clone();
    if let Some(exe) = argv.first_mut() {
        *exe = Path::new(exe.as_str())
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    format!("depth {depth}: {}", argv.join(" "))
}

/// The fixture's processes by key, several processes of the same key in pid order.
fn by_key(docs: &[Doc]) -> BTreeMap<String, Vec<&Doc>> {
    let mut m: BTreeMap<String, Vec<&Doc>> = BTreeMap::new();
    for d in docs {
        m.entry(process_key(d, docs)).or_default().push(d);
    }
    for v in m.values_mut() {
        v.sort_by_key(|d| d.pid);
    }
    m
}

/// A fixture run and what it must show.
struct Case<'a> {
    /// The fixture (tests/fixtures/{c,cpp}/NAME.{c,cpp}).
    name: &'a str,
    /// The program's arguments.
    args: Vec<String>,
    /// Options for both tools beyond the common ones.
    extra: &'a [&'a str],
    /// The source files whose frames count as "the fixture's" (file names).
    sources: &'a [&'a str],
    /// The program's exit code under both tools.
    code: i32,
    /// How many processes report (under both tools).
    processes: usize,
    /// Records that Valgrind must report, so that the fixture does what it says: (kind,
    /// fixture, marker of the line of the first fixture frame).
    expect: &'a [(&'a str, &'a str, &'a str)],
}

fn compare(case: Case) {
    let prog = fixture(case.name);
    compare_program(&prog, case)
}

fn compare_program(prog: &Path, case: Case) {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let base = root().join("target/fixtures").join(format!(
        "vgcmp-{}-{}-{n}",
        case.name,
        std::process::id()
    ));
    let mut opts: Vec<String> = ["--leak-check=full", "--show-leak-kinds=all", "--xml=yes"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    opts.extend(case.extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
    let vg = run_tool(Tool::Valgrind, &base.join("valgrind"), &opts, prog, &args);
    let mc = run_tool(Tool::Memcheck, &base.join("memcheck"), &opts, prog, &args);

    let mut problems = String::new();
    if vg.code != Some(case.code) || mc.code != Some(case.code) {
        writeln!(
            problems,
            "exit codes: valgrind {:?}, memcheck {:?}, expected {}\nvalgrind stderr:\n{}\nmemcheck stderr:\n{}",
            vg.code, mc.code, case.code, vg.stderr, mc.stderr
        )
        .unwrap();
    }
    let (vk, mk) = (by_key(&vg.docs), by_key(&mc.docs));
    let count = |m: &BTreeMap<String, Vec<&Doc>>| m.values().map(Vec::len).sum::<usize>();
    if count(&vk) != case.processes || count(&mk) != case.processes {
        writeln!(
            problems,
            "processes: expected {}; valgrind {:?}; memcheck {:?}",
            case.processes,
            vk.iter()
                .map(|(k, v)| format!("{k} x{}", v.len()))
                .collect::<Vec<_>>(),
            mk.iter()
                .map(|(k, v)| format!("{k} x{}", v.len()))
                .collect::<Vec<_>>()
        )
        .unwrap();
    }
    let keys: std::collections::BTreeSet<&String> = vk.keys().chain(mk.keys()).collect();
    let mut all_vg: Vec<Shown> = Vec::new();
    for key in keys {
        let (vd, md) = (
            vk.get(key).cloned().unwrap_or_default(),
            mk.get(key).cloned().unwrap_or_default(),
        );
        for i in 0..vd.len().max(md.len()) {
            let v = vd
                .get(i)
                .map(|d| records(Tool::Valgrind, d, case.sources))
                .unwrap_or_default();
            let m = md
                .get(i)
                .map(|d| records(Tool::Memcheck, d, case.sources))
                .unwrap_or_default();
            let same = v.len() == m.len() && v.iter().zip(&m).all(|(a, b)| a.rec == b.rec);
            if !same || vd.get(i).is_none() || md.get(i).is_none() {
                writeln!(
                    problems,
                    "process [{key}] #{i} (valgrind {}, memcheck {}) differs:\n{}",
                    vd.get(i)
                        .map(|d| d.file.display().to_string())
                        .unwrap_or("missing".into()),
                    md.get(i)
                        .map(|d| d.file.display().to_string())
                        .unwrap_or("missing".into()),
                    side_by_side(&v, &m)
                )
                .unwrap();
            } else {
                eprintln!(
                    "{}: process [{key}] #{i}: {} records agree\n{}",
                    case.name,
                    v.len(),
                    side_by_side(&v, &m)
                );
            }
            all_vg.extend(v);
        }
    }
    // The fixture does what it says: Valgrind reports the records it was written for.
    for (kind, file, marker) in case.expect {
        let line = marker_line(file, marker);
        if !all_vg
            .iter()
            .any(|s| s.rec.kind == *kind && s.rec.at.as_ref().is_some_and(|(_, l)| *l == line))
        {
            writeln!(
                problems,
                "the fixture is off: Valgrind has no {kind} record at {file}:{line} ({marker})"
            )
            .unwrap();
        }
    }
    assert!(
        problems.is_empty(),
        "{}: memcheck and Valgrind disagree (XML in {})\n{problems}",
        case.name,
        base.display()
    );
    let _ = std::fs::remove_dir_all(&base);
}

/// The line of fixture `name` that carries `marker` as a whole word (a marker may be the
/// prefix of another, e.g. VG_BAD_INTERIOR_ALLOC and VG_BAD_INTERIOR_FREE).
fn marker_line(name: &str, marker: &str) -> u64 {
    for (dir, ext) in [("c", "c"), ("cpp", "cpp")] {
        let p = root()
            .join("tests/fixtures")
            .join(dir)
            .join(format!("{name}.{ext}"));
        if let Ok(t) = std::fs::read_to_string(&p) {
            let hits: Vec<usize> = t
                .lines()
                .enumerate()
                .filter(|(_, l)| {
                    l.match_indices(marker).any(|(i, _)| {
                        !l[i + marker.len()..]
                            .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                    })
                })
                .map(|(i, _)| i + 1)
                .collect();
            assert_eq!(hits.len(), 1, "marker {marker} in {name}: lines {hits:?}");
            return hits[0] as u64;
        }
    }
    panic!("no fixture {name}")
}

const DEF: &str = "Leak_DefinitelyLost";
const IND: &str = "Leak_IndirectlyLost";
const POS: &str = "Leak_PossiblyLost";
const REACH: &str = "Leak_StillReachable";

// ---------------------------------------------------------------------------------------------
// The corpus
// ---------------------------------------------------------------------------------------------

#[test]
fn lost_list_head_with_its_nodes() {
    compare(Case {
        name: "vg_list",
        args: vec![],
        extra: &[],
        sources: &["vg_list.c"],
        code: 0,
        processes: 1,
        expect: &[
            (DEF, "vg_list", "VG_LIST_HEAD"),
            (IND, "vg_list", "VG_LIST_NODE"),
            (REACH, "vg_list", "VG_LIST_HEAD"),
            (REACH, "vg_list", "VG_LIST_NODE"),
        ],
    });
}

#[test]
fn lost_tree() {
    compare(Case {
        name: "vg_tree",
        args: vec![],
        extra: &[],
        sources: &["vg_tree.c"],
        code: 0,
        processes: 1,
        expect: &[
            (DEF, "vg_tree", "VG_TREE_NODE"),
            (IND, "vg_tree", "VG_TREE_NODE"),
            (REACH, "vg_tree", "VG_TREE_NODE"),
        ],
    });
}

#[test]
fn cycles() {
    compare(Case {
        name: "vg_cycle",
        args: vec![],
        extra: &[],
        sources: &["vg_cycle.c"],
        code: 0,
        processes: 1,
        expect: &[
            (DEF, "vg_cycle", "VG_CYCLE_NODE"),
            (IND, "vg_cycle", "VG_CYCLE_NODE"),
            (DEF, "vg_cycle", "VG_CYCLE_SELF"),
            (REACH, "vg_cycle", "VG_CYCLE_NODE"),
        ],
    });
}

#[test]
fn blocks_reachable_only_through_interior_pointers() {
    compare(Case {
        name: "vg_interior",
        args: vec![],
        extra: &[],
        sources: &["vg_interior.c"],
        code: 0,
        processes: 1,
        expect: &[
            (POS, "vg_interior", "VG_INTERIOR_MID"),
            (POS, "vg_interior", "VG_INTERIOR_CHILD"),
            (DEF, "vg_interior", "VG_INTERIOR_LOST_PARENT"),
            (IND, "vg_interior", "VG_INTERIOR_LOST_CHILD"),
            (DEF, "vg_interior", "VG_INTERIOR_PAST_END"),
            (REACH, "vg_interior", "VG_INTERIOR_BOTH"),
        ],
    });
}

#[test]
fn blocks_whose_last_word_glibc_would_lend_to_the_next_chunk() {
    compare(Case {
        name: "vg_chunk_tail",
        args: vec![],
        extra: &[],
        sources: &["vg_chunk_tail.c"],
        code: 0,
        processes: 1,
        expect: &[
            (POS, "vg_chunk_tail", "VG_TAIL_TAIL"),
            (DEF, "vg_chunk_tail", "VG_TAIL_LOST"),
            (DEF, "vg_chunk_tail", "VG_TAIL_PAIR_A"),
            (DEF, "vg_chunk_tail", "VG_TAIL_PAIR_B"),
            (DEF, "vg_chunk_tail", "VG_TAIL_LAST"),
        ],
    });
}

#[test]
fn blocks_held_by_globals() {
    compare(Case {
        name: "vg_globals",
        args: vec![],
        extra: &[],
        sources: &["vg_globals.c"],
        code: 0,
        processes: 1,
        expect: &[
            (REACH, "vg_globals", "VG_GLOBALS_DATA"),
            (REACH, "vg_globals", "VG_GLOBALS_BSS"),
            (REACH, "vg_globals", "VG_GLOBALS_STATIC"),
            (REACH, "vg_globals", "VG_GLOBALS_ARRAY"),
            (REACH, "vg_globals", "VG_GLOBALS_LIST"),
            (REACH, "vg_globals", "VG_GLOBALS_TLS"),
            (DEF, "vg_globals", "VG_GLOBALS_OVERWRITTEN"),
            (REACH, "vg_globals", "VG_GLOBALS_REPLACEMENT"),
        ],
    });
}

#[test]
fn blocks_held_by_live_stack_slots_at_exit_from_nested_functions() {
    compare(Case {
        name: "vg_exit_stack",
        args: vec![],
        extra: &[],
        sources: &["vg_exit_stack.c"],
        code: 0,
        processes: 1,
        expect: &[
            (REACH, "vg_exit_stack", "VG_EXIT_NODE"),
            (REACH, "vg_exit_stack", "VG_EXIT_L2"),
            (REACH, "vg_exit_stack", "VG_EXIT_L3"),
            (DEF, "vg_exit_stack", "VG_EXIT_LOST"),
        ],
    });
}

#[test]
fn aligned_allocators() {
    compare(Case {
        name: "vg_aligned",
        args: vec![],
        extra: &[],
        sources: &["vg_aligned.c"],
        code: 0,
        processes: 1,
        expect: &[
            (DEF, "vg_aligned", "VG_ALIGNED_POSIX"),
            (REACH, "vg_aligned", "VG_ALIGNED_POSIX"),
            (DEF, "vg_aligned", "VG_ALIGNED_ALIGNED_ALLOC_LOST"),
            (DEF, "vg_aligned", "VG_ALIGNED_MEMALIGN_LOST"),
            (DEF, "vg_aligned", "VG_ALIGNED_VALLOC_LOST"),
            (REACH, "vg_aligned", "VG_ALIGNED_ALIGNED_ALLOC_KEPT"),
            (REACH, "vg_aligned", "VG_ALIGNED_MEMALIGN_KEPT"),
            (REACH, "vg_aligned", "VG_ALIGNED_VALLOC_KEPT"),
        ],
    });
}

#[test]
fn aligned_operator_new() {
    compare(Case {
        name: "vg_aligned_new",
        args: vec![],
        extra: &[],
        sources: &["vg_aligned_new.cpp"],
        code: 0,
        processes: 1,
        expect: &[
            (DEF, "vg_aligned_new", "VG_ANEW_LOSE_ONE"),
            (DEF, "vg_aligned_new", "VG_ANEW_LOSE_ARRAY"),
            (DEF, "vg_aligned_new", "VG_ANEW_LOSE_RAW"),
            (REACH, "vg_aligned_new", "VG_ANEW_KEEP_ONE"),
            (REACH, "vg_aligned_new", "VG_ANEW_KEEP_ARRAY"),
            (REACH, "vg_aligned_new", "VG_ANEW_KEEP_RAW"),
        ],
    });
}

#[test]
fn cxx_objects_owning_strings_and_vectors() {
    compare(Case {
        name: "vg_cxx_owners",
        args: vec![],
        extra: &[],
        sources: &["vg_cxx_owners.cpp"],
        code: 0,
        processes: 1,
        expect: &[
            (DEF, "vg_cxx_owners", "VG_CXX_NEW"),
            (IND, "vg_cxx_owners", "VG_CXX_NAME"),
            (IND, "vg_cxx_owners", "VG_CXX_VALUES"),
            (IND, "vg_cxx_owners", "VG_CXX_RESERVE"),
            (IND, "vg_cxx_owners", "VG_CXX_TAG"),
            (REACH, "vg_cxx_owners", "VG_CXX_NEW"),
            (REACH, "vg_cxx_owners", "VG_CXX_NAME"),
        ],
    });
}

#[test]
fn new_array_of_objects_with_destructors_held_through_its_first_element() {
    compare(Case {
        name: "vg_newarray",
        args: vec![],
        extra: &[],
        sources: &["vg_newarray.cpp"],
        code: 0,
        processes: 1,
        expect: &[
            (REACH, "vg_newarray", "VG_NEWARRAY_KEEP"),
            (DEF, "vg_newarray", "VG_NEWARRAY_LOSE"),
            (REACH, "vg_newarray", "VG_NEWARRAY_PLAIN"),
        ],
    });
}

#[test]
fn glibc_allocated_strings() {
    compare(Case {
        name: "vg_glibc_strings",
        args: vec![],
        extra: &[],
        sources: &["vg_glibc_strings.c"],
        code: 0,
        processes: 1,
        expect: &[
            (DEF, "vg_glibc_strings", "VG_GLIBC_STRDUP_LOST"),
            (DEF, "vg_glibc_strings", "VG_GLIBC_STRNDUP_LOST"),
            (DEF, "vg_glibc_strings", "VG_GLIBC_ASPRINTF_LOST"),
            (DEF, "vg_glibc_strings", "VG_GLIBC_GETCWD_LOST"),
            (DEF, "vg_glibc_strings", "VG_GLIBC_REALPATH_LOST"),
            (REACH, "vg_glibc_strings", "VG_GLIBC_STRDUP_KEPT"),
            (REACH, "vg_glibc_strings", "VG_GLIBC_STRNDUP_KEPT"),
            (REACH, "vg_glibc_strings", "VG_GLIBC_ASPRINTF_KEPT"),
            (REACH, "vg_glibc_strings", "VG_GLIBC_GETCWD_KEPT"),
            (REACH, "vg_glibc_strings", "VG_GLIBC_REALPATH_KEPT"),
        ],
    });
}

#[test]
fn double_invalid_and_mismatched_frees() {
    const F: &str = "vg_bad_frees";
    compare(Case {
        name: F,
        args: vec![],
        extra: &[],
        sources: &["vg_bad_frees.cpp"],
        code: 0,
        processes: 1,
        expect: &[
            ("InvalidFree", F, "VG_BAD_DOUBLE_SECOND"),
            ("InvalidFree", F, "VG_BAD_STACK"),
            ("InvalidFree", F, "VG_BAD_GLOBAL"),
            ("InvalidFree", F, "VG_BAD_INTERIOR_FREE"),
            ("InvalidFree", F, "VG_BAD_REALLOC_CALL"),
            ("InvalidFree", F, "VG_BAD_DELETE_TWICE"),
            ("MismatchedFree", F, "VG_BAD_NEWARR_DELETE"),
            ("MismatchedFree", F, "VG_BAD_NEW_FREE"),
            ("MismatchedFree", F, "VG_BAD_MALLOC_DELETE"),
            ("MismatchedFree", F, "VG_BAD_NEWONE_DELETE_ARRAY"),
            ("MismatchedFree", F, "VG_BAD_MISDOUBLE_FIRST"),
            ("InvalidFree", F, "VG_BAD_MISDOUBLE_SECOND"),
        ],
    });
}

#[test]
fn stacks_kept_as_keep_stacktraces_says() {
    // Bad frees and leaks, with each setting of --keep-stacktraces but the default: the call's
    // own stack is always shown, where the block was allocated or freed only if kept (else
    // Valgrind's `0x0: ???`, or nothing for a freed block's allocation; a mismatched free's
    // stack is the error's, not kept as where the block was freed), and the blocks of a kind
    // leaked without a kept stack make one loss record.
    const F: &str = "vg_bad_frees";
    for keep in ["alloc", "free", "alloc-then-free", "none"] {
        let opt = format!("--keep-stacktraces={keep}");
        compare(Case {
            name: F,
            args: vec![],
            extra: &[&opt],
            sources: &["vg_bad_frees.cpp"],
            code: 0,
            processes: 1,
            expect: &[
                ("InvalidFree", F, "VG_BAD_DOUBLE_SECOND"),
                ("InvalidFree", F, "VG_BAD_REALLOC_CALL"),
                ("MismatchedFree", F, "VG_BAD_NEW_FREE"),
                ("InvalidFree", F, "VG_BAD_MISDOUBLE_SECOND"),
            ],
        });
        compare(Case {
            name: "vg_list",
            args: vec![],
            extra: &[&opt],
            sources: &["vg_list.c"],
            code: 0,
            processes: 1,
            expect: &[],
        });
    }
}

#[test]
fn threads() {
    compare(Case {
        name: "vg_threads",
        args: vec![],
        extra: &[],
        sources: &["vg_threads.c"],
        code: 0,
        processes: 1,
        expect: &[
            (DEF, "vg_threads", "VG_THREADS_LOSER"),
            (REACH, "vg_threads", "VG_THREADS_KEEPER"),
            (REACH, "vg_threads", "VG_THREADS_SLEEPER"),
            (POS, "vg_threads", "VG_THREADS_CREATE_JOINED"),
        ],
    });
}

#[test]
fn fork() {
    compare(Case {
        name: "vg_fork",
        args: vec![],
        extra: &[],
        sources: &["vg_fork.c"],
        code: 0,
        processes: 2,
        expect: &[
            (REACH, "vg_fork", "VG_FORK_BEFORE"),
            (DEF, "vg_fork", "VG_FORK_LOSE"),
            (REACH, "vg_fork", "VG_FORK_CHILD_KEEP"),
        ],
    });
}

#[test]
fn exec_with_trace_children() {
    let child = fixture("vg_exec_child");
    let prog = fixture("vg_exec");
    compare_program(
        &prog,
        Case {
            name: "vg_exec",
            args: vec![child.display().to_string()],
            extra: &["--trace-children=yes"],
            sources: &["vg_exec.c", "vg_exec_child.c"],
            code: 0,
            processes: 2,
            expect: &[
                (REACH, "vg_exec", "VG_EXEC_KEEP"),
                (DEF, "vg_exec", "VG_EXEC_LOSE"),
                (DEF, "vg_exec_child", "VG_EXEC_CHILD_HEAD"),
                (IND, "vg_exec_child", "VG_EXEC_CHILD_NODE"),
                (REACH, "vg_exec_child", "VG_EXEC_CHILD_KEEP"),
            ],
        },
    );
}

#[test]
fn dlopened_library() {
    let lib = shared_fixture("vg_dl_lib");
    compare(Case {
        name: "vg_dlopen",
        args: vec![lib.display().to_string()],
        extra: &[],
        sources: &["vg_dlopen.c", "vg_dl_lib.c"],
        code: 0,
        processes: 1,
        expect: &[
            (REACH, "vg_dl_lib", "VG_DL_LIB_KEEP"),
            (DEF, "vg_dl_lib", "VG_DL_LIB_LOSE"),
        ],
    });
}

#[test]
fn interior_pointers_accepted_by_valgrinds_heuristics() {
    const F: &str = "vg_interior_heuristics";
    compare(Case {
        name: F,
        args: vec![],
        extra: &[],
        sources: &["vg_interior_heuristics.cpp"],
        code: 0,
        processes: 1,
        expect: &[
            (REACH, F, "VG_HEUR_MI"),
            (REACH, F, "VG_HEUR_LEN64"),
            (POS, F, "VG_HEUR_LEN64"),
            (REACH, F, "VG_HEUR_STR"),
            (POS, F, "VG_HEUR_STR"),
        ],
    });
}

/// glibc's and libstdc++'s own blocks (stdio buffers, locale and time zone data, the exception
/// emergency pool) are freed by their cleanup hooks, which Valgrind runs at the exit. memcheck's
/// shim runs the same hooks (README, "How it works"), so no record of either tool shows them
/// and the allow-list has no entry for them: were the hooks not run by memcheck, these blocks
/// would show up here as memcheck-only still-reachable records.
#[test]
fn library_blocks_freed_by_cleanup_hooks_on_return_from_main() {
    compare(Case {
        name: "vg_exit_hooks",
        args: vec![],
        extra: &[],
        sources: &["vg_exit_hooks.cpp"],
        code: 0,
        processes: 1,
        expect: &[(DEF, "vg_exit_hooks", "VG_HOOKS_LOSE")],
    });
}

/// As above, the program ending by _exit from a nested function: Valgrind runs the hooks at
/// any exit of the process, memcheck's shim at _exit as well.
#[test]
fn library_blocks_freed_by_cleanup_hooks_on_underscore_exit() {
    compare(Case {
        name: "vg_exit_hooks",
        args: vec!["_exit".into()],
        extra: &[],
        sources: &["vg_exit_hooks.cpp"],
        code: 0,
        processes: 1,
        expect: &[(DEF, "vg_exit_hooks", "VG_HOOKS_LOSE")],
    });
}
