/*
 * http_proxy.c - libcurl's proxy environment as the direct HTTP engine
 * needs it (http_proxy.h). libcurl (url.c, noproxy.c) picks for an
 * http:// URL: no_proxy, else NO_PROXY, and connects directly when it
 * matches the host; otherwise http_proxy (never HTTP_PROXY), else
 * all_proxy, else ALL_PROXY. A variable set to "" counts as unset
 * (curl_getenv). Only the answers that every libcurl version gives alike
 * are decided here.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_proxy.h"

/* host is the canonical text of its address: libcurl may normalise
 * another spelling before it matches no_proxy. */
static bool host_canonical(const char *host)
{
	unsigned char addr[16];
	char text[INET6_ADDRSTRLEN];
	int family = strchr(host, ':') ? AF_INET6 : AF_INET;

	return inet_pton(family, host, addr) == 1 &&
	       inet_ntop(family, addr, text, sizeof(text)) &&
	       !strcmp(text, host);
}

/* no_proxy names host as one of its comma-separated entries. */
static bool list_names(const char *list, const char *host)
{
	size_t hlen = strlen(host);
	const char *p = list;

	/* Blanks: libcurl 7.x also splits at them, later ones stop there. */
	if (strpbrk(list, " \t") || !host_canonical(host))
		return false;
	while (*p) {
		size_t n = strcspn(p, ",");

		if (n == hlen && !strncasecmp(p, host, n))
			return true;
		p += n;
		if (*p == ',')
			p++;
	}
	return false;
}

/* libcurl's curl_getenv(): an empty variable is an unset one. */
static const char *first_set(const char *a, const char *b, const char *c)
{
	if (a && *a)
		return a;
	if (b && *b)
		return b;
	return c && *c ? c : NULL;
}

bool hr__http_proxy_none(const char *host,
			 const struct hr__http_proxy_env *env)
{
	const char *no_proxy = first_set(env->no_proxy, env->no_proxy_uc, NULL);

	if (!first_set(env->http_proxy, env->all_proxy, env->all_proxy_uc))
		return true;
	if (!no_proxy)
		return false;
	return !strcmp(no_proxy, "*") || list_names(no_proxy, host);
}

bool hr__http_proxy_none_env(const char *host)
{
	struct hr__http_proxy_env env = {
		.http_proxy = getenv("http_proxy"),
		.all_proxy = getenv("all_proxy"),
		.all_proxy_uc = getenv("ALL_PROXY"),
	};

	if (!first_set(env.http_proxy, env.all_proxy, env.all_proxy_uc))
		return true; /* the common case: three lookups */
	env.no_proxy = getenv("no_proxy");
	env.no_proxy_uc = getenv("NO_PROXY");
	return hr__http_proxy_none(host, &env);
}
