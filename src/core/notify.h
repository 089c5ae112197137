/**
 * notify: telling a service manager (systemd, Type=notify) how the server is doing, through
 * libsystemd's sd_notify(3).
 *
 * State strings are sd_notify's newline-separated assignments: "READY=1" once serving,
 * "STOPPING=1" when shutting down, "STATUS=..." for a one-line status that `systemctl
 * status` shows, "WATCHDOG=1" as the keep-alive when the unit sets WatchdogSec=.
 *
 * Cost outside systemd: none worth naming. notify_init() reads NOTIFY_SOCKET once; without
 * it notify_send returns at once, before formatting anything, and notify_watchdog_usec is
 * 0, so no watchdog timer exists.
 *
 * Threading: notify_init at startup, before other threads. notify_send is thread-safe but
 * may block (it sends a datagram to the manager's socket, which blocks while that socket's
 * queue is full): call it from the main thread outside the loop's run, or from a thread
 * pool job (uv_queue_work) — never from a loop callback.
 */
#ifndef CIM_CORE_NOTIFY_H
#define CIM_CORE_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/** Read the environment (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID). Startup only. */
void notify_init(void);

/** @return true when a service manager listens (NOTIFY_SOCKET was set at notify_init). */
bool notify_enabled(void);

/**
 * Send one state string, printf-formatted (at most 512 bytes; longer is cut). Does nothing
 * when !notify_enabled(). Best effort: a manager that went away is not the server's
 * failure.
 * @return 0 (sent, or nothing to send to), or -errno from sd_notify.
 */
int notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/**
 * The watchdog period the manager asked for (WATCHDOG_USEC, when WATCHDOG_PID is unset or
 * this process), in microseconds; 0 when there is none. "WATCHDOG=1" must be sent more
 * often than that (sd_watchdog_enabled(3) suggests every half period).
 */
uint64_t notify_watchdog_usec(void);

#endif
