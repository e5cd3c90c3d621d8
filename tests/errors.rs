//! Bad frees never reach glibc, the program keeps running, and each error is explained as
//! Valgrind explains it; C++ operators and mismatched deallocations.

mod common;
use common::*;
use serde_json::Value;

#[test]
fn bad_frees_are_reported_and_survived() {
    let prog = fixture("bad_frees");
    let r = memcheck(&[], &prog, &[], b"");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(String::from_utf8_lossy(&r.stdout).contains("survived"));
    let p = r.root();

    let e = error_in(p, "double_free");
    assert_eq!(e["kind"], "InvalidFree");
    assert_eq!(e["count"], 3);
    assert_eq!(functions(&e["stack"])[0], "free");
    assert_eq!(
        user_frame(&e["stack"]).unwrap().2,
        line_of("bad_frees", "free(p); /* double free */")
    );
    let d = &e["address_description"];
    assert_eq!(d["kind"], "freed");
    assert_eq!(d["block_size"], 24);
    assert_eq!(d["offset"], 0);
    assert!(
        d["text"]
            .as_str()
            .unwrap()
            .ends_with("is 0 bytes inside a block of size 24 free'd"),
        "{}",
        d["text"]
    );
    assert_eq!(
        user_frame(&d["free_stack"]).unwrap().2,
        line_of("bad_frees", "/* first free */")
    );
    assert_eq!(
        user_frame(&d["alloc_stack"]).unwrap().2,
        line_of("bad_frees", "alloc of the double-freed block")
    );

    let e = error_in(p, "free_stack");
    assert_eq!(e["address_description"]["kind"], "stack");
    assert!(e["address_description"]["text"]
        .as_str()
        .unwrap()
        .contains("on thread 1's stack"));

    let e = error_in(p, "free_global");
    assert_eq!(e["address_description"]["kind"], "global");
    assert!(
        e["address_description"]["text"]
            .as_str()
            .unwrap()
            .contains("0 bytes inside data symbol \"global_buf\""),
        "{}",
        e["address_description"]["text"]
    );

    let e = error_in(p, "free_interior");
    let d = &e["address_description"];
    assert_eq!(
        (
            d["kind"].as_str(),
            d["offset"].as_u64(),
            d["block_size"].as_u64()
        ),
        (Some("live"), Some(8), Some(40))
    );

    let e = error_in(p, "realloc_freed");
    assert_eq!(functions(&e["stack"])[0], "realloc");
    assert_eq!(e["address_description"]["kind"], "freed");
    assert_eq!(e["address_description"]["block_size"], 16);

    let e = error_in(p, "double_free_later");
    assert_eq!(e["address_description"]["kind"], "freed");
    assert_eq!(e["address_description"]["block_size"], 48);

    assert_eq!(
        p["errors"].as_array().unwrap().len(),
        6,
        "{:#?}",
        p["errors"]
    );
    // Nothing leaked: the interior-freed block was freed properly afterwards.
    assert_eq!(p["heap_summary"]["in_use_blocks"], 0);
}

#[test]
fn freelist_blocks_bounds_how_far_back_a_free_is_explained() {
    // double_free_later frees its block, then 1000 others, then the block again: with room for
    // 100 freed blocks it has left the freelist (glibc's free-list links overwrote its header)
    // and the free is still refused, but no longer explained; with room for 2000 it is.
    let prog = fixture("bad_frees");
    for (blocks, kind) in [(100, "unknown"), (2000, "freed")] {
        let opt = format!("--freelist-blocks={blocks}");
        let r = memcheck(&[&opt], &prog, &[], b"");
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        assert!(String::from_utf8_lossy(&r.stdout).contains("survived"));
        let e = error_in(r.root(), "double_free_later");
        assert_eq!(e["kind"], "InvalidFree", "{blocks}: {e:#}");
        assert_eq!(e["address_description"]["kind"], kind, "{blocks}: {e:#}");
    }
}

#[test]
fn bad_frees_heap_summary_equals_valgrinds() {
    let prog = fixture("bad_frees");
    let r = memcheck(&[], &prog, &[], b"");
    let ours = heap_summary(r.root());
    assert_eq!(ours, valgrind_heap_summary(&prog, &[]));
}

#[test]
fn text_report_has_valgrinds_layout() {
    let prog = fixture("bad_frees");
    let r = memcheck(&[], &prog, &[], b"");
    let pid = r.root()["pid"].as_u64().unwrap();
    let pfx = format!("=={pid}==");
    let lines: Vec<&str> = r.stderr.lines().filter(|l| l.starts_with(&pfx)).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("Invalid free() / delete / delete[] / realloc()")),
        "{}",
        r.stderr
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("    at 0x") && l.contains(": free (")),
        "{}",
        r.stderr
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("    by 0x") && l.contains(": double_free (bad_frees.c:")),
        "{}",
        r.stderr
    );
    assert!(
        lines.iter().any(|l| l.contains("  Block was alloc'd at")),
        "{}",
        r.stderr
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("ERROR SUMMARY: 8 errors from 6 contexts")),
        "{}",
        r.stderr
    );
}

