//! The end-to-end test harness: fixture programs (tests/fixtures/{c,cpp}) are compiled with
//! gcc/g++ on first use, run under the real `memcheck` binary, and the tests assert on its JSON
//! report. A fixture's first line may say how to build it: `// build: -O2 -pthread`.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn memcheck_bin() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_memcheck"));
    let shim = bin.parent().unwrap().join("libmemcheck_shim.so");
    assert!(
        shim.is_file(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        shim.display()
    );
    bin
}

/// Where fixtures are built (target/fixtures).
pub fn fixtures_dir() -> PathBuf {
    let d = root().join("target").join("fixtures");
    std::fs::create_dir_all(&d).unwrap();
    d
}

static BUILD: Mutex<()> = Mutex::new(());

/// Compiles fixture `name` (tests/fixtures/c/NAME.c or cpp/NAME.cpp) once; returns the binary.
pub fn fixture(name: &str) -> PathBuf {
    fixture_with(name, &[])
}

/// Compiles a fixture with extra compiler arguments (the binary's name includes them).
pub fn fixture_with(name: &str, extra: &[&str]) -> PathBuf {
    let c = root().join("tests/fixtures/c").join(format!("{name}.c"));
    let cpp = root()
        .join("tests/fixtures/cpp")
        .join(format!("{name}.cpp"));
    let (src, cc) = if c.is_file() {
        (c, "gcc")
    } else if cpp.is_file() {
        (cpp, "g++")
    } else {
        panic!("no fixture {name}")
    };
    let tag: String = extra
        .iter()
        .map(|a| a.replace(|c: char| !c.is_ascii_alphanumeric(), "_"))
        .collect();
    compile(
        cc,
        &src,
        extra,
        &fixtures_dir().join(format!("{name}{tag}")),
    )
}

/// Compiles fixture `name` (tests/fixtures/c/NAME.c) once as the shared library `libNAME.so`.
pub fn shared_fixture(name: &str) -> PathBuf {
    let src = root().join("tests/fixtures/c").join(format!("{name}.c"));
    compile(
        "gcc",
        &src,
        &["-shared", "-fPIC"],
        &fixtures_dir().join(format!("lib{name}.so")),
    )
}

/// Compiles `src` into `out` with -g -O0, the flags of its `// build:` first line and `extra`,
/// unless `out` is newer than `src`.
fn compile(cc: &str, src: &Path, extra: &[&str], out: &Path) -> PathBuf {
    let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let text = std::fs::read_to_string(src).unwrap();
    let fresh = out.is_file()
        && std::fs::metadata(out).unwrap().modified().unwrap()
            >= std::fs::metadata(src).unwrap().modified().unwrap();
    if !fresh {
        let mut flags: Vec<String> = vec!["-g".into(), "-O0".into()];
        if let Some(b) = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("// build:"))
        {
            flags.extend(b.split_whitespace().map(String::from));
        }
        flags.extend(extra.iter().map(|s| s.to_string()));
        let st = Command::new(cc)
            .args(&flags)
            .arg("-o")
            .arg(out)
            .arg(src)
            .status()
            .expect("run the compiler");
        assert!(st.success(), "compiling {} failed", src.display());
    }
    out.to_path_buf()
}

pub struct Run {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub json: Value,
}

impl Run {
    /// The process report of `pid`, or the root's (the first one started) when None.
    pub fn process(&self, pid: Option<u64>) -> &Value {
        let procs = self.json["processes"].as_array().expect("processes");
        match pid {
            Some(p) => procs.iter().find(|x| x["pid"] == p).expect("process"),
            None => procs
                .iter()
                .min_by_key(|x| x["pid"].as_u64().unwrap())
                .expect("a process"),
        }
    }
    pub fn root(&self) -> &Value {
        let ppid = self.json["processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["pid"].as_u64().unwrap())
            .collect::<Vec<_>>();
        self.json["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| !ppid.contains(&p["ppid"].as_u64().unwrap()))
            .expect("root process")
    }
}

static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Runs `memcheck OPTS PROGRAM ARGS` with a JSON report; stdin from `input`.
pub fn memcheck(opts: &[&str], program: &Path, args: &[&str], input: &[u8]) -> Run {
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let json = fixtures_dir().join(format!("report-{}-{n}.json", std::process::id()));
    let mut cmd = Command::new(memcheck_bin());
    cmd.arg(format!("--json={}", json.display()))
        .args(opts)
        .arg(program)
        .args(args);
    let out = run_with_input(cmd, input);
    let json_v = std::fs::read_to_string(&json)
        .map(|t| serde_json::from_str(&t).expect("valid JSON"))
        .unwrap_or(Value::Null);
    let _ = std::fs::remove_file(&json);
    use std::os::unix::process::ExitStatusExt;
    Run {
        code: out.status.code(),
        signal: out.status.signal(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        json: json_v,
    }
}

pub fn run_with_input(mut cmd: Command, input: &[u8]) -> std::process::Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().unwrap();
    out
}

/// Function names of a stack (JSON frames).
/// The one error of process `p` whose stack passes through `function`.
pub fn error_in<'a>(p: &'a Value, function: &str) -> &'a Value {
    let v: Vec<&Value> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| functions(&e["stack"]).iter().any(|f| f == function))
        .collect();
    assert_eq!(v.len(), 1, "one error in {function}: {:#?}", p["errors"]);
    v[0]
}

