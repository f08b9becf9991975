/*
 * test_etcd_payload.c - the pure half of the etcd backend: config, key and
 * value layout, request bodies, base64 and reply classification, with the
 * odd reply shapes etcd 3.4's JSON gateway really produces.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <inttypes.h>

#include "etcd/etcd_payload.h"
#include "leakcheck.h"

/* ---- config ---------------------------------------------------------- */

static int parse_text(const char *json, struct hr_etcd_conf *c,
		      struct hr_diag *d)
{
	cJSON *root = json ? cJSON_Parse(json) : NULL;
	int rc;

	if (json)
		cr_assert_not_null(root, "bad test JSON: %s", json);
	rc = hr_etcd_conf_parse(c, root, "registry.etcd", d);
	cJSON_Delete(root);
	return rc;
}

static bool diag_has(const struct hr_diag *d, const char *text)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (strcmp(d->v[i].text, text) == 0)
			return true;
	return false;
}

Test(etcd_payload, conf_defaults)
{
	struct hr_etcd_conf c;
	struct hr_diag d;

	hr_diag_init(&d);
	cr_assert_eq(parse_text("{}", &c, &d), 0);
	cr_assert_eq(d.n, 0);
	cr_assert_eq(c.n_endpoints, 1);
	cr_assert_str_eq(c.endpoints[0], "http://127.0.0.1:2379");
	cr_assert_str_eq(c.prefix, "services/");
	cr_assert_eq(c.value_format, HR_ETCD_VALUE_GRPC);
	cr_assert_eq(c.lease_ttl_ms, 10000);
	cr_assert_eq(c.common.deregister_after_ms, 0);
	cr_assert_eq(c.request_timeout_ms, 2000);
	cr_assert(hr_etcd_registrable(&c, HR_STATUS_PASSING));
	cr_assert(hr_etcd_registrable(&c, HR_STATUS_WARNING));
	cr_assert_not(hr_etcd_registrable(&c, HR_STATUS_CRITICAL));
	cr_assert_not(hr_etcd_registrable(&c, HR_STATUS_UNKNOWN));
	cr_assert_null(c.username);
	hr_etcd_conf_dispose(&c);

	/* A missing object means every default too. */
	cr_assert_eq(parse_text(NULL, &c, &d), 0);
	cr_assert_eq(c.n_endpoints, 1);
	hr_etcd_conf_dispose(&c);
	hr_diag_dispose(&d);
}

Test(etcd_payload, conf_full)
{
	struct hr_etcd_conf c;
	struct hr_diag d;

	hr_diag_init(&d);
	cr_assert_eq(parse_text(
		"{\"endpoints\":[\"http://127.0.0.1:1/\",\"https://e2:2\"],"
		"\"prefix\":\"svc/\",\"lease_ttl\":\"3s\","
		"\"deregister_after\":\"1m30s\","
		"\"register_when\":[\"passing\"],\"username\":\"agent\","
		"\"password_file\":\"/run/pw\",\"ca_file\":\"ca.pem\","
		"\"cert_file\":\"c.pem\",\"key_file\":\"k.pem\","
		"\"request_timeout\":\"500ms\"}", &c, &d), 0);
	cr_assert_eq(c.n_endpoints, 2);
	cr_assert_str_eq(c.endpoints[0], "http://127.0.0.1:1");
	cr_assert_str_eq(c.endpoints[1], "https://e2:2");
	cr_assert_str_eq(c.prefix, "svc/");
	cr_assert_eq(c.lease_ttl_ms, 3000);
	cr_assert_eq(c.common.deregister_after_ms, 90000);
	cr_assert_eq(c.request_timeout_ms, 500);
	cr_assert(hr_etcd_registrable(&c, HR_STATUS_PASSING));
	cr_assert_not(hr_etcd_registrable(&c, HR_STATUS_WARNING));
	cr_assert_str_eq(c.username, "agent");
	cr_assert_str_eq(c.password_file, "/run/pw");
	cr_assert_str_eq(c.common.key_file, "k.pem");
	hr_etcd_conf_dispose(&c);
	cr_assert_null(c.endpoints);
	hr_diag_dispose(&d);
}

struct conf_case {
	const char *json;
	const char *error; /* one expected diagnostic, exactly */
};

