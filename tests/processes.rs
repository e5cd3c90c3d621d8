//! Processes, threads and exit paths: every way a program ends is reported with the blocks it
//! still held; threads share one heap; fork children are reported on their own; exec'd
//! programs only with --trace-children=yes; the program's own I/O and exit status are untouched;
//! real-world programs (python3, gcc) run unchanged and cleanly.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every process report of a run.
fn procs(r: &Run) -> &Vec<Value> {
    r.json["processes"]
        .as_array()
        .unwrap_or_else(|| panic!("no processes in the JSON report; stderr:\n{}", r.stderr))
}

/// A process report's heap summary: (in use bytes, in use blocks, allocs, frees, bytes allocated).
fn heap(p: &Value) -> (u64, u64, u64, u64, u64) {
    heap_summary(p)
}

fn leak(kind: &str, bytes: u64, blocks: u64) -> (String, u64, u64) {
    (kind.to_string(), bytes, blocks)
}

/// The single loss record whose stack passes through `function`.
fn only_leak_in<'a>(p: &'a Value, function: &str) -> &'a Value {
    let v = leaks_in(p, function);
    assert_eq!(
        v.len(),
        1,
        "one loss record through {function}, got: {:#?}",
        p["leaks"]
    );
    v[0]
}

/// Asserts no process of the run reported an error.
fn assert_no_errors(r: &Run) {
    for p in procs(r) {
        let e = p["errors"].as_array().unwrap();
        assert!(
            e.is_empty(),
            "process {} ({}) reported errors: {e:#?}\nstderr:\n{}",
            p["pid"],
            p["exe"],
            r.stderr
        );
    }
}

/// The processes whose executable's file name is `name`.
fn by_exe<'a>(r: &'a Run, name: &str) -> Vec<&'a Value> {
    procs(r)
        .iter()
        .filter(|p| {
            p["exe"]
                .as_str()
                .is_some_and(|e| Path::new(e).file_name().is_some_and(|f| f == name))
        })
        .collect()
}

fn pid(p: &Value) -> u64 {
    p["pid"].as_u64().unwrap()
}

// ---------------------------------------------------------------------------------------------
// 1. Exit paths
// ---------------------------------------------------------------------------------------------

#[test]
fn return_from_main_reports_what_is_still_allocated() {
    let prog = fixture("proc_exit_main");
    let r = memcheck(&["--leak-check=full"], &prog, &[], b"");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.json["exit"], json!({"code": 0}));
    assert_eq!(procs(&r).len(), 1, "{:#?}", r.json);
    let p = r.root();
    assert_eq!(p["exit"], json!({"code": 0}));
    assert_eq!(
        leak_list(p),
        vec![
            leak("Leak_DefinitelyLost", 100, 1),
            leak("Leak_StillReachable", 200, 1)
        ]
    );
    assert_eq!(only_leak_in(p, "lose_block")["kind"], "Leak_DefinitelyLost");
    assert_eq!(only_leak_in(p, "keep_block")["kind"], "Leak_StillReachable");
    assert_eq!(heap(p), (300, 2, 7, 5, 380));
    assert_eq!(heap(p), valgrind_heap_summary(&prog, &[]));
    assert_no_errors(&r);
}

#[test]
fn exit_from_nested_functions_reports_blocks_of_every_level() {
    let prog = fixture("proc_exit_deep");
    let r = memcheck(&["--leak-check=full"], &prog, &[], b"");
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert_eq!(r.json["exit"], json!({"code": 3}));
    let p = r.root();
    assert_eq!(p["exit"], json!({"code": 3}));
    assert_eq!(
        leak_list(p),
        vec![
            leak("Leak_DefinitelyLost", 64, 1),
            leak("Leak_StillReachable", 128, 1),
            leak("Leak_StillReachable", 256, 1)
        ]
    );
    // level1's own block; the others' stacks pass through level1 too.
    let own: Vec<_> = leaks_in(p, "level1")
        .into_iter()
        .filter(|l| !functions(&l["stack"]).contains(&"level2".to_string()))
        .collect();
    assert_eq!(own.len(), 1, "{:#?}", p["leaks"]);
    assert_eq!(
        (
            own[0]["kind"].as_str().unwrap(),
            own[0]["bytes"].as_u64().unwrap()
        ),
        ("Leak_DefinitelyLost", 64)
    );
    let l3 = only_leak_in(p, "level3");
    assert_eq!(l3["bytes"], 256);
    let f = functions(&l3["stack"]);
    let pos = |n: &str| {
        f.iter()
            .position(|x| x == n)
            .unwrap_or_else(|| panic!("{n} not in {f:?}"))
    };
    assert_eq!(f[0], "malloc");
    assert!(
        pos("level3") < pos("level2")
            && pos("level2") < pos("level1")
            && pos("level1") < pos("main"),
        "{f:?}"
    );
    let (func, file, line) = user_frame(&l3["stack"]).unwrap();
    assert_eq!(
        (func.as_str(), file.as_str(), line),
        (
            "level3",
            "proc_exit_deep.c",
            line_of("proc_exit_deep", "g3 = malloc(256)")
        )
    );
    assert_eq!(heap(p), (448, 3, 4, 1, 480));
    assert_eq!(heap(p), valgrind_heap_summary(&prog, &[]));
    assert_no_errors(&r);
}

