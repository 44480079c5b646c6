/* true: exits 0. Built with -static for the static startup workload: no
 * dynamic loader, no shared libraries, the fewest system calls a C program
 * makes. */
int main(void)
{
	return 0;
}
