/**
 * bench: what cimbench's driver (cimbench.c) shares with its scenarios (sc_*.c).
 *
 * Design. One process; its connections live on --threads N libuv loops, one per thread
 * ("loop threads", bench_thr_t), each with its own libcim event-driven loop state
 * (cimc_async_loop_t). Loop thread 0 is the main thread's loop, which also runs the
 * driver's control: the command line, the descriptor limit, the timers (progress line
 * every second, phases, watchdog, window ticks), SIGINT and the report. With N = 1 (the
 * default) everything happens on that one loop, as before threads existed. Threads
 * 1..N-1 run only their loops. Pooled connections are spread round-robin: connection i
 * lives on thread i % N, and only that thread ever touches it.
 *
 * A scenario is a row of the scenario table (scenario_t). Its main-thread hooks (start,
 * progress, stop, setup_done, check, report, finish) decide the run; its per-thread hooks
 * (thr_cmd, thr_snap, thr_finish, on_push and the libcim callbacks of its requests) drive
 * the load on each loop thread's own connections.
 *
 * Talking across threads (the only cross-thread calls are uv_async_send, wrapped here):
 *  - main → loop thread: bench_post(t, cmd) sets command bits (BENCH_CMD_*, and the
 *    scenario's own from BENCH_CMD_SC up) and wakes the thread; it handles them on its
 *    loop (thr_cmd). Fields the main thread wrote before posting are visible to the
 *    thread once it handles the command (the bits are exchanged with release/acquire).
 *  - loop thread → main: bench_notify(t, ev) sets event bits (BENCH_EV_*) and wakes the
 *    main loop: BENCH_EV_CHECK makes the main thread call the scenario's check hook, which
 *    decides from summed counters whether a phase is over.
 *  - counters a loop thread writes and the main thread sums while the run goes on are
 *    bench_ctr_t (one writer; release store, acquire load: plain moves on x86); the flags
 *    the main thread flips for everyone (running, draining, stopping) are _Atomic bool.
 *  - histograms are never shared while being written: each thread records into its own
 *    and merges them under bench_t.mu when the progress line asks for a snapshot
 *    (BENCH_CMD_SNAP → thr_snap) and when it finishes; the main thread reads the merged
 *    ones under the same mutex.
 *  - the measured window's series (series.h) has its own mutex.
 * Locks: bench_t.mu (histogram merges; held by the main thread while the scenario writes
 * its progress line), bench_t.err_mu (the rc error table; may be taken inside mu, never
 * the reverse) and series_t.mu; none is held across a libuv or libcim call.
 *
 * Phases. setup (opening connections; at most BENCH_SETUP_MAX_S) → the measured window
 * (bench_window_start .. bench_window_end: throughput, server and bench CPU are taken over
 * it, and it is cut into --window-s windows for the series) → drain (answers still due;
 * at most BENCH_DRAIN_S) → bench_finish(), which tells every loop thread to close its
 * connections; the threads are joined and the report printed. Every run ends by itself:
 * --duration is capped at BENCH_DURATION_MAX_S and a watchdog ends any run that overstays
 * the sum of the limits.
 *
 * Connections are spread over several source addresses (127.0.0.1..127.0.0.N, bound
 * before connect through cimc_opts_t.bind_addr) when the server is on IPv4 loopback, so
 * neither the ~28k ephemeral ports per (source, destination) pair nor the server's
 * max_conns_per_ip cap (default 1000) limits the connection count.
 *
 * Servers. --hosts (or --ports on --host) lists up to BENCH_SERVERS_MAX servers that share
 * one identity key and app secret (the nodes of one service, or standalone copies of one
 * data dir). Connections are dealt to them round-robin by user number (bench_server_of):
 * the user a connection logs in as, "u<n>" → n, so user n always reaches server n % S.
 * Where every connection has a user of its own (c2c, group, and login, conns and fill by
 * default) that is the connection index; where users repeat (--users below the
 * connection count) it keeps each user on one server. The default is the one --host and
 * --port, as before. Each loop thread counts the connects and logins per server.
 *
 * CPU: the bench's own CPU time is getrusage(RUSAGE_SELF): every thread of the process.
 */
