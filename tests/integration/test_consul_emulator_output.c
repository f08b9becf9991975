/*
 * test_consul_emulator_output.c - the backend on a libev loop against the
 * Consul agent emulator, for what the healthreg binary cannot easily
 * produce: aggregate output over 4 KiB and with odd bytes must arrive in
 * the agent's check byte for byte as hr_consul_output_prepare() made it
 * (no second truncation by the agent, valid UTF-8, JSON escaping intact).
 *
 * The emulator is started by fork/exec, dies with this process
 * (PR_SET_PDEATHSIG) and is killed by PID in the fixture.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <ev.h>

#include "consul/consul.h"
#include "consul/consul_payload.h"
#include "healthreg/http.h"
#include "healthreg/log.h"

static pid_t emu_pid = -1;
static int emu_port;
static char tmpdir[] = "/tmp/hr-consul-emu-XXXXXX";
static struct ev_loop *loop;
static struct hr_http *http;
static struct hr_registry *reg;
static char *tags[] = { NULL };
static struct hr_service_spec svc = { .name = "odd", .id = "odd-1",
				      .tags = tags };

static void emu_start(void)
{
	const char *src = getenv("HR_SOURCE_DIR");
	char script[4096], port_file[256], log_file[256];
	double end = ev_time() + 15;
	pid_t parent = getpid();

	cr_assert_not_null(src, "HR_SOURCE_DIR is not set");
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(script, sizeof(script),
		 "%s/tests/consul_emulator/emulator.py", src);
	snprintf(port_file, sizeof(port_file), "%s/port", tmpdir);
	snprintf(log_file, sizeof(log_file), "%s/log", tmpdir);
	emu_pid = fork();
	cr_assert_geq(emu_pid, 0);
	if (emu_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		execlp("python3", "python3", script, "--port", "0",
		       "--port-file", port_file, "--log", log_file,
		       (char *)NULL);
		_exit(127);
	}
	while (ev_time() < end) {
		FILE *f = fopen(port_file, "r");

		if (f) {
			int ok = fscanf(f, "%d", &emu_port) == 1;

			fclose(f);
			if (ok && emu_port > 0)
				return;
		}
		cr_assert_eq(waitpid(emu_pid, NULL, WNOHANG), 0,
			     "emulator exited");
		usleep(20000);
	}
	cr_assert_fail("emulator did not start");
}

static void emu_stop(void)
{
	char path[300];

	if (emu_pid > 0) {
		kill(emu_pid, SIGKILL);
		waitpid(emu_pid, NULL, 0);
		emu_pid = -1;
	}
	snprintf(path, sizeof(path), "%s/port", tmpdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/log", tmpdir);
	unlink(path);
	rmdir(tmpdir);
}

static void setup(void)
{
	struct hr_registry_env env;
	struct hr_err err = { "" };
	char json[256];
	cJSON *conf;

	memset(&env, 0, sizeof(env));
	emu_start();
	loop = ev_loop_new(EVFLAG_AUTO);
	cr_assert_eq(hr_http_new(&http, loop, &err), 0);
	hr_log_setup(HR_LOG_WARN, HR_LOG_LOGFMT, stderr);
	unsetenv("CONSUL_HTTP_TOKEN");
	unsetenv("CONSUL_HTTP_TOKEN_FILE");
	snprintf(json, sizeof(json),
		 "{\"address\":\"http://127.0.0.1:%d\",\"check_ttl\":\"3s\"}",
		 emu_port);
	conf = cJSON_Parse(json);
	env.loop = loop;
	env.http = http;
	env.service = &svc;
	env.shutdown_timeout_ms = 2000;
	cr_assert_eq(hr_registry_consul.create(&reg, conf, &env, &err), 0,
		     "%s", err.msg);
	cJSON_Delete(conf);
}

static void teardown(void)
{
	hr_registry_consul.destroy(reg);
	hr_http_free(http);
	if (loop)
		ev_loop_destroy(loop);
	emu_stop();
}

TestSuite(consul_emulator_output, .init = setup, .fini = teardown,
	  .timeout = 60);

static size_t collect(char *d, size_t size, size_t n, void *userp)
{
	char **buf = userp;
	size_t old = *buf ? strlen(*buf) : 0;
	char *p = realloc(*buf, old + size * n + 1);

	memcpy(p + old, d, size * n);
	p[old + size * n] = '\0';
	*buf = p;
	return size * n;
}

/* The agent's Output of our check, or NULL (blocking GET, loop idle). */
static char *agent_output(void)
{
	char url[128], *body = NULL, *out = NULL;
	CURL *e = curl_easy_init();
	cJSON *j, *c;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/agent/checks",
		 emu_port);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, 5L);
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_perform(e);
	curl_easy_cleanup(e);
	j = body ? cJSON_Parse(body) : NULL;
	c = cJSON_GetObjectItemCaseSensitive(j, "service:odd-1:healthreg");
	c = cJSON_GetObjectItemCaseSensitive(c, "Output");
	if (cJSON_IsString(c))
		out = strdup(c->valuestring);
	cJSON_Delete(j);
	free(body);
	return out;
}

static void tick_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(l, EVBREAK_ONE);
}

/* Run the loop until the agent's Output equals want (or 10 s). */
static char *wait_output(const char *want)
{
	double end = ev_time() + 10;
	char *got = NULL;
	ev_timer t;

	while (ev_time() < end) {
		ev_timer_init(&t, tick_cb, 0.1, 0.);
		ev_timer_start(loop, &t);
		ev_run(loop, 0);
		ev_timer_stop(loop, &t);
		free(got);
		got = agent_output();
		if (got && !strcmp(got, want))
			break;
	}
	return got;
}

Test(consul_emulator_output, big_output_stored_exactly)
{
	size_t n = 10000, i;
	char *big = malloc(n + 1), *want, *got;

	for (i = 0; i < n; i++)
		big[i] = "0123456789abcdef"[i % 16];
	/* A 3-byte character straddling the 4 KiB cut. */
	memcpy(big + 4050, "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac", 9);
	big[n] = '\0';
	want = hr_consul_output_prepare(big, HR_CONSUL_OUTPUT_MAX);
	cr_assert_leq(strlen(want), HR_CONSUL_OUTPUT_MAX);
	hr_registry_consul.apply(reg, HR_STATUS_PASSING, big);
	got = wait_output(want);
	cr_assert_not_null(got, "check never appeared");
	cr_assert_str_eq(got, want);
	cr_assert(strstr(got, " of 10000 bytes)"));
	free(got);
	free(want);
	free(big);
}

Test(consul_emulator_output, odd_bytes_survive_the_round_trip)
{
	static const char odd[] =
		"quote\" backslash\\ nl\n tab\t ctl\x01\x1f del\x7f "
		"bad\xff\xfe cut\xe2\x82 ok\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
		" ls\xe2\x80\xa8 </script>";
	char *want = hr_consul_output_prepare(odd, HR_CONSUL_OUTPUT_MAX), *got;

	hr_registry_consul.apply(reg, HR_STATUS_WARNING, odd);
	got = wait_output(want);
	cr_assert_not_null(got, "check never appeared");
	cr_assert_str_eq(got, want);
	cr_assert(strstr(got, "bad\xef\xbf\xbd\xef\xbf\xbd cut"));
	free(got);
	free(want);
}
