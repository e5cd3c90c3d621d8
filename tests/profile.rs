//! The allocation profile against a program whose numbers are known exactly
//! (tests/fixtures/c/profile_exact.c): folded stacks, flamegraph, peak, temporaries, leaks.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::process::Command;

fn folded(metric: &str) -> BTreeMap<String, u64> {
    let prog = fixture("profile_exact");
    let out = root()
        .join("target/fixtures")
        .join(format!("profile-{metric}.folded"));
    let st = Command::new(memcheck_bin())
        .arg(format!("--folded={}", out.display()))
        .arg(format!("--flamegraph-metric={metric}"))
        .arg(&prog)
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(0));
    std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| {
            let (stack, n) = l.rsplit_once(' ').expect("STACK COUNT");
            (stack.to_string(), n.parse().expect("a count"))
        })
        .collect()
}

#[test]
fn folded_stacks_sum_to_what_the_program_did() {
    let bytes = folded("bytes");
    assert_eq!(bytes["main;big;malloc"], 100_000);
    assert_eq!(bytes["main;temps;malloc"], 50 * 64);
    assert_eq!(bytes["main;many;malloc"], 99 * 1000);
    assert_eq!(bytes["main;marker;malloc"], 1);
    assert_eq!(bytes["main;again;malloc"], 10 * 500);
    assert_eq!(
        bytes.values().sum::<u64>(),
        100_000 + 3_200 + 99_000 + 1 + 5_000
    );

    let allocs = folded("allocations");
    assert_eq!(allocs.values().sum::<u64>(), 1 + 50 + 99 + 1 + 10);
    assert_eq!(allocs["main;temps;malloc"], 50);

    let temporary = folded("temporary");
    assert_eq!(
        temporary,
        BTreeMap::from([("main;temps;malloc".to_string(), 50)])
    );

    let peak = folded("peak");
    assert_eq!(peak.values().sum::<u64>(), 199_001);
    assert_eq!(peak["main;big;malloc"], 100_000);
    assert!(!peak.contains_key("main;again;malloc"));

    let leaked = folded("leaked");
    assert_eq!(
        leaked,
        BTreeMap::from([
            ("main;again;malloc".to_string(), 5_000),
            ("main;marker;malloc".to_string(), 1)
        ])
    );
}

#[test]
fn profile_report_and_json() {
    let prog = fixture("profile_exact");
    let r = memcheck(&["--profile", "--top=3"], &prog, &[], b"");
    let p = &r.root()["profile"];
    assert_eq!(p["peak_heap_bytes"], 199_001, "{p:#}");
    // Every allocation and free went through the rings; nothing was dropped.
    let t = &r.json["transport"];
    assert_eq!(t["dropped"], 0, "{t}");
    assert!(t["records"].as_u64().unwrap() >= 161 + 150, "{t}");
    assert_eq!(p["temporary"], 50);
    assert_eq!(p["allocations"], 161);
    assert_eq!(p["bytes_allocated"], 207_201);
    assert_eq!(p["leaked_bytes"], 5_001);
    assert_eq!(p["allocations"], r.root()["heap_summary"]["allocs"]);
    let samples = p["samples"].as_array().unwrap();
    assert!(!samples.is_empty());
    assert!(samples
        .iter()
        .all(|s| s["heap_bytes"].as_u64().unwrap() <= 199_001));
    assert!(p["peak_rss_bytes"].as_u64().unwrap() > 0);
    // The sites' stacks index one table of frames, which holds each frame once.
    let frames = p["frames"].as_array().unwrap();
    let distinct: std::collections::HashSet<String> =
        frames.iter().map(|f| f.to_string()).collect();
    assert_eq!(distinct.len(), frames.len(), "{frames:#?}");
    let sites = p["sites"].as_array().unwrap();
    let sum = |field: &str| -> u64 { sites.iter().map(|s| s[field].as_u64().unwrap()).sum() };
    assert_eq!(
        (
            sum("allocations"),
            sum("bytes"),
            sum("temporary"),
            sum("leaked_bytes")
        ),
        (161, 207_201, 50, 5_001)
    );
    let functions_of = |site: &serde_json::Value| -> Vec<String> {
        site["stack"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| frames[i.as_u64().unwrap() as usize]["function"].to_string())
            .collect()
    };
    for (name, allocations, bytes) in [
        ("big", 1, 100_000),
        ("many", 99, 99_000),
        ("again", 10, 5_000),
    ] {
        let site = sites
            .iter()
            .find(|s| functions_of(s).contains(&format!("\"{name}\"")))
            .unwrap_or_else(|| panic!("{name}: {sites:#?}"));
        assert_eq!(
            (site["allocations"].as_u64(), site["bytes"].as_u64()),
            (Some(allocations), Some(bytes)),
            "{name}"
        );
        assert_eq!(
            functions_of(site)[..3],
            ["\"malloc\"", &format!("\"{name}\""), "\"main\""],
            "{name}"
        );
    }
    for title in [
        "peak heap memory consumption: 199,001 bytes",
        "MOST CALLS TO ALLOCATION FUNCTIONS",
        "PEAK MEMORY CONSUMERS",
        "MOST TEMPORARY ALLOCATIONS",
        "MOST MEMORY LEAKED",
    ] {
        assert!(r.stderr.contains(title), "{title}: {}", r.stderr);
    }
    assert!(
        r.stderr
            .contains("50 temporary allocations (50 allocations, 3,200 bytes"),
        "{}",
        r.stderr
    );
}

#[test]
fn flamegraph_is_an_svg_drawn_by_inferno() {
    let prog = fixture("profile_exact");
    let svg = root().join("target/fixtures/profile.svg");
    let st = Command::new(memcheck_bin())
        .arg(format!("--flamegraph={}", svg.display()))
        .arg("--flamegraph-metric=peak")
        .arg(&prog)
        .status()
        .unwrap();
    assert!(st.success());
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<?xml"));
    assert!(text.contains("<svg"));
    assert!(
        text.contains("big") && text.contains("many"),
        "frames named"
    );
    assert!(
        text.contains("199,001") || text.contains("199001"),
        "the total is shown"
    );
}
