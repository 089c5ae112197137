/* cimdump: the read-only inspector of a cim data directory.
 *
 *   cimdump [--data DIR] [--app A] [--json] COMMAND [ARGS]   (or: cimdump DIR COMMAND ...)
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
 *
 * JSON is written by the small streaming writer below, not by a library (jansson): cimdump
 * only ever writes JSON, the one subtle part of that is string escaping (RFC 8259 §7,
 * about forty lines here), a streamed document never holds a tree of a long timeline, and
 * no JSON library joins the link line every cim program shares. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <pb_decode.h>

#include "actors/conv.h"
#include "actors/group.h"
#include "cim.pb.h"
#include "core/datadir.h"
#include "core/kv.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/snowflake.h"

#define DEFAULT_DATA     "data"
#define DEFAULT_APP      "default"
#define TL_LIMIT_DEFAULT 100
#define TL_LIMIT_MAX     10000
#define TL_BODY_MAX      1024 /* timeline entries show at most this many body bytes (JSON) */
#define TEXT_BODY_MAX    48   /* characters of a body in a table row */
#define JW_DEPTH         16

enum { EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* ---- the JSON writer ---------------------------------------------------------------- */

typedef struct jw {
    FILE *f;
    int depth;
    bool comma[JW_DEPTH]; /* a value is already written at this level: the next needs ',' */
} jw_t;

/* The length of the valid UTF-8 sequence at @p s (n bytes available), 0 when invalid:
 * overlong forms, surrogates and code points past U+10FFFF are invalid (RFC 3629). */
static size_t utf8_seq(const uint8_t *s, size_t n, uint32_t *cp)
{
    uint32_t c;
    size_t len;

    if (s[0] < 0x80) {
        len = 1;
        c = s[0];
    } else if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        c = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        c = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        c = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) ||
        (c >= 0xd800 && c <= 0xdfff))
        return 0;
    if (cp != NULL)
        *cp = c;
    return len;
}

/* @return true when all @p n bytes are valid UTF-8 without NUL. */
static bool utf8_valid(const uint8_t *s, size_t n)
{
    for (size_t i = 0, l; i < n; i += l)
        if (s[i] == 0 || (l = utf8_seq(s + i, n - i, NULL)) == 0)
            return false;
    return true;
}

/* Write @p n bytes as a JSON string: '"' and '\' escaped, control characters as \n etc. or
 * \u00XX, valid UTF-8 as is, and each byte that is not valid UTF-8 as U+FFFD (JSON text is
 * UTF-8; bodies that are not text are shown in hex instead, so nothing is lost there). */
static void json_string(FILE *f, const uint8_t *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t l;
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
            i++;
        } else if (c < 0x20) {
            switch (c) {
            case '\b':
                fputs("\\b", f);
                break;
            case '\f':
                fputs("\\f", f);
                break;
            case '\n':
                fputs("\\n", f);
                break;
            case '\r':
                fputs("\\r", f);
                break;
            case '\t':
                fputs("\\t", f);
                break;
            default:
                fprintf(f, "\\u%04x", c);
                break;
            }
            i++;
        } else if (c < 0x80) {
            fputc(c, f);
            i++;
        } else if ((l = utf8_seq(s + i, n - i, NULL)) > 0) {
            fwrite(s + i, 1, l, f);
            i += l;
        } else {
            fputs("\\ufffd", f);
            i++;
        }
    }
    fputc('"', f);
}

/* Write the ',' a value needs after a sibling, then its key. Documents nest at most four
 * deep here; JW_DEPTH leaves room, and deeper levels (never reached) would only lose their
 * commas, never write out of bounds. */
static void jw_sep(jw_t *w, const char *key)
{
    if (w->depth > 0 && w->depth <= JW_DEPTH) {
        if (w->comma[w->depth - 1])
            fputc(',', w->f);
        w->comma[w->depth - 1] = true;
    }
    if (key != NULL) {
        json_string(w->f, (const uint8_t *)key, strlen(key));
        fputc(':', w->f);
    }
}

/* Open an object ('{') or array ('['), as member @p key of the enclosing object (NULL in
 * an array or at the top). */
static void jw_open(jw_t *w, const char *key, char open)
{
    jw_sep(w, key);
    fputc(open, w->f);
    if (w->depth < JW_DEPTH)
        w->comma[w->depth] = false;
    w->depth++;
}

static void jw_close(jw_t *w, char close)
{
    w->depth--;
    fputc(close, w->f);
}

static void jw_strn(jw_t *w, const char *key, const void *s, size_t n)
{
    jw_sep(w, key);
    json_string(w->f, s, n);
}

static void jw_str(jw_t *w, const char *key, const char *s)
{
    jw_strn(w, key, s, strlen(s));
}

static void jw_u64(jw_t *w, const char *key, uint64_t v)
{
    jw_sep(w, key);
    fprintf(w->f, "%llu", (unsigned long long)v);
}

/* 64-bit ids are strings: JSON readers commonly hold numbers as doubles, exact only up to
 * 2^53, and SnowFlake ids are larger (proto3's JSON mapping does the same for uint64). */
static void jw_id(jw_t *w, const char *key, uint64_t v)
{
    jw_sep(w, key);
    fprintf(w->f, "\"%llu\"", (unsigned long long)v);
}

/* An id, or null when it is 0 ("none"). */
static void jw_id_or_null(jw_t *w, const char *key, uint64_t v)
{
    jw_sep(w, key);
    if (v == 0)
        fputs("null", w->f);
    else
        fprintf(w->f, "\"%llu\"", (unsigned long long)v);
}

static void jw_bool(jw_t *w, const char *key, bool v)
{
    jw_sep(w, key);
    fputs(v ? "true" : "false", w->f);
}

static void jw_null(jw_t *w, const char *key)
{
    jw_sep(w, key);
    fputs("null", w->f);
}

/* A ratio with one decimal, or null when there is none (@p den 0). */
static void jw_ratio(jw_t *w, const char *key, uint64_t num, uint64_t den)
{
    jw_sep(w, key);
    if (den == 0)
        fputs("null", w->f);
    else
        fprintf(w->f, "%.1f", (double)num / (double)den);
}

static void jw_hex(jw_t *w, const char *key, const uint8_t *b, size_t n)
{
    jw_sep(w, key);
    fputc('"', w->f);
    for (size_t i = 0; i < n; i++)
        fprintf(w->f, "%02x", b[i]);
    fputc('"', w->f);
}

/* ---- text helpers ------------------------------------------------------------------- */

/* Write @p n bytes for a terminal: printable ASCII and printable UTF-8 as is; '\' and '"'
 * escaped with '\';
 * control characters, C1 controls and bytes that are not UTF-8 escaped (\n, \xNN, \uNNNN),
 * so stored data can never drive the terminal. At most @p max characters (0: no limit),
 * then "...". */
static void text_put(FILE *f, const uint8_t *s, size_t n, size_t max)
{
    size_t chars = 0;

    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        uint32_t cp;
        size_t l;
        if (max > 0 && chars >= max) {
            fputs("...", f);
            return;
        }
        chars++;
        if (c == '\\' || c == '"') {
            fputc('\\', f);
            fputc(c, f);
        } else if (c == '\n') {
            fputs("\\n", f);
        } else if (c == '\t') {
            fputs("\\t", f);
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\x%02x", c);
        } else if (c < 0x80) {
            fputc(c, f);
        } else if ((l = utf8_seq(s + i, n - i, &cp)) > 0) {
            if (cp < 0xa0 || cp == 0x2028 || cp == 0x2029 || (cp >= 0x202a && cp <= 0x202e))
                fprintf(f, "\\u%04x", (unsigned)cp);
            else
                fwrite(s + i, 1, l, f);
            i += l;
            continue;
        } else {
            fprintf(f, "\\x%02x", c);
        }
        i++;
    }
}

static void text_str(FILE *f, const char *s)
{
    text_put(f, (const uint8_t *)s, strlen(s), 0);
}

/* "2026-01-02T03:04:05.678Z" (UTC, ms); "-" for 0. */
static void fmt_time(char out[32], uint64_t ms)
{
    struct tm tm;
    time_t t = (time_t)(ms / 1000);
    size_t n;

    if (ms == 0 || gmtime_r(&t, &tm) == NULL) {
        snprintf(out, 32, "-");
        return;
    }
    n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03uZ", (unsigned)(ms % 1000));
}

/* "1.25 MiB" */
static void fmt_bytes(char out[32], uint64_t v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double d = (double)v;
    int u = 0;

    while (d >= 1024 && u < 5) {
        d /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, 32, "%llu B", (unsigned long long)v);
    else
        snprintf(out, 32, "%.2f %s", d, units[u]);
}

/* ---- protocol enums and records ----------------------------------------------------- */

/* Enum values are shown by their names in cim.proto; an unknown value as its number. */
static const char *enum_name(char buf[16], int v, const char *const *names, int n)
{
    if (v >= 0 && v < n)
        return names[v];
    snprintf(buf, 16, "%d", v);
    return buf;
}

static const char *conv_name(char buf[16], int v)
{
    static const char *const n[] = {"CONV_UNSPECIFIED", "DIRECT", "GROUP"};
    return enum_name(buf, v, n, 3);
}

