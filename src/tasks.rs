//! Several programs in one sandbox command, each with its own XCR0:
//!
//! ```text
//! xcr0-sandbox [OPTIONS] [--xcr0=A] [--] PROG1 ARGS ::: [--xcr0=B] [--] PROG2 ARGS
//! xcr0-sandbox [OPTIONS] [--xcr0=A] [--] PRODUCER ARGS ::pipe:: [--xcr0=B] [--] CONSUMER ARGS
//! ```
//!
//! `:::` starts the next program with the same stdin, stdout and stderr;
//! `::pipe::` also connects the previous program's stdout to its stdin, as a
//! shell's `|`. Each program runs in a sandbox process of its own (forked
//! before any of them starts), they all start together, and the command
//! ends when the last one has: 0 if every program exited 0, else the
//! status of the first one (in command-line order) that did not, a death
//! by signal counting as 128 + the signal. `-v` and `--stats` say how each
//! ended.

use std::ffi::{OsStr, OsString};
use std::os::fd::RawFd;

/// The words that separate programs (a program cannot be given them as
/// arguments).
pub const NEXT: &str = ":::";
pub const PIPE: &str = "::pipe::";

/// One program of the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Its own --xcr0, if given (else the command's).
    pub xcr0: Option<String>,
    /// Its own --cpuid, if given (else the command's).
    pub cpuid: Option<String>,
    pub program: OsString,
    pub args: Vec<OsString>,
    /// Its stdin is the previous program's stdout (`::pipe::`).
    pub piped_in: bool,
}

/// Splits the words after the options (PROG ARGS...) into programs. The
/// first has the command's --xcr0; each later one may have its own
/// `--xcr0=MASK` (or `--xcr0 MASK`) and a `--` before its PROG.
pub fn split(words: Vec<OsString>) -> Result<Vec<Spec>, String> {
    let mut specs = Vec::new();
    let mut piped_in = false;
    let mut rest = words.into_iter().peekable();
    let mut n = 1;
    loop {
        let (mut xcr0, mut cpuid) = (None, None);
        if n > 1 {
            while let Some(w) = rest.peek() {
                let w = w.to_string_lossy().into_owned();
                if let Some(mask) = w.strip_prefix("--xcr0=") {
                    xcr0 = Some(mask.to_string());
                    rest.next();
                } else if w == "--xcr0" {
                    rest.next();
                    let mask = rest
                        .next()
                        .ok_or_else(|| format!("program {n}: --xcr0 needs a MASK"))?;
                    xcr0 = Some(mask.to_string_lossy().into_owned());
                } else if let Some(policy) = w.strip_prefix("--cpuid=") {
                    cpuid = Some(policy.to_string());
                    rest.next();
                } else if w == "--cpuid" {
                    rest.next();
                    let policy = rest
                        .next()
                        .ok_or_else(|| format!("program {n}: --cpuid needs a POLICY"))?;
                    cpuid = Some(policy.to_string_lossy().into_owned());
                } else if w == "--" {
                    rest.next();
                    break;
                } else if w.starts_with('-') {
                    return Err(format!(
                        "program {n}: unknown option '{w}'; a program after '{NEXT}' or '{PIPE}' accepts --xcr0=MASK and --cpuid=POLICY, then [--] PROG [ARGS]..."
                    ));
                } else {
                    break;
                }
            }
        }
        let mut segment = Vec::new();
        let mut next_piped = None;
        for w in rest.by_ref() {
            if w == OsStr::new(NEXT) || w == OsStr::new(PIPE) {
                next_piped = Some(w == OsStr::new(PIPE));
                break;
            }
            segment.push(w);
        }
        let mut segment = segment.into_iter();
        let program = segment
            .next()
            .ok_or_else(|| format!("program {n}: PROG missing before or after a separator"))?;
        specs.push(Spec {
            xcr0,
            cpuid,
            program,
            args: segment.collect(),
            piped_in,
        });
        match next_piped {
            Some(p) => piped_in = p,
            None => return Ok(specs),
        }
        n += 1;
    }
}

/// How a program of the command ended, from its sandbox's wait status.
pub struct Ended {
    pub status: i32,
}

impl Ended {
    /// The status a shell would show: the exit code, or 128 + the signal.
    pub fn shell_status(&self) -> i32 {
        if libc::WIFSIGNALED(self.status) {
            128 + libc::WTERMSIG(self.status)
        } else {
            libc::WEXITSTATUS(self.status)
        }
    }

    pub fn describe(&self) -> String {
        if libc::WIFSIGNALED(self.status) {
            format!("killed by signal {}", libc::WTERMSIG(self.status))
        } else {
            format!("exited {}", libc::WEXITSTATUS(self.status))
        }
    }
}

/// Starts `count` programs: `start(i)` runs in a child process of its own
/// (with stdin and stdout rewired for `::pipe::`) and does not return; then
/// waits for all. `piped_in(i)` says whether program i reads the previous
/// one's stdout.
pub fn start_all(
    count: usize,
    piped_in: impl Fn(usize) -> bool,
    start: impl Fn(usize) -> u8,
) -> std::io::Result<Vec<Ended>> {
    // pipes[i] feeds program i from program i - 1.
    let mut pipes: Vec<Option<[RawFd; 2]>> = Vec::new();
    for i in 0..count {
        pipes.push(if i > 0 && piped_in(i) {
            let mut fds = [0; 2];
            // SAFETY: pipe2 writes two descriptors into the array.
            if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Some(fds)
        } else {
            None
        });
    }
    let mut pids = Vec::new();
    for i in 0..count {
        // SAFETY: the sandbox has one thread here (nothing has started),
        // so the child may do anything.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: dup2 onto the standard descriptors; the pipes'
            // originals are close-on-exec and closed below.
            unsafe {
                if let Some([r, _]) = pipes[i] {
                    libc::dup2(r, 0);
                }
                if let Some(Some([_, w])) = pipes.get(i + 1) {
                    libc::dup2(*w, 1);
                }
                for [r, w] in pipes.iter().flatten() {
                    libc::close(*r);
                    libc::close(*w);
                }
            }
            // start returns only when the program could not start.
            std::process::exit(i32::from(start(i)));
        }
        pids.push(pid);
    }
    for [r, w] in pipes.iter().flatten() {
        // SAFETY: the parent's copies of the pipes.
        unsafe {
            libc::close(*r);
            libc::close(*w);
        }
    }
    let mut ended = Vec::new();
    for pid in pids {
        let mut status = 0;
        // SAFETY: waits for a child of ours.
        while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return Err(std::io::Error::last_os_error());
            }
        }
        ended.push(Ended { status });
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<OsString> {
        s.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn programs_split_at_the_separators() {
        let s = split(words("a 1 ::: --xcr0=0x3 -- b 2 ::pipe:: c")).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(
            (s[0].program.as_os_str(), s[0].xcr0.as_deref()),
            (OsStr::new("a"), None)
        );
        assert_eq!(s[1].xcr0.as_deref(), Some("0x3"));
        assert_eq!(s[1].args, words("2"));
        assert!(!s[1].piped_in && s[2].piped_in);
        assert_eq!(split(words("a")).unwrap().len(), 1);
    }

    #[test]
    fn bad_mixes_say_what_is_wrong() {
        assert!(split(words("a :::")).unwrap_err().contains("PROG missing"));
        assert!(
            split(words("a ::: --stats b"))
                .unwrap_err()
                .contains("unknown option '--stats'")
        );
        assert!(
            split(words("a ::: --xcr0"))
                .unwrap_err()
                .contains("needs a MASK")
        );
    }
}
