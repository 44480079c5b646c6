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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::memory::mm::page_up;
use crate::memory::placement::TASK_SIZE;

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

impl Room {
    /// Its text form, for the sandbox image it travels to: the soft limit
    /// in hex, a slash, the compat flag as 0 or 1.
    pub fn to_word(self) -> String {
        format!("{:x}/{}", self.data_cur, u8::from(self.compat))
    }

    pub fn parse(word: &str) -> Option<Room> {
        let (data, compat) = word.split_once('/')?;
        Some(Room {
            data_cur: u64::from_str_radix(data, 16).ok()?,
            compat: match compat {
                "0" => false,
                "1" => true,
                _ => return None,
            },
        })
    }
}

/// The host personality, as personality(0xffffffff) reports it.
fn personality() -> u32 {
    // SAFETY: 0xffffffff only queries.
    unsafe { libc::personality(0xffff_ffff) as u32 }
}

/// RLIMIT_DATA as it is now.
fn data_limit() -> Option<libc::rlimit> {
    crate::limits::current(libc::RLIMIT_DATA)
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

/// Where the program's mappings without an address start, top down, in a
/// native layout (0: the host places them, see `mmap_base`).
static MMAP_BASE: AtomicU64 = AtomicU64::new(0);

/// In a sandbox executed with `room` (its `--reexec` word): remembers it
/// for `settle`.
pub fn adopt(room: Room) {
    *PENDING.lock().expect("room") = Some(room);
    NATIVE_LAYOUT.store(true, Ordering::Relaxed);
    if !room.compat {
        MMAP_BASE.store(native_mmap_base(), Ordering::Relaxed);
    }
}

/// Linux's mmap_base for a process executed now without randomization:
/// below the stack's gap (RLIMIT_STACK and the guard gap, at least 128
/// MiB, at most five sixths of the address space).
fn native_mmap_base() -> u64 {
    mmap_base_below(crate::limits::current(libc::RLIMIT_STACK).map_or(0, |s| s.rlim_cur))
}

/// mmap_base for a soft RLIMIT_STACK of `stack`.
fn mmap_base_below(stack: u64) -> u64 {
    let gap = stack
        .saturating_add(crate::loader::STACK_GUARD_GAP)
        .clamp(128 << 20, TASK_SIZE / 6 * 5);
    page_up(TASK_SIZE - gap).unwrap_or(TASK_SIZE)
}

/// Where the sandbox's memory reaches at most in the legacy layout: it
/// starts at a third of the address space and grows up, so half of it
/// would take some 20 TiB of its own. Its brk starts at ROOM_BRK.
const SANDBOX_REACH: u64 = 0x4000_0000_0000;

/// Whether [start, end) lies where the sandbox's memory never goes, in a
/// native layout (`mmap_base`): below its brk, or above its reach. What
/// the program unmaps there needs no reservation.
pub fn out_of_sandbox_reach(start: u64, end: u64) -> bool {
    mmap_base().is_some() && (end <= ROOM_BRK || start >= SANDBOX_REACH)
}

/// Where the program's mappings without an address go, top down, where
/// it runs in a native layout that places them so (not one that asked for
/// the legacy layout itself, which the host's placement already is).
pub fn mmap_base() -> Option<u64> {
    Some(MMAP_BASE.load(Ordering::Relaxed)).filter(|&b| b != 0)
}

/// The environment variable through which a command's start hands its
/// room to the image it executes (`start_in_room`), there taken out of the
/// environment before anything reads it for the program.
const START_VAR: &str = "XCR0_SANDBOX_ROOM";

/// At the start of a command, where its first program would run under
/// ADDR_NO_RANDOMIZE (`setarch -R xcr0-sandbox -- prog`): executes the
/// sandbox again, with the same arguments, in the room, as an exec inside
/// the sandbox does. Returns where there is nothing to do, or where that
/// exec failed (the program then runs in the usual layout).
pub fn start_in_room() {
    if native_layout() {
        return;
    }
    let Some(room) = wanted() else {
        return;
    };
    let cstrings = |words: Vec<std::ffi::OsString>| -> Option<Vec<std::ffi::CString>> {
        use std::os::unix::ffi::OsStringExt;
        words
            .into_iter()
            .map(|w| std::ffi::CString::new(w.into_vec()).ok())
            .collect()
    };
    let mut env: Vec<std::ffi::OsString> = std::env::vars_os()
        .map(|(mut k, v)| {
            k.push("=");
            k.push(v);
            k
        })
        .collect();
    env.push(format!("{START_VAR}={}", room.to_word()).into());
    let (Some(argv), Some(env)) = (cstrings(std::env::args_os().collect()), cstrings(env)) else {
        return;
    };
    enter();
    let err = crate::host::execute_self(&argv, &env);
    exec_failed(room);
    log::warn!(
        "room: executing the sandbox in the legacy layout failed ({err}): the program's layout is not native's"
    );
}

/// At the start of a command (not an exec's): adopts the room
/// `start_in_room` handed over, and takes its variable out of the
/// environment the program gets. Only an image that is in the room's
/// layout, as that exec made it, adopts it.
pub fn adopt_at_start() {
    let Some(word) = std::env::var_os(START_VAR) else {
        return;
    };
    // SAFETY: at the start, before the sandbox starts any thread.
    unsafe { std::env::remove_var(START_VAR) };
    let in_room = personality() & libc::ADDR_COMPAT_LAYOUT as u32 != 0
        && data_limit().is_some_and(|d| d.rlim_cur == 0);
    match word.to_str().and_then(Room::parse) {
        Some(room) if in_room => adopt(room),
        _ => log::warn!("room: {START_VAR} ignored: this image was not executed in the room"),
    }
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
        // The sandbox's heap may grow where the program's mappings are:
        // what the program unmaps is reserved again.
        MMAP_BASE.store(0, Ordering::Relaxed);
        log::debug!("room: the sandbox's brk stays at a native executable's place");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mmap_base_is_linuxs_for_the_stack_limit() {
        // What `setarch -R cat /proc/self/maps` shows under each limit.
        assert_eq!(mmap_base_below(8 << 20), 0x7fff_f7ff_f000);
        assert_eq!(mmap_base_below(0), 0x7fff_f7ff_f000);
        assert_eq!(mmap_base_below(1 << 30), 0x7fff_bfef_f000);
        assert_eq!(mmap_base_below(u64::MAX), 0x1555_5555_6000);
    }

    #[test]
    fn a_room_reads_back_as_written() {
        for room in [
            Room {
                data_cur: u64::MAX,
                compat: false,
            },
            Room {
                data_cur: 0x1000,
                compat: true,
            },
        ] {
            assert_eq!(Room::parse(&room.to_word()), Some(room));
        }
        assert_eq!(Room::parse("10/2"), None);
        assert_eq!(Room::parse("zz/0"), None);
    }
}
