/*
 * test_journal.c - the decision journal (lib/journal.c): the ring's bounds,
 * wrap-around and resize keeping the newest, the context callback, the
 * JSON shape, the excerpt that never cuts a UTF-8 sequence; the decisions
 * regcore records by itself (register, deregister, the grace period,
 * shutdown, hr_regcore_decide); and the dry-run backend (regcore_dry.c):
 * the same decisions with dry_run set, what it reports, done() once,
 * without an HTTP engine at all (nothing can be sent).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <ev.h>

#include "healthreg/journal.h"
#include "healthreg/log.h"
#include "healthreg/regcore.h"
#include "loop.h"

static struct hr_journal_entry entry(enum hr_decision d, const char *why)
{
	struct hr_journal_entry e;

	memset(&e, 0, sizeof(e));
	e.decision = d;
	snprintf(e.service, sizeof(e.service), "web-1");
	snprintf(e.backend, sizeof(e.backend), "etcd");
	snprintf(e.why, sizeof(e.why), "%s", why);
	return e;
}

static void quiet(void)
{
	hr_log_setup(HR_LOG_ERROR, HR_LOG_LOGFMT, stderr);
}

TestSuite(journal, .init = quiet);

Test(journal, off_keeps_nothing)
{
	struct hr_journal j;
	struct hr_journal_entry e = entry(HR_DECISION_REGISTER, "x");

	hr_journal_init(&j);
	cr_assert_null(hr_journal_record(&j, &e));
	cr_assert_eq(hr_journal_count(&j), 0);
	cr_assert_null(hr_journal_at(&j, 0));
	cr_assert_eq(j.seq, 1); /* counted (and logged) all the same */
	cr_assert_null(hr_journal_record(NULL, &e)); /* logged only */
	cr_assert_eq(hr_journal_count(NULL), 0);
	hr_journal_dispose(&j);
}

Test(journal, bounds)
{
	struct hr_journal j;

	hr_journal_init(&j);
	cr_assert_eq(hr_journal_resize(&j, HR_JOURNAL_SIZE_MAX + 1), -ERANGE);
	cr_assert_eq(j.cap, 0);
	cr_assert_eq(hr_journal_resize(&j, HR_JOURNAL_SIZE_MAX), 0);
	cr_assert_eq(j.cap, HR_JOURNAL_SIZE_MAX);
	cr_assert_eq(hr_journal_resize(&j, 1), 0);
	cr_assert_eq(hr_journal_resize(&j, 0), 0);
	cr_assert_null(j.v);
	hr_journal_dispose(&j);
}

Test(journal, wraps_keeping_the_newest_in_order)
{
	struct hr_journal j;
	const struct hr_journal_entry *got;
	char why[16];
	size_t i;

	hr_journal_init(&j);
	cr_assert_eq(hr_journal_resize(&j, 4), 0);
	for (i = 1; i <= 3; i++) {
		struct hr_journal_entry e;

		snprintf(why, sizeof(why), "%zu", i);
		e = entry(HR_DECISION_REGISTER, why);
		got = hr_journal_record(&j, &e);
		cr_assert_eq(got->seq, i);
		cr_assert_str_eq(got->why, why);
	}
	cr_assert_eq(hr_journal_count(&j), 3);
	cr_assert_eq(hr_journal_at(&j, 0)->seq, 1);
	for (i = 4; i <= 11; i++) {
		struct hr_journal_entry e;

		snprintf(why, sizeof(why), "%zu", i);
		e = entry(HR_DECISION_DEREGISTER, why);
		hr_journal_record(&j, &e);
	}
	cr_assert_eq(hr_journal_count(&j), 4);
	for (i = 0; i < 4; i++)
		cr_assert_eq(hr_journal_at(&j, i)->seq, 8 + i, "at %zu: %llu",
			     i, (unsigned long long)hr_journal_at(&j, i)->seq);
	cr_assert_null(hr_journal_at(&j, 4));
	cr_assert(hr_journal_at(&j, 3)->time > 0);

	/* Shrink: the newest two stay, oldest first. */
	cr_assert_eq(hr_journal_resize(&j, 2), 0);
	cr_assert_eq(hr_journal_count(&j), 2);
	cr_assert_eq(hr_journal_at(&j, 0)->seq, 10);
	cr_assert_eq(hr_journal_at(&j, 1)->seq, 11);
	/* Grow: all kept, and the ring goes on from there. */
	cr_assert_eq(hr_journal_resize(&j, 3), 0);
	{
		struct hr_journal_entry e = entry(HR_DECISION_SHUTDOWN, "s");

		hr_journal_record(&j, &e);
		hr_journal_record(&j, &e);
	}
	cr_assert_eq(hr_journal_count(&j), 3);
	cr_assert_eq(hr_journal_at(&j, 0)->seq, 11);
	cr_assert_eq(hr_journal_at(&j, 2)->seq, 13);
	cr_assert_eq(hr_journal_at(&j, 2)->decision, HR_DECISION_SHUTDOWN);
	hr_journal_dispose(&j);
}