static const struct conf_case bad_confs[] = {
	{ "{\"min_healthy\":127}",
	  "registry.etcd.min_healthy: 127 is out of range (0..126)" },
	{ "{\"min_healthy\":-1}",
	  "registry.etcd.min_healthy: -1 is out of range (0..126)" },
	{ "{\"min_healthy\":1.5}",
	  "registry.etcd.min_healthy: 1.5 is not an integer" },
	{ "{\"min_healthy\":\"2\"}",
	  "registry.etcd.min_healthy: \"2\" is not an integer" },
	{ "{\"max_unhealthy_fraction\":0.5}",
	  "registry.etcd.max_unhealthy_fraction: is not supported: etcd keeps "
	  "no record of instances that left, so a fraction has nothing to "
	  "count from; use min_healthy (an absolute count)" },
	{ "{\"lease_ttl\":\"5x\"}",
	  "registry.etcd.lease_ttl: \"5x\" is not a duration (like \"250ms\", "
	  "\"10s\", \"1m30s\")" },
	{ "{\"lease_ttl\":5}",
	  "registry.etcd.lease_ttl: 5 is not a duration (like \"250ms\", "
	  "\"10s\", \"1m30s\")" },
	{ "{\"lease_ttl\":\"1s\"}",
	  "registry.etcd.lease_ttl: must be at least 2s (etcd's minimum)" },
	{ "{\"lease_ttl\":\"2500ms\"}",
	  "registry.etcd.lease_ttl: must be a whole number of seconds" },
	{ "{\"deregister_after\":\"-1s\"}",
	  "registry.etcd.deregister_after: \"-1s\" is not a duration (like "
	  "\"250ms\", \"10s\", \"1m30s\")" },
	{ "{\"request_timeout\":\"10ms\"}",
	  "registry.etcd.request_timeout: must be at least 100ms" },
	{ "{\"endpoints\":\"http://a:1\"}",
	  "registry.etcd.endpoints: must be a list of URLs" },
	{ "{\"endpoints\":[]}", "registry.etcd.endpoints: must not be empty" },
	{ "{\"endpoints\":[\"http://a:1\",\"a:2\"]}",
	  "registry.etcd.endpoints[1]: \"a:2\" must start with http:// or "
	  "https://" },
	{ "{\"endpoints\":[7]}", "registry.etcd.endpoints[0]: 7 is not a string" },
	{ "{\"endpoints\":[\"http://\"]}",
	  "registry.etcd.endpoints[0]: \"http://\" has no host" },
	{ "{\"register_when\":[\"passing\",\"sick\"]}",
	  "registry.etcd.register_when[1]: \"sick\" is not one of "
	  "\"passing\", \"warning\", \"critical\"" },
	{ "{\"register_when\":[]}",
	  "registry.etcd.register_when: must be a non-empty array of "
	  "\"passing\", \"warning\", \"critical\"" },
	{ "{\"register_when\":\"passing\"}",
	  "registry.etcd.register_when: must be a non-empty array of "
	  "\"passing\", \"warning\", \"critical\"" },
	{ "{\"bogus\":1}", "registry.etcd.bogus: unknown key" },
	{ "{\"password\":\"x\"}",
	  "registry.etcd.password: passwords are not accepted inline; use "
	  "password_file or the ETCD_PASSWORD environment variable" },
	{ "{\"username\":\"\"}", "registry.etcd.username: must not be empty" },
	{ "{\"prefix\":3}", "registry.etcd.prefix: 3 is not a string" },
#define BAD_PREFIX(p) \
	{ "{\"prefix\":\"" p "\"}", \
	  "registry.etcd.prefix: \"" p "\" must be one or more non-empty " \
	  "segments, each ending in \"/\" (like \"services/\"): the key is " \
	  "the prefix, the service name, \"/\" and the address" }
	BAD_PREFIX("services"), BAD_PREFIX(""), BAD_PREFIX("/"),
	BAD_PREFIX("services//"), BAD_PREFIX("//services/"),
	BAD_PREFIX("a//b/"), BAD_PREFIX("/services"),
#undef BAD_PREFIX
	{ "{\"value_format\":\"full\"}",
	  "registry.etcd.value_format: \"full\" is not a value format "
	  "(\"grpc\" or \"document\")" },
	{ "{\"value_format\":1}", "registry.etcd.value_format: 1 is not a string" },
	{ "{\"key_file\":\"k.pem\"}", "registry.etcd.key_file: needs cert_file" },
	{ "[1]", "registry.etcd: must be an object" },
};

Test(etcd_payload, conf_errors_name_their_path)
{
	size_t i;

	for (i = 0; i < sizeof(bad_confs) / sizeof(bad_confs[0]); i++) {
		struct hr_etcd_conf c;
		struct hr_diag d;
		size_t k;

		hr_diag_init(&d);
		cr_assert_eq(parse_text(bad_confs[i].json, &c, &d), -EINVAL,
			     "%s", bad_confs[i].json);
		for (k = 0; k < d.n; k++)
			cr_log_info("%s", d.v[k].text);
		cr_assert(diag_has(&d, bad_confs[i].error),
			  "%s: expected \"%s\", got %zu entries (first: %s)",
			  bad_confs[i].json, bad_confs[i].error, d.n,
			  d.n ? d.v[0].text : "-");
		cr_assert_eq(d.errors, d.n);
		cr_assert_null(c.endpoints);
		hr_diag_dispose(&d);
	}
}

Test(etcd_payload, conf_reports_every_problem)
{
	struct hr_etcd_conf c;
	struct hr_diag d;

	hr_diag_init(&d);
	cr_assert_eq(parse_text("{\"lease_ttl\":\"x\",\"nope\":1,"
				"\"endpoints\":[\"ftp://a\"]}", &c, &d),
		     -EINVAL);
	cr_assert_eq(d.errors, 3);
	hr_diag_dispose(&d);
	/* diag may be NULL: the result is still the verdict. */
	cr_assert_eq(parse_text("{\"nope\":1}", &c, NULL), -EINVAL);
}

/* A key given twice: the last one counts and the first one's memory is
 * not lost (the heap is back where it was; round 0 warms up). */
Test(etcd_payload, conf_duplicate_keys_do_not_leak)
{
	struct hr_etcd_conf c;
	struct hr_diag d;
	size_t round, mark = 0;

	for (round = 0; round < 3; round++) {
		if (round == 1)
			mark = HR_HEAP_MARK();
		hr_diag_init(&d);
		cr_assert_eq(parse_text("{\"endpoints\":[\"http://a:1\",\"http://b:2\"],"
					"\"endpoints\":[\"http://c:3\"],"
					"\"prefix\":\"/x/\",\"prefix\":\"/y/\","
					"\"ca_file\":\"a\",\"ca_file\":\"b\"}", &c, &d), 0);
		cr_assert_eq(c.n_endpoints, 1);
		cr_assert_str_eq(c.endpoints[0], "http://c:3");
		cr_assert_str_eq(c.prefix, "/y/");
		cr_assert_str_eq(c.common.ca_file, "b");
		hr_etcd_conf_dispose(&c);
		cr_assert_eq(parse_text("{\"endpoints\":[\"http://a:1\"],"
					"\"endpoints\":[\"ftp://c\"]}", &c, &d),
			     -EINVAL);
		hr_diag_dispose(&d);
	}
	HR_ASSERT_HEAP_BACK(mark);
}

/* ---- key and value --------------------------------------------------- */

static struct hr_service_spec svc(const char *address, int port)
{
	static char *tags[] = { "v1", "blue\"q", NULL };
	static struct hr_header meta[] = { { "zone", "a" }, { "w", "2" } };
	struct hr_service_spec s;

	memset(&s, 0, sizeof(s));
	s.name = "echo";
	s.id = "echo-1";
	s.address = (char *)address;
	s.port = port;
	s.tags = tags;
	s.n_tags = 2;
	s.meta = meta;
	s.n_meta = 2;
	return s;
}

