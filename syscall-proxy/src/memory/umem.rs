//! Reading and writing the program's memory from the sandbox.
//!
//! Program memory lives in this very process, but touching it directly is
//! wrong twice over: an address outside the program's mappings may be the
//! sandbox's own memory, and a program mapping may not be backed (a shared
//! file mapping past the end of its file raises SIGBUS). Every access goes
//! through here: checked against the program's mappings, then copied with
//! process_vm_readv/writev on this process, which fail with EFAULT where a
//! plain access would fault.
//!
//! Those calls name the process by a task id; a getpid per access would be
//! a host system call per pointer, so each host thread keeps its own id
//! (`OWN_ID`) and forgets it where it stops naming this memory: in a fork
//! child, and around a vfork child, which runs on its parent's thread
//! (and thread-local storage) but is another task.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{IoSlice, IoSliceMut};
use std::sync::Once;

use vm_memory::ByteValued;
use vmm::AddressSpace;

use crate::host::Errno;

const PAGE: u64 = crate::mm::PAGE;

fn efault() -> Errno {
    Errno(libc::EFAULT)
}

fn remote(addr: u64, len: usize) -> libc::iovec {
    libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: len,
    }
}

thread_local! {
    /// The id of the task running this host thread, 0 until read. A thread
    /// id rather than the pid: the task it names is the caller itself, so
    /// it is alive and has this memory (a process leader may have exited),
    /// and process_vm_readv on a task with the caller's own memory needs no
    /// ptrace permission.
    static OWN_ID: Cell<libc::pid_t> = const { Cell::new(0) };
}

/// Runs in the child of every fork(3) of the sandbox: the forking thread's
/// copy of `OWN_ID` names its parent.
unsafe extern "C" fn forget_in_fork_child() {
    forget_own_id();
}

/// Makes the next access read this thread's id again: for a vfork child as
/// it starts (its parent's id is in the storage it shares) and for the
/// parent when it resumes (the child may have stored its own).
pub fn forget_own_id() {
    OWN_ID.set(0);
}

/// This host thread's task id, read once (what a trace page records as
/// its owner).
pub(crate) fn own_tid() -> libc::pid_t {
    own_id()
}

/// The id process_vm_readv/writev take for this process.
fn own_id() -> libc::pid_t {
    let id = OWN_ID.get();
    if id != 0 {
        return id;
    }
    static AT_FORK: Once = Once::new();
    AT_FORK.call_once(|| {
        // SAFETY: registers a handler that only writes this thread's
        // thread-local, which is async-signal-safe.
        let r = unsafe { libc::pthread_atfork(None, None, Some(forget_in_fork_child)) };
        assert_eq!(r, 0, "pthread_atfork");
    });
    // SAFETY: gettid has no preconditions.
    let id = unsafe { libc::gettid() };
    OWN_ID.set(id);
    id
}

/// Copies `buf.len()` bytes at `addr` of this process into `buf`; false
/// where the kernel could not read them all (nothing mapped, no backing).
fn copy_in(addr: u64, buf: &mut [u8]) -> bool {
    let len = buf.len();
    let local = [IoSliceMut::new(buf)];
    let r = remote(addr, len);
    // SAFETY: reads from this process into `buf`, which the kernel writes
    // only within its length; a fault on the remote side is an error return.
    let n = unsafe { libc::process_vm_readv(own_id(), local.as_ptr().cast(), 1, &r, 1, 0) };
    n == len as isize
}

/// Copies `bytes` to `addr` of this process; false where the kernel could
/// not write them all.
///
/// # Safety
/// [addr, addr + bytes.len()) must be memory no Rust reference covers: the
/// program's.
unsafe fn copy_out(addr: u64, bytes: &[u8]) -> bool {
    let local = [IoSlice::new(bytes)];
    let r = remote(addr, bytes.len());
    // SAFETY: the caller vouches for the destination; a fault there is an
    // error return.
    let n = unsafe { libc::process_vm_writev(own_id(), local.as_ptr().cast(), 1, &r, 1, 0) };
    n == bytes.len() as isize
}

/// Copies `buf.len()` bytes at `addr` of program memory into `buf`.
pub fn read_bytes(space: &AddressSpace, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
    if buf.is_empty() {
        return Ok(());
    }
    if space.program_can_access(addr, buf.len() as u64, false) && copy_in(addr, buf) {
        Ok(())
    } else {
        Err(efault())
    }
}

/// Copies `bytes` to `addr` of program memory, which must be writable.
/// The bytes of the instruction at `rip` as the guest would fetch them:
/// up to 15, fewer where readable memory ends (an instruction may end a
/// page).
pub fn read_instruction(space: &AddressSpace, rip: u64) -> Vec<u8> {
    let mut bytes = [0u8; 15];
    let mut n = 0;
    while n < bytes.len() && read_bytes(space, rip + n as u64, &mut bytes[n..=n]).is_ok() {
        n += 1;
    }
    bytes[..n].to_vec()
}

