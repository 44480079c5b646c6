/* debuggee: what the gdb tests step through: a call, a loop over a global,
 * a handled signal and a write. */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
int counter;
int add(int a, int b) { return a + b; }
static void on_usr1(int s) { counter += s; }
int main(void)
{
	signal(SIGUSR1, on_usr1);
	int x = add(2, 3);
	for (int i = 0; i < 3; i++)
		counter += i;
	kill(getpid(), SIGUSR1);
	printf("x=%d counter=%d\n", x, counter);
	return x;
}
