/*
 * http.c - the only libcurl-multi <-> libev glue.
 *
 *   curl socket callback  -> one ev_io per socket (struct sock)
 *   curl timer callback   -> one ev_timer per loop (restarted, never blocked)
 *   ev_io / ev_timer fire -> curl_multi_socket_action -> drain_done()
 *   drain_done()          -> remove the easy handle, call the owner's cb
 *
 * Completed transfers are collected first and their callbacks run after
 * curl_multi_socket_action returns, so callbacks may start or cancel
 * transfers freely.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "healthreg/http.h"
#include "internal.h"

#if LIBCURL_VERSION_NUM < 0x075700
#error "libcurl >= 7.87.0 needed (CURLOPT_QUICK_EXIT: no waiting for resolver threads)"
#endif

#define POOL_MAX 256

struct lane;

struct xfer {
	struct hr_http *h;
	CURL *easy;
	hr_http_done_cb cb;
	void *payload;
	int done, cancelled;
	int waiting;                 /* in its lane's queue, not started */
	int urgent;                  /* queued ahead of the others */
	struct lane *lane;           /* NULL: hr_http_start() */
	struct xfer *next;           /* free list; a lane's queue */
	struct xfer *aprev, *anext;  /* transfers in the multi handle */
};

/* Transfers to one place (hr_http_start_lane): at most max at once. */
struct lane {
	struct lane *next;
	unsigned busy, max;
	struct xfer *qhead, *qtail;  /* waiting, in start order */
	char key[];
};

struct sock {
	ev_io io;
	struct hr_http *h;
	curl_socket_t fd;
};

struct hr_http {
	struct ev_loop *loop;
	CURLM *multi;
	ev_timer timer;
	unsigned active;
	CURL *pool[POOL_MAX];
	unsigned n_pool;
	struct xfer *free_xfers;
	struct xfer *active_list;
	int in_action;
	struct lane *lanes;
	unsigned waiting;            /* transfers in every lane's queue */
	struct xfer *failed;         /* could not start from a queue */
	ev_timer fail_timer;         /* delivers them from the loop */
};

static void drain_done(struct hr_http *h);

static void socket_action(struct hr_http *h, curl_socket_t fd, int ev)
{
	int running = 0;

	h->in_action++;
	curl_multi_socket_action(h->multi, fd, ev, &running);
	h->in_action--;
	drain_done(h);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sock *s = container_of(w, struct sock, io);
	int ev = 0;

	(void)loop;
	if (revents & EV_READ)
		ev |= CURL_CSELECT_IN;
	if (revents & EV_WRITE)
		ev |= CURL_CSELECT_OUT;
	socket_action(s->h, s->fd, ev);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hr_http *h = container_of(w, struct hr_http, timer);

	(void)loop;
	(void)revents;
	socket_action(h, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_SOCKETFUNCTION */
static int sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
		   void *sockp)
{
	struct hr_http *h = userp;
	struct sock *s = sockp;
	int events = 0;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			ev_io_stop(h->loop, &s->io);
			curl_multi_assign(h->multi, fd, NULL);
			free(s);
		}
		return 0;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return -1;
		s->h = h;
		s->fd = fd;
		curl_multi_assign(h->multi, fd, s);
	} else {
		ev_io_stop(h->loop, &s->io);
	}
	if (what & CURL_POLL_IN)
		events |= EV_READ;
	if (what & CURL_POLL_OUT)
		events |= EV_WRITE;
	ev_io_init(&s->io, io_cb, fd, events);
	ev_io_start(h->loop, &s->io);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: no libcurl calls from here. */
static int multi_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct hr_http *h = userp;

	(void)multi;
	ev_timer_stop(h->loop, &h->timer);
	if (timeout_ms >= 0) {
		ev_timer_set(&h->timer, (double)timeout_ms / 1000.0, 0.);
		ev_timer_start(h->loop, &h->timer);
	}
	return 0;
}

static void release(struct hr_http *h, struct xfer *x)
{
	x->next = h->free_xfers;
	h->free_xfers = x;
}

static void link_active(struct hr_http *h, struct xfer *x)
{
	x->aprev = NULL;
	x->anext = h->active_list;
	if (h->active_list)
		h->active_list->aprev = x;
	h->active_list = x;
	h->active++;
}

static void unlink_active(struct hr_http *h, struct xfer *x)
{
	if (x->aprev)
		x->aprev->anext = x->anext;
	else
		h->active_list = x->anext;
	if (x->anext)
		x->anext->aprev = x->aprev;
	x->aprev = x->anext = NULL;
	h->active--;
}

/* ---- lanes ------------------------------------------------------------ */

