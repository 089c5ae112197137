/* Integration: cimd under a service manager (systemd's Type=notify), played by the test: a
 * unix datagram socket named in NOTIFY_SOCKET, WATCHDOG_USEC set. cimd must say READY=1
 * once it serves (a login works at that point), send WATCHDOG=1 keep-alives more often
 * than the period, and STOPPING=1 on SIGTERM before it exits 0. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client/cim.h"
#include "support/server.h"
#include "support/test.h"

#define WATCHDOG_MS 1000 /* keep-alives expected every 500 ms */

typedef struct manager {
    char dir[32];
    char path[64];
    int fd;
} manager_t;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Bind the manager's socket and point the environment cimd inherits at it. */
static void manager_open(manager_t *m, unsigned watchdog_ms)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char usec[32];

    snprintf(m->dir, sizeof(m->dir), "/tmp/cimtest-XXXXXX");
    ASSERT_NOT_NULL(mkdtemp(m->dir));
    snprintf(m->path, sizeof(m->path), "%s/notify", m->dir);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", m->path);
    m->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_TRUE(m->fd >= 0);
    ASSERT_OK(bind(m->fd, (struct sockaddr *)&sa, sizeof(sa)));
    ASSERT_OK(setenv("NOTIFY_SOCKET", m->path, 1));
    if (watchdog_ms > 0) {
        snprintf(usec, sizeof(usec), "%u", watchdog_ms * 1000);
        ASSERT_OK(setenv("WATCHDOG_USEC", usec, 1));
    }
}

static void manager_close(manager_t *m)
{
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    close(m->fd);
    unlink(m->path);
    ASSERT_OK(rmdir(m->dir));
}

/* The next notification within @p ms, into @p buf; false when none came. */
static bool next_state(manager_t *m, unsigned ms, char *buf, size_t len)
{
    struct pollfd p = {.fd = m->fd, .events = POLLIN};
    ssize_t n;

    if (poll(&p, 1, (int)ms) != 1)
        return false;
    n = recv(m->fd, buf, len - 1, 0);
    ASSERT_TRUE(n > 0);
    buf[n] = '\0';
    return true;
}

/* Does state string @p s hold the assignment @p line ("READY=1") as one of its lines? */
static bool has_line(const char *s, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = s; p != NULL; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

TEST_TIMEOUT(e2e_service_notify_ready_watchdog_stopping, 30)
{
    char st[1024];
    manager_t m;
    int pings = 0, readies = 0;
    int64_t first_ping = 0, last_ping = 0, t0;
    tsrv_t t;

    manager_open(&m, WATCHDOG_MS);
    tsrv_start(&t, NULL); /* returns once the ready line is logged */
    /* READY=1 (with a STATUS) comes after the ready line, before any keep-alive; STATUS
     * lines before it are progress. */
    do {
        ASSERT_TRUE(next_state(&m, 5000, st, sizeof(st)));
        ASSERT_TRUE(!has_line(st, "WATCHDOG=1"));
        ASSERT_TRUE(!has_line(st, "STOPPING=1"));
    } while (!has_line(st, "READY=1"));
    ASSERT_NOT_NULL(strstr(st, "STATUS=serving on 127.0.0.1:"));
    cimc_close(tsrv_login(&t, "alice", "d1", NULL)); /* serving indeed */

    /* Keep-alives, each well within the period, for three periods. */
    t0 = now_ms();
    while (now_ms() - t0 < 3 * WATCHDOG_MS) {
        ASSERT_TRUE(next_state(&m, WATCHDOG_MS, st, sizeof(st)));
        if (has_line(st, "WATCHDOG=1")) {
            int64_t at = now_ms();
            if (pings > 0 && at - last_ping > WATCHDOG_MS * 9 / 10)
                TEST_FAIL_("keep-alives %lld ms apart, period %d ms", (long long)(at - last_ping),
                           WATCHDOG_MS);
            first_ping = pings == 0 ? at : first_ping;
            last_ping = at;
            pings++;
        }
        readies += has_line(st, "READY=1");
        ASSERT_TRUE(!has_line(st, "STOPPING=1"));
    }
    ASSERT_TRUE(pings >= 4);
    ASSERT_EQ(readies, 0); /* READY=1 once */

    /* SIGTERM: STOPPING=1 arrives, then cimd exits cleanly. */
    ASSERT_EQ(tsrv_stop_keep(&t), 0);
    bool stopping = false;
    while (!stopping && next_state(&m, 1000, st, sizeof(st)))
        stopping = has_line(st, "STOPPING=1");
    ASSERT_TRUE(stopping);
    (void)tsrv_stop(&t); /* stopped already: removes the directory */
    manager_close(&m);
}

/* The same server with no WATCHDOG_USEC: READY=1 and STOPPING=1, and no keep-alive at all;
 * with no NOTIFY_SOCKET, nothing reaches a socket that was not named. */
TEST_TIMEOUT(e2e_service_notify_no_watchdog_asked, 30)
{
    char st[1024];
    manager_t m;
    tsrv_t t;

    manager_open(&m, 0);
    tsrv_start(&t, NULL);
    do
        ASSERT_TRUE(next_state(&m, 5000, st, sizeof(st)));
    while (!has_line(st, "READY=1"));
    while (next_state(&m, 1500, st, sizeof(st)))
        ASSERT_TRUE(!has_line(st, "WATCHDOG=1"));
    ASSERT_EQ(tsrv_stop(&t), 0);
    ASSERT_TRUE(next_state(&m, 1000, st, sizeof(st)));
    ASSERT_TRUE(has_line(st, "STOPPING=1"));

    /* Outside a manager: the socket exists, but cimd is not told about it. */
    unsetenv("NOTIFY_SOCKET");
    ASSERT_OK(setenv("WATCHDOG_USEC", "200000", 1));
    tsrv_start(&t, NULL);
    ASSERT_TRUE(!next_state(&m, 1000, st, sizeof(st)));
    ASSERT_EQ(tsrv_stop(&t), 0);
    ASSERT_TRUE(!next_state(&m, 200, st, sizeof(st)));
    manager_close(&m);
}
