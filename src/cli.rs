//! Command line and logging set-up.

use std::ffi::OsString;
use std::io::Write as _;
use std::os::fd::FromRawFd;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "xcr0-sandbox",
    version,
    about = "Run a Linux x86-64 program on a KVM vCPU with the XCR0 of your choosing",
    after_help = "XCR0 masks: hex (0x7), decimal (7), or names joined by commas: x87, sse, avx, \
                  bndregs, bndcsr, mpx, opmask, zmm_hi256, hi16_zmm, avx512, pkru, tilecfg, \
                  tiledata, amx, apx.\n\nExit status: the program's own (death by signal is \
                  mirrored); 2 usage; 125 the sandbox could not run it; 126 cannot execute; \
                  127 not found. With --check: 0 when XCR0 is enforced, 1 when not."
)]
struct Cli {
    /// XCR0 for the program (default: the host's)
    #[arg(long, value_name = "MASK")]
    xcr0: Option<String>,
    /// Report the KVM in use and whether it really applies a guest's XCR0
    #[arg(long, conflicts_with_all = ["program", "xcr0"])]
    check: bool,
    /// Run even where the KVM does not apply XCR0 (warns once)
    #[arg(long)]
    allow_unenforced_xcr0: bool,
    /// Print VM exit, ioctl and syscall counts on stderr at the end
    #[arg(long)]
    stats: bool,
    /// Trace every VM exit and system call on stderr (RUST_LOG=debug for decisions only)
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// The program to run, found in PATH like execvp
    #[arg(value_name = "PROG", required_unless_present = "check")]
    program: Option<OsString>,
    /// Its arguments
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    args: Vec<OsString>,
}

pub enum Command {
    Check,
    Run {
        program: OsString,
        args: Vec<OsString>,
    },
}

pub struct Args {
    pub command: Command,
    pub xcr0: Option<String>,
    pub allow_unenforced: bool,
    pub stats: bool,
    pub verbose: u8,
}

/// Parses the command line; usage errors print clap's message and give 2.
pub fn parse() -> Result<Args, ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return Err(ExitCode::from(code));
        }
    };
    let command = match (cli.check, cli.program) {
        (true, _) => Command::Check,
        (false, Some(program)) => Command::Run {
            program,
            args: cli.args,
        },
        (false, None) => unreachable!("clap requires PROG"),
    };
    Ok(Args {
        command,
        xcr0: cli.xcr0,
        allow_unenforced: cli.allow_unenforced_xcr0,
        stats: cli.stats,
        verbose: cli.verbose,
    })
}

/// Logs go to a private duplicate of stderr, so that the program closing or
/// redirecting its fd 2 does not lose or misdirect them. Quiet by default;
/// RUST_LOG overrides -v.
pub fn init_logging(verbose: u8) {
    let level = if verbose == 0 { "error" } else { "trace" };
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level));
    if let Ok(fd) = vmm::fds::park(2) {
        // SAFETY: `fd` is a fresh duplicate of stderr owned by the logger alone.
        let file = unsafe { std::fs::File::from_raw_fd(fd) };
        b.target(env_logger::Target::Pipe(Box::new(file)));
    }
    b.format(|buf, record| {
        writeln!(
            buf,
            "xcr0-sandbox: {}: {}",
            record.level().as_str().to_lowercase(),
            record.args()
        )
    });
    b.init();
}