static const char *msgtype_name(char buf[16], int v)
{
    static const char *const n[] = {"MSG_UNSPECIFIED", "TEXT",   "IMAGE",  "AUDIO", "VIDEO", "FILE",
                                    "LOCATION",        "CUSTOM", "SYSTEM", "RECALL"};
    return enum_name(buf, v, n, 10);
}

static const char *device_name(char buf[16], int v)
{
    static const char *const n[] = {"DEVICE_UNSPECIFIED", "MOBILE", "DESKTOP", "WEB", "BOT"};
    return enum_name(buf, v, n, 5);
}

static const char *gekind_name(char buf[16], int v)
{
    static const char *const n[] = {"GE_UNSPECIFIED", "GE_CREATED", "GE_JOINED",   "GE_ADDED",
                                    "GE_LEFT",        "GE_KICKED",  "GE_DISMISSED"};
    return enum_name(buf, v, n, 7);
}

/* A stored cim.Message, decoded; the body is copied out (decoding never allocates more
 * than the record's length). */
typedef struct dmsg {
    cim_Message m;
    uint8_t *body; /* owned (mem_free) */
    size_t body_len, body_cap;
} dmsg_t;

static bool on_body(pb_istream_t *s, const pb_field_t *f, void **arg)
{
    dmsg_t *dm = *arg;
    size_t n = s->bytes_left;

    (void)f;
    if (n > dm->body_cap)
        return false;
    dm->body_len = n; /* a repeated field: the last one wins, as in any protobuf decoder */
    return pb_read(s, dm->body, n);
}

/* @return 0, or RC_EPROTO when the record is not a cim.Message this build can read. */
static int msg_decode(const uint8_t *rec, size_t len, dmsg_t *dm)
{
    pb_istream_t is = pb_istream_from_buffer(rec, len);

    memset(dm, 0, sizeof(*dm));
    dm->body = mem_alloc(len > 0 ? len : 1); /* a body is never longer than its record */
    dm->body_cap = len;
    dm->m.body.funcs.decode = on_body;
    dm->m.body.arg = dm;
    return pb_decode(&is, cim_Message_fields, &dm->m) ? 0 : RC_EPROTO;
}

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

static bool read_str(pb_istream_t *is, char *out, size_t cap)
{
    pb_istream_t sub;
    size_t n;

    if (!pb_make_string_substream(is, &sub))
        return false;
    n = sub.bytes_left;
    if (n >= cap || !pb_read(&sub, (pb_byte_t *)out, n)) {
        pb_close_string_substream(is, &sub);
        return false;
    }
    out[n] = '\0';
    return pb_close_string_substream(is, &sub);
}

static int gevent_decode(const uint8_t *b, size_t len, gevent_t *ev)
{
    pb_istream_t is = pb_istream_from_buffer(b, len);
    size_t cap = 0;

    memset(ev, 0, sizeof(*ev));
    while (is.bytes_left > 0) {
        pb_wire_type_t wt;
        uint32_t tag;
        uint64_t v;
        bool eof, ok;
        if (!pb_decode_tag(&is, &wt, &tag, &eof))
            return eof ? 0 : RC_EPROTO;
        if (tag == cim_GroupEvent_kind_tag && wt == PB_WT_VARINT) {
            ok = pb_decode_varint(&is, &v);
            ev->kind = (int)v;
        } else if (tag == cim_GroupEvent_actor_tag && wt == PB_WT_STRING) {
            ok = read_str(&is, ev->actor, sizeof(ev->actor));
        } else if (tag == cim_GroupEvent_users_tag && wt == PB_WT_STRING) {
            if (ev->nusers == cap) {
                cap = cap ? 2 * cap : 16;
                ev->users = mem_realloc(ev->users, cap * sizeof(*ev->users));
            }
            ok = read_str(&is, ev->users[ev->nusers], sizeof(ev->users[0]));
            ev->nusers += ok;
        } else if (tag == cim_GroupEvent_group_tag && wt == PB_WT_STRING) {
            pb_istream_t sub;
            ok = pb_make_string_substream(&is, &sub);
            ok = ok && pb_decode(&sub, cim_Group_fields, &ev->group);
            ok = pb_close_string_substream(&is, &sub) && ok;
            ev->has_group = ok;
        } else {
            ok = pb_skip_field(&is, wt);
        }
        if (!ok)
            return RC_EPROTO;
    }
    return 0;
}

