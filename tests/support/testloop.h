/*
 * testloop.h - loop helpers for the C tests: run a libev loop for a while
 * without blocking forever.
 */
#ifndef HR_TESTLOOP_H
#define HR_TESTLOOP_H

#include <stdbool.h>

#include <ev.h>

/* Run loop for s seconds (a guard timer breaks it). */
void hrt_run_for(struct ev_loop *loop, double s);
/* Run loop in 10 ms steps until *flag is nonzero or timeout seconds
 * passed; returns whether it was set. */
bool hrt_run_until(struct ev_loop *loop, const int *flag, double timeout);

#endif
