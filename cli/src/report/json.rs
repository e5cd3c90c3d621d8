//! The JSON report: the [`Report`](super::Report) model serialised as it is (schema in the README).

use super::Report;
use std::io::{self, Write};

pub fn write(w: &mut dyn Write, report: &Report) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, report).map_err(io::Error::other)?;
    writeln!(w)
}
