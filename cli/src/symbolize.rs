//! Symbolisation after the run, never inside the target: a return address is turned into a
//! file offset of its module (from the mappings the tracer saw), then into an address of the
//! ELF file (through its program headers), then looked up in DWARF with `addr2line` (function,
//! file:line, inlined frames, demangled), falling back to ELF symbols, then to
//! `module+0xoffset`. Debug information is also looked for in separate debug files, by build id
//! (`/usr/lib/debug/.build-id/xx/yyyy.debug`) and by `.gnu_debuglink`.

use memcheck_tracer::Module;
use object::{Object, ObjectSegment, ObjectSymbol};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A symbolised frame, shared by every stack it appears in.
pub type FrameRef = std::sync::Arc<Frame>;

/// One symbolised frame. Inlined frames share the `ip` of the frame they were inlined into.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Frame {
    #[serde(serialize_with = "crate::report::hex")]
    pub ip: u64,
    /// The function, demangled.
    pub function: Option<String>,
    /// The function's linkage (mangled) name, as suppressions match it.
    pub mangled: Option<String>,
    /// Directory of the source file.
    pub dir: Option<String>,
    /// Source file name (no directory).
    pub file: Option<String>,
    pub line: Option<u32>,
    /// The module (executable or library).
    pub object: Option<String>,
    /// Offset of `ip` in the module file.
    #[serde(serialize_with = "crate::report::hex_opt")]
    pub offset: Option<u64>,
    /// This frame was inlined into the next one.
    pub inlined: bool,
    /// The other names of the function (not inlined) in the module's symbol tables: the
    /// names Valgrind shows where debug information names the function otherwise (glibc's
    /// `pthread_create` is `__pthread_create_2_1` in its debug information), which
    /// suppressions written for Valgrind use.
    #[serde(skip)]
    pub aliases: Vec<String>,
}

impl Frame {
    /// The frame's name: its function, else its module and offset in the module file
    /// (`libfoo.so+0x1a2b`), else None.
    pub fn name(&self) -> Option<String> {
        match (&self.function, &self.object, self.offset) {
            (Some(f), _, _) => Some(f.clone()),
            (None, Some(obj), Some(off)) => Some(format!(
                "{}+{off:#x}",
                obj.rsplit('/').next().unwrap_or(obj)
            )),
            _ => None,
        }
    }

    /// Valgrind's frame line: `0x4012AB: fn (file.c:12)`, or `(in /path/obj)`.
    pub fn line(&self) -> String {
        let func = self.name().unwrap_or_else(|| "???".to_string());
        match (&self.file, self.line, &self.object) {
            (Some(file), Some(line), _) => format!("0x{:X}: {func} ({file}:{line})", self.ip),
            (_, _, Some(obj)) => format!("0x{:X}: {func} (in {obj})", self.ip),
            _ => format!("0x{:X}: {func}", self.ip),
        }
    }
}

struct ModuleDebug {
    loader: Option<addr2line::Loader>,
    /// (file offset, file size, virtual address, memory size) of each PT_LOAD segment.
    segments: Vec<(u64, u64, u64, u64)>,
    /// Dynamic symbols (name, address), for finding the shim's entry points.
    exports: HashMap<String, u64>,
    /// The function symbols of the module's own symbol tables: (start, end, names), sorted.
    functions: Vec<(u64, u64, Vec<String>)>,
}

impl ModuleDebug {
    /// The names of the function symbols that contain `svma`.
    fn names_at(&self, svma: u64) -> Vec<String> {
        let i = self
            .functions
            .partition_point(|&(start, _, _)| start <= svma);
        let mut names = Vec::new();
        for (start, end, n) in self.functions[..i].iter().rev().take(8) {
            if *start <= svma && svma < *end {
                names.extend(n.iter().cloned());
            }
        }
        names
    }
}

/// The function symbols of `obj` (both tables), grouped by address range.
fn function_symbols(obj: &object::File) -> Vec<(u64, u64, Vec<String>)> {
    let mut syms: Vec<(u64, u64, String)> = obj
        .symbols()
        .chain(obj.dynamic_symbols())
        .filter(|s| s.kind() == object::SymbolKind::Text && s.size() > 0)
        .filter_map(|s| {
            Some((
                s.address(),
                s.address() + s.size(),
                s.name().ok()?.to_string(),
            ))
        })
        .collect();
    syms.sort();
    syms.dedup();
    let mut out: Vec<(u64, u64, Vec<String>)> = Vec::new();
    for (start, end, name) in syms {
        match out.last_mut() {
            Some(last) if last.0 == start && last.1 == end => last.2.push(name),
            _ => out.push((start, end, vec![name])),
        }
    }
    out
}

