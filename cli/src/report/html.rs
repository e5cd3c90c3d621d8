//! `--html=FILE`: one self-contained HTML page (no network access when opened) with, per
//! process, the summaries, the heap-and-RSS-over-time chart with the peak marked (drawn by
//! `plotters`), the allocation flamegraph (drawn by `inferno`, embedded as an image: its own
//! script is for a standalone SVG, which `--flamegraph` writes), the top allocation sites, and
//! the errors and loss records with their stacks.

use super::profile::{flamegraph, top_sites};
use super::text::loss_record_text;
use super::{fmt_num, FrameRef, Process, Report};
use crate::args::{Config, Metric};
use plotters::prelude::*;
use quick_xml::escape::escape;
use std::io::{self, Write};

const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1300px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; margin-top: 2em; }
h3 { font-size: 1.05em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: .5em 0; }
td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; padding: .5em; overflow-x: auto; font-size: .85em; }
details { margin: .3em 0; } summary { cursor: pointer; }
.err { color: #a00; } img.flame { width: 100%; border: 1px solid #ddd; }
";

fn e(s: &str) -> String {
    escape(s).into_owned()
}

fn stack_pre(frames: &[FrameRef]) -> String {
    let lines: Vec<String> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| format!("{} {}", if i == 0 { "at" } else { "by" }, e(&f.line())))
        .collect();
    format!("<pre>{}</pre>", lines.join("\n"))
}

/// A short name for a site: the first frame that is not the allocator.
fn site_name(frames: &[FrameRef]) -> String {
    let f = frames.get(1).or_else(|| frames.first());
    f.map(|f| match (&f.function, &f.file, f.line) {
        (Some(n), Some(file), Some(l)) => format!("{n} ({file}:{l})"),
        (Some(n), _, _) => n.clone(),
        _ => format!("0x{:x}", f.ip),
    })
    .unwrap_or_default()
}

/// The heap-and-RSS chart of a process, as an SVG string.
fn chart(p: &Process) -> Option<String> {
    let prof = p.profile.as_ref()?;
    if prof.samples.is_empty() {
        return None;
    }
    let max_ms = prof
        .samples
        .iter()
        .map(|s| s.ms)
        .max()
        .unwrap_or(0)
        .max(prof.peak_ms)
        .max(1);
    let max_y = prof
        .samples
        .iter()
        .map(|s| s.heap_bytes.max(s.rss_bytes))
        .max()
        .unwrap_or(0)
        .max(prof.peak_heap_bytes)
        .max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1100, 360)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let mut c = ChartBuilder::on(&root)
            .caption("heap in use and RSS over time", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(90)
            .build_cartesian_2d(0u64..max_ms, 0u64..max_y + max_y / 10)
            .ok()?;
        c.configure_mesh()
            .x_desc("ms")
            .y_desc("bytes")
            .y_label_formatter(&|v| fmt_num(*v))
            .draw()
            .ok()?;
        c.draw_series(LineSeries::new(
            prof.samples.iter().map(|s| (s.ms, s.heap_bytes)),
            &BLUE,
        ))
        .ok()?
        .label("heap in use")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
        c.draw_series(LineSeries::new(
            prof.samples
                .iter()
                .filter(|s| s.rss_bytes > 0)
                .map(|s| (s.ms, s.rss_bytes)),
            &GREEN,
        ))
        .ok()?
        .label("RSS")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], GREEN));
        c.draw_series(std::iter::once(Circle::new(
            (prof.peak_ms, prof.peak_heap_bytes),
            5,
            RED.filled(),
        )))
        .ok()?
        .label(format!(
            "peak heap: {} bytes at {} ms",
            fmt_num(prof.peak_heap_bytes),
            fmt_num(prof.peak_ms)
        ))
        .legend(|(x, y)| Circle::new((x + 8, y), 4, RED.filled()));
        c.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .ok()?;
        root.present().ok()?;
    }
    Some(svg)
}

