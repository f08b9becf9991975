/*
 * embed.c - a C service that aggregates its own health in-process with
 * libhealthreg: a TCP check on its own listening port, plus a heartbeat
 * (ttl check) that the service's main work feeds. It asks for one
 * evaluation, prints the aggregate and exits 0 when passing.
 *
 * Build it against an installed libhealthreg (`cmake --install build`,
 * README.md "Install"); with a prefix P outside the default search paths,
 * first export PKG_CONFIG_PATH=P/lib/pkgconfig (and, for the shared
 * library, run it with LD_LIBRARY_PATH=P/lib):
 *
 *   cc embed.c -o embed $(pkg-config --cflags --libs healthreg)
 *   cc embed.c -o embed $(pkg-config --cflags --libs healthreg-static)
 *
 * The first links libhealthreg.so, the second libhealthreg.a. In CMake:
 * find_package(healthreg) and link healthreg::healthreg (or
 * healthreg::healthreg_static). tests/integration/test_install.py runs
 * these lines from a fresh install.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <healthreg/aggregator.h>

static void done(struct hr_agg *agg, enum hr_status status,
		 const char *output, void *payload)
{
	int *exit_code = payload;

	printf("aggregate: %s (%s)\n", hr_status_name(status), output);
	*exit_code = status == HR_STATUS_PASSING ? 0 : 1;
	ev_break(hr_agg_loop(agg), EVBREAK_ALL);
}

int main(void)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct hr_agg_opts opts = { .max_concurrent = 8 };
	struct hr_check_spec tcp, beat;
	struct hr_agg *agg = NULL;
	struct hr_err err;
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	char target[32];
	int fd, exit_code = 2;

	/* The service's own port. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(fd, 16) || getsockname(fd, (struct sockaddr *)&a, &len)) {
		perror("listen");
		return 2;
	}
	snprintf(target, sizeof(target), "127.0.0.1:%d", ntohs(a.sin_port));

	if (hr_agg_new(&agg, loop, NULL, &opts, &err)) {
		fprintf(stderr, "hr_agg_new: %s\n", err.msg);
		return 2;
	}
	memset(&tcp, 0, sizeof(tcp));
	tcp.name = "listener";
	tcp.kind = HR_CHECK_TCP;
	tcp.target = target;
	tcp.interval_ms = 10000;
	tcp.timeout_ms = 1000;
	tcp.cache_ttl_ms = 1000;
	tcp.failure_ttl_ms = 1000;
	tcp.group = -1;

	memset(&beat, 0, sizeof(beat));
	beat.name = "worker-heartbeat";
	beat.kind = HR_CHECK_TTL;
	beat.ttl_ms = 5000;
	beat.group = -1;

	if (hr_agg_add_check(agg, &tcp, &err) ||
	    hr_agg_add_check(agg, &beat, &err)) {
		fprintf(stderr, "add: %s\n", err.msg);
		return 2;
	}
	/* The service's worker reports in. */
	hr_agg_ttl_update(agg, "worker-heartbeat", HR_STATUS_PASSING,
			  "processed 12 jobs");

	if (hr_agg_evaluate(agg, done, &exit_code) == 0 && exit_code == 2)
		ev_run(loop, 0);

	hr_agg_free(agg);
	ev_loop_destroy(loop);
	close(fd);
	return exit_code;
}