static void fill(void *payload, struct hr_journal_entry *e)
{
	int *calls = payload;

	(*calls)++;
	e->have_aggregate = true;
	e->aggregate = HR_STATUS_CRITICAL;
	snprintf(e->output, sizeof(e->output), "1 critical: db");
	e->n_checks = 1;
	snprintf(e->checks[0].name, sizeof(e->checks[0].name), "db");
	e->checks[0].status = HR_STATUS_CRITICAL;
	e->checks[0].changed = true;
	e->checks[0].was = HR_STATUS_PASSING;
	snprintf(e->checks[0].output, sizeof(e->checks[0].output),
		 "connection refused");
}

Test(journal, context_and_json)
{
	struct hr_journal j;
	struct hr_journal_entry e = entry(HR_DECISION_DEREGISTER, "gone");
	const struct hr_journal_entry *got;
	int calls = 0;
	char text[256], *s;
	cJSON *o, *c;

	hr_journal_init(&j);
	hr_journal_resize(&j, 8);
	hr_journal_set_context(&j, fill, &calls);
	e.have_status = true;
	e.status = HR_STATUS_CRITICAL;
	e.dry_run = true;
	got = hr_journal_record(&j, &e);
	cr_assert_eq(calls, 1);
	hr_journal_checks_text(got, text, sizeof(text));
	cr_assert_str_eq(text, "db=critical (was passing): connection refused");
	o = hr_journal_entry_json(got);
	cr_assert_not_null(o);
	cr_assert_str_eq(cJSON_GetObjectItem(o, "decision")->valuestring,
			 "deregister");
	cr_assert_str_eq(cJSON_GetObjectItem(o, "service")->valuestring,
			 "web-1");
	cr_assert_str_eq(cJSON_GetObjectItem(o, "status")->valuestring,
			 "critical");
	cr_assert_str_eq(cJSON_GetObjectItem(o, "aggregate")->valuestring,
			 "critical");
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(o, "dry_run")));
	cr_assert_eq(cJSON_GetObjectItem(o, "seq")->valuedouble, 1);
	cr_assert_eq(strlen(cJSON_GetObjectItem(o, "time")->valuestring),
		     strlen("2026-01-01T00:00:00.000Z"));
	c = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "checks"), 0);
	cr_assert_str_eq(cJSON_GetObjectItem(c, "name")->valuestring, "db");
	cr_assert_str_eq(cJSON_GetObjectItem(c, "was")->valuestring,
			 "passing");
	s = cJSON_PrintUnformatted(o);
	cr_assert(strstr(s, "\"output\":\"connection refused\""), "%s", s);
	cJSON_free(s);
	cJSON_Delete(o);
	/* n_checks beyond the array is clamped. */
	hr_journal_set_context(&j, NULL, NULL);
	got = hr_journal_record(&j, &e);
	cr_assert_eq(got->n_checks, 0);
	cr_assert_not(got->have_aggregate);
	hr_journal_dispose(&j);
	cr_assert_str_eq(hr_decision_name(HR_DECISION_KEPT), "kept_by_floor");
	cr_assert_str_eq(hr_decision_name((enum hr_decision)99), "unknown");
}

Test(journal, excerpt_is_one_line_and_whole_utf8)
{
	char b[8];

	hr_journal_excerpt(b, sizeof(b), "ab\ncd");
	cr_assert_str_eq(b, "ab");
	hr_journal_excerpt(b, sizeof(b), NULL);
	cr_assert_str_eq(b, "");
	/* "abcde" + a 3-byte sequence: it does not fit in 7, so it goes. */
	hr_journal_excerpt(b, sizeof(b), "abcde\xe2\x82\xac");
	cr_assert_str_eq(b, "abcde");
	hr_journal_excerpt(b, sizeof(b), "ab\xe2\x82\xac");
	cr_assert_str_eq(b, "ab\xe2\x82\xac");
	hr_journal_excerpt(b, sizeof(b), "a\xff" "b");
	cr_assert_str_eq(b, "a?b");
}

