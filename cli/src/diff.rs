//! `memcheck diff BASE.json NEW.json`: the CI gate for a code base that already leaks. Loss
//! records and errors of two JSON reports are matched by their symbolised stacks (function
//! names and source files, never addresses, which change with every build); what NEW has that
//! BASE had not, or has more of, is listed, and the exit status is 1 if there is any.
//! Definitely and possibly lost records count; indirectly lost and still reachable ones don't.

use anyhow::{Context, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

/// A stack as a key: one "function (file)" item per frame, the allocator's frame included.
fn stack_key(stack: &Value) -> Vec<String> {
    stack
        .as_array()
        .map(|frames| {
            frames
                .iter()
                .map(|f| {
                    let func = f["function"].as_str().unwrap_or("???");
                    match f["file"].as_str() {
                        Some(file) => format!("{func} ({file})"),
                        None => {
                            let obj = f["object"].as_str().unwrap_or("");
                            format!("{func} (in {})", obj.rsplit('/').next().unwrap_or(obj))
                        }
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Default, Clone, Copy)]
struct Totals {
    bytes: u64,
    blocks: u64,
    count: u64,
}

type Key = (String, String, Vec<String>); // (program, kind, stack)

fn load(path: &Path) -> Result<BTreeMap<Key, Totals>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a memcheck JSON report", path.display()))?;
    let procs = v["processes"].as_array().with_context(|| {
        format!(
            "{} is not a memcheck JSON report (no processes)",
            path.display()
        )
    })?;
    let mut out: BTreeMap<Key, Totals> = BTreeMap::new();
    for p in procs {
        let exe = p["exe"].as_str().unwrap_or("");
        let program = exe.rsplit('/').next().unwrap_or(exe).to_string();
        for l in p["leaks"].as_array().into_iter().flatten() {
            let kind = l["kind"].as_str().unwrap_or("").to_string();
            if !matches!(
                kind.as_str(),
                "Leak_DefinitelyLost" | "Leak_PossiblyLost" | "Leak_Unclassified"
            ) {
                continue;
            }
            let t = out
                .entry((program.clone(), kind, stack_key(&l["stack"])))
                .or_default();
            t.bytes += l["bytes"].as_u64().unwrap_or(0) + l["indirect_bytes"].as_u64().unwrap_or(0);
            t.blocks += l["blocks"].as_u64().unwrap_or(0);
            t.count += 1;
        }
        for e in p["errors"].as_array().into_iter().flatten() {
            let kind = e["kind"].as_str().unwrap_or("").to_string();
            let t = out
                .entry((program.clone(), kind, stack_key(&e["stack"])))
                .or_default();
            t.count += e["count"].as_u64().unwrap_or(1);
        }
    }
    Ok(out)
}

pub fn run(base: &Path, new: &Path) -> Result<ExitCode> {
    let (b, n) = (load(base)?, load(new)?);
    let mut regressions = 0;
    for (key, t) in &n {
        let (program, kind, stack) = key;
        let what = match b.get(key) {
            None => "new",
            Some(old)
                if kind.starts_with("Leak_") && (t.bytes > old.bytes || t.blocks > old.blocks) =>
            {
                "grown"
            }
            Some(_) => continue,
        };
        regressions += 1;
        let old = b.get(key).copied().unwrap_or_default();
        if kind.starts_with("Leak_") {
            println!(
                "{what} {kind} in {program}: {} bytes in {} blocks (was {} bytes in {} blocks)",
                t.bytes, t.blocks, old.bytes, old.blocks
            );
        } else {
            println!("{what} {kind} in {program}: {} occurrence(s)", t.count);
        }
        for (i, f) in stack.iter().enumerate() {
            println!("    {} {f}", if i == 0 { "at" } else { "by" });
        }
    }
    let fixed = b.keys().filter(|k| !n.contains_key(*k)).count();
    println!(
        "memcheck diff: {regressions} new or grown, {fixed} gone ({} vs {})",
        new.display(),
        base.display()
    );
    Ok(if regressions > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