/* ---- the session: options, output, errors ------------------------------------------- */

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
    FILE *out;     /* the answer, in memory until the transaction ended */
    jw_t w;
    int logfd; /* kv's log lines land here (memfd), -1 without */
};

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print one error line: "cimdump: reason". */
static void fail(const char *fmt, ...)
{
    va_list ap;
    fputs("cimdump: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* The last line kv logged (its text after the "[thread] " tag), or "" — so that an error
 * stays one line yet says what LMDB or kv found. */
static void last_log(const dump_t *d, char *out, size_t cap)
{
    char buf[4096];
    ssize_t n;
    char *line, *tag;

    out[0] = '\0';
    if (d->logfd < 0 || (n = pread(d->logfd, buf, sizeof(buf) - 1, 0)) <= 0)
        return;
    buf[n] = '\0';
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    line = strrchr(buf, '\n');
    line = line != NULL ? line + 1 : buf;
    if ((tag = strstr(line, "] ")) != NULL)
        line = tag + 2;
    n = (ssize_t)strlen(line);
    if ((size_t)n >= cap)
        n = (ssize_t)cap - 1;
    memcpy(out, line, (size_t)n);
    out[n] = '\0';
}

/* Report a storage failure of @p what, with kv's own last word when it logged one. */
static int fail_rc(const dump_t *d, const char *what, int rc)
{
    char detail[512];

    last_log(d, detail, sizeof(detail));
    if (detail[0] != '\0' && rc == RC_ESTORE)
        fail("%s: %s (%s)", what, rc_str(rc), detail);
    else
        fail("%s: %s", what, rc_str(rc));
    return rc;
}

/* "unknown user 'x'", naming the app when it is not the default one. */
static int fail_user(const dump_t *d, const char *user)
{
    if (strcmp(d->app, DEFAULT_APP) == 0)
        fail("unknown user '%s'", user);
    else
        fail("unknown user '%s' in app '%s'", user, d->app);
    return RC_ENOTFOUND;
}

/* Parse a decimal u64 (digits only, no sign, no overflow). @return 0 or RC_EINVAL. */
static int parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (*s == '\0')
        return RC_EINVAL;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
            return RC_EINVAL;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

/* Check that the app exists. @return 0 or rc (reported). */
static int need_app(dump_t *d)
{
    uint8_t secret[32];
    int rc = kv_app_get(d->txn, d->app, secret);

    memset(secret, 0, sizeof(secret));
    if (rc == RC_ENOTFOUND) {
        fail("unknown app '%s'", d->app);
        return rc;
    }
    return rc < 0 ? fail_rc(d, "cannot read the app", rc) : 0;
}

/* Check a user id argument and that the user exists in the app. @return 0 or rc
 * (reported). */
static int need_user(dump_t *d, const char *user, uint64_t *created_ms)
{
    int rc;

    if ((rc = need_app(d)) < 0)
        return rc;
    if (!kv_id_valid(user)) {
        fail("invalid user id '%s' (1..%d characters of A-Z a-z 0-9 . _ @ -)", user, KV_ID_MAX);
        return RC_EINVAL;
    }
    rc = kv_user_get(d->txn, d->app, user, created_ms);
    if (rc == RC_ENOTFOUND)
        return fail_user(d, user);
    if (rc < 0)
        return fail_rc(d, "cannot read the user", rc);
    return 0;
}

/* ---- messages ----------------------------------------------------------------------- */

/* The id's own fields (time from the SnowFlake id, node, sequence) as JSON members. */
static void json_id_fields(jw_t *w, uint64_t id)
{
    uint64_t ms;
    uint32_t node, seq;
    char t[32];

    snowflake_decode(id, &ms, &node, &seq);
    fmt_time(t, ms);
    jw_id(w, "id", id);
    jw_u64(w, "time_ms", ms);
    jw_str(w, "time", t);
    jw_u64(w, "node", node);
    jw_u64(w, "seq", seq);
}

static bool body_is_text(const dmsg_t *dm)
{
    return dm->m.msg_type != cim_MsgType_SYSTEM && dm->m.msg_type != cim_MsgType_RECALL &&
           utf8_valid(dm->body, dm->body_len);
}

static void json_group(jw_t *w, const char *key, const cim_Group *g)
{
    jw_open(w, key, '{');
    jw_str(w, "group_id", g->group_id);
    jw_str(w, "name", g->name);
    jw_str(w, "owner", g->owner);
    jw_u64(w, "created_ms", g->created_ms);
    jw_u64(w, "member_count", g->member_count);
    jw_bool(w, "open", g->open);
    jw_close(w, '}');
}

/* The decoded body of a SYSTEM (GroupEvent) or RECALL (RecallEvent) message, if it has one. */
static void json_event(jw_t *w, const dmsg_t *dm)
{
    char e[16];

    if (dm->m.msg_type == cim_MsgType_SYSTEM && dm->m.conv_type == cim_ConvType_GROUP) {
        gevent_t ev;
        if (gevent_decode(dm->body, dm->body_len, &ev) == 0) {
            jw_open(w, "group_event", '{');
            jw_str(w, "kind", gekind_name(e, ev.kind));
            jw_str(w, "actor", ev.actor);
            jw_open(w, "users", '[');
            for (size_t i = 0; i < ev.nusers; i++)
                jw_str(w, NULL, ev.users[i]);
            jw_close(w, ']');
            if (ev.has_group)
                json_group(w, "group", &ev.group);
            else
                jw_null(w, "group");
            jw_close(w, '}');
        }
        mem_free(ev.users);
    } else if (dm->m.msg_type == cim_MsgType_RECALL) {
        cim_RecallEvent rv = cim_RecallEvent_init_zero;
        pb_istream_t is = pb_istream_from_buffer(dm->body, dm->body_len);
        if (pb_decode(&is, cim_RecallEvent_fields, &rv)) {
            jw_open(w, "recall_event", '{');
            jw_id(w, "msg_id", rv.msg_id);
            jw_str(w, "by", rv.by);
            jw_close(w, '}');
        }
    }
}

/* One message as a JSON object: @p rec NULL when the id names no record. Bodies longer
 * than @p body_max bytes (0: no limit) are cut there. */
static void json_msg(jw_t *w, uint64_t id, const uint8_t *rec, size_t len, size_t body_max)
{
    char e[16];
    dmsg_t dm;
    size_t show;

    jw_open(w, NULL, '{');
    json_id_fields(w, id);
    if (rec == NULL) {
        jw_bool(w, "missing", true);
        jw_close(w, '}');
        return;
    }
    jw_u64(w, "record_len", len);
    if (msg_decode(rec, len, &dm) < 0) {
        jw_str(w, "error", "record is not a cim.Message");
        jw_hex(w, "record_hex", rec, len);
        jw_close(w, '}');
        mem_free(dm.body);
        return;
    }
    jw_str(w, "conv_type", conv_name(e, dm.m.conv_type));
    jw_str(w, "from", dm.m.from);
    jw_str(w, "to", dm.m.to);
    jw_str(w, "msg_type", msgtype_name(e, dm.m.msg_type));
    jw_str(w, "client_msg_id", dm.m.client_msg_id);
    jw_u64(w, "flags", dm.m.flags);
    jw_bool(w, "recalled", (dm.m.flags & 1) != 0);
    jw_str(w, "from_device", device_name(e, dm.m.from_device));
    jw_u64(w, "message_time_ms", dm.m.time_ms);
    jw_u64(w, "body_len", dm.body_len);
    show = body_max > 0 && dm.body_len > body_max ? body_max : dm.body_len;
    if (body_is_text(&dm)) {
        /* cut at a character boundary */
        while (show < dm.body_len && show > 0 && (dm.body[show] & 0xc0) == 0x80)
            show--;
        jw_str(w, "body_encoding", "utf8");
        jw_strn(w, "body", dm.body, show);
    } else {
        jw_str(w, "body_encoding", "hex");
        jw_hex(w, "body", dm.body, show);
    }
    jw_bool(w, "body_truncated", show < dm.body_len);
    json_event(w, &dm);
    jw_close(w, '}');
    mem_free(dm.body);
}

static void text_event(FILE *f, const dmsg_t *dm)
{
    char e[16];

    if (dm->m.msg_type == cim_MsgType_SYSTEM && dm->m.conv_type == cim_ConvType_GROUP) {
        gevent_t ev;
        if (gevent_decode(dm->body, dm->body_len, &ev) == 0) {
            fprintf(f, "event          %s by %s", gekind_name(e, ev.kind), ev.actor);
            for (size_t i = 0; i < ev.nusers; i++)
                fprintf(f, "%s%s", i == 0 ? ": " : ", ", ev.users[i]);
            if (ev.has_group) {
                fprintf(f, "; group %s \"", ev.group.group_id);
                text_str(f, ev.group.name);
                fprintf(f, "\" owner %s, %u members%s", ev.group.owner,
                        (unsigned)ev.group.member_count, ev.group.open ? ", open" : "");
            }
            fputc('\n', f);
        }
        mem_free(ev.users);
    } else if (dm->m.msg_type == cim_MsgType_RECALL) {
        cim_RecallEvent rv = cim_RecallEvent_init_zero;
        pb_istream_t is = pb_istream_from_buffer(dm->body, dm->body_len);
        if (pb_decode(&is, cim_RecallEvent_fields, &rv))
            fprintf(f, "event          recall of %llu by %s\n", (unsigned long long)rv.msg_id,
                    rv.by);
    }
}

/* A SYSTEM or RECALL body in a table row: "<GE_ADDED by alice: bob, carol>". @return
 * false when @p dm carries no event this build decodes. */
static bool text_event_short(FILE *f, const dmsg_t *dm)
{
    char e[16];
    bool ok = false;

    if (dm->m.msg_type == cim_MsgType_SYSTEM && dm->m.conv_type == cim_ConvType_GROUP) {
        gevent_t ev;
        if (gevent_decode(dm->body, dm->body_len, &ev) == 0) {
            fprintf(f, "<%s by %s", gekind_name(e, ev.kind), ev.actor);
            for (size_t i = 0; i < ev.nusers && i < 4; i++)
                fprintf(f, "%s%s", i == 0 ? ": " : ", ", ev.users[i]);
            fprintf(f, "%s>", ev.nusers > 4 ? ", ..." : "");
            ok = true;
        }
        mem_free(ev.users);
    } else if (dm->m.msg_type == cim_MsgType_RECALL) {
        cim_RecallEvent rv = cim_RecallEvent_init_zero;
        pb_istream_t is = pb_istream_from_buffer(dm->body, dm->body_len);
        if ((ok = pb_decode(&is, cim_RecallEvent_fields, &rv)))
            fprintf(f, "<recall of %llu by %s>", (unsigned long long)rv.msg_id, rv.by);
    }
    return ok;
}

/* The body on one line: text (escaped, at most @p max characters) or hex. */
static void text_body(FILE *f, const dmsg_t *dm, size_t max)
{
    if (body_is_text(dm)) {
        fputc('"', f);
        text_put(f, dm->body, dm->body_len, max);
        fputc('"', f);
        return;
    }
    fputs("hex ", f);
    for (size_t i = 0; i < dm->body_len; i++) {
        if (max > 0 && 2 * i + 2 > max) {
            fputs("...", f);
            break;
        }
        fprintf(f, "%02x", dm->body[i]);
    }
}

/* ---- commands ----------------------------------------------------------------------- */

typedef struct statctx {
    dump_t *d;
    kv_envinfo_t info;
    kv_dbstat_t *dbs;
    size_t n, cap;
} statctx_t;

static int on_dbstat(void *ctx, const kv_dbstat_t *st)
{
    statctx_t *s = ctx;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 32;
        s->dbs = mem_realloc(s->dbs, s->cap * sizeof(*s->dbs));
    }
    s->dbs[s->n++] = *st;
    return 0;
}

static uint64_t db_entries(const statctx_t *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->dbs[i].name, name) == 0)
            return s->dbs[i].entries;
    return 0;
}

typedef struct reader {
    long pid;
    uint64_t txn;
} reader_t;

typedef struct readers {
    reader_t *r;
    size_t n, cap;
} readers_t;

static int on_reader(void *ctx, long pid, uint64_t txn)
{
    readers_t *rs = ctx;
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? 2 * rs->cap : 16;
        rs->r = mem_realloc(rs->r, rs->cap * sizeof(*rs->r));
    }
    rs->r[rs->n].pid = pid;
    rs->r[rs->n++].txn = txn;
    return 0;
}

static void json_id_time(jw_t *w, const char *key, uint64_t id)
{
    uint64_t ms = snowflake_time_ms(id);
    char t[32];

    if (id == 0) {
        jw_null(w, key);
        return;
    }
    fmt_time(t, ms);
    jw_open(w, key, '{');
    jw_id(w, "id", id);
    jw_u64(w, "time_ms", ms);
    jw_str(w, "time", t);
    jw_close(w, '}');
}

/* Bytes per stored message, "-" when there is no message. */
static void fmt_per_msg(char out[32], uint64_t bytes, uint64_t msgs)
{
    if (msgs == 0)
        snprintf(out, 32, "-");
    else
        snprintf(out, 32, "%.1f", (double)bytes / (double)msgs);
}

