//! The HTML report opens in a real browser (headless Chromium, which .ci/run installs) with no
//! console errors and no network access, and shows every part.

mod common;
use common::*;
use std::process::Command;

#[test]
fn html_report_renders_in_chromium_without_console_errors() {
    let prog = fixture("profile_exact");
    let dir = root().join("target/fixtures/html");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let html = dir.join("report.html");
    let leaky = fixture("leaky");
    for (p, out) in [(&prog, html.clone()), (&leaky, dir.join("leaky.html"))] {
        let st = Command::new(memcheck_bin())
            .arg("--leak-check=full")
            .arg(format!("--html={}", out.display()))
            .arg(p)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
    }
    for page in [&html, &dir.join("leaky.html")] {
        let text = std::fs::read_to_string(page).unwrap();
        for needle in ["src=\"http", "href=\"http", "<link", "<script src"] {
            assert!(!text.contains(needle), "{needle} in a self-contained page");
        }
        let out = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--enable-logging=stderr",
                "--v=0",
                "--virtual-time-budget=3000",
            ])
            .arg(format!("--user-data-dir={}", dir.join("profile").display()))
            .arg("--dump-dom")
            .arg(format!("file://{}", page.display()))
            .output()
            .expect("chromium is installed (.ci/run installs it)");
        let dom = String::from_utf8_lossy(&out.stdout);
        let log = String::from_utf8_lossy(&out.stderr);
        let console: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
            .collect();
        assert!(console.is_empty(), "console messages: {console:#?}");
        assert!(dom.contains("memcheck report"), "{dom}");
        if page == &html {
            for part in [
                "Heap over time",
                "Flamegraph: bytes allocated",
                "Peak memory consumers",
                "Most temporary allocations",
                "199,001 bytes",
            ] {
                assert!(dom.contains(part), "{part} missing");
            }
            assert!(dom.contains("<svg"), "the chart is drawn");
        } else {
            assert!(dom.contains("Invalid free()"), "errors listed");
            assert!(
                dom.contains("are definitely lost in loss record"),
                "leaks listed"
            );
        }
    }
}