static struct lane *lane_get(struct hr_http *h, const char *key)
{
	struct lane *l;
	size_t len = strlen(key);

	for (l = h->lanes; l; l = l->next)
		if (!strcmp(l->key, key))
			return l;
	l = calloc(1, sizeof(*l) + len + 1);
	if (!l)
		return NULL;
	memcpy(l->key, key, len + 1);
	l->next = h->lanes;
	h->lanes = l;
	return l;
}

static void lane_unqueue(struct hr_http *h, struct xfer *x)
{
	struct lane *l = x->lane;
	struct xfer **pp, *prev = NULL;

	for (pp = &l->qhead; *pp; prev = *pp, pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			if (l->qtail == x)
				l->qtail = prev;
			break;
		}
	x->next = NULL;
	x->waiting = 0;
	h->waiting--;
}

static int add_to_multi(struct hr_http *h, struct xfer *x)
{
	if (curl_multi_add_handle(h->multi, x->easy) != CURLM_OK)
		return -EINVAL;
	link_active(h, x);
	if (x->lane)
		x->lane->busy++;
	return 0;
}

/* Start what waits in l while it has room. A transfer libcurl refuses
 * is failed from the loop (fail_timer), never from here: this runs
 * inside hr_http_cancel() and before other transfers' callbacks. */
static void lane_pump(struct hr_http *h, struct lane *l)
{
	while (l->qhead && l->busy < l->max) {
		struct xfer *x = l->qhead;

		lane_unqueue(h, x);
		if (add_to_multi(h, x) < 0) {
			x->next = h->failed;
			h->failed = x;
			ev_timer_start(h->loop, &h->fail_timer);
		}
	}
}

static void fail_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hr_http *h = container_of(w, struct hr_http, fail_timer);

	(void)loop;
	(void)revents;
	while (h->failed) {
		struct xfer *x = h->failed;

		h->failed = x->next;
		curl_easy_setopt(x->easy, CURLOPT_PRIVATE, NULL);
		x->cb(x->easy, CURLE_OUT_OF_MEMORY, x->payload);
		release(h, x);
	}
}

/* Take x off the failed list: true when it was there. */
static bool unfail(struct hr_http *h, struct xfer *x)
{
	struct xfer **pp;

	for (pp = &h->failed; *pp; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			x->next = NULL;
			return true;
		}
	return false;
}

/* A lane transfer left the multi handle: its room goes to the next. */
static void lane_left(struct hr_http *h, struct xfer *x)
{
	if (!x->lane)
		return;
	x->lane->busy--;
	lane_pump(h, x->lane);
}

#define BATCH 64

static void drain_done(struct hr_http *h)
{
	if (h->in_action)
		return;
	for (;;) {
		struct xfer *batch[BATCH];
		CURLcode rcs[BATCH];
		size_t i, n = 0;
		CURLMsg *msg;
		int left;

		while (n < BATCH) {
			struct xfer *x = NULL;

			msg = curl_multi_info_read(h->multi, &left);
			if (!msg)
				break;
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
					  (char **)&x);
			rcs[n] = msg->data.result;
			curl_multi_remove_handle(h->multi, msg->easy_handle);
			unlink_active(h, x);
			x->done = 1;
			batch[n++] = x;
			/* Before the callbacks: what waited goes first, a
			 * callback's next request queues behind it. */
			lane_left(h, x);
		}
		if (!n)
			break;
		/* A callback may cancel a later member of the batch: it is
		 * then marked and skipped. */
		for (i = 0; i < n; i++) {
			struct xfer *x = batch[i];

			if (!x->cancelled) {
				curl_easy_setopt(x->easy, CURLOPT_PRIVATE, NULL);
				x->cb(x->easy, rcs[i], x->payload);
			}
			release(h, x);
		}
	}
}

int hr_http_new(struct hr_http **out, struct ev_loop *loop,
		struct hr_err *err)
{
	struct hr_http *h;
	static int global_done;

