/* http_proxy.c: when the direct engine may take a run (libcurl would
 * connect without a proxy) and when it must leave it to libcurl. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "http_proxy.h"

#define P "http://127.0.0.1:3128"
/* http_proxy, all_proxy, ALL_PROXY, no_proxy, NO_PROXY */
#define ENV(hp, ap, apu, np, npu) \
	{ .http_proxy = hp, .all_proxy = ap, .all_proxy_uc = apu, \
	  .no_proxy = np, .no_proxy_uc = npu }

static const struct {
	const char *host;
	struct hr__http_proxy_env env;
	bool none; /* true: direct for sure; false: libcurl decides */
} cases[] = {
	{ "127.0.0.1", ENV(NULL, NULL, NULL, NULL, NULL), true },
	{ "127.0.0.1", ENV(P, NULL, NULL, NULL, NULL), false },
	{ "127.0.0.1", ENV("", NULL, NULL, NULL, NULL), true }, /* "" is unset */
	{ "127.0.0.1", ENV("", P, NULL, NULL, NULL), false }, /* so all_proxy */
	{ "127.0.0.1", ENV(NULL, P, NULL, NULL, NULL), false }, /* all_proxy */
	{ "127.0.0.1", ENV(NULL, NULL, P, NULL, NULL), false }, /* ALL_PROXY */
	{ "127.0.0.1", ENV(NULL, "", P, NULL, NULL), false }, /* ALL_PROXY */
	{ "127.0.0.1", ENV(P, NULL, NULL, "*", NULL), true },
	{ "127.0.0.1", ENV(P, NULL, NULL, NULL, "*"), true }, /* NO_PROXY */
	{ "127.0.0.1", ENV(P, NULL, NULL, "127.0.0.1", NULL), true },
	{ "127.0.0.1", ENV(P, NULL, NULL, "a.example,127.0.0.1,b", NULL), true },
	{ "127.0.0.1", ENV(P, NULL, NULL, NULL, "127.0.0.1"), true },
	/* libcurl reads NO_PROXY only when no_proxy is unset or "" */
	{ "127.0.0.1", ENV(P, NULL, NULL, "", "127.0.0.1"), true },
	{ "127.0.0.1", ENV(P, NULL, NULL, "10.0.0.1", "127.0.0.1"), false },
	{ "127.0.0.1", ENV(P, NULL, NULL, "127.0.0.10", NULL), false },
	{ "127.0.0.1", ENV(P, NULL, NULL, "27.0.0.1", NULL), false },
	{ "127.0.0.1", ENV(P, NULL, NULL, "*,x", NULL), false },
	/* libcurl's to judge: CIDR, blanks (read differently by versions) */
	{ "127.0.0.1", ENV(P, NULL, NULL, "127.0.0.0/8", NULL), false },
	{ "127.0.0.1", ENV(P, NULL, NULL, "x 127.0.0.1", NULL), false },
	{ "127.0.0.1", ENV(P, NULL, NULL, " 127.0.0.1", NULL), false },
	{ "::1", ENV(P, NULL, NULL, "::1", NULL), true },
	{ "::1", ENV(P, NULL, NULL, "[::1]", NULL), false },
	{ "0:0::1", ENV(P, NULL, NULL, "0:0::1", NULL), false }, /* not canonical */
	{ "::1", ENV(P, NULL, NULL, NULL, NULL), false },
};

Test(http_proxy, table)
{
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_expect_eq(hr__http_proxy_none(cases[i].host, &cases[i].env),
			     cases[i].none, "case %zu (%s)", i, cases[i].host);
}

Test(http_proxy, reads_the_environment_like_libcurl)
{
	unsetenv("http_proxy");
	unsetenv("all_proxy");
	unsetenv("ALL_PROXY");
	unsetenv("no_proxy");
	unsetenv("NO_PROXY");
	setenv("HTTP_PROXY", P, 1); /* ignored for http:// (httpoxy) */
	cr_expect(hr__http_proxy_none_env("127.0.0.1"));
	setenv("ALL_PROXY", P, 1);
	cr_expect_not(hr__http_proxy_none_env("127.0.0.1"));
	setenv("NO_PROXY", "127.0.0.1", 1);
	cr_expect(hr__http_proxy_none_env("127.0.0.1"));
	setenv("no_proxy", "10.0.0.1", 1); /* hides NO_PROXY */
	cr_expect_not(hr__http_proxy_none_env("127.0.0.1"));
	setenv("no_proxy", "", 1); /* unset for libcurl */
	cr_expect(hr__http_proxy_none_env("127.0.0.1"));
	unsetenv("ALL_PROXY");
	setenv("http_proxy", "", 1);
	cr_expect(hr__http_proxy_none_env("127.0.0.1"));
}
