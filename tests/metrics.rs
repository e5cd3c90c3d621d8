//! `--metrics-addr`: Prometheus metrics served while the program runs, read with a real HTTP
//! client (curl).

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn prometheus_metrics_while_the_program_runs() {
    let prog = fixture("service");
    let mut child = Command::new(memcheck_bin())
        .arg("--metrics-addr=127.0.0.1:0")
        .arg(&prog)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("memcheck: serving metrics at ")
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    // Poll until the program's 100 blocks show (the tracer refreshes every 100 ms).
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "5", &url])
            .output()
            .expect("curl");
        let body = String::from_utf8_lossy(&out.stdout).into_owned();
        if body.contains("memcheck_heap_blocks{")
            && body
                .lines()
                .any(|l| l.starts_with("memcheck_heap_bytes{") && l.ends_with(" 100000"))
        {
            break body;
        }
        assert!(Instant::now() < deadline, "no metrics: {body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(body.contains("# TYPE memcheck_heap_bytes gauge"));
    assert!(body.contains("# TYPE memcheck_allocations_total counter"));
    assert!(
        body.lines().any(|l| l.starts_with("memcheck_heap_blocks{")
            && l.contains("program=\"service\"")
            && l.ends_with(" 100")),
        "{body}"
    );
    assert!(
        body.lines()
            .any(|l| l.starts_with("memcheck_rss_bytes{") && !l.ends_with(" 0")),
        "{body}"
    );
    let not_found = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url.replace("/metrics", "/nope"),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&not_found.stdout), "404");
    drop(child.stdin.take());
    let st = child.wait().unwrap();
    assert!(st.success());
}
