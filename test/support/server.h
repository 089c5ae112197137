/**
 * Test support: a real cimd on a free loopback port with a fresh temporary data dir.
 *
 * tsrv_start runs build/<variant>/bin/cimd (CIM_BIN_DIR) with --listen 127.0.0.1:0, waits
 * for its ready line and reads the port, the identity key and whether cimd created that
 * key ("new identity") from it. Its log goes to DIR/cimd.log (shown by tsrv_dump_log when
 * a test fails). tsrv_token mints a token with the app's secret read straight from the data
 * dir (read-only LMDB, like cimdump), the way an app server would. tsrv_stop sends SIGTERM
 * and returns the exit status; the data dir is removed.
 */
#ifndef CIM_TEST_SERVER_H
#define CIM_TEST_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "client/cim.h"

typedef struct tsrv {
    pid_t pid;
    int port;
    int admin_port; /* the admin HTTP listener's (0: admin_listen = off) */
    int ws_port;    /* the WebSocket endpoint's (0: ws_listen = off) */
    uint8_t key[32];
    bool new_identity; /* the ready line said this start created the identity key */
    char dir[256];
    char log[300];
    /* for tsrv_restart: the extra flags given to tsrv_start (NUL-separated), and where in
     * the log the current run's lines start */
    char args[2048];
    size_t args_len;
    int nargs;
    long log_off;
    /* CIM_TEST_CLUSTER=1 (tsrv_clustered): this node is node 1 of a three-node cluster on
     * a nats-server of its own; the bus and nodes 2 and 3 hang here (NULL: standalone) */
    struct tsrv_cluster *cluster;
} tsrv_t;

/**
 * CIM_TEST_CLUSTER=1: every tsrv_start (and tsrv_start_on) starts a nats-server and three
 * nodes instead of one cimd, all on copies of one data directory (one identity, the same
 * apps) and with the same extra flags; each client connection (tsrv_opts, tsrv_connect,
 * tsrv_login) goes to a node picked at random (seed: CIM_TEST_SEED, else the time; printed
 * once). tsrv_restart, tsrv_kill and tsrv_stop act on every node, tsrv_log_has reads every
 * node's log, and t itself (dir, admin_port, log) is node 1. tools/bootstrap test runs the
 * messaging suites so: one service whatever node a client reaches (issue 12).
 */
bool tsrv_clustered(void);

/** The data directory of node @p i (0: t->dir; a cluster: 1 and 2 too), NULL past them. */
const char *tsrv_node_dir(const tsrv_t *t, int i);

/** Start cimd with extra flags (a NULL-terminated list of strings). Aborts on failure. */
void tsrv_start(tsrv_t *t, ...) __attribute__((sentinel));

/**
 * Start cimd with extra flags on @p dir, a directory the test made (e.g. with
 * `cimctl init`); tsrv_stop removes it as it removes tsrv_start's. Aborts on failure.
 */
void tsrv_start_on(tsrv_t *t, const char *dir, ...) __attribute__((sentinel));

/** SIGTERM, wait (up to 10 s) and return the exit status (-1: killed by a signal). */
int tsrv_stop(tsrv_t *t);

/**
 * As tsrv_stop, but the data dir stays (to be examined or changed, then tsrv_restart).
 * @return the exit status, or -1 (not running, or killed by a signal).
 */
int tsrv_stop_keep(tsrv_t *t);

/** SIGKILL and wait (crash tests). */
void tsrv_kill(tsrv_t *t);

/**
 * Start cimd again on the same data dir with the same flags (crash tests: after
 * tsrv_kill; a server still running is first stopped with SIGTERM, its dir kept). It
 * listens on a new free port: t->port is updated, the identity key stays. Aborts on
 * failure.
 */
void tsrv_restart(tsrv_t *t);

/** @return true when the server's log (of this run: since the last start or restart)
 * holds @p needle. */
bool tsrv_log_has(const tsrv_t *t, const char *needle);

/** Print the server's log to stderr. */
void tsrv_dump_log(const tsrv_t *t);

/** Print the file @p path to stderr under a "---- @p title ----" line (nothing when it
 * cannot be read). */
void tsrv_dump_file(const char *title, const char *path);

/** A loopback port free right now (for a server that must keep its port across a
 * restart; another process may take it meanwhile). Aborts on failure. */
int tsrv_free_port(void);

/** Mint a token for (app, user) valid for @p ttl seconds (negative: already expired). */
void tsrv_token(const tsrv_t *t, const char *app, const char *user, long ttl, char *out,
                size_t outlen);

/** Options to connect to @p t with its key pinned: over TCP, or over its WebSocket
 * endpoint when tsrv_over_ws(). */
cimc_opts_t tsrv_opts(const tsrv_t *t);

/** @return true when CIM_TEST_TRANSPORT=ws: the suite's clients use the WebSocket. */
bool tsrv_over_ws(void);

/** Connect and complete the handshake; aborts the test on failure. */
cimc_t *tsrv_connect(const tsrv_t *t);

/**
 * Connect and log in (app "default") as @p user on @p device; aborts unless the login is
 * OK. @p rsp may be NULL.
 */
cimc_t *tsrv_login(const tsrv_t *t, const char *user, const char *device, cim_LoginRsp *rsp);

/**
 * Start @p argv[0] (a path) with @p argv in the background, its stdout and stderr appended
 * to the file @p log (a server's log: cimd, nats-server). Aborts when fork fails.
 * @return the child's pid.
 */
pid_t tsrv_spawn_logged(const char *log, char *const argv[]);

/** Run a program of this variant (cimctl, cim) with args; capture stdout into @p out.
 * @return its exit status. */
int tsrv_run_tool(char *out, size_t outlen, const char *prog, ...) __attribute__((sentinel));

/**
 * A program of this variant running in the background (tsrv_tool_start), its stdout and
 * stderr collected as it writes them (the first sizeof(out)-1 / sizeof(err)-1 bytes kept,
 * NUL-terminated; the rest read and dropped so the program never blocks on a full pipe).
 */
typedef struct tsrv_tool {
    pid_t pid;
    int out_fd, err_fd; /* -1 once at EOF */
    size_t out_len, err_len;
    char out[16384];
    char err[8192];
} tsrv_tool_t;

/**
 * Start a program of this variant (cim, cimctl) with args in the background. Its stdin is
 * @p in (@p in_len bytes, from a temporary file), or /dev/null when @p in is NULL.
 * Aborts on failure. Finish it with tsrv_tool_finish.
 */
void tsrv_tool_start(tsrv_tool_t *tt, const void *in, size_t in_len, const char *prog, ...)
    __attribute__((sentinel));

/**
 * Collect its output until @p needle shows in its stdout or stderr, it closes both, or
 * @p timeout_ms pass. @return true when the needle was seen.
 */
bool tsrv_tool_wait_for(tsrv_tool_t *tt, const char *needle, unsigned timeout_ms);

/**
 * Collect the rest of its output and wait for it to exit, SIGKILLing it after
 * @p timeout_ms. @return its exit status (-1: killed by a signal, or by the timeout).
 */
int tsrv_tool_finish(tsrv_tool_t *tt, unsigned timeout_ms);

/** Raise this process's open-file limit to the hard limit. @return the new soft limit. */
long tsrv_raise_nofile(void);

#endif