#[test]
fn underscore_exit_in_a_fork_child_is_reported_as_its_own_process() {
    let prog = fixture("proc_fork_exit");
    let r = memcheck(&["--leak-check=full"], &prog, &[], b"");
    assert_eq!(
        r.code,
        Some(0),
        "the parent saw a wrong child status or failed:\n{}",
        r.stderr
    );
    assert_eq!(procs(&r).len(), 2, "{:#?}", r.json);
    let parent = r.root();
    let child = procs(&r).iter().find(|p| pid(p) != pid(parent)).unwrap();
    assert_eq!(
        child["ppid"], parent["pid"],
        "the child's ppid is the parent's pid"
    );
    assert_eq!(child["exit"], json!({"code": 5}));
    assert_eq!(parent["exit"], json!({"code": 0}));
    assert_eq!(leak_list(child), vec![leak("Leak_DefinitelyLost", 300, 1)]);
    assert_eq!(
        user_frame(&only_leak_in(child, "child_leak")["stack"])
            .unwrap()
            .0,
        "child_leak"
    );
    assert_eq!(leak_list(parent), vec![leak("Leak_DefinitelyLost", 400, 1)]);
    assert_eq!(
        user_frame(&only_leak_in(parent, "parent_leak")["stack"])
            .unwrap()
            .0,
        "parent_leak"
    );
    assert_eq!(heap(child), (300, 1, 1, 0, 300));
    assert_eq!(heap(parent), (400, 1, 1, 0, 400));
    assert_no_errors(&r);
}

#[test]
fn abort_reports_the_heap_and_memcheck_dies_by_sigabrt() {
    let prog = fixture("proc_abort");
    let r = memcheck(&["--leak-check=full"], &prog, &[], b"");
    assert_eq!(
        r.signal,
        Some(6),
        "memcheck must end by SIGABRT; code {:?}\n{}",
        r.code,
        r.stderr
    );
    assert_eq!(r.code, None);
    assert_eq!(r.json["exit"], json!({"signal": 6}));
    let p = r.root();
    assert_eq!(p["exit"], json!({"signal": 6}));
    assert_eq!(
        leak_list(p),
        vec![
            leak("Leak_DefinitelyLost", 123, 1),
            leak("Leak_StillReachable", 77, 1)
        ]
    );
    assert_eq!(only_leak_in(p, "lose_before_abort")["bytes"], 123);
    assert_eq!(heap(p), (200, 2, 2, 0, 200));
    assert_no_errors(&r);
}

// ---------------------------------------------------------------------------------------------
// 2. Threads
// ---------------------------------------------------------------------------------------------

#[test]
fn blocks_freed_by_another_thread_are_no_error() {
    let prog = fixture("proc_thread_handoff");
    let r = memcheck(&["--leak-check=full"], &prog, &[], b"");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_no_errors(&r);
    let p = r.root();
    assert_eq!(leak_list(p), vec![], "nothing is left allocated");
    let (bytes, blocks, allocs, frees, _) = heap(p);
    let (vb, vn, va, vf, _) = valgrind_heap_summary(&prog, &[]);
    // bytes_allocated is not compared: glibc sizes each thread's DTV by the number of TLS
    // modules, and the shim is one more than Valgrind's preload.
    assert_eq!((bytes, blocks, allocs, frees), (vb, vn, va, vf));
    assert!(allocs >= 1100, "1000 + 100 blocks of the program: {allocs}");
}

