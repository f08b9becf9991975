/*
 * client.h - operator commands that talk to a running agent's local API:
 * `healthreg status`, `healthreg maint enable|disable`, `healthreg reload`.
 */
#ifndef HR_CLIENT_H
#define HR_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "healthreg/error.h"

/* maint enable without --reason (as `consul maint -enable`). */
#define HR_MAINT_DEFAULT_REASON \
	"Maintenance mode is enabled for this service, but no reason was " \
	"provided. This is a default message."

struct hr_client_opts {
	const char *api;        /* as typed (hr_client_api_url); NULL = config
				   or default */
	const char *config;     /* -c FILE, to find api_listen/token file */
	const char *token_file; /* --token-file */
	bool json;
};

/**
 * The API's base URL ("http://host:port", written into url) from an
 * address as typed: "host:port", "[v6]:port", ":port" or "port" (host
 * 127.0.0.1), or "http://host:port" with an optional trailing "/". A
 * listen address of every interface (0.0.0.0, [::]) becomes the loopback
 * one. Pure. 0, or -EINVAL with why and what is expected in err.
 */
int hr_client_api_url(const char *addr, char *url, size_t len,
		      struct hr_err *err);

/** Exit code 0/1/2 by the agent's status, 69 when it cannot be reached. */
int hr_client_status(const struct hr_client_opts *o);
/** 0 done; 64 bad --reason or token; 69 unreachable; 70 the agent could
 * not do it (say, its state file cannot be written: nothing changed; or
 * it runs no service of that id). service: one service's own
 * maintenance (its id), NULL: the agent's. */
int hr_client_maint(const struct hr_client_opts *o, bool enable,
		    const char *reason, const char *service);
/** `healthreg why [SERVICE]`: the decision journal, newest first (the
 * service's only when given). 0; 64 token; 69 unreachable. */
int hr_client_why(const struct hr_client_opts *o, const char *service);
/** 0 reloaded; 78 the agent refused the new config (it keeps running the
 * old one); 69 unreachable. */
int hr_client_reload(const struct hr_client_opts *o);

#endif
