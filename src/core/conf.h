/**
 * conf: cimd's configuration — defaults, a `key = value` file, and `--key value` flags.
 *
 * Every key is also a flag (DESIGN.md, command-line contract): `--data DIR`,
 * `--listen HOST:PORT`, `--config FILE`, `--workers 4`, ... Precedence: defaults, then
 * the file named by --config (wherever it appears on the line), then the other flags in
 * order. An unknown key or a bad value is an error that names the key and the value;
 * cimd refuses to start on it. The file format is INI without sections (libinih):
 * `key = value` lines, `#` or `;` comments, blank lines ignored.
 *
 * Threading: build a conf_t on the main thread before starting others; it is immutable
 * afterwards and shared read-only.
 */
#ifndef CIM_CORE_CONF_H
#define CIM_CORE_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { CONF_DURABILITY_SYNC = 0, CONF_DURABILITY_NOSYNC = 1 };

/**
 * Bytes of max_body kept for the protobuf envelope around a message body: max_msg_bytes
 * may be at most max_body - CONF_MSG_ROOM, so that one message always fits one frame as a
 * PUSH (Message), a SYNC_ACK or a HISTORY_ACK page of one. A Message around its body needs
 * about 240 bytes at most (three ids of up to 64 bytes, varints, the body's length prefix);
 * a SyncRsp or HistoryRsp around one Message adds under 40; the rest is slack.
 */
#define CONF_MSG_ROOM 512

#define CONF_STR_MAX 512 /* bytes of a free-form string value, NUL included */
#define CONF_CLUSTER_MAX 64     /* node ids cluster_nodes may list */
#define CONF_CLUSTER_NAME_MAX 32 /* bytes of cluster_name, without the NUL */

typedef struct conf {
    char listen[256];          /* "HOST:PORT"; default "127.0.0.1:7400"; port 0 = any free */
    char data[1024];           /* data directory; default "data" */
    uint32_t workers;          /* worker loops; 0 (default) = number of cores */
    uint32_t node_id;          /* SnowFlake node, 0..1023; default 0 */
    uint32_t heartbeat_s;      /* default 30; idle timeout is 3 × this */
    uint32_t login_timeout_s;  /* default 10 */
    uint32_t max_body;         /* max plaintext body per frame; default 65536 */
    uint32_t max_msg_bytes;    /* max SEND body; default 16384 */
    uint32_t max_conns;        /* all connections; default 100000 */
    uint32_t max_conns_per_ip; /* per peer address; default 1000 */
    uint32_t send_rate;        /* SENDs per second per connection (token bucket); default 100 */
    uint32_t send_burst;       /* bucket size; default 200 */
    int durability;            /* CONF_DURABILITY_*; default sync */
    uint32_t retention_days;   /* 0 (default) = keep forever */
    uint32_t recall_window_s;  /* default 120 */
    uint32_t max_group_size;   /* default 2000 */
    uint32_t commit_pace_ms;   /* a busy writer drains at most this often; 0 = off; default 1 */
    uint32_t dedup_window_h;   /* a resent client_msg_id is recognised this long; default 24 */
    uint32_t max_conn_queue_kb; /* output one connection may hold for its peer, KiB; default
                                   4096 (over it: BYE{SERVER_BUSY}) */
    uint32_t max_queued_mb;    /* output queued for all connections together, MiB; default
                                  256 (over it: the heaviest slow readers are closed) */
    uint32_t login_fail_max;   /* failed logins per peer address per window before
                                  RATE_LIMITED; default 10; 0 = no throttling */
    uint32_t login_fail_window_s; /* that window; default 60 */
    uint32_t webhook_queue;    /* webhook events held at most (queued, in flight, waiting to
                                  retry); default 10000; over it new events are dropped */
    uint32_t webhook_queue_mb; /* bytes of JSON those events may hold, MiB; default 64 */
    uint32_t webhook_timeout_ms; /* one webhook request, connect to last byte; default 5000 */
    uint32_t webhook_retries;  /* attempts per event in all (1: no retry); default 5 */
    bool single_session;       /* one session per user in all; default false */
    int log_level;             /* LOG_LVL_*; default info */
    int log_format;            /* LOG_FMT_*; default text */
    char admin_listen[256];    /* admin HTTP "HOST:PORT" or "off"; default "127.0.0.1:7401" */
    char metrics_token[CONF_STR_MAX]; /* bearer token for /metrics; default "" (none) */
    uint32_t token_ttl_s;      /* longest token lifetime apps mint; default 86400 */
    char ws_listen[256];       /* WebSocket endpoint "HOST:PORT" or "off"; default
                                  "127.0.0.1:7480" */
    char ws_origins[CONF_STR_MAX]; /* Origins allowed on /ws: "" (default) the page's own,
                                      "*" any, else a comma-separated list */
    bool dev_tokens;           /* GET /dev/token mints tokens (development only); false */
    /* Scale-out (actors/cluster.h, docs/SCALING.md). */
    char cluster_url[CONF_STR_MAX]; /* NATS URL(s), comma-separated; "" (default) =
                                       standalone: no cluster thread, no connection */
    char cluster_name[CONF_CLUSTER_NAME_MAX + 1]; /* the bus subjects' prefix; default "cim" */
    uint32_t cluster_nodes[CONF_CLUSTER_MAX]; /* the cluster's node ids (static membership),
                                                 distinct, in the order given */
    uint32_t ncluster_nodes;   /* how many; 0 (default) = none given */
} conf_t;

