//! Valgrind's XML output, protocol version 4, one document per process: what the Jenkins
//! Valgrind plugin, ctest's memcheck and ValgrindCI read. Text is escaped with `quick-xml`.

use super::text::loss_record_text;
use super::{Frame, FrameRef, Process};
use crate::args::Config;
use quick_xml::escape::escape;
use std::io::{self, Write};
use std::time::Duration;

fn frame(w: &mut dyn Write, f: &Frame) -> io::Result<()> {
    writeln!(w, "    <frame>")?;
    writeln!(w, "      <ip>0x{:X}</ip>", f.ip)?;
    if let Some(o) = &f.object {
        writeln!(w, "      <obj>{}</obj>", escape(o.as_str()))?;
    }
    if let Some(func) = &f.function {
        writeln!(w, "      <fn>{}</fn>", escape(func.as_str()))?;
    }
    if let (Some(file), Some(line)) = (&f.file, f.line) {
        if let Some(d) = &f.dir {
            writeln!(w, "      <dir>{}</dir>", escape(d.as_str()))?;
        }
        writeln!(w, "      <file>{}</file>", escape(file.as_str()))?;
        writeln!(w, "      <line>{line}</line>")?;
    }
    writeln!(w, "    </frame>")
}

fn stack(w: &mut dyn Write, frames: &[FrameRef]) -> io::Result<()> {
    writeln!(w, "  <stack>")?;
    for f in frames {
        frame(w, f)?;
    }
    writeln!(w, "  </stack>")
}

/// The `<suppression>` element for a generated suppression (`text`, in .supp syntax).
fn suppression(w: &mut dyn Write, text: &str) -> io::Result<()> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    writeln!(w, "  <suppression>")?;
    writeln!(w, "    <sname>insert_a_suppression_name_here</sname>")?;
    if let Some(k) = lines.get(2) {
        writeln!(w, "    <skind>{}</skind>", escape(*k))?;
    }
    for l in &lines[3..] {
        if let Some(aux) = l.strip_prefix("match-leak-kinds:") {
            writeln!(
                w,
                "    <skaux>match-leak-kinds: {}</skaux>",
                escape(aux.trim())
            )?;
        } else if let Some((k, v)) = l.split_once(':') {
            writeln!(w, "    <sframe> <{k}>{}</{k}> </sframe>", escape(v))?;
        }
    }
    writeln!(w, "    <rawtext>\n<![CDATA[\n{text}]]>\n    </rawtext>")?;
    writeln!(w, "  </suppression>")
}

fn time(d: Duration) -> String {
    let ms = d.as_millis();
    format!(
        "{:02}:{:02}:{:02}:{:02}.{:03} ",
        ms / 86_400_000,
        ms / 3_600_000 % 24,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Writes one process's XML document. `elapsed`: the run's wall time.
pub fn write_process(
    w: &mut dyn Write,
    cfg: &Config,
    p: &Process,
    elapsed: Duration,
) -> io::Result<()> {
    writeln!(w, "<?xml version=\"1.0\"?>\n\n<valgrindoutput>\n")?;
    writeln!(
        w,
        "<protocolversion>4</protocolversion>\n<protocoltool>memcheck</protocoltool>\n"
    )?;
    writeln!(w, "<preamble>")?;
    writeln!(
        w,
        "  <line>memcheck, a heap checker and allocation profiler</line>"
    )?;
    writeln!(w, "  <line>memcheck {}</line>", env!("CARGO_PKG_VERSION"))?;
    writeln!(
        w,
        "  <line>Command: {}</line>",
        escape(p.cmdline.join(" ").as_str())
    )?;
    writeln!(w, "</preamble>\n")?;
    writeln!(
        w,
        "<pid>{}</pid>\n<ppid>{}</ppid>\n<tool>memcheck</tool>\n",
        p.pid, p.ppid
    )?;
    writeln!(w, "<args>\n  <vargv>")?;
    let me = std::env::current_exe()
        .map(|e| e.display().to_string())
        .unwrap_or_else(|_| "memcheck".into());
    writeln!(w, "    <exe>{}</exe>", escape(me.as_str()))?;
    for o in &cfg.options {
        writeln!(w, "    <arg>{}</arg>", escape(o.as_str()))?;
    }
    writeln!(w, "  </vargv>\n  <argv>")?;
    if let Some((exe, args)) = p.cmdline.split_first() {
        writeln!(w, "    <exe>{}</exe>", escape(exe.as_str()))?;
        for a in args {
            writeln!(w, "    <arg>{}</arg>", escape(a.as_str()))?;
        }
    }
    writeln!(w, "  </argv>\n</args>\n")?;
    writeln!(
        w,
        "<status>\n  <state>RUNNING</state>\n  <time>{}</time>\n</status>\n",
        time(Duration::ZERO)
    )?;
    for e in &p.errors {
        writeln!(w, "<error>")?;
        writeln!(
            w,
            "  <unique>{:#x}</unique>\n  <tid>{}</tid>",
            e.unique, e.tid
        )?;
        writeln!(
            w,
            "  <kind>{}</kind>\n  <what>{}</what>",
            e.kind,
            escape(e.what)
        )?;
        stack(w, &e.stack)?;
        let d = &e.address_description;
        writeln!(w, "  <auxwhat>{}</auxwhat>", escape(d.text.as_str()))?;
        if d.kind == "freed" {
            stack(w, &d.free_stack)?;
            if !d.alloc_stack.is_empty() {
                writeln!(w, "  <auxwhat>Block was alloc'd at</auxwhat>")?;
            }
        }
        if !d.alloc_stack.is_empty() {
            stack(w, &d.alloc_stack)?;
        }
        if let Some(s) = &e.suppression {
            suppression(w, s)?;
        }
        writeln!(w, "</error>\n")?;
    }
    writeln!(
        w,
        "<status>\n  <state>FINISHED</state>\n  <time>{}</time>\n</status>\n",
        time(elapsed)
    )?;
    if cfg.full() {
        for r in p
            .leaks
            .iter()
            .filter(|r| cfg.show_leak_kinds.contains(r.kind))
        {
            writeln!(w, "<error>")?;
            writeln!(
                w,
                "  <unique>{:#x}</unique>\n  <tid>1</tid>\n  <kind>{}</kind>",
                r.unique, r.kind
            )?;
            writeln!(
                w,
                "  <xwhat>\n    <text>{}</text>",
                escape(loss_record_text(r).as_str())
            )?;
            writeln!(
                w,
                "    <leakedbytes>{}</leakedbytes>",
                r.bytes + r.indirect_bytes
            )?;
            writeln!(
                w,
                "    <leakedblocks>{}</leakedblocks>\n  </xwhat>",
                r.blocks
            )?;
            stack(w, &r.stack)?;
            if let Some(s) = &r.suppression {
                suppression(w, s)?;
            }
            writeln!(w, "</error>\n")?;
        }
    }
    writeln!(w, "<errorcounts>")?;
    for e in &p.errors {
        writeln!(
            w,
            "  <pair>\n    <count>{}</count>\n    <unique>{:#x}</unique>\n  </pair>",
            e.count, e.unique
        )?;
    }
    writeln!(w, "</errorcounts>\n\n<suppcounts>")?;
    for c in &p.suppcounts {
        writeln!(
            w,
            "  <pair>\n    <count>{}</count>\n    <name>{}</name>\n  </pair>",
            c.count,
            escape(c.name.as_str())
        )?;
    }
    writeln!(w, "</suppcounts>\n\n</valgrindoutput>")
}
