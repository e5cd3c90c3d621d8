//! memcheck as a drop-in for valgrind in CI: Valgrind's options and exit codes, suppressions
//! (and their generation), XML files per process, SARIF validated against the 2.1.0 schema, and
//! the `memcheck diff` gate.

mod common;
use common::*;
use std::path::PathBuf;
use std::process::Command;

fn dir(name: &str) -> PathBuf {
    let d = root().join("target/fixtures/ci").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(memcheck_bin()).args(args).output().unwrap()
}

#[test]
fn error_exitcode_and_leak_kinds() {
    let prog = fixture("ci_leaks");
    let p = prog.to_str().unwrap();
    // Errors found: --error-exitcode replaces the program's status.
    let out = run(&["--leak-check=full", "--error-exitcode=42", p]);
    assert_eq!(out.status.code(), Some(42));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ERROR SUMMARY: 2 errors from 2 contexts"),
        "{err}"
    );
    // Leaks count as errors only for --errors-for-leak-kinds (and only with full).
    let out = run(&[
        "--leak-check=full",
        "--errors-for-leak-kinds=none",
        "--error-exitcode=42",
        p,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ERROR SUMMARY: 1 errors from 1 contexts"),
        "{err}"
    );
    // --show-leak-kinds picks the records shown.
    let out = run(&["--leak-check=full", "--show-leak-kinds=reachable", p]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("16 bytes in 1 blocks are still reachable in loss record"),
        "{err}"
    );
    assert!(!err.contains("are definitely lost in loss record"), "{err}");
    // No errors found: the program's own status.
    let clean = fixture("simple_leak");
    let out = run(&["--error-exitcode=42", clean.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "leaks are not errors with --leak-check=summary"
    );
}

#[test]
fn valgrind_only_options_are_accepted_and_unknown_ones_refused() {
    let prog = fixture("simple_leak");
    let p = prog.to_str().unwrap();
    let out = run(&[
        "--tool=memcheck",
        "--track-origins=yes",
        "--num-callers=20",
        p,
    ]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines()
            .any(|l| l.starts_with("memcheck: note: --track-origins=yes has no effect")),
        "{err}"
    );
    for bad in [
        vec!["--no-such-option=1", p],
        vec!["--tool=helgrind", p],
        vec!["--leak-check=sometimes", p],
        vec!["--xml=yes", p],
        vec!["--keep-stacktraces=free", "--profile", p],
    ] {
        let out = run(&bad);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{bad:?}: {err}");
        assert!(err.starts_with("memcheck: "), "{err}");
    }
    let err = String::from_utf8_lossy(&run(&["--no-such-option=1", p]).stderr).into_owned();
    assert!(err.contains("unknown option --no-such-option=1"), "{err}");
}

#[test]
fn log_and_xml_files_per_process() {
    let d = dir("files");
    let prog = fixture("proc_fork_inherit");
    let log = d.join("log.%p.txt");
    let xml = d.join("out.%p.xml");
    let out = run(&[
        "--leak-check=full",
        &format!("--log-file={}", log.display()),
        "--xml=yes",
        &format!("--xml-file={}", xml.display()),
        prog.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut logs: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    logs.sort();
    assert_eq!(
        logs.iter().filter(|n| n.starts_with("log.")).count(),
        2,
        "{logs:?}"
    );
    assert_eq!(
        logs.iter().filter(|n| n.starts_with("out.")).count(),
        2,
        "{logs:?}"
    );
    for n in logs.iter().filter(|n| n.starts_with("out.")) {
        let pid = n.trim_start_matches("out.").trim_end_matches(".xml");
        let text = std::fs::read_to_string(d.join(n)).unwrap();
        // Well-formed, and Valgrind's protocol.
        let mut r = quick_xml::Reader::from_str(&text);
        let mut depth = 0i32;
        loop {
            match r.read_event().expect("well-formed XML") {
                quick_xml::events::Event::Start(_) => depth += 1,
                quick_xml::events::Event::End(_) => depth -= 1,
                quick_xml::events::Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!(depth, 0);
        assert!(text.contains("<protocolversion>4</protocolversion>"));
        assert!(text.contains(&format!("<pid>{pid}</pid>")), "{text}");
        assert!(text.contains("<state>FINISHED</state>"));
        assert!(text.contains("<kind>Leak_DefinitelyLost</kind>"), "{text}");
    }
    // --child-silent-after-fork=yes: the forked child writes nothing.
    let d = dir("silent");
    let xml = d.join("out.%p.xml");
    run(&[
        "--child-silent-after-fork=yes",
        "--xml=yes",
        &format!("--xml-file={}", xml.display()),
        prog.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
}

/// The suppressions `--gen-suppressions=all` printed in a report: the lines outside the
/// ==PID== report.
fn suppressions_in(report: &str) -> String {
    report
        .lines()
        .filter(|l| !l.starts_with("=="))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn generated_suppressions_suppress_exactly_what_was_reported() {
    let d = dir("supp");
    let prog = fixture("ci_leaks");
    let p = prog.to_str().unwrap();
    let out = run(&[
        "--leak-check=full",
        "--show-leak-kinds=all",
        "--gen-suppressions=all",
        p,
    ]);
    let supp = suppressions_in(&String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        supp.matches("{\n").count(),
        3,
        "the double free and two loss records:\n{supp}"
    );
    let file = d.join("gen.supp");
    std::fs::write(&file, &supp).unwrap();
    let r = memcheck(
        &[
            "--leak-check=full",
            "--show-leak-kinds=all",
            &format!("--suppressions={}", file.display()),
        ],
        &prog,
        &[],
        b"",
    );
    let pr = r.root();
    assert!(
        pr["errors"].as_array().unwrap().is_empty(),
        "{:#?}",
        pr["errors"]
    );
    assert!(
        pr["leaks"].as_array().unwrap().is_empty(),
        "{:#?}",
        pr["leaks"]
    );
    assert_eq!(pr["leak_summary"]["suppressed"]["bytes"], 56);
    assert_eq!(pr["error_summary"]["suppressed_errors"], 2);
    assert!(
        r.stderr.contains("suppressed: 56 bytes in 2 blocks"),
        "{}",
        r.stderr
    );
    // The extra leak of "more" is not suppressed by them.
    let r = memcheck(
        &[
            "--leak-check=full",
            &format!("--suppressions={}", file.display()),
        ],
        &prog,
        &["more"],
        b"",
    );
    let leaks = r.root()["leaks"].as_array().unwrap().clone();
    assert_eq!(leaks.len(), 1, "{leaks:#?}");
    assert_eq!(leaks[0]["bytes"], 77);
    // A hand-written suppression with globs and "...".
    let hand = d.join("hand.supp");
    std::fs::write(&hand, "{\n   leak_one-anywhere\n   Memcheck:Leak\n   match-leak-kinds: definite\n   fun:malloc\n   ...\n   fun:leak_*\n}\n").unwrap();
    let r = memcheck(
        &[
            "--leak-check=full",
            "-s",
            &format!("--suppressions={}", hand.display()),
        ],
        &prog,
        &["more"],
        b"",
    );
    assert!(r.root()["leaks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["kind"] != "Leak_DefinitelyLost"));
    assert!(r.stderr.contains("leak_one-anywhere"), "{}", r.stderr);
    // A broken suppressions file is a usage error.
    std::fs::write(&hand, "{\n  unterminated\n  Memcheck:Leak\n").unwrap();
    let out = run(&[&format!("--suppressions={}", hand.display()), p]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn sarif_validates_against_the_2_1_0_schema() {
    let d = dir("sarif");
    let prog = fixture("ci_leaks");
    let sarif = d.join("out.sarif");
    let out = Command::new(memcheck_bin())
        .current_dir(root())
        .args(["--leak-check=full", &format!("--sarif={}", sarif.display())])
        .arg(&prog)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sarif).unwrap()).unwrap();
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/data/sarif-schema-2.1.0.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::draft4::new(&schema).expect("the SARIF schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let mut broken = doc.clone();
    broken["version"] = serde_json::json!("9.9");
    assert!(
        !validator.is_valid(&broken),
        "the validator rejects what the schema forbids"
    );
    let results = doc["runs"][0]["results"].as_array().unwrap();
    let leak = results
        .iter()
        .find(|r| r["ruleId"] == "Leak_DefinitelyLost")
        .expect("the leak");
    let loc = &leak["locations"][0]["physicalLocation"];
    assert_eq!(
        loc["artifactLocation"]["uri"],
        "tests/fixtures/c/ci_leaks.c"
    );
    assert_eq!(
        loc["region"]["startLine"],
        line_of("ci_leaks", "/* the definite leak */")
    );
    assert!(
        leak["codeFlows"][0]["threadFlows"][0]["locations"]
            .as_array()
            .unwrap()
            .len()
            >= 3
    );
    assert!(results.iter().any(|r| r["ruleId"] == "InvalidFree"));
}

#[test]
fn diff_fails_on_new_leaks_only() {
    let d = dir("diff");
    let prog = fixture("ci_leaks");
    let base = d.join("base.json");
    let same = d.join("same.json");
    let more = d.join("more.json");
    for (file, args) in [(&base, vec![]), (&same, vec![]), (&more, vec!["more"])] {
        let out = Command::new(memcheck_bin())
            .arg("--leak-check=full")
            .arg(format!("--json={}", file.display()))
            .arg(&prog)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
    }
    let out = run(&["diff", base.to_str().unwrap(), same.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run(&["diff", base.to_str().unwrap(), more.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("new Leak_DefinitelyLost in ci_leaks: 77 bytes in 1 blocks"),
        "{text}"
    );
    assert!(text.contains("leak_more (ci_leaks.c)"), "{text}");
    assert!(!text.contains("leak_one"), "{text}");
    // The other way round, the leak is gone: no regression.
    let out = run(&["diff", more.to_str().unwrap(), base.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let out = run(&["diff", base.to_str().unwrap(), "/nonexistent.json"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn leak_heuristics_make_interior_pointers_reachable() {
    let prog = fixture("heuristics");
    let r = memcheck(
        &["--leak-check=full", "--show-leak-kinds=all"],
        &prog,
        &[],
        b"",
    );
    let p = r.root();
    let via = &p["leak_summary"]["reachable_via_heuristic"];
    assert_eq!(via["newarray"]["bytes"], 48, "{p:#}");
    assert_eq!(via["multipleinheritance"]["bytes"], 40, "{p:#}");
    // length64's block also passes newarray's test (Valgrind checks length64 first).
    assert_eq!(via["length64"]["bytes"], 48, "{p:#}");
    assert_eq!(p["leak_summary"]["possibly_lost"]["blocks"], 0, "{p:#}");
    assert!(
        r.stderr.contains("of which reachable via heuristic:"),
        "{}",
        r.stderr
    );
    let r = memcheck(
        &["--leak-check=full", "--leak-check-heuristics=none"],
        &prog,
        &[],
        b"",
    );
    let p = r.root();
    assert_eq!(p["leak_summary"]["possibly_lost"]["blocks"], 3, "{p:#}");
    assert_eq!(
        p["leak_summary"]["possibly_lost"]["bytes"],
        48 + 40 + 48,
        "{p:#}"
    );
}

/// Definitely-lost totals per program name from a Valgrind-layout text report (either tool's).
fn definitely_lost_by_program(text: &str) -> std::collections::BTreeMap<String, (u64, u64)> {
    let mut cmd_of = std::collections::HashMap::new();
    let mut out = std::collections::BTreeMap::new();
    for l in text.lines() {
        let Some(rest) = l.strip_prefix("==") else {
            continue;
        };
        let Some((pid, body)) = rest.split_once("==") else {
            continue;
        };
        let body = body.trim();
        if let Some(cmd) = body.strip_prefix("Command: ") {
            let prog = cmd.split_whitespace().next().unwrap_or("");
            cmd_of.insert(
                pid.to_string(),
                prog.rsplit('/').next().unwrap_or(prog).to_string(),
            );
        } else if let Some(v) = body.strip_prefix("definitely lost: ") {
            let w: Vec<u64> = v
                .split_whitespace()
                .filter_map(|x| x.replace(',', "").parse().ok())
                .collect();
            let prog = cmd_of.get(pid).cloned().unwrap_or_default();
            let e = out.entry(prog).or_insert((0, 0));
            e.0 += w[0];
            e.1 += w[1];
        }
    }
    out
}

#[test]
fn python3_and_gcc_lose_what_valgrind_says_they_lose() {
    let d = dir("real");
    let script = d.join("work.py");
    std::fs::write(
        &script,
        "d = {i: [i] * 5 for i in range(2000)}\nprint(sum(len(v) for v in d.values()))\n",
    )
    .unwrap();
    let src = d.join("small.c");
    std::fs::write(
        &src,
        "int f(int x) { return x * 2; }\nint main(void) { return f(3); }\n",
    )
    .unwrap();
    let runs: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["/usr/bin/python3".into(), script.display().to_string()],
            "python3",
        ),
        (
            vec![
                "gcc".into(),
                "-c".into(),
                src.display().to_string(),
                "-o".into(),
                d.join("small.o").display().to_string(),
            ],
            "gcc",
        ),
    ];
    for (cmd, what) in runs {
        let opts = ["--leak-check=full", "--trace-children=yes"];
        let vg = Command::new("valgrind")
            .args(opts)
            .args(&cmd)
            .output()
            .expect("valgrind is installed (.ci/run installs it)");
        let mc = Command::new(memcheck_bin())
            .args(opts)
            .args(&cmd)
            .output()
            .unwrap();
        assert_eq!(mc.status.code(), vg.status.code(), "{what}");
        assert_eq!(mc.stdout, vg.stdout, "{what}: the program's output");
        let (v, m) = (
            definitely_lost_by_program(&String::from_utf8_lossy(&vg.stderr)),
            definitely_lost_by_program(&String::from_utf8_lossy(&mc.stderr)),
        );
        assert!(!v.is_empty(), "{what}: no Valgrind summary");
        assert_eq!(
            m, v,
            "{what}: definitely lost per program, memcheck vs Valgrind"
        );
    }
}

#[test]
fn suppressions_valgrind_generated_for_glibc_and_thread_frames_suppress_them() {
    let d = dir("supp_threads");
    let prog = fixture("supp_threads");
    let log = d.join("vg.log");
    let st = Command::new("valgrind")
        .args(["-q", "--leak-check=full", "--gen-suppressions=all"])
        .arg(format!("--log-file={}", log.display()))
        .arg(&prog)
        .status()
        .unwrap();
    assert!(st.success());
    let supp = suppressions_in(&std::fs::read_to_string(&log).unwrap());
    assert_eq!(
        supp.matches("{\n").count(),
        2,
        "a thread's leak and realpath's:\n{supp}"
    );
    assert!(supp.contains("fun:clone\n"), "{supp}");
    assert!(supp.contains("fun:realpath@@"), "{supp}");
    let file = d.join("vg.supp");
    std::fs::write(&file, &supp).unwrap();
    let r = memcheck(
        &[
            "--leak-check=full",
            &format!("--suppressions={}", file.display()),
        ],
        &prog,
        &[],
        b"",
    );
    let p = r.root();
    assert!(
        p["leaks"].as_array().unwrap().is_empty(),
        "{:#?}\n{supp}",
        p["leaks"]
    );
    assert_eq!(
        p["leak_summary"]["suppressed"]["blocks"], 2,
        "{:#?}",
        p["leak_summary"]
    );
}