static int cmd_stats(dump_t *d)
{
    statctx_t s = {.d = d};
    readers_t rs = {0};
    uint64_t free_pages = 0, first = 0, last = 0, issued = 0, used, bytes, live, nmsg;
    long self = (long)getpid();
    FILE *f = d->out;
    jw_t *w = &d->w;
    char a[32], b[32], c[32];
    int rc;

    if ((rc = kv_env_info(d->kv, &s.info)) < 0 ||
        (rc = kv_stat_each(d->txn, on_dbstat, &s, &free_pages)) < 0 ||
        (rc = kv_msg_first_id(d->txn, &first)) < 0 || (rc = kv_msg_last_id(d->txn, &last)) < 0 ||
        (rc = kv_last_id_get(d->txn, &issued)) < 0 ||
        (rc = kv_reader_each(d->kv, on_reader, &rs)) < 0) {
        fail_rc(d, "cannot read the statistics", rc);
        goto out;
    }
    used = (s.info.last_page + 1) * s.info.page_size;
    /* the pages in use that are not on the free list (reusable by later writes) */
    live = used > free_pages * s.info.page_size ? used - free_pages * s.info.page_size : 0;
    /* every stored message is one record of msgs (STORAGE.md); a schema without it gives
     * no count, and every per-message figure is then null */
    nmsg = db_entries(&s, "msgs");
    if (d->json) {
        jw_open(w, NULL, '{');
        jw_str(w, "data", d->data);
        jw_u64(w, "schema", KV_SCHEMA);
        jw_open(w, "map", '{');
        jw_u64(w, "size", s.info.map_size);
        jw_u64(w, "used", used);
        jw_sep(w, "used_pct");
        fprintf(f, "%.4f", s.info.map_size ? 100.0 * (double)used / (double)s.info.map_size : 0);
        jw_u64(w, "file_size", s.info.file_size);
        jw_u64(w, "page_size", s.info.page_size);
        jw_u64(w, "last_page", s.info.last_page);
        jw_u64(w, "free_pages", free_pages);
        jw_close(w, '}');
        jw_u64(w, "last_txn", s.info.last_txn);
        jw_open(w, "databases", '[');
        for (size_t i = 0; i < s.n; i++) {
            const kv_dbstat_t *st = &s.dbs[i];
            jw_open(w, NULL, '{');
            jw_str(w, "name", st->name);
            jw_bool(w, "dupsort", st->dupsort);
            jw_u64(w, "entries", st->entries);
            jw_u64(w, "depth", st->depth);
            jw_u64(w, "branch_pages", st->branch_pages);
            jw_u64(w, "leaf_pages", st->leaf_pages);
            jw_u64(w, "overflow_pages", st->overflow_pages);
            bytes = (st->branch_pages + st->leaf_pages + st->overflow_pages) * s.info.page_size;
            jw_u64(w, "bytes", bytes);
            jw_ratio(w, "bytes_per_message", bytes, nmsg);
            jw_close(w, '}');
        }
        jw_close(w, ']');
        jw_u64(w, "apps", db_entries(&s, "apps"));
        jw_u64(w, "users", db_entries(&s, "users"));
        jw_u64(w, "groups", db_entries(&s, "groups"));
        jw_open(w, "messages", '{');
        jw_u64(w, "count", db_entries(&s, "msgs"));
        json_id_time(w, "oldest", first);
        json_id_time(w, "newest", last);
        jw_id(w, "last_issued", issued);
        jw_open(w, "bytes_per_message", '{');
        jw_ratio(w, "file", s.info.file_size, nmsg);
        jw_ratio(w, "used", used, nmsg);
        jw_ratio(w, "live", live, nmsg);
        jw_close(w, '}');
        jw_close(w, '}');
        jw_open(w, "readers", '{');
        jw_u64(w, "max", s.info.max_readers);
        jw_u64(w, "slots_used", s.info.reader_slots);
        jw_u64(w, "count", rs.n);
        jw_open(w, "active", '[');
        for (size_t i = 0; i < rs.n; i++) {
            jw_open(w, NULL, '{');
            jw_u64(w, "pid", (uint64_t)rs.r[i].pid);
            if (rs.r[i].txn == 0)
                jw_null(w, "txn");
            else
                jw_u64(w, "txn", rs.r[i].txn);
            jw_bool(w, "self", rs.r[i].pid == self);
            jw_close(w, '}');
        }
        jw_close(w, ']');
        jw_close(w, '}');
        jw_close(w, '}');
        goto out;
    }
    fmt_bytes(a, s.info.map_size);
    fmt_bytes(b, used);
    fmt_bytes(c, s.info.file_size);
    fprintf(f, "data        %s\nschema      %d\n", d->data, KV_SCHEMA);
    fprintf(f,
            "map         %s mapped, %s used (%.2f%%), data.mdb %s, %u-byte pages, "
            "%llu free\n",
            a, b, s.info.map_size ? 100.0 * (double)used / (double)s.info.map_size : 0, c,
            s.info.page_size, (unsigned long long)free_pages);
    fprintf(f, "last txn    %llu\n", (unsigned long long)s.info.last_txn);
    fprintf(f, "apps        %llu\nusers       %llu\ngroups      %llu\n",
            (unsigned long long)db_entries(&s, "apps"), (unsigned long long)db_entries(&s, "users"),
            (unsigned long long)db_entries(&s, "groups"));
    fprintf(f, "messages    %llu", (unsigned long long)db_entries(&s, "msgs"));
    if (first != 0) {
        fmt_time(a, snowflake_time_ms(first));
        fmt_time(b, snowflake_time_ms(last));
        fprintf(f, ": oldest %llu (%s), newest %llu (%s)", (unsigned long long)first, a,
                (unsigned long long)last, b);
    }
    fprintf(f, "; last id issued %llu\n", (unsigned long long)issued);
    fmt_per_msg(a, s.info.file_size, nmsg);
    fmt_per_msg(b, used, nmsg);
    fmt_per_msg(c, live, nmsg);
    fprintf(f,
            "per message %s bytes of data.mdb, %s of the pages used, %s of them live (not on the "
            "free list)\n",
            a, b, c);
    fprintf(f, "readers     %zu in use of %u slots (high-water %u)\n", rs.n, s.info.max_readers,
            s.info.reader_slots);
    for (size_t i = 0; i < rs.n; i++) {
        fprintf(f, "  pid %-8ld ", rs.r[i].pid);
        if (rs.r[i].txn == 0)
            fprintf(f, "between transactions");
        else
            fprintf(f, "reads txn %llu", (unsigned long long)rs.r[i].txn);
        fprintf(f, "%s\n", rs.r[i].pid == self ? " (this cimdump)" : "");
    }
    fprintf(f, "\n%-12s %12s %5s %8s %10s %9s %12s %9s\n", "DATABASE", "ENTRIES", "DEPTH", "BRANCH",
            "LEAF", "OVERFLOW", "SIZE", "B/MSG");
    for (size_t i = 0; i < s.n; i++) {
        const kv_dbstat_t *st = &s.dbs[i];
        bytes = (st->branch_pages + st->leaf_pages + st->overflow_pages) * s.info.page_size;
        fmt_bytes(a, bytes);
        fmt_per_msg(b, bytes, nmsg);
        fprintf(f, "%-12s %12llu %5u %8llu %10llu %9llu %12s %9s\n", st->name,
                (unsigned long long)st->entries, st->depth, (unsigned long long)st->branch_pages,
                (unsigned long long)st->leaf_pages, (unsigned long long)st->overflow_pages, a, b);
    }
out:
    mem_free(s.dbs);
    mem_free(rs.r);
    return rc;
}

typedef struct count {
    uint64_t n;
} count_t;

static int on_count_user(void *ctx, const char *user, uint64_t created_ms)
{
    (void)user;
    (void)created_ms;
    ((count_t *)ctx)->n++;
    return 0;
}

static int on_app(void *ctx, const char *app, uint64_t created_ms)
{
    dump_t *d = ctx;
    count_t users = {0};
    char t[32];
    int rc;

    if ((rc = kv_user_each(d->txn, app, on_count_user, &users)) < 0)
        return rc;
    fmt_time(t, created_ms);
    if (d->json) {
        jw_open(&d->w, NULL, '{');
        jw_str(&d->w, "app", app);
        jw_u64(&d->w, "created_ms", created_ms);
        jw_str(&d->w, "created", t);
        jw_u64(&d->w, "users", users.n);
        jw_close(&d->w, '}');
    } else {
        fprintf(d->out, "%-24s %-26s %10llu\n", app, t, (unsigned long long)users.n);
    }
    return 0;
}

static int cmd_apps(dump_t *d)
{
    int rc;

    if (d->json) {
        jw_open(&d->w, NULL, '{');
        jw_open(&d->w, "apps", '[');
    } else {
        fprintf(d->out, "%-24s %-26s %10s\n", "APP", "CREATED", "USERS");
    }
    if ((rc = kv_app_each(d->txn, on_app, d)) < 0)
        return fail_rc(d, "cannot list the apps", rc);
    if (d->json) {
        jw_close(&d->w, ']');
        jw_close(&d->w, '}');
    }
    return 0;
}

typedef struct userctx {
    dump_t *d;
    uint64_t n;
} userctx_t;

