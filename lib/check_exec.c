/*
 * check_exec.c - the args (exec) check kind: argv without a shell.
 *
 *   start(): pipe, posix_spawn in a new session (its own process group),
 *     stdin /dev/null, stdout+stderr -> pipe, no other fds; pidfd_open
 *     -> pipe_cb (keeps the first HR_OUTPUT_MAX bytes, counts all)
 *     -> exit_cb (pidfd readable: reap, drain the pipe, kill the group)
 *     -> timeout_cb (kill the group, then wait for exit_cb)
 *   exit 0 passing, 1 warning, anything else critical.
 *   The child's environment is the allow-listed part of ours (exec.h).
 *
 * Limit: a process that leaves the group (setsid(), setpgid()) escapes
 * the group kill and outlives its check (docs/security.md). A cgroup per
 * check would contain it; healthreg does not manage cgroups.
 *
 * On libev's default loop (which reaps every child on SIGCHLD) the exit is
 * seen with ev_child; on any other loop with a pidfd (Linux >= 5.3), so no
 * SIGCHLD handler is needed; where pidfd_open() says ENOSYS (older kernels,
 * valgrind 3.19) by polling waitpid(WNOHANG) every 10 ms. The child is always reaped, grandchildren are
 * killed with the group, and every fd of ours is close-on-exec or closed
 * in the child.
 *
 * Ownership: struct exec_run is one run's state. start() allocates it and
 * puts it in the check's run slot once the child runs; release() frees it
 * with its watchers, fds and output capture, and on_exit_status() calls
 * it before hr__check_finish(), which copies the output it is given.
 * The child process is the run's too: every path kills its group and
 * reaps it. cancel() kills the group, reaps the child (SIGKILL cannot be
 * caught, so the wait is short) and reports nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "healthreg/confget.h"
#include "healthreg/exec.h"
#include "internal.h"

extern char **environ;

/* ---- the child's environment (exec.h) ----------------------------------- */

static const char *const env_default[] = { HR_EXEC_ENV_DEFAULT, NULL };
static char **env_allow; /* owned copy; NULL = env_default */

int hr_exec_env_set(const char *const *names)
{
	char **v = NULL;
	size_t i, n = 0;

	if (names) {
		while (names[n])
			n++;
		v = calloc(n + 1, sizeof(*v));
		for (i = 0; v && i < n; i++)
			if (!(v[i] = strdup(names[i]))) {
				hr_conf_strv_free(v);
				v = NULL;
			}
		if (!v)
			return -ENOMEM;
	}
	hr_conf_strv_free(env_allow);
	env_allow = v;
	return 0;
}

static bool has_word(const char *name, size_t n, const char *word)
{
	size_t w = strlen(word), i;

	for (i = 0; i + w <= n; i++)
		if (!strncasecmp(name + i, word, w))
			return true;
	return false;
}

/* Never passed through a pattern: only when named exactly. */
static bool looks_secret(const char *name, size_t n)
{
	static const char *const words[] = {
		"TOKEN", "PASSWORD", "PASSWD", "SECRET", "KEY", "CREDENTIAL",
	};
	size_t i;

	if (n >= 12 && !strncmp(name, "CONSUL_HTTP_", 12))
		return true;
	if (n >= 5 && !strncmp(name, "ETCD_", 5))
		return true;
	if (n == 13 && !strncmp(name, "NOTIFY_SOCKET", 13))
		return true;
	for (i = 0; i < HR_ARRAY_SIZE(words); i++)
		if (has_word(name, n, words[i]))
			return true;
	return false;
}

bool hr_exec_env_allowed(const char *var)
{
	const char *const *allow = env_allow ? (const char *const *)env_allow
					     : env_default;
	size_t n = strcspn(var, "="), len;
	bool secret = looks_secret(var, n);

	for (; *allow; allow++) {
		len = strlen(*allow);
		if (len == n && !strncmp(*allow, var, n))
			return true;
		if (len && (*allow)[len - 1] == '*' && !secret &&
		    len - 1 <= n && !strncmp(*allow, var, len - 1))
			return true;
	}
	return false;
}

/* The allowed part of environ (borrowed strings), or NULL (ENOMEM). */
static char **child_env(void)
{
	size_t n = 0, k = 0;
	char **v;

	while (environ && environ[n])
		n++;
	v = malloc((n + 1) * sizeof(*v));
	if (!v)
		return NULL;
	for (n = 0; environ && environ[n]; n++)
		if (hr_exec_env_allowed(environ[n]))
			v[k++] = environ[n];
	v[k] = NULL;
	return v;
}

/* ---- one run --------------------------------------------------------------- */

