/*
 * api.h - the local HTTP API (libmicrohttpd, driven from the agent's
 * libev loop: MHD's epoll fd is one ev_io, its timeout one ev_timer).
 *
 *   GET  /v1/health[?format=text]     200 passing, 429 warning, 503 critical:
 *                                     the agent, the worst of its services
 *   GET  /v1/health/<service id>      one service (404 when unknown)
 *   GET  /v1/checks/<name>            one check, 404 when unknown, 409 when
 *                                     several services have it
 *   PUT  /v1/checks/<name>/pass|warn|fail[?note=]   feed a ttl check
 *   PUT  /v1/checks/<name>            {"status": ..., "output": ...}
 *   /v1/services/<id>/checks/<name>[/pass|warn|fail]  the same, addressed
 *                                     by service
 *   GET  /v1/maintenance, PUT /v1/maintenance?enable=true|false&reason=
 *                                     [&service=ID: that service alone]
 *   PUT  /v1/reload                   re-read the config
 *   GET  /metrics                     Prometheus text format
 * With a token configured, writes and GET /v1/checks/<name> need
 * "Authorization: Bearer <token>"; /v1/health without it answers the code
 * and the status word but no check names or outputs.
 */
#ifndef HR_API_H
#define HR_API_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>

#include "healthreg/aggregator.h"
#include "healthreg/journal.h"
#include "healthreg/registry.h"

#define HR_API_DEFAULT_LISTEN "127.0.0.1:9190"
#define HR_API_BODY_MAX (64 * 1024)
/* Longest check name in a path (414 beyond). */
#define HR_API_NAME_MAX 1024
/* Connections held at most, and seconds a connection may stay idle
 * (which bounds how long a request may take to arrive). */
#define HR_API_CONN_MAX 1024
#define HR_API_IDLE_TIMEOUT 5
/* An API token is one line; anything longer is not a token. */
#define HR_API_TOKEN_MAX 4095

/*
 * What the API needs from the agent. Called on the loop, one request at a
 * time. Strings a callback returns (a service's, the maintenance reason)
 * are the agent's, valid until the next call into the host: reload may
 * free the config they point into. metrics returns text the API frees.
 * A callback frees nothing of the API or its connection.
 */
/* One registry backend as GET /v1/health shows it; borrowed for the
 * request (the agent points into its backend records, bset.h). */
struct hr_api_registry {
	const char *name;
	const struct hr_registry_stats *stats;
};

#define HR_API_REGISTRIES_MAX 8

/* One service of the agent, borrowed for the request. */
struct hr_api_service {
	const char *id;
	const char *name;
	struct hr_agg *agg;
	struct hr_api_registry regs[HR_API_REGISTRIES_MAX];
	size_t n_regs;
};

struct hr_api_host {
	/* The agent's services (at least one), in config order. */
	size_t (*n_services)(void *ctx);
	void (*service)(void *ctx, size_t i, struct hr_api_service *out);
	/* Maintenance of the agent (service NULL) or of one service (by id:
	 * the agent's, or its own). An unknown service: false. */
	bool (*maint_get)(void *ctx, const char *service, const char **reason);
	/* The same service argument. 0, -EMSGSIZE (reason too long),
	 * -ENOENT (unknown service), or another -errno with why in msg
	 * (maintenance unchanged). */
	int (*maint_set)(void *ctx, const char *service, bool enable,
			 const char *reason, char *msg, size_t len);
	/* 0, or -EINVAL with the errors in msg. */
	int (*reload)(void *ctx, char *msg, size_t len);
	char *(*metrics)(void *ctx); /* malloc'ed text */
	/* The decision journal (GET /v1/decisions). May be NULL. */
	const struct hr_journal *(*journal)(void *ctx);
	void *ctx;
};

struct hr_api;

/**
 * Listen on addr ("127.0.0.1:9190", "[::1]:9190", port 0 = any free port).
 * token may be NULL (writes are open); it is copied, and the copy wiped
 * when the API is freed. host is copied; host->ctx must outlive the API.
 * Returns 0, -EINVAL (addr is not an IP address and port), or the bind's
 * -errno (-EADDRINUSE: a port is never shared, not even with another
 * healthreg; SO_REUSEADDR lets a restart bind over TIME_WAIT).
 */
int hr_api_new(struct hr_api **out, struct ev_loop *loop, const char *addr,
	       const char *token, const struct hr_api_host *host,
	       struct hr_err *err);

/**
 * Would hr_api_new() accept addr (an IP address and port; nothing is
 * bound)? 0 or -EINVAL with "agent.api_listen: ..." in err.
 */
int hr_api_check_listen(const char *addr, struct hr_err *err);

/** The port actually bound. */
int hr_api_port(const struct hr_api *api);

/** Close every connection and the listener. NULL-safe. */
void hr_api_free(struct hr_api *api);

/** A registry's state word for status and health (see registry_json()). */
const char *hr_api_registry_state(const struct hr_registry_stats *s);

/** Split "host:port" / "[v6]:port". Returns 0 or -EINVAL. */
int hr_api_parse_addr(const char *addr, char *host, size_t hlen, int *port);

#endif