/* ---- what regcore records ----------------------------------------------- */

static struct ev_loop *loop;

static void loop_setup(void)
{
	quiet();
	loop = ev_loop_new(EVFLAG_AUTO);
}

static void loop_teardown(void)
{
	ev_loop_destroy(loop);
}

TestSuite(journal_core, .init = loop_setup, .fini = loop_teardown,
	  .timeout = 20);

static bool nop_reply(struct hr_regcore *c, const struct hr_reg_reply *r)
{
	(void)c;
	(void)r;
	return true;
}

static void nop_kick(struct hr_regcore *c)
{
	(void)c;
}

static const struct hr_regcore_ops nop_ops = { .reply = nop_reply,
					       .kick = nop_kick };

static enum hr_decision last(const struct hr_journal *j)
{
	cr_assert(hr_journal_count(j) > 0);
	return hr_journal_at(j, hr_journal_count(j) - 1)->decision;
}

Test(journal_core, regcore_records_its_decisions)
{
	struct hr_service_spec svc = { .name = "web", .id = "web-1" };
	struct hr_registry_stats stats = { .name = "etcd" };
	struct hr_journal j;
	struct hr_registry_env env = { loop, NULL, &svc, 0, &stats, &j };
	struct hr_regcore c;
	const struct hr_journal_entry *e;

	hr_journal_init(&j);
	hr_journal_resize(&j, 16);
	cr_assert_eq(hr_regcore_init(&c, &nop_ops, &env, 8), 0);
	hr_regcore_grace_setup(&c, 1u << HR_STATUS_PASSING, 150);
	/* A critical start: nothing registered. */
	hr_regcore_status(&c, HR_STATUS_CRITICAL, false);
	e = hr_journal_at(&j, 0);
	cr_assert_eq(e->decision, HR_DECISION_DEREGISTER);
	cr_assert_str_eq(e->service, "web-1");
	cr_assert_str_eq(e->backend, "etcd");
	cr_assert(e->have_status);
	cr_assert_eq(e->status, HR_STATUS_CRITICAL);
	cr_assert(strstr(e->why, "nothing registered"), "%s", e->why);
	cr_assert_not(e->dry_run);
	hr_regcore_status(&c, HR_STATUS_PASSING, false);
	cr_assert_eq(last(&j), HR_DECISION_REGISTER);
	/* The same status again decides nothing. */
	hr_regcore_status(&c, HR_STATUS_PASSING, false);
	cr_assert_eq(hr_journal_count(&j), 2);
	/* Leaving with a grace period: pending, then cancelled. */
	hr_regcore_status(&c, HR_STATUS_WARNING, false);
	cr_assert_eq(last(&j), HR_DECISION_DEREGISTER_PENDING);
	cr_assert(strstr(hr_journal_at(&j, 2)->why, "150ms"), "%s",
		  hr_journal_at(&j, 2)->why);
	hr_regcore_status(&c, HR_STATUS_PASSING, false);
	cr_assert_eq(last(&j), HR_DECISION_REGISTER);
	cr_assert(strstr(hr_journal_at(&j, 3)->why, "stays registered"));
	/* ... and over: deregister from the timer. */
	hr_regcore_status(&c, HR_STATUS_CRITICAL, false);
	cr_assert_eq(last(&j), HR_DECISION_DEREGISTER_PENDING);
	hr_test_run_for(loop, 0.3);
	cr_assert_eq(last(&j), HR_DECISION_DEREGISTER);
	cr_assert(strstr(hr_journal_at(&j, 5)->why, "deregister_after"));
	cr_assert_eq(hr_journal_count(&j), 6);
	/* A backend's own decision. */
	hr_regcore_decide(&c, HR_DECISION_KEPT,
			  "kept by fleet floor: 1 of 3 healthy");
	cr_assert_eq(last(&j), HR_DECISION_KEPT);
	cr_assert_str_eq(hr_journal_at(&j, 6)->why,
			 "kept by fleet floor: 1 of 3 healthy");
	cr_assert_eq(hr_regcore_shutdown(&c, NULL, NULL, 0), 0);
	cr_assert_eq(last(&j), HR_DECISION_SHUTDOWN);
	cr_assert_eq(hr_regcore_shutdown(&c, NULL, NULL, 0), -EALREADY);
	cr_assert_eq(hr_journal_count(&j), 8);
	hr_regcore_dispose(&c);
	hr_journal_dispose(&j);
}