/** Fill @p c with the defaults above. */
void conf_defaults(conf_t *c);

/**
 * Set one key from its text form, checking the value against that key's range only
 * (conf_check checks the keys against each other).
 *
 * Accepted values: integers are plain decimal digits (no sign, blanks or 0x) within the
 * key's range (see conf_usage); durability is `sync` or `nosync`; single_session is
 * `true`, `false`, `yes`, `no`, `1` or `0`; log_level is `error`, `warn`, `info` or
 * `debug`; log_format is `text` or `json`; listen is `HOST:PORT` (split at the last colon; `[v6addr]:PORT` allowed) with a
 * non-empty host and a port 0..65535; data is a non-empty path under 1024 bytes;
 * cluster_url is empty or a comma-separated list of `nats://HOST[:PORT]` or
 * `tls://HOST[:PORT]` URLs (a `user:password@` or `token@` before the host allowed), with no
 * blanks; cluster_name is 1..CONF_CLUSTER_NAME_MAX characters of `[A-Za-z0-9_-]` (one NATS
 * subject token); cluster_nodes is empty or a comma-separated list of distinct node ids
 * 0..1023 (blanks around them allowed), at most CONF_CLUSTER_MAX. All words are lower case.
 * On failure @p c is unchanged.
 *
 * @param[out] err  on failure, a one-line reason naming the key ("unknown key 'x'",
 *                  "bad value 'abc' for heartbeat_s: expected an integer 1..86400").
 * @return 0, or RC_EINVAL.
 */
int conf_set(conf_t *c, const char *key, const char *value, char *err, size_t errlen);

/**
 * Check the keys against each other: max_msg_bytes <= max_body - CONF_MSG_ROOM, the output
 * queue bounds, and the cluster: cluster_url and cluster_nodes are both set or both empty,
 * and cluster_nodes lists node_id.
 * conf_load and conf_parse_args call it once everything is applied, so that the order
 * in which keys are given does not matter.
 * @return 0, or RC_EINVAL with @p err naming both keys and the limit.
 */
int conf_check(const conf_t *c, char *err, size_t errlen);

/**
 * Read a config file and apply each key with conf_set, then conf_check.
 *
 * Format: `key = value` (or `key: value`) lines; leading blanks are ignored; lines whose
 * first non-blank character is `#` or `;` are comments, and ` ;` ends a value (a `#` after
 * a value is part of the value); no [sections]; a line holds at most 198 characters.
 * The first error stops the load; keys before it stay applied (the caller refuses to
 * start anyway).
 *
 * @return 0, RC_EINVAL (bad line, key or value: @p err is "FILE:LINE: reason"),
 *         or -errno (cannot open or read; @p err names the file).
 */
int conf_load(conf_t *c, const char *path, char *err, size_t errlen);

/**
 * Apply the command line (argv[1..argc)): every --config FILE first, in the order given,
 * wherever it appears, then every other `--key value` (or `--key=value`) in order, then
 * conf_check. A later value for a key overrides an earlier one. An argument that is not a
 * flag, an unknown flag or a flag without its value is an error naming it. `--help` is not
 * handled here (it is an unknown flag): the program looks for it first.
 * @return 0, or RC_EINVAL / -errno with @p err set as for conf_load.
 */
int conf_parse_args(conf_t *c, int argc, char **argv, char *err, size_t errlen);

/**
 * Split c->listen into host and port (a bracketed IPv6 host loses its brackets).
 * @param[out] host  NUL-terminated host, at most @p hostlen bytes with the NUL.
 * @param[out] port  0..65535.
 * @return 0, or RC_EINVAL (malformed, or the host does not fit @p hostlen).
 */
int conf_listen_split(const conf_t *c, char *host, size_t hostlen, int *port);

/** As conf_listen_split, for any "HOST:PORT" (admin_listen). @return 0 or RC_EINVAL. */
int conf_addr_split(const char *addr, char *host, size_t hostlen, int *port);

/**
 * Write a `--help` table of every key, its default and meaning, to @p fd (with dprintf:
 * this is program output, not logging).
 */
void conf_usage(int fd);

#endif
