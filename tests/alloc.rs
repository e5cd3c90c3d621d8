//! Interception of every allocation function: each block is reported where it was allocated,
//! by the right function, with the requested size.

mod common;
use common::*;

fn definitely_lost_in<'a>(p: &'a serde_json::Value, function: &str) -> &'a serde_json::Value {
    let v = leaks_in(p, function);
    assert_eq!(v.len(), 1, "one loss record through {function}: {v:#?}");
    assert_eq!(v[0]["kind"], "Leak_DefinitelyLost", "{function}");
    v[0]
}

#[test]
fn every_c_allocation_function_is_tracked() {
    let prog = fixture("alloc_funcs");
    let r = memcheck(&["--leak-check=full"], &prog, &[], b"");
    assert_eq!(
        r.code,
        Some(0),
        "the fixture's own checks failed:\n{}",
        r.stderr
    );
    let p = r.root();
    for (func, alloc, size) in [
        ("leak_malloc", "malloc", 101),
        ("leak_calloc", "calloc", 102),
        ("leak_realloc", "realloc", 103),
        ("leak_reallocarray", "reallocarray", 104),
        ("leak_posix_memalign", "posix_memalign", 105),
        ("leak_aligned_alloc", "aligned_alloc", 106),
        ("leak_memalign", "memalign", 107),
        ("leak_valloc", "valloc", 108),
        ("leak_pvalloc", "pvalloc", 4096),
        ("leak_strdup", "malloc", 11),
    ] {
        let l = definitely_lost_in(p, func);
        assert_eq!(l["bytes"], size, "{func}");
        assert_eq!(l["blocks"], 1, "{func}");
        let f = functions(&l["stack"]);
        assert_eq!(f[0], alloc, "{func}: {f:?}");
        let (uf, file, _) = user_frame(&l["stack"]).expect("a frame in the fixture");
        assert_eq!((uf.as_str(), file.as_str()), (func, "alloc_funcs.c"));
    }
    // glibc allocates for the caller: still the caller's block.
    for func in ["leak_asprintf", "leak_getline"] {
        let l = definitely_lost_in(p, func);
        assert!(l["bytes"].as_u64().unwrap() > 0);
    }
    assert_eq!(
        p["errors"].as_array().unwrap().len(),
        0,
        "{:#?}",
        p["errors"]
    );
}

#[test]
fn heap_summary_equals_valgrinds() {
    let prog = fixture("alloc_funcs");
    let r = memcheck(&[], &prog, &["no-pvalloc"], b"");
    let ours = heap_summary(r.root());
    assert_eq!(ours, valgrind_heap_summary(&prog, &["no-pvalloc"]));
}

#[test]
fn blocks_are_filled_as_malloc_fill_and_free_fill_say() {
    // What the program reads in new and freed blocks is what it reads under Valgrind with the
    // same options.
    let prog = fixture("fills");
    let opts = ["--malloc-fill=0xab", "--free-fill=CD"];
    let vg = std::process::Command::new("valgrind")
        .arg("-q")
        .args(opts)
        .arg(&prog)
        .output()
        .unwrap();
    assert!(
        vg.status.success(),
        "{}",
        String::from_utf8_lossy(&vg.stderr)
    );
    let r = memcheck(&opts, &prog, &[], b"");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let out = String::from_utf8_lossy(&r.stdout);
    assert_eq!(out, String::from_utf8_lossy(&vg.stdout));
    assert!(
        out.contains("malloc: ab ab") && out.contains("freed: cd cd"),
        "{out}"
    );
    // Without the options nothing is filled: the freed block keeps the program's bytes.
    let plain = memcheck(&[], &prog, &[], b"");
    assert!(
        String::from_utf8_lossy(&plain.stdout).contains("freed: 22 22"),
        "{}",
        String::from_utf8_lossy(&plain.stdout)
    );
}