#[test]
fn a_block_leaked_by_a_worker_thread_has_the_worker_in_its_stack() {
    let prog = fixture("proc_thread_leak");
    let r = memcheck(&["--leak-check=full"], &prog, &[], b"");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let p = r.root();
    assert_eq!(leak_list(p), vec![leak("Leak_DefinitelyLost", 4321, 1)]);
    let l = only_leak_in(p, "leaking_worker");
    assert_eq!(functions(&l["stack"])[0], "malloc");
    let (func, file, line) = user_frame(&l["stack"]).unwrap();
    assert_eq!(
        (func.as_str(), file.as_str(), line),
        (
            "leaking_worker",
            "proc_thread_leak.c",
            line_of("proc_thread_leak", "malloc(4321)")
        )
    );
    assert_no_errors(&r);
}

/// A threaded run that ends cleanly with no error, exactly `lost` (bytes, blocks) in use at
/// exit, all of it definitely lost, and Valgrind's (allocs, frees); returns its root process.
fn assert_exact_threaded_totals<'a>(
    r: &'a Run,
    what: &str,
    lost: (u64, u64),
    valgrind: (u64, u64),
) -> &'a Value {
    assert_eq!(r.code, Some(0), "{what}: {}", r.stderr);
    assert_no_errors(r);
    let p = r.root();
    let (bytes, blocks, allocs, frees, _) = heap(p);
    assert_eq!((bytes, blocks), lost, "{what}: in use at exit");
    assert_eq!(
        (allocs, frees),
        valgrind,
        "{what}: allocs/frees differ from Valgrind's"
    );
    assert_eq!(
        leak_list(p),
        vec![leak("Leak_DefinitelyLost", lost.0, lost.1)],
        "{what}"
    );
    p
}

#[test]
fn many_threads_give_exact_totals() {
    let prog = fixture("proc_thread_many");
    let (vb, vn, va, vf, _) = valgrind_heap_summary(&prog, &[]);
    assert_eq!((vb, vn), (8000, 8));
    // Several runs: thread interleavings differ from one run to the next.
    for run in 0..3 {
        let r = memcheck(&["--leak-check=full"], &prog, &[], b"");
        let what = format!("run {run}");
        let p = assert_exact_threaded_totals(&r, &what, (8000, 8), (va, vf));
        let (_, _, allocs, frees, _) = heap(p);
        assert!(
            frees >= 80_000 && allocs == frees + 8,
            "run {run}: {allocs} allocs, {frees} frees"
        );
        assert_eq!(only_leak_in(p, "work")["blocks"], 8);
        let ls = &p["leak_summary"];
        assert_eq!(
            ls["definitely_lost"],
            json!({"bytes": 8000, "blocks": 8}),
            "run {run}"
        );
        assert_eq!(
            ls["possibly_lost"],
            json!({"bytes": 0, "blocks": 0}),
            "run {run}"
        );
    }
}

/// Runs `prog` (which leaks `lost` = (bytes, blocks) and hands blocks between running threads)
/// with the default freelist, a small one and none (freed addresses come back from glibc
/// soonest): exact totals each time.
fn assert_exact_with_small_freelists(prog: &str, lost: (u64, u64)) {
    let prog = fixture(prog);
    let (vb, vn, va, vf, _) = valgrind_heap_summary(&prog, &[]);
    assert_eq!((vb, vn), lost);
    for opts in [&[][..], &["--freelist-blocks=16"], &["--freelist-blocks=0"]] {
        let mut args = vec!["--leak-check=full"];
        args.extend_from_slice(opts);
        let r = memcheck(&args, &prog, &[], b"");
        assert_exact_threaded_totals(&r, &format!("{opts:?}"), lost, (va, vf));
    }
}

#[test]
fn blocks_handed_between_running_threads_are_matched_to_their_frees() {
    // Freed addresses come back to the producer.
    assert_exact_with_small_freelists("proc_thread_pingpong", (500, 5));
}

#[test]
fn an_address_freed_and_allocated_again_by_the_other_thread_is_matched_to_each_life() {
    // The second thread's malloc gets back the address it has just freed, and the first
    // thread frees it.
    assert_exact_with_small_freelists("proc_thread_swap", (400, 4));
}

// ---------------------------------------------------------------------------------------------
// 3. fork
// ---------------------------------------------------------------------------------------------