Test(etcd_payload, addr_forms)
{
	struct {
		const char *address, *fallback;
		int port, rc;
		const char *want;
	} cases[] = {
		{ "127.0.0.1", NULL, 9001, 0, "127.0.0.1:9001" },
		{ "::1", NULL, 9001, 0, "[::1]:9001" },
		{ "[::1]", NULL, 80, 0, "[::1]:80" },
		{ NULL, "host-a", 80, 0, "host-a:80" },
		{ "", "host-a", 80, 0, "host-a:80" },
		{ NULL, NULL, 80, -EINVAL, NULL },
		{ "h", NULL, 0, -EINVAL, NULL },
		{ "h", NULL, 70000, -EINVAL, NULL },
	};
	size_t i;
	char buf[64];

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hr_service_spec s = svc(cases[i].address, cases[i].port);

		cr_assert_eq(hr_etcd_addr(&s, cases[i].fallback, buf,
					  sizeof(buf)), cases[i].rc, "%zu", i);
		if (cases[i].want)
			cr_assert_str_eq(buf, cases[i].want);
	}
	{
		struct hr_service_spec s = svc("127.0.0.1", 9001);

		cr_assert_eq(hr_etcd_addr(&s, NULL, buf, 8), -ERANGE);
	}
}

Test(etcd_payload, key_layout)
{
	char *k = hr_etcd_key("services/", "echo", "127.0.0.1:9001");

	cr_assert_str_eq(k, "services/echo/127.0.0.1:9001");
	free(k);
	k = hr_etcd_key("", "echo", "[::1]:1");
	cr_assert_str_eq(k, "echo/[::1]:1");
	free(k);
}

Test(etcd_payload, prefix_rule)
{
	static const char *const good[] = { "services/", "/services/",
		"a/b/", "/a/b/c/", "x/" };
	static const char *const bad[] = { "", "/", "//", "services",
		"services//", "//services/", "a//b/", "/services", "a/b" };
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_assert(hr_etcd_prefix_ok(good[i]), "%s", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_not(hr_etcd_prefix_ok(bad[i]), "%s", bad[i]);
}

Test(etcd_payload, value_format_parsed)
{
	struct hr_etcd_conf c;
	struct hr_diag d;

	hr_diag_init(&d);
	cr_assert_eq(parse_text("{\"value_format\":\"document\"}", &c, &d), 0);
	cr_assert_eq(c.value_format, HR_ETCD_VALUE_DOCUMENT);
	hr_etcd_conf_dispose(&c);
	cr_assert_eq(parse_text("{\"value_format\":\"document\","
				"\"value_format\":\"grpc\"}", &c, &d), 0);
	cr_assert_eq(c.value_format, HR_ETCD_VALUE_GRPC);
	hr_etcd_conf_dispose(&c);
	cr_assert_eq(d.n, 0);
	hr_diag_dispose(&d);
}

/* The default: only Op and Addr, the same for every status, so a
 * passing <-> warning change writes nothing and round_robin can hash it. */
Test(etcd_payload, value_grpc_has_no_metadata)
{
	struct hr_service_spec s = svc("127.0.0.1", 9001);
	char *p = hr_etcd_value(&s, "127.0.0.1:9001", HR_STATUS_PASSING,
				HR_ETCD_VALUE_GRPC);
	char *w = hr_etcd_value(&s, "127.0.0.1:9001", HR_STATUS_WARNING,
				HR_ETCD_VALUE_GRPC);

	cr_assert_str_eq(p, "{\"Op\":0,\"Addr\":\"127.0.0.1:9001\"}");
	cr_assert_str_eq(w, p);
	free(p);
	free(w);
}

Test(etcd_payload, value_document_format)
{
	struct hr_service_spec s = svc("127.0.0.1", 9001);
	char *v = hr_etcd_value(&s, "127.0.0.1:9001", HR_STATUS_WARNING,
				HR_ETCD_VALUE_DOCUMENT);

	cr_assert_str_eq(v,
		"{\"Op\":0,\"Addr\":\"127.0.0.1:9001\",\"Metadata\":"
		"{\"id\":\"echo-1\",\"status\":\"warning\","
		"\"tags\":[\"v1\",\"blue\\\"q\"],"
		"\"meta\":{\"zone\":\"a\",\"w\":\"2\"}}}");
	free(v);

	/* No id, tags or meta: id falls back to the name, lists are empty. */
	s.id = NULL;
	s.tags = NULL;
	s.n_tags = 0;
	s.n_meta = 0;
	v = hr_etcd_value(&s, "h:1", HR_STATUS_PASSING, HR_ETCD_VALUE_DOCUMENT);
	cr_assert_str_eq(v, "{\"Op\":0,\"Addr\":\"h:1\",\"Metadata\":"
			    "{\"id\":\"echo\",\"status\":\"passing\","
			    "\"tags\":[],\"meta\":{}}}");
	free(v);
}

/* ---- bodies and base64 ----------------------------------------------- */

Test(etcd_payload, base64_table)
{
	struct {
		const char *plain, *b64;
	} cases[] = {
		{ "", "" },
		{ "f", "Zg==" },
		{ "fo", "Zm8=" },
		{ "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" },
		{ "services/echo/127.0.0.1:9001",
		  "c2VydmljZXMvZWNoby8xMjcuMC4wLjE6OTAwMQ==" },
		{ "\xff\xfe", "//4=" },
	};
	size_t i, n;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *e = hr_etcd_b64(cases[i].plain, strlen(cases[i].plain));
		char *d = hr_etcd_b64_decode(cases[i].b64, &n);

		cr_assert_str_eq(e, cases[i].b64);
		cr_assert_not_null(d);
		cr_assert_eq(n, strlen(cases[i].plain));
		cr_assert_str_eq(d, cases[i].plain);
		free(e);
		free(d);
	}
	cr_assert_null(hr_etcd_b64_decode("Zm9v!!", NULL));
	cr_assert_null(hr_etcd_b64_decode("Z", NULL));
	cr_assert_null(hr_etcd_b64_decode("Zg=", NULL));
	{
		char *d = hr_etcd_b64_decode("Zg", &n); /* unpadded */

		cr_assert_str_eq(d, "f");
		free(d);
	}
}

Test(etcd_payload, bodies)
{
	char *b;

	b = hr_etcd_body_grant(10);
	cr_assert_str_eq(b, "{\"TTL\":\"10\"}");
	free(b);
	/* Lease IDs above 2^53 travel as exact decimal strings. */
	b = hr_etcd_body_lease(INT64_C(7587870000000000001));
	cr_assert_str_eq(b, "{\"ID\":\"7587870000000000001\"}");
	free(b);
	b = hr_etcd_body_put("foo", "bar", 1000);
	cr_assert_str_eq(b, "{\"key\":\"Zm9v\",\"value\":\"YmFy\","
			    "\"lease\":\"1000\"}");
	free(b);
	b = hr_etcd_body_delete_if_lease("foo", INT64_C(2324035664876589831));
	cr_assert_str_eq(b,
		"{\"compare\":[{\"target\":\"LEASE\",\"key\":\"Zm9v\","
		"\"result\":\"EQUAL\",\"lease\":\"2324035664876589831\"}],"
		"\"success\":[{\"request_delete_range\":{\"key\":\"Zm9v\"}}]}");
	free(b);
	b = hr_etcd_body_auth("agent", "p\"w");
	cr_assert_str_eq(b, "{\"name\":\"agent\",\"password\":\"p\\\"w\"}");
	free(b);
}

