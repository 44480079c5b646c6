//! restart_syscall: how a sleep interrupted by a signal no handler takes
//! goes on (current->restart_block in Linux). Such a call returns
//! ERESTART_RESTARTBLOCK; the kernel then makes the thread call
//! restart_syscall, which sleeps until the deadline the first call had,
//! not for its whole time again. A tracer sees that call (strace's
//! "resuming interrupted ...").

use crate::host::{Errno, SysResult};
use crate::syscalls::args::{Arg, Len};
use crate::syscalls::{args, check_args, forward_raw};
use crate::thread::Thread;
use crate::umem;

/// What restart_syscall resumes: the interrupted call's own, with its
/// relative timeout turned into the deadline it had when it began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// nanosleep or a relative clock_nanosleep (hrtimer_nanosleep_restart):
    /// the time left is written to `rem` again if it is interrupted again.
    Sleep { clock: i32, at: Time, rem: u64 },
    /// poll (do_restart_poll), with its deadline if it had a timeout.
    Poll {
        fds: u64,
        nfds: u64,
        at: Option<Time>,
    },
    /// A futex wait with a timeout (futex_wait_restart).
    Futex {
        uaddr: u64,
        /// FUTEX_PRIVATE_FLAG, and FUTEX_CLOCK_REALTIME as an absolute
        /// wait gave it.
        flags: i32,
        val: u64,
        bitset: u64,
        at: Time,
    },
}

/// A point in time of a clock, as timespec holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Time {
    pub sec: i64,
    pub nsec: i64,
}

const NSEC: i64 = 1_000_000_000;

impl Time {
    fn now(clock: i32) -> Option<Time> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes the timespec we own.
        (unsafe { libc::clock_gettime(clock, &mut ts) } == 0).then_some(Time {
            sec: ts.tv_sec,
            nsec: ts.tv_nsec,
        })
    }

    fn after(self, d: Time) -> Time {
        let nsec = self.nsec + d.nsec;
        Time {
            sec: self.sec.saturating_add(d.sec).saturating_add(nsec / NSEC),
            nsec: nsec % NSEC,
        }
    }

    /// What is left from `now` to `self`, zero once it has passed.
    fn left_from(self, now: Time) -> Time {
        let mut sec = self.sec - now.sec;
        let mut nsec = self.nsec - now.nsec;
        if nsec < 0 {
            sec -= 1;
            nsec += NSEC;
        }
        if sec < 0 {
            Time { sec: 0, nsec: 0 }
        } else {
            Time { sec, nsec }
        }
    }

    fn timespec(self) -> libc::timespec {
        libc::timespec {
            tv_sec: self.sec,
            tv_nsec: self.nsec,
        }
    }

    /// A timespec of the program's, if it is readable and valid.
    fn read(t: &Thread, addr: u64) -> Option<Time> {
        let space = t.process.vm.memory.lock().expect("address space");
        let [sec, nsec] = umem::read::<[i64; 2]>(&space, addr).ok()?;
        (sec >= 0 && (0..NSEC).contains(&nsec)).then_some(Time { sec, nsec })
    }
}

/// When a call that would go on through restart_syscall began: the time,
/// by the clock its deadline counts on, taken before it is made without
/// reading its arguments (only an interrupted one reads them: `block`).
#[derive(Clone, Copy, Debug)]
pub struct Began(Option<Time>);

/// The clock a relative sleep on `clock` counts on: CLOCK_REALTIME's are
/// CLOCK_MONOTONIC's (__hrtimer_init), unaffected by the clock being set.
fn relative_clock(clock: i32) -> i32 {
    if clock == libc::CLOCK_REALTIME {
        libc::CLOCK_MONOTONIC
    } else {
        clock
    }
}

/// Taken before call `nr` is made, if a signal that interrupts it makes it
/// go on through restart_syscall.
#[inline]
pub fn before(nr: u64, a: [u64; 6]) -> Option<Began> {
    match nr as i64 {
        libc::SYS_nanosleep => Some(Began(Time::now(libc::CLOCK_MONOTONIC))),
        libc::SYS_clock_nanosleep if a[1] as i32 & libc::TIMER_ABSTIME == 0 => {
            Some(Began(Time::now(relative_clock(a[0] as i32))))
        }
        libc::SYS_poll => Some(Began(if a[2] as i32 >= 0 {
            Time::now(libc::CLOCK_MONOTONIC)
        } else {
            None
        })),
        libc::SYS_futex if a[3] != 0 => match a[1] as i32 & libc::FUTEX_CMD_MASK {
            // Relative, on the monotonic clock (futex_init_timeout).
            libc::FUTEX_WAIT => Some(Began(Time::now(libc::CLOCK_MONOTONIC))),
            // Absolute already.
            libc::FUTEX_WAIT_BITSET => Some(Began(None)),
            _ => None,
        },
        _ => None,
    }
}

