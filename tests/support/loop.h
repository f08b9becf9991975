/*
 * loop.h - helpers for C tests that drive a private libev loop against
 * loopback TCP ports.
 */
#ifndef HR_TEST_LOOP_H
#define HR_TEST_LOOP_H

#include <stdbool.h>

#include <ev.h>

/*
 * The factor by which a test widens its timing bounds: $HR_TEST_TIME_SCALE
 * (scripts/valgrind.sh sets it, as everything runs many times slower
 * under memcheck), 1 when unset or not a number >= 1.
 */
double hr_test_time_scale(void);

/* Run loop for at most secs, or until something breaks it. */
void hr_test_run_for(struct ev_loop *loop, double secs);
/* Run loop in 10 ms steps until *flag is nonzero or timeout seconds
 * passed; returns whether it was set. */
bool hr_test_run_until(struct ev_loop *loop, const int *flag, double timeout);

/*
 * A listening socket on 127.0.0.1 with a large backlog, so that connects
 * succeed without accept(); its port in *port. The fd, or -1.
 */
int hr_test_listener(int *port);

/* A 127.0.0.1 port nobody listens on (bound, then closed), or -1. */
int hr_test_closed_port(void);

#endif
