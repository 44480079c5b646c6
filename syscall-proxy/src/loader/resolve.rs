//! Finding and vetting the program file, as execvp(3) and the kernel's
//! binfmt handlers would: PATH search, `#!` interpreters, ELF checks.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use linux_loader::elf;

/// Why the program cannot be started: each maps to the status a shell gives.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{0}")]
    NotFound(String),
    /// Path, reason, and the errno execve(2) would return.
    #[error("{0}: {1}")]
    CannotExecute(String, String, i32),
}

impl ResolveError {
    /// 127 for "not found", 126 for "found but cannot execute" (POSIX shells).
    pub fn exit_status(&self) -> i32 {
        match self {
            ResolveError::NotFound(_) => 127,
            ResolveError::CannotExecute(..) => 126,
        }
    }

    /// The errno execve(2) fails with for the same reason.
    pub fn errno(&self) -> i32 {
        match self {
            ResolveError::NotFound(_) => libc::ENOENT,
            ResolveError::CannotExecute(_, _, e) => *e,
        }
    }
}

fn cannot(path: &Path, errno: i32, why: impl Into<String>) -> ResolveError {
    ResolveError::CannotExecute(path.display().to_string(), why.into(), errno)
}

/// What will be executed: an ELF file and the argv it gets.
#[derive(Debug)]
pub struct Executable {
    /// The ELF file to map (the script's interpreter, for a `#!` script).
    pub path: PathBuf,
    /// The program's argv after `#!` rewriting.
    pub argv: Vec<OsString>,
    /// The file name execve was given (AT_EXECFN).
    pub execfn: PathBuf,
}

/// Looks `name` up like execvp: names with a slash are paths; others are
/// searched in `path_var` (default /bin:/usr/bin, as glibc), skipping the
/// directories where execve would fail with ENOENT, ENOTDIR or EACCES.
pub fn find(name: &OsStr, path_var: Option<&OsStr>) -> Result<PathBuf, ResolveError> {
    let shown = format!("{}: command not found", name.to_string_lossy());
    if name.is_empty() {
        return Err(ResolveError::NotFound(shown));
    }
    if name.as_bytes().contains(&b'/') {
        let p = PathBuf::from(name);
        std::fs::metadata(&p).map_err(|e| io_error(&p, &e))?;
        return Ok(p);
    }
    if name.len() > NAME_MAX {
        return Err(cannot(
            Path::new(name),
            libc::ENAMETOOLONG,
            strerror(libc::ENAMETOOLONG),
        ));
    }
    // glibc execvp's default when PATH is unset.
    let dirs = path_var.unwrap_or(OsStr::new("/bin:/usr/bin"));
    let mut denied = None;
    for dir in dirs.as_bytes().split(|&b| b == b':') {
        let dir = if dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(OsStr::from_bytes(dir))
        };
        let candidate = dir.join(name);
        match std::fs::metadata(&candidate) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => return Ok(candidate),
            Ok(_) => denied = denied.or(Some(candidate)),
            Err(e) => match e.raw_os_error() {
                Some(libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV) => {}
                Some(libc::EACCES) => denied = denied.or(Some(candidate)),
                _ => return Err(io_error(&candidate, &e)),
            },
        }
    }
    match denied {
        Some(p) => Err(cannot(&p, libc::EACCES, "Permission denied")),
        None => Err(ResolveError::NotFound(shown)),
    }
}

/// Files one execve may go through: the program, then up to five `#!`
/// interpreters (fs/exec.c's exec_binprm gives up when `depth > 5`).
const MAX_EXEC_DEPTH: usize = 6;

/// The kernel's BINPRM_BUF_SIZE: how much of a file execve looks at.
const BINPRM_BUF_SIZE: usize = 256;

/// The longest file name a path search accepts (glibc's execvp).
const NAME_MAX: usize = 255;

/// Resolves `path` with `argv` to an ELF file, following `#!` interpreters
/// as Linux does.
pub fn executable(path: PathBuf, argv: Vec<OsString>) -> Result<Executable, ResolveError> {
    let execfn = path.clone();
    let (mut path, mut argv) = (path, argv);
    for _ in 0..MAX_EXEC_DEPTH {
        match read_header(&path)? {
            Header::Elf => return Ok(Executable { path, argv, execfn }),
            Header::Script(interp, arg) => {
                let mut new = vec![interp.clone().into_os_string()];
                new.extend(arg);
                new.push(path.clone().into_os_string());
                new.extend(argv.into_iter().skip(1));
                argv = new;
                if let Err(e) = std::fs::metadata(&interp) {
                    let errno = e.raw_os_error().unwrap_or(libc::ENOENT);
                    return Err(cannot(
                        &path,
                        errno,
                        format!("bad interpreter {}: {}", interp.display(), strerror(errno)),
                    ));
                }
                path = interp;
            }
        }
    }
    Err(cannot(&execfn, libc::ELOOP, strerror(libc::ELOOP)))
}