pub fn write_bytes(space: &AddressSpace, addr: u64, bytes: &[u8]) -> Result<(), Errno> {
    if bytes.is_empty() {
        return Ok(());
    }
    if !space.program_can_access(addr, bytes.len() as u64, true) {
        return Err(efault());
    }
    // SAFETY: a writable program mapping, checked above.
    if unsafe { copy_out(addr, bytes) } {
        Ok(())
    } else {
        Err(efault())
    }
}

/// Reads a `T` at `addr` of program memory.
pub fn read<T: ByteValued>(space: &AddressSpace, addr: u64) -> Result<T, Errno> {
    let mut v = T::zeroed();
    read_bytes(space, addr, v.as_mut_slice())?;
    Ok(v)
}

/// Writes `value` at `addr` of program memory.
pub fn write<T: ByteValued>(space: &AddressSpace, addr: u64, value: T) -> Result<(), Errno> {
    write_bytes(space, addr, value.as_slice())
}

/// Reads the NUL-terminated string at `addr` (without its NUL), at most
/// `max` bytes long: ENAMETOOLONG beyond.
pub fn read_cstr(space: &AddressSpace, addr: u64, max: u64) -> Result<Vec<u8>, Errno> {
    cstr_by_pages(addr, max, |at, out| append_page_tail(space, at, out))
}

/// A NUL-terminated string at `addr`, at most `max` bytes, read a page at
/// a time (it may end just before memory that cannot be read):
/// `append(at, out)` appends the bytes from `at` to the end of its page.
fn cstr_by_pages(
    addr: u64,
    max: u64,
    mut append: impl FnMut(u64, &mut Vec<u8>) -> Result<(), Errno>,
) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    let mut at = addr;
    loop {
        let old = out.len();
        append(at, &mut out)?;
        if let Some(n) = out[old..].iter().position(|&b| b == 0) {
            out.truncate(old + n);
            return Ok(out);
        }
        if out.len() as u64 > max {
            return Err(Errno(libc::ENAMETOOLONG));
        }
        at = at
            .checked_add((out.len() - old) as u64)
            .ok_or_else(efault)?;
    }
}

/// Appends program memory from `at` to the end of its page to `out`, read
/// straight into `out`'s tail.
fn append_page_tail(space: &AddressSpace, at: u64, out: &mut Vec<u8>) -> Result<(), Errno> {
    let page_end = (at | (PAGE - 1)).checked_add(1).ok_or_else(efault)?;
    let old = out.len();
    out.resize(old + (page_end - at) as usize, 0);
    read_bytes(space, at, &mut out[old..])
}

/// Reads many small things from program memory a whole page at a time,
/// each page once: execve's argv and environment are hundreds of pointers
/// and strings on a few pages, one host system call each if read one by
/// one. A page that cannot be read whole (the program's part of it ends
/// inside, or it is not backed) is read as `read`/`read_cstr` would.
pub struct PageReader<'a> {
    space: &'a AddressSpace,
    pages: BTreeMap<u64, Option<Box<[u8]>>>,
}