static int on_user(void *ctx, const char *user, uint64_t created_ms)
{
    userctx_t *u = ctx;
    dump_t *d = u->d;
    uint8_t ukey[KV_UKEY_MAX];
    uint64_t count = 0;
    char t[32];
    int rc;

    if ((rc = kv_timeline_count(d->txn, ukey, kv_ukey(ukey, d->app, user), &count)) < 0)
        return rc;
    fmt_time(t, created_ms);
    u->n++;
    if (d->json) {
        jw_open(&d->w, NULL, '{');
        jw_str(&d->w, "user", user);
        jw_u64(&d->w, "created_ms", created_ms);
        jw_str(&d->w, "created", t);
        jw_u64(&d->w, "timeline", count);
        jw_close(&d->w, '}');
    } else {
        fprintf(d->out, "%-32s %-26s %10llu\n", user, t, (unsigned long long)count);
    }
    return 0;
}

static int cmd_users(dump_t *d)
{
    userctx_t u = {d, 0};
    int rc;

    if ((rc = need_app(d)) < 0)
        return rc;
    if (d->json) {
        jw_open(&d->w, NULL, '{');
        jw_str(&d->w, "app", d->app);
        jw_open(&d->w, "users", '[');
    } else {
        fprintf(d->out, "%-32s %-26s %10s\n", "USER", "CREATED", "TIMELINE");
    }
    if ((rc = kv_user_each(d->txn, d->app, on_user, &u)) < 0)
        return fail_rc(d, "cannot list the users", rc);
    if (d->json) {
        jw_close(&d->w, ']');
        jw_u64(&d->w, "count", u.n);
        jw_close(&d->w, '}');
    } else {
        fprintf(d->out, "(%llu users in app %s)\n", (unsigned long long)u.n, d->app);
    }
    return 0;
}

/* ---- user ---- */

typedef struct devctx {
    dump_t *d;
    const uint8_t *ukey;
    size_t klen;
    struct dev {
        char device[65];
        uint64_t cursor, pending;
    } * devs;
    size_t n, cap;
} devctx_t;

static int on_device(void *ctx, const char *device, uint64_t id)
{
    devctx_t *dc = ctx;
    size_t got;
    uint64_t pending = 0, none;
    int rc;

    /* entries after the cursor: what this device has not acknowledged yet */
    if ((rc = kv_timeline_page(dc->d->txn, dc->ukey, dc->klen, id, &none, 0, &got, &pending)) < 0)
        return rc;
    if (dc->n == dc->cap) {
        dc->cap = dc->cap ? 2 * dc->cap : 8;
        dc->devs = mem_realloc(dc->devs, dc->cap * sizeof(*dc->devs));
    }
    snprintf(dc->devs[dc->n].device, sizeof(dc->devs[0].device), "%.64s", device);
    dc->devs[dc->n].cursor = id;
    dc->devs[dc->n++].pending = pending;
    return 0;
}

typedef struct convsum {
    dump_t *d;
    const char *user;
    uint64_t n, unread;
} convsum_t;

static int on_conv_sum(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val, size_t vlen)
{
    convsum_t *s = ctx;
    char peer[KV_ID_MAX + 1];
    conv_rec_t c;
    conv_view_t v;
    int rc;

    if (slen < 2 || slen - 1 > KV_ID_MAX)
        return 0;
    memcpy(peer, sfx + 1, slen - 1);
    peer[slen - 1] = '\0';
    conv_decode(val, vlen, &c);
    if ((rc = conv_view(s->d->txn, s->d->app, s->user, sfx[0], peer, &c, &v)) < 0)
        return rc;
    s->n++;
    s->unread += v.unread; /* derived, as CONV_LIST does */
    return 0;
}

typedef struct gids {
    uint64_t *v;
    size_t n, cap;
} gids_t;

static int on_ugroup(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val, size_t vlen)
{
    gids_t *g = ctx;

    (void)val;
    (void)vlen;
    if (slen != 8)
        return 0; /* not a group key */
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 16;
        g->v = mem_realloc(g->v, g->cap * sizeof(*g->v));
    }
    g->v[g->n++] = group_get64(sfx);
    return 0;
}

static int on_count_rec(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val, size_t vlen)
{
    (void)sfx;
    (void)slen;
    (void)val;
    (void)vlen;
    ((count_t *)ctx)->n++;
    return 0;
}

static int cmd_user(dump_t *d)
{
    const char *user = d->pos[0];
    uint8_t ukey[KV_UKEY_MAX], pfx[CONV_UKEY_MAX];
    size_t klen, plen, got = 0;
    uint64_t created = 0, count = 0, first = 0, last = 0, rest = 0;
    devctx_t dc = {0};
    convsum_t cs = {.d = d, .user = user};
    gids_t gs = {0};
    count_t contacts = {0}, blocks = {0};
    FILE *f = d->out;
    jw_t *w = &d->w;
    char t[32];
    int rc;

    if ((rc = need_user(d, user, &created)) < 0)
        return rc;
    klen = kv_ukey(ukey, d->app, user);
    plen = conv_uprefix(pfx, d->app, user); /* user key NUL: also the prefix elsewhere */
    dc.d = d;
    dc.ukey = ukey;
    dc.klen = klen;
    if ((rc = kv_timeline_count(d->txn, ukey, klen, &count)) < 0 ||
        (rc = kv_timeline_page(d->txn, ukey, klen, 0, &first, 1, &got, &rest)) < 0 ||
        (rc = kv_timeline_last(d->txn, ukey, klen, &last)) < 0 ||
        (rc = kv_cursor_each(d->txn, ukey, klen, on_device, &dc)) < 0 ||
        (rc = kv_rec_scan(d->txn, KV_DB_CONVS, pfx, plen, on_conv_sum, &cs)) < 0 ||
        (rc = kv_rec_scan(d->txn, KV_DB_UGROUPS, pfx, plen, on_ugroup, &gs)) < 0 ||
        (rc = kv_rec_scan(d->txn, KV_DB_CONTACTS, pfx, plen, on_count_rec, &contacts)) < 0 ||
        (rc = kv_rec_scan(d->txn, KV_DB_BLOCKS, pfx, plen, on_count_rec, &blocks)) < 0) {
        fail_rc(d, "cannot read the user", rc);
        goto out;
    }
    if (got == 0)
        first = 0;
    fmt_time(t, created);
    if (d->json) {
        jw_open(w, NULL, '{');
        jw_str(w, "app", d->app);
        jw_str(w, "user", user);
        jw_u64(w, "created_ms", created);
        jw_str(w, "created", t);
        jw_open(w, "timeline", '{');
        jw_u64(w, "count", count);
        jw_id_or_null(w, "first", first);
        jw_id_or_null(w, "last", last);
        jw_close(w, '}');
        jw_open(w, "devices", '[');
        for (size_t i = 0; i < dc.n; i++) {
            jw_open(w, NULL, '{');
            jw_str(w, "device", dc.devs[i].device);
            jw_id(w, "cursor", dc.devs[i].cursor);
            jw_u64(w, "pending", dc.devs[i].pending);
            jw_close(w, '}');
        }
        jw_close(w, ']');
        jw_u64(w, "conversations", cs.n);
        jw_u64(w, "unread", cs.unread);
        jw_open(w, "groups", '[');
        for (size_t i = 0; i < gs.n; i++) {
            char gid[24];
            snprintf(gid, sizeof(gid), "%llu", (unsigned long long)gs.v[i]);
            jw_str(w, NULL, gid);
        }
        jw_close(w, ']');
        jw_u64(w, "contacts", contacts.n);
        jw_u64(w, "blocked", blocks.n);
        jw_close(w, '}');
        goto out;
    }
    fprintf(f, "user           %s (app %s)\ncreated        %s\n", user, d->app, t);
    fprintf(f, "timeline       %llu messages", (unsigned long long)count);
    if (count > 0)
        fprintf(f, ", first %llu, last %llu", (unsigned long long)first, (unsigned long long)last);
    fprintf(f, "\nconversations  %llu (%llu unread)\ngroups         %zu", (unsigned long long)cs.n,
            (unsigned long long)cs.unread, gs.n);
    for (size_t i = 0; i < gs.n; i++)
        fprintf(f, "%s%llu", i == 0 ? ": " : " ", (unsigned long long)gs.v[i]);
    fprintf(f, "\ncontacts       %llu (%llu blocked)\n", (unsigned long long)contacts.n,
            (unsigned long long)blocks.n);
    fprintf(f, "devices        %zu (with a delivery cursor)\n", dc.n);
    if (dc.n > 0)
        fprintf(f, "  %-32s %22s %10s\n", "DEVICE", "CURSOR", "PENDING");
    for (size_t i = 0; i < dc.n; i++)
        fprintf(f, "  %-32s %22llu %10llu\n", dc.devs[i].device,
                (unsigned long long)dc.devs[i].cursor, (unsigned long long)dc.devs[i].pending);
out:
    mem_free(dc.devs);
    mem_free(gs.v);
    return rc;
}

/* ---- timeline and msg ---- */

