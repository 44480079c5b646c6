//! Turning a command line into a program image in memory: the file to run
//! (PATH, `#!`), its segments and interpreter, and the initial stack.

pub mod elf;
pub mod resolve;
pub mod room;
pub mod stack;

use std::ffi::OsString;
use std::ops::Range;
use std::path::Path;

use vmm::AddressSpace;

pub use resolve::{Executable, ResolveError};

use crate::{mm, umem};
use stack::{StackData, at};

/// What the vCPU needs to start the program, and where its arguments,
/// environment and auxiliary vector lie.
#[derive(Clone, Debug)]
pub struct Image {
    pub entry: u64,
    pub sp: u64,
    /// Start of the program's heap (brk).
    pub brk: u64,
    pub args: Range<u64>,
    pub env: Range<u64>,
    pub auxv: Range<u64>,
}

/// The CPU facts the auxiliary vector reports.
#[derive(Clone, Copy, Debug)]
pub struct CpuFacts {
    pub hwcap: u64,
    pub hwcap2: u64,
    pub minsigstksz: u64,
}

/// The stack when RLIMIT_STACK is unlimited, and the largest one: the stack
/// is a fixed mapping here (it does not grow on faults as Linux's does).
const STACK_MAX: u64 = 1 << 30;

/// The top of a stack Linux places without randomization (STACK_TOP).
const STACK_TOP: u64 = 0x7fff_ffff_f000;

/// The gap Linux keeps below a stack (stack_guard_gap: 256 pages).
pub const STACK_GUARD_GAP: u64 = 256 * mm::PAGE;

/// Maps `exe` (and its interpreter) and builds its stack; `vdso` is the
/// address of the vDSO lent to the program, if any (AT_SYSINFO_EHDR).
pub fn load(
    space: &mut AddressSpace,
    exe: &Executable,
    envp: Vec<OsString>,
    cpu: CpuFacts,
    vdso: Option<u64>,
) -> Result<Image, elf::LoadError> {
    let fail = |why: String| elf::LoadError {
        path: exe.path.display().to_string(),
        why,
        fatal: false,
    };
    let main = elf::load(space, &exe.path, true)?;
    let (entry, base) = match &main.interp {
        Some(interp) => {
            let path = Path::new(interp);
            resolve::check_interpreter(path.as_os_str())
                .map_err(|e| fail(format!("interpreter {e}")))?;
            let ld = elf::load(space, path, false)?;
            (ld.entry, ld.bias)
        }
        None => (main.entry, 0),
    };
    // Natively the kernel maps the vDSO next, top down below the
    // interpreter; in a native layout the program's lent one is elsewhere,
    // so its place is held (the program may unmap or map over it).
    if room::mmap_base().is_some()
        && let Some(span) = vmm::vdso::host().and_then(|v| v.span())
    {
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        mm::mmap(space, 0, span, libc::PROT_NONE, flags, -1, 0)
            .map_err(|e| fail(format!("no room for the vDSO's place: {e:?}")))?;
    }

    let stack_size = stack_size();
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    let mut rw = libc::PROT_READ | libc::PROT_WRITE;
    if main.exec_stack {
        rw |= libc::PROT_EXEC;
    }
    // Where the sandbox keeps out of a native layout's way, at the top of
    // the address space as Linux puts it; else wherever there is room.
    let len = STACK_GUARD_GAP + stack_size;
    let fixed = flags | libc::MAP_FIXED_NOREPLACE;
    let native = if room::native_layout() {
        mm::mmap(space, STACK_TOP - len, len, rw, fixed, -1, 0).ok()
    } else {
        None
    };
    let guarded = match native {
        Some(at) => at,
        None => mm::mmap(space, 0, len, rw, flags, -1, 0)
            .map_err(|e| fail(format!("cannot map a {stack_size}-byte stack: {e:?}")))?,
    };
    // The gap below is no mapping of the program's (the sandbox's
    // reservation, or in a native layout nothing): an overflow faults
    // there with SEGV_MAPERR, as below Linux's stack.
    mm::munmap(space, guarded, STACK_GUARD_GAP)
        .map_err(|e| fail(format!("the stack's guard gap: {e:?}")))?;
    space.unretire(guarded, guarded + STACK_GUARD_GAP);
    let stack = guarded + STACK_GUARD_GAP;
    let top = stack + stack_size;

    // SAFETY: getuid and friends cannot fail.
    let (uid, euid, gid, egid) = unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    };
    // SAFETY: sysconf has no memory effects.
    let clktck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let mut random = [0u8; 16];
    // SAFETY: writes at most 16 bytes into `random`.
    unsafe { libc::getrandom(random.as_mut_ptr().cast(), 16, 0) };
    // First, as Linux's ARCH_DLINFO puts it.
    let vdso_entry = vdso.map(|base| (at::SYSINFO_EHDR, base));
    let data = StackData {
        argv: exe.argv.clone(),
        envp,
        execfn: exe.execfn.as_os_str().to_owned(),
        platform: "x86_64",
        random,
        auxv: vdso_entry
            .into_iter()
            .chain([
                (at::MINSIGSTKSZ, cpu.minsigstksz),
                (at::HWCAP, cpu.hwcap),
                (at::PAGESZ, mm::PAGE),
                (at::CLKTCK, clktck),
                (at::PHDR, main.phdr),
                (at::PHENT, size_of::<libc::Elf64_Phdr>() as u64),
                (at::PHNUM, main.phnum),
                (at::BASE, base),
                (at::FLAGS, 0),
                (at::ENTRY, main.entry),
                (at::UID, uid.into()),
                (at::EUID, euid.into()),
                (at::GID, gid.into()),
                (at::EGID, egid.into()),
                (at::SECURE, 0),
            ])
            .collect(),
        hwcap2: cpu.hwcap2,
    };
    let built = stack::build(top, &data);
    if built.bytes.len() as u64 > stack_size / 4 {
        return Err(fail("Argument list too long".into()));
    }
    umem::write_bytes(space, top - built.bytes.len() as u64, &built.bytes)
        .map_err(|e| fail(format!("writing the initial stack: {e:?}")))?;
    Ok(Image {
        entry,
        sp: built.sp,
        brk: main.end,
        args: built.args,
        env: built.env,
        auxv: built.auxv,
    })
}

/// RLIMIT_STACK, within [128 KiB, STACK_MAX].
fn stack_size() -> u64 {
    match crate::limits::current(libc::RLIMIT_STACK) {
        Some(r) if r.rlim_cur != libc::RLIM_INFINITY => {
            mm::page_up(r.rlim_cur.clamp(128 << 10, STACK_MAX)).unwrap_or(STACK_MAX)
        }
        _ => STACK_MAX,
    }
}
