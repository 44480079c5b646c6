//! The sandbox's own messages (errors, warnings, `-v` traces, `--stats`):
//! always to the stderr the sandbox was started with, kept on a parked
//! descriptor, so that the program closing or reusing its fd 2 neither
//! loses them nor receives them in its files.

use std::fmt::Display;
use std::fs::File;
use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::fd::{FromRawFd, RawFd};
use std::sync::OnceLock;

static STDERR: OnceLock<Option<RawFd>> = OnceLock::new();

/// Parks a duplicate of fd 2; without one (stderr closed at start) the
/// messages go nowhere, as the program's would.
fn parked() -> Option<RawFd> {
    *STDERR.get_or_init(|| {
        // SAFETY: F_GETFD only reads the descriptor's flags.
        (unsafe { libc::fcntl(2, libc::F_GETFD) } >= 0)
            .then(|| vmm::fds::park(2).ok())
            .flatten()
    })
}

/// Writes `text` in one write to the parked stderr.
/// The sandbox's stderr, as a descriptor number a re-executed sandbox is
/// given.
pub fn fd() -> Option<RawFd> {
    parked()
}

/// In a sandbox executed by the sandbox: the stderr the first one parked,
/// inherited at `fd` (None: it had none).
pub fn adopt(fd: Option<RawFd>) {
    if let Some(fd) = fd {
        // SAFETY: the descriptor the executing sandbox kept open for us;
        // close-on-exec again from now on.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        vmm::fds::adopt(fd);
    }
    let _ = STDERR.set(fd);
}

pub fn write(text: &[u8]) {
    if let Some(fd) = parked() {
        // SAFETY: the parked descriptor stays open for the process's life;
        // ManuallyDrop keeps this borrowed File from closing it.
        let mut f = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
        let _ = f.write_all(text);
    }
}

/// "xcr0-sandbox: MSG" as one line.
/// Which program of a several-program command this process runs.
static LABEL: OnceLock<String> = OnceLock::new();

/// Names this process's program in its messages ("program 2: ...").
pub fn set_label(label: String) {
    let _ = LABEL.set(label);
}

pub fn line(msg: impl Display) {
    let text = match LABEL.get() {
        Some(l) => format!("xcr0-sandbox: {l}: {msg}\n"),
        None => format!("xcr0-sandbox: {msg}\n"),
    };
    write(text.as_bytes());
}

/// Sets up `log` on the parked stderr: warnings and errors by default, every
/// exit and system call with -v; RUST_LOG overrides. Parks stderr now, before the program can close or replace fd 2.
pub fn init_logging(verbose: u8) {
    parked();
    let level = if verbose == 0 { "warn" } else { "trace" };
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level));
    b.target(env_logger::Target::Pipe(Box::new(Sink)));
    b.format(|buf, record| {
        let level = match record.level() {
            // --explain's reports are not warnings.
            _ if record.target() == "explain" => "explain".to_string(),
            log::Level::Warn => "warning".to_string(),
            l => l.as_str().to_lowercase(),
        };
        if record.level() >= log::Level::Debug {
            // Several processes and threads share the parked stderr: each
            // line of the per-exit trace says whose it is.
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            return writeln!(buf, "xcr0-sandbox[{tid}]: {level}: {}", record.args());
        }
        writeln!(buf, "xcr0-sandbox: {level}: {}", record.args())
    });
    b.init();
}

/// The logger's writer: each record is written whole.
struct Sink;

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        write(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
