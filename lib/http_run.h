/*
 * http_run.h - what the http check kind (check_http.c) and its two
 * engines (http_direct.c, http_curl.c) share: the head of every engine's
 * per-run state, and how an engine hands its result back. A header of
 * its own (no .c), so that the kind includes the engines' headers and
 * the engines include only this one.
 *
 *   check_http.c --start--> http_direct.c --+
 *        |                                  +--> run->done(c, result)
 *        +-------start--> http_curl.c ------+      (check_http.c: follow a
 *                                                   handed-over redirect on
 *                                                   libcurl, or
 *                                                   hr__http_report())
 * The engines do not know each other; both use http_parse.h (classes,
 * URL split) and http_report.h (the result).
 *
 * Lifetime: the check's run slot (hr__check_run_slot) points at the
 * struct hr__http_run embedded in the engine's state while a run is in
 * flight, else NULL. To end a run an engine clears the slot, releases its
 * socket and watchers, calls run->done() (after which the check may be
 * gone) and then frees its own memory without touching the check.
 * engine->cancel() ends a run without calling done.
 */
#ifndef HR_HTTP_RUN_H
#define HR_HTTP_RUN_H

#include "check.h"

struct hr__http_result;
struct hr__http_run;

/* The run is over (slot already cleared); see the lifetime rule above. */
typedef void (*hr__http_done_cb)(struct hr_check *c,
				 const struct hr__http_result *res);

struct hr__http_engine {
	const char *name;
	/* Abort the run without calling done; clears the slot, frees it. */
	void (*cancel)(struct hr__http_run *run);
};

/* The first thing in every engine's per-run state (container_of back). */
struct hr__http_run {
	const struct hr__http_engine *engine;
	struct hr_check *c;
	hr__http_done_cb done;
};

#endif
