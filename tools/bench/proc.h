/**
 * proc: what cimbench reads about processes: resident memory and CPU time, of the servers
 * it loads (--pid, from /proc, Linux only; several are summed) and of itself.
 *
 * Threading: pure reads of /proc and getrusage(2); any thread. The files are read with
 * stdio: cimbench is a program, not a loop that must never block, and these reads happen
 * once per phase, never per message.
 */
#ifndef CIMBENCH_PROC_H
#define CIMBENCH_PROC_H

#include <stdint.h>
#include <sys/types.h>

/** Resident memory of a process, from /proc/PID/status, in bytes. */
typedef struct proc_mem {
    uint64_t rss;  /* VmRSS: all resident pages */
    uint64_t anon; /* RssAnon: heap, stacks (what the process allocated) */
    uint64_t file; /* RssFile: mapped files resident (LMDB's map, the binary) */
} proc_mem_t;

/**
 * Resident memory of a process.
 * @param[in]  pid  a process id; 0 means this process.
 * @param[out] out  written only on success (a field the kernel does not show stays 0).
 * @return 0, or -errno (-ENOENT: no such process), RC_EPROTO (no VmRSS line).
 */
int proc_mem(pid_t pid, proc_mem_t *out);

/**
 * User + system CPU time the process has used, in microseconds (utime + stime of
 * /proc/PID/stat; resolution one clock tick, usually 10 ms).
 * @param[in] pid  a process id; 0 means this process (then getrusage(2), µs resolution).
 * @param[out] out written only on success.
 * @return 0, or -errno, RC_EPROTO (unparsable stat line).
 */
int proc_cpu_us(pid_t pid, uint64_t *out);

#define PROC_SUM_MAX 64 /* processes proc_mem_sum and proc_cpu_us_sum take at most */

/**
 * Resident memory of several processes, field by field summed (proc_mem of each).
 * @param[in]  pids  @p n process ids (0 means this process, as for proc_mem).
 * @param[in]  n     1..PROC_SUM_MAX.
 * @param[out] out   written only on success.
 * @return 0, RC_EINVAL (@p n out of range), or the first failure of proc_mem.
 */
int proc_mem_sum(const pid_t *pids, unsigned n, proc_mem_t *out);

/**
 * CPU time of several processes (proc_cpu_us of each), in microseconds.
 * @param[in]  pids  @p n process ids (0 means this process, as for proc_cpu_us).
 * @param[in]  n     1..PROC_SUM_MAX.
 * @param[out] sum   their sum; written only on success.
 * @param[out] each  @p n values, each process's own, or NULL; written only on success.
 * @return 0, RC_EINVAL (@p n out of range), or the first failure of proc_cpu_us.
 */
int proc_cpu_us_sum(const pid_t *pids, unsigned n, uint64_t *sum, uint64_t *each);

/**
 * The 1-minute load average and the number of online CPUs, for the report's context.
 * @param[out] load1 -1 when unknown; @param[out] ncpu 0 when unknown.
 */
void proc_load(double *load1, long *ncpu);

#endif