#ifndef CIMBENCH_BENCH_H
#define CIMBENCH_BENCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "client/cim.h"
#include "hist.h"
#include "report.h"
#include "series.h"

#define BENCH_DURATION_MAX_S 3600.0 /* --duration hard cap */
#define BENCH_SETUP_MAX_S    300.0  /* opening connections: at most this long */
#define BENCH_DRAIN_S        5.0    /* answers/pushes awaited after the window */
#define BENCH_FD_RESERVE     64     /* descriptors kept for the process itself */
#define BENCH_CODES          32     /* cim_Code values counted (0..16 defined) */
#define BENCH_RCS            32     /* distinct connection-level rc values counted */
#define BENCH_SOURCES_MAX    250    /* 127.0.0.1 .. 127.0.0.250 */
#define BENCH_SERVER_PER_IP  1000   /* cimd's default max_conns_per_ip (for a warning) */
#define BENCH_THREADS_MAX    64     /* --threads */
#define BENCH_FILL_CONNS     64     /* fill: default sending connections (at most --users) */
#define BENCH_FILL_WINDOW    256    /* fill: default SENDs in flight per connection */
#define BENCH_SERVERS_MAX    64     /* --hosts, --ports and --pid entries */
#define BENCH_HOST_MAX       256    /* a host name or address, NUL included */

/* main → loop thread commands (bench_post) */
#define BENCH_CMD_POOL   (1u << 0) /* open this thread's share of the pool */
#define BENCH_CMD_SNAP   (1u << 1) /* progress snapshot: merge interval histograms */
#define BENCH_CMD_FINISH (1u << 2) /* close everything; the thread's loop ends */
#define BENCH_CMD_SC     (1u << 8) /* the first bit a scenario may use (thr_cmd) */
#define BENCH_CMD_SC_ALL (~(BENCH_CMD_SC - 1u))

/* loop thread → main events (bench_notify) */
#define BENCH_EV_POOL  (1u << 0) /* a thread's share of the pool is open (or failed) */
#define BENCH_EV_SNAP  (1u << 1) /* a thread took its snapshot */
#define BENCH_EV_CHECK (1u << 2) /* something the scenario's check hook waits for moved */
#define BENCH_EV_STOP  (1u << 3) /* a thread failed (b->failed set): stop the run */
#define BENCH_EV_DONE  (1u << 4) /* a thread finished */

typedef struct bench bench_t;
typedef struct bench_thr bench_thr_t;
typedef struct bconn bconn_t;

/** A counter written by one thread (its owner) and read by any: bench_ctr_add/get. */
typedef _Atomic uint64_t bench_ctr_t;

/** Add @p n to @p c. Only the thread that owns @p c may call this: no locked
 *  instruction, a load and a release store (plain moves on x86), so a reader that sees
 *  the new value also sees what the owner wrote before, e.g. its SENDs before their
 *  answers. */
static inline void bench_ctr_add(bench_ctr_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_release);
}

/** Read @p c from any thread (an acquire load). */
static inline uint64_t bench_ctr_get(const bench_ctr_t *c)
{
    return atomic_load_explicit(c, memory_order_acquire);
}

/** One server to connect to (--hosts, or --host with --port or --ports). */
typedef struct bench_server {
    char host[BENCH_HOST_MAX]; /* without the brackets of an IPv6 [ADDR]:PORT */
    int port;
} bench_server_t;