#[test]
fn fork_child_frees_inherited_block_and_each_process_has_its_own_leaks() {
    let prog = fixture("proc_fork_inherit");
    let r = memcheck(&["--leak-check=full"], &prog, &[], b"");
    assert_eq!(
        r.code,
        Some(0),
        "the child failed or the parent did:\n{}",
        r.stderr
    );
    assert_no_errors(&r);
    assert_eq!(procs(&r).len(), 2, "{:#?}", r.json);
    let parent = r.root();
    let child = procs(&r).iter().find(|p| pid(p) != pid(parent)).unwrap();
    assert_eq!(child["ppid"], parent["pid"]);
    assert_eq!(child["exit"], json!({"code": 0}));
    assert_eq!(leak_list(child), vec![leak("Leak_DefinitelyLost", 77, 1)]);
    assert_eq!(only_leak_in(child, "child_leak")["bytes"], 77);
    assert!(leaks_in(child, "parent_leak").is_empty());
    assert_eq!(leak_list(parent), vec![leak("Leak_DefinitelyLost", 88, 1)]);
    assert_eq!(only_leak_in(parent, "parent_leak")["bytes"], 88);
    assert!(leaks_in(parent, "child_leak").is_empty());
    // Valgrind's counters live in the copied address space: the child starts from the parent's.
    assert_eq!(heap(child), (77, 1, 2, 1, 127));
    assert_eq!(heap(parent), (88, 1, 2, 1, 138));
}

// ---------------------------------------------------------------------------------------------
// 4. exec
// ---------------------------------------------------------------------------------------------

#[test]
fn exec_is_not_followed_by_default() {
    let prog = fixture("proc_exec_parent");
    let leaker = fixture("proc_exec_leaker");
    let r = memcheck(
        &["--leak-check=full"],
        &prog,
        &[leaker.to_str().unwrap()],
        b"",
    );
    assert_eq!(
        r.code,
        Some(0),
        "the exec'd program did not run or failed:\n{}",
        r.stderr
    );
    assert!(
        by_exe(&r, "proc_exec_leaker").is_empty(),
        "the exec'd program is reported: {:#?}",
        r.json
    );
    for p in procs(&r) {
        assert!(
            !leak_list(p).iter().any(|l| l.1 == 4242),
            "the exec'd program's leak is reported: {:#?}",
            p
        );
    }
    let root = r.root();
    assert!(root["exe"].as_str().unwrap().ends_with("proc_exec_parent"));
    assert_eq!(leak_list(root), vec![leak("Leak_DefinitelyLost", 31, 1)]);
    let with_31 = procs(&r)
        .iter()
        .filter(|p| leak_list(p).iter().any(|l| l.1 == 31))
        .count();
    assert_eq!(
        with_31, 1,
        "the parent's leak is reported once (the image replaced by exec has no report): {:#?}",
        r.json
    );
    assert_no_errors(&r);
}

