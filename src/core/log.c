#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log_int.h"
#include "core/rc.h"

int log_level = LOG_LVL_INFO;
static int log_fd = 2;
static _Thread_local const char *thread_tag = "main";

static const char *const names[] = {"error", "warn", "info", "debug"};

log__fmt_fn log__fmt = NULL;

const char *log__level_name(int level)
{
    return names[level < 0 ? 0 : level > 3 ? 3 : level];
}

size_t log__time(char *out, size_t outlen, const struct timespec *ts)
{
    struct tm tm;
    size_t n;
    int k;

    gmtime_r(&ts->tv_sec, &tm);
    n = strftime(out, outlen, "%Y-%m-%dT%H:%M:%S", &tm);
    k = snprintf(out + n, outlen - n, ".%03ldZ", ts->tv_nsec / 1000000);
    return k > 0 && (size_t)k < outlen - n ? n + (size_t)k : n;
}

int log_level_parse(const char *name, int *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return RC_EINVAL;
}

void log_set_level(int level)
{
    log_level = level;
}

void log_set_fd(int fd)
{
    log_fd = fd;
}

void log_set_thread(const char *tag)
{
    thread_tag = tag;
}

void log_write(int level, const char *fmt, ...)
{
    char msg[1024], line[2048];
    struct timespec ts;
    size_t n = 0;
    va_list ap;
    int k;

    clock_gettime(CLOCK_REALTIME, &ts);
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap); /* a longer message is cut: still one line */
    va_end(ap);
    /* sizeof(line) - 1: the newline always fits. */
    if (log__fmt != NULL)
        n = log__fmt(line, sizeof(line) - 1, level, thread_tag, &ts, msg);
    if (n == 0) {
        n = log__time(line, sizeof(line), &ts);
        k = snprintf(line + n, sizeof(line) - 1 - n, " %-5s [%s] %s", log__level_name(level),
                     thread_tag, msg);
        n = k < 0 ? n : n + (size_t)k >= sizeof(line) - 1 ? sizeof(line) - 2 : n + (size_t)k;
    }
    line[n++] = '\n';
    /* One write per line keeps lines whole across threads; a short write of a log
     * line is not worth a retry loop. */
    (void)!write(log_fd, line, n);
}

int log_rl_allow(log_rl_t *rl, uint32_t *dropped)
{
    struct timespec ts;
    uint64_t now, next;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    next = atomic_load_explicit(&rl->next_ms, memory_order_relaxed);
    if (now < next ||
        !atomic_compare_exchange_strong(&rl->next_ms, &next, now + 1000)) {
        atomic_fetch_add_explicit(&rl->suppressed, 1, memory_order_relaxed);
        return 0;
    }
    *dropped = atomic_exchange_explicit(&rl->suppressed, 0, memory_order_relaxed);
    return 1;
}
