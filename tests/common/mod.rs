//! Helpers shared by the integration tests: running the sandbox, building
//! the C guests, knowing what this host's KVM can do.

#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

pub const SANDBOX: &str = env!("CARGO_BIN_EXE_xcr0-sandbox");

/// Whether /dev/kvm can be used. Where it cannot, tests return early with
/// the reason on stderr, except under CI=true, where that is a failure.
pub fn kvm() -> bool {
    static OK: OnceLock<Result<(), String>> = OnceLock::new();
    let r = OK.get_or_init(|| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .map(|_| ())
            .map_err(|e| format!("/dev/kvm: {e}"))
    });
    match r {
        Ok(()) => true,
        Err(e) if std::env::var_os("CI").is_some_and(|v| v == "true") => {
            panic!("CI needs KVM: {e}")
        }
        Err(e) => {
            eprintln!("skipped: {e}");
            false
        }
    }
}

/// Whether this host's KVM applies a guest's XCR0 (`--check` exits 0).
pub fn enforced() -> bool {
    static E: OnceLock<bool> = OnceLock::new();
    *E.get_or_init(|| {
        Command::new(SANDBOX)
            .arg("--check")
            .output()
            .expect("run --check")
            .status
            .success()
    })
}

/// Runs the sandbox with `args`; adds --allow-unenforced-xcr0 where the KVM
/// does not enforce XCR0, so the program tests run on both KVMs.
pub fn sandbox<S: AsRef<OsStr>>(args: &[S]) -> Output {
    sandbox_with(args, None, &[])
}

pub fn sandbox_with<S: AsRef<OsStr>>(
    args: &[S],
    stdin: Option<&[u8]>,
    env: &[(&str, &str)],
) -> Output {
    let mut c = sandbox_cmd();
    c.args(args);
    run(c, stdin, env)
}

/// The sandbox command, with --allow-unenforced-xcr0 where needed.
pub fn sandbox_cmd() -> Command {
    let mut c = Command::new(SANDBOX);
    if !enforced() {
        c.arg("--allow-unenforced-xcr0");
    }
    c
}

/// `c` with `f` run in the child before exec (rlimits, dispositions).
pub fn with_pre_exec(mut c: Command, f: fn()) -> Command {
    // SAFETY: callers pass functions that only make async-signal-safe
    // calls (signal, setrlimit), as required between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, move || {
            f();
            Ok(())
        })
    };
    c
}

/// Starts `c`. A script this test binary has just written is busy
/// (ETXTBSY) while another test's fork, made as the file was open for
/// writing, has not yet reached its exec: moments, so a bounded retry.
fn spawn_when_free(c: &mut Command) -> std::process::Child {
    let mut tries = 0;
    loop {
        match c.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            r => return r.unwrap_or_else(|e| panic!("spawn {c:?}: {e}")),
        }
    }
}

