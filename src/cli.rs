//! The command line.

use std::ffi::OsString;

use clap::Parser;

const USAGE: &str = "xcr0-sandbox [OPTIONS] [--] PROG [ARGS]... [::: [--xcr0=MASK] [--cpuid=POLICY] [--] PROG [ARGS]...]...\n       xcr0-sandbox --check\n       xcr0-sandbox check-trace DIR";

#[derive(Parser, Debug)]
#[command(
    name = "xcr0-sandbox",
    version,
    override_usage = USAGE,
    about = "Run a Linux x86-64 program on a KVM vCPU with the XCR0 of your choosing",
    after_help = "XCR0 masks: hex (0x7), decimal (7), or names joined by commas: x87, sse, avx, \
                  bndregs, bndcsr, mpx, opmask, zmm_hi256, hi16_zmm, avx512, pkru, tilecfg, \
                  tiledata, amx, apx.\n\nExit status: the program's own (death by signal is \
                  mirrored); 2 usage; 125 the sandbox could not run it; 126 cannot execute; \
                  127 not found. With --check: 0 when XCR0 is enforced, 1 when not.\n\n\
                  check-trace DIR: whether the rr trace in DIR can be replayed here, and how: \
                  0 replayable (as is, or with the options it prints), 1 not replayable here, \
                  2 an unreadable trace."
)]
struct Cli {
    /// XCR0 for the program (default: the host's)
    #[arg(long, value_name = "MASK")]
    xcr0: Option<String>,
    /// What the program's CPUID answers: host (the default), xcr0 (the
    /// host's without the features the XCR0 disables), or FILE (a CPUID
    /// table: rr traceinfo's JSON, or its cpuidRecords array; or an rr
    /// trace directory)
    #[arg(long, value_name = "POLICY")]
    cpuid: Option<String>,
    /// Run with the XCR0 and the CPUID table of the rr trace in DIR (its
    /// header: --xcr0 and --cpuid=DIR)
    #[arg(long, value_name = "DIR", conflicts_with_all = ["xcr0", "cpuid"])]
    rr_trace: Option<std::path::PathBuf>,
    /// Report the KVM in use and whether it really applies a guest's XCR0
    #[arg(long, conflicts_with_all = ["command", "xcr0", "cpuid", "rr_trace"])]
    check: bool,
    /// Run even where the KVM does not apply XCR0 (warns once)
    #[arg(long)]
    allow_unenforced_xcr0: bool,
    /// Print VM exit, ioctl and syscall counts on stderr at the end
    #[arg(long)]
    stats: bool,
    /// Report each #UD (the instruction, where, the XSAVE component it
    /// needs) and, at exit, each task's first CPUID leaf 0xD
    #[arg(long)]
    explain: bool,
    /// arch_prctl 0x1021 is ARCH_SET_XCR0, as in the unmerged kernel patch
    /// (what rr forks probe), instead of ARCH_GET_XCOMP_SUPP.
    #[arg(long)]
    arch_prctl_compat: bool,
    /// Trace every VM exit and system call on stderr (RUST_LOG=debug for decisions only)
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Internal: the sandbox executing itself for the program's execve
    /// (syscall_proxy::exec); PROG is then the path and argv[0] follows.
    #[arg(long, hide = true, value_name = "STATE")]
    reexec: Option<String>,
    /// The program to run (found in PATH like execvp) and its arguments.
    /// Option parsing stops at PROG, as with env(1) and nice(1): whatever
    /// follows belongs to the program.
    #[arg(
        value_name = "PROG",
        required_unless_present = "check",
        trailing_var_arg = true,
        num_args = 1..
    )]
    command: Vec<OsString>,
}

pub enum Command {
    Check,
    /// `check-trace DIR`.
    CheckTrace(std::path::PathBuf),
    /// One program, or several (`:::`, `:|:`, see tasks.rs).
    Run {
        programs: Vec<crate::tasks::Spec>,
    },
    /// The program's execve: the path, its argv[0] apart, and what the
    /// executing sandbox carried over.
    Exec {
        path: OsString,
        argv0: OsString,
        args: Vec<OsString>,
        carried: syscall_proxy::exec::Carried,
    },
}

pub struct Args {
    pub command: Command,
    pub xcr0: Option<String>,
    pub cpuid: Option<String>,
    pub allow_unenforced: bool,
    pub stats: bool,
    pub explain: bool,
    pub arch_prctl_compat: bool,
    pub verbose: u8,
}

/// Parses the command line. --help and --version print and give 0; a
/// usage error is one line with the usage, and gives 2.
pub fn parse() -> Result<Args, u8> {
    let words: Vec<OsString> = std::env::args_os().collect();
    if words.get(1).is_some_and(|w| w == "check-trace") {
        let [_, _, dir] = &words[..] else {
            crate::report::line(
                "check-trace takes one trace directory; usage: xcr0-sandbox check-trace DIR",
            );
            return Err(2);
        };
        return Ok(Args {
            command: Command::CheckTrace(dir.into()),
            xcr0: None,
            cpuid: None,
            allow_unenforced: false,
            stats: false,
            explain: false,
            arch_prctl_compat: false,
            verbose: 0,
        });
    }
    let cli = match Cli::try_parse_from(words) {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return Err(0);
        }
        Err(e) => {
            // clap's first paragraph, on one line.
            let text = e.render().to_string();
            let what = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ");
            let what = what.strip_prefix("error: ").unwrap_or(&what);
            crate::report::line(format_args!(
                "{what}; usage: {} (see --help)",
                USAGE.lines().next().unwrap_or_default()
            ));
            return Err(2);
        }
    };
    let command = if cli.check {
        Command::Check
    } else if let Some(state) = cli.reexec {
        let mut words = cli.command.into_iter();
        let (Some(path), Some(argv0), Some(carried)) = (
            words.next(),
            words.next(),
            syscall_proxy::exec::Carried::parse(&state),
        ) else {
            crate::report::line("--reexec is internal to the sandbox");
            return Err(2);
        };
        Command::Exec {
            path,
            argv0,
            args: words.collect(),
            carried,
        }
    } else {
        match crate::tasks::split(cli.command) {
            Ok(programs) => Command::Run { programs },
            Err(e) => {
                crate::report::line(format_args!(
                    "{e}; usage: {} (see --help)",
                    USAGE.lines().next().unwrap_or_default()
                ));
                return Err(2);
            }
        }
    };
    // The trace's XCR0 (CPUID 0xD.0's where it recorded 0) and table.
    let (xcr0, cpuid) = match &cli.rr_trace {
        None => (cli.xcr0, cli.cpuid),
        Some(dir) => match syscall_proxy::cpuid::rr_trace::read(dir) {
            Ok(h) => (
                Some(format!("{:#x}", h.xcr0())),
                Some(dir.to_string_lossy().into_owned()),
            ),
            Err(e) => {
                crate::report::line(format_args!("--rr-trace: {e}"));
                return Err(2);
            }
        },
    };
    Ok(Args {
        command,
        xcr0,
        cpuid,
        allow_unenforced: cli.allow_unenforced_xcr0,
        stats: cli.stats,
        explain: cli.explain,
        arch_prctl_compat: cli.arch_prctl_compat,
        verbose: cli.verbose,
    })
}