struct exec_run {
	struct hr_check *c;
	ev_io pipe_io;
	ev_io pid_io;
	ev_child child;
	ev_timer poll;         /* no pidfd (ENOSYS): waitpid every 10 ms */
	ev_timer timer;
	pid_t pid;
	int pipe_fd, pid_fd;
	bool timed_out;
	struct hr_capture out; /* first HR_OUTPUT_MAX bytes, all counted */
};

static void drain(struct exec_run *r)
{
	char tmp[4096];
	ssize_t n;

	while (r->pipe_fd >= 0) {
		n = read(r->pipe_fd, tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0 || errno != EAGAIN) {
				ev_io_stop(hr__check_loop(r->c), &r->pipe_io);
				close(r->pipe_fd);
				r->pipe_fd = -1;
			}
			return;
		}
		hr_capture_add(&r->out, tmp, (size_t)n);
	}
}

static void release(struct exec_run *r)
{
	struct ev_loop *loop = hr__check_loop(r->c);

	ev_io_stop(loop, &r->pipe_io);
	ev_io_stop(loop, &r->pid_io);
	ev_child_stop(loop, &r->child);
	ev_timer_stop(loop, &r->poll);
	ev_timer_stop(loop, &r->timer);
	if (r->pipe_fd >= 0)
		close(r->pipe_fd);
	if (r->pid_fd >= 0)
		close(r->pid_fd);
	r->pipe_fd = r->pid_fd = -1;
	hr_capture_dispose(&r->out);
	free(r);
}

/* The child has been reaped: code is its exit status, or -signal. */
static void on_exit_status(struct exec_run *r, int code)
{
	struct hr_check *c = r->c;
	const struct hr_check_spec *s = hr__check_spec(c);
	enum hr_status st;
	char msg[128];
	char *out;
	size_t len, total;

	/* Whatever is still in the pipe, then no process of the group may
	 * outlive the check. */
	drain(r);
	kill(-r->pid, SIGKILL);
	if (r->timed_out) {
		len = (size_t)snprintf(msg, sizeof(msg),
				       "Timed out (%lldms) running check",
				       (long long)s->timeout_ms);
		*hr__check_run_slot(c) = NULL;
		release(r);
		hr__check_finish(c, HR_STATUS_CRITICAL, msg, len, len);
		return;
	}
	msg[0] = '\0';
	if (code >= 0)
		st = code == 0 ? HR_STATUS_PASSING
		     : code == 1 ? HR_STATUS_WARNING : HR_STATUS_CRITICAL;
	else {
		st = HR_STATUS_CRITICAL;
		snprintf(msg, sizeof(msg), "killed by signal %d", -code);
	}
	len = r->out.len;
	total = r->out.total;
	out = hr_capture_take(&r->out);
	if (msg[0] && !total) {
		free(out);
		out = NULL;
		len = total = strlen(msg);
	}
	*hr__check_run_slot(c) = NULL;
	release(r);
	/* finish copies the output. */
	hr__check_finish(c, st, out ? out : msg, len, total);
	free(out);
}

/* pidfd readable: the child exited (loops other than the default one). */
static void exit_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct exec_run *r = container_of(w, struct exec_run, pid_io);
	siginfo_t si;

	(void)loop;
	(void)revents;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PIDFD, (id_t)r->pid_fd, &si, WEXITED | WNOHANG) < 0) {
		/* Someone else reaped it: the status is lost. */
		on_exit_status(r, -SIGCHLD);
		return;
	}
	if (si.si_pid == 0)
		return; /* spurious */
	on_exit_status(r, si.si_code == CLD_EXITED ? si.si_status
						   : -si.si_status);
}

/* A wait status as on_exit_status() takes it. */
static int exit_code(int ws)
{
	return WIFEXITED(ws) ? WEXITSTATUS(ws)
			     : -(WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
}

/* The default loop reaps every child itself (SIGCHLD): use ev_child. */
static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct exec_run *r = container_of(w, struct exec_run, child);

	(void)revents;
	ev_child_stop(loop, w);
	on_exit_status(r, exit_code(w->rstatus));
}

/* Kernels (or valgrind) without pidfd_open: ask waitpid now and then. */
static void poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct exec_run *r = container_of(w, struct exec_run, poll);
	pid_t p;
	int ws = 0;

	(void)revents;
	p = waitpid(r->pid, &ws, WNOHANG);
	if (p == 0 || (p < 0 && errno == EINTR))
		return;
	ev_timer_stop(loop, w);
	/* p < 0: someone else reaped it, the status is lost. */
	on_exit_status(r, p < 0 ? -SIGCHLD : exit_code(ws));
}

