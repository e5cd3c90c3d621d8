//! The text report, in Valgrind's layout: every line prefixed with `==PID==`.

use super::{fmt_num, Amount, Error, LossRecord, Process};
use crate::args::{Config, LeakCheck};
use crate::symbolize::FrameRef;
use std::io::{self, Write};

fn stack(w: &mut dyn Write, pfx: &str, frames: &[FrameRef]) -> io::Result<()> {
    for (i, f) in frames.iter().enumerate() {
        writeln!(
            w,
            "{pfx}    {} {}",
            if i == 0 { "at" } else { "by" },
            f.line()
        )?;
    }
    Ok(())
}

fn kind_words(kind: &str) -> &'static str {
    match kind {
        "Leak_DefinitelyLost" => "definitely lost",
        "Leak_IndirectlyLost" => "indirectly lost",
        "Leak_PossiblyLost" => "possibly lost",
        "Leak_StillReachable" => "still reachable",
        _ => "still allocated (not classified: the process died before memcheck could stop it)",
    }
}

/// Valgrind's sentence for a loss record.
pub fn loss_record_text(r: &LossRecord) -> String {
    let bytes = if r.kind == "Leak_DefinitelyLost" && r.indirect_bytes > 0 {
        format!(
            "{} ({} direct, {} indirect)",
            fmt_num(r.bytes + r.indirect_bytes),
            fmt_num(r.bytes),
            fmt_num(r.indirect_bytes)
        )
    } else {
        fmt_num(r.bytes)
    };
    format!(
        "{bytes} bytes in {} blocks are {} in loss record {} of {}",
        fmt_num(r.blocks),
        kind_words(r.kind),
        fmt_num(r.record as u64),
        fmt_num(r.records as u64)
    )
}

fn suppression(w: &mut dyn Write, text: &Option<String>) -> io::Result<()> {
    if let Some(t) = text {
        // Suppressions are printed bare, without the ==PID== prefix, so they can be pasted.
        write!(w, "{t}")?;
    }
    Ok(())
}

fn loss_record(w: &mut dyn Write, pfx: &str, r: &LossRecord) -> io::Result<()> {
    writeln!(w, "{pfx} {}", loss_record_text(r))?;
    stack(w, pfx, &r.stack)?;
    writeln!(w, "{pfx} ")?;
    suppression(w, &r.suppression)
}

fn error(w: &mut dyn Write, pfx: &str, e: &Error) -> io::Result<()> {
    writeln!(w, "{pfx} {}", e.what)?;
    stack(w, pfx, &e.stack)?;
    let d = &e.address_description;
    writeln!(w, "{pfx}  {}", d.text)?;
    if d.kind == "freed" {
        stack(w, pfx, &d.free_stack)?;
        if !d.alloc_stack.is_empty() {
            writeln!(w, "{pfx}  Block was alloc'd at")?;
        }
    }
    stack(w, pfx, &d.alloc_stack)?;
    writeln!(w, "{pfx} ")?;
    suppression(w, &e.suppression)
}

fn amount(a: Amount) -> String {
    format!("{} bytes in {} blocks", fmt_num(a.bytes), fmt_num(a.blocks))
}

/// Writes one process's report.
pub fn write_process(w: &mut dyn Write, cfg: &Config, p: &Process) -> io::Result<()> {
    let pfx = format!("=={}==", p.pid);
    if !cfg.quiet {
        writeln!(w, "{pfx} memcheck, a heap checker and allocation profiler")?;
        writeln!(w, "{pfx} Command: {}", p.cmdline.join(" "))?;
        if p.ppid != 0 {
            writeln!(w, "{pfx} Parent PID: {}", p.ppid)?;
        }
        writeln!(w, "{pfx} ")?;
    }
    for e in &p.errors {
        error(w, &pfx, e)?;
    }
    let h = &p.heap_summary;
    if !cfg.quiet {
        writeln!(w, "{pfx} HEAP SUMMARY:")?;
        writeln!(
            w,
            "{pfx}     in use at exit: {} bytes in {} blocks",
            fmt_num(h.in_use_bytes),
            fmt_num(h.in_use_blocks)
        )?;
        writeln!(
            w,
            "{pfx}   total heap usage: {} allocs, {} frees, {} bytes allocated",
            fmt_num(h.allocs),
            fmt_num(h.frees),
            fmt_num(h.bytes_allocated)
        )?;
        writeln!(w, "{pfx} ")?;
    }
    if cfg.full() {
        for r in p
            .leaks
            .iter()
            .filter(|r| cfg.show_leak_kinds.contains(r.kind))
        {
            loss_record(w, &pfx, r)?;
        }
    }
    let s = &p.leak_summary;
    if cfg.leak_check != LeakCheck::No && !cfg.quiet {
        if h.in_use_blocks == 0 {
            writeln!(
                w,
                "{pfx} All heap blocks were freed -- no leaks are possible"
            )?;
        } else {
            writeln!(w, "{pfx} LEAK SUMMARY:")?;
            writeln!(w, "{pfx}    definitely lost: {}", amount(s.definitely_lost))?;
            writeln!(w, "{pfx}    indirectly lost: {}", amount(s.indirectly_lost))?;
            writeln!(w, "{pfx}      possibly lost: {}", amount(s.possibly_lost))?;
            writeln!(w, "{pfx}    still reachable: {}", amount(s.still_reachable))?;
            if !s.reachable_via_heuristic.is_empty() {
                writeln!(
                    w,
                    "{pfx}                       of which reachable via heuristic:"
                )?;
                // In Valgrind's order.
                for name in ["stdstring", "length64", "newarray", "multipleinheritance"] {
                    if let Some(a) = s.reachable_via_heuristic.get(name) {
                        writeln!(
                            w,
                            "{pfx}                         {name:<19}: {}",
                            amount(*a)
                        )?;
                    }
                }
            }
            if s.unclassified.blocks > 0 {
                writeln!(
                    w,
                    "{pfx}       unclassified: {} (the process was killed before memcheck could stop it)",
                    amount(s.unclassified)
                )?;
            }
            writeln!(w, "{pfx}         suppressed: {}", amount(s.suppressed))?;
            if cfg.leak_check == LeakCheck::Summary {
                writeln!(
                    w,
                    "{pfx} Rerun with --leak-check=full to see details of leaked memory"
                )?;
            } else if !cfg.show_leak_kinds.reachable
                && (s.still_reachable.blocks > 0 || s.indirectly_lost.blocks > 0)
            {
                writeln!(
                    w,
                    "{pfx} Reachable blocks (those to which a pointer was found) are not shown."
                )?;
                writeln!(
                    w,
                    "{pfx} To see them, rerun with: --leak-check=full --show-leak-kinds=all"
                )?;
            }
        }
        writeln!(w, "{pfx} ")?;
    }
    let es = &p.error_summary;
    if cfg.show_error_list {
        for c in &p.suppcounts {
            writeln!(w, "{pfx} used_suppression: {:>6} {}", c.count, c.name)?;
        }
    }
    writeln!(
        w,
        "{pfx} ERROR SUMMARY: {} errors from {} contexts (suppressed: {} from {})",
        fmt_num(es.errors),
        fmt_num(es.contexts),
        fmt_num(es.suppressed_errors),
        fmt_num(es.suppressed_contexts)
    )
}
