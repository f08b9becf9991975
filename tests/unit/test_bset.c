/* The agent's backend set (plugin/agent/bset.c) with stand-in backends:
 * a shutdown waits for the backends a reload retired (a renamed
 * instance's old registration) as well as the current ones, up to the
 * retired ones' own deadline. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "bset.h"

#define FAKES 4

/* What each stand-in was told: its done callback, once shut down. */
static struct {
	hr_registry_done_cb done;
	void *payload;
	int destroyed;
} fake[FAKES];
static char handle[FAKES]; /* the stand-ins' struct hr_registry * */

static int fake_index(const struct hr_registry *r)
{
	return (int)((const char *)r - handle);
}

static void fake_shutdown(struct hr_registry *r, hr_registry_done_cb done,
			  void *payload)
{
	fake[fake_index(r)].done = done;
	fake[fake_index(r)].payload = payload;
}

static void fake_destroy(struct hr_registry *r)
{
	fake[fake_index(r)].destroyed++;
}

static const struct hr_registry_ops fake_ops = {
	.abi = HR_REGISTRY_ABI,
	.name = "fake",
	.shutdown = fake_shutdown,
	.destroy = fake_destroy,
};

static struct hr_backend *fake_backend(struct hr_bset *s, int i)
{
	struct hr_backend *b = calloc(1, sizeof(*b));

	cr_assert_not_null(b);
	b->ops = &fake_ops;
	b->r = (struct hr_registry *)&handle[i];
	b->set = s;
	return b;
}

/* One backend installed, then replaced by another with the first
 * retired (within retire_ms). */
static void one_retiring(struct hr_bset *s, struct ev_loop *loop,
			 int64_t retire_ms)
{
	struct hr_bset_fresh fresh = { .n = 1 };

	memset(fake, 0, sizeof(fake));
	hr_bset_init(s, loop, NULL);
	fresh.v[0] = fake_backend(s, 0);
	hr_bset_install(s, &fresh, false, 0);
	fresh.v[0] = fake_backend(s, 1);
	fresh.n = 1;
	hr_bset_install(s, &fresh, true, retire_ms);
	cr_assert_not_null(fake[0].done, "the old one deregisters");
	cr_assert_not_null(s->retiring);
}

static void stopped_cb(void *payload)
{
	(*(int *)payload)++;
}

TestSuite(bset, .timeout = 10);

Test(bset, shutdown_waits_for_the_retiring)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct hr_bset s;
	int stopped = 0, i;

	cr_assert_not_null(loop);
	one_retiring(&s, loop, 10000);
	hr_bset_shutdown(&s, 10000, stopped_cb, &stopped);
	cr_assert_not_null(fake[1].done);
	fake[1].done(fake[1].payload); /* the current one deregistered */
	for (i = 0; i < 10; i++)
		ev_run(loop, EVRUN_NOWAIT);
	cr_expect_eq(stopped, 0, "the retired one still deregisters");
	cr_expect_eq(fake[0].destroyed, 0);
	fake[0].done(fake[0].payload);
	for (i = 0; i < 100 && !stopped; i++)
		ev_run(loop, EVRUN_NOWAIT);
	cr_expect_eq(stopped, 1, "over once the retired one is done");
	cr_expect_eq(fake[0].destroyed, 1);
	cr_expect_null(s.retiring);
	hr_bset_dispose(&s);
	cr_expect_eq(fake[1].destroyed, 1);
	ev_loop_destroy(loop);
}

Test(bset, the_retired_ones_deadline_ends_the_wait)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct hr_bset s;
	int stopped = 0;

	cr_assert_not_null(loop);
	one_retiring(&s, loop, 50);
	hr_bset_shutdown(&s, 60000, stopped_cb, &stopped);
	fake[1].done(fake[1].payload);
	while (!stopped)
		ev_run(loop, EVRUN_ONCE); /* the 50 ms deadline, not 60 s */
	cr_expect_eq(stopped, 1);
	cr_expect_eq(fake[0].destroyed, 1, "destroyed at its deadline");
	hr_bset_dispose(&s);
	ev_loop_destroy(loop);
}