fn process(w: &mut dyn Write, cfg: &Config, p: &Process) -> io::Result<()> {
    writeln!(
        w,
        "<h2>Process {} — {}</h2>",
        p.pid,
        e(&p.cmdline.join(" "))
    )?;
    let h = &p.heap_summary;
    let s = &p.leak_summary;
    writeln!(w, "<table>")?;
    let row = |w: &mut dyn Write, k: &str, v: String| {
        writeln!(w, "<tr><th>{k}</th><td class=n>{v}</td></tr>")
    };
    row(
        w,
        "in use at exit",
        format!(
            "{} bytes in {} blocks",
            fmt_num(h.in_use_bytes),
            fmt_num(h.in_use_blocks)
        ),
    )?;
    row(
        w,
        "total heap usage",
        format!(
            "{} allocs, {} frees, {} bytes allocated",
            fmt_num(h.allocs),
            fmt_num(h.frees),
            fmt_num(h.bytes_allocated)
        ),
    )?;
    for (k, a) in [
        ("definitely lost", s.definitely_lost),
        ("indirectly lost", s.indirectly_lost),
        ("possibly lost", s.possibly_lost),
        ("still reachable", s.still_reachable),
        ("suppressed", s.suppressed),
    ] {
        row(
            w,
            k,
            format!("{} bytes in {} blocks", fmt_num(a.bytes), fmt_num(a.blocks)),
        )?;
    }
    row(
        w,
        "errors",
        format!(
            "{} from {} contexts",
            fmt_num(p.error_summary.errors),
            fmt_num(p.error_summary.contexts)
        ),
    )?;
    if let Some(prof) = &p.profile {
        row(
            w,
            "peak heap",
            format!(
                "{} bytes after {} ms",
                fmt_num(prof.peak_heap_bytes),
                fmt_num(prof.peak_ms)
            ),
        )?;
        row(
            w,
            "peak RSS",
            format!("{} bytes", fmt_num(prof.peak_rss_bytes)),
        )?;
        row(w, "temporary allocations", fmt_num(prof.temporary))?;
    }
    writeln!(w, "</table>")?;

    if let Some(svg) = chart(p) {
        writeln!(w, "<h3>Heap over time</h3>\n<div class=chart>{svg}</div>")?;
    }
    if let Some(prof) = &p.profile {
        let lines = super::profile::folded_sites(&prof.sites, Metric::Bytes, None);
        let mut svg = Vec::new();
        flamegraph(&lines, Metric::Bytes, &mut svg)?;
        use base64::Engine as _;
        let data = base64::engine::general_purpose::STANDARD.encode(&svg);
        writeln!(w, "<h3>Flamegraph: bytes allocated</h3>")?;
        writeln!(w, "<img class=flame alt=\"flamegraph of the bytes allocated\" src=\"data:image/svg+xml;base64,{data}\">")?;
        for (metric, title) in [
            (Metric::Allocations, "Most calls to allocation functions"),
            (Metric::Peak, "Peak memory consumers"),
            (Metric::Temporary, "Most temporary allocations"),
            (Metric::Bytes, "Most bytes allocated"),
            (Metric::Leaked, "Most memory leaked"),
        ] {
            let sites = top_sites(&prof.sites, metric, cfg.top);
            if sites.is_empty() {
                continue;
            }
            writeln!(w, "<h3>{title}</h3>\n<table><tr><th>site</th><th>allocations</th><th>bytes</th><th>temporary</th><th>at peak</th><th>leaked</th></tr>")?;
            for s in sites {
                writeln!(
                    w,
                    "<tr><td><details><summary>{}</summary>{}</details></td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
                    e(&site_name(&s.stack)),
                    stack_pre(&s.stack),
                    fmt_num(s.allocations),
                    fmt_num(s.bytes),
                    fmt_num(s.temporary),
                    fmt_num(s.peak_bytes),
                    fmt_num(s.leaked_bytes)
                )?;
            }
            writeln!(w, "</table>")?;
        }
    }
    if !p.errors.is_empty() {
        writeln!(w, "<h3>Errors</h3>")?;
        for er in &p.errors {
            writeln!(
                w,
                "<details open><summary class=err>{} — {} ({}×)</summary>",
                e(er.what),
                e(er.function),
                er.count
            )?;
            writeln!(
                w,
                "{}<p>{}</p>",
                stack_pre(&er.stack),
                e(&er.address_description.text)
            )?;
            let d = &er.address_description;
            if !d.free_stack.is_empty() {
                writeln!(w, "<p>freed at</p>{}", stack_pre(&d.free_stack))?;
                if !d.alloc_stack.is_empty() {
                    writeln!(w, "<p>Block was alloc'd at</p>")?;
                }
            }
            if !d.alloc_stack.is_empty() {
                writeln!(w, "{}", stack_pre(&d.alloc_stack))?;
            }
            writeln!(w, "</details>")?;
        }
    }
    let leaks: Vec<_> = p
        .leaks
        .iter()
        .filter(|l| l.kind != "Leak_StillReachable")
        .collect();
    if !leaks.is_empty() {
        writeln!(w, "<h3>Leaks</h3>")?;
        for l in leaks {
            writeln!(
                w,
                "<details><summary>{}</summary>{}</details>",
                e(&loss_record_text(l)),
                stack_pre(&l.stack)
            )?;
        }
    }
    Ok(())
}

pub fn write(w: &mut dyn Write, cfg: &Config, report: &Report) -> io::Result<()> {
    writeln!(
        w,
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
    )?;
    writeln!(
        w,
        "<title>memcheck: {}</title>\n<style>{STYLE}</style></head><body>",
        e(&report.command.join(" "))
    )?;
    writeln!(
        w,
        "<h1>memcheck report: {}</h1>",
        e(&report.command.join(" "))
    )?;
    writeln!(
        w,
        "<p>memcheck {} — exit status: {}</p>",
        report.version,
        match report.exit {
            super::Exit::Code(c) => format!("code {c}"),
            super::Exit::Signal(s) => format!("signal {s}"),
        }
    )?;
    for p in &report.processes {
        process(w, cfg, p)?;
    }
    writeln!(w, "</body></html>")
}
