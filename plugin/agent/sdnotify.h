/*
 * sdnotify.h - the systemd notification protocol (sd_notify(3)) without
 * libsystemd: one datagram to $NOTIFY_SOCKET per message.
 */
#ifndef HR_SDNOTIFY_H
#define HR_SDNOTIFY_H

#include <stdint.h>

/** Send msg ("READY=1", ...). A no-op without NOTIFY_SOCKET. 0 or -errno. */
int hr_sd_notify(const char *msg);

/**
 * The watchdog interval systemd expects pings at (WATCHDOG_USEC, when
 * WATCHDOG_PID is unset or ours), in microseconds; 0 when disabled.
 */
uint64_t hr_sd_watchdog_usec(void);

#endif