Test(etcd_payload, int64_forms)
{
	struct {
		const char *json;
		int rc;
		int64_t want;
	} cases[] = {
		{ "\"2324035664876589831\"", 0, INT64_C(2324035664876589831) },
		{ "\"9223372036854775807\"", 0, INT64_MAX },
		{ "\"-9223372036854775808\"", 0, INT64_MIN },
		{ "\"9223372036854775808\"", -EINVAL, 0 },
		{ "\"-1\"", 0, -1 },
		{ "\"10\"", 0, 10 },
		{ "10", 0, 10 },
		{ "1.5", -EINVAL, 0 },
		{ "\"\"", -EINVAL, 0 },
		{ "\"-\"", -EINVAL, 0 },
		{ "\"12a\"", -EINVAL, 0 },
		{ "null", -EINVAL, 0 },
		{ "true", -EINVAL, 0 },
		/* network input: numbers beyond int64 are rejected before any
		 * conversion (UBSan aborts on an out-of-range cast) */
		{ "1e300", -EINVAL, 0 },
		{ "-1e300", -EINVAL, 0 },
		{ "1e999", -EINVAL, 0 },
		{ "-1e999", -EINVAL, 0 },
		{ "9.3e18", -EINVAL, 0 },
		{ "-9.3e18", -EINVAL, 0 },
		{ "1e19", -EINVAL, 0 },
		{ "9223372036854775808", -EINVAL, 0 },
		{ "9007199254740992", 0, INT64_C(9007199254740992) },
		{ "-9007199254740992", 0, -INT64_C(9007199254740992) },
		{ "\"18446744073709551616\"", -EINVAL, 0 },
		{ "\"-9223372036854775809\"", -EINVAL, 0 },
		{ "\"99999999999999999999999\"", -EINVAL, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *j = cJSON_Parse(cases[i].json);
		int64_t v = 0;

		cr_assert_eq(hr_etcd_int64(j, &v), cases[i].rc, "%s",
			     cases[i].json);
		if (cases[i].rc == 0)
			cr_assert_eq(v, cases[i].want, "%s", cases[i].json);
		cJSON_Delete(j);
	}
}

/* ---- replies --------------------------------------------------------- */

#define H "\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\"," \
	  "\"revision\":\"9\",\"raft_term\":\"2\"}"

struct reply_case {
	const char *name;
	enum hr_etcd_op op;
	long http;
	const char *body;
	enum hr_etcd_result result;
	int64_t id, ttl;
	bool succeeded;
	const char *token;
	int grpc_code;
};

static const struct reply_case replies[] = {
	{ "grant ok", HR_ETCD_OP_GRANT, 200,
	  "{" H ",\"ID\":\"2324035664876589831\",\"TTL\":\"10\"}", HR_ETCD_OK,
	  INT64_C(2324035664876589831), 10, false, NULL, -1 },
	{ "grant raised ttl", HR_ETCD_OP_GRANT, 200,
	  "{" H ",\"ID\":\"1000\",\"TTL\":\"2\"}", HR_ETCD_OK, 1000, 2, false,
	  NULL, -1 },
	{ "grant with empty error field", HR_ETCD_OP_GRANT, 200,
	  "{" H ",\"ID\":\"5\",\"TTL\":\"3\",\"error\":\"\"}", HR_ETCD_OK, 5, 3,
	  false, NULL, -1 },
	{ "grant without ID", HR_ETCD_OP_GRANT, 200, "{" H ",\"TTL\":\"10\"}",
	  HR_ETCD_FAILED, 0, 10, false, NULL, -1 },
	{ "grant, ID as a number", HR_ETCD_OP_GRANT, 200,
	  "{\"ID\":1000,\"TTL\":10}", HR_ETCD_OK, 1000, 10, false, NULL, -1 },
	{ "grant, quorum lost", HR_ETCD_OP_GRANT, 500,
	  "{\"error\":\"context deadline exceeded\",\"message\":\"context "
	  "deadline exceeded\",\"code\":2}", HR_ETCD_UNAVAILABLE, 0, 0, false,
	  NULL, 2 },
	{ "keepalive ok", HR_ETCD_OP_KEEPALIVE, 200,
	  "{\"result\":{" H ",\"ID\":\"1000\",\"TTL\":\"60\"}}\n", HR_ETCD_OK,
	  1000, 60, false, NULL, -1 },
	{ "keepalive two lines", HR_ETCD_OP_KEEPALIVE, 200,
	  "{\"result\":{\"ID\":\"1\",\"TTL\":\"9\"}}\n"
	  "{\"result\":{\"ID\":\"1\",\"TTL\":\"9\"}}\n", HR_ETCD_OK, 1, 9, false,
	  NULL, -1 },
	{ "keepalive of a dead lease: 200 without TTL",
	  HR_ETCD_OP_KEEPALIVE, 200, "{\"result\":{" H ",\"ID\":\"999999\"}}\n",
	  HR_ETCD_LEASE_LOST, 999999, 0, false, NULL, -1 },
	{ "keepalive of ID 0", HR_ETCD_OP_KEEPALIVE, 200,
	  "{\"result\":{" H "}}\n", HR_ETCD_LEASE_LOST, 0, 0, false, NULL, -1 },
	{ "keepalive TTL -1", HR_ETCD_OP_KEEPALIVE, 200,
	  "{\"result\":{\"ID\":\"3\",\"TTL\":\"-1\"}}", HR_ETCD_LEASE_LOST, 3, 0,
	  false, NULL, -1 },
	{ "keepalive, no leader (stream error shape)", HR_ETCD_OP_KEEPALIVE,
	  503, "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":"
	  "\"etcdserver: no leader\",\"http_status\":\"Service Unavailable\"}}",
	  HR_ETCD_UNAVAILABLE, 0, 0, false, NULL, 14 },
	{ "keepalive, stream error after a 200", HR_ETCD_OP_KEEPALIVE, 200,
	  "{\"error\":{\"grpc_code\":14,\"message\":\"no leader\"}}",
	  HR_ETCD_UNAVAILABLE, 0, 0, false, NULL, 14 },
	{ "keepalive, stream auth error", HR_ETCD_OP_KEEPALIVE, 200,
	  "{\"error\":{\"grpc_code\":16,\"http_code\":401,\"message\":"
	  "\"etcdserver: invalid auth token\"}}", HR_ETCD_AUTH_EXPIRED, 0, 0,
	  false, NULL, 16 },
	{ "keepalive, no result", HR_ETCD_OP_KEEPALIVE, 200, "{}",
	  HR_ETCD_FAILED, 0, 0, false, NULL, -1 },
	{ "put ok", HR_ETCD_OP_PUT, 200, "{" H "}", HR_ETCD_OK, 0, 0, false,
	  NULL, -1 },
	{ "put, unknown lease", HR_ETCD_OP_PUT, 404,
	  "{\"error\":\"etcdserver: requested lease not found\",\"message\":"
	  "\"etcdserver: requested lease not found\",\"code\":5}",
	  HR_ETCD_LEASE_LOST, 0, 0, false, NULL, 5 },
	{ "put, request timed out", HR_ETCD_OP_PUT, 503,
	  "{\"error\":\"etcdserver: request timed out\",\"message\":\"x\","
	  "\"code\":14}", HR_ETCD_UNAVAILABLE, 0, 0, false, NULL, 14 },
	{ "put, invalid token", HR_ETCD_OP_PUT, 401,
	  "{\"error\":\"etcdserver: invalid auth token\",\"message\":\"x\","
	  "\"code\":16}", HR_ETCD_AUTH_EXPIRED, 0, 0, false, NULL, 16 },
	{ "put, no token while auth is on", HR_ETCD_OP_PUT, 400,
	  "{\"error\":\"etcdserver: user name is empty\",\"message\":\"x\","
	  "\"code\":3}", HR_ETCD_AUTH_EXPIRED, 0, 0, false, NULL, 3 },
	{ "put, permission denied", HR_ETCD_OP_PUT, 403,
	  "{\"error\":\"etcdserver: permission denied\",\"message\":\"x\","
	  "\"code\":7}", HR_ETCD_AUTH_DENIED, 0, 0, false, NULL, 7 },
	{ "put, bad base64 (our bug)", HR_ETCD_OP_PUT, 400,
	  "{\"error\":\"illegal base64 data at input byte 4\",\"message\":"
	  "\"x\",\"code\":3}", HR_ETCD_FAILED, 0, 0, false, NULL, 3 },
	{ "put, 404 text/plain (wrong path)", HR_ETCD_OP_PUT, 404,
	  "404 page not found", HR_ETCD_FAILED, 0, 0, false, NULL, -1 },
	{ "put, 502 from a proxy, HTML", HR_ETCD_OP_PUT, 502,
	  "<html>bad gateway</html>", HR_ETCD_UNAVAILABLE, 0, 0, false, NULL,
	  -1 },
	{ "put, empty 200", HR_ETCD_OP_PUT, 200, "", HR_ETCD_FAILED, 0, 0,
	  false, NULL, -1 },
	{ "put, 401 without a body", HR_ETCD_OP_PUT, 401, "",
	  HR_ETCD_AUTH_EXPIRED, 0, 0, false, NULL, -1 },
	{ "no HTTP reply at all", HR_ETCD_OP_PUT, 0, NULL, HR_ETCD_UNAVAILABLE,
	  0, 0, false, NULL, -1 },
	{ "delete txn held", HR_ETCD_OP_DELETE, 200,
	  "{" H ",\"succeeded\":true,\"responses\":[{\"response_delete_range\":"
	  "{\"header\":{\"revision\":\"10\"},\"deleted\":\"1\"}}]}", HR_ETCD_OK,
	  0, 0, true, NULL, -1 },
	{ "delete txn not held: no succeeded field", HR_ETCD_OP_DELETE, 200,
	  "{" H "}", HR_ETCD_OK, 0, 0, false, NULL, -1 },
	{ "revoke ok", HR_ETCD_OP_REVOKE, 200, "{" H "}", HR_ETCD_OK, 0, 0,
	  false, NULL, -1 },
	{ "revoke unknown lease", HR_ETCD_OP_REVOKE, 404,
	  "{\"error\":\"etcdserver: requested lease not found\",\"message\":"
	  "\"x\",\"code\":5}", HR_ETCD_LEASE_LOST, 0, 0, false, NULL, 5 },
	{ "auth ok", HR_ETCD_OP_AUTH, 200,
	  "{" H ",\"token\":\"EroUKqwoWlewNMGh.62\"}", HR_ETCD_OK, 0, 0, false,
	  "EroUKqwoWlewNMGh.62", -1 },
	{ "auth wrong password", HR_ETCD_OP_AUTH, 400,
	  "{\"error\":\"etcdserver: authentication failed, invalid user ID or "
	  "password\",\"message\":\"x\",\"code\":3}", HR_ETCD_AUTH_DENIED, 0, 0,
	  false, NULL, 3 },
	{ "auth not enabled", HR_ETCD_OP_AUTH, 400,
	  "{\"error\":\"etcdserver: authentication is not enabled\","
	  "\"message\":\"x\",\"code\":3}", HR_ETCD_AUTH_DENIED, 0, 0, false,
	  NULL, 3 },
	{ "auth reply without token", HR_ETCD_OP_AUTH, 200, "{" H "}",
	  HR_ETCD_FAILED, 0, 0, false, NULL, -1 },
	/* numbers out of range from the network: rejected, never converted */
	{ "grant, ID 1e300", HR_ETCD_OP_GRANT, 200,
	  "{\"ID\":1e300,\"TTL\":10}", HR_ETCD_FAILED, 0, 0, false, NULL, -1 },
	{ "grant, TTL -1e300", HR_ETCD_OP_GRANT, 200,
	  "{\"ID\":\"7\",\"TTL\":-1e300}", HR_ETCD_FAILED, 0, 0, false, NULL,
	  -1 },
	{ "keepalive, TTL 9.3e18", HR_ETCD_OP_KEEPALIVE, 200,
	  "{\"result\":{\"ID\":\"3\",\"TTL\":9.3e18}}", HR_ETCD_LEASE_LOST, 3,
	  0, false, NULL, -1 },
	{ "keepalive, ID 1e19 (not read; the TTL counts)", HR_ETCD_OP_KEEPALIVE,
	  200, "{\"result\":{\"ID\":1e19,\"TTL\":\"9\"}}", HR_ETCD_OK, 0, 9,
	  false, NULL, -1 },
	{ "put, code 1e300", HR_ETCD_OP_PUT, 400,
	  "{\"error\":\"x\",\"message\":\"x\",\"code\":1e300}",
	  HR_ETCD_FAILED, 0, 0, false, NULL, -1 },
	{ "put, code beyond int as a string", HR_ETCD_OP_PUT, 400,
	  "{\"error\":\"x\",\"message\":\"x\",\"code\":\"99999999999\"}",
	  HR_ETCD_FAILED, 0, 0, false, NULL, -1 },
	{ "keepalive, stream error code -1e300", HR_ETCD_OP_KEEPALIVE, 200,
	  "{\"error\":{\"grpc_code\":-1e300,\"message\":\"x\"}}",
	  HR_ETCD_FAILED, 0, 0, false, NULL, -1 },
};

Test(etcd_payload, reply_classification)
{
	size_t i;

	for (i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
		const struct reply_case *c = &replies[i];
		struct hr_etcd_reply r;

		hr_etcd_reply_parse(c->op, c->http, c->body,
				    c->body ? strlen(c->body) : 0, &r);
		cr_assert_eq(r.result, c->result, "%s: got %s (%s)", c->name,
			     hr_etcd_result_name(r.result), r.message);
		cr_assert_eq(r.http_status, c->http, "%s", c->name);
		if (c->result == HR_ETCD_OK || c->op == HR_ETCD_OP_KEEPALIVE) {
			cr_assert_eq(r.id, c->id, "%s", c->name);
		}
		if (c->result == HR_ETCD_OK)
			cr_assert_eq(r.ttl, c->ttl, "%s", c->name);
		cr_assert_eq(r.succeeded, c->succeeded, "%s", c->name);
		cr_assert_eq(r.grpc_code, c->grpc_code, "%s", c->name);
		if (c->token)
			cr_assert_str_eq(r.token, c->token, "%s", c->name);
		else
			cr_assert_null(r.token, "%s", c->name);
		if (c->result != HR_ETCD_OK)
			cr_assert_neq(r.message[0], '\0', "%s", c->name);
		hr_etcd_reply_dispose(&r);
		hr_etcd_reply_dispose(&r); /* idempotent */
	}
}

Test(etcd_payload, reply_message_is_etcds_text)
{
	struct hr_etcd_reply r;
	const char *b = "{\"error\":\"etcdserver: requested lease not found\","
			"\"message\":\"m\",\"code\":5}";

	hr_etcd_reply_parse(HR_ETCD_OP_PUT, 404, b, strlen(b), &r);
	cr_assert_str_eq(r.message, "etcdserver: requested lease not found");
	hr_etcd_reply_dispose(&r);
}

Test(etcd_payload, names)
{
	cr_assert_str_eq(hr_etcd_op_name(HR_ETCD_OP_DELETE), "delete");
	cr_assert_str_eq(hr_etcd_result_name(HR_ETCD_LEASE_LOST),
			 "lease_lost");
}

/* ---- the fleet floor --------------------------------------------------- */

Test(etcd_payload, floor_conf)
{
	struct hr_etcd_conf c;
	struct hr_diag d;

	hr_diag_init(&d);
	cr_assert_eq(parse_text("{}", &c, &d), 0);
	cr_assert_eq(c.min_healthy, 0, "off by default");
	hr_etcd_conf_dispose(&c);
	cr_assert_eq(parse_text("{\"min_healthy\":126}", &c, &d), 0);
	cr_assert_eq(c.min_healthy, 126);
	hr_etcd_conf_dispose(&c);
	cr_assert_eq(d.n, 0);
	hr_diag_dispose(&d);
}

Test(etcd_payload, floor_range_body)
{
	char *dir = hr_etcd_service_dir("services/", "web");
	char *b;

	cr_assert_str_eq(dir, "services/web/");
	b = hr_etcd_body_range_prefix(dir, true);
	/* "services/web/" .. "services/web0" */
	cr_assert_str_eq(b, "{\"key\":\"c2VydmljZXMvd2ViLw==\","
			    "\"range_end\":\"c2VydmljZXMvd2ViMA==\","
			    "\"keys_only\":true}");
	free(b);
	b = hr_etcd_body_range_prefix(dir, false);
	cr_assert_str_eq(b, "{\"key\":\"c2VydmljZXMvd2ViLw==\","
			    "\"range_end\":\"c2VydmljZXMvd2ViMA==\"}");
	free(b);
	free(dir);
}

/* A view of keys "k0".."k<n-1>" with mod_revision 10+i, lease 7. */
static void make_view(struct hr_etcd_view *v, size_t n)
{
	size_t i;

	memset(v, 0, sizeof(*v));
	v->kvs = calloc(n, sizeof(*v->kvs));
	cr_assert_not_null(v->kvs);
	for (i = 0; i < n; i++) {
		char k[8];

		snprintf(k, sizeof(k), "k%zu", i);
		v->kvs[i].key = strdup(k);
		v->kvs[i].mod_revision = 10 + (int64_t)i;
		v->kvs[i].lease = 7;
	}
	v->n = n;
}

Test(etcd_payload, floor_decide)
{
	struct hr_etcd_view v;
	struct hr_etcd_floor f;

	make_view(&v, 3);
	/* 3 registered, floor 2: leaving keeps 2 others. */
	hr_etcd_floor_decide(&v, "k1", 7, 2, &f);
	cr_assert(f.present && f.ours && f.leave);
	cr_assert_eq(f.registered, 3);
	cr_assert_eq(f.healthy, 2);
	/* floor 3: leaving would leave 2 < 3. */
	hr_etcd_floor_decide(&v, "k1", 7, 3, &f);
	cr_assert(f.present && f.ours);
	cr_assert_not(f.leave);
	/* critical others are registered but not healthy (the note) */
	v.kvs[0].critical = true;
	hr_etcd_floor_decide(&v, "k1", 7, 3, &f);
	cr_assert_eq(f.registered, 3);
	cr_assert_eq(f.healthy, 1);
	/* under another lease: not ours to delete */
	hr_etcd_floor_decide(&v, "k1", 8, 2, &f);
	cr_assert(f.present);
	cr_assert_not(f.ours);
	cr_assert_not(f.leave);
	/* gone */
	hr_etcd_floor_decide(&v, "k9", 7, 0, &f);
	cr_assert_not(f.present);
	cr_assert_not(f.leave);
	/* floor 0 (off): always leave */
	hr_etcd_floor_decide(&v, "k1", 7, 0, &f);
	cr_assert(f.leave);
	hr_etcd_view_dispose(&v);
	cr_assert_null(v.kvs);
	cr_assert_eq(v.n, 0);
}

Test(etcd_payload, floor_delete_txn_guards_own_key_and_floor_others)
{
	struct hr_etcd_view v;
	char *b;

	make_view(&v, 4);
	/* own k1: LEASE and MOD of k1, then MOD of the first two others
	 * (k0, k2); k3 is not needed to prove the floor. */
	b = hr_etcd_body_floor_delete(&v, "k1", 7, 2);
	cr_assert_str_eq(b,
		"{\"compare\":["
		"{\"target\":\"LEASE\",\"key\":\"azE=\",\"result\":\"EQUAL\","
		"\"lease\":\"7\"},"
		"{\"target\":\"MOD\",\"key\":\"azE=\",\"result\":\"EQUAL\","
		"\"mod_revision\":\"11\"},"
		"{\"target\":\"MOD\",\"key\":\"azA=\",\"result\":\"EQUAL\","
		"\"mod_revision\":\"10\"},"
		"{\"target\":\"MOD\",\"key\":\"azI=\",\"result\":\"EQUAL\","
		"\"mod_revision\":\"12\"}],"
		"\"success\":[{\"request_delete_range\":{\"key\":\"azE=\"}}]}");
	free(b);
	/* not enough others to prove the floor, or no own key: no txn */
	cr_assert_null(hr_etcd_body_floor_delete(&v, "k1", 7, 4));
	cr_assert_null(hr_etcd_body_floor_delete(&v, "k9", 7, 1));
	hr_etcd_view_dispose(&v);
}

Test(etcd_payload, floor_note_and_document_value)
{
	struct hr_etcd_floor f = { .present = true, .ours = true,
				   .registered = 3, .healthy = 1 };
	struct hr_service_spec s = { .name = "web", .id = "web-1" };
	char note[128], *v;

	hr_etcd_floor_note(&f, 2, note, sizeof(note));
	cr_assert_str_eq(note,
			 "kept by fleet floor: 1 of 3 healthy (min_healthy 2)");
	v = hr_etcd_value_note(&s, "h:1", HR_STATUS_CRITICAL,
			       HR_ETCD_VALUE_DOCUMENT, note);
	cr_assert_str_eq(v, "{\"Op\":0,\"Addr\":\"h:1\",\"Metadata\":{"
			    "\"id\":\"web-1\",\"status\":\"critical\","
			    "\"note\":\"kept by fleet floor: 1 of 3 healthy "
			    "(min_healthy 2)\",\"tags\":[],\"meta\":{}}}");
	free(v);
	/* the grpc value has no room for it */
	v = hr_etcd_value_note(&s, "h:1", HR_STATUS_CRITICAL,
			       HR_ETCD_VALUE_GRPC, note);
	cr_assert_str_eq(v, "{\"Op\":0,\"Addr\":\"h:1\"}");
	free(v);
}

Test(etcd_payload, floor_range_reply)
{
	/* etcd 3.4's gateway: int64 as strings, lease omitted when 0, kvs
	 * omitted when there is no key. The second value is a document
	 * marked critical. */
	char *crit = hr_etcd_b64(
		"{\"Op\":0,\"Addr\":\"b\",\"Metadata\":{\"status\":\"critical\"}}",
		strlen("{\"Op\":0,\"Addr\":\"b\",\"Metadata\":{\"status\":"
		       "\"critical\"}}"));
	char body[1024];
	struct hr_etcd_reply r;

	snprintf(body, sizeof(body),
		 "{\"header\":{\"revision\":\"42\"},\"kvs\":["
		 "{\"key\":\"YQ==\",\"create_revision\":\"5\","
		 "\"mod_revision\":\"6\",\"version\":\"1\",\"lease\":\"99\"},"
		 "{\"key\":\"Yg==\",\"mod_revision\":\"40\",\"value\":\"%s\"}],"
		 "\"count\":\"2\"}", crit);
	free(crit);
	hr_etcd_reply_parse(HR_ETCD_OP_RANGE, 200, body, strlen(body), &r);
	cr_assert_eq(r.result, HR_ETCD_OK, "%s", r.message);
	cr_assert_eq(r.view.revision, 42);
	cr_assert_eq(r.view.n, 2);
	cr_assert_str_eq(r.view.kvs[0].key, "a");
	cr_assert_eq(r.view.kvs[0].mod_revision, 6);
	cr_assert_eq(r.view.kvs[0].lease, 99);
	cr_assert_not(r.view.kvs[0].critical);
	cr_assert_str_eq(r.view.kvs[1].key, "b");
	cr_assert_eq(r.view.kvs[1].lease, 0);
	cr_assert(r.view.kvs[1].critical);
	hr_etcd_reply_dispose(&r);
	cr_assert_null(r.view.kvs);

	/* empty directory */
	hr_etcd_reply_parse(HR_ETCD_OP_RANGE, 200,
			    "{\"header\":{\"revision\":\"3\"}}", 29, &r);
	cr_assert_eq(r.result, HR_ETCD_OK, "%s", r.message);
	cr_assert_eq(r.view.n, 0);
	hr_etcd_reply_dispose(&r);

	/* what the decision cannot rest on */
	hr_etcd_reply_parse(HR_ETCD_OP_RANGE, 200, "{\"kvs\":[]}", 10, &r);
	cr_assert_eq(r.result, HR_ETCD_FAILED);
	hr_etcd_reply_dispose(&r);
	strcpy(body, "{\"header\":{\"revision\":\"3\"},\"kvs\":["
		     "{\"key\":\"YQ==\",\"mod_revision\":\"6\"},"
		     "{\"key\":\"!!\",\"mod_revision\":\"7\"}]}");
	hr_etcd_reply_parse(HR_ETCD_OP_RANGE, 200, body, strlen(body), &r);
	cr_assert_eq(r.result, HR_ETCD_FAILED);
	cr_assert_str_eq(r.message, "range reply: a key is not base64");
	cr_assert_eq(r.view.n, 0);
	hr_etcd_reply_dispose(&r);
	strcpy(body, "{\"header\":{\"revision\":\"3\"},\"kvs\":["
		     "{\"key\":\"YQ==\"}]}");
	hr_etcd_reply_parse(HR_ETCD_OP_RANGE, 200, body, strlen(body), &r);
	cr_assert_eq(r.result, HR_ETCD_FAILED);
	cr_assert_str_eq(r.message, "range reply: a key without mod_revision");
	hr_etcd_reply_dispose(&r);

	/* the guarded txn's answer: succeeded false = read again */
	hr_etcd_reply_parse(HR_ETCD_OP_FLOOR_DELETE, 200,
			    "{\"header\":{},\"succeeded\":false}", 31, &r);
	cr_assert_eq(r.result, HR_ETCD_OK);
	cr_assert_not(r.succeeded);
	hr_etcd_reply_dispose(&r);
}

/*
 * The largest floor still fits etcd's default --max-txn-ops (128), which
 * bounds the txn's compares: the own key's LEASE and MOD and one MOD per
 * counted other key (etcd answers 129 compares with 400 "too many
 * operations in txn request").
 */
Test(etcd_payload, floor_delete_txn_fits_max_txn_ops)
{
	struct hr_etcd_view v;
	cJSON *j;
	char *b;

	make_view(&v, HR_ETCD_MIN_HEALTHY_MAX + 1);
	b = hr_etcd_body_floor_delete(&v, "k0", 7, HR_ETCD_MIN_HEALTHY_MAX);
	cr_assert_not_null(b);
	j = cJSON_Parse(b);
	cr_assert_leq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "compare")),
		      128);
	cJSON_Delete(j);
	free(b);
	hr_etcd_view_dispose(&v);
}

