//! `--metrics-addr=HOST:PORT`: Prometheus text-format metrics of the traced processes, served
//! over HTTP (by `tiny_http`) while the program runs, so that any scraper can watch a service's
//! heap. The tracer refreshes the numbers every 100 ms.

use anyhow::{Context, Result};
use memcheck_tracer::{Metrics, ProcessMetrics};
use std::fmt::Write as _;
use std::sync::Arc;

/// (name, type, help, value) of each metric family.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ProcessMetrics) -> u64,
);

const FAMILIES: &[Family] = &[
    (
        "memcheck_heap_bytes",
        "gauge",
        "Bytes in heap blocks allocated and not yet freed.",
        |p| p.heap_bytes,
    ),
    (
        "memcheck_heap_blocks",
        "gauge",
        "Heap blocks allocated and not yet freed.",
        |p| p.heap_blocks,
    ),
    (
        "memcheck_heap_peak_bytes",
        "gauge",
        "The most bytes ever allocated at once.",
        |p| p.peak_heap_bytes,
    ),
    (
        "memcheck_allocations_total",
        "counter",
        "Calls to allocation functions.",
        |p| p.allocations,
    ),
    (
        "memcheck_frees_total",
        "counter",
        "Calls to deallocation functions.",
        |p| p.frees,
    ),
    (
        "memcheck_allocated_bytes_total",
        "counter",
        "Bytes allocated since the start.",
        |p| p.bytes_allocated,
    ),
    (
        "memcheck_errors_total",
        "counter",
        "Invalid and mismatched frees.",
        |p| p.errors,
    ),
    (
        "memcheck_rss_bytes",
        "gauge",
        "Resident set size of the process.",
        |p| p.rss_bytes,
    ),
];

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus text exposition of the current numbers.
pub fn render(procs: &[ProcessMetrics]) -> String {
    let mut out = String::new();
    for (name, kind, help, get) in FAMILIES {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for p in procs {
            let _ = writeln!(
                out,
                "{name}{{pid=\"{}\",program=\"{}\"}} {}",
                p.pid,
                label(&p.program),
                get(p)
            );
        }
    }
    out
}

/// Starts serving on `addr`; returns the address actually bound (for port 0).
pub fn serve(addr: &str, metrics: Arc<Metrics>) -> Result<String> {
    let server = tiny_http::Server::http(addr)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot serve metrics on {addr}"))?;
    let bound = server
        .server_addr()
        .to_ip()
        .map(|a| a.to_string())
        .unwrap_or_else(|| addr.to_string());
    std::thread::spawn(move || {
        for req in server.incoming_requests() {
            let body = match req.url() {
                "/metrics" | "/" => {
                    let procs = metrics
                        .processes
                        .lock()
                        .map(|g| g.clone())
                        .unwrap_or_default();
                    render(&procs)
                }
                _ => {
                    let _ = req.respond(
                        tiny_http::Response::from_string("not found\n").with_status_code(404),
                    );
                    continue;
                }
            };
            let header = tiny_http::Header::from_bytes("Content-Type", "text/plain; version=0.0.4")
                .expect("a valid header");
            let _ = req.respond(tiny_http::Response::from_string(body).with_header(header));
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format() {
        let p = ProcessMetrics {
            pid: 7,
            program: "srv\"x".into(),
            heap_bytes: 10,
            ..Default::default()
        };
        let text = render(&[p]);
        assert!(text.contains("# TYPE memcheck_heap_bytes gauge\n"));
        assert!(text.contains("memcheck_heap_bytes{pid=\"7\",program=\"srv\\\"x\"} 10\n"));
        assert!(text.contains("# TYPE memcheck_allocations_total counter\n"));
    }
}
