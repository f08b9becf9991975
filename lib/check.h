/*
 * check.h - what the check kinds (check_http.c, check_tcp.c,
 * check_exec.c, check_grpc.c) and the check core (check_core.c) share. A kind starts
 * one run and ends it exactly once with hr__check_finish(); all policy
 * (thresholds, scheduling, caching, truncation) stays in the core.
 *
 * Lifetimes. The aggregator owns every struct hr_check and its spec; a
 * kind borrows them for the run in flight. The kind owns its per-run
 * state behind hr__check_run_slot() from start() until it calls
 * hr__check_finish() or cancel() returns, and must have released it by
 * then (the core clears the slot). hr__check_finish() calls the
 * aggregator's listeners, which may remove the check: after the call
 * the kind must not touch the check, its spec or anything it borrowed
 * from them. cancel() is called by the core only, never from inside
 * hr__check_finish() for the same run, and must not finish the run.
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
	 * the core records a critical result with err's text).
	 */
	int (*start)(struct hr_check *c, struct hr_err *err);
	/* Abort the run in flight without finishing it. */
	void (*cancel)(struct hr_check *c);
};

extern const struct hr__check_kind hr__check_http;
extern const struct hr__check_kind hr__check_tcp;
extern const struct hr__check_kind hr__check_exec;
extern const struct hr__check_kind hr__check_grpc;

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

/* Accessors for kinds: the check's spec, loop and HTTP glue, borrowed
 * (valid while the check exists: at least until the run ends). */
const struct hr_check_spec *hr__check_spec(const struct hr_check *c);
struct ev_loop *hr__check_loop(const struct hr_check *c);
struct hr_http *hr__check_http_glue(const struct hr_check *c);
/* Per-run state slot owned by the kind (NULL when idle). */
void **hr__check_run_slot(struct hr_check *c);

/*
 * End the run in flight: raw result and its output (len bytes; total is
 * the full size produced when the kind kept only the head; output is
 * copied). The kind must have released its per-run state first; c may be
 * freed by the call: touch nothing of it afterwards. Order inside: record
 * the result, schedule the next run, then tell listeners (docs/checks.md).
 */
void hr__check_finish(struct hr_check *c, enum hr_status raw,
		      const char *output, size_t len, size_t total);

/*
 * Output truncation, Consul's rule: when total > HR_OUTPUT_MAX, keep the
 * first HR_OUTPUT_MAX bytes and append " ... (captured 4096 of N bytes)".
 * Returns a malloc'ed NUL-terminated string (NULL on allocation failure).
 */
char *hr__output_store(const char *out, size_t len, size_t total);

#endif
