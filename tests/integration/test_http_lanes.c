/*
 * hr_http_start_lane(): at most max transfers of one lane at once, the
 * rest waiting in order (urgent ones first), cancel of a waiting or a
 * running one, and transfers without a lane unaffected. The server is on
 * the test's own loop: it answers each request 30 ms after reading it and
 * counts the requests it holds at once.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "healthreg/http.h"
#include "loop.h"

#define MAXC 64

struct conn {
	ev_io io;
	ev_timer reply;
	int fd;
	int used;
	char buf[4096];
	size_t len;
};

static struct ev_loop *loop;
static struct hr_http *http;
static int lfd, port;
static ev_io accept_io;
static struct conn conns[MAXC];
static int holding, max_holding, served;

/* Transfers: which finished, in which order, with which result. */
static int order[MAXC], n_done;
static long codes[MAXC];
static CURL *easies[MAXC];

static void reply_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	struct conn *c = (struct conn *)((char *)w -
					 offsetof(struct conn, reply));
	static const char ok[] =
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

	(void)l;
	(void)revents;
	cr_assert_eq(write(c->fd, ok, sizeof(ok) - 1), (ssize_t)sizeof(ok) - 1);
	holding--;
	served++;
}

static void read_cb(struct ev_loop *l, ev_io *w, int revents)
{
	struct conn *c = (struct conn *)w;
	ssize_t n;

	(void)revents;
	n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
	if (n <= 0) {
		ev_io_stop(l, &c->io);
		ev_timer_stop(l, &c->reply);
		if (ev_is_active(&c->reply))
			holding--;
		close(c->fd);
		c->used = 0;
		return;
	}
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	if (strstr(c->buf, "\r\n\r\n")) {
		c->len = 0;
		holding++;
		if (holding > max_holding)
			max_holding = holding;
		ev_timer_set(&c->reply, 0.03, 0.);
		ev_timer_start(l, &c->reply);
	}
}

static void accept_cb(struct ev_loop *l, ev_io *w, int revents)
{
	int fd = accept(w->fd, NULL, NULL);
	int i;

	(void)revents;
	if (fd < 0)
		return;
	for (i = 0; i < MAXC && conns[i].used; i++)
		;
	cr_assert_lt(i, MAXC);
	memset(&conns[i], 0, sizeof(conns[i]));
	conns[i].used = 1;
	conns[i].fd = fd;
	ev_io_init(&conns[i].io, read_cb, fd, EV_READ);
	ev_timer_init(&conns[i].reply, reply_cb, 0., 0.);
	ev_io_start(l, &conns[i].io);
}

static void done_cb(CURL *easy, CURLcode rc, void *payload)
{
	int id = (int)(intptr_t)payload;

	codes[id] = -1;
	if (rc == CURLE_OK)
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &codes[id]);
	order[n_done++] = id;
	hr_http_easy_put(http, easy);
	easies[id] = NULL;
}

static void setup(void)
{
	struct hr_err err = { "" };

	loop = ev_loop_new(EVFLAG_AUTO);
	cr_assert_not_null(loop);
	cr_assert_eq(hr_http_new(&http, loop, &err), 0, "%s", err.msg);
	lfd = hr_test_listener(&port);
	cr_assert(lfd >= 0);
	ev_io_init(&accept_io, accept_cb, lfd, EV_READ);
	ev_io_start(loop, &accept_io);
	holding = max_holding = served = n_done = 0;
	memset(codes, 0, sizeof(codes));
	memset(easies, 0, sizeof(easies));
}

static void teardown(void)
{
	int i;

	for (i = 0; i < MAXC; i++)
		if (easies[i]) {
			hr_http_cancel(http, easies[i]);
			hr_http_easy_put(http, easies[i]);
		}
	hr_http_free(http);
	for (i = 0; i < MAXC; i++)
		if (conns[i].used) {
			ev_io_stop(loop, &conns[i].io);
			ev_timer_stop(loop, &conns[i].reply);
			close(conns[i].fd);
			conns[i].used = 0;
		}
	ev_io_stop(loop, &accept_io);
	close(lfd);
	ev_loop_destroy(loop);
}