	*out = NULL;
	if (!global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return hr_err_set(err, -ENOMEM,
					  "curl_global_init failed");
		global_done = 1;
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		return hr_err_set(err, -ENOMEM, "out of memory");
	h->loop = loop;
	h->multi = curl_multi_init();
	if (!h->multi) {
		free(h);
		return hr_err_set(err, -ENOMEM, "curl_multi_init failed");
	}
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, multi_timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	ev_init(&h->timer, timer_cb);
	ev_timer_init(&h->fail_timer, fail_cb, 0., 0.);
	*out = h;
	return 0;
}

void hr_http_free(struct hr_http *h)
{
	unsigned i;

	if (!h)
		return;
	ev_timer_stop(h->loop, &h->timer);
	ev_timer_stop(h->loop, &h->fail_timer);
	while (h->lanes) {
		struct lane *l = h->lanes;

		while (l->qhead) {
			struct xfer *x = l->qhead;

			lane_unqueue(h, x);
			curl_easy_setopt(x->easy, CURLOPT_PRIVATE, NULL);
			free(x);
		}
		h->lanes = l->next;
		free(l);
	}
	while (h->failed) {
		struct xfer *x = h->failed;

		h->failed = x->next;
		curl_easy_setopt(x->easy, CURLOPT_PRIVATE, NULL);
		free(x);
	}
	while (h->active_list) {
		struct xfer *x = h->active_list;

		curl_multi_remove_handle(h->multi, x->easy);
		curl_easy_setopt(x->easy, CURLOPT_PRIVATE, NULL);
		unlink_active(h, x);
		free(x);
	}
	curl_multi_cleanup(h->multi);
	for (i = 0; i < h->n_pool; i++)
		curl_easy_cleanup(h->pool[i]);
	while (h->free_xfers) {
		struct xfer *x = h->free_xfers;

		h->free_xfers = x->next;
		free(x);
	}
	free(h);
}

static struct xfer *xfer_new(struct hr_http *h, CURL *easy,
			     hr_http_done_cb cb, void *payload)
{
	struct xfer *x = h->free_xfers;

	if (x) {
		h->free_xfers = x->next;
	} else {
		x = malloc(sizeof(*x));
		if (!x)
			return NULL;
	}
	x->h = h;
	x->easy = easy;
	x->cb = cb;
	x->payload = payload;
	x->done = 0;
	x->cancelled = 0;
	x->waiting = 0;
	x->urgent = 0;
	x->lane = NULL;
	x->next = NULL;
	curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	/* A transfer removed mid-lookup leaves libcurl's resolver thread to
	 * finish alone; without this libcurl joins it, on the loop. */
	curl_easy_setopt(easy, CURLOPT_QUICK_EXIT, 1L);
	return x;
}

int hr_http_start(struct hr_http *h, CURL *easy, hr_http_done_cb cb,
		  void *payload)
{
	return hr_http_start_lane(h, easy, cb, payload, NULL, 0, false);
}

int hr_http_start_lane(struct hr_http *h, CURL *easy, hr_http_done_cb cb,
		       void *payload, const char *key, unsigned max,
		       bool urgent)
{
	struct lane *l = NULL;
	struct xfer *x;

	if (key && !(l = lane_get(h, key)))
		return -ENOMEM;
	if (l)
		l->max = max ? max : 1;
	x = xfer_new(h, easy, cb, payload);
	if (!x)
		return -ENOMEM;
	x->lane = l;
	x->urgent = urgent;
	if (l && (l->busy >= l->max || l->qhead)) {
		/* Wait in order; an urgent one goes ahead of every waiting
		 * transfer but behind the urgent ones already waiting. */
		struct xfer **pp = &l->qhead;

		while (*pp && urgent && (*pp)->urgent)
			pp = &(*pp)->next;
		if (!urgent)
			pp = l->qtail ? &l->qtail->next : &l->qhead;
		x->next = *pp;
		*pp = x;
		if (!x->next)
			l->qtail = x;
		x->waiting = 1;
		h->waiting++;
		return 0;
	}
	if (add_to_multi(h, x) < 0) {
		curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
		release(h, x);
		return -EINVAL;
	}
	return 0;
}

void hr_http_cancel(struct hr_http *h, CURL *easy)
{
	struct xfer *x = NULL;

	if (!easy)
		return;
	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
	if (!x)
		return;
	curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
	if (x->done) {
		/* Finished in the batch being delivered: drain_done frees. */
		x->cancelled = 1;
		return;
	}
	if (x->waiting) {
		lane_unqueue(h, x);
		release(h, x);
		return;
	}
	if (unfail(h, x)) {
		release(h, x);
		return;
	}
	curl_multi_remove_handle(h->multi, easy);
	unlink_active(h, x);
	lane_left(h, x);
	release(h, x);
}

CURL *hr_http_easy_get(struct hr_http *h)
{
	if (h->n_pool)
		return h->pool[--h->n_pool];
	return curl_easy_init();
}

void hr_http_easy_put(struct hr_http *h, CURL *easy)
{
	if (!easy)
		return;
	if (h->n_pool < POOL_MAX) {
		curl_easy_reset(easy);
		h->pool[h->n_pool++] = easy;
	} else {
		curl_easy_cleanup(easy);
	}
}

unsigned hr_http_active(const struct hr_http *h)
{
	return h->active;
}

unsigned hr_http_waiting(const struct hr_http *h)
{
	return h->waiting;
}
