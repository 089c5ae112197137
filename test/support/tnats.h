/**
 * Test support: a real NATS server (Debian's nats-server) on a free loopback port, with
 * JetStream on and its store in a fresh temporary directory — the bus the cluster tests
 * run cimd nodes on.
 *
 * tnats_start finds nats-server ($NATS_SERVER, else PATH, else /usr/sbin), runs
 * `nats-server -a 127.0.0.1 -p PORT -js -sd DIR/js` with its log in DIR/nats.log, and
 * returns once the port accepts connections. tnats_stop (SIGTERM) and tnats_kill (SIGKILL)
 * leave the directory and the port for tnats_restart, which starts it again on the same
 * port (so the nodes' cluster_url stays right). tnats_free stops it and removes the
 * directory. Every failure aborts the test, with the server's log on stderr.
 */
#ifndef CIM_TEST_TNATS_H
#define CIM_TEST_TNATS_H

#include <sys/types.h>

typedef struct tnats {
    pid_t pid;     /* 0 while not running */
    int port;
    char url[64];  /* "nats://127.0.0.1:PORT" */
    char dir[256]; /* the temporary directory: the JetStream store and nats.log */
    char log[300];
    char conf[300]; /* a config file given with -c ("": none) */
} tnats_t;

/** Start a server on a free port; waits (10 s at most) until it accepts. */
void tnats_start(tnats_t *n);

/** As tnats_start, with @p conf (nats-server's config syntax: e.g. an authorization block)
 *  in a file given with -c; the flags above still set the address, port and store. */
void tnats_start_conf(tnats_t *n, const char *conf);

/** Replace the config file with @p conf and have the running server reload it (SIGHUP);
 *  returns once its log says so (10 s at most). */
void tnats_reload(tnats_t *n, const char *conf);

/** SIGTERM and wait for it to exit (10 s at most, then SIGKILL). */
void tnats_stop(tnats_t *n);

/** SIGKILL and wait. */
void tnats_kill(tnats_t *n);

/** Start it again on the same port and store (after tnats_stop or tnats_kill). */
void tnats_restart(tnats_t *n);

/** Stop it if it runs and remove its directory. */
void tnats_free(tnats_t *n);

/** Print the server's log to stderr. */
void tnats_dump_log(const tnats_t *n);

#endif