static void text_msg_row(FILE *f, uint64_t id, const uint8_t *rec, size_t len)
{
    char t[32], e[16], e2[16];
    dmsg_t dm;

    fmt_time(t, snowflake_time_ms(id));
    fprintf(f, "%-20llu %-24s ", (unsigned long long)id, t);
    if (rec == NULL) {
        fprintf(f, "(no record: removed by retention)\n");
        return;
    }
    if (msg_decode(rec, len, &dm) < 0) {
        fprintf(f, "(record of %zu bytes is not a cim.Message)\n", len);
        mem_free(dm.body);
        return;
    }
    fprintf(f, "%-6s %-16s %-16s %-8s %c ",
            dm.m.conv_type == cim_ConvType_GROUP    ? "group"
            : dm.m.conv_type == cim_ConvType_DIRECT ? "direct"
                                                    : conv_name(e2, dm.m.conv_type),
            dm.m.from, dm.m.to, msgtype_name(e, dm.m.msg_type), (dm.m.flags & 1) ? 'R' : '-');
    if (!text_event_short(f, &dm))
        text_body(f, &dm, TEXT_BODY_MAX);
    fputc('\n', f);
    mem_free(dm.body);
}

static int cmd_timeline(dump_t *d)
{
    const char *user = d->pos[0];
    unsigned limit = d->limit ? d->limit : TL_LIMIT_DEFAULT;
    uint8_t ukey[KV_UKEY_MAX];
    uint64_t *ids = mem_alloc(limit * sizeof(*ids)), total = 0, after_n = 0;
    size_t klen, n = 0;
    jw_t *w = &d->w;
    char a[24];
    int rc;

    if ((rc = need_user(d, user, NULL)) < 0)
        goto out;
    klen = kv_ukey(ukey, d->app, user);
    if ((rc = kv_timeline_count(d->txn, ukey, klen, &total)) < 0 ||
        (rc = kv_timeline_page(d->txn, ukey, klen, d->after, ids, limit, &n, &after_n)) < 0) {
        fail_rc(d, "cannot read the timeline", rc);
        goto out;
    }
    if (d->json) {
        jw_open(w, NULL, '{');
        jw_str(w, "app", d->app);
        jw_str(w, "user", user);
        jw_id(w, "after", d->after);
        jw_u64(w, "limit", limit);
        jw_u64(w, "total", total);
        jw_u64(w, "count", n);
        jw_u64(w, "remain", after_n - n);
        jw_id_or_null(w, "next_after", n > 0 && after_n > n ? ids[n - 1] : 0);
        jw_open(w, "messages", '[');
    } else {
        fprintf(d->out, "%-20s %-24s %-6s %-16s %-16s %-8s %s %s\n", "ID", "TIME", "CONV", "FROM",
                "TO", "TYPE", "R", "BODY");
    }
    for (size_t i = 0; i < n; i++) {
        const uint8_t *rec = NULL;
        size_t len = 0;
        rc = kv_msg_get(d->txn, ids[i], &rec, &len);
        if (rc < 0 && rc != RC_ENOTFOUND) {
            fail_rc(d, "cannot read a message", rc);
            goto out;
        }
        if (rc == RC_ENOTFOUND)
            rec = NULL;
        if (d->json)
            json_msg(w, ids[i], rec, len, TL_BODY_MAX);
        else
            text_msg_row(d->out, ids[i], rec, len);
    }
    rc = 0;
    if (d->json) {
        jw_close(w, ']');
        jw_close(w, '}');
    } else {
        snprintf(a, sizeof(a), "%llu", (unsigned long long)(n > 0 ? ids[n - 1] : d->after));
        fprintf(d->out, "(%zu of %llu after %llu; %llu more%s%s)\n", n, (unsigned long long)total,
                (unsigned long long)d->after, (unsigned long long)(after_n - n),
                after_n > n ? ": --after " : "", after_n > n ? a : "");
    }
out:
    mem_free(ids);
    return rc;
}

static int cmd_msg(dump_t *d)
{
    const uint8_t *rec = NULL;
    size_t len = 0;
    uint64_t id, ms;
    uint32_t node, seq;
    FILE *f = d->out;
    char t[32], e[16];
    dmsg_t dm;
    int rc;

    if (parse_u64(d->pos[0], &id) < 0 || id == 0) {
        fail("invalid message id '%s' (a decimal number)", d->pos[0]);
        return RC_EINVAL;
    }
    rc = kv_msg_get(d->txn, id, &rec, &len);
    if (rc == RC_ENOTFOUND) {
        fail("unknown message id %llu", (unsigned long long)id);
        return rc;
    }
    if (rc < 0)
        return fail_rc(d, "cannot read the message", rc);
    if (d->json) {
        json_msg(&d->w, id, rec, len, 0);
        return 0;
    }
    snowflake_decode(id, &ms, &node, &seq);
    fmt_time(t, ms);
    fprintf(f, "id             %llu\ntime           %s (node %u, seq %u)\n", (unsigned long long)id,
            t, node, seq);
    if (msg_decode(rec, len, &dm) < 0) {
        fprintf(f, "record         %zu bytes, not a cim.Message: ", len);
        for (size_t i = 0; i < len; i++)
            fprintf(f, "%02x", rec[i]);
        fputc('\n', f);
        mem_free(dm.body);
        return 0;
    }
    fprintf(f, "conversation   %s, from %s to %s\n", conv_name(e, dm.m.conv_type), dm.m.from,
            dm.m.to);
    fprintf(f, "type           %s\n", msgtype_name(e, dm.m.msg_type));
    fprintf(f, "client_msg_id  %s\n", dm.m.client_msg_id[0] ? dm.m.client_msg_id : "-");
    fprintf(f, "from_device    %s\n", device_name(e, dm.m.from_device));
    fprintf(f, "flags          0x%x%s\n", (unsigned)dm.m.flags,
            (dm.m.flags & 1) ? " (RECALLED)" : "");
    fprintf(f, "body           %zu bytes, ", dm.body_len);
    text_body(f, &dm, 0);
    fputc('\n', f);
    text_event(f, &dm);
    mem_free(dm.body);
    return 0;
}

/* ---- groups ---- */

/* Open an object holding a group record's fields; the caller may add more, then closes it. */
static void json_group_rec(jw_t *w, const char *key, const group_t *g)
{
    char t[32], gid[24];

    fmt_time(t, g->created_ms);
    snprintf(gid, sizeof(gid), "%llu", (unsigned long long)g->gid);
    jw_open(w, key, '{');
    jw_str(w, "group_id", gid);
    jw_str(w, "name", g->name);
    jw_str(w, "owner", g->owner);
    jw_u64(w, "created_ms", g->created_ms);
    jw_str(w, "created", t);
    jw_u64(w, "member_count", g->member_count);
    jw_bool(w, "open", g->open);
    jw_bool(w, "dismissed", g->dismissed);
}

typedef struct groupsctx {
    dump_t *d;
    uint64_t n;
} groupsctx_t;

static int on_group(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val, size_t vlen)
{
    groupsctx_t *gc = ctx;
    dump_t *d = gc->d;
    group_t g;
    char t[32];
    int rc;

    (void)val;
    (void)vlen;
    if (slen != 8)
        return 0; /* not a group key */
    if ((rc = group_load(d->txn, d->app, group_get64(sfx), &g)) < 0)
        return rc;
    gc->n++;
    if (d->json) {
        json_group_rec(&d->w, NULL, &g);
        jw_close(&d->w, '}');
        return 0;
    }
    fmt_time(t, g.created_ms);
    fprintf(d->out, "%-12llu %-20s %8u %-5s %-9s %s  ", (unsigned long long)g.gid, g.owner,
            (unsigned)g.member_count, g.open ? "open" : "-", g.dismissed ? "dismissed" : "-", t);
    text_str(d->out, g.name);
    fputc('\n', d->out);
    return 0;
}

static int cmd_groups(dump_t *d)
{
    uint8_t pfx[KV_ID_MAX + 1];
    size_t plen = strlen(d->app);
    groupsctx_t gc = {d, 0};
    int rc;

    if ((rc = need_app(d)) < 0)
        return rc;
    memcpy(pfx, d->app, plen);
    pfx[plen++] = '\0';
    if (d->json) {
        jw_open(&d->w, NULL, '{');
        jw_str(&d->w, "app", d->app);
        jw_open(&d->w, "groups", '[');
    } else {
        fprintf(d->out, "%-12s %-20s %8s %-5s %-9s %-24s  %s\n", "GROUP", "OWNER", "MEMBERS",
                "OPEN", "STATE", "CREATED", "NAME");
    }
    if ((rc = kv_rec_scan(d->txn, KV_DB_GROUPS, pfx, plen, on_group, &gc)) < 0)
        return fail_rc(d, "cannot list the groups", rc);
    if (d->json) {
        jw_close(&d->w, ']');
        jw_u64(&d->w, "count", gc.n);
        jw_close(&d->w, '}');
    } else {
        fprintf(d->out, "(%llu groups in app %s)\n", (unsigned long long)gc.n, d->app);
    }
    return 0;
}

typedef struct memberctx {
    dump_t *d;
    const char *owner;
} memberctx_t;

