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
	struct hr_service_conf svc;
	char *p;

	memset(&cfg, 0, sizeof(cfg));
	memset(&svc, 0, sizeof(svc));
	svc.service.id = "web-1";
	cfg.services = &svc;
	cfg.n_services = 1;
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

struct seen {
	char ids[4][32], reasons[4][32];
	size_t n;
};

static void collect(const char *id, const char *reason, void *payload)
{
	struct seen *s = payload;

	cr_assert_lt(s->n, 4);
	snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", id);
	snprintf(s->reasons[s->n++], sizeof(s->reasons[0]), "%s", reason);
}

/* Services in maintenance of their own are kept beside the agent's, and
 * a file without them (an older agent's) has none. */
Test(state, services_of_their_own)
{
	const struct hr_state_service own[] = { { "db-1", "disk" },
						{ "cache", NULL } };
	struct seen seen = { .n = 0 };
	char path[300], *reason = NULL;

	snprintf(path, sizeof(path), "%s/s.json", dir);
	cr_assert_eq(hr_state_load_services(path, collect, &seen), 0, "no file");
	cr_expect_eq(seen.n, 0);
	cr_assert_eq(hr_state_save_services(path, false, "", own, 2), 0);
	cr_assert_eq(hr_state_load(path, &reason), 0, "the agent is not");
	cr_assert_eq(hr_state_load_services(path, collect, &seen), 0);
	cr_assert_eq(seen.n, 2);
	cr_expect_str_eq(seen.ids[0], "db-1");
	cr_expect_str_eq(seen.reasons[0], "disk");
	cr_expect_str_eq(seen.ids[1], "cache");
	cr_expect_str_eq(seen.reasons[1], "");
	cr_assert_eq(hr_state_save(path, true, "host"), 0);
	seen.n = 0;
	cr_assert_eq(hr_state_load_services(path, collect, &seen), 0);
	cr_expect_eq(seen.n, 0, "the agent's save alone lists none");
	cr_assert_eq(hr_state_load(path, &reason), 1);
	cr_expect_str_eq(reason, "host");
	free(reason);
}

static void write_file(const char *path, const char *text, size_t n)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	cr_assert_eq(fwrite(text, 1, n, f), n);
	fclose(f);
}

/* Issue 11, item 4: a file that exists but says nothing we understand
 * keeps the instance in maintenance (it used to read as "not enabled"). */
Test(state, unreadable_file_keeps_maintenance)
{
	static const char *bad[] = { "{not json", "", "{}", "[1]",
				     "{\"maintenance\": {\"enabled\": 1}}" };
	char path[300], *reason = NULL;
	size_t i;

	snprintf(path, sizeof(path), "%s/bad.json", dir);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(path, bad[i], strlen(bad[i]));
		cr_expect_eq(hr_state_load(path, &reason), 1, "%s", bad[i]);
		cr_expect(reason && !strncmp(reason, "state file unreadable", 21),
			  "%s", reason);
		free(reason);
		reason = NULL;
	}
}

/* "services" of another shape than {"<id>": {...}} (an array walks items
 * without a name: the agent used to restore maintenance of service NULL
 * and crash): unreadable, the agent in maintenance, no service listed. */
Test(state, services_of_the_wrong_shape_keep_maintenance)
{
	static const char *bad[] = {
		"{\"maintenance\":{\"enabled\":false},\"services\":[{\"enabled\":true}]}",
		"{\"maintenance\":{\"enabled\":false},\"services\":\"db-1\"}",
		"{\"maintenance\":{\"enabled\":false},\"services\":{\"db-1\":true}}",
		"{\"maintenance\":{\"enabled\":false},\"services\":{\"db-1\":[{\"enabled\":true}]}}",
	};
	struct seen seen = { .n = 0 };
	char path[300], *reason = NULL;
	size_t i;

	snprintf(path, sizeof(path), "%s/bad.json", dir);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(path, bad[i], strlen(bad[i]));
		cr_expect_eq(hr_state_load(path, &reason), 1, "%s", bad[i]);
		cr_expect(reason && !strncmp(reason, "state file unreadable", 21),
			  "%s", reason);
		free(reason);
		reason = NULL;
		seen.n = 0;
		hr_state_load_services(path, collect, &seen);
		cr_expect_eq(seen.n, 0, "%s", bad[i]);
	}
}

/* 1024 bytes with every byte from 0x01 to 0x7f (controls, quotes,
 * backslash) and multi-byte UTF-8 up to 4 bytes. */
static void hostile_reason(char *r)
{
	static const char *mb[] = { "\xc3\xa9", "\xe2\x82\xac",
				    "\xf0\x9f\x98\x80" };
	size_t n = 0, i;

	for (i = 1; i < 0x80; i++)
		r[n++] = (char)i;
	for (i = 0; n + 4 <= HR_MAINT_REASON_MAX; i++) {
		memcpy(r + n, mb[i % 3], strlen(mb[i % 3]));
		n += strlen(mb[i % 3]);
	}
	while (n < HR_MAINT_REASON_MAX)
		r[n++] = '\\';
	r[n] = '\0';
}

Test(state, max_length_reason_of_every_kind_round_trips)
{
	char path[300], r[HR_MAINT_REASON_MAX + 1], *reason = NULL;

	hostile_reason(r);
	cr_assert_eq(strlen(r), HR_MAINT_REASON_MAX);
	snprintf(path, sizeof(path), "%s/s.json", dir);
	cr_assert_eq(hr_state_save(path, true, r), 0);
	cr_assert_eq(hr_state_load(path, &reason), 1);
	cr_expect_str_eq(reason, r);
	free(reason);
}

/* Written by hand, far over the limit and over the old 8 KiB buffer: read,
 * cut before a character, still in maintenance. */
Test(state, hand_written_20k_reason_is_read_and_cut)
{
	size_t n = 20 * 1024, i;
	char path[300], *text = malloc(n + 100), *reason = NULL;
	int o;

	cr_assert_not_null(text);
	o = sprintf(text, "{\"maintenance\": {\"enabled\": true, \"reason\": \"x");
	for (i = 0; i < n / 3; i++)
		o += sprintf(text + o, "\xe2\x82\xac"); /* 3 bytes: 1024 = 1 + 341*3 */
	o += sprintf(text + o, "\"}}\n");
	snprintf(path, sizeof(path), "%s/big.json", dir);
	write_file(path, text, (size_t)o);
	cr_assert_eq(hr_state_load(path, &reason), 1);
	cr_expect_eq(strlen(reason), HR_MAINT_REASON_MAX);
	cr_expect(!strncmp(reason, strstr(text, "\"x") + 1, HR_MAINT_REASON_MAX),
		  "a prefix");
	free(reason);
	free(text);
}

Test(state, file_over_the_limit_keeps_maintenance)
{
	size_t n = HR_STATE_FILE_MAX + 10;
	char path[300], *text = malloc(n), *reason = NULL;

	cr_assert_not_null(text);
	memset(text, ' ', n);
	memcpy(text, "{\"maintenance\": {\"enabled\": false}}", 35);
	snprintf(path, sizeof(path), "%s/huge.json", dir);
	write_file(path, text, n);
	cr_assert_eq(hr_state_load(path, &reason), 1);
	cr_expect(reason && strstr(reason, "unreadable"), "%s", reason);
	free(reason);
	free(text);
}

Test(state, save_into_a_missing_directory_fails)
{
	char path[300];

	snprintf(path, sizeof(path), "%s/no/such/dir/s.json", dir);
	cr_expect_lt(hr_state_save(path, true, "x"), 0);
}
