//! Filters across execve: Linux keeps them, and the sandbox executes
//! itself again for the new program, so the chain travels in a memfd the
//! new sandbox reads before the program starts. (Strict mode cannot reach
//! an exec: execve is not among its calls.)
//!
//! The file holds the filters oldest first, each as its length (u32), its
//! flags (u32: LOG, LISTENER) and its instructions as struct sock_filter.
//! A listener's host filter and descriptor cross the exec by themselves.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::sync::{Arc, Mutex};

use libc::sock_filter;

use super::{Filter, Mode, Shared, bpf, decode};
use crate::thread::Thread;

/// A filter's flags in the file.
const LOG: u32 = 1;
const LISTENER: u32 = 2;

/// The thread's filters in a new memfd, parked high and left open across
/// an exec (`drop_carried` closes it if the exec fails); None when it has
/// none.
pub fn carry(t: &Thread) -> std::io::Result<Option<RawFd>> {
    let Mode::Filter(newest) = t.seccomp.lock().expect("seccomp").clone() else {
        return Ok(None);
    };
    let mut chain: Vec<&Arc<Filter>> = newest.chain().collect();
    chain.reverse();
    let mut bytes = Vec::new();
    for f in chain {
        bytes.extend_from_slice(&(f.insns.len() as u32).to_ne_bytes());
        let flags = if f.log { LOG } else { 0 } | if f.listener { LISTENER } else { 0 };
        bytes.extend_from_slice(&flags.to_ne_bytes());
        for i in &f.insns {
            bytes.extend_from_slice(&i.code.to_ne_bytes());
            bytes.extend_from_slice(&[i.jt, i.jf]);
            bytes.extend_from_slice(&i.k.to_ne_bytes());
        }
    }
    let mut file = vmm::fds::memfd(c"xcr0-sandbox-seccomp")?;
    file.write_all(&bytes)?;
    let high = vmm::fds::park(file.as_raw_fd())?;
    // SAFETY: the parked copy is ours; the exec keeps it (no CLOEXEC).
    unsafe { libc::fcntl(high, libc::F_SETFD, 0) };
    Ok(Some(high))
}

/// Closes what `carry` made, after a failed exec.
pub fn drop_carried(fd: RawFd) {
    vmm::fds::lock().close(&[fd]);
}

/// The filters `fd` carries (then closed) as the state of the new image's
/// first thread. Anything unreadable ends the program: it must not run
/// unfiltered.
pub fn adopt(fd: i32) -> Result<Shared, String> {
    // SAFETY: the descriptor the executing sandbox passed, ours alone.
    let mut file = unsafe { File::from_raw_fd(fd) };
    let mut bytes = Vec::new();
    // From the start: the writer left the offset at the end.
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| format!("seccomp filters across exec: {e}"))?;
    let mut newest: Option<Arc<Filter>> = None;
    let mut rest = &bytes[..];
    let word = |b: &[u8]| u32::from_ne_bytes(b[..4].try_into().expect("4 bytes"));
    while !rest.is_empty() {
        let bad = || "seccomp filters across exec: malformed".to_string();
        if rest.len() < 8 {
            return Err(bad());
        }
        let (len, flags) = (word(rest) as usize, word(&rest[4..]));
        let end = 8 + len * size_of::<sock_filter>();
        let insns = decode(rest.get(8..end).ok_or_else(bad)?);
        bpf::check(&insns).map_err(|_| bad())?;
        rest = &rest[end..];
        newest = Some(Arc::new(Filter {
            len: bpf::converted_len(&insns),
            insns: insns.into_boxed_slice(),
            log: flags & LOG != 0,
            listener: flags & LISTENER != 0,
            prev: newest,
        }));
    }
    Ok(Arc::new(Mutex::new(
        newest.map_or(Mode::Disabled, Mode::Filter),
    )))
}
