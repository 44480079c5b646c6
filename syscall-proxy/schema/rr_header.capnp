# The part of rr's trace header (src/rr_trace.capnp, trace version 85) that
# xcr0-sandbox reads: the fields up to ordinal 5, whose types fix where
# the x86 group's fields lie in the message. Our own schema of rr's facts;
# Cap'n Proto finds a field by its ordinal and type, not its name.

@0xd1f0c5a4e2b39c71;

struct Header {
  # 16 random bytes naming the trace.
  uuid @0 :Data;
  # The CPU the recording was bound to, or -1.
  bindToCpu @1 :Int32;
  syscallbufProtocolVersion @4 :UInt16;
  x86 :group {
    # CPUIDs were recorded as instruction traps (CPUID faulting).
    hasCpuidFaulting @2 :Bool;
    # 24-byte records of six little-endian u32: eax_in, ecx_in, eax, ebx,
    # ecx, edx; ecx_in 0xffffffff for any subleaf.
    cpuidRecords @3 :Data;
    # The recording's XCR0; 0 for unknown (then CPUID 0xD.0 EDX:EAX).
    xcr0 @5 :UInt64;
  }
}
