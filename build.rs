//! The sandbox's executable starts at `entry.rs`'s stub, which runs
//! before libc's `_start`.

fn main() {
    println!("cargo:rustc-link-arg-bin=xcr0-sandbox=-Wl,--entry=xcr0_sandbox_entry");
}
