/*
 * test_regcore_tls.c - the pure parts of the shared TLS layer: which
 * failed transfers are TLS failures, curl's reason as one line, and the
 * common TLS keys every backend's section has (ca_path, tls_skip_verify).
 */
#include <stdbool.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "etcd/etcd_payload.h"
#include "healthreg/regcore.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

Test(regcore_tls, failures_told_apart)
{
	static const struct {
		CURLcode rc;
		const char *errbuf;
		bool tls;
	} t[] = {
		{ CURLE_PEER_FAILED_VERIFICATION,
		  "SSL certificate problem: certificate has expired", true },
		{ CURLE_SSL_CONNECT_ERROR, "error:0A00010B:SSL routines::"
		  "wrong version number", true },
		{ CURLE_SSL_CERTPROBLEM, "could not load PEM client "
		  "certificate", true },
		{ CURLE_SSL_CACERT_BADFILE, "", true },
		{ CURLE_SSL_CLIENTCERT, NULL, true },
		/* TLS 1.3: the server's refusal read after the handshake. */
		{ CURLE_RECV_ERROR, "OpenSSL SSL_read: OpenSSL/3.0.19: "
		  "error:0A00045C:SSL routines::tlsv13 alert certificate "
		  "required, errno 0", true },
		{ CURLE_RECV_ERROR, "Connection reset by peer", false },
		{ CURLE_RECV_ERROR, "OpenSSL SSL_read: Connection reset by "
		  "peer, errno 104", false },
		{ CURLE_SEND_ERROR, "SSL_write() error: error:0A00007F:SSL "
		  "routines::bad write retry", true },
		{ CURLE_SEND_ERROR, "Send failure: Broken pipe", false },
		{ CURLE_COULDNT_CONNECT, "Failed to connect to 127.0.0.1 "
		  "port 1", false },
		{ CURLE_OPERATION_TIMEDOUT, "", false },
		{ CURLE_GOT_NOTHING, "Empty reply from server", false },
		{ CURLE_OK, "", false },
	};
	size_t i;

	for (i = 0; i < N(t); i++)
		cr_expect_eq(hr_reg_tls_failed(t[i].rc, t[i].errbuf), t[i].tls,
			     "case %zu", i);
}

Test(regcore_tls, curl_reason_one_line)
{
	char buf[256];

	cr_expect_str_eq(hr_reg_curl_reason(CURLE_COULDNT_CONNECT, "", buf,
					    sizeof(buf)),
			 "Couldn't connect to server");
	cr_expect_str_eq(hr_reg_curl_reason(CURLE_PEER_FAILED_VERIFICATION,
					    "SSL certificate problem: "
					    "certificate has expired\n", buf,
					    sizeof(buf)),
			 "SSL certificate problem: certificate has expired "
			 "(SSL peer certificate or SSH remote key was not OK)");
	/* A detail that already holds curl's text is not repeated. */
	cr_expect_str_eq(hr_reg_curl_reason(CURLE_GOT_NOTHING,
					    "Server returned nothing (no "
					    "headers, no data)", buf,
					    sizeof(buf)),
			 "Server returned nothing (no headers, no data)");
	/* Cut to the buffer, still a string. */
	cr_expect_eq(strlen(hr_reg_curl_reason(CURLE_PEER_FAILED_VERIFICATION,
					       "x", buf, 8)), 7);
}

/* ca_path and tls_skip_verify are common keys: any backend has them,
 * with the same words (here etcd's section). */
Test(regcore_tls, common_keys)
{
	struct hr_etcd_conf c;
	struct hr_diag d;
	cJSON *j = cJSON_Parse("{\"endpoints\":[\"https://127.0.0.1:2379\"],"
			       "\"ca_path\":\"/etc/ssl/mine\","
			       "\"tls_skip_verify\":true}");

	hr_diag_init(&d);
	cr_assert_eq(hr_etcd_conf_parse(&c, j, "registry.etcd", &d), 0);
	cr_expect_str_eq(c.common.ca_path, "/etc/ssl/mine");
	cr_expect(c.common.tls_skip_verify);
	cr_expect_eq(d.warnings, 1);
	cr_expect(strstr(d.v[0].text, "registry.etcd.tls_skip_verify: true: "
			 "the registry's certificate and host name are not "
			 "verified"));
	hr_etcd_conf_dispose(&c);
	hr_diag_dispose(&d);
	cJSON_Delete(j);

	j = cJSON_Parse("{\"tls_skip_verify\":\"yes\",\"ca_path\":\"\"}");
	hr_diag_init(&d);
	cr_assert_lt(hr_etcd_conf_parse(&c, j, "registry.etcd", &d), 0);
	cr_expect_eq(d.errors, 2);
	hr_diag_dispose(&d);
	cJSON_Delete(j);
}
