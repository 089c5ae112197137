/**
 * Test support: a real cimd on a free loopback port with a fresh temporary data dir.
 *
 * tsrv_start runs build/<variant>/bin/cimd (CIM_BIN_DIR) with --listen 127.0.0.1:0, waits
 * for its ready line and reads the port and identity key from it. Its log goes to
 * DIR/cimd.log (shown by tsrv_dump_log when a test fails). tsrv_token mints a token with
 * the app's secret read straight from the data dir (read-only LMDB, like cimdump), the way
 * an app server would. tsrv_stop sends SIGTERM and returns the exit status; the data dir
 * is removed.
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
    uint8_t key[32];
    char dir[256];
    char log[300];
} tsrv_t;

/** Start cimd with extra flags (a NULL-terminated list of strings). Aborts on failure. */
void tsrv_start(tsrv_t *t, ...) __attribute__((sentinel));

/** SIGTERM, wait (up to 10 s) and return the exit status (-1: killed by a signal). */
int tsrv_stop(tsrv_t *t);

/** SIGKILL and wait (crash tests). */
void tsrv_kill(tsrv_t *t);

/** Print the server's log to stderr. */
void tsrv_dump_log(const tsrv_t *t);

/** Mint a token for (app, user) valid for @p ttl seconds (negative: already expired). */
void tsrv_token(const tsrv_t *t, const char *app, const char *user, long ttl, char *out,
                size_t outlen);

/** Options to connect to @p t with its key pinned. */
cimc_opts_t tsrv_opts(const tsrv_t *t);

/** Connect and complete the handshake; aborts the test on failure. */
cimc_t *tsrv_connect(const tsrv_t *t);

/**
 * Connect and log in (app "default") as @p user on @p device; aborts unless the login is
 * OK. @p rsp may be NULL.
 */
cimc_t *tsrv_login(const tsrv_t *t, const char *user, const char *device, cim_LoginRsp *rsp);

/** Run a program of this variant (cimctl, cim) with args; capture stdout into @p out.
 * @return its exit status. */
int tsrv_run_tool(char *out, size_t outlen, const char *prog, ...) __attribute__((sentinel));

/** Raise this process's open-file limit to the hard limit. @return the new soft limit. */
long tsrv_raise_nofile(void);

#endif
