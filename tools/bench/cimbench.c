/* cimbench: the load generator of cim (DESIGN.md "Tools"). The driver: command line,
 * descriptor limit, tokens, the loop and its timers, the connection pool, the report.
 * The scenarios live in sc_*.c; bench.h says how the two meet. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "core/chan.h"
#include "core/kv.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/token.h"
#include "proc.h"

#define DEF_DURATION_S  10.0
#define DEF_CONNS       1000
#define DEF_CONCURRENCY 100
#define DEF_SOURCES     32
#define DEF_TIMEOUT_MS  10000
#define DEF_PORT        7400
#define DEF_GROUPS      1
#define DEF_MEMBERS     100
#define DEF_MESSAGES    10000
#define DEF_LIMIT       500

static const scenario_t *const scenarios[] = {&sc_login, &sc_conns, &sc_c2c, &sc_group, &sc_sync};
#define NSCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

/* ---- small helpers -------------------------------------------------------------------- */

uint64_t bench_now_ns(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail for CLOCK_MONOTONIC */
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const char *bench_si(char *buf, size_t len, double v)
{
    if (v >= 1e6)
        snprintf(buf, len, "%.2fM", v / 1e6);
    else if (v >= 1e4)
        snprintf(buf, len, "%.1fk", v / 1e3);
    else
        snprintf(buf, len, "%.0f", v);
    return buf;
}

void bench_user(char *out, size_t len, unsigned i)
{
    snprintf(out, len, "u%u", i);
}

void bench_count_code(bench_t *b, int code)
{
    if (code == cim_Code_OK)
        return;
    b->codes[code >= 0 && code < BENCH_CODES ? code : BENCH_CODES - 1]++;
}

void bench_count_rc(bench_t *b, int rc)
{
    unsigned i;

    for (i = 0; i < BENCH_RCS - 1 && b->rc_cnt[i] != 0; i++)
        if (b->rc_val[i] == rc)
            break;
    /* the last slot collects whatever does not fit */
    b->rc_val[i] = b->rc_cnt[i] == 0 || b->rc_val[i] == rc ? rc : b->rc_val[i];
    b->rc_cnt[i]++;
}

uint64_t bench_errors(const bench_t *b)
{
    uint64_t n = 0;

    for (unsigned i = 0; i < BENCH_CODES; i++)
        n += b->codes[i];
    for (unsigned i = 0; i < BENCH_RCS; i++)
        n += b->rc_cnt[i];
    return n + b->mismatch + b->unanswered;
}

void bench_ring_push(bconn_t *bc, uint64_t v)
{
    if (bc->ring_len == bc->ring_cap) {
        uint32_t cap = bc->ring_cap != 0 ? bc->ring_cap * 2 : 8;
        uint64_t *r = mem_alloc((size_t)cap * sizeof(*r));
        for (uint32_t i = 0; i < bc->ring_len; i++)
            r[i] = bc->ring[(bc->ring_head + i) % bc->ring_cap];
        mem_free(bc->ring);
        bc->ring = r;
        bc->ring_cap = cap;
        bc->ring_head = 0;
    }
    bc->ring[(bc->ring_head + bc->ring_len) % bc->ring_cap] = v;
    bc->ring_len++;
}

bool bench_ring_pop(bconn_t *bc, uint64_t *v)
{
    if (bc->ring_len == 0)
        return false;
    *v = bc->ring[bc->ring_head];
    bc->ring_head = (bc->ring_head + 1) % bc->ring_cap;
    bc->ring_len--;
    return true;
}

/* ---- connections ---------------------------------------------------------------------- */

int bench_connect(bench_t *b, bconn_t *bc, const cimc_async_cbs_t *cbs)
{
    cim_LoginReq req = cim_LoginReq_init_zero;
    cimc_opts_t o;
    char src[32];
    int64_t expiry;
    int rc;

    memset(&o, 0, sizeof(o));
    o.host = b->o.host;
    o.port = b->o.port;
    o.pinned_key = b->o.key;
    o.timeout_ms = b->o.timeout_ms;
    if (b->o.sources > 1) {
        snprintf(src, sizeof(src), "127.0.0.%u", 1 + bc->idx % b->o.sources);
        o.bind_addr = src;
    }
    snprintf(req.app, sizeof(req.app), "%s", b->o.app);
    bench_user(req.user, sizeof(req.user), bc->idx % b->o.users);
    snprintf(req.device_id, sizeof(req.device_id), "%s-%u", b->sc->name, bc->idx);
    req.device_kind = cim_DeviceKind_BOT;
    snprintf(req.client_version, sizeof(req.client_version), "cimbench/1");
    if (b->sc->login != NULL)
        b->sc->login(b, bc, &req);
    /* valid for the whole run, whatever its phases take */
    expiry = (int64_t)time(NULL) + (int64_t)(b->o.duration_s + BENCH_SETUP_MAX_S) + 3600;
    if ((rc = token_mint(b->o.secret, b->o.app, req.user, expiry, req.token, sizeof(req.token))) <
        0) {
        bench_count_rc(b, rc);
        return rc;
    }
    bc->b = b;
    bc->t0_ns = bench_now_ns();
    rc = cimc_async_connect(b->al, &o, &req, cbs, bc, &bc->c);
    memset(req.token, 0, sizeof(req.token)); /* copied by libcim; do not leave it around */
    if (rc < 0) {
        bc->c = NULL;
        bench_count_rc(b, rc);
    }
    return rc;
}

static void pool_step(bench_t *b);

static void pool_on_ready(cimc_t *c, void *ctx, int status, const cim_LoginRsp *rsp)
{
    bconn_t *bc = ctx;
    bench_t *b = bc->b;

    (void)c;
    if (b->finishing)
        return;
    b->connecting--;
    if (status == 0 && rsp != NULL && rsp->code == cim_Code_OK) {
        bc->open = true;
        b->opened++;
        b->open_now++;
        hist_record(&b->login_lat, bench_now_ns() - bc->t0_ns);
    } else {
        if (status < 0)
            bench_count_rc(b, status);
        else
            bench_count_code(b, rsp != NULL ? (int)rsp->code : cim_Code_INTERNAL);
        b->open_failed++;
    }
    pool_step(b);
}

static void pool_on_push(cimc_t *c, void *ctx, const cimc_push_t *p)
{
    bconn_t *bc = ctx;

    (void)c;
    if (!bc->b->finishing && bc->b->sc->on_push != NULL)
        bc->b->sc->on_push(bc->b, bc, p);
}

static void pool_on_close(cimc_t *c, void *ctx, int status, const cim_Bye *bye)
{
    bconn_t *bc = ctx;
    bench_t *b = bc->b;

    (void)c;
    bc->c = NULL;
    if (b->finishing || !bc->open)
        return;
    /* an open connection the server (or an error) ended during the run */
    bc->open = false;
    b->open_now--;
    b->disconnects++;
    if (bye != NULL)
        bench_count_code(b, (int)bye->code);
    else if (status < 0)
        bench_count_rc(b, status);
}

static const cimc_async_cbs_t pool_cbs = {pool_on_ready, pool_on_push, pool_on_close};

static void pool_step(bench_t *b)
{
    bool done;

    while (!b->stopping && b->next < b->nconns && b->connecting < b->o.concurrency) {
        bconn_t *bc = &b->conns[b->next];
        bc->idx = b->next++;
        if (bench_connect(b, bc, &pool_cbs) < 0)
            b->open_failed++;
        else
            b->connecting++;
    }
    done = b->opened + b->open_failed == b->nconns;
    if (done && b->setup_t1_ns == 0 && !b->stopping) {
        b->setup_t1_ns = bench_now_ns();
        b->sc->setup_done(b);
    }
}

void bench_pool_open(bench_t *b, unsigned n)
{
    b->conns = mem_calloc((size_t)n * sizeof(*b->conns) + 1);
    b->nconns = n;
    b->setup_t0_ns = bench_now_ns();
    bench_phase(b, "open", BENCH_SETUP_MAX_S, b->sc->stop);
    pool_step(b);
}

/* ---- phases and window ---------------------------------------------------------------- */

static void on_phase(uv_timer_t *t)
{
    bench_t *b = t->data;

    if (!b->finishing && b->phase_fn != NULL)
        b->phase_fn(b);
}

void bench_phase(bench_t *b, const char *name, double seconds, void (*fn)(bench_t *b))
{
    b->phase_name = name;
    b->phase_fn = fn;
    if (b->finishing)
        return;
    (void)uv_timer_stop(&b->phase); /* cannot fail on an initialised timer */
    if (fn != NULL)
        (void)uv_timer_start(&b->phase, on_phase, (uint64_t)(seconds * 1000.0 + 0.5), 0);
}

void bench_window_start(bench_t *b)
{
    b->w_t0_ns = bench_now_ns();
    b->w_t1_ns = 0;
    b->w_have_srv = b->o.pid > 0 && proc_cpu_us(b->o.pid, &b->w_srv_cpu0) == 0;
    if (proc_cpu_us(0, &b->w_self_cpu0) < 0)
        b->w_self_cpu0 = 0;
}

void bench_window_end(bench_t *b)
{
    if (b->w_t0_ns == 0 || b->w_t1_ns != 0)
        return;
    b->w_t1_ns = bench_now_ns();
    if (b->w_have_srv && proc_cpu_us(b->o.pid, &b->w_srv_cpu1) < 0)
        b->w_have_srv = false;
    if (proc_cpu_us(0, &b->w_self_cpu1) < 0)
        b->w_self_cpu1 = b->w_self_cpu0;
}

double bench_window_s(const bench_t *b)
{
    uint64_t end;

    if (b->w_t0_ns == 0)
        return 0.0;
    end = b->w_t1_ns != 0 ? b->w_t1_ns : bench_now_ns();
    return (double)(end - b->w_t0_ns) / 1e9;
}

/* ---- the loop ------------------------------------------------------------------------- */

static void on_progress(uv_timer_t *t)
{
    bench_t *b = t->data;
    uint64_t now = bench_now_ns();
    double dt = (double)(now - b->t_last_progress_ns) / 1e9;
    char line[512];
    int n;

    b->t_last_progress_ns = now;
    n = snprintf(line, sizeof(line), "[%6.1fs] %-5s ", (double)(now - b->t_begin_ns) / 1e9,
                 b->phase_name != NULL ? b->phase_name : "");
    if (n > 0 && (size_t)n < sizeof(line) && b->sc->progress != NULL)
        b->sc->progress(b, line + n, sizeof(line) - (size_t)n, dt > 0 ? dt : 1.0);
    fprintf(stderr, "%s\n", line);
}

static void on_watchdog(uv_timer_t *t)
{
    bench_t *b = t->data;

    fprintf(stderr, "cimbench: run overstayed its limits; ending it\n");
    b->failed = true;
    bench_finish(b);
}

static void on_sigint(uv_signal_t *s, int signum)
{
    bench_t *b = s->data;

    (void)signum;
    if (b->stopping) { /* a second ^C: end now */
        bench_finish(b);
        return;
    }
    fprintf(stderr, "cimbench: interrupted; stopping\n");
    b->stopping = true;
    b->sc->stop(b);
}

void bench_finish(bench_t *b)
{
    if (b->finishing)
        return;
    b->finishing = true;
    b->stopping = true;
    bench_window_end(b);
    if (b->sc->finish != NULL)
        b->sc->finish(b);
    uv_close((uv_handle_t *)&b->progress, NULL);
    uv_close((uv_handle_t *)&b->phase, NULL);
    uv_close((uv_handle_t *)&b->watchdog, NULL);
    uv_close((uv_handle_t *)&b->sigint, NULL);
    cimc_async_loop_free(b->al); /* every connection: on_close(0), then freed */
    b->al = NULL;
}

/* ---- report --------------------------------------------------------------------------- */

static void add_common_report(bench_t *b, report_t *r)
{
    double w = bench_window_s(b), load1;
    long ncpu;
    proc_mem_t mem;
    char key[64];

    report_str(r, NULL, "scenario", b->sc->name);
    report_num(r, NULL, "throughput", b->tput);
    report_str(r, NULL, "throughput_unit", b->tput_unit != NULL ? b->tput_unit : "");
    report_int(r, NULL, "ops", (int64_t)b->ops);
    report_str(r, NULL, "op", b->op_name != NULL ? b->op_name : "");
    report_num(r, NULL, "window_s", w);
    report_int(r, NULL, "errors_total", (int64_t)bench_errors(b));
    report_str(r, NULL, "result", b->failed ? "failed" : "ok");

    report_str(r, "params", "host", b->o.host);
    report_int(r, "params", "port", b->o.port);
    report_str(r, "params", "app", b->o.app[0] != '\0' ? b->o.app : "default");
    report_num(r, "params", "duration_s", b->o.duration_s);
    report_int(r, "params", "count", (int64_t)b->o.count);
    report_int(r, "params", "conns", b->o.conns);
    report_int(r, "params", "concurrency", b->o.concurrency);
    report_int(r, "params", "users", b->o.users);
    report_int(r, "params", "window", b->o.window);
    report_num(r, "params", "rate", b->o.rate);
    report_int(r, "params", "size", b->o.size);
    report_int(r, "params", "sources", b->o.sources);
    report_int(r, "params", "ack_every", b->o.ack_every);
    if (strcmp(b->sc->name, "group") == 0) {
        report_int(r, "params", "groups", b->o.groups);
        report_int(r, "params", "members", b->o.members);
        report_int(r, "params", "senders", b->o.senders);
    } else if (strcmp(b->sc->name, "sync") == 0) {
        report_int(r, "params", "messages", (int64_t)b->o.messages);
        report_int(r, "params", "limit", b->o.limit);
        report_int(r, "params", "devices", b->o.devices);
    }

    if (b->setup_t0_ns != 0) { /* the pool was used */
        report_int(r, "connections", "opened", b->opened);
        report_int(r, "connections", "open_failed", b->open_failed);
        report_int(r, "connections", "disconnects", b->disconnects);
        if (b->setup_t1_ns > b->setup_t0_ns)
            report_num(r, "connections", "setup_s",
                       (double)(b->setup_t1_ns - b->setup_t0_ns) / 1e9);
    }

    if (b->login_lat.count != 0)
        report_hist(r, "latency_us", "login", &b->login_lat);

    for (unsigned i = 0; i < BENCH_CODES; i++)
        if (b->codes[i] != 0)
            report_int(r, "errors", cimc_code_str((int)i), (int64_t)b->codes[i]);
    for (unsigned i = 0; i < BENCH_RCS; i++)
        if (b->rc_cnt[i] != 0) {
            snprintf(key, sizeof(key), "%s", rc_str(b->rc_val[i]));
            report_int(r, "errors", key, (int64_t)b->rc_cnt[i]);
        }
    if (b->mismatch != 0)
        report_int(r, "errors", "mismatch", (int64_t)b->mismatch);
    if (b->unanswered != 0)
        report_int(r, "errors", "unanswered", (int64_t)b->unanswered);

    if (b->o.pid > 0) {
        report_int(r, "server", "pid", b->o.pid);
        if (b->w_have_srv) {
            uint64_t cpu = b->w_srv_cpu1 - b->w_srv_cpu0;
            report_int(r, "server", "cpu_us", (int64_t)cpu);
            report_num(r, "server", "cpu_cores", w > 0 ? (double)cpu / 1e6 / w : 0.0);
            report_num(r, "server", "cpu_us_per_op",
                       b->ops != 0 ? (double)cpu / (double)b->ops : NAN);
        }
    }
    report_int(r, "bench", "cpu_us", (int64_t)(b->w_self_cpu1 - b->w_self_cpu0));
    report_num(r, "bench", "cpu_cores",
               w > 0 ? (double)(b->w_self_cpu1 - b->w_self_cpu0) / 1e6 / w : 0.0);
    report_num(r, "bench", "cpu_us_per_op",
               b->ops != 0 ? (double)(b->w_self_cpu1 - b->w_self_cpu0) / (double)b->ops : NAN);
    if (proc_mem(0, &mem) == 0)
        report_int(r, "bench", "rss_bytes", (int64_t)mem.rss);
    report_int(r, "bench", "nofile", b->nofile);

    proc_load(&load1, &ncpu);
    report_int(r, "machine", "cpus", ncpu);
    report_num(r, "machine", "load1_end", load1);
}

/* ---- command line --------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cimbench SCENARIO --key HEX (--data DIR | --secret HEX) [options]\n"
            "\n"
            "Load generator for cimd. Every run ends by itself (--duration, at most %.0f s),\n"
            "prints a progress line to stderr every second and a report at the end (a table,\n"
            "or one JSON document with --json) on stdout.\n"
            "\n"
            "Scenarios:\n",
            BENCH_DURATION_MAX_S);
    for (size_t i = 0; i < NSCENARIOS; i++)
        fprintf(f, "  %-6s %s\n", scenarios[i]->name, scenarios[i]->summary);
    fprintf(
        f,
        "\n"
        "Server and credentials:\n"
        "  --host H          server address (default 127.0.0.1); a non-loopback address is\n"
        "                    refused without --allow-remote\n"
        "  --port P          server port (default %d)\n"
        "  --key HEX         the server's identity key, pinned (cimctl --data DIR show-key);\n"
        "                    without it, read from DIR/identity.key when --data is given\n"
        "  --data DIR        the server's data dir: the app secret is read from it\n"
        "                    (read-only, safe while cimd runs) to mint login tokens\n"
        "  --secret HEX      the app secret instead (cimctl app show APP)\n"
        "  --app A           the app (default \"default\")\n"
        "  --allow-remote    allow a server that is not on this machine\n"
        "  --pid PID         the server's process: report its memory and CPU time\n"
        "\n"
        "Run:\n"
        "  --duration S      measured time in seconds (default %.0f, at most %.0f); opening\n"
        "                    connections comes first and takes at most %.0f s\n"
        "  --count N         login: logins in all (overrides --conns); c2c, group: messages\n"
        "                    in all (ends the run early); conns, sync: ignored\n"
        "  --conns N         login: logins in all; conns: connections held (default %d)\n"
        "  --concurrency C   connects in flight at once (default %d)\n"
        "  --users U         users u0..u(U-1): login/conns default --conns (one per\n"
        "                    connection), c2c default 100 (one connection each)\n"
        "  --window W        c2c, group closed loop: SENDs in flight per sending connection\n"
        "                    (default 1)\n"
        "  --rate R          c2c, group open loop: R messages/s in all, send times fixed by\n"
        "                    the clock and latency taken from the scheduled time (no\n"
        "                    coordinated omission); --window is then ignored\n"
        "  --size B          c2c, group, sync: body bytes (default 100, at least 16: the\n"
        "                    first 8 are the send time, CLOCK_MONOTONIC ns, for the\n"
        "                    receiver's latency, the next 4 the run id)\n"
        "  --ack-every N     c2c, group: PUSH_ACK every N pushes per connection (default 64;\n"
        "                    0 off)\n"
        "  --groups G        group: groups (default %d); users g<i>m<j>, one connection each\n"
        "  --members M       group: members per group, all online (default %d); G*M\n"
        "                    connections in all\n"
        "  --senders S       group: members 0..S-1 of every group send (default 1)\n"
        "  --messages N      sync: messages pre-loaded into user syncer's timeline (default\n"
        "                    %d)\n"
        "  --limit L         sync: SyncReq.limit, messages per page (default %d, at most 500)\n"
        "  --devices K       sync: fresh devices of syncer syncing in parallel (default 1)\n"
        "  --sources N       spread connections over source addresses 127.0.0.1..N (IPv4\n"
        "                    loopback server only; default %d; 1 = no bind): each source\n"
        "                    gets its own ~28k ephemeral ports and its own share of the\n"
        "                    server's max_conns_per_ip (default 1000)\n"
        "  --timeout MS      connect+login and each answer (default %d)\n"
        "  --json            print the report as one JSON document\n"
        "  --help            this text\n"
        "\n"
        "Notes:\n"
        "  * c2c, group and sync send far more than cimd's default per-connection rate\n"
        "    limit allows (send_rate 100/s, burst 200): start the server with e.g.\n"
        "    --send_rate 1000000 --send_burst 1000000, or expect RATE_LIMITED errors.\n"
        "  * group: cimd's --max_group_size (default 2000) must be at least --members.\n"
        "    Setup logs in G*M users, creates the groups (GROUP_CREATE with up to 1000\n"
        "    members, then GROUP_ADD per 1000) and waits for their SYSTEM pushes; then\n"
        "    deliveries = acked messages x (online members - 1). The target scenario is\n"
        "    1 group of 1,000 members online; G*M must stay under the descriptor limit\n"
        "    of both processes (20,000 here).\n"
        "  * sync: the fresh devices sync the whole timeline of syncer, earlier runs' messages\n"
        "    included (reported apart): use a fresh data dir for a clean count. --duration\n"
        "    caps the sync itself (default 10 s); the pre-load comes before it.\n"
        "  * cimbench raises its RLIMIT_NOFILE to the hard limit and says how many\n"
        "    connections that allows. Server and bench each need one descriptor per\n"
        "    connection; on a machine with a hard limit of 20,000 per process, measure\n"
        "    `conns` at 15,000 (--conns 15000).\n"
        "  * conns: take the server's bytes per connection from a freshly started cimd:\n"
        "    freed heap is not given back to the system, so a second run reads ~0.\n"
        "    RSS includes the LMDB pages the logins touched (new users); the report\n"
        "    splits it into heap (anon) and mapped files (file).\n"
        "  * Latencies are measured in this process: server and bench share the CPUs of a\n"
        "    small machine, so the bench's own CPU time is reported beside the server's.\n"
        "\n"
        "Example:\n"
        "  cimd --data /tmp/d --listen 127.0.0.1:7500 --send_rate 1000000 --send_burst 1000000\n"
        "  cimbench c2c --port 7500 --data /tmp/d --users 200 --window 8 --pid $(pidof cimd)\n"
        "  cimbench group --port 7500 --data /tmp/d --groups 1 --members 1000 --rate 500\n"
        "  cimbench sync --port 7500 --data /tmp/d --messages 100000\n",
        DEF_PORT, DEF_DURATION_S, BENCH_DURATION_MAX_S, BENCH_SETUP_MAX_S, DEF_CONNS,
        DEF_CONCURRENCY, DEF_GROUPS, DEF_MEMBERS, DEF_MESSAGES, DEF_LIMIT, DEF_SOURCES,
        DEF_TIMEOUT_MS);
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A command-line mistake: say it in one line. @return -1. */
static int bad(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "cimbench: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see --help)\n");
    return -1;
}

