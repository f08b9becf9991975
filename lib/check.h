/*
 * check.h - what the generic layer (aggregator.c) and the check kinds
 * (check_http.c, check_tcp.c, check_exec.c) share. A kind starts one run
 * and ends it exactly once with hr__check_finish(); all policy
 * (thresholds, scheduling, caching, truncation) stays in aggregator.c.
 */
#ifndef HR_CHECK_H
#define HR_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include <ev.h>

#include "healthreg/aggregator.h"
#include "healthreg/config.h"

struct hr_check;

struct hr__check_kind {
	/*
	 * Begin one run. Returns 0 (the run ends later with
	 * hr__check_finish) or a negative errno (the run failed to start;
	 * the generic layer records a critical result with err's text).
	 */
	int (*start)(struct hr_check *c, struct hr_err *err);
	/* Abort the run in flight without finishing it. */
	void (*cancel)(struct hr_check *c);
};

extern const struct hr__check_kind hr__check_http;
extern const struct hr__check_kind hr__check_tcp;
extern const struct hr__check_kind hr__check_exec;

/*
 * Close a check's socket with an RST (SO_LINGER 0): nothing is left to
 * send, and thousands of checks leave no TIME_WAIT behind.
 */
void hr__close_rst(int fd);

/*
 * A numeric address (family AF_INET, AF_INET6 or AF_UNSPEC for either)
 * and port into a sockaddr, without the resolver. 0, or -1 when host is
 * not a numeric address of that family.
 */
int hr__sockaddr_numeric(int family, const char *host, unsigned port,
			 struct sockaddr_storage *ss, socklen_t *len);

/* Accessors for kinds. */
const struct hr_check_spec *hr__check_spec(const struct hr_check *c);
struct ev_loop *hr__check_loop(const struct hr_check *c);
struct hr_http *hr__check_http_glue(const struct hr_check *c);
/* Per-run state slot owned by the kind (NULL when idle). */
void **hr__check_run_slot(struct hr_check *c);

/*
 * End the run in flight: raw result and its output (len bytes; total is
 * the full size produced when the kind kept only the head). The kind must
 * have released its per-run state first; c may be freed by the call.
 */
void hr__check_finish(struct hr_check *c, enum hr_status raw,
		      const char *output, size_t len, size_t total);

/*
 * Output truncation, Consul's rule: when total > HR_OUTPUT_MAX, keep the
 * first HR_OUTPUT_MAX bytes and append " ... (captured 4096 of N bytes)".
 * Returns a malloc'ed NUL-terminated string (NULL on allocation failure).
 */
char *hr__output_store(const char *out, size_t len, size_t total);

/* Consul threshold semantics; see docs/checks.md. Pure. */
struct hr__thresh {
	uint32_t successes, failures;
};
void hr__thresh_init(struct hr__thresh *t, const struct hr_check_spec *s);
enum hr_status hr__thresh_apply(struct hr__thresh *t,
				const struct hr_check_spec *s,
				enum hr_status current, enum hr_status raw);

/*
 * Scheduling. Pure. From *ideal (when the previous run was due), draws
 * when the next run is due (+-HR__JITTER around `ival` seconds later, or
 * from now if the check fell behind) into *ideal, and returns the delay
 * from `now` to the start: the point nearest to it on a grid from
 * `phase` (step hr__grid_step() of the window), so that runs of many
 * checks share wakeups. u is a uniform draw in [0, 1).
 */
#define HR__JITTER 0.05
#define HR__GRID_MIN 0.001
double hr__next_run(double *ideal, double ival, double now, double phase,
		    double u);
/* The grid step for a window `width` s wide (>= HR__GRID_MIN): the
 * largest 1, 2 or 5 x 10^k ms that fits. */
double hr__grid_step(double width);

/* Aggregation. Pure. */
struct hr__agg_item {
	const char *name;
	enum hr_status status;
	enum hr_on_failure on_failure;
	int group; /* index into groups or -1 */
};

/* An item's contribution to the aggregate (unknown counts as critical). */
enum hr_status hr__contribution(enum hr_status st, enum hr_on_failure f);
/* A group's contribution, from its passing and warning member counts. */
enum hr_status hr__group_contribution(const struct hr_group_spec *g,
				      size_t passing, size_t warning);

#define HR__SUMMARY_NAMES 10 /* names listed per status */

/*
 * The summary text from per-status counts and the first names (in check
 * order) per status; what hr__aggregate writes, from tallies kept
 * incrementally.
 */
void hr__summary(const size_t count[4],
		 const char *const names[4][HR__SUMMARY_NAMES], char *summary,
		 size_t len);

/*
 * The aggregate of n items under groups, with the stable summary written
 * into summary (always NUL-terminated).
 */
enum hr_status hr__aggregate(const struct hr__agg_item *items, size_t n,
			     const struct hr_group_spec *groups,
			     size_t n_groups, char *summary, size_t len);

#endif
