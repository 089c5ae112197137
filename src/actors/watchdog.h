/**
 * watchdog: systemd's service watchdog (WatchdogSec=), fed only while the server is alive.
 *
 * When the service manager asked for keep-alives (notify_watchdog_usec() > 0), a timer on
 * the main loop (the acceptor's) fires every half period. Each tick checks that every
 * worker loop has run its sweep timer recently (worker_t.swept_ms, stamped every
 * WORKER_SWEEP_MS): a worker stuck for more than half the period (at least a second) means
 * a hung server, so no keep-alive is sent and, one period later, the manager restarts the
 * service (Restart=). When all are well, "WATCHDOG=1" is sent — from a thread-pool job,
 * since sd_notify may block and a loop must not (core/notify.h). So a keep-alive proves
 * that the main loop turns (its timer fired) and that every worker loop turns. The store
 * thread is not checked: it may legitimately spend long in one fsync on a slow disk.
 *
 * Without a watchdog period, watchdog_start creates nothing.
 *
 * Threading: everything here runs on the main loop's thread; the workers' stamps are read
 * with relaxed atomics.
 */
#ifndef CIM_ACTORS_WATCHDOG_H
#define CIM_ACTORS_WATCHDOG_H

#include <uv.h>

#include "actors/server.h"

typedef struct watchdog watchdog_t;

/**
 * Start feeding the watchdog on @p loop (the main loop) for the workers of @p s, when the
 * manager asked for one.
 * @param[out] out  the watchdog, or NULL when none was asked for (then nothing exists);
 *                  close it with watchdog_close before the loop closes.
 * @return 0, or a libuv rc (the timer failed; *out is NULL and nothing is left to close).
 */
int watchdog_start(server_t *s, uv_loop_t *loop, watchdog_t **out);

/**
 * Stop the keep-alives: close the timer; the watchdog frees itself once the timer is
 * closed and no keep-alive job is in flight (the loop must run until then). NULL is a
 * no-op.
 */
void watchdog_close(watchdog_t *wd);

#endif
