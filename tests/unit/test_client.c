/* hr_client_api_url(): --api as operators type it (issue 13: a URL gave
 * "Could not resolve host: http", ":9190" an empty message). */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "client.h"

Test(client, api_url_accepts_what_operators_type)
{
	static const struct {
		const char *in, *url;
	} ok[] = {
		{ "127.0.0.1:9190", "http://127.0.0.1:9190" },
		{ ":9190", "http://127.0.0.1:9190" },
		{ "9190", "http://127.0.0.1:9190" },
		{ "localhost:9190", "http://localhost:9190" },
		{ "agent-1.example:80", "http://agent-1.example:80" },
		{ "http://127.0.0.1:9190", "http://127.0.0.1:9190" },
		{ "http://127.0.0.1:9190/", "http://127.0.0.1:9190" },
		{ "HTTP://127.0.0.1:9190/", "http://127.0.0.1:9190" },
		{ "http://:9190", "http://127.0.0.1:9190" },
		{ "[::1]:9190", "http://[::1]:9190" },
		{ "http://[::1]:9190/", "http://[::1]:9190" },
		{ "[fe80::1]:1", "http://[fe80::1]:1" },
		/* agent.api_listen of every interface: ask loopback */
		{ "0.0.0.0:9190", "http://127.0.0.1:9190" },
		{ "[::]:9190", "http://[::1]:9190" },
		{ "65535", "http://127.0.0.1:65535" },
	};
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct hr_err err = { "" };
		char url[300] = "";

		cr_assert_eq(hr_client_api_url(ok[i].in, url, sizeof(url), &err),
			     0, "%s: %s", ok[i].in, err.msg);
		cr_assert_str_eq(url, ok[i].url, "%s", ok[i].in);
	}
}

Test(client, api_url_says_what_is_wrong_and_what_is_expected)
{
	static const struct {
		const char *in, *why;
	} bad[] = {
		{ "", "empty" },
		{ ":", "no port" },
		{ "http://127.0.0.1", "no port" },
		{ "http://127.0.0.1/", "no port" },
		{ "127.0.0.1", "no port" },
		{ "localhost", "no port" },
		{ "[::1]", "no port" },
		{ "[::1", "no ']'" },
		{ "::1:9190", "needs brackets" },
		{ "0", "not 1-65535" },
		{ ":0", "not 1-65535" },
		{ "70000", "not 1-65535" },
		{ "127.0.0.1:99999", "not 1-65535" },
		{ "127.0.0.1:x", "not a number" },
		{ "127.0.0.1:91 90", "not a number" },
		{ "https://127.0.0.1:9190", "plain HTTP" },
		{ "ftp://127.0.0.1:9190", "unknown scheme" },
		{ "http:/127.0.0.1:9190", "http://host:port" },
		{ "http://127.0.0.1:9190/v1/health", "no path" },
		{ "a b:1", "not a name or an IP address" },
		{ "user@host:1", "not a name or an IP address" },
		{ "[fe80::1%eth0]:1", "not a name or an IP address" },
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct hr_err err = { "" };
		char url[300] = "unchanged";

		cr_assert_eq(hr_client_api_url(bad[i].in, url, sizeof(url), &err),
			     -EINVAL, "%s", bad[i].in);
		cr_assert(strstr(err.msg, bad[i].why), "%s: %s", bad[i].in,
			  err.msg);
		cr_assert(strstr(err.msg, "expected host:port, :port, port or "
					  "http://host:port"),
			  "%s: %s", bad[i].in, err.msg);
		cr_assert(!strncmp(err.msg, "\"", 1), "%s: %s", bad[i].in,
			  err.msg);
	}
}

Test(client, api_url_never_overflows)
{
	struct hr_err err = { "" };
	char url[16];

	cr_assert_eq(hr_client_api_url("localhost:9190", url, sizeof(url), &err),
		     -ERANGE);
	cr_assert_lt(strlen(url), sizeof(url));
}
