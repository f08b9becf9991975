/*
 * exec checks on a private loop where pidfd_open() is missing (kernels
 * before 5.3, valgrind 3.19): the run falls back to polling waitpid. The
 * pidfd_open() under test is this file's, which the executable exports in
 * place of libc's and which always fails with ENOSYS.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/types.h>

#include "healthreg/aggregator.h"
#include "loop.h"

static int pidfd_calls;

int pidfd_open(pid_t pid, unsigned int flags);
int pidfd_open(pid_t pid, unsigned int flags)
{
	(void)pid;
	(void)flags;
	pidfd_calls++;
	errno = ENOSYS;
	return -1;
}

static struct ev_loop *loop;

static void setup(void)
{
	loop = ev_loop_new(EVFLAG_AUTO);
	cr_assert_not_null(loop);
}

static void teardown(void)
{
	ev_loop_destroy(loop);
}

TestSuite(exec_nopidfd, .init = setup, .fini = teardown, .timeout = 30);

static struct hr_agg *one_exec(const char *name, char **argv, int timeout_ms)
{
	struct hr_agg_opts o = { .enable_exec_checks = true, .seed = 7 };
	struct hr_check_spec s;
	struct hr_agg *agg = NULL;
	struct hr_err err;

	memset(&s, 0, sizeof(s));
	s.name = (char *)name;
	s.kind = HR_CHECK_EXEC;
	s.args = argv;
	s.interval_ms = 60000;
	s.timeout_ms = timeout_ms;
	s.group = -1;
	cr_assert_eq(hr_agg_new(&agg, loop, NULL, &o, &err), 0, "%s", err.msg);
	cr_assert_eq(hr_agg_add_check(agg, &s, &err), 0, "%s", err.msg);
	hr_agg_start(agg);
	return agg;
}

static int has_result(struct hr_agg *agg, const char *name)
{
	struct hr_check_info i;

	return !hr_agg_check_get(agg, name, &i) &&
	       i.last_result != HR_STATUS_UNKNOWN;
}

static void run_until_result(struct hr_agg *agg, const char *name, double s)
{
	double end = ev_time() + s;

	while (!has_result(agg, name) && ev_time() < end)
		hr_test_run_for(loop, 0.02);
}

Test(exec_nopidfd, exit_status_and_output_by_polling)
{
	char *warn[] = { "sh", "-c", "echo degraded; exit 1", NULL };
	struct hr_agg *agg = one_exec("w", warn, 2000);
	struct hr_check_info i;

	run_until_result(agg, "w", 5);
	cr_assert_eq(hr_agg_check_get(agg, "w", &i), 0);
	cr_assert_eq(i.last_result, HR_STATUS_WARNING, "%s", i.output);
	cr_assert(strstr(i.output, "degraded"), "%s", i.output);
	cr_assert_gt(pidfd_calls, 0, "the fallback was not exercised");
	hr_agg_free(agg);
}

Test(exec_nopidfd, timeout_kills_by_polling)
{
	char *slow[] = { "sleep", "10", NULL };
	struct hr_agg *agg = one_exec("s", slow, 200);
	struct hr_check_info i;

	run_until_result(agg, "s", 5);
	cr_assert_eq(hr_agg_check_get(agg, "s", &i), 0);
	cr_assert_eq(i.last_result, HR_STATUS_CRITICAL, "%s", i.output);
	cr_assert(strstr(i.output, "Timed out"), "%s", i.output);
	cr_assert_lt(i.duration_ms, 2000, "%.0f ms", i.duration_ms);
	hr_agg_free(agg);
}