enum Header {
    Elf,
    Script(PathBuf, Option<OsString>),
}

fn read_header(path: &Path) -> Result<Header, ResolveError> {
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, &e))?;
    if meta.is_dir() {
        return Err(cannot(path, libc::EACCES, "Is a directory"));
    }
    if !meta.is_file() {
        return Err(cannot(path, libc::EACCES, "not a regular file"));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(cannot(path, libc::EACCES, "Permission denied"));
    }
    let mut f = File::open(path).map_err(|e| io_error(path, &e))?;
    let mut head = Vec::with_capacity(BINPRM_BUF_SIZE);
    (&mut f)
        .take(BINPRM_BUF_SIZE as u64)
        .read_to_end(&mut head)
        .map_err(|e| io_error(path, &e))?;
    if head.starts_with(b"#!") {
        return script_line(path, &head);
    }
    check_elf(path, &head)?;
    Ok(Header::Elf)
}

/// Parses "#!interp [arg]" in the first BINPRM_BUF_SIZE bytes of a file
/// as binfmt_script.c does: one optional argument, the rest of the line
/// verbatim. Without a newline in the buffer the line is taken as cut
/// there, which is fine unless the interpreter's name itself is cut.
fn script_line(path: &Path, head: &[u8]) -> Result<Header, ResolveError> {
    let mut buf = [0u8; BINPRM_BUF_SIZE];
    let n = head.len().min(BINPRM_BUF_SIZE);
    buf[..n].copy_from_slice(&head[..n]);
    let noexec = || cannot(path, libc::ENOEXEC, strerror(libc::ENOEXEC));
    let spacetab = |b: u8| b == b' ' || b == b'\t';
    let terminator = |b: u8| spacetab(b) || b == 0;
    // Both searches include `last`, as the kernel's helpers do.
    let non_spacetab = |first: usize, last: usize| (first..=last).find(|&i| !spacetab(buf[i]));
    let next_terminator = |first: usize, last: usize| (first..=last).find(|&i| terminator(buf[i]));
    let buf_end = BINPRM_BUF_SIZE - 1;
    let mut i_end = match buf.iter().position(|&b| b == b'\n') {
        Some(i) => i,
        None => {
            let name = non_spacetab(2, buf_end).ok_or_else(noexec)?;
            next_terminator(name, buf_end).ok_or_else(noexec)?;
            buf_end
        }
    };
    while spacetab(buf[i_end - 1]) {
        i_end -= 1;
    }
    let i_name = non_spacetab(2, i_end)
        .filter(|&i| i != i_end)
        .ok_or_else(noexec)?;
    let i_sep = next_terminator(i_name, i_end);
    let i_arg = i_sep
        .filter(|&s| buf[s] != 0)
        .and_then(|s| non_spacetab(s, i_end))
        .filter(|&a| a < i_end);
    // Each string ends at the first NUL, as the kernel copies C strings.
    let cstr = |from: usize, to: usize| -> Vec<u8> {
        let s = &buf[from..to];
        s[..s.iter().position(|&b| b == 0).unwrap_or(s.len())].to_vec()
    };
    let name_end = if i_arg.is_some() {
        i_sep.unwrap_or(i_end)
    } else {
        i_end
    };
    Ok(Header::Script(
        PathBuf::from(OsString::from_vec(cstr(i_name, name_end))),
        i_arg.map(|a| OsString::from_vec(cstr(a, i_end))),
    ))
}

/// Checks that an ELF interpreter (PT_INTERP) exists and is an x86-64 ELF.
pub fn check_interpreter(path: &OsStr) -> Result<(), ResolveError> {
    let path = Path::new(path);
    let mut head = Vec::with_capacity(64);
    File::open(path)
        .and_then(|f| f.take(64).read_to_end(&mut head))
        .map_err(|e| io_error(path, &e))?;
    check_elf(path, &head)
}