static int on_member(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val, size_t vlen)
{
    const memberctx_t *mc = ctx;
    dump_t *d = mc->d;
    bool owner = slen == strlen(mc->owner) && memcmp(sfx, mc->owner, slen) == 0;
    uint64_t joined = vlen == 8 ? group_get64(val) : 0;
    char t[32];

    fmt_time(t, joined ? snowflake_time_ms(joined) : 0);
    if (d->json) {
        jw_open(&d->w, NULL, '{');
        jw_strn(&d->w, "user", sfx, slen);
        jw_bool(&d->w, "owner", owner);
        jw_id(&d->w, "joined", joined);
        jw_u64(&d->w, "joined_ms", joined ? snowflake_time_ms(joined) : 0);
        jw_close(&d->w, '}');
    } else {
        fputs("  ", d->out);
        text_put(d->out, sfx, slen, 0);
        fprintf(d->out, "%*s %22llu  %s%s\n", slen < 32 ? (int)(32 - slen) : 0, "",
                (unsigned long long)joined, t, owner ? "  (owner)" : "");
    }
    return 0;
}

static int cmd_group(dump_t *d)
{
    uint8_t key[GROUP_KEY_MAX];
    memberctx_t mc;
    uint64_t gid;
    group_t g;
    FILE *f = d->out;
    char t[32];
    int rc;

    if ((rc = need_app(d)) < 0)
        return rc;
    if (group_id_parse(d->pos[0], &gid) < 0) {
        fail("invalid group id '%s' (a decimal number)", d->pos[0]);
        return RC_EINVAL;
    }
    rc = group_load(d->txn, d->app, gid, &g);
    if (rc == RC_ENOTFOUND) {
        if (strcmp(d->app, DEFAULT_APP) == 0)
            fail("unknown group '%s'", d->pos[0]);
        else
            fail("unknown group '%s' in app '%s'", d->pos[0], d->app);
        return rc;
    }
    if (rc < 0)
        return fail_rc(d, "cannot read the group", rc);
    if (d->json) {
        json_group_rec(&d->w, NULL, &g);
        jw_str(&d->w, "app", d->app);
        jw_open(&d->w, "members", '[');
    } else {
        fmt_time(t, g.created_ms);
        fprintf(f, "group          %llu (app %s)\nname           \"", (unsigned long long)g.gid,
                d->app);
        text_str(f, g.name);
        fprintf(f, "\"\nowner          %s\ncreated        %s\nstate          %s%s\n", g.owner, t,
                g.dismissed ? "dismissed" : "live", g.open ? ", open (anyone may join)" : "");
        fprintf(f, "members        %u\n  %-32s %22s  %s\n", (unsigned)g.member_count, "USER",
                "JOINED (EVENT ID)", "JOINED AT");
    }
    mc.d = d;
    mc.owner = g.owner;
    if ((rc = kv_rec_scan(d->txn, KV_DB_MEMBERS, key, group_key(key, d->app, gid), on_member,
                          &mc)) < 0)
        return fail_rc(d, "cannot list the members", rc);
    if (d->json) {
        jw_close(&d->w, ']');
        jw_close(&d->w, '}');
    }
    return 0;
}

/* ---- convs ---- */

typedef struct conv_row {
    int type;
    char peer[KV_ID_MAX + 1];
    conv_rec_t c;
    conv_view_t v;      /* last message and unread, derived as CONV_LIST does */
    uint64_t peer_read; /* DIRECT: the peer's read cursor in the same conversation */
    uint64_t messages;  /* the conversation index (shared by its participants) */
} conv_row_t;

typedef struct convsctx {
    dump_t *d;
    const char *user;
    conv_row_t *rows;
    size_t n, cap;
    int rc;
} convsctx_t;

static int on_conv(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val, size_t vlen)
{
    convsctx_t *cc = ctx;
    conv_row_t *r;

    /* suffix: conv_type (one byte) then the peer's id */
    if (slen < 2 || slen - 1 > KV_ID_MAX)
        return 0;
    if (cc->n == cc->cap) {
        cc->cap = cc->cap ? 2 * cc->cap : 16;
        cc->rows = mem_realloc(cc->rows, cc->cap * sizeof(*cc->rows));
    }
    r = &cc->rows[cc->n++];
    memset(r, 0, sizeof(*r));
    r->type = sfx[0];
    memcpy(r->peer, sfx + 1, slen - 1);
    r->peer[slen - 1] = '\0';
    conv_decode(val, vlen, &r->c);
    return 0;
}

/* Newest first, as CONV_LIST answers. */
static int conv_cmp(const void *a, const void *b)
{
    const conv_row_t *x = a, *y = b;
    if (x->v.last_id != y->v.last_id)
        return x->v.last_id > y->v.last_id ? -1 : 1;
    return strcmp(x->peer, y->peer);
}

static int conv_extra(dump_t *d, const char *user, conv_row_t *r)
{
    uint8_t key[CONV_UKEY_MAX];
    const uint8_t *v = NULL;
    size_t vlen = 0, klen;
    conv_rec_t pc;
    int rc;

    if (r->type == cim_ConvType_DIRECT && kv_id_valid(r->peer)) {
        klen = conv_ukey(key, d->app, r->peer, cim_ConvType_DIRECT, user);
        rc = kv_rec_get(d->txn, KV_DB_CONVS, key, klen, &v, &vlen);
        if (rc < 0 && rc != RC_ENOTFOUND)
            return rc;
        conv_decode(v, rc == 0 ? vlen : 0, &pc);
        if ((rc = conv_read_cursor(d->txn, d->app, r->peer, cim_ConvType_DIRECT, user, &pc,
                                   &r->peer_read)) < 0)
            return rc;
    }
    if ((rc = conv_view(d->txn, d->app, user, r->type, r->peer, &r->c, &r->v)) < 0)
        return rc;
    return conv_index_count(d->txn, d->app, user, r->type, r->peer, &r->messages);
}

static int cmd_convs(dump_t *d)
{
    const char *user = d->pos[0];
    uint8_t pfx[CONV_UKEY_MAX];
    convsctx_t cc = {.d = d, .user = user};
    uint64_t unread = 0;
    FILE *f = d->out;
    jw_t *w = &d->w;
    char e[16];
    int rc;

    if ((rc = need_user(d, user, NULL)) < 0)
        return rc;
    if ((rc = kv_rec_scan(d->txn, KV_DB_CONVS, pfx, conv_uprefix(pfx, d->app, user), on_conv,
                          &cc)) < 0) {
        fail_rc(d, "cannot read the conversations", rc);
        goto out;
    }
    for (size_t i = 0; i < cc.n; i++) {
        if ((rc = conv_extra(d, user, &cc.rows[i])) < 0) {
            fail_rc(d, "cannot read a conversation", rc);
            goto out;
        }
        unread += cc.rows[i].v.unread;
    }
    if (cc.n > 1)
        qsort(cc.rows, cc.n, sizeof(*cc.rows), conv_cmp);
    if (d->json) {
        jw_open(w, NULL, '{');
        jw_str(w, "app", d->app);
        jw_str(w, "user", user);
        jw_u64(w, "count", cc.n);
        jw_u64(w, "total_unread", unread);
        jw_open(w, "convs", '[');
        for (size_t i = 0; i < cc.n; i++) {
            const conv_row_t *r = &cc.rows[i];
            jw_open(w, NULL, '{');
            jw_str(w, "conv_type", conv_name(e, r->type));
            jw_str(w, "peer", r->peer);
            jw_id_or_null(w, "last_id", r->v.last_id);
            jw_u64(w, "updated_ms", r->v.updated_ms);
            jw_u64(w, "unread", r->v.unread);
            jw_id(w, "read_up_to", r->v.read_up_to);
            if (r->type == cim_ConvType_DIRECT)
                jw_id(w, "peer_read_up_to", r->peer_read);
            else
                jw_null(w, "peer_read_up_to");
            jw_id_or_null(w, "left_id", r->c.left_id);
            jw_u64(w, "messages", r->messages);
            jw_close(w, '}');
        }
        jw_close(w, ']');
        jw_close(w, '}');
        goto out;
    }
    fprintf(f, "%-6s %-20s %20s %7s %20s %20s %8s %s\n", "CONV", "PEER", "LAST", "UNREAD",
            "READ UP TO", "PEER READ UP TO", "MESSAGES", "STATE");
    for (size_t i = 0; i < cc.n; i++) {
        const conv_row_t *r = &cc.rows[i];
        char pr[24];
        snprintf(pr, sizeof(pr), "%llu", (unsigned long long)r->peer_read);
        fprintf(f, "%-6s %-20s %20llu %7u %20llu %20s %8llu %s\n",
                r->type == cim_ConvType_GROUP    ? "group"
                : r->type == cim_ConvType_DIRECT ? "direct"
                                                 : conv_name(e, r->type),
                r->peer, (unsigned long long)r->v.last_id, (unsigned)r->v.unread,
                (unsigned long long)r->v.read_up_to, r->type == cim_ConvType_DIRECT ? pr : "-",
                (unsigned long long)r->messages, r->c.left_id ? "left" : "-");
    }
    fprintf(f, "(%zu conversations, %llu unread)\n", cc.n, (unsigned long long)unread);
out:
    mem_free(cc.rows);
    return rc;
}

/* ---- decode-id ---- */

