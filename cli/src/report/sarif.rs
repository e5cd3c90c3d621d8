//! SARIF 2.1.0 for GitHub code scanning: one result per error and per loss record, a rule per
//! kind, the location at the first frame in the project's own source (under the working
//! directory), and the whole stack as a code flow.

use super::text::loss_record_text;
use super::{Frame, FrameRef, Report};
use serde_json::{json, Value};
use std::path::Path;

const RULES: &[(&str, &str, &str)] = &[
    (
        "InvalidFree",
        "Invalid free() / delete / delete[] / realloc()",
        "error",
    ),
    (
        "MismatchedFree",
        "Mismatched free() / delete / delete []",
        "error",
    ),
    (
        "Leak_DefinitelyLost",
        "Memory definitely lost: no pointer to the block remains",
        "error",
    ),
    (
        "Leak_PossiblyLost",
        "Memory possibly lost: only interior pointers to the block remain",
        "warning",
    ),
    (
        "Leak_IndirectlyLost",
        "Memory indirectly lost: reachable only from lost blocks",
        "note",
    ),
    (
        "Leak_StillReachable",
        "Memory still reachable at exit",
        "note",
    ),
    (
        "Leak_Unclassified",
        "Memory still allocated when the process was killed",
        "warning",
    ),
];

fn level(rule: &str) -> &'static str {
    RULES
        .iter()
        .find(|r| r.0 == rule)
        .map(|r| r.2)
        .unwrap_or("warning")
}

/// The artifact location of a frame: relative to `root` when the source lies under it.
fn artifact(f: &Frame, root: &Path) -> Option<(Value, bool)> {
    let file = f.file.as_ref()?;
    let full = match &f.dir {
        Some(d) => Path::new(d).join(file),
        None => Path::new(file).to_path_buf(),
    };
    match full.strip_prefix(root) {
        Ok(rel) => Some((
            json!({ "uri": rel.to_string_lossy(), "uriBaseId": "%SRCROOT%" }),
            true,
        )),
        Err(_) => Some((
            json!({ "uri": format!("file://{}", full.display()) }),
            false,
        )),
    }
}

fn physical(f: &Frame, root: &Path) -> Option<(Value, bool)> {
    let (a, own) = artifact(f, root)?;
    let mut p = json!({ "artifactLocation": a });
    if let Some(l) = f.line.filter(|&l| l > 0) {
        p["region"] = json!({ "startLine": l });
    }
    Some((p, own))
}

fn frame_label(f: &Frame) -> String {
    f.function
        .clone()
        .unwrap_or_else(|| format!("0x{:x}", f.ip))
}

fn result(rule: &str, message: String, stack: &[FrameRef], root: &Path, pid: u32) -> Value {
    let placed: Vec<(usize, Value, bool)> = stack
        .iter()
        .enumerate()
        .filter_map(|(i, f)| physical(f, root).map(|(p, own)| (i, p, own)))
        .collect();
    let primary = placed.iter().find(|p| p.2).or_else(|| placed.first());
    let mut r = json!({
        "ruleId": rule,
        "level": level(rule),
        "message": { "text": message },
        "partialFingerprints": { "memcheckStack/v1": fingerprint(rule, stack) },
        "properties": { "pid": pid },
    });
    if let Some((i, p, _)) = primary {
        r["locations"] =
            json!([{ "physicalLocation": p, "message": { "text": frame_label(&stack[*i]) } }]);
    }
    let flow: Vec<Value> = stack
        .iter()
        .map(|f| {
            let mut loc = json!({ "message": { "text": frame_label(f) } });
            if let Some((p, _)) = physical(f, root) {
                loc["physicalLocation"] = p;
            }
            json!({ "location": loc })
        })
        .collect();
    if !flow.is_empty() {
        r["codeFlows"] = json!([{ "threadFlows": [{ "locations": flow }] }]);
    }
    r
}

/// A fingerprint that survives a rebuild: the kind and the function names of the stack.
fn fingerprint(rule: &str, stack: &[FrameRef]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in rule.bytes().chain(stack.iter().flat_map(|f| {
        f.function
            .as_deref()
            .unwrap_or("?")
            .bytes()
            .chain(std::iter::once(0))
    })) {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

pub fn build(report: &Report, root: &Path) -> Value {
    let mut results = Vec::new();
    for p in &report.processes {
        for e in &p.errors {
            let msg = format!(
                "{} ({}); {}",
                e.what, e.function, e.address_description.text
            );
            results.push(result(e.kind, msg, &e.stack, root, p.pid));
        }
        for l in &p.leaks {
            results.push(result(l.kind, loss_record_text(l), &l.stack, root, p.pid));
        }
    }
    let rules: Vec<Value> = RULES
        .iter()
        .map(|(id, text, level)| {
            json!({
                "id": id,
                "name": id.replace('_', ""),
                "shortDescription": { "text": text },
                "defaultConfiguration": { "level": level },
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "memcheck",
                "version": report.version,
                "rules": rules,
            }},
            "originalUriBaseIds": { "%SRCROOT%": { "uri": format!("file://{}/", root.display()) } },
            "results": results,
        }]
    })
}