/* The shared lease's re-puts: one txn of request_put ops without
 * compares, each under the lease; 1..128 of them. */
Test(etcd_payload, puts_txn)
{
	const char *keys[HR_ETCD_TXN_OPS_MAX + 1], *values[HR_ETCD_TXN_OPS_MAX + 1];
	cJSON *j, *op;
	char *b;
	size_t i;

	for (i = 0; i <= HR_ETCD_TXN_OPS_MAX; i++) {
		keys[i] = "k";
		values[i] = "v";
	}
	keys[1] = "services/b/h:2";
	b = hr_etcd_body_puts(keys, values, 2, 7);
	cr_assert_str_eq(b, "{\"success\":["
		"{\"request_put\":{\"key\":\"aw==\",\"value\":\"dg==\","
		"\"lease\":\"7\"}},"
		"{\"request_put\":{\"key\":\"c2VydmljZXMvYi9oOjI=\","
		"\"value\":\"dg==\",\"lease\":\"7\"}}]}");
	free(b);
	b = hr_etcd_body_puts(keys, values, HR_ETCD_TXN_OPS_MAX, 7);
	j = cJSON_Parse(b);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "success")),
		     HR_ETCD_TXN_OPS_MAX);
	op = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "success"), 0);
	cr_assert_not_null(cJSON_GetObjectItem(op, "request_put"));
	cr_assert_null(cJSON_GetObjectItem(j, "compare"));
	cJSON_Delete(j);
	free(b);
	cr_assert_null(hr_etcd_body_puts(keys, values, 0, 7));
	cr_assert_null(hr_etcd_body_puts(keys, values,
					 HR_ETCD_TXN_OPS_MAX + 1, 7));
}