static void start(int id, const char *lane, unsigned max, bool urgent)
{
	char url[64];
	CURL *e = hr_http_easy_get(http);

	cr_assert_not_null(e);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/r%d", port, id);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
	easies[id] = e;
	if (lane)
		cr_assert_eq(hr_http_start_lane(http, e, done_cb,
						(void *)(intptr_t)id, lane, max,
						urgent), 0);
	else
		cr_assert_eq(hr_http_start(http, e, done_cb,
					   (void *)(intptr_t)id), 0);
}

static void run_until_done(int n)
{
	double end = ev_time() + 10 * hr_test_time_scale();

	while (n_done < n && ev_time() < end)
		hr_test_run_for(loop, 0.01);
	cr_assert_eq(n_done, n, "%d of %d transfers finished", n_done, n);
}

TestSuite(http_lanes, .init = setup, .fini = teardown);

Test(http_lanes, at_most_max_at_once_all_finish_in_order)
{
	int i;

	for (i = 0; i < 20; i++)
		start(i, "http://127.0.0.1:1", 3, false);
	cr_expect_eq(hr_http_active(http), 3);
	cr_expect_eq(hr_http_waiting(http), 17);
	run_until_done(20);
	cr_expect_eq(max_holding, 3, "the server held %d at once", max_holding);
	cr_expect_eq(served, 20);
	for (i = 0; i < 20; i++)
		cr_expect_eq(codes[i], 200, "transfer %d: %ld", i, codes[i]);
	cr_expect_eq(hr_http_waiting(http), 0);
	cr_expect_eq(hr_http_active(http), 0);
}

Test(http_lanes, one_at_a_time_in_order_urgent_first)
{
	static const int want[] = { 0, 6, 7, 1, 2, 3, 4, 5 };
	int i;

	/* With room for one, the finishing order is the starting order:
	 * 0 was running; 6 and 7 (urgent, in their order) go next. */
	for (i = 0; i < 6; i++)
		start(i, "L", 1, false);
	start(6, "L", 1, true);
	start(7, "L", 1, true);
	run_until_done(8);
	for (i = 0; i < 8; i++)
		cr_expect_eq(order[i], want[i], "%d-th: %d, not %d", i,
			     order[i], want[i]);
	cr_expect_eq(max_holding, 1);
}

Test(http_lanes, cancel_waiting_and_running)
{
	start(0, "L", 1, false);
	start(1, "L", 1, false);
	start(2, "L", 1, false);
	cr_expect_eq(hr_http_waiting(http), 2);
	/* A waiting one: never called back, never sent. */
	hr_http_cancel(http, easies[1]);
	hr_http_easy_put(http, easies[1]);
	easies[1] = NULL;
	cr_expect_eq(hr_http_waiting(http), 1);
	/* The running one: its room goes to 2 at once. */
	hr_http_cancel(http, easies[0]);
	hr_http_easy_put(http, easies[0]);
	easies[0] = NULL;
	cr_expect_eq(hr_http_waiting(http), 0);
	cr_expect_eq(hr_http_active(http), 1);
	run_until_done(1);
	cr_expect_eq(order[0], 2);
	cr_expect_eq(codes[2], 200);
	hr_test_run_for(loop, 0.1);
	cr_expect_eq(n_done, 1, "the cancelled ones are not called back");
}

Test(http_lanes, lanes_are_separate_and_no_lane_is_unlimited)
{
	int i;

	for (i = 0; i < 4; i++)
		start(i, "A", 1, false);
	for (i = 4; i < 8; i++)
		start(i, "B", 1, false);
	for (i = 8; i < 14; i++)
		start(i, NULL, 0, false);
	/* One of A, one of B, every one without a lane. */
	cr_expect_eq(hr_http_active(http), 8);
	cr_expect_eq(hr_http_waiting(http), 6);
	run_until_done(14);
	for (i = 0; i < 14; i++)
		cr_expect_eq(codes[i], 200);
}

Test(http_lanes, a_callback_next_request_queues_behind_the_waiting)
{
	/* Like a backend whose reply starts its next request: it must wait
	 * behind what was already waiting, not take the freed room. */
	int i;

	for (i = 0; i < 3; i++)
		start(i, "L", 1, false);
	run_until_done(1);
	start(10, "L", 1, false);
	run_until_done(4);
	cr_expect_eq(order[1], 1);
	cr_expect_eq(order[2], 2);
	cr_expect_eq(order[3], 10);
}
