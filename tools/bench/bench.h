/**
 * bench: what cimbench's driver (cimbench.c) shares with its scenarios (sc_*.c).
 *
 * Design. One process, one libuv loop, one libcim event-driven loop state
 * (cimc_async_loop_t) holding every connection: the bench is single-threaded, so its
 * counters and histograms need no locks and its own CPU time is directly comparable to
 * the work it generates. A scenario is a row of the scenario table (scenario_t): the
 * driver parses the command line, raises the descriptor limit, prepares tokens, runs the
 * loop with a progress line every second, enforces the time limits, and prints the
 * report; the scenario opens connections (through the pool below, or on its own), drives
 * the load, decides when it is done and adds its results.
 *
 * Phases. setup (opening connections; at most BENCH_SETUP_MAX_S) → the measured window
 * (bench_window_start .. bench_window_end: throughput, server and bench CPU are taken over
 * it) → drain (answers still due; at most BENCH_DRAIN_S) → bench_finish(), which closes
 * every connection and ends the loop. Every run ends by itself: --duration is capped at
 * BENCH_DURATION_MAX_S and a watchdog ends any run that overstays the sum of the limits.
 *
 * Connections are spread over several source addresses (127.0.0.1..127.0.0.N, bound
 * before connect through cimc_opts_t.bind_addr) when the server is on IPv4 loopback, so
 * neither the ~28k ephemeral ports per (source, destination) pair nor the server's
 * max_conns_per_ip cap (default 1000) limits the connection count.
 *
 * Threading: everything here runs on the loop's thread (the main thread).
 */
#ifndef CIMBENCH_BENCH_H
#define CIMBENCH_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "client/cim.h"
#include "hist.h"
#include "report.h"

#define BENCH_DURATION_MAX_S 3600.0 /* --duration hard cap */
#define BENCH_SETUP_MAX_S    300.0  /* opening connections: at most this long */
#define BENCH_DRAIN_S        5.0    /* answers/pushes awaited after the window */
#define BENCH_FD_RESERVE     64     /* descriptors kept for the process itself */
#define BENCH_CODES          32     /* cim_Code values counted (0..16 defined) */
#define BENCH_RCS            32     /* distinct connection-level rc values counted */
#define BENCH_SOURCES_MAX    250    /* 127.0.0.1 .. 127.0.0.250 */
#define BENCH_SERVER_PER_IP  1000   /* cimd's default max_conns_per_ip (for a warning) */

typedef struct bench bench_t;
typedef struct bconn bconn_t;

/** Command-line options (cimbench --help describes each). */
typedef struct bench_opts {
    const char *scenario;
    const char *host;
    int port;
    uint8_t key[32]; /* the server's pinned identity */
    uint8_t secret[32];
    const char *data; /* --data: where the secret (and, without --key, the key) come from */
    char app[65];     /* "" = default */
    double duration_s;
    uint64_t count; /* 0 = no limit (scenario-specific meaning) */
    bool json;
    pid_t pid; /* 0 = no server process to watch */
    bool allow_remote;
    unsigned conns;       /* login / conns: connections in all */
    unsigned concurrency; /* connects in flight at once */
    unsigned users;       /* 0 = scenario default */
    unsigned window;      /* c2c closed loop: requests in flight per connection */
    double rate;          /* c2c open loop: messages/s in all; 0 = closed loop */
    unsigned size;        /* c2c: message body bytes */
    unsigned sources;     /* source addresses to spread over (1 = no bind) */
    unsigned timeout_ms;  /* libcim: connect+login and each answer */
    unsigned ack_every;   /* c2c, group: PUSH_ACK every N pushes per connection; 0 = never */
    unsigned groups;      /* group: groups */
    unsigned members;     /* group: members per group (one user, one connection each) */
    unsigned senders;     /* group: senders per group */
    uint64_t messages;    /* sync: messages preloaded */
    unsigned limit;       /* sync: SyncReq.limit per page */
    unsigned devices;     /* sync: fresh devices syncing in parallel */
} bench_opts_t;

