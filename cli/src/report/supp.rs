//! Suppressions in Valgrind's `.supp` format: reading them, matching errors and loss records
//! against them, and writing the suppression that matches exactly one report
//! (`--gen-suppressions=all`).
//!
//! ```text
//! {
//!    name
//!    Memcheck:Leak
//!    match-leak-kinds: definite,possible
//!    fun:malloc
//!    obj:/usr/lib/libfoo.so*
//!    ...
//!    src:parser.c:42
//! }
//! ```
//! `fun:` matches a frame's function (mangled or demangled), `obj:` its object file, `src:` its
//! `file` or `file:line`; `*` and `?` are globs; a `...` line matches any number of frames. The
//! frame lines match the top of the stack; the stack may go on below them.

use super::{Frame, FrameRef};
use anyhow::{bail, Context, Result};
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Eq)]
enum FramePat {
    Fun(String),
    Obj(String),
    Src(String),
    Ellipsis,
}

#[derive(Clone, Debug)]
pub struct Suppression {
    pub name: String,
    /// The kind after `Memcheck:`: Leak, Free, ...
    kind: String,
    /// For Leak: the kinds it applies to (definite, indirect, possible, reachable); None: all.
    leak_kinds: Option<Vec<String>>,
    frames: Vec<FramePat>,
}

/// Valgrind's glob: `*` any run of characters, `?` one character.
pub fn glob(pat: &str, s: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pat.chars().collect(), s.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Parses a suppressions file.
pub fn parse_file(path: &Path) -> Result<Vec<Suppression>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read suppressions file {}", path.display()))?;
    parse(&text).with_context(|| format!("in suppressions file {}", path.display()))
}

pub fn parse(text: &str) -> Result<Vec<Suppression>> {
    let mut out = Vec::new();
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    while let Some((n, l)) = lines.next() {
        if l != "{" {
            bail!("line {n}: expected '{{' to start a suppression, found {l:?}");
        }
        let Some((_, name)) = lines.next() else {
            bail!("line {n}: suppression without a name")
        };
        let Some((kn, kind_line)) = lines.next() else {
            bail!("line {n}: suppression without a kind")
        };
        let Some((tools, kind)) = kind_line.split_once(':') else {
            bail!("line {kn}: expected TOOL:KIND (e.g. Memcheck:Leak), found {kind_line:?}")
        };
        let for_memcheck = tools.split(',').any(|t| t.trim() == "Memcheck");
        let mut s = Suppression {
            name: name.to_string(),
            kind: kind.trim().to_string(),
            leak_kinds: None,
            frames: Vec::new(),
        };
        let mut closed = false;
        for (ln, l) in lines.by_ref() {
            if l == "}" {
                closed = true;
                break;
            }
            if let Some(k) = l.strip_prefix("match-leak-kinds:") {
                let kinds: Vec<String> = k.split(',').map(|x| x.trim().to_string()).collect();
                s.leak_kinds = if kinds.iter().any(|k| k == "all") {
                    None
                } else {
                    Some(kinds)
                };
            } else if l == "..." {
                s.frames.push(FramePat::Ellipsis);
            } else if let Some(f) = l.strip_prefix("fun:") {
                s.frames.push(FramePat::Fun(f.to_string()));
            } else if let Some(o) = l.strip_prefix("obj:") {
                s.frames.push(FramePat::Obj(o.to_string()));
            } else if let Some(o) = l.strip_prefix("src:") {
                s.frames.push(FramePat::Src(o.to_string()));
            } else if s.frames.is_empty() {
                // Kind-specific extra lines (e.g. Param's syscall name): not used by memcheck.
            } else {
                bail!("line {ln}: unexpected {l:?} in suppression {:?}", s.name);
            }
        }
        if !closed {
            bail!("suppression {:?} is not closed with '}}'", s.name);
        }
        if for_memcheck {
            out.push(s);
        }
    }
    Ok(out)
}

fn frame_matches(p: &FramePat, f: &Frame) -> bool {
    match p {
        FramePat::Fun(g) => {
            // A versioned name (`pthread_create@@GLIBC_2.34`, as Valgrind shows a symbol with
            // its version) also matches the symbol of that name.
            let unversioned = g.split('@').next().unwrap_or(g);
            f.mangled.as_deref().is_some_and(|m| glob(g, m))
                || f.function.as_deref().is_some_and(|n| glob(g, n))
                || f.aliases.iter().any(|a| glob(g, a) || glob(unversioned, a))
        }
        FramePat::Obj(g) => f.object.as_deref().is_some_and(|o| glob(g, o)),
        FramePat::Src(g) => match (&f.file, f.line) {
            (Some(file), Some(line)) => glob(g, file) || glob(g, &format!("{file}:{line}")),
            (Some(file), None) => glob(g, file),
            _ => false,
        },
        FramePat::Ellipsis => true,
    }
}

fn stack_matches(pats: &[FramePat], frames: &[FrameRef]) -> bool {
    match pats.split_first() {
        None => true,
        Some((FramePat::Ellipsis, rest)) => {
            (0..=frames.len()).any(|i| stack_matches(rest, &frames[i..]))
        }
        Some((p, rest)) => frames
            .split_first()
            .is_some_and(|(f, fr)| frame_matches(p, f) && stack_matches(rest, fr)),
    }
}

