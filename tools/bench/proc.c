/* proc: memory and CPU time of the servers under load and of cimbench itself. */
#include "proc.h"

#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/rc.h"

int proc_mem(pid_t pid, proc_mem_t *out)
{
    char path[64], line[256];
    unsigned long long kb;
    proc_mem_t m = {0, 0, 0};
    bool have = false;
    FILE *f;

    if (pid == 0)
        snprintf(path, sizeof(path), "/proc/self/status");
    else
        snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    if ((f = fopen(path, "r")) == NULL)
        return -errno;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "VmRSS: %llu kB", &kb) == 1) {
            m.rss = (uint64_t)kb * 1024u;
            have = true;
        } else if (sscanf(line, "RssAnon: %llu kB", &kb) == 1) {
            m.anon = (uint64_t)kb * 1024u;
        } else if (sscanf(line, "RssFile: %llu kB", &kb) == 1) {
            m.file = (uint64_t)kb * 1024u;
        }
    }
    (void)fclose(f); /* read-only: nothing to lose */
    if (!have)
        return RC_EPROTO;
    *out = m;
    return 0;
}

int proc_cpu_us(pid_t pid, uint64_t *out)
{
    char path[64], buf[1024];
    unsigned long long ut, st;
    struct rusage ru;
    long tck;
    size_t n;
    char *p;
    FILE *f;

    if (pid == 0) {
        if (getrusage(RUSAGE_SELF, &ru) != 0)
            return -errno;
        *out = (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
               (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
        return 0;
    }
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if ((f = fopen(path, "r")) == NULL)
        return -errno;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    (void)fclose(f); /* read-only: nothing to lose */
    buf[n] = '\0';
    /* "pid (comm) state ..." : comm may hold spaces and ')', so parse after the last ')'.
     * Fields from there: 3 state, 4..13, 14 utime, 15 stime (proc(5)). */
    if ((p = strrchr(buf, ')')) == NULL)
        return RC_EPROTO;
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return RC_EPROTO;
    if ((tck = sysconf(_SC_CLK_TCK)) <= 0)
        return RC_EPROTO;
    *out = (uint64_t)(ut + st) * 1000000u / (uint64_t)tck;
    return 0;
}

int proc_mem_sum(const pid_t *pids, unsigned n, proc_mem_t *out)
{
    proc_mem_t sum = {0, 0, 0}, m;
    int rc;

    if (n == 0 || n > PROC_SUM_MAX)
        return RC_EINVAL;
    for (unsigned i = 0; i < n; i++) {
        if ((rc = proc_mem(pids[i], &m)) < 0)
            return rc;
        sum.rss += m.rss;
        sum.anon += m.anon;
        sum.file += m.file;
    }
    *out = sum;
    return 0;
}

int proc_cpu_us_sum(const pid_t *pids, unsigned n, uint64_t *sum, uint64_t *each)
{
    uint64_t v[PROC_SUM_MAX], total = 0;
    int rc;

    if (n == 0 || n > PROC_SUM_MAX)
        return RC_EINVAL;
    for (unsigned i = 0; i < n; i++) {
        if ((rc = proc_cpu_us(pids[i], &v[i])) < 0)
            return rc;
        total += v[i];
    }
    *sum = total;
    if (each != NULL)
        memcpy(each, v, n * sizeof(*v));
    return 0;
}

void proc_load(double *load1, long *ncpu)
{
    double l[1];

    *load1 = getloadavg(l, 1) == 1 ? l[0] : -1.0;
    *ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (*ncpu < 0)
        *ncpu = 0;
}