/** A row of the scenario table. */
typedef struct scenario {
    const char *name;
    const char *summary; /* one line for --help */
    /** Begin (from inside the loop, before any I/O). @return 0, or an rc after printing
     *  why (the run then ends with exit status 1). NULL: not implemented yet. */
    int (*start)(bench_t *b);
    /** Write the scenario's part of the progress line (@p dt: seconds since the last). */
    void (*progress)(bench_t *b, char *buf, size_t len, double dt);
    /** The time is up (--duration, setup limit) or SIGINT: stop generating load and
     *  call bench_finish() (now or once drained). */
    void (*stop)(bench_t *b);
    /** Pool only: every pool connection is open or failed. */
    void (*setup_done)(bench_t *b);
    /** Pool only: a PUSH or EVENT arrived on @p bc. */
    void (*on_push)(bench_t *b, bconn_t *bc, const cimc_push_t *p);
    /** Add the scenario's results (throughput, latencies, …) to @p r; also sets b->ops,
     *  b->tput. Called after the loop ended. */
    void (*report)(bench_t *b, report_t *r);
    /** bench_finish() is closing everything: close the scenario's own handles (uv_close;
     *  their memory must live until the loop ends). May be NULL. */
    void (*finish)(bench_t *b);
    /** bench_connect: change the login of @p bc (user, device_id) after the defaults were
     *  filled in and before the token is minted. May be NULL (user "u<idx % users>",
     *  device "<scenario>-<idx>"). */
    void (*login)(const bench_t *b, const bconn_t *bc, cim_LoginReq *req);
} scenario_t;

/** One connection of the pool (or of the login storm). */
struct bconn {
    bench_t *b;
    cimc_t *c;      /* NULL until started and after on_close */
    uint32_t idx;   /* index in b->conns; user = "u" + (idx % users) */
    bool open;      /* logged in and not closed */
    uint64_t t0_ns; /* when the connect started */
    /* c2c, group, sync: send times of the requests in flight, oldest first (answers come
     * in order; bench_ring_push/pop) */
    uint64_t *ring;
    uint32_t ring_cap, ring_head, ring_len;
    uint64_t seq;      /* SENDs issued on this connection */
    uint64_t push_max; /* highest msg_id pushed */
    uint32_t push_unacked;
};

/** The run. Scenarios read the options and use the counters; the driver owns the rest. */
struct bench {
    bench_opts_t o;
    const scenario_t *sc;
    void *sc_data; /* the scenario's own state */

    uv_loop_t loop;
    cimc_async_loop_t *al;
    uv_timer_t progress, phase, watchdog;
    uv_signal_t sigint;
    const char *phase_name;
    void (*phase_fn)(bench_t *b);
    bool stopping;  /* stop() was called */
    bool finishing; /* bench_finish() was called */
    bool failed;    /* the run could not do what was asked (exit status 1) */
    uint32_t run_id;
    uint64_t t_begin_ns, t_last_progress_ns;
    long nofile; /* descriptors this process may open */

    /* pool */
    bconn_t *conns;
    unsigned nconns;     /* size of conns */
    unsigned next;       /* next index to start */
    unsigned connecting; /* started, on_ready not yet */
    unsigned opened, open_failed, open_now, disconnects;
    uint64_t opened_last; /* progress: opened at the last line */
    hist_t login_lat;     /* connect → LoginRsp{OK} */
    uint64_t setup_t0_ns, setup_t1_ns;

    /* errors */
    uint64_t codes[BENCH_CODES]; /* non-OK response codes by cim_Code */
    int rc_val[BENCH_RCS];
    uint64_t rc_cnt[BENCH_RCS];
    uint64_t mismatch; /* results the scenario checked and found wrong (missing, duplicate,
                          out of order): counted in bench_errors(), reported as "mismatch" */
    uint64_t unanswered; /* requests still unanswered when the drain ended (group, sync):
                            counted in bench_errors(), reported as "unanswered" */

    /* the measured window */
    uint64_t w_t0_ns, w_t1_ns;
    bool w_have_srv;
    uint64_t w_srv_cpu0, w_srv_cpu1, w_self_cpu0, w_self_cpu1;
    uint64_t ops;        /* operations completed in the window (per-op CPU) */
    const char *op_name; /* "login", "message", "connection" */
    double tput;         /* the headline throughput */
    const char *tput_unit;
};

extern const scenario_t sc_login, sc_conns, sc_c2c, sc_group, sc_sync;

/** CLOCK_MONOTONIC in nanoseconds (also the clock message bodies carry). */
uint64_t bench_now_ns(void);

/** Count a response code other than OK (or OK, harmlessly). */
void bench_count_code(bench_t *b, int code);

/** Count a connection-level failure (a libcim rc). */
void bench_count_rc(bench_t *b, int rc);

/** Sum of the counted codes and rcs. */
uint64_t bench_errors(const bench_t *b);

/** Append @p v to @p bc's FIFO of send times (grows as needed; aborts on OOM). */
void bench_ring_push(bconn_t *bc, uint64_t v);

/** Take the oldest send time of @p bc's FIFO. @return false when it is empty. */
bool bench_ring_pop(bconn_t *bc, uint64_t *v);

/** Write the user id of user @p i ("u<i>") into @p out. */
void bench_user(char *out, size_t len, unsigned i);