#[test]
fn exec_is_followed_with_trace_children() {
    let prog = fixture("proc_exec_parent");
    let leaker = fixture("proc_exec_leaker");
    let r = memcheck(
        &["--leak-check=full", "--trace-children=yes"],
        &prog,
        &[leaker.to_str().unwrap()],
        b"",
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let root = r.root();
    assert!(root["exe"].as_str().unwrap().ends_with("proc_exec_parent"));
    assert_eq!(leak_list(root), vec![leak("Leak_DefinitelyLost", 31, 1)]);
    let ex = by_exe(&r, "proc_exec_leaker");
    assert_eq!(
        ex.len(),
        1,
        "the exec'd program is reported once: {:#?}",
        r.json
    );
    let ex = ex[0];
    assert_eq!(ex["ppid"], root["pid"]);
    assert_eq!(ex["exit"], json!({"code": 0}));
    assert_eq!(leak_list(ex), vec![leak("Leak_DefinitelyLost", 4242, 1)]);
    let (func, file, _) = user_frame(&only_leak_in(ex, "exec_leaker_leak")["stack"]).unwrap();
    assert_eq!(
        (func.as_str(), file.as_str()),
        ("exec_leaker_leak", "proc_exec_leaker.c")
    );
    // The new image starts with an empty heap: the parent's blocks are gone with the old one.
    assert_eq!(heap(ex), valgrind_heap_summary(&leaker, &[]));
    let with_31 = procs(&r)
        .iter()
        .filter(|p| leak_list(p).iter().any(|l| l.1 == 31))
        .count();
    assert_eq!(with_31, 1, "{:#?}", r.json);
    assert_no_errors(&r);
}

// ---------------------------------------------------------------------------------------------
// 5. A program that closes every inherited file descriptor
// ---------------------------------------------------------------------------------------------

#[test]
fn closing_every_inherited_fd_does_not_lose_tracking() {
    let prog = fixture("proc_close_fds");
    let leaker = fixture("proc_exec_leaker");
    let r = memcheck(
        &["--leak-check=full", "--trace-children=yes"],
        &prog,
        &[leaker.to_str().unwrap()],
        b"",
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let root = r.root();
    assert!(root["exe"].as_str().unwrap().ends_with("proc_close_fds"));
    assert_eq!(root["exit"], json!({"code": 0}));
    assert_eq!(leak_list(root), vec![leak("Leak_DefinitelyLost", 555, 1)]);
    assert_eq!(only_leak_in(root, "after_close_leak")["bytes"], 555);
    // 10 malloc/free pairs and the leak, all after the closing.
    assert_eq!(heap(root), (555, 1, 11, 10, 755));
    let ex = by_exe(&r, "proc_exec_leaker");
    assert_eq!(
        ex.len(),
        1,
        "the program exec'd after the closing is tracked: {:#?}",
        r.json
    );
    assert_eq!(ex[0]["ppid"], root["pid"]);
    assert_eq!(leak_list(ex[0]), vec![leak("Leak_DefinitelyLost", 4242, 1)]);
    assert_eq!(only_leak_in(ex[0], "exec_leaker_leak")["bytes"], 4242);
    assert_no_errors(&r);
}

// ---------------------------------------------------------------------------------------------
// 6. SIGKILL
// ---------------------------------------------------------------------------------------------

#[test]
fn sigkill_still_reports_the_blocks_in_use() {
    let prog = fixture("proc_sigkill");
    let r = memcheck(&["--leak-check=full"], &prog, &[], b"");
    assert_eq!(
        r.signal,
        Some(9),
        "memcheck must end by SIGKILL; code {:?}\n{}",
        r.code,
        r.stderr
    );
    assert_eq!(r.json["exit"], json!({"signal": 9}));
    let p = r.root();
    assert_eq!(p["exit"], json!({"signal": 9}));
    // Any kind (the dead process cannot be scanned), but the exact blocks.
    let mut sizes: Vec<(u64, u64)> = leak_list(p).iter().map(|l| (l.1, l.2)).collect();
    sizes.sort();
    assert_eq!(sizes, vec![(1111, 1), (2222, 1)], "{:#?}", p["leaks"]);
    assert_eq!(only_leak_in(p, "lose_before_kill")["bytes"], 1111);
    assert_eq!(heap(p), (3333, 2, 5, 3, 3357));
    assert_no_errors(&r);
}

// ---------------------------------------------------------------------------------------------
// 7. The program's I/O and exit status
// ---------------------------------------------------------------------------------------------

#[test]
fn stdio_and_exit_status_are_the_programs() {
    let prog = fixture("proc_stdio");
    // 300 KB of pseudo-random bytes (all 256 values, including NULs and newlines).
    let mut x: u32 = 12345;
    let input: Vec<u8> = (0..300_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    let native = run_with_input(Command::new(&prog), &input);
    assert_eq!(native.status.code(), Some(7));
    assert_eq!(native.stdout, input);
    let r = memcheck(&[], &prog, &[], &input);
    assert_eq!(r.code, Some(7), "{}", r.stderr);
    assert_eq!(r.json["exit"], json!({"code": 7}));
    assert!(
        r.stdout == native.stdout,
        "stdout differs from the native run ({} vs {} bytes)",
        r.stdout.len(),
        native.stdout.len()
    );
    assert!(
        r.stderr.contains("proc_stdio: a line on stderr\n"),
        "the program's stderr line is missing:\n{}",
        r.stderr
    );
    assert_eq!(heap(r.root()), (0, 0, 1, 1, 4096));
    assert_no_errors(&r);
}

// ---------------------------------------------------------------------------------------------
// 8. dlopen / dlclose
// ---------------------------------------------------------------------------------------------

#[test]
fn leak_in_a_dlclosed_library_is_symbolised() {
    let lib = shared_fixture("proc_dl_lib");
    let prog = fixture("proc_dl_main");
    let r = memcheck(&["--leak-check=full"], &prog, &[lib.to_str().unwrap()], b"");
    assert_eq!(
        r.code,
        Some(0),
        "dlopen/dlsym/dlclose failed in the fixture:\n{}",
        r.stderr
    );
    let p = r.root();
    let l = only_leak_in(p, "dl_lib_leak");
    assert_eq!(l["kind"], "Leak_DefinitelyLost");
    assert_eq!(
        (l["bytes"].as_u64(), l["blocks"].as_u64()),
        (Some(999), Some(1))
    );
    let frames = l["stack"].as_array().unwrap();
    assert_eq!(frames[0]["function"], "malloc");
    let f = frames
        .iter()
        .find(|f| f["function"] == "dl_lib_leak")
        .unwrap();
    assert_eq!(f["file"], "proc_dl_lib.c", "{f:#}");
    assert_eq!(
        f["line"].as_u64(),
        Some(line_of("proc_dl_lib", "DL_LIB_MALLOC")),
        "{f:#}"
    );
    assert!(
        f["object"]
            .as_str()
            .is_some_and(|o| o.ends_with("libproc_dl_lib.so")),
        "{f:#}"
    );
    // Called from main in the program.
    let i = frames
        .iter()
        .position(|f| f["function"] == "dl_lib_leak")
        .unwrap();
    assert_eq!(frames[i + 1]["function"], "main");
    assert_eq!(frames[i + 1]["file"], "proc_dl_main.c");
    assert_no_errors(&r);
}

// ---------------------------------------------------------------------------------------------
// 9. Real programs: python3 and gcc
// ---------------------------------------------------------------------------------------------

/// The python3 executable itself (not a wrapper script such as pyenv's shim).
fn python3() -> PathBuf {
    let usr = PathBuf::from("/usr/bin/python3");
    if usr.is_file() {
        return usr;
    }
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is installed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

const PY_SCRIPT: &str = r#"
import sys, json
d = {str(i): [i * j for j in range(20)] for i in range(2000)}
s = {k: sum(v) for k, v in d.items()}
words = sorted({w.upper() for w in "the quick brown fox jumps over the lazy dog".split()})
print(len(d), sum(s.values()))
print(json.dumps(sorted(s.items())[:5]))
print(" ".join(words))
sys.exit(3)
"#;

#[test]
fn python3_runs_unchanged_and_cleanly() {
    let py = python3();
    let native = Command::new(&py)
        .args(["-c", PY_SCRIPT])
        .output()
        .expect("run python3");
    assert_eq!(
        native.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&native.stderr)
    );
    let r = memcheck(&[], &py, &["-c", PY_SCRIPT], b"");
    assert_eq!(r.code, native.status.code(), "{}", r.stderr);
    assert_eq!(r.json["exit"], json!({"code": 3}));
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&native.stdout)
    );
    assert!(!procs(&r).is_empty());
    assert!(heap(r.root()).2 > 100, "python's allocations are seen");
    assert_no_errors(&r);
}

#[test]
fn gcc_compiles_the_same_object_under_memcheck() {
    let src = root().join("tests/fixtures/c/proc_gcc_input.c");
    let dir = fixtures_dir();
    let native_o = dir.join(format!("proc_gcc_input-{}.native.o", std::process::id()));
    let traced_o = dir.join(format!("proc_gcc_input-{}.memcheck.o", std::process::id()));
    let _ = std::fs::remove_file(&native_o);
    let _ = std::fs::remove_file(&traced_o);
    let st = Command::new("gcc")
        .args(["-c", "-O2"])
        .arg(&src)
        .arg("-o")
        .arg(&native_o)
        .status()
        .expect("gcc");
    assert!(st.success());
    let r = memcheck(
        &["--trace-children=yes"],
        Path::new("gcc"),
        &[
            "-c",
            "-O2",
            src.to_str().unwrap(),
            "-o",
            traced_o.to_str().unwrap(),
        ],
        b"",
    );
    let native = std::fs::read(&native_o).unwrap();
    let traced = std::fs::read(&traced_o);
    let _ = std::fs::remove_file(&native_o);
    let _ = std::fs::remove_file(&traced_o);
    assert_eq!(r.code, Some(0), "gcc failed under memcheck:\n{}", r.stderr);
    let traced = traced.expect("the object file exists");
    assert!(traced == native, "the object differs from the native one");
    // The driver, cc1 and as are all traced.
    for name in ["cc1", "as"] {
        assert!(
            procs(&r)
                .iter()
                .any(|p| p["exe"].as_str().is_some_and(|e| e.ends_with(name))),
            "{name} is not reported: {:?}",
            procs(&r)
                .iter()
                .map(|p| p["exe"].clone())
                .collect::<Vec<_>>()
        );
    }
    assert_no_errors(&r);
}
