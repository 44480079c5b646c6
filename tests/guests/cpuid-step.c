/* cpuid-step: a CPUID between two labels, for a debugger to single-step
 * over (at_cpuid, after_cpuid). */
int main(void)
{
	unsigned a = 1, b, c = 0, d;
	__asm__ volatile(".globl at_cpuid\nat_cpuid: cpuid\n"
			 ".globl after_cpuid\nafter_cpuid: nop\nnop\n"
			 : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
	return (int)(a & 0);
}