#[test]
fn cxx_operators_and_mismatches() {
    let prog = fixture("cxx_ops");
    let r = memcheck(&["--leak-check=full"], &prog, &[], b"");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), "ok");
    let p = r.root();
    for (func, op, bytes) in [
        ("leak_new()", "operator new(unsigned long)", 8),
        ("leak_new_array()", "operator new[](unsigned long)", 40),
        (
            "leak_new_nothrow()",
            "operator new(unsigned long, std::nothrow_t const&)",
            8,
        ),
        (
            "leak_new_aligned()",
            "operator new(unsigned long, std::align_val_t)",
            64,
        ),
        (
            "leak_new_array_aligned()",
            "operator new[](unsigned long, std::align_val_t)",
            128,
        ),
        (
            "shapes::Factory::make_leaked()",
            "operator new(unsigned long)",
            24,
        ),
    ] {
        let v = leaks_in(p, func);
        assert_eq!(v.len(), 1, "{func}: {:#?}", p["leaks"]);
        assert_eq!(v[0]["bytes"], bytes, "{func}");
        assert_eq!(functions(&v[0]["stack"])[0], op, "{func}");
    }
    let mism: Vec<&Value> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "MismatchedFree")
        .collect();
    assert_eq!(mism.len(), 4, "{:#?}", p["errors"]);
    for (dealloc, alloc, marker) in [
        (
            "operator delete(void*, unsigned long)",
            "operator new[](unsigned long)",
            "/* alloc new[] */",
        ),
        (
            "operator delete(void*, unsigned long)",
            "malloc",
            "/* alloc malloc */",
        ),
        ("free", "operator new(unsigned long)", "/* alloc new */"),
        (
            "operator delete[](void*)",
            "operator new(unsigned long)",
            "/* alloc new 2 */",
        ),
    ] {
        let line = line_of("cxx_ops", marker);
        let e = mism
            .iter()
            .find(|e| {
                user_frame(&e["address_description"]["alloc_stack"]).map(|f| f.2) == Some(line)
            })
            .unwrap_or_else(|| panic!("no mismatch for {marker}"));
        assert_eq!(functions(&e["stack"])[0], dealloc, "{marker}");
        assert_eq!(
            functions(&e["address_description"]["alloc_stack"])[0],
            alloc,
            "{marker}"
        );
    }
    // Every other delete matched its new: no InvalidFree, and only the six leaks remain
    // (plus what the mismatched-but-freed blocks do not leave).
    assert!(p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["kind"] == "MismatchedFree"));
    // Valgrind's --show-mismatched-frees=no: the same run without those errors.
    let quiet = memcheck(
        &["--leak-check=full", "--show-mismatched-frees=no"],
        &prog,
        &[],
        b"",
    );
    let q = quiet.root();
    assert_eq!(q["errors"], serde_json::json!([]));
    let mismatches: u64 = mism.iter().map(|e| e["count"].as_u64().unwrap()).sum();
    assert_eq!(
        q["error_summary"]["errors"].as_u64().unwrap(),
        p["error_summary"]["errors"].as_u64().unwrap() - mismatches,
        "the leaks are still counted"
    );
    assert_eq!(leak_list(q), leak_list(p));
    assert_eq!(q["heap_summary"], p["heap_summary"]);
}

#[test]
fn a_stack_sent_again_after_the_stack_table_grew_is_the_same_error_context() {
    // 262,144 distinct stacks fill the shim's first tables; the second pass meets every stack
    // again in a newer table, under a new id.
    let prog = fixture("many_stacks");
    let r = memcheck(&["--num-callers=40"], &prog, &[], b"");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let p = r.root();
    let e = error_in(p, "leaf");
    assert_eq!(e["kind"], "InvalidFree", "{e:#}");
    assert_eq!(e["count"], 2, "{e:#}");
    assert_eq!(e["address_description"]["kind"], "freed", "{e:#}");
    let s = functions(&e["stack"]);
    assert_eq!(s[..3], ["free", "leaf", "walk"], "{s:?}");
    assert_eq!(s.last().map(String::as_str), Some("main"), "{s:?}");
    assert_eq!(p["error_summary"]["contexts"], 1);
    assert_eq!(p["error_summary"]["errors"], 2);
    let h = &p["heap_summary"];
    assert_eq!(
        (h["allocs"].as_u64(), h["frees"].as_u64()),
        (Some(262_144), Some(262_145))
    );
}