/** Command-line options (cimbench --help describes each). */
typedef struct bench_opts {
    const char *scenario;
    const char *host; /* servers[0]'s after parsing (the report's params) */
    int port;

    bench_server_t servers[BENCH_SERVERS_MAX];
    unsigned nservers;             /* 1..BENCH_SERVERS_MAX */
    pid_t pids[BENCH_SERVERS_MAX]; /* --pid: the server processes to watch */
    unsigned npids;                /* 0 = none */
    bool peers_local;              /* c2c --peers same-server: only the sender's server's */
    uint32_t home_nodes[BENCH_SERVERS_MAX]; /* --home-nodes: servers[i] is cluster node
                                               home_nodes[i]; users connect to their home */
    unsigned nhome;                /* 0 = round-robin (bench_server_of) */

    uint8_t key[32]; /* the server's pinned identity */
    uint8_t secret[32];
    const char *data; /* --data: where the secret (and, without --key, the key) come from */
    char app[65];     /* "" = default */
    double duration_s;
    bool have_duration; /* --duration was given */
    uint64_t count;     /* 0 = no limit (scenario-specific meaning) */
    bool json;
    bool allow_remote;
    unsigned conns;       /* login / conns: connections in all; fill: sending connections */
    bool have_conns;      /* --conns was given */
    unsigned concurrency; /* connects in flight at once */
    unsigned users;       /* 0 = scenario default */
    unsigned window;      /* c2c closed loop: requests in flight per connection */
    bool have_window;     /* --window was given */
    double rate;          /* c2c open loop: messages/s in all; 0 = closed loop */
    unsigned size;        /* c2c: message body bytes */
    unsigned sources;     /* source addresses to spread over (1 = no bind) */
    unsigned timeout_ms;  /* libcim: connect+login and each answer */
    unsigned ack_every;   /* c2c, group: PUSH_ACK every N pushes per connection; 0 = never */
    unsigned groups;      /* group: groups */
    unsigned members;     /* group: members per group (one user, one connection each) */
    unsigned senders;     /* group: senders per group */
    uint64_t messages;    /* sync: messages preloaded; fill: messages to store */
    unsigned limit;       /* sync: SyncReq.limit per page */
    unsigned devices;     /* sync: fresh devices syncing in parallel */
    unsigned threads;     /* loop threads (--threads) */
    double window_len_s;  /* --window-s: the series' window length */
} bench_opts_t;

/** A row of the scenario table. Hooks say which thread runs them. */
typedef struct scenario {
    const char *name;
    const char *summary; /* one line for --help */
    /** Main thread, before any loop runs: check the options, allocate the scenario's
     *  state (b->sc_data, and each b->thr[i].sc), start the pool or the first phase.
     *  @return 0, or an rc after printing why (the run then ends with exit status 1, and no
     *  other hook of the scenario is called: free what it allocated but b->sc_data and
     *  b->thr[i].sc, which the driver frees). */
    int (*start)(bench_t *b);
    /** Most scenarios work on several loop threads; false: --threads must be 1. */
    bool threads_ok;
    /** Main thread: write the scenario's part of the progress line (@p dt: seconds since
     *  the last). Every thread merged its interval histograms just before (thr_snap). */
    void (*progress)(bench_t *b, char *buf, size_t len, double dt);
    /** Main thread: the time is up (--duration, setup limit), SIGINT, or a thread failed:
     *  stop generating load and call bench_finish() (now or once drained). */
    void (*stop)(bench_t *b);
    /** Main thread, pool only: every pool connection is open or failed. */
    void (*setup_done)(bench_t *b);
    /** Main thread: a loop thread posted BENCH_EV_CHECK. May be NULL. */
    void (*check)(bench_t *b);
    /** Loop thread @p t: handle the scenario's command bits @p cmds (BENCH_CMD_SC and up).
     *  May be NULL. */
    void (*thr_cmd)(bench_thr_t *t, unsigned cmds);
    /** Loop thread @p t: merge its interval histograms into the shared ones (lock b->mu).
     *  May be NULL. */
    void (*thr_snap)(bench_thr_t *t);
    /** Loop thread @p t is finishing: close its scenario handles (uv_close; their memory
     *  must live until the loop ends) and merge what it still holds (lock b->mu). May be
     *  NULL. */
    void (*thr_finish)(bench_thr_t *t);
    /** Loop thread of @p bc, pool only: a PUSH or EVENT arrived on @p bc. */
    void (*on_push)(bench_t *b, bconn_t *bc, const cimc_push_t *p);
    /** Main thread, after every loop thread ended: add the scenario's results
     *  (throughput, latencies, …) to @p r; also sets b->ops, b->tput. */
    void (*report)(bench_t *b, report_t *r);
    /** Main thread, bench_finish() is closing everything: close the scenario's handles on
     *  the main loop (loop thread 0's go through thr_finish). May be NULL. */
    void (*finish)(bench_t *b);
    /** Loop thread, bench_connect: change the login of @p bc (user, device_id) after the
     *  defaults were filled in and before the token is minted. May be NULL (user
     *  "u<idx % users>", device "<scenario>-<idx>"). */
    void (*login)(const bench_t *b, const bconn_t *bc, cim_LoginReq *req);
    /** Any thread: the number of the user @p bc logs in as, which picks its server
     *  (bench_server_of). May be NULL (idx % users: user "u<n>" is n). A scenario whose
     *  login hook names users otherwise numbers them here, the same number for the same
     *  user. */
    unsigned (*user_no)(const bench_t *b, const bconn_t *bc);
} scenario_t;