/* The shared lease's delete of a gone backend's key: LEASE, and MOD when
 * the revision of the put it knows is known, so that a newer put (a
 * reload's new backend) is never deleted. */
Test(etcd_payload, delete_if_unchanged_body)
{
	char *b;

	b = hr_etcd_body_delete_if_unchanged("foo", 1000, 42);
	cr_assert_str_eq(b,
		"{\"compare\":[{\"target\":\"LEASE\",\"key\":\"Zm9v\","
		"\"result\":\"EQUAL\",\"lease\":\"1000\"},{\"target\":\"MOD\","
		"\"key\":\"Zm9v\",\"result\":\"EQUAL\",\"mod_revision\":\"42\"}],"
		"\"success\":[{\"request_delete_range\":{\"key\":\"Zm9v\"}}]}");
	free(b);
	/* Revision unknown: the lease alone, as delete_if_lease. */
	b = hr_etcd_body_delete_if_unchanged("foo", 1000, 0);
	cr_assert_str_eq(b,
		"{\"compare\":[{\"target\":\"LEASE\",\"key\":\"Zm9v\","
		"\"result\":\"EQUAL\",\"lease\":\"1000\"}],"
		"\"success\":[{\"request_delete_range\":{\"key\":\"Zm9v\"}}]}");
	free(b);
}