#[derive(Default)]
pub struct Symbolizer {
    cache: HashMap<PathBuf, Option<ModuleDebug>>,
    /// Extra directories to look for debug files in (as /usr/lib/debug).
    pub debug_dirs: Vec<PathBuf>,
}

fn build_id_hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

impl Symbolizer {
    pub fn with_debug_dirs(debug_dirs: Vec<PathBuf>) -> Symbolizer {
        Symbolizer {
            debug_dirs,
            ..Default::default()
        }
    }

    /// The file to read for a module: its path, or (a trace from another machine) a file of the
    /// same name in a --debug-dir.
    fn locate(&self, path: &Path) -> PathBuf {
        if path.is_file() {
            return path.to_path_buf();
        }
        let name = path.file_name().unwrap_or_default();
        self.debug_dirs
            .iter()
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .unwrap_or_else(|| path.to_path_buf())
    }

    fn debug_roots(&self) -> Vec<PathBuf> {
        let mut v = self.debug_dirs.clone();
        v.push(PathBuf::from("/usr/lib/debug"));
        v
    }

    fn load(&self, path: &Path) -> Option<ModuleDebug> {
        let located = self.locate(path);
        let path = located.as_path();
        let data = std::fs::read(path).ok()?;
        let obj = object::File::parse(&*data).ok()?;
        let segments = obj
            .segments()
            .map(|s| {
                let (off, size) = s.file_range();
                (off, size, s.address(), s.size())
            })
            .collect();
        let exports = obj
            .exports()
            .map(|v| {
                v.into_iter()
                    .filter_map(|e| {
                        Some((std::str::from_utf8(e.name()).ok()?.to_string(), e.address()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let functions = function_symbols(&obj);
        let has_dwarf = obj.section_by_name(".debug_info").is_some();
        let mut debug_file = None;
        if !has_dwarf {
            if let Ok(Some(id)) = obj.build_id() {
                let hex = build_id_hex(id);
                if hex.len() > 2 {
                    for root in self.debug_roots() {
                        let p = root
                            .join(".build-id")
                            .join(&hex[..2])
                            .join(format!("{}.debug", &hex[2..]));
                        if p.is_file() {
                            debug_file = Some(p);
                            break;
                        }
                    }
                }
            }
            if debug_file.is_none() {
                if let Ok(Some((name, _crc))) = obj.gnu_debuglink() {
                    let name = String::from_utf8_lossy(name).into_owned();
                    let dir = path.parent().unwrap_or(Path::new("/"));
                    let mut cands = vec![dir.join(&name), dir.join(".debug").join(&name)];
                    for root in self.debug_roots() {
                        cands.push(root.join(dir.strip_prefix("/").unwrap_or(dir)).join(&name));
                        cands.push(root.join(&name));
                    }
                    debug_file = cands.into_iter().find(|c| c.is_file() && c != path);
                }
            }
        }
        let loader = match &debug_file {
            Some(d) => addr2line::Loader::new(d)
                .ok()
                .or_else(|| addr2line::Loader::new(path).ok()),
            None => addr2line::Loader::new(path).ok(),
        };
        Some(ModuleDebug {
            loader,
            segments,
            exports,
            functions,
        })
    }

    fn module_debug(&mut self, path: &Path) -> Option<&ModuleDebug> {
        if !self.cache.contains_key(path) {
            let m = self.load(path);
            self.cache.insert(path.to_path_buf(), m);
        }
        self.cache.get(path).and_then(|m| m.as_ref())
    }

    /// Symbolises one frame address. `return_address`: look up `ip - 1` (the call), as
    /// Valgrind does.
    pub fn frames(&mut self, modules: &[Module], ip: u64, return_address: bool) -> Vec<Frame> {
        let probe_avma = if return_address {
            ip.saturating_sub(1)
        } else {
            ip
        };
        let Some((module, file_off)) = modules
            .iter()
            .find_map(|m| m.file_offset(probe_avma).map(|o| (m, o)))
        else {
            return vec![Frame {
                ip,
                ..Default::default()
            }];
        };
        let object = Some(module.path.display().to_string());
        let base = Frame {
            ip,
            object: object.clone(),
            offset: Some(file_off),
            ..Default::default()
        };
        let Some(dbg) = self.module_debug(&module.path) else {
            return vec![base];
        };
        let Some(svma) = dbg
            .segments
            .iter()
            .find(|&&(o, s, _, _)| o <= file_off && file_off < o + s)
            .map(|&(o, _, a, _)| file_off - o + a)
        else {
            return vec![base];
        };
        let Some(loader) = &dbg.loader else {
            return vec![base];
        };
        let mut out = Vec::new();
        if let Ok(mut it) = loader.find_frames(svma) {
            while let Ok(Some(f)) = it.next() {
                let function = f
                    .function
                    .as_ref()
                    .and_then(|n| n.demangle().ok().map(|c| c.into_owned()));
                let mangled = f
                    .function
                    .as_ref()
                    .and_then(|n| n.raw_name().ok().map(|c| c.into_owned()));
                let (dir, file, line) = match &f.location {
                    Some(loc) => {
                        let p = loc.file.map(PathBuf::from);
                        (
                            p.as_ref()
                                .and_then(|p| p.parent())
                                .map(|d| d.display().to_string())
                                .filter(|d| !d.is_empty()),
                            p.as_ref()
                                .and_then(|p| p.file_name())
                                .map(|f| f.to_string_lossy().into_owned()),
                            loc.line,
                        )
                    }
                    None => (None, None, None),
                };
                out.push(Frame {
                    function,
                    mangled,
                    dir,
                    file,
                    line,
                    inlined: true,
                    ..base.clone()
                });
            }
        }
        if let Some(last) = out.last_mut() {
            last.inlined = false;
            last.aliases = dbg.names_at(svma);
            // Under Valgrind glibc starts threads with clone (its clone3 fails there), so
            // Valgrind's thread stacks end in `clone` where native ones end in `clone3`.
            if last.function.as_deref() == Some("clone3") {
                last.aliases.push("clone".to_string());
            }
            // DWARF gives a C++ function with internal linkage no linkage name; its ELF symbol
            // has one, and demangled it carries the parameters, as Valgrind shows it.
            let dwarf_plain = last.mangled.as_deref().is_none_or(|m| !m.starts_with("_Z"));
            if dwarf_plain {
                if let Some(sym) = loader.find_symbol(svma).filter(|s| s.starts_with("_Z")) {
                    let demangled = addr2line::demangle_auto(sym.into(), None).into_owned();
                    if last
                        .function
                        .as_deref()
                        .is_none_or(|f| demangled.contains(f))
                    {
                        last.function = Some(demangled);
                        last.mangled = Some(sym.to_string());
                    }
                }
            }
        }
        if out.is_empty() || out.iter().all(|f| f.function.is_none()) {
            let raw = loader.find_symbol(svma).map(str::to_string);
            if out.is_empty() {
                out.push(base);
            }
            if let Some(last) = out.last_mut() {
                last.function = raw
                    .as_ref()
                    .map(|s| addr2line::demangle_auto(s.into(), None).into_owned());
                last.mangled = raw;
            }
        }
        out
    }

    /// The run-time address of an exported function of the module at `path` (e.g. the shim's
    /// `malloc`), if the module is mapped.
    pub fn export_address(&mut self, modules: &[Module], path: &Path, name: &str) -> Option<u64> {
        let module = modules.iter().find(|m| m.path == path)?;
        let dbg = self.module_debug(path)?;
        let svma = *dbg.exports.get(name)?;
        let (o, _, a, _) = dbg
            .segments
            .iter()
            .find(|&&(_, s, a, _)| a <= svma && svma < a + s)?;
        let file_off = svma - a + o;
        module
            .mappings
            .iter()
            .find(|m| m.offset <= file_off && file_off < m.offset + (m.end - m.start))
            .map(|m| m.start + file_off - m.offset)
    }

    /// The data symbol containing a file offset of a module, and the offset into it.
    pub fn data_symbol(&mut self, path: &Path, file_off: u64) -> Option<(String, u64)> {
        let data = std::fs::read(path).ok()?;
        let obj = object::File::parse(&*data).ok()?;
        let dbg = self.module_debug(path)?;
        // .bss lies past the file size of its segment: look up by memory size.
        let svma = dbg
            .segments
            .iter()
            .find(|&&(o, _, _, m)| o <= file_off && file_off < o + m)
            .map(|&(o, _, a, _)| file_off - o + a)?;
        obj.symbols()
            .chain(obj.dynamic_symbols())
            .filter(|s| {
                s.kind() == object::SymbolKind::Data
                    && s.address() <= svma
                    && svma < s.address() + s.size().max(1)
            })
            // As linked: Valgrind does not demangle data symbols.
            .find_map(|s| Some((s.name().ok()?.to_string(), svma - s.address())))
    }
}
