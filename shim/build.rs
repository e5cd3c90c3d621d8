fn main() {
    println!("cargo:rerun-if-changed=csrc/new_slow.c");
    cc::Build::new()
        .file("csrc/new_slow.c")
        .flag("-fexceptions")
        .flag("-fasynchronous-unwind-tables")
        .opt_level(2)
        .compile("memcheck_new_slow");
}
