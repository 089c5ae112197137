#include "support/pty.h"

#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support/test.h"

#define PTY_ARGS 64

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tpty_start(tpty_t *p, const char *const *env, const char *prog, ...)
{
    struct winsize ws = {.ws_row = 24, .ws_col = 80};
    char *argv[PTY_ARGS];
    char path[512];
    int argc = 0;
    va_list ap;
    char *a;

    memset(p, 0, sizeof(*p));
    snprintf(path, sizeof(path), "%s/%s", CIM_BIN_DIR, prog);
    argv[argc++] = path;
    va_start(ap, prog);
    while ((a = va_arg(ap, char *)) != NULL && argc < PTY_ARGS - 1)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    fflush(NULL);
    p->pid = forkpty(&p->fd, NULL, NULL, &ws);
    ASSERT_TRUE(p->pid >= 0);
    if (p->pid == 0) {
        for (const char *const *e = env; e != NULL && *e != NULL; e++)
            putenv((char *)*e);
        setenv("TERM", "xterm", 1);
        execv(path, argv);
        _exit(127);
    }
}

void tpty_type(tpty_t *p, const char *keys)
{
    size_t left = strlen(keys);

    while (left > 0) {
        ssize_t w = write(p->fd, keys, left);
        if (w < 0 && errno == EINTR)
            continue;
        ASSERT_TRUE(w > 0);
        keys += w;
        left -= (size_t)w;
    }
}

/* Take what the terminal has within @p ms. @return false once it is closed. */
static bool pump(tpty_t *p, int ms)
{
    struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
    char tmp[4096];
    size_t take;
    ssize_t n;

    if (p->fd < 0)
        return false;
    if (poll(&pfd, 1, ms) <= 0)
        return true;
    n = read(p->fd, tmp, sizeof(tmp));
    if (n < 0 && errno == EINTR)
        return true;
    if (n <= 0) { /* EIO: the program and everything it started closed the terminal */
        close(p->fd);
        p->fd = -1;
        return false;
    }
    take = p->len + (size_t)n < sizeof(p->out) ? (size_t)n : sizeof(p->out) - 1 - p->len;
    memcpy(p->out + p->len, tmp, take);
    p->len += take;
    p->out[p->len] = '\0';
    return true;
}

bool tpty_expect(tpty_t *p, const char *needle, unsigned timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms, left;
    const char *at;

    for (;;) {
        if ((at = strstr(p->out + p->seen, needle)) != NULL) {
            p->seen = (size_t)(at - p->out) + strlen(needle);
            return true;
        }
        left = deadline - now_ms();
        if (left <= 0 || !pump(p, (int)left)) {
            if ((at = strstr(p->out + p->seen, needle)) == NULL)
                return false;
            p->seen = (size_t)(at - p->out) + strlen(needle);
            return true;
        }
    }
}

void tpty_drain(tpty_t *p, unsigned ms)
{
    int64_t deadline = now_ms() + ms, left;

    while ((left = deadline - now_ms()) > 0 && pump(p, (int)left))
        ;
}

void tpty_dump(const tpty_t *p)
{
    fprintf(stderr, "---- terminal (%zu bytes) ----\n%s\n---- end of terminal ----\n", p->len,
            p->out);
}

int tpty_finish(tpty_t *p, unsigned timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    bool killed = false;
    int status = 0;
    pid_t r;

    for (;;) {
        while (pump(p, 0) && p->fd >= 0 && now_ms() < deadline) {
            struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
            if (poll(&pfd, 1, 0) <= 0)
                break;
        }
        r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid)
            break;
        if (r < 0 && errno != EINTR)
            TEST_FAIL_("waitpid: %s", strerror(errno));
        if (now_ms() >= deadline) {
            kill(p->pid, SIGKILL);
            while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
                ;
            killed = true;
            break;
        }
        (void)pump(p, 5);
    }
    while (pump(p, 0) && p->fd >= 0) { /* what it wrote last */
        struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
        if (poll(&pfd, 1, 0) <= 0)
            break;
    }
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    p->pid = 0;
    return !killed && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