/// The checks binfmt_elf makes, with the reason for each refusal.
pub fn check_elf(path: &Path, head: &[u8]) -> Result<(), ResolveError> {
    if head.len() < 64 || &head[..4] != b"\x7fELF" {
        return Err(cannot(
            path,
            libc::ENOEXEC,
            "cannot execute binary file: Exec format error (not ELF or #!)",
        ));
    }
    if head[4] != elf::ELFCLASS64 {
        return Err(cannot(
            path,
            libc::ENOEXEC,
            "32-bit ELF is not supported (x86-64 only)",
        ));
    }
    if head[5] != elf::ELFDATA2LSB {
        return Err(cannot(
            path,
            libc::ENOEXEC,
            "big-endian ELF is not supported",
        ));
    }
    let e_type = u16::from_le_bytes([head[16], head[17]]);
    let machine = u16::from_le_bytes([head[18], head[19]]);
    if machine != elf::EM_X86_64 {
        return Err(cannot(
            path,
            libc::ENOEXEC,
            format!("ELF for machine {machine}, not x86-64 (62)"),
        ));
    }
    if e_type != elf::ET_EXEC && e_type != elf::ET_DYN {
        return Err(cannot(
            path,
            libc::ENOEXEC,
            format!("ELF type {e_type} is not an executable (ET_EXEC or ET_DYN)"),
        ));
    }
    Ok(())
}

/// A failed look-up of `path`: ENOENT is "not found" (127), any other
/// errno "cannot execute" (126), as shells and env(1) decide.
fn io_error(path: &Path, e: &std::io::Error) -> ResolveError {
    let errno = e.raw_os_error().unwrap_or(libc::EIO);
    if errno == libc::ENOENT {
        return ResolveError::NotFound(format!("{}: No such file or directory", path.display()));
    }
    cannot(path, errno, strerror(errno))
}

/// The C library's text for `errno`, without Rust's "(os error N)".
pub fn strerror(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_lines_split_like_the_kernel() {
        let parse = |head: &[u8]| match script_line(Path::new("s"), head) {
            Ok(Header::Script(i, a)) => Ok((i, a)),
            Ok(Header::Elf) => panic!("not a script"),
            Err(e) => Err(e.errno()),
        };
        let script = |i: &str, a: Option<&str>| Ok((PathBuf::from(i), a.map(OsString::from)));
        assert_eq!(
            parse(b"#!/bin/sh -e -x  \n"),
            script("/bin/sh", Some("-e -x"))
        );
        assert_eq!(parse(b"#! /usr/bin/env\n"), script("/usr/bin/env", None));
        assert_eq!(parse(b"#!  \n"), Err(libc::ENOEXEC));
        // No newline: the file's end (NUL padding) ends the line.
        assert_eq!(parse(b"#!/bin/echo"), script("/bin/echo", None));
        assert_eq!(parse(b"#!/bin/echo a b"), script("/bin/echo", Some("a b")));
        // Longer than the buffer: fine while the interpreter's name fits;
        // the argument is cut at byte 255.
        let mut long = b"#!/bin/echo ".to_vec();
        long.resize(300, b'a');
        let (_, a) = parse(&long).unwrap();
        assert_eq!(a.unwrap().len(), 255 - 12);
        let mut cut = b"#!/bin/".to_vec();
        cut.resize(300, b'e');
        assert_eq!(parse(&cut), Err(libc::ENOEXEC));
    }

    #[test]
    fn path_search_reports_127_and_126() {
        let e = find(
            OsStr::new("no-such-program-xyz"),
            Some(OsStr::new("/usr/bin:/bin")),
        )
        .unwrap_err();
        assert_eq!(e.exit_status(), 127);
        assert!(find(OsStr::new("sh"), Some(OsStr::new("/usr/bin:/bin"))).is_ok());
        let e = executable(PathBuf::from("/etc"), vec![]).unwrap_err();
        assert_eq!(
            (e.exit_status(), e.to_string()),
            (126, "/etc: Is a directory".into())
        );
    }

    #[test]
    fn elf_checks_name_the_problem() {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 1;
        let e = check_elf(Path::new("x"), &h).unwrap_err();
        assert!(e.to_string().contains("32-bit"), "{e}");
        h[4] = 2;
        h[5] = 1;
        h[16] = 2;
        h[18] = 183; // aarch64
        assert!(
            check_elf(Path::new("x"), &h)
                .unwrap_err()
                .to_string()
                .contains("machine 183")
        );
        h[18] = 62;
        assert!(check_elf(Path::new("x"), &h).is_ok());
    }
}