static int num_u(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
    char *end;
    unsigned long v;

    if (s == NULL || *s == '\0' || *s == '-')
        return -1;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int num_d(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v;

    if (s == NULL || *s == '\0')
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static bool is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (strcmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

static bool is_ipv4_loopback(const char *host)
{
    struct in_addr a4;

    return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

/* The app secret from the data dir, read-only (safe while cimd runs). */
static int secret_from_data(bench_t *b)
{
    kv_t *kv = NULL;
    kv_txn_t *txn = NULL;
    int rc;

    if ((rc = kv_open(b->o.data, KV_RDONLY, &kv)) < 0)
        goto out;
    if ((rc = kv_begin(kv, KV_READ, &txn)) < 0)
        goto out;
    rc = kv_app_get(txn, b->o.app[0] != '\0' ? b->o.app : "default", b->o.secret);
out:
    if (txn != NULL)
        kv_abort(txn);
    kv_close(kv);
    return rc;
}

static int key_from_data(bench_t *b)
{
    chan_identity_t *id = NULL;
    char path[1024];
    int rc;

    if (snprintf(path, sizeof(path), "%s/identity.key", b->o.data) >= (int)sizeof(path))
        return RC_EINVAL;
    if ((rc = chan_global_init()) < 0 || (rc = chan_identity_open(path, &id)) < 0)
        return rc;
    chan_identity_public(id, b->o.key);
    chan_identity_free(id);
    return 0;
}

static int parse_args(bench_t *b, int argc, char **argv)
{
    bench_opts_t *o = &b->o;
    bool have_key = false, have_secret = false, have_sources = false;
    unsigned long u;
    double d;

    o->host = "127.0.0.1";
    o->port = DEF_PORT;
    o->duration_s = DEF_DURATION_S;
    o->conns = DEF_CONNS;
    o->concurrency = DEF_CONCURRENCY;
    o->window = 1;
    o->size = 100;
    o->timeout_ms = DEF_TIMEOUT_MS;
    o->ack_every = 64;
    o->groups = DEF_GROUPS;
    o->members = DEF_MEMBERS;
    o->senders = 1;
    o->messages = DEF_MESSAGES;
    o->limit = DEF_LIMIT;
    o->devices = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (a[0] != '-') {
            if (o->scenario != NULL)
                return bad("unexpected argument '%s'", a);
            o->scenario = a;
            takes = false;
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
            takes = false;
        } else if (strcmp(a, "--allow-remote") == 0) {
            o->allow_remote = true;
            takes = false;
        } else if (v == NULL) {
            return bad("%s needs a value", a);
        } else if (strcmp(a, "--host") == 0) {
            o->host = v;
        } else if (strcmp(a, "--port") == 0) {
            if (num_u(v, 1, 65535, &u) < 0)
                return bad("bad --port '%s'", v);
            o->port = (int)u;
        } else if (strcmp(a, "--key") == 0) {
            if (chan_unhex(v, o->key) < 0)
                return bad("--key wants 64 hex characters, not '%s'", v);
            have_key = true;
        } else if (strcmp(a, "--secret") == 0) {
            if (chan_unhex(v, o->secret) < 0)
                return bad("--secret wants 64 hex characters, not '%s'", v);
            have_secret = true;
        } else if (strcmp(a, "--data") == 0) {
            o->data = v;
        } else if (strcmp(a, "--app") == 0) {
            if (strlen(v) > 64)
                return bad("--app '%s' is over 64 bytes", v);
            snprintf(o->app, sizeof(o->app), "%s", v);
        } else if (strcmp(a, "--duration") == 0) {
            if (num_d(v, 0.1, BENCH_DURATION_MAX_S, &d) < 0)
                return bad("--duration wants seconds in 0.1..3600, not '%s'", v);
            o->duration_s = d;
        } else if (strcmp(a, "--count") == 0) {
            if (num_u(v, 1, 1000000000ul, &u) < 0)
                return bad("bad --count '%s'", v);
            o->count = u;
        } else if (strcmp(a, "--pid") == 0) {
            if (num_u(v, 1, 1u << 30, &u) < 0)
                return bad("bad --pid '%s'", v);
            o->pid = (pid_t)u;
        } else if (strcmp(a, "--conns") == 0) {
            if (num_u(v, 1, 10000000ul, &u) < 0)
                return bad("bad --conns '%s'", v);
            o->conns = (unsigned)u;
        } else if (strcmp(a, "--concurrency") == 0) {
            if (num_u(v, 1, 100000ul, &u) < 0)
                return bad("bad --concurrency '%s'", v);
            o->concurrency = (unsigned)u;
        } else if (strcmp(a, "--users") == 0) {
            if (num_u(v, 1, 10000000ul, &u) < 0)
                return bad("bad --users '%s'", v);
            o->users = (unsigned)u;
        } else if (strcmp(a, "--window") == 0) {
            if (num_u(v, 1, 100000ul, &u) < 0)
                return bad("bad --window '%s'", v);
            o->window = (unsigned)u;
        } else if (strcmp(a, "--rate") == 0) {
            if (num_d(v, 0.001, 1e8, &d) < 0)
                return bad("bad --rate '%s'", v);
            o->rate = d;
        } else if (strcmp(a, "--size") == 0) {
            if (num_u(v, 16, 65000, &u) < 0)
                return bad("--size wants 16..65000 bytes, not '%s'", v);
            o->size = (unsigned)u;
        } else if (strcmp(a, "--ack-every") == 0) {
            if (num_u(v, 0, 1000000ul, &u) < 0)
                return bad("bad --ack-every '%s'", v);
            o->ack_every = (unsigned)u;
        } else if (strcmp(a, "--groups") == 0) {
            if (num_u(v, 1, 100000ul, &u) < 0)
                return bad("bad --groups '%s'", v);
            o->groups = (unsigned)u;
        } else if (strcmp(a, "--members") == 0) {
            if (num_u(v, 2, 100000ul, &u) < 0)
                return bad("--members wants 2..100000, not '%s'", v);
            o->members = (unsigned)u;
        } else if (strcmp(a, "--senders") == 0) {
            if (num_u(v, 1, 100000ul, &u) < 0)
                return bad("bad --senders '%s'", v);
            o->senders = (unsigned)u;
        } else if (strcmp(a, "--messages") == 0) {
            if (num_u(v, 1, 10000000ul, &u) < 0)
                return bad("--messages wants 1..10000000, not '%s'", v);
            o->messages = u;
        } else if (strcmp(a, "--limit") == 0) {
            if (num_u(v, 1, 500, &u) < 0)
                return bad("--limit wants 1..500 (the server's SYNC maximum), not '%s'", v);
            o->limit = (unsigned)u;
        } else if (strcmp(a, "--devices") == 0) {
            if (num_u(v, 1, 1000, &u) < 0)
                return bad("--devices wants 1..1000, not '%s'", v);
            o->devices = (unsigned)u;
        } else if (strcmp(a, "--sources") == 0) {
            if (num_u(v, 1, BENCH_SOURCES_MAX, &u) < 0)
                return bad("--sources wants 1..250, not '%s'", v);
            o->sources = (unsigned)u;
            have_sources = true;
        } else if (strcmp(a, "--timeout") == 0) {
            if (num_u(v, 100, 3600000ul, &u) < 0)
                return bad("bad --timeout '%s'", v);
            o->timeout_ms = (unsigned)u;
        } else {
            return bad("unknown option '%s'", a);
        }
        if (takes)
            i++;
    }
    if (o->scenario == NULL)
        return bad("%s", "which scenario?");
    for (size_t i = 0; i < NSCENARIOS; i++)
        if (strcmp(scenarios[i]->name, o->scenario) == 0)
            b->sc = scenarios[i];
    if (b->sc == NULL)
        return bad("unknown scenario '%s'", o->scenario);
    if (b->sc->start == NULL)
        return bad("scenario '%s' is not implemented yet", o->scenario);
    if (!o->allow_remote && !is_loopback(o->host))
        return bad("refusing non-loopback host '%s' without --allow-remote", o->host);
    if (!have_sources)
        o->sources = is_ipv4_loopback(o->host) ? DEF_SOURCES : 1;
    else if (o->sources > 1 && !is_ipv4_loopback(o->host))
        return bad("--sources > 1 needs an IPv4 loopback --host, not '%s'", o->host);
    if (!have_secret) {
        int rc;
        if (o->data == NULL)
            return bad("%s", "need --data DIR or --secret HEX to mint tokens");
        if ((rc = secret_from_data(b)) < 0) {
            fprintf(stderr, "cimbench: cannot read the secret of app '%s' from %s: %s\n",
                    o->app[0] != '\0' ? o->app : "default", o->data, rc_str(rc));
            return -1;
        }
    }
    if (!have_key) {
        int rc;
        if (o->data == NULL)
            return bad("%s", "need --key HEX (the server identity; cimctl show-key)");
        if ((rc = key_from_data(b)) < 0) {
            fprintf(stderr, "cimbench: no --key and cannot read %s/identity.key: %s\n", o->data,
                    rc_str(rc));
            return -1;
        }
    }
    return 0;
}

/* Raise the soft descriptor limit to the hard one; @return the limit now in force. */
static long raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0 && getrlimit(RLIMIT_NOFILE, &rl) != 0)
            return 1024;
    }
    return rl.rlim_cur == RLIM_INFINITY ? 1L << 20 : (long)rl.rlim_cur;
}