/** One connection of the pool (or of the login storm). Touched only by its thread. */
struct bconn {
    bench_t *b;
    bench_thr_t *t;    /* the loop thread it lives on */
    cimc_t *c;         /* NULL until started and after on_close */
    uint32_t idx;      /* index in b->conns; user = "u" + (idx % users) */
    _Atomic bool open; /* logged in and not closed (the main thread reads it at phase
                          changes) */
    uint64_t t0_ns;    /* when the connect started */
    unsigned srv;      /* index in b->o.servers (set by bench_connect) */
    /* the scenario's callbacks (set by bench_connect; the driver's call them) */
    const cimc_async_cbs_t *cbs;
    /* c2c, group, sync: send times of the requests in flight, oldest first (answers come
     * in order; bench_ring_push/pop) */
    uint64_t *ring;
    uint32_t ring_cap, ring_head, ring_len;
    uint64_t seq;      /* SENDs issued on this connection */
    uint64_t push_max; /* highest msg_id pushed */
    uint32_t push_unacked;
};

/** One loop thread. Fields without a note are its own (written only on it). */
struct bench_thr {
    bench_t *b;
    unsigned id;     /* 0..threads-1 */
    uv_loop_t *loop; /* &b->loop for thread 0, else &own */
    uv_loop_t own;
    cimc_async_loop_t *al; /* its connections */
    uv_async_t wake;       /* main → thread */
    _Atomic unsigned cmds; /* BENCH_CMD_* pending */
    uv_thread_t tid;       /* threads 1..N-1 */
    bool tid_ok;           /* tid was created (main thread) */
    int close_rc;          /* uv_loop_close of own (threads 1..N-1) */
    bool finished;         /* BENCH_CMD_FINISH handled: no more notifications */
    void *sc;              /* the scenario's per-thread state (allocated by start,
                              freed by the driver with mem_free after report) */

    /* pool: connections idx ≡ id (mod threads) */
    unsigned next;  /* next pool index to start */
    unsigned conc;  /* this thread's share of --concurrency */
    bool pool_done; /* all of its share opened or failed */
    bench_ctr_t connecting, opened, open_failed, open_now, disconnects;
    hist_t login_iv; /* connect → LoginRsp{OK} since the last snapshot */

    /* every connection of any scenario, per server (index in b->o.servers) */
    bench_ctr_t srv_connects[BENCH_SERVERS_MAX];  /* bench_connect calls */
    bench_ctr_t srv_logged_in[BENCH_SERVERS_MAX]; /* LoginRsp{OK} */

    series_acc_t acc; /* the measured window's series, this thread's part */
};

/** Pool counters summed over the loop threads (bench_pool_counts). */
typedef struct bench_pool_counts {
    uint64_t connecting, opened, open_failed, open_now, disconnects;
} bench_pool_counts_t;

/** The run. Scenarios read the options and use the counters; the driver owns the rest. */
struct bench {
    bench_opts_t o;
    const scenario_t *sc;
    void *sc_data; /* the scenario's shared state */

