/* sc_conns: idle connections. Open and log in --conns N connections (users u0..u(U-1),
 * device "conns-<i>"), --concurrency at a time, then hold them idle for --duration
 * (libcim sends the heartbeat PINGs). With --pid: the server's resident memory before
 * opening, once all are logged in, and at the end, hence bytes per connection (all of
 * RSS, and the heap apart from the LMDB pages the logins touched); the bench's own
 * likewise. With several servers (--hosts) and their pids, memory and CPU are summed
 * over them: bytes per connection of the whole service. The measured window is the opening:
 * connections/s and CPU per connection; the hold reports the CPU an idle crowd costs. */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "core/mem.h"
#include "proc.h"

typedef struct conns {
    bool have_srv;     /* server memory readable */
    bool have_srv_end; /* ... also at the end */
    proc_mem_t srv_before, srv_after, srv_end;
    proc_mem_t self_before, self_after;
    bool held; /* the hold started */
    uint64_t hold_t0_ns, hold_t1_ns;
    bool have_hold_cpu;
    uint64_t hold_cpu0, hold_cpu1;
    uint64_t open_at_end;
} conns_t;

static void stop(bench_t *b)
{
    conns_t *s = b->sc_data;
    bench_pool_counts_t pc;

    b->stopping = true;
    bench_window_end(b);
    if (s->held) {
        s->hold_t1_ns = bench_now_ns();
        if (s->have_hold_cpu && proc_cpu_us_sum(b->o.pids, b->o.npids, &s->hold_cpu1, NULL) < 0)
            s->have_hold_cpu = false;
        s->have_srv_end = s->have_srv && proc_mem_sum(b->o.pids, b->o.npids, &s->srv_end) == 0;
    }
    bench_pool_counts(b, &pc);
    s->open_at_end = pc.open_now;
    bench_finish(b);
}

static void setup_done(bench_t *b)
{
    conns_t *s = b->sc_data;
    bench_pool_counts_t pc;

    bench_pool_counts(b, &pc);
    bench_window_end(b);
    if (s->have_srv && proc_mem_sum(b->o.pids, b->o.npids, &s->srv_after) < 0)
        s->have_srv = false;
    if (proc_mem(0, &s->self_after) < 0)
        memset(&s->self_after, 0, sizeof(s->self_after));
    if (pc.opened == 0) {
        fprintf(stderr, "cimbench: no connection could log in\n");
        b->failed = true;
        stop(b);
        return;
    }
    s->held = true;
    s->hold_t0_ns = bench_now_ns();
    s->have_hold_cpu =
        b->o.npids > 0 && proc_cpu_us_sum(b->o.pids, b->o.npids, &s->hold_cpu0, NULL) == 0;
    bench_phase(b, "hold", b->o.duration_s, stop);
}

static int start(bench_t *b)
{
    conns_t *s = mem_calloc(sizeof(*s));
    unsigned per_source;

    b->sc_data = s;
    if (b->o.users == 0)
        b->o.users = b->o.conns;
    if ((long)b->o.conns + BENCH_FD_RESERVE > b->nofile) {
        fprintf(stderr,
                "cimbench: --conns %u needs more descriptors than this process may open (%ld)\n",
                b->o.conns, b->nofile);
        return -1;
    }
    per_source = (b->o.conns + b->o.sources - 1) / b->o.sources;
    if (per_source > BENCH_SERVER_PER_IP)
        fprintf(stderr,
                "cimbench: %u connections per source address: more than cimd's default "
                "max_conns_per_ip (%u); raise --sources or the server's cap\n",
                per_source, BENCH_SERVER_PER_IP);
    b->op_name = "connection";
    b->tput_unit = "conns/s";
    s->have_srv = b->o.npids > 0 && proc_mem_sum(b->o.pids, b->o.npids, &s->srv_before) == 0;
    if (b->o.npids > 0 && !s->have_srv)
        fprintf(stderr, "cimbench: cannot read /proc/PID/status of every --pid\n");
    if (proc_mem(0, &s->self_before) < 0)
        memset(&s->self_before, 0, sizeof(s->self_before));
    bench_window_start(b);
    bench_pool_open(b, b->o.conns);
    return 0;
}