/// Runs `c` with its stdin fed from `stdin`, collecting the output.
pub fn run(mut c: Command, stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Output {
    c.envs(env.iter().copied());
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = spawn_when_free(&mut c);
    if let Some(data) = stdin {
        // A program that exits without reading its input closes the pipe.
        let _ = child.stdin.take().unwrap().write_all(data);
    }
    child.wait_with_output().expect("wait")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a clean exit with `code`, showing the output otherwise.
pub fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// Asserts death by `sig`, showing the output otherwise.
pub fn assert_signal(o: &Output, sig: i32) {
    assert_eq!(
        o.status.signal(),
        Some(sig),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
    assert!(!o.status.core_dumped(), "no core file");
}

/// A scratch directory for this test process.
pub fn scratch() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Tidy up after earlier test processes that are gone.
        if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
            for e in entries.flatten() {
                let name = e.file_name();
                let pid = name.to_str().and_then(|n| n.strip_prefix("sandbox-tests-"));
                if pid.is_some_and(|p| !Path::new("/proc").join(p).exists()) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let d = std::env::temp_dir().join(format!("sandbox-tests-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    })
    .clone()
}

/// Builds tests/guests/NAME.c with `flags` (once per process) and returns
/// the binary's path.
pub fn guest(name: &str, flags: &[&str]) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let key = format!("{name}{}", flags.join(""));
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    if let Some(p) = built.get(&key) {
        return p.clone();
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/guests")
        .join(format!("{name}.c"));
    let out = scratch().join(key.replace(['-', ' '], "_"));
    let o = Command::new("cc")
        .args(["-O1", "-Wall", "-o"])
        .arg(&out)
        .arg(&src)
        .args(flags)
        .output()
        .expect("run cc");
    assert!(
        o.status.success(),
        "cc {flags:?} {}: {}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    built.insert(key, out.clone());
    out
}

/// Writes `text` to `path` as an executable file.
pub fn executable(path: &Path, text: impl AsRef<[u8]>) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// key=value lines as a map.
pub fn keyvals(s: &str) -> HashMap<String, String> {
    s.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The mask on `LABEL: 0x...` in `xcr0-sandbox --check`'s output
/// ("supported xcr0", "host xcr0").
pub fn check_mask(label: &str) -> u64 {
    let o = Command::new(SANDBOX).arg("--check").output().unwrap();
    let out = stdout(&o);
    let prefix = format!("{label}: 0x");
    let hex = out
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no '{label}' line in --check:\n{out}"))
        .split_whitespace()
        .next()
        .unwrap();
    u64::from_str_radix(hex, 16).unwrap()
}

/// The XCR0 a program gets without --xcr0: the host's, less what this KVM
/// does not support (the lane's TCG CPU has MPX, its kvm_amd not).
pub fn default_xcr0() -> u64 {
    check_mask("host xcr0") & check_mask("supported xcr0")
}

/// `key`'s value in `kv`, a hex number (0x...).
pub fn hex(kv: &HashMap<String, String>, key: &str) -> u64 {
    let v = kv
        .get(key)
        .unwrap_or_else(|| panic!("no {key}= in {kv:#?}"));
    u64::from_str_radix(v.trim_start_matches("0x"), 16)
        .unwrap_or_else(|_| panic!("{key}={v} is not hex"))
}

/// tests/guests/xcr0-set, built as its header asks: no compiler-made
/// memset/memcpy calls, every symbol bound at startup.
pub fn xcr0_set() -> PathBuf {
    guest(
        "xcr0-set",
        &[
            "-pthread",
            "-Wl,-z,now",
            "-fno-tree-loop-distribute-patterns",
        ],
    )
}

/// How long one run may take, natively or in the sandbox.
pub const LIMIT: Duration = Duration::from_secs(120);

/// `args` (program first), natively or in the sandbox.
pub fn command<S: AsRef<OsStr>>(sandboxed: bool, args: &[S]) -> Command {
    let mut c = if sandboxed {
        let mut c = sandbox_cmd();
        c.arg(&args[0]);
        c
    } else {
        Command::new(&args[0])
    };
    c.args(&args[1..]);
    c
}

/// Runs `c` with stdin empty in a process group of its own and collects
/// its output; fails, with the output so far, if it is still running
/// after `LIMIT` (then the whole group is killed).
pub fn run_limited(c: Command) -> Output {
    run_limited_for(c, LIMIT)
}

/// `run_limited` with a limit of its own.
pub fn run_limited_for(mut c: Command, limit: Duration) -> Output {
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let child = spawn_when_free(&mut c);
    let group = child.id() as i32;
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let late = finished.recv_timeout(limit) == Err(mpsc::RecvTimeoutError::Timeout);
        if late {
            // SAFETY: signals the process group this test started.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
        late
    });
    let o = child.wait_with_output().expect("wait");
    drop(done);
    let late = watchdog.join().unwrap();
    assert!(
        !late,
        "{c:?}: still running after {limit:?}, killed\nstdout:\n{}\nstderr:\n{}",
        stdout(&o),
        stderr(&o)
    );
    o
}

/// Exit code or signal, for comparing two runs.
pub fn status(o: &Output) -> (Option<i32>, Option<i32>) {
    (o.status.code(), o.status.signal())
}

/// Both runs in full, for failure messages.
pub fn both(n: &Output, s: &Output) -> String {
    format!(
        "native {:?}\n  stdout:\n{}\n  stderr:\n{}\nsandbox {:?}\n  stdout:\n{}\n  stderr:\n{}",
        n.status,
        stdout(n),
        stderr(n),
        s.status,
        stdout(s),
        stderr(s)
    )
}

/// Asserts that the sandbox's run `s` of `what` has the status and stdout
/// of the native run `n` (and its stderr, if `with_stderr`).
pub fn assert_same(what: &str, n: &Output, s: &Output, with_stderr: bool) {
    assert_eq!(
        status(s),
        status(n),
        "{what}: status differs\n{}",
        both(n, s)
    );
    assert_eq!(
        stdout(s),
        stdout(n),
        "{what}: stdout differs\n{}",
        both(n, s)
    );
    if with_stderr {
        assert_eq!(
            stderr(s),
            stderr(n),
            "{what}: stderr differs\n{}",
            both(n, s)
        );
    }
}

/// Whether `what` is installed at `path` (tests/install-deps.sh installs
/// what the suites use); missing is a failure under CI=true.
pub fn installed(what: &str, path: &str) -> bool {
    if Path::new(path).exists() {
        return true;
    }
    let why = format!("{what} is not installed ({path}): run tests/install-deps.sh as root");
    if std::env::var_os("CI").is_some_and(|v| v == "true") {
        panic!("{why}");
    }
    eprintln!("skipped: {why}");
    false
}