/* ---- the dry-run backend ------------------------------------------------ */

static void done_cb(void *payload)
{
	(*(int *)payload)++;
}

/* A real backend's maintenance op (never called: the dry run has its
 * own). */
static void real_maint(struct hr_registry *r, bool enable, const char *why)
{
	(void)r;
	(void)enable;
	(void)why;
	cr_assert_fail("the real backend was called");
}

static void dry(bool with_maintenance)
{
	struct hr_registry_ops real = { .abi = HR_REGISTRY_ABI,
					.name = "consul" }, ops;
	struct hr_service_spec svc = { .name = "web" };
	struct hr_registry_stats stats = { .name = "consul" };
	struct hr_journal j;
	/* No HTTP engine: a dry run has nothing to send with. */
	struct hr_registry_env env = { loop, NULL, &svc, 0, &stats, &j };
	struct hr_registry *r = NULL;
	struct hr_err err = { "" };
	cJSON *conf = cJSON_Parse("{\"dry_run\":true,\"address\":\"x\","
				  "\"register_when\":[\"passing\"]}");
	size_t i;
	int done = 0;

	if (with_maintenance)
		real.maintenance = real_maint;
	hr_journal_init(&j);
	hr_journal_resize(&j, 16);
	cr_assert(hr_reg_conf_dry_run(conf));
	hr_regcore_dry_ops(&ops, &real);
	cr_assert_str_eq(ops.name, "consul");
	cr_assert_eq(ops.maintenance != NULL, with_maintenance);
	cr_assert_eq(ops.create(&r, conf, &env, &err), 0, "%s", err.msg);
	cr_assert(stats.dry_run);
	ops.apply(r, HR_STATUS_PASSING, "1 passing");
	cr_assert_eq(stats.state, HR_REGISTRY_REGISTERED);
	/* register_when came from the config: warning leaves. */
	ops.apply(r, HR_STATUS_WARNING, "1 warning");
	cr_assert_eq(stats.state, HR_REGISTRY_DEREGISTERED);
	ops.apply(r, HR_STATUS_PASSING, "1 passing");
	if (with_maintenance) {
		ops.maintenance(r, true, "why");
		cr_assert_eq(stats.state, HR_REGISTRY_MAINTENANCE);
		ops.maintenance(r, false, "");
		cr_assert_eq(stats.state, HR_REGISTRY_REGISTERED);
	}
	ops.shutdown(r, done_cb, &done);
	ops.shutdown(r, done_cb, &done);
	cr_assert_eq(done, 0); /* never from inside the call */
	hr_test_run_for(loop, 0.05);
	cr_assert_eq(done, 1);
	cr_assert_eq(stats.state, HR_REGISTRY_DEREGISTERED);
	cr_assert_eq(stats.writes + stats.errors, 0);
	cr_assert_eq(hr_journal_count(&j), 4);
	for (i = 0; i < hr_journal_count(&j); i++)
		cr_assert(hr_journal_at(&j, i)->dry_run);
	cr_assert_eq(hr_journal_at(&j, 0)->decision, HR_DECISION_REGISTER);
	cr_assert_eq(hr_journal_at(&j, 1)->decision, HR_DECISION_DEREGISTER);
	cr_assert_eq(hr_journal_at(&j, 2)->decision, HR_DECISION_REGISTER);
	cr_assert_eq(hr_journal_at(&j, 3)->decision, HR_DECISION_SHUTDOWN);
	ops.destroy(r);
	cJSON_Delete(conf);
	hr_journal_dispose(&j);
}

Test(journal_core, dry_run_with_a_maintenance_mode)
{
	dry(true);
}

Test(journal_core, dry_run_without_one)
{
	dry(false);
}

Test(journal_core, dry_run_key)
{
	cJSON *a = cJSON_Parse("{\"dry_run\":false}");
	cJSON *b = cJSON_Parse("{}");

	cr_assert_not(hr_reg_conf_dry_run(a));
	cr_assert_not(hr_reg_conf_dry_run(b));
	cJSON_Delete(a);
	cJSON_Delete(b);
}