static void pipe_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct exec_run *r = container_of(w, struct exec_run, pipe_io);

	(void)loop;
	(void)revents;
	drain(r);
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct exec_run *r = container_of(w, struct exec_run, timer);

	(void)loop;
	(void)revents;
	r->timed_out = true;
	kill(-r->pid, SIGKILL);
	/* exit_cb reaps the child and finishes. */
}

/*
 * Spawn s->args in a new session with stdout+stderr into a pipe; the
 * parent's (non-blocking) read end in *rd. 0, or a negative errno with
 * err set and nothing left open.
 */
static int spawn_child(const struct hr_check_spec *s, pid_t *pid, int *rd,
		       struct hr_err *err)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, defs;
	char **envp;
	int p[2] = { -1, -1 };
	int rc;

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return hr_err_set(err, -errno, "pipe: %s", strerror(errno));
	/* The child's end must block: a script writing to a full pipe
	 * should wait, not fail. */
	fcntl(p[1], F_SETFL, 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigfillset(&defs);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &defs);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID |
						POSIX_SPAWN_SETSIGMASK |
						POSIX_SPAWN_SETSIGDEF);
	envp = child_env();
	rc = envp ? posix_spawnp(pid, s->args[0], &fa, &attr, s->args, envp)
		  : ENOMEM;
	free(envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(p[1]);
	if (rc) {
		close(p[0]);
		return hr_err_set(err, -rc, "exec %s: %s", s->args[0],
				  strerror(rc));
	}
	*rd = p[0];
	return 0;
}

/*
 * Watch for the child's exit: ev_child on the default loop, its pidfd
 * anywhere else. 0, or a negative errno with err set (the caller kills
 * and reaps the child).
 */
static int watch_exit(struct exec_run *r, struct ev_loop *loop,
		      struct hr_err *err)
{
	ev_child_init(&r->child, child_cb, r->pid, 0);
	ev_io_init(&r->pid_io, exit_cb, -1, EV_READ);
	ev_timer_init(&r->poll, poll_cb, 0.01, 0.01);
	if (ev_is_default_loop(loop)) {
		/* SIGCHLD is only handled in the loop, so nothing is lost
		 * between the spawn and this start. */
		ev_child_start(loop, &r->child);
		return 0;
	}
	r->pid_fd = pidfd_open(r->pid, 0);
	if (r->pid_fd < 0 && errno == ENOSYS) {
		ev_timer_start(loop, &r->poll);
		return 0;
	}
	if (r->pid_fd < 0) {
		int e = errno;

		return hr_err_set(err, -e, "pidfd_open: %s", strerror(e));
	}
	fcntl(r->pid_fd, F_SETFD, FD_CLOEXEC);
	ev_io_set(&r->pid_io, r->pid_fd, EV_READ);
	ev_io_start(loop, &r->pid_io);
	return 0;
}

static int exec_start(struct hr_check *c, struct hr_err *err)
{
	const struct hr_check_spec *s = hr__check_spec(c);
	struct ev_loop *loop = hr__check_loop(c);
	struct exec_run *r = calloc(1, sizeof(*r));
	int rc;

	if (!r)
		return hr_err_set(err, -ENOMEM, "out of memory");
	r->c = c;
	r->pipe_fd = r->pid_fd = -1;
	hr_capture_init(&r->out, HR_OUTPUT_MAX);
	rc = spawn_child(s, &r->pid, &r->pipe_fd, err);
	if (rc < 0) {
		free(r);
		return rc;
	}
	rc = watch_exit(r, loop, err);
	if (rc < 0) {
		kill(-r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0); /* killed: returns at once */
		close(r->pipe_fd);
		free(r);
		return rc;
	}
	ev_io_init(&r->pipe_io, pipe_cb, r->pipe_fd, EV_READ);
	ev_timer_init(&r->timer, timeout_cb, (double)s->timeout_ms / 1000.0, 0.);
	ev_io_start(loop, &r->pipe_io);
	ev_timer_start(loop, &r->timer);
	*hr__check_run_slot(c) = r;
	return 0;
}

static void exec_cancel(struct hr_check *c)
{
	struct exec_run *r = *hr__check_run_slot(c);

	if (!r)
		return;
	kill(-r->pid, SIGKILL);
	/* SIGKILL cannot be caught: the wait ends promptly. On the default
	 * loop libev may reap it first; ECHILD is fine then. */
	waitpid(r->pid, NULL, 0);
	*hr__check_run_slot(c) = NULL;
	release(r);
}

const struct hr__check_kind hr__check_exec = {
	.start = exec_start,
	.cancel = exec_cancel,
};
