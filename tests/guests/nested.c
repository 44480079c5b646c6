/* A GCC nested function called through a pointer: its trampoline runs on
 * the stack, so the binary asks for an executable stack (PT_GNU_STACK RWE). */
#include <stdio.h>

static int apply(int (*f)(int), int x) { return f(x); }

int main(void)
{
	int base = 40;
	int add(int x) { return x + base; }
	printf("nested=%d\n", apply(add, 2));
	return 0;
}
