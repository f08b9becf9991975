/* Go duration strings as Consul writes them. */
#include <criterion/criterion.h>
#include <errno.h>

#include "healthreg/duration.h"

struct dcase {
	const char *in;
	int rc;
	int64_t ms;
};

static const struct dcase cases[] = {
	{ "0", 0, 0 },		 { "0s", 0, 0 },	{ "250ms", 0, 250 },
	{ "10s", 0, 10000 },	 { "1m30s", 0, 90000 }, { "1h", 0, 3600000 },
	{ "1.5s", 0, 1500 },	 { ".5s", 0, 500 },	{ "1h2m3.5s", 0, 3723500 },
	{ "1500us", 0, 2 },	 { "2000000ns", 0, 2 }, { "+5s", 0, 5000 },
	{ "5\xc2\xb5s", 0, 0 },	 { "5x", -EINVAL, 0 },	{ "", -EINVAL, 0 },
	{ "s", -EINVAL, 0 },	 { "10", -EINVAL, 0 },	{ "-1s", -EINVAL, 0 },
	{ "1s ", -EINVAL, 0 },	 { "1.s", 0, 1000 },	{ ".", -EINVAL, 0 },
	{ "10S", -EINVAL, 0 },	 { "99999999999999h", -ERANGE, 0 },
};

Test(duration, table)
{
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t ms = -1;
		int rc = hr_duration_parse(cases[i].in, &ms);

		cr_expect_eq(rc, cases[i].rc, "\"%s\": rc %d, want %d",
			     cases[i].in, rc, cases[i].rc);
		if (!cases[i].rc)
			cr_expect_eq(ms, cases[i].ms, "\"%s\": %lld ms, want %lld",
				     cases[i].in, (long long)ms,
				     (long long)cases[i].ms);
	}
}

Test(duration, format_round_trips)
{
	static const int64_t v[] = { 0, 1, 250, 1000, 1500, 59999, 60000,
				     90000, 3600000, 3723500 };
	char buf[64];
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		int64_t back = -1;

		hr_duration_format(v[i], buf, sizeof(buf));
		cr_assert_eq(hr_duration_parse(buf, &back), 0, "%s", buf);
		cr_expect_eq(back, v[i], "%lld -> %s -> %lld", (long long)v[i],
			     buf, (long long)back);
	}
	hr_duration_format(90000, buf, sizeof(buf));
	cr_expect_str_eq(buf, "1m30s");
	hr_duration_format(250, buf, sizeof(buf));
	cr_expect_str_eq(buf, "250ms");
}