/// Valgrind's suppression kind of an error kind.
pub fn supp_kind(error_kind: &str) -> &'static str {
    match error_kind {
        "InvalidFree" | "MismatchedFree" => "Free",
        k if k.starts_with("Leak_") => "Leak",
        _ => "Unknown",
    }
}

/// The `match-leak-kinds` word of a loss record kind.
pub fn leak_word(kind: &str) -> &'static str {
    match kind {
        "Leak_DefinitelyLost" => "definite",
        "Leak_IndirectlyLost" => "indirect",
        "Leak_PossiblyLost" => "possible",
        "Leak_StillReachable" => "reachable",
        _ => "definite",
    }
}

/// The first suppression that matches an error or loss record of `kind` with `stack`.
pub fn find<'a>(
    supps: &'a [Suppression],
    kind: &str,
    stack: &[FrameRef],
) -> Option<&'a Suppression> {
    let sk = supp_kind(kind);
    supps.iter().find(|s| {
        s.kind == sk
            && (sk != "Leak"
                || s.leak_kinds
                    .as_ref()
                    .is_none_or(|ks| ks.iter().any(|k| k == leak_word(kind))))
            && stack_matches(&s.frames, stack)
    })
}

/// The frame lines that describe `stack` (fun: where the function is known, else obj:).
pub fn frame_lines(stack: &[FrameRef]) -> Vec<(&'static str, String)> {
    stack
        .iter()
        .map(|f| match (&f.mangled, &f.function, &f.object) {
            (Some(m), _, _) => ("fun", m.clone()),
            (None, Some(n), _) => ("fun", n.clone()),
            (None, None, Some(o)) => ("obj", o.clone()),
            _ => ("obj", "*".to_string()),
        })
        .collect()
}

/// The suppression, in .supp syntax, that matches this error or loss record.
pub fn generate(kind: &str, stack: &[FrameRef]) -> String {
    let mut s = String::from("{\n   <insert_a_suppression_name_here>\n");
    s.push_str(&format!("   Memcheck:{}\n", supp_kind(kind)));
    if supp_kind(kind) == "Leak" {
        s.push_str(&format!("   match-leak-kinds: {}\n", leak_word(kind)));
    }
    for (k, v) in frame_lines(stack) {
        s.push_str(&format!("   {k}:{v}\n"));
    }
    s.push_str("}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(f: &str, obj: &str) -> FrameRef {
        FrameRef::new(Frame {
            function: Some(f.into()),
            mangled: Some(f.into()),
            object: Some(obj.into()),
            ..Default::default()
        })
    }

    #[test]
    fn globs() {
        assert!(glob("*", ""));
        assert!(glob("_Z*Foo*", "_ZN3FooC1Ev"));
        assert!(glob("lib?.so", "liba.so"));
        assert!(!glob("lib?.so", "libab.so"));
        assert!(glob("*/libc.so*", "/usr/lib/x86_64-linux-gnu/libc.so.6"));
    }

    #[test]
    fn parse_and_match() {
        let supps = parse(
            "# comment\n{\n   leak-in-init\n   Memcheck:Leak\n   match-leak-kinds: definite,possible\n   fun:malloc\n   ...\n   fun:init_*\n}\n{\n  free-one\n  Memcheck:Free\n  fun:free\n  obj:*/prog\n}\n",
        )
        .unwrap();
        assert_eq!(supps.len(), 2);
        let stack = vec![
            frame("malloc", "shim.so"),
            frame("helper", "/bin/prog"),
            frame("init_config", "/bin/prog"),
            frame("main", "/bin/prog"),
        ];
        assert_eq!(
            find(&supps, "Leak_DefinitelyLost", &stack).map(|s| s.name.as_str()),
            Some("leak-in-init")
        );
        assert!(find(&supps, "Leak_StillReachable", &stack).is_none());
        let free = vec![frame("free", "shim.so"), frame("main", "/bin/prog")];
        assert_eq!(
            find(&supps, "InvalidFree", &free).map(|s| s.name.as_str()),
            Some("free-one")
        );
        assert!(find(&supps, "Leak_DefinitelyLost", &free).is_none());
    }

    #[test]
    fn generated_suppression_matches_its_stack() {
        let stack = vec![
            frame("malloc", "shim.so"),
            frame("_ZN3Foo4makeEv", "/bin/prog"),
            frame("main", "/bin/prog"),
        ];
        let text = generate("Leak_PossiblyLost", &stack);
        let supps = parse(&text).unwrap();
        assert!(find(&supps, "Leak_PossiblyLost", &stack).is_some());
        assert!(find(&supps, "Leak_DefinitelyLost", &stack).is_none());
    }

    #[test]
    fn bad_files_are_errors() {
        assert!(parse("{\n name\n Memcheck:Leak\n fun:x\n").is_err());
        assert!(parse("fun:x\n").is_err());
    }
}
