/*
 * client.h - operator commands that talk to a running agent's local API:
 * `healthreg status`, `healthreg maint enable|disable`, `healthreg reload`.
 */
#ifndef HR_CLIENT_H
#define HR_CLIENT_H

#include <stdbool.h>

struct hr_client_opts {
	const char *api;        /* host:port; NULL = config or default */
	const char *config;     /* -c FILE, to find api_listen/token file */
	const char *token_file; /* --token-file */
	bool json;
};

/** Exit code 0/1/2 by the agent's status, 69 when it cannot be reached. */
int hr_client_status(const struct hr_client_opts *o);
int hr_client_maint(const struct hr_client_opts *o, bool enable,
		    const char *reason);
int hr_client_reload(const struct hr_client_opts *o);

#endif
