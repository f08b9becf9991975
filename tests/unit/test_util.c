/* The shared primitives of healthreg/util.h. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "healthreg/util.h"

struct item {
	int v;
	struct hr_link link;
};

Test(util, list_push_unlink)
{
	struct item a = { 1, { 0 } }, b = { 2, { 0 } }, c = { 3, { 0 } };
	struct hr_link *head = NULL;

	hr_link_push(&head, &a.link);
	hr_link_push(&head, &b.link);
	hr_link_push(&head, &c.link); /* c b a */
	cr_assert_eq(hr_container_of(head, struct item, link)->v, 3);
	hr_link_unlink(&head, &b.link); /* middle */
	cr_assert_eq(head->next, &a.link);
	cr_assert_eq(a.link.prev, &c.link);
	hr_link_unlink(&head, &c.link); /* first */
	cr_assert_eq(head, &a.link);
	cr_assert_null(a.link.prev);
	hr_link_unlink(&head, &a.link); /* last */
	cr_assert_null(head);
}

Test(util, rng_seeded_repeatable_and_uniform)
{
	struct hr_rng x, y;
	double sum = 0;
	int i;

	hr_rng_seed(&x, 42);
	hr_rng_seed(&y, 42);
	for (i = 0; i < 100000; i++) {
		double u = hr_rng_unit(&x);

		cr_assert_eq(u, hr_rng_unit(&y));
		cr_assert(u >= 0.0 && u < 1.0);
		sum += u;
	}
	cr_assert(sum / 100000 > 0.49 && sum / 100000 < 0.51, "mean %f",
		  sum / 100000);
	hr_rng_seed(&x, 1);
	hr_rng_seed(&y, 2);
	cr_assert_neq(hr_rng_u32(&x), hr_rng_u32(&y));
}

Test(util, capture_keeps_head_counts_all)
{
	struct hr_capture c;
	char chunk[1000];
	char *s;
	int i;

	memset(chunk, 'x', sizeof(chunk));
	hr_capture_init(&c, 4096);
	cr_assert_str_eq(hr_capture_str(&c), "");
	for (i = 0; i < 10; i++)
		hr_capture_add(&c, chunk, sizeof(chunk));
	cr_assert_eq(c.len, 4096);
	cr_assert_eq(c.total, 10000);
	cr_assert_eq(strlen(hr_capture_str(&c)), 4096);
	s = hr_capture_take(&c);
	cr_assert_eq(strlen(s), 4096);
	free(s);
	cr_assert_eq(c.len, 0);
	cr_assert_eq(c.total, 0);
	hr_capture_add(&c, "ab", 2);
	hr_capture_add(&c, "cd", 2);
	cr_assert_str_eq(hr_capture_str(&c), "abcd");
	hr_capture_dispose(&c);
}

Test(util, capture_zero_max_counts_only)
{
	struct hr_capture c;

	hr_capture_init(&c, 0);
	hr_capture_add(&c, "abc", 3);
	cr_assert_eq(c.total, 3);
	cr_assert_eq(c.len, 0);
	cr_assert_null(c.data);
	hr_capture_dispose(&c);
}

static void write_file(const char *path, const char *data, size_t n)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	cr_assert_eq(fwrite(data, 1, n, f), n);
	fclose(f);
}

Test(util, secret_read)
{
	char path[] = "/tmp/hr-secret-XXXXXX";
	struct hr_err err = { 0 };
	char *s = NULL;
	unsigned mode = 0;
	int fd = mkstemp(path);

	cr_assert(fd >= 0);
	close(fd);
	write_file(path, "  s3cret \t\nsecond line\n", 23);
	cr_assert_eq(hr_secret_read(path, "x.token_file", 64, &s, &mode, &err), 0);
	cr_assert_str_eq(s, "s3cret");
	cr_assert_eq(mode & 0777, 0600);
	hr_secret_free(s);

	write_file(path, " \n", 2);
	cr_assert_eq(hr_secret_read(path, "x.token_file", 64, &s, NULL, &err),
		     -EINVAL);
	cr_assert_null(s);
	cr_assert(strstr(err.msg, "x.token_file") && strstr(err.msg, "empty"),
		  "%s", err.msg);

	write_file(path, "a\0b", 3);
	cr_assert_eq(hr_secret_read(path, "f", 64, &s, NULL, &err), -EINVAL);
	cr_assert(strstr(err.msg, "NUL"), "%s", err.msg);

	write_file(path, "0123456789", 10);
	cr_assert_eq(hr_secret_read(path, "f", 9, &s, NULL, &err), -EINVAL);
	cr_assert(strstr(err.msg, "larger than 9"), "%s", err.msg);
	cr_assert_eq(hr_secret_read(path, "f", 10, &s, NULL, &err), 0);
	cr_assert_str_eq(s, "0123456789");
	hr_secret_free(s);

	unlink(path);
	cr_assert_eq(hr_secret_read(path, "f", 10, &s, NULL, &err), -ENOENT);
	cr_assert(strstr(err.msg, path), "%s", err.msg);
}

/* Like ssh: a secret file group or others may access is refused, with
 * the field, the file and the mode in the error, unless overridden. */
Test(util, secret_read_refuses_open_modes)
{
	static const unsigned bad[] = { 0644, 0640, 0604, 0620, 0602, 0610 };
	char path[] = "/tmp/hr-secret-XXXXXX";
	struct hr_err err = { 0 };
	char *s = NULL, want[16];
	size_t i;
	int fd = mkstemp(path);

	cr_assert(fd >= 0);
	close(fd);
	write_file(path, "tok\n", 4);
	unsetenv(HR_SECRET_INSECURE_ENV);
	for (i = 0; i < HR_ARRAY_SIZE(bad); i++) {
		cr_assert_eq(chmod(path, bad[i]), 0);
		cr_assert_eq(hr_secret_read(path, "agent.api_token_file", 64,
					    &s, NULL, &err), -EPERM,
			     "mode %04o", bad[i]);
		cr_assert_null(s);
		snprintf(want, sizeof(want), "%04o", bad[i]);
		cr_assert(strstr(err.msg, "agent.api_token_file") &&
			  strstr(err.msg, path) && strstr(err.msg, want) &&
			  strstr(err.msg, "chmod 600") &&
			  strstr(err.msg, HR_SECRET_INSECURE_ENV), "%s", err.msg);
	}
	cr_assert_eq(chmod(path, 0400), 0);
	cr_assert_eq(hr_secret_read(path, "f", 64, &s, NULL, &err), 0);
	cr_assert_str_eq(s, "tok");
	hr_secret_free(s);

	cr_assert_eq(chmod(path, 0644), 0);
	setenv(HR_SECRET_INSECURE_ENV, "yes", 1); /* only "1" overrides */
	cr_assert_eq(hr_secret_read(path, "f", 64, &s, NULL, &err), -EPERM);
	setenv(HR_SECRET_INSECURE_ENV, "1", 1);
	cr_assert_eq(hr_secret_read(path, "f", 64, &s, NULL, &err), 0);
	cr_assert_str_eq(s, "tok");
	hr_secret_free(s);
	unsetenv(HR_SECRET_INSECURE_ENV);
	unlink(path);
}
