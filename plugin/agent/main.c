#include <stdio.h>

int main(void)
{
	fprintf(stderr, "healthreg: not built yet\n");
	return 64;
}
