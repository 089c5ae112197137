#include "core/notify.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>

/* Immutable after notify_init (startup, one thread). */
static bool enabled;
static uint64_t watchdog_usec;

void notify_init(void)
{
    uint64_t usec = 0;

    enabled = getenv("NOTIFY_SOCKET") != NULL;
    /* A watchdog without anyone to ping is none. */
    watchdog_usec = enabled && sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}

bool notify_enabled(void)
{
    return enabled;
}

int notify_send(const char *fmt, ...)
{
    char state[512];
    va_list ap;
    int rc;

    if (!enabled)
        return 0;
    va_start(ap, fmt);
    (void)vsnprintf(state, sizeof(state), fmt, ap); /* a cut STATUS= is still a status */
    va_end(ap);
    rc = sd_notify(0, state);
    return rc < 0 ? rc : 0;
}

uint64_t notify_watchdog_usec(void)
{
    return watchdog_usec;
}