/// The block call `nr`, which began at `began` and a signal interrupted,
/// leaves: its deadline from its timeout.
pub fn block(t: &Thread, nr: u64, a: [u64; 6], began: Began) -> Option<Block> {
    let relative = |addr: u64| Some(began.0?.after(Time::read(t, addr)?));
    match nr as i64 {
        libc::SYS_nanosleep => Some(Block::Sleep {
            clock: libc::CLOCK_MONOTONIC,
            at: relative(a[0])?,
            rem: a[1],
        }),
        libc::SYS_clock_nanosleep => Some(Block::Sleep {
            clock: relative_clock(a[0] as i32),
            at: relative(a[2])?,
            rem: a[3],
        }),
        libc::SYS_poll => {
            let ms = i64::from(a[2] as i32);
            let at = began.0.map(|now| {
                now.after(Time {
                    sec: ms / 1000,
                    nsec: ms % 1000 * 1_000_000,
                })
            });
            Some(Block::Poll {
                fds: a[0],
                nfds: a[1],
                at,
            })
        }
        libc::SYS_futex => {
            let op = a[1] as i32;
            let (at, bitset, flags) = if op & libc::FUTEX_CMD_MASK == libc::FUTEX_WAIT {
                // Resumed as an absolute wait on the monotonic clock.
                let flags = op & libc::FUTEX_PRIVATE_FLAG;
                (relative(a[3])?, u64::from(u32::MAX), flags)
            } else {
                let flags = op & (libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME);
                (Time::read(t, a[3])?, a[5], flags)
            };
            Some(Block::Futex {
                uaddr: a[0],
                flags,
                val: a[2],
                bitset,
                at,
            })
        }
        _ => None,
    }
}

/// restart_syscall: resumes the block the thread's last interrupted call
/// left, or fails with EINTR if there is none (do_no_restart_syscall). A
/// resumed call interrupted again leaves the same block.
pub fn resume(t: &mut Thread) -> SysResult {
    let Some(block) = t.restart.take() else {
        return Err(Errno(libc::EINTR));
    };
    let r = match block {
        Block::Sleep { clock, at, rem } => sleep(t, clock, at, rem),
        Block::Poll { fds, nfds, at } => {
            let a = [fds, nfds, 0, 0, 0, 0];
            check_args(
                t,
                a,
                args::spec(libc::SYS_poll).unwrap_or(&[]).iter().copied(),
            )?;
            let left = at.map(|at| at.left_from(Time::now(libc::CLOCK_MONOTONIC).unwrap_or(at)));
            let ts = left.map(Time::timespec);
            let tsp = ts
                .as_ref()
                .map_or(0, |ts| ts as *const libc::timespec as u64);
            // ppoll without a mask is poll with a timespec.
            forward_raw(libc::SYS_ppoll, [fds, nfds, tsp, 0, 8, 0])
        }
        Block::Futex {
            uaddr,
            flags,
            val,
            bitset,
            at,
        } => {
            let op = (libc::FUTEX_WAIT_BITSET | flags) as u64;
            let mut a = [uaddr, op, val, 0, 0, bitset];
            // The word is checked as the first call's was; the deadline is
            // the sandbox's own.
            check_args(t, a, std::iter::once(Arg::R(0, Len::C(4))))?;
            let ts = at.timespec();
            a[3] = &ts as *const libc::timespec as u64;
            forward_raw(libc::SYS_futex, a)
        }
    };
    if r == Err(Errno(libc::EINTR)) {
        t.restart = Some(block);
    }
    r
}

fn sleep(t: &Thread, clock: i32, at: Time, rem: u64) -> SysResult {
    let ts = at.timespec();
    let a = [
        clock as u64,
        libc::TIMER_ABSTIME as u64,
        &ts as *const _ as u64,
        0,
        0,
        0,
    ];
    let r = forward_raw(libc::SYS_clock_nanosleep, a);
    if r == Err(Errno(libc::EINTR)) && rem != 0 {
        let left = Time::now(clock).map_or(at, |now| at.left_from(now));
        let space = t.process.vm.memory.lock().expect("address space");
        umem::write(&space, rem, [left.sec, left.nsec])?;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_carry_nanoseconds_and_what_is_left_never_goes_negative() {
        let t = Time {
            sec: 1,
            nsec: 900_000_000,
        };
        let d = Time {
            sec: 2,
            nsec: 200_000_000,
        };
        assert_eq!(
            t.after(d),
            Time {
                sec: 4,
                nsec: 100_000_000
            }
        );
        assert_eq!(
            t.after(d).left_from(t),
            Time {
                sec: 2,
                nsec: 200_000_000
            }
        );
        assert_eq!(t.left_from(t.after(d)), Time { sec: 0, nsec: 0 });
    }
}
