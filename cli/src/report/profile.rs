//! The allocation profile outputs: `--profile` (what heaptrack_print prints, in memcheck's
//! layout), `--folded` (collapsed stacks, as flamegraph.pl, inferno and speedscope read them)
//! and `--flamegraph` (an SVG drawn by `inferno`). The counts of the folded stacks sum exactly
//! to the run's total for the chosen metric.

use super::{fmt_num, Frame, FrameRef, Process, Report, SiteOut};
use crate::args::{Config, Metric};
use std::collections::BTreeMap;
use std::io::{self, Write};

pub fn metric_value(s: &SiteOut, m: Metric) -> u64 {
    match m {
        Metric::Bytes => s.bytes,
        Metric::Allocations => s.allocations,
        Metric::Peak => s.peak_bytes,
        Metric::Leaked => s.leaked_bytes,
        Metric::Temporary => s.temporary,
    }
}

/// The `n` sites with the most of `metric` (those with none left out), most first.
pub fn top_sites(sites: &[SiteOut], metric: Metric, n: usize) -> Vec<&SiteOut> {
    let mut v: Vec<&SiteOut> = sites
        .iter()
        .filter(|s| metric_value(s, metric) > 0)
        .collect();
    v.sort_by_key(|s| std::cmp::Reverse(metric_value(s, metric)));
    v.truncate(n);
    v
}

pub fn metric_title(m: Metric) -> &'static str {
    match m {
        Metric::Bytes => "bytes allocated",
        Metric::Allocations => "allocations",
        Metric::Peak => "bytes in use at the heap's peak",
        Metric::Leaked => "bytes still allocated at exit",
        Metric::Temporary => "temporary allocations",
    }
}

/// A frame's name in a folded stack (no `;`, which separates frames).
fn frame_name(f: &Frame) -> String {
    f.name()
        .unwrap_or_else(|| format!("{:#x}", f.ip))
        .replace(';', ":")
}

fn fold_into(
    merged: &mut BTreeMap<String, u64>,
    sites: &[SiteOut],
    metric: Metric,
    prefix: Option<&str>,
) {
    for s in sites {
        let v = metric_value(s, metric);
        if v == 0 {
            continue;
        }
        let names = prefix
            .map(str::to_string)
            .into_iter()
            .chain(s.stack.iter().rev().map(|f| frame_name(f)));
        let key = names.collect::<Vec<_>>().join(";");
        *merged.entry(key).or_default() += v;
    }
}

/// The folded lines (`root;...;leaf count`) of some sites for `metric`.
pub fn folded_sites(sites: &[SiteOut], metric: Metric, prefix: Option<&str>) -> Vec<String> {
    let mut merged = BTreeMap::new();
    fold_into(&mut merged, sites, metric, prefix);
    merged
        .into_iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect()
}

/// The folded lines of every process for `metric`; with several processes, each stack starts
/// with the process's program and pid.
pub fn folded(report: &Report, metric: Metric) -> Vec<String> {
    let several = report
        .processes
        .iter()
        .filter(|p| p.profile.is_some())
        .count()
        > 1;
    let mut merged: BTreeMap<String, u64> = BTreeMap::new();
    for p in &report.processes {
        let Some(prof) = &p.profile else { continue };
        let prefix = several.then(|| {
            let prog = p
                .cmdline
                .first()
                .map(|c| c.rsplit('/').next().unwrap_or(c).to_string())
                .unwrap_or_default();
            format!("{} ({})", prog.replace(';', ":"), p.pid)
        });
        fold_into(&mut merged, &prof.sites, metric, prefix.as_deref());
    }
    merged
        .into_iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect()
}

/// Draws the flamegraph SVG of the folded lines.
pub fn flamegraph(lines: &[String], metric: Metric, w: &mut dyn Write) -> io::Result<()> {
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = format!("memcheck: {}", metric_title(metric));
    opts.count_name = match metric {
        Metric::Allocations => "allocations".into(),
        Metric::Temporary => "temporary allocations".into(),
        _ => "bytes".into(),
    };
    opts.colors =
        inferno::flamegraph::color::Palette::Basic(inferno::flamegraph::color::BasicPalette::Mem);
    if lines.is_empty() {
        // inferno refuses empty input; draw the empty graph with a note instead.
        let note = [format!("(no {}) 1", metric_title(metric))];
        return inferno::flamegraph::from_lines(&mut opts, note.iter().map(String::as_str), w)
            .map_err(io::Error::other);
    }
    inferno::flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), w)
        .map_err(io::Error::other)
}

fn stack(w: &mut dyn Write, pfx: &str, frames: &[FrameRef]) -> io::Result<()> {
    for (i, f) in frames.iter().enumerate() {
        let loc = match (&f.file, f.line) {
            (Some(file), Some(line)) => format!(" ({file}:{line})"),
            _ => f
                .object
                .as_ref()
                .map(|o| format!(" (in {o})"))
                .unwrap_or_default(),
        };
        writeln!(
            w,
            "{pfx}      {} {}{loc}",
            if i == 0 { "at" } else { "by" },
            frame_name(f)
        )?;
    }
    Ok(())
}

/// Writes the `--profile` report of one process.
pub fn write_process(w: &mut dyn Write, cfg: &Config, p: &Process) -> io::Result<()> {
    let Some(prof) = &p.profile else {
        return Ok(());
    };
    let pfx = format!("=={}==", p.pid);
    writeln!(w, "{pfx} ALLOCATION PROFILE:")?;
    writeln!(
        w,
        "{pfx}   peak heap memory consumption: {} bytes after {} ms",
        fmt_num(prof.peak_heap_bytes),
        fmt_num(prof.peak_ms)
    )?;
    writeln!(
        w,
        "{pfx}   peak RSS (including memcheck's shim): {} bytes",
        fmt_num(prof.peak_rss_bytes)
    )?;
    writeln!(
        w,
        "{pfx}   total: {} allocations, {} temporary allocations, {} bytes allocated, {} bytes leaked",
        fmt_num(prof.allocations),
        fmt_num(prof.temporary),
        fmt_num(prof.bytes_allocated),
        fmt_num(prof.leaked_bytes)
    )?;
    writeln!(w, "{pfx} ")?;
    for (metric, title, unit) in [
        (
            Metric::Allocations,
            "MOST CALLS TO ALLOCATION FUNCTIONS",
            "calls",
        ),
        (Metric::Peak, "PEAK MEMORY CONSUMERS", "bytes at the peak"),
        (
            Metric::Temporary,
            "MOST TEMPORARY ALLOCATIONS",
            "temporary allocations",
        ),
        (Metric::Bytes, "MOST BYTES ALLOCATED", "bytes allocated"),
        (Metric::Leaked, "MOST MEMORY LEAKED", "bytes leaked"),
    ] {
        let sites = top_sites(&prof.sites, metric, cfg.top);
        if sites.is_empty() {
            continue;
        }
        writeln!(w, "{pfx} {title}")?;
        for s in sites {
            writeln!(
                w,
                "{pfx}   {} {unit} ({} allocations, {} bytes, {} at the peak) from:",
                fmt_num(metric_value(s, metric)),
                fmt_num(s.allocations),
                fmt_num(s.bytes),
                fmt_num(s.peak_bytes)
            )?;
            stack(w, &pfx, &s.stack)?;
        }
        writeln!(w, "{pfx} ")?;
    }
    Ok(())
}
