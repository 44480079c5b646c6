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
/// searched in `path_var` (default /bin:/usr/bin, as glibc).
pub fn find(name: &OsStr, path_var: Option<&OsStr>) -> Result<PathBuf, ResolveError> {
    let shown = format!("{}: command not found", name.to_string_lossy());
    if name.is_empty() {
        return Err(ResolveError::NotFound(shown));
    }
    if name.as_bytes().contains(&b'/') {
        let p = PathBuf::from(name);
        if !p.exists() {
            return Err(cannot_or_missing(&p));
        }
        return Ok(p);
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
            Ok(m) if m.is_file() => denied = denied.or(Some(candidate)),
            _ => {}
        }
    }
    match denied {
        Some(p) => Err(cannot(&p, libc::EACCES, "Permission denied")),
        None => Err(ResolveError::NotFound(shown)),
    }
}

fn cannot_or_missing(p: &Path) -> ResolveError {
    ResolveError::NotFound(format!("{}: No such file or directory", p.display()))
}

/// Resolves `path` with `argv` to an ELF file, following up to four `#!`
/// interpreters as Linux does (BINPRM_MAX_RECURSION).
pub fn executable(path: PathBuf, argv: Vec<OsString>) -> Result<Executable, ResolveError> {
    let execfn = path.clone();
    let (mut path, mut argv) = (path, argv);
    for _ in 0..5 {
        match read_header(&path)? {
            Header::Elf => return Ok(Executable { path, argv, execfn }),
            Header::Script(interp, arg) => {
                let mut new = vec![interp.clone().into_os_string()];
                new.extend(arg);
                new.push(path.clone().into_os_string());
                new.extend(argv.into_iter().skip(1));
                argv = new;
                if !interp.exists() {
                    return Err(cannot(
                        &path,
                        libc::ENOENT,
                        format!(
                            "bad interpreter {}: No such file or directory",
                            interp.display()
                        ),
                    ));
                }
                path = interp;
            }
        }
    }
    Err(cannot(
        &path,
        libc::ELOOP,
        "too many levels of #! interpreters",
    ))
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
    let mut head = Vec::with_capacity(256);
    (&mut f)
        .take(256)
        .read_to_end(&mut head)
        .map_err(|e| io_error(path, &e))?;
    if let Some(line) = head.strip_prefix(b"#!") {
        return script_line(path, line);
    }
    check_elf(path, &head)?;
    Ok(Header::Elf)
}

/// Parses "#!interp [arg]" the kernel's way: one optional argument, the rest
/// of the line verbatim (binfmt_script.c).
fn script_line(path: &Path, line: &[u8]) -> Result<Header, ResolveError> {
    let end = line
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| cannot(path, libc::ENOEXEC, "#! line too long"))?;
    let line = &line[..end];
    let trim = |s: &[u8]| -> Vec<u8> {
        let s: Vec<u8> = s
            .iter()
            .copied()
            .skip_while(|b| *b == b' ' || *b == b'\t')
            .collect();
        let n = s
            .iter()
            .rposition(|b| *b != b' ' && *b != b'\t')
            .map_or(0, |i| i + 1);
        s[..n].to_vec()
    };
    let line = trim(line);
    if line.is_empty() {
        return Err(cannot(path, libc::ENOEXEC, "empty #! line"));
    }
    let split = line.iter().position(|b| *b == b' ' || *b == b'\t');
    let (interp, arg) = match split {
        Some(i) => (
            line[..i].to_vec(),
            Some(trim(&line[i..])).filter(|a| !a.is_empty()),
        ),
        None => (line, None),
    };
    Ok(Header::Script(
        PathBuf::from(OsString::from_vec(interp)),
        arg.map(OsString::from_vec),
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

fn io_error(path: &Path, e: &std::io::Error) -> ResolveError {
    let errno = e.raw_os_error().unwrap_or(libc::EIO);
    let why = match e.kind() {
        std::io::ErrorKind::PermissionDenied => "Permission denied".into(),
        _ => e.to_string(),
    };
    cannot(path, errno, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_lines_split_like_the_kernel() {
        let h = script_line(Path::new("s"), b"/bin/sh -e -x  \n").unwrap();
        let Header::Script(i, a) = h else { panic!() };
        assert_eq!(i, PathBuf::from("/bin/sh"));
        assert_eq!(a, Some(OsString::from("-e -x")));
        let Header::Script(i, a) = script_line(Path::new("s"), b" /usr/bin/env\n").unwrap() else {
            panic!()
        };
        assert_eq!((i, a), (PathBuf::from("/usr/bin/env"), None));
        assert!(script_line(Path::new("s"), b"  \n").is_err());
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