/**
 * Start connection @p bc: TCP from its source address, handshake, LOGIN as user
 * (bc->idx % users) on device "<scenario>-<idx>" with a freshly minted token.
 * @return 0 (then @p cbs's on_ready and on_close follow, ctx = @p bc), or an rc (counted
 *         with bench_count_rc; no callback follows).
 */
int bench_connect(bench_t *b, bconn_t *bc, const cimc_async_cbs_t *cbs);

/**
 * Open @p n pooled connections (users u0..u(users-1), one per connection modulo users),
 * --concurrency at a time; sc->setup_done is called once all have opened or failed (also
 * when that is immediate). Allocates b->conns.
 */
void bench_pool_open(bench_t *b, unsigned n);

/** Run @p fn after @p seconds (replacing any pending phase deadline) and name the phase. */
void bench_phase(bench_t *b, const char *name, double seconds, void (*fn)(bench_t *b));

/** Start the measured window: time, server and bench CPU. */
void bench_window_start(bench_t *b);

/** End the measured window (idempotent: the first call counts). */
void bench_window_end(bench_t *b);

/** Seconds in the window (so far, if it is still open). */
double bench_window_s(const bench_t *b);

/** Close every connection and end the loop; the report follows. Idempotent. */
void bench_finish(bench_t *b);

/** Scale @p v for the progress line: "12.3k". */
const char *bench_si(char *buf, size_t len, double v);

/* ---- load.c: what the message scenarios (c2c, group) share ------------------------- */

/**
 * The open-loop scheduler: sends are scheduled by the clock at --rate/s in all,
 * round-robin over a set of connections, every latency counted from the *scheduled* time.
 * libuv timers have millisecond resolution, so this is a timerfd (ns resolution) polled by
 * the loop, re-armed for the next due send but at most every 100 µs (sends due meanwhile
 * go out together); how late each actually went out is recorded in lag.
 */
typedef struct bench_sched {
    bench_t *b;
    int tfd;          /* the timerfd, -1 when none */
    uv_poll_t tpoll;  /* ... polled by the loop */
    bool init;        /* tpoll is initialised */
    uint64_t issued;  /* sends scheduled so far */
    uint64_t skipped; /* scheduled for a closed connection */
    hist_t lag;       /* scheduled time → actually sent */
    /* set by bench_sched_start */
    const bool *running; /* the scenario's window is open */
    const unsigned *conns;
    unsigned nconns;
    int (*send)(bench_t *b, bconn_t *bc, uint64_t t_ns);
    void (*over)(bench_t *b);
} bench_sched_t;

/** Prepare @p t (tfd -1, lag empty); when @p open_loop, also create its timerfd and poll
 *  handle. @return 0, or an rc (a failing timerfd_create is printed). */
int bench_sched_init(bench_t *b, bench_sched_t *t, bool open_loop);

/** The window opened: send over @p conns[0..n-1] from b->w_t0_ns on; each send by
 *  @p send (its latency from the given time), @p over when --count was scheduled or the
 *  scheduler failed (printed; b->failed). Ticks do nothing once *@p running is false. */
void bench_sched_start(bench_sched_t *t, const bool *running, const unsigned *conns,
                       unsigned n, int (*send)(bench_t *b, bconn_t *bc, uint64_t t_ns),
                       void (*over)(bench_t *b));

/** No more ticks (the window closed). */
void bench_sched_stop(bench_sched_t *t);

/** bench_finish(): close the handle and the timerfd. */
void bench_sched_close(bench_sched_t *t);

/** Sends due by the clock over @p win_s seconds (capped at --count) but never scheduled:
 *  the bench itself fell behind. */
int64_t bench_sched_behind(const bench_t *b, const bench_sched_t *t, double win_s);

/** Stamp a message body (send time @p t_ns, then the run id: 12 bytes) and write the
 *  SEND's client_msg_id, unique per sender across runs (a repeated one would be
 *  deduplicated). */
void bench_stamp(const bench_t *b, const bconn_t *bc, uint8_t *body, uint64_t t_ns, char *cmid,
                 size_t cmid_len);

/** Read the stamp of a PUSH's body. @return true when it is this run's and not from the
 *  future: then *@p now is the time now and *@p lat_ns the send → push latency. */
bool bench_push_timed(const bench_t *b, const cimc_push_t *p, uint64_t *now, uint64_t *lat_ns);

/** A push arrived on @p bc (bc->push_max updated): PUSH_ACK up to bc->push_max every
 *  --ack_every pushes, counting the acks sent in *@p acks and a failure with
 *  bench_count_rc. */
void bench_push_ack(bench_t *b, bconn_t *bc, uint64_t *acks);

#endif
