/* libcalls: a few calls into libc, for ltrace to show. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void)
{
	char *p = malloc(16);
	strcpy(p, "sandbox");
	size_t n = strlen(p);
	printf("%zu %s\n", n, strchr(p, 'b'));
	free(p);
	return (int)n;
}
