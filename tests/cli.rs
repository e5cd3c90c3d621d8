//! The command line: bad input gets one `memcheck: ...` line and exit code 2; scripts run with
//! their interpreter traced; stacks show inlined frames; the shim exports only its hooks.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let d = root().join("target/fixtures/scratch");
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn expect_usage_error(cmd: &mut Command, needle: &str) {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(lines[0].starts_with("memcheck: "), "{err}");
    assert!(lines[0].contains(needle), "{needle:?} in {err}");
}

#[test]
fn missing_program() {
    expect_usage_error(
        Command::new(memcheck_bin()).arg("./does-not-exist"),
        "no such file",
    );
    expect_usage_error(
        Command::new(memcheck_bin()).arg("no-such-command-anywhere"),
        "not found in PATH",
    );
}

#[test]
fn not_executable_and_not_elf() {
    let p = scratch("plain.txt");
    std::fs::write(&p, "just text\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    expect_usage_error(Command::new(memcheck_bin()).arg(&p), "not executable");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    expect_usage_error(
        Command::new(memcheck_bin()).arg(&p),
        "not an ELF executable nor a #! script",
    );
}

#[test]
fn static_binary() {
    let out = scratch("static_leak");
    let st = Command::new("gcc")
        .args(["-static", "-o"])
        .arg(&out)
        .arg(root().join("tests/fixtures/c/simple_leak.c"))
        .status()
        .unwrap();
    assert!(st.success());
    expect_usage_error(Command::new(memcheck_bin()).arg(&out), "statically linked");
}

#[test]
fn setuid_binary() {
    let src = fixture("simple_leak");
    let p = scratch("setuid_leak");
    std::fs::copy(&src, &p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o4755)).unwrap();
    expect_usage_error(Command::new(memcheck_bin()).arg(&p), "setuid");
}

#[test]
fn ptrace_not_permitted() {
    let deny = fixture("deny_ptrace");
    let prog = fixture("simple_leak");
    expect_usage_error(
        Command::new(deny).arg(memcheck_bin()).arg(&prog),
        "ptrace is not permitted",
    );
}