    uv_loop_t loop; /* the main thread's (also loop thread 0's) */
    bench_thr_t *thr;
    unsigned nthr;
    uv_mutex_t mu;     /* see the header comment */
    uv_mutex_t err_mu; /* the rc table (taken inside mu by progress: never the reverse) */
    uv_async_t ctl;    /* loop threads → main */
    _Atomic unsigned evs;
    _Atomic unsigned pool_threads_done, snap_left, threads_done;
    bool snap_pending;
    bool setup_reported;
    uv_timer_t progress, phase, watchdog, wtick;
    uv_signal_t sigint;
    const char *phase_name;
    void (*phase_fn)(bench_t *b);
    _Atomic bool stopping;  /* stop() was called (main writes; any reads) */
    _Atomic bool finishing; /* bench_finish() was called (main writes; any reads) */
    _Atomic bool failed;    /* the run could not do what was asked (exit status 1) */
    bool start_failed;      /* sc->start failed: no scenario hook runs after it (main
                               writes it before any loop thread starts) */
    uint32_t run_id;
    uint64_t t_begin_ns, t_last_progress_ns;
    long nofile; /* descriptors this process may open */

    /* pool */
    bconn_t *conns;
    unsigned nconns;      /* size of conns */
    uint64_t opened_last; /* progress: opened at the last line */
    hist_t login_lat;     /* connect → LoginRsp{OK}, merged from the threads (under mu) */
    uint64_t setup_t0_ns, setup_t1_ns;

    /* errors */
    _Atomic uint64_t codes[BENCH_CODES]; /* non-OK response codes by cim_Code */
    int rc_val[BENCH_RCS];               /* rc table: under err_mu */
    uint64_t rc_cnt[BENCH_RCS];
    uint64_t mismatch;   /* results the scenario checked and found wrong (missing, duplicate,
                            out of order): counted in bench_errors(), reported as "mismatch";
                            main thread */
    uint64_t unanswered; /* requests still unanswered when the drain ended (group, sync):
                            counted in bench_errors(), reported as "unanswered"; main */

    /* the measured window */
    uint64_t w_t0_ns, w_t1_ns;
    bool w_have_srv; /* the CPU of every --pid was read at both ends */
    uint64_t w_srv_cpu0, w_srv_cpu1, w_self_cpu0, w_self_cpu1; /* w_srv: summed over --pid */
    uint64_t w_pid_cpu0[BENCH_SERVERS_MAX], w_pid_cpu1[BENCH_SERVERS_MAX]; /* each --pid */
    uint64_t ops;        /* operations completed in the window (per-op CPU) */
    const char *op_name; /* "login", "message", "connection" */
    double tput;         /* the headline throughput */
    const char *tput_unit;

    /* the series: the window cut into --window-s pieces (scenarios that set series_on) */
    bool series_on;
    const char *series_hist[SERIES_HISTS]; /* names of the latency columns, NULL = none */
    uint64_t series_end_ns; /* windows ending after this are partial (0: the window's end) */
    series_t *series;
    /* server (summed over --pid) and bench CPU at each window boundary (main thread: the
     * wtick timer) */
    uint64_t *wcpu_srv, *wcpu_self;
    bool *wcpu_ok;
    unsigned nwcpu;
};

extern const scenario_t sc_login, sc_conns, sc_c2c, sc_group, sc_sync, sc_fill;

/** CLOCK_MONOTONIC in nanoseconds (also the clock message bodies carry). */
uint64_t bench_now_ns(void);

/** Count a response code other than OK (or OK, harmlessly). Any thread. */
void bench_count_code(bench_t *b, int code);

/** Count a connection-level failure (a libcim rc). Any thread (takes b->err_mu). */
void bench_count_rc(bench_t *b, int rc);

/** Sum of the counted codes and rcs, mismatch and unanswered. Main thread (takes
 *  b->err_mu). */
uint64_t bench_errors(bench_t *b);

/** Append @p v to @p bc's FIFO of send times (grows as needed; aborts on OOM). */
void bench_ring_push(bconn_t *bc, uint64_t v);

