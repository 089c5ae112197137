/**
 * dump: cimdump's internals, shared by its files (private to the `cimdump` program).
 *
 * cimdump is the read-only inspector of a cim data directory:
 *
 *   cimdump [--data DIR] [--app A] [--json] COMMAND [ARGS]   (or: cimdump DIR COMMAND ...)
 *
 * Layout, one file per command family:
 *   main.c    options, the command table, --help, errors, the run
 *   out.c     output helpers: JSON values, text for a terminal, times and sizes
 *   record.c  stored records decoded: messages, group events, protocol enum names
 *   stats.c   stats
 *   user.c    apps, users, user
 *   msg.c     timeline, msg, decode-id
 *   group.c   groups, group
 *   conv.c    convs
 *
 * Safe beside a running cimd: the environment is opened read-only (KV_RDONLY) and every
 * command reads one snapshot in one read transaction. LMDB readers and its writer never
 * wait for each other, so cimd is not blocked; the transaction holds one reader slot and
 * is kept short: the whole answer is built in memory while it is open and printed only
 * after it ended, so a slow consumer of stdout (a pager, a full pipe) cannot pin old
 * pages and make data.mdb grow under cimd.
 *
 * Output: human-readable tables, or with --json exactly one JSON document on one line
 * (docs/CIMDUMP.md names every field). Errors: one line "cimdump: reason" on stderr.
 * Exit status: 0 success, 1 failure (no cim data, unknown user / group / message), 2 usage.
 * A command handler writes its answer to d->out (text), or with --json builds it as one
 * jansson document in d->doc (jv.h), and returns 0, or an rc after reporting the failure
 * with dump__fail / dump__fail_rc; main prints the answer once the transaction ended.
 *
 * Threading: one thread.
 */
#ifndef CIM_CMD_CIMDUMP_DUMP_INT_H
#define CIM_CMD_CIMDUMP_DUMP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "cim.pb.h"
#include "core/kv.h"

#define DEFAULT_DATA     "data"
#define DEFAULT_APP      "default"
#define TL_LIMIT_DEFAULT 100
#define TL_LIMIT_MAX     10000
#define TL_BODY_MAX      1024 /* timeline entries show at most this many body bytes (JSON) */
#define TEXT_BODY_MAX    48   /* characters of a body in a table row */

enum { EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* A stored cim.Message, decoded; the body is copied out (decoding never allocates more
 * than the record's length). */
typedef struct dmsg {
    cim_Message m;
    uint8_t *body; /* owned (mem_free) */
    size_t body_len, body_cap;
    bool head_implied; /* stored without msg_id and time_ms: its id gives both (message.h) */
} dmsg_t;

/* A GroupEvent (body of a group's SYSTEM message). Decoded field by field, not with
 * pb_decode: the writer sends the users list whole, past the 1000 that cim.options allows
 * a decoder. */
typedef struct gevent {
    int kind;
    char actor[KV_ID_MAX + 1];
    char (*users)[KV_ID_MAX + 1]; /* owned (mem_free) */
    size_t nusers;
    bool has_group;
    cim_Group group;
} gevent_t;

typedef struct dump dump_t;

typedef struct cmd {
    const char *name;
    const char *args; /* synopsis after the name */
    const char *help; /* one line, lower case, no full stop */
    int npos;         /* exact number of arguments */
    bool data;        /* reads the data directory (all but decode-id) */
    bool page;        /* takes --after / --limit */
    int (*run)(dump_t *d);
} cmd_t;

struct dump {
    const char *data; /* the data directory */
    const char *app;  /* --app, "default" when absent or empty */
    bool json;        /* --json */
    uint64_t after;   /* --after */
    unsigned limit;   /* --limit, 0 when not given */
    char **pos;       /* the command's arguments */
    const cmd_t *cmd;
    kv_t *kv;
    kv_txn_t *txn; /* the one read transaction of the command */
    FILE *out;     /* the text answer, in memory until the transaction ended */
    json_t *doc;   /* --json: the answer (owned), printed once the transaction ended */
    int logfd;     /* kv's log lines land here (memfd), -1 without */
};

/* ---- main.c: errors and checks ----------------------------------------------------------- */

/** Print one error line: "cimdump: reason". */
void dump__fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** Report a storage failure of @p what, with kv's own last word when it logged one.
 * @return @p rc. */
int dump__fail_rc(const dump_t *d, const char *what, int rc);

/** Parse a decimal u64 (digits only, no sign, no overflow). @return 0 or RC_EINVAL. */
int dump__parse_u64(const char *s, uint64_t *out);

/** Check that the app exists. @return 0 or rc (reported). */
int dump__need_app(dump_t *d);

/** Check a user id argument and that the user exists in the app (its creation time in
 * @p created_ms, which may be NULL). @return 0 or rc (reported). */
int dump__need_user(dump_t *d, const char *user, uint64_t *created_ms);

/* ---- out.c ------------------------------------------------------------------------------- */

/** @return true when all @p n bytes are valid UTF-8 without NUL. */
bool dump__utf8_valid(const uint8_t *s, size_t n);

/**
 * The length of the valid UTF-8 sequence at @p s (@p n > 0 bytes available), 0 when it is
 * not one: overlong forms, surrogates and code points past U+10FFFF are invalid (RFC
 * 3629). @p cp (may be NULL) gets the code point.
 */
size_t dump__utf8_seq(const uint8_t *s, size_t n, uint32_t *cp);

/** Write @p n bytes for a terminal, escaped so stored data can never drive it; at most
 * @p max characters (0: no limit), then "...". */
void dump__text_put(FILE *f, const uint8_t *s, size_t n, size_t max);

/** dump__text_put of a NUL-terminated string, no limit. */
void dump__text_str(FILE *f, const char *s);

/** "2026-01-02T03:04:05.678Z" (UTC, ms); "-" for 0. */
void dump__fmt_time(char out[32], uint64_t ms);

/** "1.25 MiB" */
void dump__fmt_bytes(char out[32], uint64_t v);

/* ---- record.c ---------------------------------------------------------------------------- */

/* Protocol enum values by their names in cim.proto; an unknown value as its number,
 * written into @p buf. */
const char *dump__conv_name(char buf[16], int v);
const char *dump__msgtype_name(char buf[16], int v);
const char *dump__device_name(char buf[16], int v);
const char *dump__gekind_name(char buf[16], int v);

/** Decode stored message @p id's record, with the head it may leave out (message.h).
 * @p dm->body is allocated even on failure: mem_free it.
 * @return 0, or RC_EPROTO when the record is not a cim.Message this build can read. */
int dump__msg_decode(uint64_t id, const uint8_t *rec, size_t len, dmsg_t *dm);

/** Decode a GroupEvent. @p ev->users is owned by the caller (mem_free) even on failure.
 * @return 0 or RC_EPROTO. */
int dump__gevent_decode(const uint8_t *b, size_t len, gevent_t *ev);

/* ---- command handlers (the table in main.c) ------------------------------------------------ */

int dump__cmd_stats(dump_t *d);
int dump__cmd_apps(dump_t *d);
int dump__cmd_users(dump_t *d);
int dump__cmd_user(dump_t *d);
int dump__cmd_timeline(dump_t *d);
int dump__cmd_msg(dump_t *d);
int dump__cmd_decode_id(dump_t *d);
int dump__cmd_groups(dump_t *d);
int dump__cmd_group(dump_t *d);
int dump__cmd_convs(dump_t *d);

#endif