pub fn functions(stack: &Value) -> Vec<String> {
    stack
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["function"].as_str().unwrap_or("???").to_string())
        .collect()
}

/// The first frame of a stack that lies in a fixture source file: (function, file, line).
pub fn user_frame(stack: &Value) -> Option<(String, String, u64)> {
    stack.as_array()?.iter().find_map(|f| {
        let file = f["file"].as_str()?;
        let dir = f["dir"].as_str().unwrap_or("");
        if !dir.contains("tests/fixtures") {
            return None;
        }
        Some((
            f["function"].as_str()?.to_string(),
            file.to_string(),
            f["line"].as_u64()?,
        ))
    })
}

/// The loss records of a process whose stack passes through `function`.
pub fn leaks_in<'a>(p: &'a Value, function: &str) -> Vec<&'a Value> {
    p["leaks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| functions(&l["stack"]).iter().any(|f| f == function))
        .collect()
}

/// The source line of the first line in a fixture containing `marker` (1-based).
pub fn line_of(name: &str, marker: &str) -> u64 {
    for dir in ["c", "cpp"] {
        for ext in ["c", "cpp"] {
            let p = root()
                .join("tests/fixtures")
                .join(dir)
                .join(format!("{name}.{ext}"));
            if let Ok(t) = std::fs::read_to_string(&p) {
                let i = t
                    .lines()
                    .position(|l| l.contains(marker))
                    .unwrap_or_else(|| panic!("{marker} not in {name}"));
                return i as u64 + 1;
            }
        }
    }
    panic!("no fixture {name}")
}

/// Valgrind's HEAP SUMMARY for the same program: (in use bytes, blocks, allocs, frees, bytes allocated).
pub fn valgrind_heap_summary(program: &Path, args: &[&str]) -> (u64, u64, u64, u64, u64) {
    let out = Command::new("valgrind")
        .arg("--leak-check=no")
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("valgrind is installed (.ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stderr);
    parse_heap_summary(&text)
        .unwrap_or_else(|| panic!("no HEAP SUMMARY in valgrind output:\n{text}"))
}

pub fn parse_heap_summary(text: &str) -> Option<(u64, u64, u64, u64, u64)> {
    let num = |s: &str| s.replace(',', "").parse::<u64>().ok();
    let in_use = text.lines().find(|l| l.contains("in use at exit:"))?;
    let usage = text.lines().find(|l| l.contains("total heap usage:"))?;
    let w: Vec<&str> = in_use.split_whitespace().collect();
    let i = w.iter().position(|x| *x == "exit:")?;
    let (b, n) = (num(w[i + 1])?, num(w[i + 4])?);
    let u: Vec<&str> = usage.split_whitespace().collect();
    let j = u.iter().position(|x| *x == "usage:")?;
    Some((b, n, num(u[j + 1])?, num(u[j + 3])?, num(u[j + 5])?))
}

/// A process's heap summary as (in use bytes, blocks, allocs, frees, bytes allocated), the
/// order of `valgrind_heap_summary`.
pub fn heap_summary(p: &Value) -> (u64, u64, u64, u64, u64) {
    let h = &p["heap_summary"];
    let n = |k: &str| {
        h[k].as_u64()
            .unwrap_or_else(|| panic!("heap_summary.{k}: {h}"))
    };
    (
        n("in_use_bytes"),
        n("in_use_blocks"),
        n("allocs"),
        n("frees"),
        n("bytes_allocated"),
    )
}

/// The loss records of a process as sorted (kind, bytes, blocks).
pub fn leak_list(p: &Value) -> Vec<(String, u64, u64)> {
    let mut v: Vec<_> = p["leaks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap().to_string(),
                l["bytes"].as_u64().unwrap(),
                l["blocks"].as_u64().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}
