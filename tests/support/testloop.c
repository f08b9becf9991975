/*
 * testloop.c - see testloop.h.
 */
#include "testloop.h"

static void stop_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(l, EVBREAK_ONE);
}

void hrt_run_for(struct ev_loop *loop, double s)
{
	ev_timer t;

	ev_timer_init(&t, stop_cb, s, 0.);
	ev_timer_start(loop, &t);
	ev_run(loop, 0);
	ev_timer_stop(loop, &t);
}

bool hrt_run_until(struct ev_loop *loop, const int *flag, double timeout)
{
	double end = ev_time() + timeout;

	while (!*flag && ev_time() < end)
		hrt_run_for(loop, 0.01);
	return *flag != 0;
}
