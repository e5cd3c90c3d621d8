//! The JSON report: the [`Report`](super::Report) model serialised as it is (schema in the README),
//! indented, with arrays of numbers or strings on one line, and the frames of the profile's
//! allocation sites in one table that the sites' stacks index: a profile has thousands of sites
//! whose stacks share most of their frames (written out in full, a profile of 131,072 sites of
//! 40 frames took 2 GB).

use super::{Frame, ProfileOut, Report, SiteOut};
use serde::ser::{Serialize, Serializer};
use serde_json::ser::{CompactFormatter, Formatter};
use std::collections::HashMap;
use std::io::{self, Write};

pub fn write(w: &mut dyn Write, report: &Report) -> io::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(&mut *w, Indented::default());
    report.serialize(&mut ser).map_err(io::Error::other)?;
    writeln!(w)
}

/// A process's profile in JSON: `frames`, each distinct frame once, and per site `stack`, the
/// indices of its frames in `frames`, innermost first.
pub fn profile<S: Serializer>(p: &Option<ProfileOut>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(serde::Serialize)]
    struct Site<'a> {
        #[serde(flatten)]
        site: &'a SiteOut,
        stack: Vec<u32>,
    }
    #[derive(serde::Serialize)]
    struct Profile<'a> {
        #[serde(flatten)]
        profile: &'a ProfileOut,
        frames: Vec<&'a Frame>,
        sites: Vec<Site<'a>>,
    }
    let Some(p) = p else {
        return s.serialize_none();
    };
    // Frames are shared (one per return address and inlining level of a process): the same
    // frame is the same allocation.
    let mut index: HashMap<*const Frame, u32> = HashMap::new();
    let mut frames = Vec::new();
    let sites = p
        .sites
        .iter()
        .map(|site| Site {
            site,
            stack: site
                .stack
                .iter()
                .map(|f| {
                    *index.entry(std::sync::Arc::as_ptr(f)).or_insert_with(|| {
                        frames.push(&**f);
                        frames.len() as u32 - 1
                    })
                })
                .collect(),
        })
        .collect();
    Profile {
        profile: p,
        frames,
        sites,
    }
    .serialize(s)
}

/// serde_json's pretty layout (two-space indentation), except that an array whose first element
/// is a number, string, boolean or null stays on one line.
#[derive(Default)]
struct Indented {
    depth: usize,
    /// Per open array: whether it is written on one line (decided at its first element).
    arrays: Vec<Option<bool>>,
    /// An array element is due: its separator is written once the next token shows whether
    /// the array is one line. `Some(first)`.
    due: Option<bool>,
    /// The current container holds a value (so the closing bracket goes on its own line).
    has_value: bool,
}

impl Indented {
    fn newline<W: ?Sized + Write>(&self, w: &mut W) -> io::Result<()> {
        w.write_all(b"\n")?;
        for _ in 0..self.depth {
            w.write_all(b"  ")?;
        }
        Ok(())
    }

    /// Before a token: writes the separator of a due array element.
    fn token<W: ?Sized + Write>(&mut self, w: &mut W, scalar: bool) -> io::Result<()> {
        let Some(first) = self.due.take() else {
            return Ok(());
        };
        let one_line = *self
            .arrays
            .last_mut()
            .expect("an open array")
            .get_or_insert(scalar);
        match (first, one_line) {
            (true, true) => Ok(()),
            (false, true) => w.write_all(b", "),
            (true, false) => self.newline(w),
            (false, false) => {
                w.write_all(b",")?;
                self.newline(w)
            }
        }
    }
}

macro_rules! scalar {
    ($($name:ident($t:ty)),* $(,)?) => {$(
        fn $name<W: ?Sized + Write>(&mut self, w: &mut W, v: $t) -> io::Result<()> {
            self.token(w, true)?;
            CompactFormatter.$name(w, v)
        }
    )*};
}

impl Formatter for Indented {
    scalar!(
        write_bool(bool),
        write_i8(i8),
        write_i16(i16),
        write_i32(i32),
        write_i64(i64),
        write_i128(i128),
        write_u8(u8),
        write_u16(u16),
        write_u32(u32),
        write_u64(u64),
        write_u128(u128),
        write_f32(f32),
        write_f64(f64),
        write_number_str(&str),
        write_byte_array(&[u8]),
    );

    fn write_null<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.token(w, true)?;
        w.write_all(b"null")
    }

    fn begin_string<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.token(w, true)?;
        w.write_all(b"\"")
    }

    fn write_raw_fragment<W: ?Sized + Write>(&mut self, w: &mut W, f: &str) -> io::Result<()> {
        self.token(w, true)?;
        w.write_all(f.as_bytes())
    }

    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.token(w, false)?;
        self.arrays.push(None);
        self.depth += 1;
        self.has_value = false;
        w.write_all(b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth -= 1;
        let one_line = self.arrays.pop().flatten().unwrap_or(true);
        if self.has_value && !one_line {
            self.newline(w)?;
        }
        self.has_value = true;
        w.write_all(b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, _: &mut W, first: bool) -> io::Result<()> {
        self.due = Some(first);
        Ok(())
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.token(w, false)?;
        self.depth += 1;
        self.has_value = false;
        w.write_all(b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth -= 1;
        if self.has_value {
            self.newline(w)?;
        }
        self.has_value = true;
        w.write_all(b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if !first {
            w.write_all(b",")?;
        }
        self.newline(w)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}
