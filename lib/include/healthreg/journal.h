/*
 * journal.h - the decision journal: every registry decision (register,
 * deregister, the grace period, kept by the fleet floor, held during a
 * reload, maintenance on/off, shutdown) with its time, service, backend,
 * the status the backend was told, the aggregate and the checks that
 * caused it. A bounded ring in memory (agent.journal_size entries, 0 =
 * none kept), one "decision" log line per entry, GET /v1/decisions and
 * `healthreg why` read it.
 *
 * Who records: lib/regcore.c for what every backend shares (register and
 * deregister on the registration turning wanted or not, the grace period,
 * shutdown; hr_regcore_decide() for a backend's own: the fleet floor, a
 * registration the registry dropped), the agent for what it decides
 * (reload hold, maintenance).
 *
 * Lifetimes: struct hr_journal is a value its owner (the agent) embeds;
 * it owns its ring. Entries are fixed-size copies (strings cut to fit):
 * nothing in an entry points anywhere. The context callback and its
 * payload are borrowed; the owner keeps them valid while anyone may
 * record (a backend's regcore borrows the journal for its whole life,
 * so the journal outlives every backend).
 */
#ifndef HEALTHREG_JOURNAL_H
#define HEALTHREG_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "healthreg/status.h"

#define HR_JOURNAL_SIZE_DEFAULT 256
#define HR_JOURNAL_SIZE_MAX 10000
/* Checks named per entry: the ones not passing, then the last one whose
 * status changed. */
#define HR_JOURNAL_CHECKS 4

enum hr_decision {
	HR_DECISION_REGISTER,           /* "register": the registration is
					   wanted (written, or to be) */
	HR_DECISION_DEREGISTER,         /* "deregister": not wanted (removed,
					   or never written) */
	HR_DECISION_DEREGISTER_PENDING, /* "deregister_pending": left
					   register_when, stays registered for
					   deregister_after */
	HR_DECISION_KEPT,               /* "kept_by_floor": would leave, stays
					   for the fleet floor */
	HR_DECISION_HELD,               /* "held_for_reload": a reload's new
					   checks have no result yet; the
					   registry keeps the last state */
	HR_DECISION_MAINT_ON,           /* "maintenance_on" */
	HR_DECISION_MAINT_OFF,          /* "maintenance_off" */
	HR_DECISION_SHUTDOWN,           /* "shutdown": the agent stops (or a
					   reload retires the backend) */
	HR_DECISION_LOST,               /* "registration_lost": the registry
					   dropped it while wanted (a lease
					   expired or revoked); registering
					   again */
};

/** The decision's word (above); "unknown" out of range. */
const char *hr_decision_name(enum hr_decision d);

struct hr_journal_check {
	char name[128];
	enum hr_status status;     /* after thresholds */
	enum hr_status was;        /* before the last change (changed only) */
	bool changed;              /* the last check whose status changed */
	char output[200];          /* head of the output, one line */
};

struct hr_journal_entry {
	uint64_t seq;              /* 1, 2, ... per journal */
	double time;               /* wall clock */
	enum hr_decision decision;
	char service[128];         /* the service id */
	char backend[32];          /* "consul", "etcd" */
	bool dry_run;              /* decided, not written (see dry_run) */
	bool have_status;
	enum hr_status status;     /* what the backend was told last */
	bool have_aggregate;       /* filled by the context callback */
	enum hr_status aggregate;
	char output[256];          /* the aggregate's summary */
	bool maintenance;
	char why[256];             /* one line */
	size_t n_checks;
	struct hr_journal_check checks[HR_JOURNAL_CHECKS];
};

/* Fills the aggregate, maintenance and checks of e at record time (e's
 * service and backend are set). */
typedef void (*hr_journal_context_cb)(void *payload,
				      struct hr_journal_entry *e);

struct hr_journal {
	struct hr_journal_entry *v; /* ring of cap entries */
	size_t cap, n, head;        /* head: the next slot to write */
	uint64_t seq;               /* the last seq given */
	hr_journal_context_cb context;
	void *payload;
};

/* Empty, keeping nothing (cap 0). Cannot fail. */
void hr_journal_init(struct hr_journal *j);
/* Keep at most cap entries (0: none; at most HR_JOURNAL_SIZE_MAX), the
 * newest kept. Returns 0, -ERANGE or -ENOMEM (unchanged then). */
int hr_journal_resize(struct hr_journal *j, size_t cap);
void hr_journal_dispose(struct hr_journal *j);
void hr_journal_set_context(struct hr_journal *j, hr_journal_context_cb cb,
			    void *payload);

/*
 * Record e (copied): seq and time are set, the context callback fills the
 * cause, the entry goes into the ring (unless cap is 0) and one info line
 * "decision" goes to the log. j may be NULL (logged only). Returns the
 * stored entry (valid until the next record or resize), or NULL when
 * nothing is kept.
 */
const struct hr_journal_entry *hr_journal_record(struct hr_journal *j,
						 const struct hr_journal_entry *e);
/* Entries kept. */
size_t hr_journal_count(const struct hr_journal *j);
/* The i-th entry kept, 0 the oldest; NULL out of range. */
const struct hr_journal_entry *hr_journal_at(const struct hr_journal *j,
					     size_t i);

/* Pure: e as a JSON object (the shape of GET /v1/decisions). NULL: out
 * of memory. */
cJSON *hr_journal_entry_json(const struct hr_journal_entry *e);
/* Pure: the first line of src (NULL: "") into dst, at most len - 1 bytes,
 * never cutting a UTF-8 sequence; bytes that start none become '?'. */
void hr_journal_excerpt(char *dst, size_t len, const char *src);
/* Pure: "name=status (was critical): output; ..." for log lines. */
void hr_journal_checks_text(const struct hr_journal_entry *e, char *buf,
			    size_t len);

#endif