int main(int argc, char **argv)
{
    bench_t *b = mem_calloc(sizeof(*b));
    report_t *r = NULL;
    double load1;
    long ncpu;
    int rc, status = 1;

    hist_reset(&b->login_lat);
    (void)signal(SIGPIPE, SIG_IGN); /* libuv writes with write(2) */
    log_set_level(LOG_LVL_WARN);
    if (parse_args(b, argc, argv) < 0)
        goto out;

    b->nofile = raise_nofile();
    proc_load(&load1, &ncpu);
    fprintf(stderr,
            "cimbench %s: %s:%d, RLIMIT_NOFILE %ld: up to %ld connections; %ld cpus, load %.2f\n",
            b->sc->name, b->o.host, b->o.port, b->nofile, b->nofile - BENCH_FD_RESERVE, ncpu,
            load1);
    b->run_id = (uint32_t)(bench_now_ns() ^ ((uint64_t)getpid() << 16));

    if ((rc = uv_loop_init(&b->loop)) < 0) {
        fprintf(stderr, "cimbench: uv_loop_init: %s\n", uv_strerror(rc));
        goto out;
    }
    if ((rc = cimc_async_loop_new(&b->loop, &b->al)) < 0) {
        fprintf(stderr, "cimbench: cannot start libcim: %s\n", rc_str(rc));
        (void)uv_loop_close(&b->loop); /* nothing was started on it */
        goto out;
    }
    (void)uv_timer_init(&b->loop, &b->progress); /* timers and signals: cannot fail */
    (void)uv_timer_init(&b->loop, &b->phase);
    (void)uv_timer_init(&b->loop, &b->watchdog);
    (void)uv_signal_init(&b->loop, &b->sigint);
    b->progress.data = b->phase.data = b->watchdog.data = b->sigint.data = b;
    (void)uv_signal_start(&b->sigint, on_sigint, SIGINT);
    b->t_begin_ns = b->t_last_progress_ns = bench_now_ns();
    (void)uv_timer_start(&b->progress, on_progress, 1000, 1000);
    (void)uv_timer_start(
        &b->watchdog, on_watchdog,
        (uint64_t)((BENCH_SETUP_MAX_S + b->o.duration_s + BENCH_DRAIN_S + 30) * 1000.0), 0);
    if (b->sc->start(b) < 0) {
        b->failed = true;
        bench_finish(b);
    }
    (void)uv_run(&b->loop, UV_RUN_DEFAULT); /* returns once bench_finish closed it all */
    if ((rc = uv_loop_close(&b->loop)) < 0)
        fprintf(stderr, "cimbench: uv_loop_close: %s\n", uv_strerror(rc));

    /* The scenario first: it settles ops and the throughput the common part prints. */
    r = report_new();
    if (b->sc->report != NULL)
        b->sc->report(b, r);
    if (b->ops == 0 && !b->failed) {
        fprintf(stderr, "cimbench: nothing succeeded\n");
        b->failed = true;
    }
    add_common_report(b, r);
    report_print(r, b->o.json, stdout);
    fflush(stdout);
    status = b->failed ? 1 : 0;
out:
    report_free(r);
    for (unsigned i = 0; i < b->nconns; i++)
        mem_free(b->conns[i].ring);
    mem_free(b->conns);
    mem_free(b->sc_data);
    mem_free(b);
    return status;
}