impl<'a> PageReader<'a> {
    pub fn new(space: &'a AddressSpace) -> PageReader<'a> {
        PageReader {
            space,
            pages: BTreeMap::new(),
        }
    }

    /// The page at `page`, read once; None if it cannot be read whole.
    fn page(&mut self, page: u64) -> Option<&[u8]> {
        let space = self.space;
        self.pages
            .entry(page)
            .or_insert_with(|| {
                let mut buf = vec![0u8; PAGE as usize].into_boxed_slice();
                read_bytes(space, page, &mut buf).ok().map(|()| buf)
            })
            .as_deref()
    }

    /// The byte at `addr`, if its page could be read whole.
    fn byte(&mut self, addr: u64) -> Option<u8> {
        let page = self.page(addr & !(PAGE - 1))?;
        Some(page[(addr & (PAGE - 1)) as usize])
    }

    /// The u64 at `addr`.
    pub fn read_u64(&mut self, addr: u64) -> Result<u64, Errno> {
        let mut bytes = [0u8; 8];
        for (i, b) in bytes.iter_mut().enumerate() {
            match addr.checked_add(i as u64).and_then(|a| self.byte(a)) {
                Some(v) => *b = v,
                None => return read(self.space, addr),
            }
        }
        Ok(u64::from_ne_bytes(bytes))
    }

    /// The NUL-terminated string at `addr`, as [`read_cstr`] reads it.
    pub fn read_cstr(&mut self, addr: u64, max: u64) -> Result<Vec<u8>, Errno> {
        let space = self.space;
        cstr_by_pages(addr, max, |at, out| match self.page(at & !(PAGE - 1)) {
            Some(page) => {
                out.extend_from_slice(&page[(at & (PAGE - 1)) as usize..]);
                Ok(())
            }
            None => append_page_tail(space, at, out),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The id the next access names, read fresh.
    fn fresh_id() -> libc::pid_t {
        forget_own_id();
        own_id()
    }

    #[test]
    fn a_page_reader_reads_what_plain_reads_do() {
        let Ok(hv) = vmm::Hypervisor::open() else {
            eprintln!("skipped: no KVM");
            return;
        };
        let vm = vmm::Vm::new(std::sync::Arc::new(hv)).expect("VM");
        let mut space = vm.memory.lock().unwrap();
        // Three pages of which the program has the first one and a half.
        let mut mem = vec![b'a'; 4 * PAGE as usize];
        let base = (mem.as_mut_ptr() as u64 + PAGE - 1) & !(PAGE - 1);
        let rw = vmm::Prot(vmm::Prot::READ | vmm::Prot::WRITE);
        space.map_program(base, base + PAGE + PAGE / 2, rw).unwrap();
        let put = |at: u64, b: u8| {
            // SAFETY: within `mem`, through its mutable pointer; no
            // reference to it is in use.
            unsafe { *(at as *mut u8) = b };
        };
        put(base + 10, 0);
        put(base + PAGE + 5, 0);
        let mut reader = PageReader::new(&space);
        for addr in [base, base + 3, base + 11, base + PAGE - 2, base + PAGE + 6] {
            for max in [4096, 2] {
                assert_eq!(
                    reader.read_cstr(addr, max),
                    read_cstr(&space, addr, max),
                    "{:#x} max {max}",
                    addr - base
                );
            }
        }
        for addr in [
            base,
            base + PAGE - 4,
            base + PAGE + PAGE / 2 - 8,
            base + 2 * PAGE,
        ] {
            assert_eq!(reader.read_u64(addr), read::<u64>(&space, addr));
        }
        assert_eq!(reader.read_cstr(base, 64), Ok(vec![b'a'; 10]));
        assert_eq!(reader.read_cstr(base + PAGE + 6, 64), Err(efault()));
    }

    #[test]
    fn a_fork_child_reads_its_own_copy() {
        let value = Box::new(std::cell::Cell::new(1u64));
        let addr = value.as_ptr() as u64;
        let mut got = [0u8; 8];
        assert!(copy_in(addr, &mut got), "the parent reads its memory");
        assert_ne!(OWN_ID.get(), 0, "the id is kept");
        // SAFETY: the child only writes its copy, reads it and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            value.set(2);
            let ok = copy_in(addr, &mut got) && u64::from_ne_bytes(got) == 2;
            // SAFETY: ends the child without running the parent's exit code.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just made.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert_eq!(status, 0, "the child read its parent's memory or none");
        assert_eq!(own_id(), fresh_id(), "the parent's id is unchanged");
    }

    /// What a vfork child saw: the id it named this memory by, and whether
    /// its read through that id succeeded.
    struct VforkSaw {
        addr: u64,
        id: libc::pid_t,
        read: bool,
    }

    extern "C" fn vfork_child(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: the parent's VforkSaw, which it does not touch until this
        // child has exited.
        let saw = unsafe { &mut *arg.cast::<VforkSaw>() };
        // As task/run.rs does as a vfork child starts.
        forget_own_id();
        let mut byte = [0u8];
        saw.read = copy_in(saw.addr, &mut byte);
        saw.id = OWN_ID.get();
        0
    }

    #[test]
    fn a_vfork_child_and_its_parent_each_name_their_own_task() {
        let parent = fresh_id();
        let mut stack = vec![0u8; 64 << 10];
        let byte = 7u8;
        let mut saw = VforkSaw {
            addr: &byte as *const u8 as u64,
            id: 0,
            read: false,
        };
        // SAFETY: the child runs `vfork_child` on `stack`, which outlives
        // it: CLONE_VFORK holds this thread until the child has exited.
        let pid = unsafe {
            libc::clone(
                vfork_child,
                stack.as_mut_ptr_range().end.cast(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                (&mut saw as *mut VforkSaw).cast(),
            )
        };
        assert!(pid > 0);
        assert_eq!(saw.id, pid, "the child named itself");
        assert!(saw.read);
        assert_eq!(OWN_ID.get(), pid, "the child's id is in the shared storage");
        // As task/run.rs does when the child has gone.
        forget_own_id();
        assert_eq!(own_id(), parent);
        let mut status = 0;
        // SAFETY: reaps the child just made.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        let mut got = [0u8];
        assert!(copy_in(saw.addr, &mut got) && got[0] == 7);
    }
}
