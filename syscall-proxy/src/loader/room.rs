//! Room for a native layout. Under ADDR_NO_RANDOMIZE (which gdb and rr set)
//! a native process has its executable at a fixed address in the middle of
//! the address space, its heap after it, its libraries from just below the
//! stack's gap down, and its stack at the top; rr replays an exec by
//! unmapping everything and mapping each recorded region back at its
//! recorded address. The sandbox's own memory must then lie elsewhere, but
//! the kernel puts a sandbox it executes exactly there: its static PIE's
//! mappings top-down like anyone's, its brk at the executable's native
//! address, its stack at the top.
//!
//! So where the program executes under ADDR_NO_RANDOMIZE, the sandbox
//! executes itself in the legacy layout (ADDR_COMPAT_LAYOUT: mappings
//! bottom-up from a third of the address space) with a soft RLIMIT_DATA of
//! 0, under which libc's brk fails as it starts and its thread-local
//! storage and heap go to mmap; its first instructions move its stack into
//! that layout (`src/entry.rs`). Once the new image is loaded, `settle`
//! puts the limit and the personality back as the program had them, and
//! the sandbox's brk at ROOM_BRK, away from the executable's native place.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Where the sandbox's brk goes in the legacy layout: below its mappings
/// (which start at a third of the address space), far from anything a
/// native layout places.
pub const ROOM_BRK: u64 = 0x2000_0000_0000;

// Below the user-notification stub, itself below the legacy layout's
// first mapping (a third of the 47-bit address space); a native PIE starts
// at two thirds.
const _: () =
    assert!(ROOM_BRK < crate::host::NOTIFY_STUB && crate::host::NOTIFY_STUB < (1 << 47) / 3);

/// What an exec in the legacy layout changed, to be put back: the soft
/// RLIMIT_DATA, and whether the program had ADDR_COMPAT_LAYOUT itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Room {
    pub data_cur: u64,
    pub compat: bool,
}

/// The host personality, as personality(0xffffffff) reports it.
fn personality() -> u32 {
    // SAFETY: 0xffffffff only queries.
    unsafe { libc::personality(0xffff_ffff) as u32 }
}

/// RLIMIT_DATA as it is now.
fn data_limit() -> Option<libc::rlimit> {
    let mut data = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit into a struct we own.
    (unsafe { libc::getrlimit(libc::RLIMIT_DATA, &mut data) } == 0).then_some(data)
}

/// Sets RLIMIT_DATA's soft limit to `cur` (at most the hard one). A soft
/// limit of 0 below the hard one still lets mmap through (the kernel's
/// exception for it); only brk fails.
fn set_data_soft(cur: u64) {
    if let Some(mut data) = data_limit() {
        data.rlim_cur = cur.min(data.rlim_max);
        // SAFETY: setrlimit with a struct we own.
        unsafe { libc::setrlimit(libc::RLIMIT_DATA, &data) };
    }
}

/// Sets or clears ADDR_COMPAT_LAYOUT in the host personality.
fn set_compat(on: bool) {
    let flag = libc::ADDR_COMPAT_LAYOUT as u32;
    let persona = if on {
        personality() | flag
    } else {
        personality() & !flag
    };
    // SAFETY: personality only sets the flags given.
    unsafe { libc::personality(persona.into()) };
}

/// Before the sandbox executes itself for the program: where the program
/// runs under ADDR_NO_RANDOMIZE, what `enter` will change for the new
/// image and `settle` put back there.
pub fn wanted() -> Option<Room> {
    let persona = personality();
    if persona & libc::ADDR_NO_RANDOMIZE as u32 == 0 {
        return None;
    }
    Some(Room {
        data_cur: data_limit()?.rlim_cur,
        compat: persona & libc::ADDR_COMPAT_LAYOUT as u32 != 0,
    })
}

/// Just before the exec: the legacy layout and a soft RLIMIT_DATA of 0
/// for the new image (`exec_failed` puts them back if it does not come).
pub fn enter() {
    set_data_soft(0);
    set_compat(true);
}

/// The exec failed: the process goes on as it was.
pub fn exec_failed(room: Room) {
    restore(room);
}

fn restore(room: Room) {
    set_data_soft(room.data_cur);
    if !room.compat {
        set_compat(false);
    }
}

/// The room this image was executed with, until `settle` puts it back.
static PENDING: Mutex<Option<Room>> = Mutex::new(None);

/// Whether this image keeps out of a native layout's way, so that the
/// program's executable can go where Linux would put it.
static NATIVE_LAYOUT: AtomicBool = AtomicBool::new(false);

/// In a sandbox executed with `room` (its `--reexec` word): remembers it
/// for `settle`.
pub fn adopt(room: Room) {
    *PENDING.lock().expect("room") = Some(room);
    NATIVE_LAYOUT.store(true, Ordering::Relaxed);
}

/// Whether this image keeps out of a native layout's way (`adopt`).
pub fn native_layout() -> bool {
    NATIVE_LAYOUT.load(Ordering::Relaxed)
}

/// Called with the brk PR_SET_MM_MAP is about to set (identity.rs), which
/// it may change: where a room is pending, puts back the program's
/// RLIMIT_DATA and personality and moves the brk to ROOM_BRK.
/// Allocates nothing, so that libc's heap cannot grow by brk at its old
/// place in between.
pub fn settle(start_brk: &mut u64, brk: &mut u64) {
    let Some(room) = PENDING.lock().expect("room").take() else {
        return;
    };
    restore(room);
    *start_brk = ROOM_BRK;
    *brk = ROOM_BRK;
}

/// PR_SET_MM_MAP failed: the limit and personality go back all the same
/// (the brk stays, and libc's heap may grow there).
pub fn unsettled() {
    if let Some(room) = PENDING.lock().expect("room").take() {
        restore(room);
        log::debug!("room: the sandbox's brk stays at a native executable's place");
    }
}