static void progress(bench_t *b, char *buf, size_t len, double dt)
{
    bench_pool_counts_t pc;
    char r[32];

    bench_pool_counts(b, &pc);
    snprintf(buf, len, "open %llu/%u (%s/s)  connecting %llu  failed %llu  disconnects %llu",
             (unsigned long long)pc.open_now, b->nconns,
             bench_si(r, sizeof(r), (double)(pc.opened - b->opened_last) / dt),
             (unsigned long long)pc.connecting, (unsigned long long)pc.open_failed,
             (unsigned long long)pc.disconnects);
    b->opened_last = pc.opened;
}

static double per_conn(uint64_t before, uint64_t after, uint64_t n)
{
    return n != 0 ? ((double)after - (double)before) / (double)n : 0.0;
}

static void report(bench_t *b, report_t *r)
{
    conns_t *s = b->sc_data;
    bench_pool_counts_t pc;
    double setup = b->setup_t1_ns > b->setup_t0_ns ? (double)(b->setup_t1_ns - b->setup_t0_ns) / 1e9
                                                   : bench_window_s(b);

    bench_pool_counts(b, &pc);
    b->ops = pc.opened;
    b->tput = setup > 0 ? (double)pc.opened / setup : 0.0;
    report_int(r, "conns", "asked", b->o.conns);
    report_int(r, "conns", "opened", (int64_t)pc.opened);
    report_int(r, "conns", "failed", (int64_t)pc.open_failed);
    report_int(r, "conns", "open_at_end", (int64_t)s->open_at_end);
    if (s->held)
        report_num(r, "conns", "hold_s", (double)(s->hold_t1_ns - s->hold_t0_ns) / 1e9);
    if (s->have_srv) {
        report_int(r, "conns", "server_rss_before", (int64_t)s->srv_before.rss);
        report_int(r, "conns", "server_rss_after", (int64_t)s->srv_after.rss);
        report_num(r, "conns", "server_bytes_per_conn",
                   per_conn(s->srv_before.rss, s->srv_after.rss, pc.opened));
        /* the heap alone: RSS also counts the LMDB pages the logins touched (new users) */
        report_num(r, "conns", "server_anon_bytes_per_conn",
                   per_conn(s->srv_before.anon, s->srv_after.anon, pc.opened));
        report_num(r, "conns", "server_file_bytes_per_conn",
                   per_conn(s->srv_before.file, s->srv_after.file, pc.opened));
        if (s->have_srv_end) {
            report_int(r, "conns", "server_rss_end", (int64_t)s->srv_end.rss);
            report_num(r, "conns", "server_bytes_per_conn_end",
                       per_conn(s->srv_before.rss, s->srv_end.rss, s->open_at_end));
        }
    }
    if (s->have_hold_cpu && s->hold_t1_ns > s->hold_t0_ns) {
        double hs = (double)(s->hold_t1_ns - s->hold_t0_ns) / 1e9;
        report_num(r, "conns", "server_idle_cpu_cores",
                   (double)(s->hold_cpu1 - s->hold_cpu0) / 1e6 / hs);
    }
    report_int(r, "conns", "bench_rss_before", (int64_t)s->self_before.rss);
    report_int(r, "conns", "bench_rss_after", (int64_t)s->self_after.rss);
    report_num(r, "conns", "bench_bytes_per_conn",
               per_conn(s->self_before.rss, s->self_after.rss, pc.opened));
}

const scenario_t sc_conns = {
    .name = "conns",
    .summary = "idle connections held for --duration; with --pid, server bytes/connection",
    .start = start,
    .threads_ok = true,
    .progress = progress,
    .stop = stop,
    .setup_done = setup_done,
    .report = report,
};