/** Take the oldest send time of @p bc's FIFO. @return false when it is empty. */
bool bench_ring_pop(bconn_t *bc, uint64_t *v);

/** Write the user id of user @p i ("u<i>") into @p out. */
void bench_user(char *out, size_t len, unsigned i);

/**
 * The server of @p bc: index bench_server_of(b, bc) in b->o.servers, user number (the
 * scenario's user_no, else idx % users) modulo the servers. Pure; any thread.
 */
unsigned bench_server_of(const bench_t *b, const bconn_t *bc);

/**
 * Start connection @p bc on loop thread @p t (the calling thread): TCP from its source
 * address to its server (bench_server_of), handshake, LOGIN as user (bc->idx % users) on
 * device "<scenario>-<idx>" with a freshly minted token. Sets bc->b, bc->t, bc->srv and
 * bc->cbs (@p cbs must live as long as the connection: a static table), and counts the
 * connect and, once it is OK, the login for that server.
 * @return 0 (then @p cbs's on_ready and on_close follow on @p t, ctx = @p bc), or an rc
 *         (counted with bench_count_rc; no callback follows).
 */
int bench_connect(bench_thr_t *t, bconn_t *bc, const cimc_async_cbs_t *cbs);

/**
 * Main thread: open @p n pooled connections (users u0..u(users-1), one per connection
 * modulo users; connection i on loop thread i % threads), --concurrency at a time in all;
 * sc->setup_done is called once all have opened or failed (also when that is
 * immediate). Allocates b->conns.
 */
void bench_pool_open(bench_t *b, unsigned n);

/** Main thread: the pool counters summed over the loop threads. */
void bench_pool_counts(const bench_t *b, bench_pool_counts_t *out);

/** A pool connection's login latency, on its thread @p t (merged at each snapshot). */
void bench_login_record(bench_thr_t *t, uint64_t ns);

/** Main thread: post command bits @p cmd to loop thread @p t (no-op once finishing,
 *  except BENCH_CMD_FINISH itself). */
void bench_post(bench_thr_t *t, unsigned cmd);

/** Main thread: post @p cmd to every loop thread. */
void bench_post_all(bench_t *b, unsigned cmd);

/** Loop thread @p t: tell the main thread about @p ev (BENCH_EV_*). No-op once @p t
 *  finished. */
void bench_notify(bench_thr_t *t, unsigned ev);

/** Loop thread @p t failed in a way that ends the run: print nothing more, set
 *  b->failed, ask the main thread to stop. */
void bench_fail(bench_thr_t *t);

/** Sum a bench_ctr_t field at byte offset @p off of every thread's scenario state
 *  (b->thr[i].sc). Any thread. Use through BENCH_SUM(b, type, field). */
uint64_t bench_sum(const bench_t *b, size_t off);
#define BENCH_SUM(b, type, field) bench_sum((b), offsetof(type, field))

/** Main thread: run @p fn after @p seconds (replacing any pending phase deadline) and
 *  name the phase. */
void bench_phase(bench_t *b, const char *name, double seconds, void (*fn)(bench_t *b));

/** Main thread: start the measured window: time, server and bench CPU, the series. */
void bench_window_start(bench_t *b);

/** Main thread: end the measured window (idempotent: the first call counts). */
void bench_window_end(bench_t *b);

/**
 * A loop thread's snapshot of one latency histogram: merge @p thr_iv (what the thread
 * recorded since its last snapshot) into the run's @p run, and into @p run_iv (since the
 * last progress line) when @p into_iv, under b->mu; then clear @p thr_iv.
 */
void bench_hist_fold(bench_t *b, hist_t *run, hist_t *run_iv, hist_t *thr_iv, bool into_iv);

/** xorshift64*: plenty for choosing peers. @p state: per thread, never 0. */
uint64_t bench_rnd(uint64_t *state);

/** Seconds in the window (so far, if it is still open). */
double bench_window_s(const bench_t *b);

/** Main thread: close every connection and end the loops; the report follows.
 *  Idempotent. */
