/*
 * http.h - libcurl's multi interface driven by a libev loop. One struct
 * hr_http per loop; HTTP checks and the registry backends share it, so
 * nothing ever blocks the loop.
 */
#ifndef HEALTHREG_HTTP_H
#define HEALTHREG_HTTP_H

#include <stdbool.h>

#include <curl/curl.h>
#include <ev.h>

#include "healthreg/error.h"

struct hr_http;

/*
 * Called from the loop once a transfer has finished (rc is the transfer's
 * CURLcode). The easy handle is already detached from the multi handle and
 * belongs to the caller again; the callback may start new transfers.
 */
typedef void (*hr_http_done_cb)(CURL *easy, CURLcode rc, void *payload);

/** Create the glue for loop. Free with hr_http_free(). */
int hr_http_new(struct hr_http **out, struct ev_loop *loop,
		struct hr_err *err);

/** Abort every transfer (no callbacks), release pooled handles. NULL-safe. */
void hr_http_free(struct hr_http *h);

/**
 * Start a transfer on a configured easy handle. The handle stays the
 * caller's; do not touch it until cb runs or hr_http_cancel(). Sets
 * CURLOPT_PRIVATE, CURLOPT_NOSIGNAL and CURLOPT_QUICK_EXIT (a transfer
 * that ends mid-lookup, by timeout or cancel, never waits for libcurl's
 * resolver thread). Returns 0 or a negative errno.
 */
int hr_http_start(struct hr_http *h, CURL *easy, hr_http_done_cb cb,
		  void *payload);

/**
 * hr_http_start() in the lane named key (copied; a registry's origin):
 * at most max transfers of one lane are in the multi handle at once (the
 * latest max given wins; 0 counts as 1). The others wait, in the order
 * they were started, an urgent one ahead of every waiting transfer that
 * is not urgent, and start as earlier ones finish, before those
 * transfers' callbacks run (so a callback's next transfer queues behind
 * them). A waiting transfer's timeouts start when it starts. One that
 * libcurl then refuses gets CURLE_OUT_OF_MEMORY from the loop.
 * hr_http_cancel() works on a waiting transfer too. key NULL: no lane,
 * as hr_http_start(). Returns 0 or a negative errno.
 */
int hr_http_start_lane(struct hr_http *h, CURL *easy, hr_http_done_cb cb,
		       void *payload, const char *key, unsigned max,
		       bool urgent);

/** Stop a started transfer without calling its callback. Idempotent. */
void hr_http_cancel(struct hr_http *h, CURL *easy);

/**
 * A clean easy handle from the pool (or a new one); NULL on allocation
 * failure. Return it with hr_http_easy_put(), which resets it.
 */
CURL *hr_http_easy_get(struct hr_http *h);
void hr_http_easy_put(struct hr_http *h, CURL *easy);

/** Transfers in flight (for tests and metrics). */
unsigned hr_http_active(const struct hr_http *h);
/** Transfers waiting in a lane (for tests and metrics). */
unsigned hr_http_waiting(const struct hr_http *h);

#endif
