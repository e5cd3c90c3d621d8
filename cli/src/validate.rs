//! Checks on the program before it is started, so that a run that cannot work fails at once
//! with a message that says what to do: missing, not executable, not ELF and not a script,
//! statically linked (LD_PRELOAD cannot reach it), setuid or setgid.

use anyhow::{bail, Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Resolves `name` like execvp does: a name with a slash is a path, else it is looked up in PATH.
pub fn resolve(name: &Path) -> Result<PathBuf> {
    if name.as_os_str().is_empty() {
        bail!("no program given");
    }
    if name.to_string_lossy().contains('/') {
        if !name.exists() {
            bail!("{}: no such file", name.display());
        }
        return Ok(name.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let cand = dir.join(name);
        if cand.is_file() && is_executable(&cand) {
            return Ok(cand);
        }
    }
    bail!("{}: command not found in PATH", name.display())
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p)
        .map(|m| m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Checks that `path` can run under memcheck; follows a `#!` line to its interpreter.
pub fn check(path: &Path) -> Result<()> {
    check_depth(path, 0)
}

fn check_depth(path: &Path, depth: u32) -> Result<()> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("{}: cannot read", path.display()))?;
    if meta.is_dir() {
        bail!("{}: is a directory, not a program", path.display());
    }
    let mode = meta.permissions().mode();
    if mode & 0o111 == 0 {
        bail!(
            "{}: not executable (chmod +x it, or run its interpreter)",
            path.display()
        );
    }
    if mode & 0o6000 != 0 {
        bail!("{}: is setuid or setgid; the kernel ignores LD_PRELOAD for it and forbids tracing it: run a copy without the setuid bit", path.display());
    }
    let data = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    if data.starts_with(b"#!") {
        if depth > 4 {
            bail!("{}: too many nested #! interpreters", path.display());
        }
        let line = data[2..].split(|&c| c == b'\n').next().unwrap_or(&[]);
        let line = String::from_utf8_lossy(line);
        let interp = line.split_whitespace().next().unwrap_or("");
        if interp.is_empty() {
            bail!("{}: #! line names no interpreter", path.display());
        }
        return check_depth(Path::new(interp), depth + 1);
    }
    if !data.starts_with(b"\x7fELF") {
        bail!("{}: not an ELF executable nor a #! script", path.display());
    }
    let elf = goblin::elf::Elf::parse(&data)
        .with_context(|| format!("{}: corrupt ELF file", path.display()))?;
    if !elf.is_64 || elf.header.e_machine != goblin::elf::header::EM_X86_64 {
        bail!(
            "{}: not an x86_64 program; memcheck supports Linux x86_64 only",
            path.display()
        );
    }
    if elf.interpreter.is_none() {
        bail!("{}: statically linked; memcheck needs a dynamically linked program (LD_PRELOAD cannot reach a static one): relink without -static", path.display());
    }
    Ok(())
}

/// The shim library: beside the memcheck executable, or named by MEMCHECK_SHIM.
pub fn shim_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("MEMCHECK_SHIM") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("cannot find memcheck's own executable")?;
    let dir = exe
        .parent()
        .context("memcheck's executable has no directory")?;
    for cand in [
        dir.join("libmemcheck_shim.so"),
        dir.join("../lib/memcheck/libmemcheck_shim.so"),
    ] {
        if cand.is_file() {
            return Ok(std::fs::canonicalize(&cand).unwrap_or(cand));
        }
    }
    bail!("libmemcheck_shim.so not found beside {} (build the whole workspace: cargo build --release)", exe.display())
}