void bench_finish(bench_t *b);

/** Scale @p v for the progress line: "12.3k". */
const char *bench_si(char *buf, size_t len, double v);

/* ---- load.c: what the message scenarios (c2c, group) share ------------------------- */

/**
 * The open-loop scheduler of one loop thread: sends are scheduled by the clock at @p rate
 * per second (the thread's share of --rate), round-robin over the thread's sending
 * connections, every latency counted from the *scheduled* time. libuv timers have
 * millisecond resolution, so this is a timerfd (ns resolution) polled by the thread's
 * loop, re-armed for the next due send but at most every 100 µs (sends due meanwhile go
 * out together); how late each actually went out is recorded in lag. Only its thread
 * touches it.
 */
typedef struct bench_sched {
    bench_thr_t *t;
    int tfd;          /* the timerfd, -1 when none */
    uv_poll_t tpoll;  /* ... polled by the loop */
    bool init;        /* tpoll is initialised */
    bool over_called; /* over() ran */
    double rate;      /* sends per second */
    uint64_t count;   /* sends in all; 0 = no limit */
    uint64_t issued;  /* sends scheduled so far */
    uint64_t skipped; /* scheduled for a closed connection */
    hist_t lag;       /* scheduled time → actually sent */
    /* set by bench_sched_start */
    const _Atomic bool *running; /* the scenario's window is open */
    const unsigned *conns;
    unsigned nconns;
    int (*send)(bench_t *b, bconn_t *bc, uint64_t t_ns);
    void (*over)(struct bench_sched *s);
} bench_sched_t;

/** Loop thread @p t: prepare @p s (tfd -1, lag empty); when @p open_loop, also create its
 *  timerfd and poll handle on @p t's loop, to send @p rate per second, @p count in all (0:
 *  no limit). @return 0, or an rc (a failing timerfd_create is printed). */
int bench_sched_init(bench_thr_t *t, bench_sched_t *s, bool open_loop, double rate, uint64_t count);

/** The window opened: send over @p conns[0..n-1] from b->w_t0_ns on; each send by
 *  @p send (its latency from the given time), @p over when the count was scheduled or the
 *  scheduler failed (printed; then b->failed). Ticks do nothing once *@p running is
 *  false. */
void bench_sched_start(bench_sched_t *s, const _Atomic bool *running, const unsigned *conns,
                       unsigned n, int (*send)(bench_t *b, bconn_t *bc, uint64_t t_ns),
                       void (*over)(bench_sched_t *s));

/** No more ticks (the window closed). */
void bench_sched_stop(bench_sched_t *s);

/** bench_finish(): close the handle and the timerfd. */
void bench_sched_close(bench_sched_t *s);

/** Sends due by the clock over @p win_s seconds (capped at the count) but never
 *  scheduled: the bench itself fell behind. */
int64_t bench_sched_behind(const bench_sched_t *s, double win_s);

/** Stamp a message body (send time @p t_ns, then the run id: 12 bytes) and write the
 *  SEND's client_msg_id, unique per sender across runs (a repeated one would be
 *  deduplicated). */
void bench_stamp(const bench_t *b, const bconn_t *bc, uint8_t *body, uint64_t t_ns, char *cmid,
                 size_t cmid_len);

/** Read the stamp of a PUSH's body. @return true when it is this run's and not from the
 *  future: then *@p now is the time now and *@p lat_ns the send → push latency. */
bool bench_push_timed(const bench_t *b, const cimc_push_t *p, uint64_t *now, uint64_t *lat_ns);

/** A push arrived on @p bc (bc->push_max updated): PUSH_ACK up to bc->push_max every
 *  --ack_every pushes, counting the acks sent in *@p acks (a counter of @p bc's thread)
 *  and a failure with bench_count_rc. */
void bench_push_ack(bench_t *b, bconn_t *bc, bench_ctr_t *acks);

/** Split @p total into @p n shares: share @p i (the first total % n get one more). */
uint64_t bench_share(uint64_t total, unsigned n, unsigned i);

#endif
