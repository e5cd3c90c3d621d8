//! The target's modules, read from `/proc/PID/maps`: each file-backed mapping with its address
//! range and file offset, so that an address can be turned into a file offset of the module
//! (and from there, by the symboliser, into an address of the ELF file).

use std::path::PathBuf;

/// One line of /proc/PID/maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub readable: bool,
    pub writable: bool,
    pub executable: bool,
    pub offset: u64,
    /// The file, or a pseudo-name such as `[stack]`, or empty.
    pub path: String,
}

/// A mapped file with all the ranges it was seen at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    pub path: PathBuf,
    pub mappings: Vec<Mapping>,
}

impl Module {
    /// The file offset of `addr`, if it lies in one of the module's mappings.
    pub fn file_offset(&self, addr: u64) -> Option<u64> {
        self.mappings
            .iter()
            .find(|m| m.start <= addr && addr < m.end)
            .map(|m| addr - m.start + m.offset)
    }
}

pub fn parse(text: &str) -> Vec<Mapping> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mapping> {
    let mut it = line.splitn(6, ' ');
    let range = it.next()?;
    let perms = it.next()?.as_bytes();
    let offset = u64::from_str_radix(it.next()?, 16).ok()?;
    let _dev = it.next()?;
    let _inode = it.next()?;
    let path = it.next().unwrap_or("").trim_start().to_string();
    let (a, b) = range.split_once('-')?;
    Some(Mapping {
        start: u64::from_str_radix(a, 16).ok()?,
        end: u64::from_str_radix(b, 16).ok()?,
        readable: perms.first() == Some(&b'r'),
        writable: perms.get(1) == Some(&b'w'),
        executable: perms.get(2) == Some(&b'x'),
        offset,
        path,
    })
}

pub fn read(pid: u32) -> Vec<Mapping> {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map(|t| parse(&t))
        .unwrap_or_default()
}

/// The modules a process has mapped now, and everything mapped before (kept so that stacks
/// into a library closed since can still be symbolised).
#[derive(Clone, Debug, Default)]
pub struct ModuleMap {
    pub modules: Vec<Module>,
    /// Address ranges of the executable mappings known, for a quick "is this address known".
    exec: Vec<(u64, u64)>,
}

impl ModuleMap {
    pub fn knows(&self, addr: u64) -> bool {
        self.exec.iter().any(|&(a, b)| a <= addr && addr < b)
    }

    /// Adds what `/proc/PID/maps` shows now.
    pub fn refresh(&mut self, pid: u32) {
        for m in read(pid) {
            if !m.path.starts_with('/') {
                continue;
            }
            let path = PathBuf::from(&m.path);
            if m.executable && !self.knows(m.start) {
                self.exec.push((m.start, m.end));
            }
            match self.modules.iter_mut().find(|x| x.path == path) {
                Some(module) => {
                    if !module.mappings.contains(&m) {
                        module.mappings.push(m);
                    }
                }
                None => self.modules.push(Module {
                    path,
                    mappings: vec![m],
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_maps_lines() {
        let m = parse("55d0c0a00000-55d0c0a01000 r-xp 00001000 fe:01 123 /usr/bin/true\n7ffd1000-7ffd2000 rw-p 00000000 00:00 0                          [stack]\n");
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].start, 0x55d0c0a00000);
        assert!(m[0].executable && !m[0].writable);
        assert_eq!(m[0].offset, 0x1000);
        assert_eq!(m[0].path, "/usr/bin/true");
        assert_eq!(m[1].path, "[stack]");
        let module = Module {
            path: "/usr/bin/true".into(),
            mappings: vec![m[0].clone()],
        };
        assert_eq!(module.file_offset(0x55d0c0a00010), Some(0x1010));
        assert_eq!(module.file_offset(0x55d0c0a01000), None);
    }
}