/* A put's and a txn of puts' answers carry the revision they wrote at
 * (the header's, a decimal string in the gateway's JSON); absent or bad:
 * 0 (unknown), never an error. */
Test(etcd_payload, put_reply_revision)
{
	static const struct {
		enum hr_etcd_op op;
		const char *body;
		int64_t rev;
	} cases[] = {
		{ HR_ETCD_OP_PUT, "{\"header\":{\"revision\":\"17\"}}", 17 },
		{ HR_ETCD_OP_PUTS, "{\"header\":{\"revision\":\"9007199254740993\"},"
		  "\"succeeded\":true}", INT64_C(9007199254740993) },
		{ HR_ETCD_OP_PUT, "{\"header\":{}}", 0 },
		{ HR_ETCD_OP_PUT, "{\"header\":{\"revision\":\"-3\"}}", 0 },
		{ HR_ETCD_OP_PUT, "{\"header\":{\"revision\":\"x\"}}", 0 },
		/* Not a put: not read. */
		{ HR_ETCD_OP_REVOKE, "{\"header\":{\"revision\":\"5\"}}", 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hr_etcd_reply r;

		hr_etcd_reply_parse(cases[i].op, 200, cases[i].body,
				    strlen(cases[i].body), &r);
		cr_assert_eq(r.result, HR_ETCD_OK, "case %zu: %s", i,
			     r.message);
		cr_assert_eq(r.revision, cases[i].rev, "case %zu: %" PRId64, i,
			     r.revision);
		hr_etcd_reply_dispose(&r);
	}
}