static int cmd_decode_id(dump_t *d)
{
    uint64_t id, ms;
    uint32_t node, seq;
    char t[32];

    if (parse_u64(d->pos[0], &id) < 0) {
        fail("invalid id '%s' (a decimal number)", d->pos[0]);
        return RC_EINVAL;
    }
    if (d->json) {
        jw_open(&d->w, NULL, '{');
        json_id_fields(&d->w, id);
        jw_close(&d->w, '}');
        return 0;
    }
    snowflake_decode(id, &ms, &node, &seq);
    fmt_time(t, ms);
    fprintf(d->out, "id    %llu\ntime  %s (%llu ms)\nnode  %u\nseq   %u\n", (unsigned long long)id,
            t, (unsigned long long)ms, node, seq);
    return 0;
}

/* ---- command line ------------------------------------------------------------------- */

static const cmd_t cmds[] = {
    {"stats", "", "counts and sizes per database, map use, oldest/newest message, readers", 0, true,
     false, cmd_stats},
    {"apps", "", "the apps, with their user counts (secrets are never shown)", 0, true, false,
     cmd_apps},
    {"users", "[--app A]", "an app's users, with their timeline lengths", 0, true, false,
     cmd_users},
    {"user", "U [--app A]", "one user: devices and their cursors, timeline, conversations", 1, true,
     false, cmd_user},
    {"timeline", "U [--app A] [--after ID] [--limit N]",
     "a page of a user's timeline, messages decoded", 1, true, true, cmd_timeline},
    {"msg", "ID", "one message, decoded: from, to, type, time, body, flags", 1, true, false,
     cmd_msg},
    {"groups", "[--app A]", "an app's groups", 0, true, false, cmd_groups},
    {"group", "G [--app A]", "one group: owner, state and members", 1, true, false, cmd_group},
    {"convs", "U [--app A]", "a user's conversations: unread counts and read cursors", 1, true,
     false, cmd_convs},
    {"decode-id", "ID", "split a message id into time, node and sequence", 1, false, false,
     cmd_decode_id},
};
#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static const cmd_t *find_cmd(const char *name)
{
    for (size_t i = 0; i < NCMDS; i++)
        if (strcmp(cmds[i].name, name) == 0)
            return &cmds[i];
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: cimdump [--data DIR] [--app A] [--json] COMMAND [ARGS]\n"
               "       cimdump DIR COMMAND [ARGS]\n\n"
               "Inspect a cim data directory (default '" DEFAULT_DATA "') read-only; safe "
               "while cimd runs.\n\ncommands:\n");
    for (size_t i = 0; i < NCMDS; i++) {
        char syn[64];
        if (snprintf(syn, sizeof(syn), "%s %s", cmds[i].name, cmds[i].args) >= (int)sizeof(syn))
            syn[sizeof(syn) - 1] = '\0';
        fprintf(f, "  %-46s %s\n", syn, cmds[i].help);
    }
    fprintf(f,
            "\noptions:\n"
            "  --data DIR    the data directory (default '" DEFAULT_DATA "')\n"
            "  --app A       the app of users and groups (default \"" DEFAULT_APP "\")\n"
            "  --json        print one JSON document (fields: docs/CIMDUMP.md)\n"
            "  --after ID    timeline: entries after this message id (default 0)\n"
            "  --limit N     timeline: at most N entries (default %d, at most %d)\n"
            "  --help        this text\n",
            TL_LIMIT_DEFAULT, TL_LIMIT_MAX);
}

/* Check DIR before LMDB sees it: a read-only open of a directory without data.mdb would
 * still create lock.mdb there. A directory without identity.key is refused too, as by
 * cimctl (datadir.h: that is not a cim data directory). @return 0, or RC_ENOTFOUND /
 * RC_ETOOBIG (reported). */
static int check_dir(const char *dir)
{
    char why[256];
    int rc = datadir_check(dir, why, sizeof(why));

    if (rc == RC_ENOTFOUND)
        fail("no cim data in %s: %s", dir, why);
    else if (rc < 0)
        fail("data directory path too long");
    return rc;
}

static int parse_args(dump_t *d, int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},
        {"app", required_argument, NULL, 'a'},
        {"json", no_argument, NULL, 'j'},
        {"after", required_argument, NULL, 'A'},
        {"limit", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool data_opt = false, after = false;
    uint64_t v;
    int opt, npos;
    char **pos;

    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            return 1;
        case 'd':
            d->data = optarg;
            data_opt = true;
            break;
        case 'a':
            d->app = optarg;
            break;
        case 'j':
            d->json = true;
            break;
        case 'A':
            if (parse_u64(optarg, &d->after) < 0) {
                fail("invalid --after '%s' (a message id)", optarg);
                return RC_EINVAL;
            }
            after = true;
            break;
        case 'l':
            if (parse_u64(optarg, &v) < 0 || v == 0 || v > TL_LIMIT_MAX) {
                fail("invalid --limit '%s' (1..%d)", optarg, TL_LIMIT_MAX);
                return RC_EINVAL;
            }
            d->limit = (unsigned)v;
            break;
        case ':':
            fail("%s needs a value", argv[optind - 1]);
            return RC_EINVAL;
        default:
            fail("unknown option '%s' (see 'cimdump --help')", argv[optind - 1]);
            return RC_EINVAL;
        }
    }
    pos = argv + optind;
    npos = argc - optind;
    /* DESIGN.md's form: cimdump DIR COMMAND ... */
    if (npos >= 2 && find_cmd(pos[0]) == NULL && find_cmd(pos[1]) != NULL) {
        if (data_opt) {
            fail("the data directory is given twice ('%s' and --data)", pos[0]);
            return RC_EINVAL;
        }
        d->data = pos[0];
        pos++;
        npos--;
    }
    if (npos == 0) {
        fail("no command (see 'cimdump --help')");
        return RC_EINVAL;
    }
    if ((d->cmd = find_cmd(pos[0])) == NULL) {
        fail("unknown command '%s' (see 'cimdump --help')", pos[0]);
        return RC_EINVAL;
    }
    if (npos - 1 != d->cmd->npos) {
        fail("%s: expected %s%s (see 'cimdump --help')", d->cmd->name,
             d->cmd->npos ? d->cmd->args : "no arguments",
             npos - 1 > d->cmd->npos ? ", got more" : "");
        return RC_EINVAL;
    }
    if (!d->cmd->page && (after || d->limit)) {
        fail("%s: --after and --limit apply to 'timeline' only", d->cmd->name);
        return RC_EINVAL;
    }
    d->pos = pos + 1;
    if (d->app == NULL || d->app[0] == '\0')
        d->app = DEFAULT_APP; /* PROTOCOL.md §6: an empty app is "default" */
    if (!kv_id_valid(d->app)) {
        fail("invalid app name '%s' (1..%d characters of A-Z a-z 0-9 . _ @ -)", d->app, KV_ID_MAX);
        return RC_EINVAL;
    }
    return 0;
}

int main(int argc, char **argv)
{
    dump_t d = {.data = DEFAULT_DATA, .logfd = -1};
    char *buf = NULL;
    size_t len = 0;
    int rc;

    /* kv logs its findings (a foreign environment, a missing database) before it returns
     * RC_ESTORE; keep them out of the output and quote the last one in the error line. */
    d.logfd = memfd_create("cimdump-log", MFD_CLOEXEC);
    if (d.logfd >= 0) {
        log_set_fd(d.logfd);
        log_set_level(LOG_LVL_WARN);
    } else {
        log_set_level(-1); /* no memfd: silent rather than more than one line */
    }

    rc = parse_args(&d, argc, argv);
    if (rc == 1) {
        usage(stdout);
        return 0;
    }
    if (rc < 0)
        return EXIT_USAGE;

    if (d.cmd->data) {
        if ((rc = check_dir(d.data)) < 0)
            goto out;
        if ((rc = kv_open(d.data, KV_RDONLY, &d.kv)) < 0) {
            char detail[512];
            last_log(&d, detail, sizeof(detail));
            if (rc == RC_ESTORE)
                fail("no cim data in %s: %s", d.data, detail[0] ? detail : rc_str(rc));
            else
                fail("cannot open %s: %s", d.data, rc_str(rc));
            goto out;
        }
        if ((rc = kv_begin(d.kv, KV_READ, &d.txn)) < 0) {
            fail_rc(&d, "cannot read the data", rc);
            goto out;
        }
    }
    if ((d.out = open_memstream(&buf, &len)) == NULL) {
        rc = -errno;
        fail("cannot buffer the output: %s", strerror(errno));
        goto out;
    }
    d.w.f = d.out;
    rc = d.cmd->run(&d);
    /* The snapshot is read: end the transaction before anything is written out. */
    kv_abort(d.txn);
    d.txn = NULL;
    if (d.json)
        fputc('\n', d.out);
    if (fclose(d.out) != 0) {
        d.out = NULL;
        rc = -ENOMEM;
        fail("cannot buffer the output: %s", strerror(errno));
        goto out;
    }
    d.out = NULL;
    if (rc == 0 && (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0)) {
        rc = -EIO;
        fail("cannot write the result: %s", strerror(errno));
    }
out:
    kv_abort(d.txn);
    kv_close(d.kv);
    free(buf); /* open_memstream's buffer comes from malloc */
    if (d.logfd >= 0)
        close(d.logfd);
    return rc < 0 ? EXIT_FAIL : 0;
}
