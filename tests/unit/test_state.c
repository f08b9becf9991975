/* The maintenance state file (plugin/agent/state.c): path rules, atomic
 * save, load of enabled / disabled / unreadable / missing files. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "state.h"

static char dir[256];

static void setup(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/hr-state-XXXXXX", t && *t ? t : "/tmp");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(state, .init = setup, .fini = teardown, .timeout = 10);

Test(state, path_from_config_then_state_directory_then_default)
{
	struct hr_config cfg;
	char *p;

	memset(&cfg, 0, sizeof(cfg));
	cfg.service.id = "web-1";
	setenv("STATE_DIRECTORY", dir, 1);
	p = hr_state_path(&cfg);
	cr_expect(strstr(p, "/web-1.state") && !strncmp(p, dir, strlen(dir)), "%s", p);
	free(p);
	setenv("STATE_DIRECTORY", "", 1);
	p = hr_state_path(&cfg);
	cr_expect_str_eq(p, "/var/lib/healthreg/web-1.state");
	free(p);
	cfg.state_file = "/x/y.json";
	p = hr_state_path(&cfg);
	cr_expect_str_eq(p, "/x/y.json");
	free(p);
}

Test(state, save_then_load)
{
	char path[300], *reason = (char *)1;

	snprintf(path, sizeof(path), "%s/s.json", dir);
	cr_assert_eq(hr_state_load(path, &reason), 0, "no file: not enabled");
	cr_expect_null(reason);
	cr_assert_eq(hr_state_save(path, true, "kernel \"upgrade\""), 0);
	cr_assert_eq(hr_state_load(path, &reason), 1);
	cr_expect_str_eq(reason, "kernel \"upgrade\"");
	free(reason);
	cr_assert_eq(hr_state_save(path, false, NULL), 0);
	cr_assert_eq(hr_state_load(path, &reason), 0);
	cr_expect_null(reason);
	strcat(path, ".tmp");
	cr_expect_neq(access(path, F_OK), 0, "the temporary file is gone");
}

Test(state, unreadable_file_is_not_enabled)
{
	char path[300], *reason = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "%s/bad.json", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("{not json", f);
	fclose(f);
	cr_expect_eq(hr_state_load(path, &reason), 0);
	cr_expect_null(reason);
}

Test(state, save_into_a_missing_directory_fails)
{
	char path[300];

	snprintf(path, sizeof(path), "%s/no/such/dir/s.json", dir);
	cr_expect_lt(hr_state_save(path, true, "x"), 0);
}
