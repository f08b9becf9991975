/* loop.c - see loop.h. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop.h"

static void guard_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(l, EVBREAK_ALL);
}

double hr_test_time_scale(void)
{
	const char *v = getenv("HR_TEST_TIME_SCALE");
	double f = v ? strtod(v, NULL) : 1.0;

	return f >= 1.0 ? f : 1.0;
}

void hr_test_run_for(struct ev_loop *loop, double secs)
{
	ev_timer guard;

	ev_timer_init(&guard, guard_cb, secs, 0.);
	ev_timer_start(loop, &guard);
	ev_run(loop, 0);
	ev_timer_stop(loop, &guard);
}

bool hr_test_run_until(struct ev_loop *loop, const int *flag, double timeout)
{
	double end = ev_time() + timeout;

	while (!*flag && ev_time() < end)
		hr_test_run_for(loop, 0.01);
	return *flag != 0;
}

int hr_test_listener(int *port)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(fd, 1024) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

int hr_test_closed_port(void)
{
	int port, fd = hr_test_listener(&port);

	if (fd < 0)
		return -1;
	close(fd);
	return port;
}
