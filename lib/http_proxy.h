/*
 * http_proxy.h - whether libcurl would reach an http:// URL through a
 * proxy, for the direct engine (http_direct.c): it takes a run only when
 * libcurl would connect directly, and hands every other run to libcurl,
 * so the proxy rule of the http check kind is libcurl's on both engines
 * (docs/checks.md "Proxies").
 */
#ifndef HR_HTTP_PROXY_H
#define HR_HTTP_PROXY_H

#include <stdbool.h>

/* The environment libcurl consults for an http:// URL; NULL or "" when
 * unset (libcurl reads an empty variable as unset). Borrowed strings
 * (getenv's). */
struct hr__http_proxy_env {
	const char *http_proxy;   /* lower case only: libcurl ignores HTTP_PROXY */
	const char *all_proxy, *all_proxy_uc;  /* all_proxy, ALL_PROXY */
	const char *no_proxy, *no_proxy_uc;    /* no_proxy, NO_PROXY */
};

/*
 * Pure: true when libcurl, given env, certainly connects to host (a
 * numeric address as written in the URL, without brackets) directly:
 * no proxy variable is set, or the no_proxy list libcurl picks is "*"
 * or names host exactly. false when a
 * proxy may apply; libcurl then decides (CIDR ranges, blank-separated
 * lists, whose reading differs between libcurl versions, and the rest).
 */
bool hr__http_proxy_none(const char *host,
			 const struct hr__http_proxy_env *env);

/* hr__http_proxy_none() on the process environment, read now (libcurl
 * reads it for every transfer too). */
bool hr__http_proxy_none_env(const char *host);

#endif