#[test]
fn script_interpreter_is_traced() {
    let interp = fixture("simple_leak");
    let script = scratch("leaky-script");
    std::fs::write(
        &script,
        format!("#!{}\nthis line is for the interpreter\n", interp.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = memcheck(&["--leak-check=full"], &script, &[], b"");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let p = r.root();
    assert_eq!(
        p["leak_summary"]["definitely_lost"]["bytes"], 42,
        "{:#?}",
        p
    );
}

#[test]
fn inlined_frames_are_shown() {
    let prog = fixture("inlined");
    let r = memcheck(&[], &prog, &[], b"");
    let l = &r.root()["leaks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["bytes"] == 77)
        .expect("the 77-byte leak")["stack"];
    let frames = l.as_array().unwrap();
    let inl = frames
        .iter()
        .find(|f| f["function"] == "make_buffer")
        .expect("the inlined frame");
    assert_eq!(inl["inlined"], true);
    assert_eq!(inl["line"], line_of("inlined", "/* inlined allocation */"));
    let outer = frames
        .iter()
        .find(|f| f["function"] == "main")
        .expect("main");
    assert_eq!(outer["inlined"], false);
    assert_eq!(outer["ip"], inl["ip"]);
    assert_eq!(
        outer["line"],
        line_of("inlined", "/* call of the inlined function */")
    );
}

#[test]
fn shim_exports_only_its_hooks() {
    let shim = memcheck_bin().parent().unwrap().join("libmemcheck_shim.so");
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&shim)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    names.sort();
    let mut expected = vec![
        "malloc",
        "calloc",
        "realloc",
        "reallocarray",
        "free",
        "cfree",
        "memalign",
        "aligned_alloc",
        "posix_memalign",
        "valloc",
        "pvalloc",
        "malloc_usable_size",
        "dlclose",
        "_exit",
        "_Exit",
        "memcheck_new_fast",
    ];
    for op in ["_Znwm", "_Znam"] {
        for suffix in [
            "",
            "RKSt9nothrow_t",
            "St11align_val_t",
            "St11align_val_tRKSt9nothrow_t",
        ] {
            expected.push(Box::leak(format!("{op}{suffix}").into_boxed_str()));
        }
    }
    for op in ["_ZdlPv", "_ZdaPv"] {
        for suffix in [
            "",
            "m",
            "RKSt9nothrow_t",
            "St11align_val_t",
            "mSt11align_val_t",
            "St11align_val_tRKSt9nothrow_t",
        ] {
            expected.push(Box::leak(format!("{op}{suffix}").into_boxed_str()));
        }
    }
    expected.sort();
    assert_eq!(names, expected);
}

#[test]
fn leak_check_summary_is_the_default_and_full_shows_records() {
    let prog = fixture("simple_leak");
    let r = memcheck(&[], &prog, &[], b"");
    assert!(
        r.stderr.contains("definitely lost: 42 bytes in 1 blocks"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("in loss record"), "{}", r.stderr);
    let r = memcheck(&["--leak-check=full"], &prog, &[], b"");
    assert!(
        r.stderr
            .contains("42 bytes in 1 blocks are definitely lost in loss record 1 of 1"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(": main (simple_leak.c:"), "{}", r.stderr);
}

#[test]
fn separate_debug_file_through_gnu_debuglink() {
    // Debug information moved to a separate file, as distributions ship it: the executable is
    // stripped of DWARF and points at its debug file with .gnu_debuglink.
    let built = fixture("simple_leak");
    let exe = scratch("stripped_leak");
    let dbg = scratch("stripped_leak.debug");
    std::fs::copy(&built, &exe).unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        let st = Command::new("objcopy").args(args).status().unwrap();
        assert!(st.success(), "objcopy {args:?}");
    };
    run(&[
        "--only-keep-debug".as_ref(),
        exe.as_os_str(),
        dbg.as_os_str(),
    ]);
    run(&["--strip-debug".as_ref(), exe.as_os_str()]);
    let link = format!("--add-gnu-debuglink={}", dbg.display());
    run(&[link.as_ref(), exe.as_os_str()]);
    let r = memcheck(&["--leak-check=full"], &exe, &[], b"");
    let l = &r.root()["leaks"][0]["stack"];
    let main = l
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["function"] == "main")
        .expect("main symbolised");
    assert_eq!(main["file"], "simple_leak.c");
    assert_eq!(main["line"], line_of("simple_leak", "/* the leak */"));
}

#[test]
fn frames_without_symbols_are_named_by_module_and_offset() {
    let exe = scratch("fully_stripped_leak");
    std::fs::copy(fixture("simple_leak"), &exe).unwrap();
    assert!(Command::new("strip").arg(&exe).status().unwrap().success());
    let r = memcheck(&["--leak-check=full"], &exe, &[], b"");
    let stack = r.root()["leaks"][0]["stack"].as_array().unwrap().clone();
    let f = stack
        .iter()
        .find(|f| {
            f["object"]
                .as_str()
                .is_some_and(|o| o.ends_with("fully_stripped_leak"))
        })
        .expect("a frame in the program");
    assert!(f["function"].is_null(), "{f}");
    let off = f["offset"].as_str().unwrap();
    assert!(
        r.stderr
            .contains(&format!(": fully_stripped_leak+{off} (in ")),
        "{}",
        r.stderr
    );
}

#[test]
fn demangle_and_show_below_main() {
    let prog = fixture("cxx_ops");
    let stack_of_leak = |opts: &[&str], function: &str| -> Vec<String> {
        let mut args = vec!["--leak-check=full"];
        args.extend_from_slice(opts);
        let r = memcheck(&args, &prog, &[], b"");
        let l = leaks_in(r.root(), function);
        assert_eq!(l.len(), 1, "{opts:?}: {:#?}", r.root()["leaks"]);
        functions(&l[0]["stack"])
    };
    // The defaults: demangled names, the stack ends at main.
    let f = stack_of_leak(&[], "leak_new_array()");
    assert_eq!(
        f,
        ["operator new[](unsigned long)", "leak_new_array()", "main"]
    );
    // --demangle=no: names as linked; --show-below-main=yes: on below main to _start.
    let f = stack_of_leak(
        &["--demangle=no", "--show-below-main=yes"],
        "_Z14leak_new_arrayv",
    );
    assert_eq!(f[..3], ["_Znam", "_Z14leak_new_arrayv", "main"], "{f:?}");
    assert_eq!(f.last().map(String::as_str), Some("_start"), "{f:?}");
    assert!(f.iter().any(|n| n.starts_with("__libc_start")), "{f:?}");
}
