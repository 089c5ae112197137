/* cim: the command-line client, on libcim's blocking API.
 *
 *   cim [OPTIONS] COMMAND [ARGS]      one command, then exit (0 on success)
 *   cim [OPTIONS] shell               an interactive prompt running the same commands
 *
 * Every command is one row of `commands` below: its name, handler, argument synopsis and
 * one line of help. The one-shot command line and the shell both dispatch through that
 * table, so a new command (send, sync, history, group ...) is a handler and a row. A
 * command with subcommands (group create ..., contact add ...) points its row at a table
 * of its own (`sub`); cmd_sub dispatches on the second word. A handler gets argv with
 * argv[0] = its name (a subcommand: its own name, e.g. "create") and may parse options
 * with getopt_long (call cmd_getopt_reset() first); it reports failures itself with
 * fail() and returns EXIT_OK, EXIT_FAIL or EXIT_USAGE. A request the server refuses is
 * reported as "cim: <what> refused: CODE: reason" and exits 1.
 *
 * Pushes (PUSH, EVENT, BYE) are printed as they arrive in the shell: during a command, and
 * while the shell waits for input (poll on stdin and the connection). The shell also sends
 * the heartbeat PING when the connection has been quiet for heartbeat_s. In one-shot mode
 * stdout carries only the command's own output (scripts parse it): pushes are dropped, or
 * shown on stderr with -v; `listen` is the command that prints them.
 *
 * Messages are printed one per line, the same way everywhere (sync, timeline, listen, the
 * shell's pushes):
 *   <msg_id> <time ISO 8601> <from> -> <to> [<type>] <body>
 * with <to> a user id, or #<group id> for a group; the body as text when it is printable
 * UTF-8 (\ and newline escaped as \\ and \n), else <N bytes: HEX> (the first 32 bytes).
 * Pushes that are not ordinary messages print as tagged lines (listen, the shell):
 *   [read] <user> read <peer or #group> up to <msg_id>
 *   [presence] <user> online|offline
 *   [typing] <from> -> <to>          (a transient CUSTOM message: the typing convention)
 *   [recall] <msg_id> by <user>      (a RECALL message) */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <pb_decode.h>

#include "client/cim.h"
#include "core/chan.h"
#include "core/frame.h"
#include "core/log.h"
#include "core/rc.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

#define CMD_ONLINE     0x1 /* needs a logged-in connection */
#define CMD_NOT_SHELL  0x2 /* meaningless inside the shell */
#define CMD_SHELL_ONLY 0x4 /* meaningless on the command line */
#define CMD_PUSHES     0x8 /* reads the pushes itself: leave them queued for it */

#define LINE_MAX_LEN 4096
#define ARGV_MAX     64

typedef struct cli {
    const char *host;
    int port;
    bool has_key;
    bool tofu;
    uint8_t key[CHAN_KEY];
    unsigned timeout_ms;
    const char *app;
    const char *user;
    const char *token;
    char device[65];
    cim_DeviceKind kind;
    bool verbose;

    cimc_t *c; /* the connection once online */
    cim_LoginRsp session;
    uint64_t acked;          /* this device's delivery cursor as far as we moved or saw it */
    uint64_t dup_lo, dup_hi; /* msg_ids the last sync printed: pushes among them repeat it */
    bool in_shell;
    bool tty;  /* stdin is a terminal: show a prompt */
    bool quit; /* the shell should end */
    const struct cmd *parent; /* while a subcommand runs: its command (group, contact) */
} cli_t;

typedef struct cmd {
    const char *name;
    int (*run)(cli_t *cli, int argc, char **argv);
    const char *args;       /* synopsis after the name */
    const char *help;       /* one line */
    unsigned flags;         /* CMD_* */
    const struct cmd *sub;  /* subcommands (run is cmd_sub), or NULL */
} cmd_t;

static const cmd_t commands[];

/* ---- output helpers ------------------------------------------------------------------- */

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line on stderr, prefixed "cim: ". */
static void fail(const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fputs("cim: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static const char *kind_name(cim_DeviceKind k)
{
    switch (k) {
    case cim_DeviceKind_MOBILE:
        return "mobile";
    case cim_DeviceKind_DESKTOP:
        return "desktop";
    case cim_DeviceKind_WEB:
        return "web";
    case cim_DeviceKind_BOT:
        return "bot";
    default:
        return "unspecified";
    }
}

static int kind_parse(const char *s, cim_DeviceKind *out)
{
    static const cim_DeviceKind kinds[] = {cim_DeviceKind_MOBILE, cim_DeviceKind_DESKTOP,
                                           cim_DeviceKind_WEB, cim_DeviceKind_BOT};

    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(s, kind_name(kinds[i])) == 0) {
            *out = kinds[i];
            return 0;
        }
    return -1;
}

static const char *conv_name(cim_ConvType t)
{
    return t == cim_ConvType_DIRECT ? "direct" : t == cim_ConvType_GROUP ? "group" : "?";
}

static const char *msg_type_name(cim_MsgType t)
{
    static const char *const names[] = {"?",    "text",     "image",  "audio",  "video",
                                        "file", "location", "custom", "system", "recall"};

    return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

/* "2026-11-22T01:02:32.364Z" */
static void fmt_time_ms(uint64_t ms, char *out, size_t n)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    char tmp[32];

    if (gmtime_r(&s, &tm) == NULL || strftime(tmp, sizeof(tmp), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        snprintf(out, n, "%" PRIu64 " ms", ms);
        return;
    }
    snprintf(out, n, "%s.%03uZ", tmp, (unsigned)(ms % 1000));
}

/* Whether @p b is text worth printing as is: valid UTF-8 without control characters
 * other than tab and newline. */
static bool printable(const uint8_t *b, size_t n)
{
    size_t i = 0, k;

    while (i < n) {
        uint8_t ch = b[i];
        if (ch < 0x80) {
            if ((ch < 0x20 && ch != '\t' && ch != '\n') || ch == 0x7f)
                return false;
            i++;
            continue;
        }
        k = (ch & 0xe0) == 0xc0 ? 1 : (ch & 0xf0) == 0xe0 ? 2 : (ch & 0xf8) == 0xf0 ? 3 : 0;
        if (k == 0 || k >= n - i) /* a lead byte needs k more bytes after it */
            return false;
        for (size_t j = 1; j <= k; j++)
            if ((b[i + j] & 0xc0) != 0x80)
                return false;
        i += k + 1;
    }
    return true;
}

static const char *group_event_name(cim_GroupEventKind k)
{
    static const char *const names[] = {"event", "created", "joined", "added",
                                        "left",  "kicked",  "dismissed"};

    return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "event";
}

#define HEX_SHOWN 32 /* bytes of a binary body shown in hex */

/* "<N bytes: 0001ff...>" */
static void print_hex_body(FILE *f, const uint8_t *b, size_t n)
{
    if (n == 0) {
        fputs("<empty>", f);
        return;
    }
    fprintf(f, "<%zu bytes: ", n);
    for (size_t i = 0; i < n && i < HEX_SHOWN; i++)
        fprintf(f, "%02x", b[i]);
    fputs(n > HEX_SHOWN ? "...>" : ">", f);
}

/* Text on one line: backslash and newline escaped (\\, \n). With @p max > 0, at most
 * about @p max bytes, cut at a character boundary and followed by "...". */
static void print_text_body(FILE *f, const uint8_t *b, size_t n, size_t max)
{
    bool cut = false;

    if (max > 0 && n > max) {
        n = max;
        while (n > 0 && (b[n] & 0xc0) == 0x80) /* not inside a UTF-8 sequence */
            n--;
        cut = true;
    }
    for (size_t i = 0; i < n; i++) {
        if (b[i] == '\\')
            fputs("\\\\", f);
        else if (b[i] == '\n')
            fputs("\\n", f);
        else
            fputc(b[i], f);
    }
    if (cut)
        fputs("...", f);
}

/* A SYSTEM message's GroupEvent: "<group 42 created by alice: bob carol>". */
static bool print_group_event(FILE *f, const cim_Message *m, const uint8_t *b, size_t n)
{
    cim_GroupEvent *ev = calloc(1, sizeof(*ev)); /* 65 KB of user ids: not on the stack */

    if (ev == NULL || cimc_decode(cim_GroupEvent_fields, b, n, ev) < 0) {
        free(ev);
        return false;
    }
    fprintf(f, "<group %s %s by %s", ev->has_group ? ev->group.group_id : m->to,
            group_event_name(ev->kind), ev->actor);
    for (pb_size_t i = 0; i < ev->users_count; i++)
        fprintf(f, "%s%s", i == 0 ? ": " : " ", ev->users[i]);
    fputc('>', f);
    free(ev);
    return true;
}

/* A RECALL message's RecallEvent: "<recall of 123 by alice>". */
static bool print_recall_event(FILE *f, const uint8_t *b, size_t n)
{
    cim_RecallEvent ev = cim_RecallEvent_init_zero;

    if (cimc_decode(cim_RecallEvent_fields, b, n, &ev) < 0)
        return false;
    fprintf(f, "<recall of %" PRIu64 " by %s>", ev.msg_id, ev.by);
    return true;
}

/* A message's body as the one-line formats show it (@p max: as print_text_body). */
static void print_body(FILE *f, const cim_Message *m, const uint8_t *body, size_t len, size_t max)
{
    if (m->flags & 1u)
        fputs("<recalled>", f);
    else if (m->msg_type == cim_MsgType_SYSTEM && print_group_event(f, m, body, len))
        ;
    else if (m->msg_type == cim_MsgType_RECALL && print_recall_event(f, body, len))
        ;
    else if (len > 0 && m->msg_type != cim_MsgType_SYSTEM && m->msg_type != cim_MsgType_RECALL &&
             printable(body, len))
        print_text_body(f, body, len, max);
    else
        print_hex_body(f, body, len);
}

/* One message, one line (the format in the comment at the top). */
static void print_msg(FILE *f, const cim_Message *m, const uint8_t *body, size_t len)
{
    char when[40];

    fmt_time_ms(m->time_ms, when, sizeof(when));
    fprintf(f, "%" PRIu64 " %s %s -> %s%s [%s] ", m->msg_id, when, m->from,
            m->conv_type == cim_ConvType_GROUP ? "#" : "", m->to, msg_type_name(m->msg_type));
    print_body(f, m, body, len, 0);
    fputc('\n', f);
}

/* A transient CUSTOM message (msg_id 0: PROTOCOL-NOTES 11): the typing convention. */
static bool is_typing(const cim_Message *m)
{
    return m->msg_id == 0 && m->msg_type == cim_MsgType_CUSTOM;
}

/* A pushed message: typing indicators and recalls as tagged lines, the rest as print_msg. */
static void print_pushed_msg(FILE *f, const cim_Message *m, const uint8_t *body, size_t len)
{
    cim_RecallEvent ev = cim_RecallEvent_init_zero;

    if (is_typing(m)) {
        fprintf(f, "[typing] %s -> %s%s", m->from, m->conv_type == cim_ConvType_GROUP ? "#" : "",
                m->to);
        if (len > 0 && !(len == 6 && memcmp(body, "typing", 6) == 0)) {
            fputs(" (", f); /* some other signal: show what it says */
            if (printable(body, len))
                print_text_body(f, body, len, 64);
            else
                print_hex_body(f, body, len);
            fputc(')', f);
        }
        fputc('\n', f);
    } else if (m->msg_type == cim_MsgType_RECALL &&
               cimc_decode(cim_RecallEvent_fields, body, len, &ev) == 0) {
        fprintf(f, "[recall] %" PRIu64 " by %s\n", ev.msg_id, ev.by);
    } else {
        print_msg(f, m, body, len);
    }
}

/* An EVENT, one line. A READ names the conversation from the reader's side: "alice read
 * bob" whether this is alice's other device (peer bob) or bob's (peer alice). */
static void print_event(const cli_t *cli, FILE *f, const cim_Event *e)
{
    const char *conv = e->peer;

    if (e->kind == cim_EventKind_READ) {
        if (e->conv_type == cim_ConvType_DIRECT && strcmp(e->peer, e->user) == 0 &&
            cli->user != NULL && strcmp(e->user, cli->user) != 0)
            conv = cli->user; /* the peer's event: the conversation with me */
        fprintf(f, "[read] %s read %s%s up to %" PRIu64 "\n", e->user,
                e->conv_type == cim_ConvType_GROUP ? "#" : "", conv, e->up_to_msg_id);
    } else if (e->kind == cim_EventKind_PRESENCE) {
        fprintf(f, "[presence] %s %s\n", e->user, e->online ? "online" : "offline");
    } else {
        fprintf(f, "[event %d] %s %s\n", (int)e->kind, e->user, e->peer);
    }
}

static void print_push(const cli_t *cli, FILE *f, const cimc_push_t *p)
{
    if (f == stdout && cli->tty && cli->in_shell)
        fputs("\r\033[K", stdout); /* over the prompt */
    switch (p->type) {
    case FT_PUSH:
        print_pushed_msg(f, &p->u.msg, p->body_data, p->body_len);
        break;
    case FT_EVENT:
        print_event(cli, f, &p->u.event);
        break;
    case FT_BYE:
        fprintf(f, "[bye] %s: %s\n", cimc_code_str(p->u.bye.code), p->u.bye.reason);
        break;
    default:
        break;
    }
    fflush(f);
}

/* Take every push queued so far: the shell prints them, but for messages the last sync
 * printed already (their push may come just after the page that had them); one-shot mode keeps stdout for the command's output and shows them on
 * stderr with -v only. */
static void drain_pushes(cli_t *cli)
{
    cimc_push_t p;

    if (cli->c == NULL)
        return;
    while (cimc_next_push(cli->c, 0, &p) == 0) {
        bool dup = p.type == FT_PUSH && p.u.msg.msg_id != 0 && p.u.msg.msg_id >= cli->dup_lo &&
                   p.u.msg.msg_id <= cli->dup_hi;
        if (cli->in_shell && !dup)
            print_push(cli, stdout, &p);
        else if (!cli->in_shell && cli->verbose)
            print_push(cli, stderr, &p);
        cimc_push_free(&p);
    }
}

/* Report a failed request on the connection, naming the BYE when the server said one. */
static void fail_rc(const cli_t *cli, const char *what, int rc)
{
    const cim_Bye *bye = cimc_bye(cli->c);

    if (rc == RC_ECLOSED && bye != NULL)
        fail("%s: server closed the connection: %s: %s", what, cimc_code_str(bye->code),
             bye->reason);
    else if (rc == RC_ECLOSED)
        fail("%s: server closed the connection", what);
    else
        fail("%s: %s:%d: %s", what, cli->host, cli->port, rc_str(rc));
}

/* ---- connecting ----------------------------------------------------------------------- */

static void default_device(char *out, size_t n)
{
    char host[256] = "";
    size_t len;

    if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "localhost");
    snprintf(out, n, "cli-%.60s", host); /* a device id is at most 64 bytes */
    len = strlen(out);
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)out[i]) && strchr("._@:-", out[i]) == NULL)
            out[i] = '-';
}

static int connect_error(const cli_t *cli, int rc, const uint8_t *seen, bool seen_valid)
{
    char hex[2 * CHAN_KEY + 1];

    switch (rc) {
    case RC_EKEY:
        if (seen_valid) {
            chan_hex(seen, hex);
            fail("server key does not match the pinned key (got %s)", hex);
        } else {
            fail("server key does not match the pinned key");
        }
        break;
    case RC_ENOTFOUND:
        fail("cannot connect to %s:%d: host not found", cli->host, cli->port);
        break;
    case RC_ETIMEDOUT:
        fail("cannot connect to %s:%d: timed out", cli->host, cli->port);
        break;
    case RC_ECLOSED:
        fail("%s:%d closed the connection during the handshake", cli->host, cli->port);
        break;
    case RC_ECRYPTO:
        fail("handshake with %s:%d failed: bad server signature or key", cli->host, cli->port);
        break;
    case RC_EPROTO:
        fail("handshake with %s:%d failed: protocol error", cli->host, cli->port);
        break;
    default:
        fail("cannot connect to %s:%d: %s", cli->host, cli->port, rc_str(rc));
        break;
    }
    return EXIT_FAIL;
}

/* Connect and log in, once. */
static int go_online(cli_t *cli)
{
    cimc_opts_t o;
    cim_LoginReq req = cim_LoginReq_init_zero;
    uint8_t seen[CHAN_KEY];
    char hex[2 * CHAN_KEY + 1];
    cimc_t *c = NULL;
    int rc;

    if (cli->c != NULL)
        return EXIT_OK;
    memset(&o, 0, sizeof(o));
    memset(seen, 0, sizeof(seen));
    o.host = cli->host;
    o.port = cli->port;
    o.pinned_key = cli->has_key ? cli->key : NULL;
    o.trust_on_first_use = cli->tofu;
    o.timeout_ms = cli->timeout_ms;
    o.key_seen = seen;
    if ((rc = cimc_connect(&o, &c)) < 0)
        return connect_error(cli, rc, seen, rc == RC_EKEY);
    if (cli->tofu) {
        chan_hex(cimc_server_key(c), hex);
        fail("warning: --tofu: trusting server key %s unverified; pin it with --key %s", hex, hex);
    }

    snprintf(req.app, sizeof(req.app), "%s", cli->app);
    snprintf(req.user, sizeof(req.user), "%s", cli->user);
    snprintf(req.token, sizeof(req.token), "%s", cli->token);
    snprintf(req.device_id, sizeof(req.device_id), "%s", cli->device);
    req.device_kind = cli->kind;
    snprintf(req.client_version, sizeof(req.client_version), "cim-cli/1");
    cli->c = c;
    rc = cimc_login(c, &req, &cli->session);
    memset(&req, 0, sizeof(req)); /* the token */
    if (rc < 0) {
        fail_rc(cli, "login", rc);
        return EXIT_FAIL;
    }
    if (cli->session.code != cim_Code_OK) {
        fail("login refused: %s: %s", cimc_code_str(cli->session.code), cli->session.reason);
        return EXIT_FAIL;
    }
    cli->acked = cli->session.acked_msg_id;
    return EXIT_OK;
}

/* ---- commands ------------------------------------------------------------------------- */

/* Reset getopt for a handler's own options (argv[0] is the command name). */
static void cmd_getopt_reset(void)
{
    optind = 0; /* GNU: 0 reinitialises, also forgetting a previous scan's state */
    opterr = 1;
}

/* A handler that takes no arguments. */
static int no_args(const cmd_t *cmd, int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        fail("%s takes no arguments (usage: %s%s%s)", cmd->name, cmd->name, cmd->args[0] ? " " : "",
             cmd->args);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

static const cmd_t *find_cmd(const char *name)
{
    for (const cmd_t *c = commands; c->name != NULL; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    if (strcmp(name, "exit") == 0)
        return find_cmd("quit");
    return NULL;
}

static int cmd_session(cli_t *cli, int argc, char **argv)
{
    const cim_LoginRsp *s = &cli->session;
    char hex[2 * CHAN_KEY + 1], when[40];
    int rc;

    if ((rc = no_args(find_cmd(argv[0]), argc, argv)) != EXIT_OK)
        return rc;
    chan_hex(cimc_server_key(cli->c), hex);
    fmt_time_ms(s->server_time_ms, when, sizeof(when));
    printf("user:         %s\n", cli->user);
    printf("app:          %s\n", cli->app[0] ? cli->app : "default");
    printf("device:       %s (%s)\n", cli->device, kind_name(cli->kind));
    printf("server:       %s:%d\n", cli->host, cli->port);
    printf("server key:   %s\n", hex);
    printf("server time:  %s\n", when);
    printf("heartbeat:    %" PRIu32 " s\n", s->heartbeat_s);
    printf("max body:     %" PRIu32 " bytes\n", s->max_body);
    printf("latest msg:   %" PRIu64 "\n", s->latest_msg_id);
    printf("acked msg:    %" PRIu64 "\n", s->acked_msg_id);
    return EXIT_OK;
}

static int cmd_ping(cli_t *cli, int argc, char **argv)
{
    uint64_t rtt;
    int rc;

    if ((rc = no_args(find_cmd(argv[0]), argc, argv)) != EXIT_OK)
        return rc;
    if ((rc = cimc_ping(cli->c, &rtt)) < 0) {
        fail_rc(cli, "ping", rc);
        return EXIT_FAIL;
    }
    printf("pong from %s:%d: rtt %.3f ms\n", cli->host, cli->port, (double)rtt / 1000.0);
    return EXIT_OK;
}

/* "  name ARGS   help", the help on a line of its own when the synopsis is long; a
 * command with subcommands as one such line per subcommand ("group create NAME ..."). */
static void help_line(FILE *f, const cmd_t *c)
{
    char syn[200];

    if (c->sub != NULL) {
        for (const cmd_t *s = c->sub; s->name != NULL; s++) {
            snprintf(syn, sizeof(syn), "%s %s%s%s", c->name, s->name, s->args[0] ? " " : "",
                     s->args);
            if (strlen(syn) <= 30)
                fprintf(f, "  %-30s %s\n", syn, s->help);
            else
                fprintf(f, "  %s\n  %-30s %s\n", syn, "", s->help);
        }
        return;
    }
    snprintf(syn, sizeof(syn), "%s%s%s", c->name, c->args[0] ? " " : "", c->args);
    if (strlen(syn) <= 30)
        fprintf(f, "  %-30s %s\n", syn, c->help);
    else
        fprintf(f, "  %s\n  %-30s %s\n", syn, "", c->help);
}

static int cmd_help(cli_t *cli, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    for (const cmd_t *c = commands; c->name != NULL; c++) {
        if (cli->in_shell ? (c->flags & CMD_NOT_SHELL) : (c->flags & CMD_SHELL_ONLY))
            continue;
        help_line(stdout, c);
    }
    return EXIT_OK;
}

static int cmd_quit(cli_t *cli, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli->quit = true;
    return EXIT_OK;
}

/* ---- messaging: send, sync, timeline, listen ----------------------------------------- */

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* An informational line on stderr, prefixed "cim: " (stdout stays the command's output). */
static void note(const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fputs("cim: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int cmd_usage(const cmd_t *cmd)
{
    fail("usage: %s%s%s", cmd->name, cmd->args[0] ? " " : "", cmd->args);
    return EXIT_USAGE;
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    unsigned long long v;
    char *end;

    if (s[0] < '0' || s[0] > '9')
        return -1; /* strtoull would take "-1" */
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/* @p s (the value of @p name) as a number in [min, max]. @return 0, or -1 after printing
 * "<name>: expected <expected>, got '<s>'". */
static int arg_u64(const char *name, const char *s, uint64_t min, uint64_t max,
                   const char *expected, uint64_t *out)
{
    if (parse_u64(s, min, max, out) == 0)
        return 0;
    fail("%s: expected %s, got '%s'", name, expected, s);
    return -1;
}

/* --limit N: 1..@p max messages per page. @return 0, or -1 (reported). */
static int arg_limit(const char *s, uint32_t max, uint32_t *limit)
{
    uint64_t v;

    if (parse_u64(s, 1, max, &v) < 0) {
        fail("--limit: expected 1..%" PRIu32 " messages per page, got '%s'", max, s);
        return -1;
    }
    *limit = (uint32_t)v;
    return 0;
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int msg_type_parse(const char *s, cim_MsgType *out)
{
    for (int t = cim_MsgType_TEXT; t <= cim_MsgType_CUSTOM; t++)
        if (strcmp(s, msg_type_name((cim_MsgType)t)) == 0) {
            *out = (cim_MsgType)t;
            return 0;
        }
    return -1;
}

/* A fresh client_msg_id: the time and 64 random bits, unique per sender in practice. */
static void new_client_msg_id(char *out, size_t n)
{
    struct timespec ts;
    uint64_t r = 0, ms;

    clock_gettime(CLOCK_REALTIME, &ts);
    ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
        r = ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)clock();
    snprintf(out, n, "cli-%" PRIx64 "-%016" PRIx64, ms, r);
}

/* All of stdin, at most @p cap bytes. @return 0, or -1 (reported). */
static int read_stdin(size_t cap, uint8_t **out, size_t *outlen)
{
    size_t have = 0, size = 4096;
    uint8_t *buf = malloc(size), *nb;
    ssize_t r;

    if (buf == NULL) {
        fail("send: out of memory");
        return -1;
    }
    for (;;) {
        if (have == size) {
            if (size > cap) {
                fail("send: the body on stdin is over %zu bytes (the frame limit)", cap);
                free(buf);
                return -1;
            }
            if ((nb = realloc(buf, size * 2)) == NULL) {
                fail("send: out of memory");
                free(buf);
                return -1;
            }
            buf = nb;
            size *= 2;
        }
        r = read(STDIN_FILENO, buf + have, size - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fail("send: stdin: %s", strerror(errno));
            free(buf);
            return -1;
        }
        if (r == 0)
            break;
        have += (size_t)r;
    }
    if (have > cap) {
        fail("send: the body on stdin is over %zu bytes (the frame limit)", cap);
        free(buf);
        return -1;
    }
    *out = buf;
    *outlen = have;
    return 0;
}

/* The words from @p argv joined with single blanks. */
static uint8_t *join_words(int argc, char **argv, size_t *outlen)
{
    size_t len = 0, at = 0;
    uint8_t *buf;

    for (int i = 0; i < argc; i++)
        len += strlen(argv[i]) + (i > 0);
    if ((buf = malloc(len + 1)) == NULL)
        return NULL;
    for (int i = 0; i < argc; i++) {
        size_t n = strlen(argv[i]);
        if (i > 0)
            buf[at++] = ' ';
        memcpy(buf + at, argv[i], n);
        at += n;
    }
    *outlen = len;
    return buf;
}

/* Whether @p s is a group id as the server assigns them: 1..19 decimal digits, no
 * leading zero. */
static bool group_id_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 19 || s[0] == '0')
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* A user id argument: 1..64 bytes (the server judges the characters). */
static bool user_id_ok(const char *s)
{
    size_t n = strlen(s);

    return n > 0 && n <= 64;
}

/* Check a --group / --with argument; report a usage error. */
static bool peer_arg_ok(const char *what, bool group, const char *s)
{
    if (group ? group_id_ok(s) : user_id_ok(s))
        return true;
    if (group)
        fail("%s: '%s' is not a group id (a decimal number)", what, s);
    else
        fail("%s: the user id must be 1..64 bytes", what);
    return false;
}

/* The outcome of a request: the rc of the call, then the code of its answer. */
static int check(cli_t *cli, const char *what, int rc, cim_Code code, const char *reason)
{
    if (rc < 0) {
        fail_rc(cli, what, rc);
        return EXIT_FAIL;
    }
    if (code != cim_Code_OK) {
        fail("%s refused: %s: %s", what, cimc_code_str(code), reason);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* One SEND; prints "sent <msg_id> at <time>" unless @p quiet. */
static int send_one(cli_t *cli, const char *what, cim_SendReq *req, const uint8_t *body,
                    size_t len, bool quiet)
{
    cim_SendRsp rsp = cim_SendRsp_init_zero;
    cimc_bytes_t b;
    char when[40];
    int rc;

    b.data = body;
    b.len = len;
    cimc_bytes_encoder(&req->body, &b);
    rc = cimc_call(cli->c, FT_SEND, cim_SendReq_fields, req, FT_SEND_ACK, cim_SendRsp_fields,
                   &rsp);
    if ((rc = check(cli, what, rc, rsp.code, rsp.reason)) != EXIT_OK)
        return rc;
    if (!quiet) {
        fmt_time_ms(rsp.time_ms, when, sizeof(when));
        printf("sent %" PRIu64 " at %s%s\n", rsp.msg_id, when,
               req->transient ? " (transient)" : "");
        fflush(stdout);
    }
    return EXIT_OK;
}

/* send (--to USER | --group G) [--type T] [--transient] [--id CMID] TEXT... | -
 * (also "send USER TEXT...": without --to or --group the first word names the user). */
static int cmd_send(cli_t *cli, int argc, char **argv)
{
    enum { O_TO = 256, O_GROUP, O_TYPE, O_TRANSIENT, O_ID };
    static const struct option opts[] = {
        {"to", required_argument, NULL, O_TO},
        {"group", required_argument, NULL, O_GROUP},
        {"type", required_argument, NULL, O_TYPE},
        {"transient", no_argument, NULL, O_TRANSIENT},
        {"id", required_argument, NULL, O_ID},
        {NULL, 0, NULL, 0},
    };
    const cmd_t *cmd = find_cmd(argv[0]);
    const char *to = NULL, *group = NULL, *cmid = NULL;
    cim_MsgType type = cim_MsgType_TEXT;
    bool transient = false;
    cim_SendReq req = cim_SendReq_init_zero;
    uint8_t *body = NULL;
    size_t len = 0;
    int opt, rc;

    /* "+": options come first; every word after them is text, even "-x". */
    while ((opt = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (opt) {
        case O_TO:
            to = optarg;
            break;
        case O_GROUP:
            group = optarg;
            break;
        case O_TYPE:
            if (msg_type_parse(optarg, &type) < 0) {
                fail("--type: expected text, image, audio, video, file, location or custom, "
                     "got '%s'",
                     optarg);
                return EXIT_USAGE;
            }
            break;
        case O_TRANSIENT:
            transient = true;
            break;
        case O_ID:
            cmid = optarg;
            break;
        default:
            return cmd_usage(cmd);
        }
    }
    if (to != NULL && group != NULL) {
        fail("send: --to and --group exclude each other");
        return EXIT_USAGE;
    }
    if (to == NULL && group == NULL && optind < argc)
        to = argv[optind++];
    if ((to == NULL && group == NULL) || optind >= argc)
        return cmd_usage(cmd);
    if (group != NULL && !peer_arg_ok("send: --group", true, group))
        return EXIT_USAGE;
    if (to != NULL && (to[0] == '\0' || strlen(to) >= sizeof(req.to))) {
        fail("send: the recipient must be a user id of 1..%zu bytes", sizeof(req.to) - 1);
        return EXIT_USAGE;
    }
    if (cmid != NULL && (cmid[0] == '\0' || strlen(cmid) >= sizeof(req.client_msg_id))) {
        fail("send: --id must be 1..%zu bytes", sizeof(req.client_msg_id) - 1);
        return EXIT_USAGE;
    }
    if (optind == argc - 1 && strcmp(argv[optind], "-") == 0) {
        if (cli->in_shell) {
            fail("send: a body from stdin (-) works on the command line only");
            return EXIT_USAGE;
        }
        if (read_stdin(cimc_max_body(cli->c), &body, &len) < 0)
            return EXIT_FAIL;
    } else if ((body = join_words(argc - optind, argv + optind, &len)) == NULL) {
        fail("send: out of memory");
        return EXIT_FAIL;
    }

    snprintf(req.to, sizeof(req.to), "%s", group != NULL ? group : to);
    if (cmid != NULL)
        snprintf(req.client_msg_id, sizeof(req.client_msg_id), "%s", cmid);
    else
        new_client_msg_id(req.client_msg_id, sizeof(req.client_msg_id));
    req.conv_type = group != NULL ? cim_ConvType_GROUP : cim_ConvType_DIRECT;
    req.msg_type = type;
    req.transient = transient;
    rc = send_one(cli, "send", &req, body, len, false);
    free(body);
    return rc;
}

/* What a sync printed. */
typedef struct sync_out {
    size_t n;             /* messages printed */
    uint64_t first, last; /* their ids */
    uint64_t last_msg_id; /* SyncRsp.last_msg_id of the last page */
    uint32_t remain;      /* SyncRsp.remain of the last page */
} sync_out_t;

/* SyncRsp.messages: print each message as it is decoded. */
static bool on_sync_msg(pb_istream_t *s, const pb_field_t *f, void **arg)
{
    sync_out_t *o = *arg;
    cimc_push_t m;

    (void)f;
    if (cimc_message_decode(s, &m) < 0)
        return false;
    print_msg(stdout, &m.u.msg, m.body_data, m.body_len);
    if (o->n++ == 0)
        o->first = m.u.msg.msg_id;
    o->last = m.u.msg.msg_id;
    cimc_push_free(&m);
    return true;
}

/* SYNC from @p after (0: the server's cursor for this device), pages of @p limit (0: the
 * server's default), printing every message; with @p all, ask again while remain > 0. */
static int sync_run(cli_t *cli, const char *what, uint64_t after, uint32_t limit, bool all,
                    sync_out_t *o)
{
    int rc;

    memset(o, 0, sizeof(*o));
    for (;;) {
        cim_SyncReq req = cim_SyncReq_init_zero;
        cim_SyncRsp rsp = cim_SyncRsp_init_zero;

        req.after_msg_id = after;
        req.limit = limit;
        rsp.messages.funcs.decode = on_sync_msg;
        rsp.messages.arg = o;
        rc = cimc_call(cli->c, FT_SYNC, cim_SyncReq_fields, &req, FT_SYNC_ACK, cim_SyncRsp_fields,
                       &rsp);
        fflush(stdout);
        if (o->n > 0) {
            cli->dup_lo = o->first;
            cli->dup_hi = o->last;
        }
        if ((rc = check(cli, what, rc, rsp.code, rsp.reason)) != EXIT_OK)
            return rc;
        o->last_msg_id = rsp.last_msg_id;
        o->remain = rsp.remain;
        if (!all || rsp.remain == 0)
            return EXIT_OK;
        if (rsp.last_msg_id == 0 || (after != 0 && rsp.last_msg_id <= after)) {
            fail("%s: the server said %" PRIu32 " more but returned none", what, rsp.remain);
            return EXIT_FAIL;
        }
        after = rsp.last_msg_id;
    }
}

/* PUSH_ACK up to @p id (cumulative). With @p confirm, a PING follows: its PONG shows the
 * server has taken the ack (it reads frames in order) before we go on or close. */
static int send_ack(cli_t *cli, const char *what, uint64_t id, bool confirm)
{
    cim_DeliveredReq d = cim_DeliveredReq_init_zero;
    int rc;

    if (id <= cli->acked)
        return EXIT_OK;
    d.up_to_msg_id = id;
    if ((rc = cimc_send_msg(cli->c, FT_PUSH_ACK, cim_DeliveredReq_fields, &d)) < 0 ||
        (confirm && (rc = cimc_ping(cli->c, NULL)) < 0)) {
        fail_rc(cli, what, rc);
        return EXIT_FAIL;
    }
    cli->acked = id;
    return EXIT_OK;
}

/* sync [--after ID] [--limit N] [--all|--page] [--ack] */
static int cmd_sync(cli_t *cli, int argc, char **argv)
{
    enum { O_AFTER = 256, O_LIMIT, O_ALL, O_PAGE, O_ACK };
    static const struct option opts[] = {
        {"after", required_argument, NULL, O_AFTER},
        {"limit", required_argument, NULL, O_LIMIT},
        {"all", no_argument, NULL, O_ALL},
        {"page", no_argument, NULL, O_PAGE},
        {"ack", no_argument, NULL, O_ACK},
        {NULL, 0, NULL, 0},
    };
    const cmd_t *cmd = find_cmd(argv[0]);
    bool all = !cli->in_shell, ack = false;
    uint64_t after = 0;
    uint32_t limit = 0;
    sync_out_t o;
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case O_AFTER:
            if (arg_u64("--after", optarg, 0, UINT64_MAX, "a msg_id", &after) < 0)
                return EXIT_USAGE;
            break;
        case O_LIMIT:
            if (arg_limit(optarg, 500, &limit) < 0)
                return EXIT_USAGE;
            break;
        case O_ALL:
            all = true;
            break;
        case O_PAGE:
            all = false;
            break;
        case O_ACK:
            ack = true;
            break;
        default:
            return cmd_usage(cmd);
        }
    }
    if (optind < argc)
        return cmd_usage(cmd);
    /* No --after (or 0): from the cursor, as this client knows it — the server's cursor,
     * but current even when this client moved it a moment ago (the server writes it
     * behind the ack). A cursor of 0 reads from the start either way. */
    if (after == 0)
        after = cli->acked;
    /* An ack says this device holds every message up to it (PROTOCOL.md §6). */
    if (ack && after > cli->acked) {
        fail("sync: --ack with --after %" PRIu64 " would skip the messages after this "
             "device's cursor %" PRIu64,
             after, cli->acked);
        return EXIT_USAGE;
    }
    if ((rc = sync_run(cli, "sync", after, limit, all, &o)) != EXIT_OK)
        return rc;
    if (!all && o.remain > 0)
        note("%" PRIu32 " more after %" PRIu64 ": sync --after %" PRIu64 " (or sync --all)",
             o.remain, o.last_msg_id, o.last_msg_id);
    if (ack && o.last_msg_id > cli->acked) {
        if ((rc = send_ack(cli, "sync", o.last_msg_id, true)) != EXIT_OK)
            return rc;
        if (cli->in_shell)
            printf("acknowledged up to %" PRIu64 "\n", cli->acked);
    }
    return EXIT_OK;
}

/* The whole timeline: after_msg_id 1 (0 would mean the cursor; SnowFlake ids are never
 * that small), every page, no ack. */
static int cmd_timeline(cli_t *cli, int argc, char **argv)
{
    sync_out_t o;
    int rc;

    if ((rc = no_args(find_cmd(argv[0]), argc, argv)) != EXIT_OK)
        return rc;
    return sync_run(cli, "timeline", 1, 0, true, &o);
}

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
    stop_signal = sig;
}

/* Print pushes until @p want messages came (0: no limit), @p timeout_ms passed (< 0: no
 * limit) or a signal. With @p ack, first sync what this device has not acknowledged (an
 * ack covers everything below it, so the backlog must be here first: PROTOCOL.md §6),
 * then acknowledge as messages are printed. */
static int listen_loop(cli_t *cli, uint32_t want, int64_t timeout_ms, bool ack)
{
    int64_t deadline = timeout_ms >= 0 ? mono_ms() + timeout_ms : -1, due, left, wait;
    uint64_t shown = 0, to_ack = 0;
    uint32_t got = 0;
    bool timed_out = false;
    struct pollfd pfd;
    cimc_push_t p;
    sync_out_t o;
    int rc = 0, n;

    if (ack) {
        if ((rc = sync_run(cli, "listen", cli->acked, 0, true, &o)) != EXIT_OK)
            return rc;
        shown = o.last_msg_id; /* everything up to here is printed */
        if ((rc = send_ack(cli, "listen", o.last_msg_id, false)) != EXIT_OK)
            return rc;
    }
    note("listening as %s%s; Ctrl-C to stop", cli->user, ack ? ", acknowledging" : "");
    for (;;) {
        /* Whatever the library holds already, then the socket. */
        while ((want == 0 || got < want) && (rc = cimc_next_push(cli->c, 0, &p)) == 0) {
            if (p.type == FT_PUSH && (p.u.msg.msg_id == 0 || p.u.msg.msg_id > shown)) {
                print_pushed_msg(stdout, &p.u.msg, p.body_data, p.body_len);
                if (!is_typing(&p.u.msg))
                    got++; /* --count counts messages, not typing indicators */
                if (p.u.msg.msg_id != 0)
                    shown = to_ack = p.u.msg.msg_id; /* pushes come in order, no gaps */
            } else if (p.type == FT_EVENT) {
                print_event(cli, stdout, &p.u.event);
            } /* a BYE: the closed connection is reported below */
            cimc_push_free(&p);
        }
        fflush(stdout);
        if (ack && to_ack > cli->acked && send_ack(cli, "listen", to_ack, false) != EXIT_OK)
            return EXIT_FAIL;
        if (want != 0 && got >= want)
            break;
        if (rc != RC_ETIMEDOUT) { /* the connection ended */
            fail_rc(cli, "listen", rc);
            return EXIT_FAIL;
        }
        if (stop_signal)
            break;
        due = cimc_ping_due_ms(cli->c);
        left = deadline >= 0 ? deadline - mono_ms() : -1;
        if (deadline >= 0 && left <= 0) {
            timed_out = true;
            break;
        }
        wait = due < 0 ? left : left < 0 || due < left ? due : left;
        pfd = (struct pollfd){.fd = cimc_fd(cli->c), .events = POLLIN};
        n = poll(&pfd, 1, wait < 0 ? -1 : wait > INT32_MAX ? INT32_MAX : (int)wait);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fail("poll: %s", strerror(errno));
            return EXIT_FAIL;
        }
        if (n == 0) {
            if (cimc_ping_due_ms(cli->c) == 0 && (rc = cimc_ping(cli->c, NULL)) < 0 &&
                cimc_bye(cli->c) == NULL) {
                fail_rc(cli, "heartbeat", rc);
                return EXIT_FAIL;
            }
            continue;
        }
        (void)cimc_poll(cli->c); /* an error shows in cimc_next_push, after what came first */
    }
    /* Make sure the server has the last ack before we close. */
    if (ack && cli->acked > 0 && (rc = cimc_ping(cli->c, NULL)) < 0) {
        fail_rc(cli, "listen", rc);
        return EXIT_FAIL;
    }
    if (timed_out && want != 0) {
        fail("listen: timed out with %" PRIu32 " of %" PRIu32 " messages", got, want);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* listen [--count N] [--timeout S] [--ack] */
static int cmd_listen(cli_t *cli, int argc, char **argv)
{
    enum { O_COUNT = 256, O_TIMEOUT, O_ACK };
    static const struct option opts[] = {
        {"count", required_argument, NULL, O_COUNT},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"ack", no_argument, NULL, O_ACK},
        {NULL, 0, NULL, 0},
    };
    const cmd_t *cmd = find_cmd(argv[0]);
    struct sigaction sa, old_int, old_term;
    int64_t timeout_ms = -1;
    uint32_t want = 0;
    bool ack = false;
    uint64_t v;
    double secs;
    char *end;
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case O_COUNT:
            if (arg_u64("--count", optarg, 1, UINT32_MAX, "a number of messages (1 or more)",
                        &v) < 0)
                return EXIT_USAGE;
            want = (uint32_t)v;
            break;
        case O_TIMEOUT:
            errno = 0;
            secs = strtod(optarg, &end);
            if (errno != 0 || *end != '\0' || end == optarg || !(secs > 0) || secs > 1e7) {
                fail("--timeout: expected seconds (> 0), got '%s'", optarg);
                return EXIT_USAGE;
            }
            timeout_ms = (int64_t)(secs * 1000.0 + 0.5);
            break;
        case O_ACK:
            ack = true;
            break;
        default:
            return cmd_usage(cmd);
        }
    }
    if (optind < argc)
        return cmd_usage(cmd);

    stop_signal = 0;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: poll returns EINTR */
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    rc = listen_loop(cli, want, timeout_ms, ack);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (stop_signal && cli->in_shell && cli->tty)
        putchar('\n');
    return rc;
}

/* ---- groups, conversations, history, read, recall, contacts, blocks ------------------ */

/* The row named @p name: while a subcommand runs, among its command's subcommands. */
static const cmd_t *find_row(const cli_t *cli, const char *name)
{
    if (cli->parent != NULL)
        for (const cmd_t *c = cli->parent->sub; c->name != NULL; c++)
            if (strcmp(c->name, name) == 0)
                return c;
    return find_cmd(name);
}

/* "cim: usage: group create NAME [--open] [MEMBER...]" */
static int usage_of(const cli_t *cli, const char *name)
{
    const cmd_t *c = find_row(cli, name);

    if (c == NULL)
        return EXIT_USAGE;
    fail("usage: %s%s%s%s%s", cli->parent != NULL ? cli->parent->name : "",
         cli->parent != NULL ? " " : "", c->name, c->args[0] ? " " : "", c->args);
    return EXIT_USAGE;
}

/* A request answered with a Result. */
static int call_result(cli_t *cli, const char *what, uint32_t type, const pb_msgdesc_t *fields,
                       void *req)
{
    cim_Result res = cim_Result_init_zero;
    int rc = cimc_call(cli->c, type, fields, req, type + 1, cim_Result_fields, &res);

    return check(cli, what, rc, res.code, res.reason);
}

/* A word as is, or in double quotes (\" \\ \n escaped) when it is empty or has blanks,
 * quotes, backslashes or control characters: the shell's quoting. */
static void print_word(FILE *f, const char *s)
{
    bool plain = s[0] != '\0';

    for (const unsigned char *p = (const unsigned char *)s; *p != '\0' && plain; p++)
        if (*p <= ' ' || *p == '"' || *p == '\\' || *p == 0x7f)
            plain = false;
    if (plain) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p < ' ' || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* "<id> <name> owner=<user> members=<n> open|closed" */
static void print_group(FILE *f, const cim_Group *g)
{
    fprintf(f, "%s ", g->group_id);
    print_word(f, g->name);
    fprintf(f, " owner=%s members=%" PRIu32 " %s\n", g->owner, g->member_count,
            g->open ? "open" : "closed");
}

/* Check the USER... words of a command: at least one, each a possible user id. */
static int users_ok(const cli_t *cli, const char *name, int n, char **users)
{
    if (n < 1)
        return usage_of(cli, name);
    for (int i = 0; i < n; i++)
        if (!user_id_ok(users[i])) {
            fail("%s: user ids are 1..64 bytes, got '%s'", name, users[i]);
            return EXIT_USAGE;
        }
    return EXIT_OK;
}

#define GROUP_USERS_MAX 1000 /* GroupCreateReq.members, GroupUsersReq.users (cim.options) */

/* group create NAME [--open] [MEMBER...]: the new group's id alone on stdout. */
static int cmd_group_create(cli_t *cli, int argc, char **argv)
{
    enum { O_OPEN = 256 };
    static const struct option opts[] = {
        {"open", no_argument, NULL, O_OPEN},
        {NULL, 0, NULL, 0},
    };
    cim_GroupCreateReq *req;
    cim_GroupRsp rsp = cim_GroupRsp_init_zero;
    const char *name;
    bool is_open = false;
    int opt, rc, n;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt != O_OPEN)
            return usage_of(cli, argv[0]);
        is_open = true;
    }
    if (optind >= argc)
        return usage_of(cli, argv[0]);
    name = argv[optind++];
    if (name[0] == '\0' || strlen(name) > 64) {
        fail("group create: the name must be 1..64 bytes");
        return EXIT_USAGE;
    }
    n = argc - optind;
    if (n > GROUP_USERS_MAX) {
        fail("group create: at most %d members at once (add more with group add)",
             GROUP_USERS_MAX);
        return EXIT_USAGE;
    }
    if (n > 0 && (rc = users_ok(cli, "group create", n, argv + optind)) != EXIT_OK)
        return rc;
    if ((req = calloc(1, sizeof(*req))) == NULL) { /* 65 KB of user ids: not on the stack */
        fail("group create: out of memory");
        return EXIT_FAIL;
    }
    snprintf(req->name, sizeof(req->name), "%s", name);
    for (int i = 0; i < n; i++)
        snprintf(req->members[i], sizeof(req->members[i]), "%s", argv[optind + i]);
    req->members_count = (pb_size_t)n;
    req->open = is_open;
    rc = cimc_call(cli->c, FT_GROUP_CREATE, cim_GroupCreateReq_fields, req, FT_GROUP_CREATE_ACK,
                   cim_GroupRsp_fields, &rsp);
    free(req);
    if ((rc = check(cli, "group create", rc, rsp.code, rsp.reason)) != EXIT_OK)
        return rc;
    if (!rsp.has_group || rsp.group.group_id[0] == '\0') {
        fail("group create: the server's answer names no group");
        return EXIT_FAIL;
    }
    printf("%s\n", rsp.group.group_id);
    return EXIT_OK;
}

/* The G of "group <sub> G ...": @return EXIT_OK, or EXIT_USAGE (reported). */
static int group_arg(const cli_t *cli, int argc, char **argv, int min_argc, int max_argc)
{
    if (argc < min_argc || (max_argc > 0 && argc > max_argc) || argv[1][0] == '-')
        return usage_of(cli, argv[0]);
    if (!group_id_ok(argv[1])) {
        fail("group %s: '%s' is not a group id (a decimal number)", argv[0], argv[1]);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* group join G: prints "joined <the group line>". */
static int cmd_group_join(cli_t *cli, int argc, char **argv)
{
    cim_GroupReq req = cim_GroupReq_init_zero;
    cim_GroupRsp rsp = cim_GroupRsp_init_zero;
    int rc;

    if ((rc = group_arg(cli, argc, argv, 2, 2)) != EXIT_OK)
        return rc;
    snprintf(req.group_id, sizeof(req.group_id), "%s", argv[1]);
    rc = cimc_call(cli->c, FT_GROUP_JOIN, cim_GroupReq_fields, &req, FT_GROUP_JOIN_ACK,
                   cim_GroupRsp_fields, &rsp);
    if ((rc = check(cli, "group join", rc, rsp.code, rsp.reason)) != EXIT_OK)
        return rc;
    fputs("joined ", stdout);
    if (rsp.has_group)
        print_group(stdout, &rsp.group);
    else
        printf("%s\n", argv[1]);
    return EXIT_OK;
}

/* group leave G / group dismiss G */
static int group_plain(cli_t *cli, int argc, char **argv, uint32_t type, const char *what,
                       const char *done)
{
    cim_GroupReq req = cim_GroupReq_init_zero;
    int rc;

    if ((rc = group_arg(cli, argc, argv, 2, 2)) != EXIT_OK)
        return rc;
    snprintf(req.group_id, sizeof(req.group_id), "%s", argv[1]);
    if ((rc = call_result(cli, what, type, cim_GroupReq_fields, &req)) != EXIT_OK)
        return rc;
    printf("%s %s\n", done, argv[1]);
    return EXIT_OK;
}

static int cmd_group_leave(cli_t *cli, int argc, char **argv)
{
    return group_plain(cli, argc, argv, FT_GROUP_LEAVE, "group leave", "left");
}

static int cmd_group_dismiss(cli_t *cli, int argc, char **argv)
{
    return group_plain(cli, argc, argv, FT_GROUP_DISMISS, "group dismiss", "dismissed");
}

/* group add G USER... / group kick G USER... */
static int group_users(cli_t *cli, int argc, char **argv, uint32_t type, const char *what,
                       const char *done)
{
    cim_GroupUsersReq *req;
    int rc, n = argc - 2;

    if ((rc = group_arg(cli, argc, argv, 3, 0)) != EXIT_OK ||
        (rc = users_ok(cli, what, n, argv + 2)) != EXIT_OK)
        return rc;
    if (n > GROUP_USERS_MAX) {
        fail("%s: at most %d users at once", what, GROUP_USERS_MAX);
        return EXIT_USAGE;
    }
    if ((req = calloc(1, sizeof(*req))) == NULL) {
        fail("%s: out of memory", what);
        return EXIT_FAIL;
    }
    snprintf(req->group_id, sizeof(req->group_id), "%s", argv[1]);
    for (int i = 0; i < n; i++)
        snprintf(req->users[i], sizeof(req->users[i]), "%s", argv[2 + i]);
    req->users_count = (pb_size_t)n;
    rc = call_result(cli, what, type, cim_GroupUsersReq_fields, req);
    free(req);
    if (rc != EXIT_OK)
        return rc;
    printf("%s %s:", done, argv[1]);
    for (int i = 2; i < argc; i++)
        printf(" %s", argv[i]);
    putchar('\n');
    return EXIT_OK;
}

static int cmd_group_add(cli_t *cli, int argc, char **argv)
{
    return group_users(cli, argc, argv, FT_GROUP_ADD, "group add", "added to");
}

static int cmd_group_kick(cli_t *cli, int argc, char **argv)
{
    return group_users(cli, argc, argv, FT_GROUP_KICK, "group kick", "kicked from");
}

/* User ids streamed from a repeated string field. */
typedef struct names {
    char (*v)[65];
    size_t n, cap;
} names_t;

static bool on_name(pb_istream_t *s, const pb_field_t *f, void **arg)
{
    names_t *nm = *arg;
    size_t len = s->bytes_left;
    char(*nv)[65];

    (void)f;
    if (len == 0 || len > 64)
        return false;
    if (nm->n == nm->cap) {
        size_t cap = nm->cap == 0 ? 64 : nm->cap * 2;
        if ((nv = realloc(nm->v, cap * sizeof(*nv))) == NULL)
            return false;
        nm->v = nv;
        nm->cap = cap;
    }
    if (!pb_read(s, (pb_byte_t *)nm->v[nm->n], len))
        return false;
    nm->v[nm->n][len] = '\0';
    nm->n++;
    return true;
}

/* group members G: one member per line, the owner as "<user> (owner)". */
static int cmd_group_members(cli_t *cli, int argc, char **argv)
{
    cim_GroupReq req = cim_GroupReq_init_zero;
    cim_GroupMembersRsp rsp = cim_GroupMembersRsp_init_zero;
    names_t nm = {NULL, 0, 0};
    int rc;

    if ((rc = group_arg(cli, argc, argv, 2, 2)) != EXIT_OK)
        return rc;
    snprintf(req.group_id, sizeof(req.group_id), "%s", argv[1]);
    rsp.members.funcs.decode = on_name;
    rsp.members.arg = &nm;
    rc = cimc_call(cli->c, FT_GROUP_MEMBERS, cim_GroupReq_fields, &req, FT_GROUP_MEMBERS_ACK,
                   cim_GroupMembersRsp_fields, &rsp);
    /* the owner is known once the whole answer is read (Group comes after the list) */
    if ((rc = check(cli, "group members", rc, rsp.code, rsp.reason)) == EXIT_OK)
        for (size_t i = 0; i < nm.n; i++)
            printf("%s%s\n", nm.v[i],
                   rsp.has_group && strcmp(nm.v[i], rsp.group.owner) == 0 ? " (owner)" : "");
    free(nm.v);
    return rc;
}

static bool on_group(pb_istream_t *s, const pb_field_t *f, void **arg)
{
    cim_Group g = cim_Group_init_zero;

    (void)f;
    (void)arg;
    if (!pb_decode(s, cim_Group_fields, &g))
        return false;
    print_group(stdout, &g);
    return true;
}

/* group list: the groups I am in, one line each (print_group). */
static int cmd_group_list(cli_t *cli, int argc, char **argv)
{
    cim_Req req = cim_Req_init_zero;
    cim_GroupListRsp rsp = cim_GroupListRsp_init_zero;
    int rc;

    if (argc > 1)
        return usage_of(cli, argv[0]);
    rsp.groups.funcs.decode = on_group;
    rc = cimc_call(cli->c, FT_GROUP_LIST, cim_Req_fields, &req, FT_GROUP_LIST_ACK,
                   cim_GroupListRsp_fields, &rsp);
    fflush(stdout);
    return check(cli, "group list", rc, rsp.code, rsp.reason);
}

/* A message body decoded into a buffer of its own (Conversation.last). */
typedef struct body_buf {
    uint8_t *data;
    size_t len;
} body_buf_t;

static bool on_body(pb_istream_t *s, const pb_field_t *f, void **arg)
{
    body_buf_t *b = *arg;
    size_t n = s->bytes_left;
    uint8_t *p = malloc(n > 0 ? n : 1);

    (void)f;
    if (p == NULL || !pb_read(s, p, n)) {
        free(p);
        return false;
    }
    free(b->data);
    b->data = p;
    b->len = n;
    return true;
}

#define SUMMARY_MAX 60 /* bytes of a last message's text shown by convs */

/* "<type> <peer> unread=<n> read=<id> [peer_read=<id>] last: <id> <time> <from> [<type>]
 * <body, cut>" (or "last: -"). */
static void print_conv(FILE *f, const cim_Conversation *cv, const uint8_t *body, size_t len)
{
    char when[40];

    fprintf(f, "%s %s unread=%" PRIu32 " read=%" PRIu64, conv_name(cv->conv_type), cv->peer,
            cv->unread, cv->read_up_to);
    if (cv->conv_type == cim_ConvType_DIRECT)
        fprintf(f, " peer_read=%" PRIu64, cv->peer_read_up_to);
    if (!cv->has_last || cv->last.msg_id == 0) {
        fputs(" last: -\n", f);
        return;
    }
    fmt_time_ms(cv->last.time_ms, when, sizeof(when));
    fprintf(f, " last: %" PRIu64 " %s %s [%s] ", cv->last.msg_id, when, cv->last.from,
            msg_type_name(cv->last.msg_type));
    print_body(f, &cv->last, body, len, SUMMARY_MAX);
    fputc('\n', f);
}

static bool on_conv(pb_istream_t *s, const pb_field_t *f, void **arg)
{
    cim_Conversation cv = cim_Conversation_init_zero;
    body_buf_t b = {NULL, 0};
    bool ok;

    (void)f;
    (void)arg;
    cv.last.body.funcs.decode = on_body; /* kept by pb_decode (callbacks are not reset) */
    cv.last.body.arg = &b;
    if ((ok = pb_decode(s, cim_Conversation_fields, &cv)))
        print_conv(stdout, &cv, b.data, b.len);
    free(b.data);
    return ok;
}

/* convs: newest first, then "total unread: N". */
static int cmd_convs(cli_t *cli, int argc, char **argv)
{
    cim_Req req = cim_Req_init_zero;
    cim_ConvListRsp rsp = cim_ConvListRsp_init_zero;
    int rc;

    if ((rc = no_args(find_cmd(argv[0]), argc, argv)) != EXIT_OK)
        return rc;
    rsp.convs.funcs.decode = on_conv;
    rc = cimc_call(cli->c, FT_CONV_LIST, cim_Req_fields, &req, FT_CONV_LIST_ACK,
                   cim_ConvListRsp_fields, &rsp);
    fflush(stdout);
    if ((rc = check(cli, "convs", rc, rsp.code, rsp.reason)) != EXIT_OK)
        return rc;
    printf("total unread: %" PRIu32 "\n", rsp.total_unread);
    return EXIT_OK;
}

/* --with USER | --group G, shared by history and read: @return EXIT_OK with the
 * conversation in @p type / @p peer, or EXIT_USAGE (reported). */
static int conv_arg(const cli_t *cli, const char *name, const char *with, const char *group,
                    cim_ConvType *type, const char **peer)
{
    if ((with == NULL) == (group == NULL)) {
        fail("%s: give one of --with USER or --group G", name);
        return usage_of(cli, name);
    }
    if (!peer_arg_ok(group != NULL ? "--group" : "--with", group != NULL,
                     group != NULL ? group : with))
        return EXIT_USAGE;
    *type = group != NULL ? cim_ConvType_GROUP : cim_ConvType_DIRECT;
    *peer = group != NULL ? group : with;
    return EXIT_OK;
}

/* Messages collected from HistoryRsp pages. */
typedef struct msgs {
    cimc_push_t *v;
    size_t n, cap;
} msgs_t;

static bool on_hist_msg(pb_istream_t *s, const pb_field_t *f, void **arg)
{
    msgs_t *ms = *arg;
    cimc_push_t *nv;

    (void)f;
    if (ms->n == ms->cap) {
        size_t cap = ms->cap == 0 ? 32 : ms->cap * 2;
        if ((nv = realloc(ms->v, cap * sizeof(*nv))) == NULL)
            return false;
        ms->v = nv;
        ms->cap = cap;
    }
    if (cimc_message_decode(s, &ms->v[ms->n]) < 0)
        return false;
    ms->n++;
    return true;
}

static int by_msg_id(const void *a, const void *b)
{
    uint64_t x = ((const cimc_push_t *)a)->u.msg.msg_id, y = ((const cimc_push_t *)b)->u.msg.msg_id;

    return x < y ? -1 : x > y ? 1 : 0;
}

/* Print @p n messages ascending (a repeated id once). */
static void print_msgs(cimc_push_t *v, size_t n)
{
    qsort(v, n, sizeof(*v), by_msg_id);
    for (size_t i = 0; i < n; i++)
        if (i == 0 || v[i].u.msg.msg_id != v[i - 1].u.msg.msg_id)
            print_msg(stdout, &v[i].u.msg, v[i].body_data, v[i].body_len);
    fflush(stdout);
}

/* history (--with USER | --group G) [--before ID] [--limit N] [--all] */
static int cmd_history(cli_t *cli, int argc, char **argv)
{
    enum { O_WITH = 256, O_GROUP, O_BEFORE, O_LIMIT, O_ALL };
    static const struct option opts[] = {
        {"with", required_argument, NULL, O_WITH},
        {"group", required_argument, NULL, O_GROUP},
        {"before", required_argument, NULL, O_BEFORE},
        {"limit", required_argument, NULL, O_LIMIT},
        {"all", no_argument, NULL, O_ALL},
        {NULL, 0, NULL, 0},
    };
    const char *with = NULL, *group = NULL, *peer = NULL;
    cim_ConvType type = cim_ConvType_DIRECT;
    uint64_t before = 0;
    uint32_t limit = 0;
    bool all = false;
    msgs_t ms = {NULL, 0, 0};
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case O_WITH:
            with = optarg;
            break;
        case O_GROUP:
            group = optarg;
            break;
        case O_BEFORE:
            if (arg_u64("--before", optarg, 0, UINT64_MAX, "a msg_id", &before) < 0)
                return EXIT_USAGE;
            break;
        case O_LIMIT:
            if (arg_limit(optarg, 100, &limit) < 0)
                return EXIT_USAGE;
            break;
        case O_ALL:
            all = true;
            break;
        default:
            return usage_of(cli, argv[0]);
        }
    }
    if (optind < argc)
        return usage_of(cli, argv[0]);
    if ((rc = conv_arg(cli, argv[0], with, group, &type, &peer)) != EXIT_OK)
        return rc;

    for (;;) {
        cim_HistoryReq req = cim_HistoryReq_init_zero;
        cim_HistoryRsp rsp = cim_HistoryRsp_init_zero;
        size_t start = ms.n;
        uint64_t oldest = 0;

        req.conv_type = type;
        snprintf(req.peer, sizeof(req.peer), "%s", peer);
        req.before_msg_id = before;
        req.limit = limit;
        rsp.messages.funcs.decode = on_hist_msg;
        rsp.messages.arg = &ms;
        rc = cimc_call(cli->c, FT_HISTORY, cim_HistoryReq_fields, &req, FT_HISTORY_ACK,
                       cim_HistoryRsp_fields, &rsp);
        if ((rc = check(cli, "history", rc, rsp.code, rsp.reason)) != EXIT_OK)
            goto out;
        for (size_t i = start; i < ms.n; i++)
            if (oldest == 0 || ms.v[i].u.msg.msg_id < oldest)
                oldest = ms.v[i].u.msg.msg_id;
        if (!all) {
            print_msgs(ms.v, ms.n);
            if (rsp.has_more && oldest != 0)
                note("more before %" PRIu64 ": history %s %s --before %" PRIu64 " (or --all)",
                     oldest, group != NULL ? "--group" : "--with", peer, oldest);
            break;
        }
        if (!rsp.has_more)
            break;
        if (oldest == 0 || (before != 0 && oldest >= before)) {
            fail("history: the server said there is more but returned nothing older");
            rc = EXIT_FAIL;
            goto out;
        }
        before = oldest;
    }
    if (all)
        print_msgs(ms.v, ms.n);
    rc = EXIT_OK;
out:
    for (size_t i = 0; i < ms.n; i++)
        cimc_push_free(&ms.v[i]);
    free(ms.v);
    return rc;
}

/* read (--with USER | --group G) [--up-to ID] */
static int cmd_read(cli_t *cli, int argc, char **argv)
{
    enum { O_WITH = 256, O_GROUP, O_UPTO };
    static const struct option opts[] = {
        {"with", required_argument, NULL, O_WITH},
        {"group", required_argument, NULL, O_GROUP},
        {"up-to", required_argument, NULL, O_UPTO},
        {NULL, 0, NULL, 0},
    };
    const char *with = NULL, *group = NULL, *peer = NULL;
    cim_ReadReq req = cim_ReadReq_init_zero;
    cim_ConvType type = cim_ConvType_DIRECT;
    uint64_t up_to = 0;
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case O_WITH:
            with = optarg;
            break;
        case O_GROUP:
            group = optarg;
            break;
        case O_UPTO:
            if (arg_u64("--up-to", optarg, 0, UINT64_MAX, "a msg_id (0: everything)", &up_to) <
                0)
                return EXIT_USAGE;
            break;
        default:
            return usage_of(cli, argv[0]);
        }
    }
    if (optind < argc)
        return usage_of(cli, argv[0]);
    if ((rc = conv_arg(cli, argv[0], with, group, &type, &peer)) != EXIT_OK)
        return rc;
    req.conv_type = type;
    snprintf(req.peer, sizeof(req.peer), "%s", peer);
    req.up_to_msg_id = up_to;
    if ((rc = call_result(cli, "read", FT_READ, cim_ReadReq_fields, &req)) != EXIT_OK)
        return rc;
    if (up_to != 0)
        printf("read %s %s up to %" PRIu64 "\n", conv_name(type), peer, up_to);
    else
        printf("read %s %s up to the latest\n", conv_name(type), peer);
    return EXIT_OK;
}

/* recall MSG_ID */
static int cmd_recall(cli_t *cli, int argc, char **argv)
{
    cim_RecallReq req = cim_RecallReq_init_zero;
    uint64_t id;
    int rc;

    if (argc != 2)
        return usage_of(cli, argv[0]);
    if (arg_u64("recall", argv[1], 1, UINT64_MAX, "a msg_id", &id) < 0)
        return EXIT_USAGE;
    req.msg_id = id;
    if ((rc = call_result(cli, "recall", FT_RECALL, cim_RecallReq_fields, &req)) != EXIT_OK)
        return rc;
    printf("recalled %" PRIu64 "\n", id);
    return EXIT_OK;
}

static bool on_contact(pb_istream_t *s, const pb_field_t *f, void **arg)
{
    cim_Contact c = cim_Contact_init_zero;

    (void)f;
    (void)arg;
    if (!pb_decode(s, cim_Contact_fields, &c))
        return false;
    printf("%s %s%s\n", c.user, c.online ? "online" : "offline", c.blocked ? " blocked" : "");
    return true;
}

/* contacts: "<user> online|offline[ blocked]" per contact. */
static int cmd_contacts(cli_t *cli, int argc, char **argv)
{
    cim_Req req = cim_Req_init_zero;
    cim_ContactListRsp rsp = cim_ContactListRsp_init_zero;
    int rc;

    if ((rc = no_args(find_cmd(argv[0]), argc, argv)) != EXIT_OK)
        return rc;
    rsp.contacts.funcs.decode = on_contact;
    rc = cimc_call(cli->c, FT_CONTACT_LIST, cim_Req_fields, &req, FT_CONTACT_LIST_ACK,
                   cim_ContactListRsp_fields, &rsp);
    fflush(stdout);
    return check(cli, "contacts", rc, rsp.code, rsp.reason);
}

/* contact add|remove USER, block USER, unblock USER */
static int user_op(cli_t *cli, int argc, char **argv, uint32_t type, const char *what,
                   const char *done)
{
    cim_UserReq req = cim_UserReq_init_zero;
    int rc;

    if (argc != 2 || argv[1][0] == '-')
        return usage_of(cli, argv[0]);
    if ((rc = users_ok(cli, what, 1, argv + 1)) != EXIT_OK)
        return rc;
    snprintf(req.user, sizeof(req.user), "%s", argv[1]);
    if ((rc = call_result(cli, what, type, cim_UserReq_fields, &req)) != EXIT_OK)
        return rc;
    printf("%s %s\n", done, argv[1]);
    return EXIT_OK;
}

static int cmd_contact_add(cli_t *cli, int argc, char **argv)
{
    return user_op(cli, argc, argv, FT_CONTACT_ADD, "contact add", "added contact");
}

static int cmd_contact_remove(cli_t *cli, int argc, char **argv)
{
    return user_op(cli, argc, argv, FT_CONTACT_REMOVE, "contact remove", "removed contact");
}

static int cmd_block(cli_t *cli, int argc, char **argv)
{
    return user_op(cli, argc, argv, FT_BLOCK, "block", "blocked");
}

static int cmd_unblock(cli_t *cli, int argc, char **argv)
{
    return user_op(cli, argc, argv, FT_UNBLOCK, "unblock", "unblocked");
}

/* typing (--to USER | --group G): a transient CUSTOM message with the body "typing"
 * (the convention: receivers show transient CUSTOM messages as [typing]). Prints
 * nothing. */
static int cmd_typing(cli_t *cli, int argc, char **argv)
{
    enum { O_TO = 256, O_GROUP };
    static const struct option opts[] = {
        {"to", required_argument, NULL, O_TO},
        {"group", required_argument, NULL, O_GROUP},
        {NULL, 0, NULL, 0},
    };
    static const char body[] = "typing";
    cim_SendReq req = cim_SendReq_init_zero;
    const char *to = NULL, *group = NULL;
    int opt;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == O_TO)
            to = optarg;
        else if (opt == O_GROUP)
            group = optarg;
        else
            return usage_of(cli, argv[0]);
    }
    if (to == NULL && group == NULL && optind == argc - 1)
        to = argv[optind++]; /* typing bob */
    if (optind < argc || (to == NULL) == (group == NULL))
        return usage_of(cli, argv[0]);
    if (!peer_arg_ok(group != NULL ? "typing: --group" : "typing: --to", group != NULL,
                     group != NULL ? group : to))
        return EXIT_USAGE;
    snprintf(req.to, sizeof(req.to), "%s", group != NULL ? group : to);
    new_client_msg_id(req.client_msg_id, sizeof(req.client_msg_id));
    req.conv_type = group != NULL ? cim_ConvType_GROUP : cim_ConvType_DIRECT;
    req.msg_type = cim_MsgType_CUSTOM;
    req.transient = true;
    return send_one(cli, "typing", &req, (const uint8_t *)body, sizeof(body) - 1, true);
}

/* A command with subcommands: run the one named by the second word. */
static int cmd_sub(cli_t *cli, int argc, char **argv)
{
    const cmd_t *cmd = find_cmd(argv[0]), *s;
    int rc;

    if (argc < 2 || argv[1][0] == '-') {
        fail("usage: %s %s (see help)", cmd->name, cmd->args);
        return EXIT_USAGE;
    }
    for (s = cmd->sub; s->name != NULL; s++)
        if (strcmp(s->name, argv[1]) == 0)
            break;
    if (s->name == NULL) {
        fail("%s: unknown subcommand '%s' (%s)", cmd->name, argv[1], cmd->args);
        return EXIT_USAGE;
    }
    cli->parent = cmd;
    cmd_getopt_reset();
    rc = s->run(cli, argc - 1, argv + 1); /* its argv[0] is its own name */
    cli->parent = NULL;
    return rc;
}

/* ---- the shell ------------------------------------------------------------------------ */

/* Split @p line in place into words: blanks separate, "double quotes" group, and inside
 * quotes \" and \\ escape. @return the word count, or -1 (unbalanced quote, too many). */
static int split_words(char *line, char **argv, int max)
{
    char *r = line, *w;
    int n = 0;

    for (;;) {
        while (*r == ' ' || *r == '\t')
            r++;
        if (*r == '\0')
            return n;
        if (n == max)
            return -1;
        argv[n++] = w = r;
        while (*r != '\0' && *r != ' ' && *r != '\t') {
            if (*r != '"') {
                *w++ = *r++;
                continue;
            }
            r++;
            while (*r != '"') {
                if (*r == '\0')
                    return -1;
                if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
                    r++;
                *w++ = *r++;
            }
            r++;
        }
        if (*r != '\0')
            r++;
        *w = '\0';
    }
}

static int run_line(cli_t *cli, char *line)
{
    char *argv[ARGV_MAX + 1];
    const cmd_t *cmd;
    int argc;

    line[strcspn(line, "\r\n")] = '\0';
    if ((argc = split_words(line, argv, ARGV_MAX)) < 0) {
        fail("cannot parse the line (unbalanced quote or too many words)");
        return EXIT_USAGE;
    }
    if (argc == 0 || argv[0][0] == '#')
        return EXIT_OK;
    argv[argc] = NULL;
    if ((cmd = find_cmd(argv[0])) == NULL || (cmd->flags & CMD_NOT_SHELL)) {
        fail("%s: %s (type help)", argv[0],
             cmd == NULL ? "unknown command" : "not available in the shell");
        return EXIT_USAGE;
    }
    cmd_getopt_reset();
    return cmd->run(cli, argc, argv);
}

static void prompt(const cli_t *cli)
{
    if (cli->tty) {
        fputs("cim> ", stdout);
        fflush(stdout);
    }
}

static int cmd_shell(cli_t *cli, int argc, char **argv)
{
    char buf[LINE_MAX_LEN + 1];
    size_t have = 0;
    bool discarding = false, eof = false;
    struct pollfd pfd[2];
    int64_t due;
    int rc, n, status = EXIT_OK;
    ssize_t r;
    char *nl;

    if ((rc = no_args(find_cmd(argv[0]), argc, argv)) != EXIT_OK)
        return rc;
    cli->in_shell = true;
    cli->tty = isatty(STDIN_FILENO);
    if (cli->tty)
        printf("logged in as %s on %s:%d; type help\n", cli->user, cli->host, cli->port);
    prompt(cli);
    while (!cli->quit) {
        /* Lines already read first: a pipe may bring many at once. */
        if ((nl = memchr(buf, '\n', have)) != NULL || (eof && have > 0)) {
            size_t len = nl != NULL ? (size_t)(nl - buf) : have;
            buf[len] = '\0';
            if (!discarding)
                status = run_line(cli, buf);
            discarding = false;
            len = nl != NULL ? len + 1 : have;
            memmove(buf, buf + len, have - len);
            have -= len;
            drain_pushes(cli);
            if (cimc_bye(cli->c) != NULL)
                return EXIT_FAIL;
            if (!cli->quit)
                prompt(cli);
            continue;
        }
        if (eof)
            break;
        pfd[0] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
        pfd[1] = (struct pollfd){.fd = cimc_fd(cli->c), .events = POLLIN};
        due = cimc_ping_due_ms(cli->c);
        n = poll(pfd, 2, due < 0 ? -1 : due > INT32_MAX ? INT32_MAX : (int)due);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fail("poll: %s", strerror(errno));
            return EXIT_FAIL;
        }
        if (n == 0) {
            /* Quiet for heartbeat_s: keep the session alive (PROTOCOL.md §3). */
            if ((rc = cimc_ping(cli->c, NULL)) < 0) {
                drain_pushes(cli);
                fail_rc(cli, "heartbeat", rc);
                return EXIT_FAIL;
            }
            drain_pushes(cli);
            continue;
        }
        if (pfd[1].revents != 0) {
            rc = cimc_poll(cli->c);
            drain_pushes(cli);
            if (rc < 0) {
                if (cimc_bye(cli->c) == NULL)
                    fail_rc(cli, "connection", rc);
                return EXIT_FAIL;
            }
            prompt(cli);
        }
        if (pfd[0].revents != 0) {
            r = read(STDIN_FILENO, buf + have, LINE_MAX_LEN - have);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                fail("stdin: %s", strerror(errno));
                return EXIT_FAIL;
            }
            if (r == 0) {
                eof = true;
                continue;
            }
            have += (size_t)r;
            if (have == LINE_MAX_LEN && memchr(buf, '\n', have) == NULL) {
                fail("line too long (over %d bytes); ignored", LINE_MAX_LEN);
                have = 0;
                discarding = true; /* the rest of that line, up to its newline */
            }
        }
    }
    if (cli->tty && !cli->quit)
        putchar('\n');
    return status;
}

/* Subcommands of group (flags come from the group row). */
static const cmd_t group_cmds[] = {
    {"create", cmd_group_create, "NAME [--open] [MEMBER...]",
     "new group, you its owner: prints its id", 0, NULL},
    {"join", cmd_group_join, "G", "join an open group", 0, NULL},
    {"add", cmd_group_add, "G USER...", "add users (any member may)", 0, NULL},
    {"leave", cmd_group_leave, "G", "leave a group", 0, NULL},
    {"kick", cmd_group_kick, "G USER...", "remove members (owner only)", 0, NULL},
    {"dismiss", cmd_group_dismiss, "G", "end the group (owner only)", 0, NULL},
    {"members", cmd_group_members, "G", "one member per line, the owner marked", 0, NULL},
    {"list", cmd_group_list, "", "your groups: id name owner members open|closed", 0, NULL},
    {NULL, NULL, NULL, NULL, 0, NULL},
};

static const cmd_t contact_cmds[] = {
    {"add", cmd_contact_add, "USER", "add to your contacts (presence events follow)", 0, NULL},
    {"remove", cmd_contact_remove, "USER", "remove from your contacts", 0, NULL},
    {NULL, NULL, NULL, NULL, 0, NULL},
};

/* The command table: the one place a command is added. */
static const cmd_t commands[] = {
    {"login", cmd_session, "", "log in and print the session", CMD_ONLINE, NULL},
    {"whoami", cmd_session, "", "print the session", CMD_ONLINE, NULL},
    {"ping", cmd_ping, "", "measure the round trip to the server", CMD_ONLINE, NULL},
    {"send", cmd_send,
     "--to USER|--group G [--type T] [--transient] [--id CMID] TEXT...|-",
     "send a message: the words, or - for stdin", CMD_ONLINE, NULL},
    {"sync", cmd_sync, "[--after ID] [--limit N] [--all|--page] [--ack]",
     "messages this device has not acknowledged", CMD_ONLINE, NULL},
    {"timeline", cmd_timeline, "", "the whole timeline from the start (acknowledges nothing)",
     CMD_ONLINE, NULL},
    {"listen", cmd_listen, "[--count N] [--timeout S] [--ack]",
     "print messages and events as they arrive", CMD_ONLINE | CMD_PUSHES, NULL},
    {"group", cmd_sub, "create|join|add|leave|kick|dismiss|members|list ...", "groups",
     CMD_ONLINE, group_cmds},
    {"convs", cmd_convs, "", "conversations, newest first, with unread counts", CMD_ONLINE,
     NULL},
    {"history", cmd_history, "(--with USER | --group G) [--before ID] [--limit N] [--all]",
     "a conversation's messages, paging backwards", CMD_ONLINE, NULL},
    {"read", cmd_read, "(--with USER | --group G) [--up-to ID]",
     "mark a conversation read (up to ID; default everything)", CMD_ONLINE, NULL},
    {"recall", cmd_recall, "MSG_ID", "recall a message you sent (within the recall window)",
     CMD_ONLINE, NULL},
    {"typing", cmd_typing, "--to USER | --group G",
     "send a typing indicator (transient CUSTOM \"typing\")", CMD_ONLINE, NULL},
    {"contacts", cmd_contacts, "", "your contacts: user online|offline [blocked]", CMD_ONLINE,
     NULL},
    {"contact", cmd_sub, "add|remove USER", "contacts", CMD_ONLINE, contact_cmds},
    {"block", cmd_block, "USER", "refuse USER's messages (their send gets BLOCKED)", CMD_ONLINE,
     NULL},
    {"unblock", cmd_unblock, "USER", "accept USER's messages again", CMD_ONLINE, NULL},
    {"shell", cmd_shell, "", "interactive prompt (pushes are shown as they arrive)",
     CMD_ONLINE | CMD_NOT_SHELL, NULL},
    {"help", cmd_help, "", "list the commands", 0, NULL},
    {"quit", cmd_quit, "", "leave the shell (also: exit, end of input)", CMD_SHELL_ONLY, NULL},
    {NULL, NULL, NULL, NULL, 0, NULL},
};

/* ---- main ----------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    cli_t none;

    memset(&none, 0, sizeof(none));
    fprintf(f, "usage: cim [OPTIONS] COMMAND [ARGS]\n"
               "\n"
               "The cim command-line client: one command, or an interactive shell.\n"
               "\n"
               "options:\n"
               "  --host H          server address (default 127.0.0.1)\n"
               "  --port P          server port (default 7400)\n"
               "  --key HEX         the server's identity key, 64 hex characters (or env CIM_KEY)\n"
               "  --tofu            trust on first use: accept any server key, print it to pin\n"
               "  --app A           app (tenant) name (default: default)\n"
               "  --user U          user id (required)\n"
               "  --token T         login token (or env CIM_TOKEN)\n"
               "  --device ID       device id (default: cli-<hostname>)\n"
               "  --kind K          device kind: mobile, desktop, web or bot (default desktop)\n"
               "  --timeout MS      connect and answer timeout (default 10000)\n"
               "  -v, --verbose     library debug logging, and pushes, on stderr\n"
               "  -h, --help        this help\n"
               "\n"
               "commands:\n");
    fflush(f);
    if (f == stdout) {
        cmd_help(&none, 0, NULL);
        fprintf(f,
                "\n"
                "Messages print one per line: <msg_id> <time> <from> -> <to> [<type>] <body>\n"
                "(<to> is #<id> for a group; a body that is not printable text shows as\n"
                "<N bytes: HEX>; backslash and newline in text show as \\\\ and \\n).\n"
                "\n"
                "  send      prints 'sent <msg_id> at <time>' once the server stored it; a refusal\n"
                "            prints 'cim: send refused: CODE: reason' on stderr. Options come\n"
                "            before the text; --type text|image|audio|video|file|location|custom\n"
                "            (default text); --id sets the client_msg_id (a repeat is not stored\n"
                "            twice); --transient delivers to online devices only, stores nothing.\n"
                "            Without --to the first word is the recipient: send bob hello there.\n"
                "            --group G sends to a group (G: its id, as group create printed).\n"
                "  sync      pages through the messages this device has not acknowledged (or\n"
                "            those after --after ID); on the command line every page (--page:\n"
                "            one), in the shell one page (--all: every page); --ack then moves\n"
                "            the device's cursor to the last message synced.\n"
                "  listen    prints pushed messages (and events) on stdout as they arrive;\n"
                "            stops after --count N messages, after --timeout S seconds (with\n"
                "            --count: exit 1 if fewer came), or on Ctrl-C/SIGTERM (exit 0).\n"
                "            --ack first prints what this device has not acknowledged, then\n"
                "            acknowledges as it prints. A ready line goes to stderr. --count\n"
                "            counts messages, not events or typing indicators. Besides messages:\n"
                "              [read] alice read bob up to <msg_id>   (bob: you, or #<group>)\n"
                "              [presence] bob online|offline          (a contact came or went)\n"
                "              [typing] alice -> bob                  (transient CUSTOM message)\n"
                "              [recall] <msg_id> by alice             (a message was recalled)\n"
                "  group     create prints the new group's id alone on a line, for scripts:\n"
                "            G=$(cim group create team bob carol); --open lets anyone join by id.\n"
                "            list prints '<id> <name> owner=<user> members=<n> open|closed' (a\n"
                "            name with blanks in \"quotes\"); members prints one user per line,\n"
                "            '<user> (owner)' for the owner. The others print what they did.\n"
                "  convs     one line per conversation, newest first:\n"
                "              <direct|group> <peer> unread=<n> read=<my cursor>\n"
                "                [peer_read=<peer's cursor>] last: <msg_id> <time> <from> [<type>] <text>\n"
                "            (peer_read for direct conversations only), then 'total unread: <n>'.\n"
                "  history   the newest page (--limit, 1..100, default 20) before --before ID,\n"
                "            oldest first; a note on stderr says how to page further back.\n"
                "            --all pages back to the start and prints everything oldest first.\n"
                "  read      moves your read cursor to --up-to ID (omitted or 0: everything);\n"
                "            your other devices and a direct peer get a [read] event.\n"
                "  recall    erases a message you sent within the server's recall window\n"
                "            (RECALL_WINDOW_PASSED after it); history shows it <recalled>.\n"
                "  typing    the typing convention: a transient (stored nowhere, online devices\n"
                "            only) CUSTOM message whose body is \"typing\" (an empty body means\n"
                "            the same); receivers show any transient CUSTOM message as [typing].\n"
                "            Send it again every few seconds while typing; prints nothing.\n"
                "  contacts  one line per contact: '<user> online|offline' and ' blocked' when\n"
                "            you block them. block USER makes USER's sends to you fail with\n"
                "            BLOCKED; contacts' presence changes arrive as [presence] events.\n"
                "  In one-shot mode stdout is the command's output only: pushes that arrive\n"
                "  meanwhile are dropped (shown on stderr with -v); the shell prints them.\n"
                "\n"
                "examples:\n"
                "  export CIM_KEY=$(cimctl --data data show-key)\n"
                "  export CIM_TOKEN=$(cimctl --data data token --user alice --ttl 3600)\n"
                "  cim --user alice send --to bob \"hi\"       # exit 0 once stored\n"
                "  cim --user alice send --to bob --type file - < photo.jpg\n"
                "  cim --user alice sync --ack                # what this device missed\n"
                "  cim --user alice listen --count 1 --timeout 30\n"
                "  G=$(cim --user alice group create team bob carol)\n"
                "  cim --user alice send --group \"$G\" \"hello team\"\n"
                "  BOB=$(cimctl --data data token --user bob --ttl 3600)\n"
                "  cim --user bob --token \"$BOB\" convs        # unread=1 for the group\n"
                "  cim --user bob --token \"$BOB\" history --group \"$G\" --all\n"
                "  cim --user bob --token \"$BOB\" read --group \"$G\"\n"
                "\n"
                "exit status: 0 done, 1 failed or refused by the server, 2 usage error\n");
    } else {
        for (const cmd_t *c = commands; c->name != NULL; c++)
            if (!(c->flags & CMD_SHELL_ONLY))
                fprintf(f, "  %-30s %s\n", c->name, c->help);
    }
}

static int parse_port(const char *s, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || end == s || v < 1 || v > 65535)
        return -1;
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    enum {
        O_HOST = 256,
        O_PORT,
        O_KEY,
        O_TOFU,
        O_APP,
        O_USER,
        O_TOKEN,
        O_DEVICE,
        O_KIND,
        O_TIMEOUT
    };
    static const struct option longopts[] = {
        {"host", required_argument, NULL, O_HOST},
        {"port", required_argument, NULL, O_PORT},
        {"key", required_argument, NULL, O_KEY},
        {"tofu", no_argument, NULL, O_TOFU},
        {"app", required_argument, NULL, O_APP},
        {"user", required_argument, NULL, O_USER},
        {"token", required_argument, NULL, O_TOKEN},
        {"device", required_argument, NULL, O_DEVICE},
        {"kind", required_argument, NULL, O_KIND},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *key_hex = NULL, *device = NULL;
    const cmd_t *cmd;
    cli_t cli;
    int opt, rc, port, cmd_i;
    long tmo;
    char *end;

    memset(&cli, 0, sizeof(cli));
    cli.host = "127.0.0.1";
    cli.port = 7400;
    cli.app = "";
    cli.kind = cim_DeviceKind_DESKTOP;
    log_set_level(LOG_LVL_WARN);
    (void)signal(SIGPIPE, SIG_IGN); /* a peer that hangs up is an rc, not a death */

    /* "+": stop at the command, whose own options are its handler's. */
    while ((opt = getopt_long(argc, argv, "+vh", longopts, NULL)) != -1) {
        switch (opt) {
        case O_HOST:
            cli.host = optarg;
            break;
        case O_PORT:
            if (parse_port(optarg, &port) < 0) {
                fail("--port: expected 1..65535, got '%s'", optarg);
                return EXIT_USAGE;
            }
            cli.port = port;
            break;
        case O_KEY:
            key_hex = optarg;
            break;
        case O_TOFU:
            cli.tofu = true;
            break;
        case O_APP:
            cli.app = optarg;
            break;
        case O_USER:
            cli.user = optarg;
            break;
        case O_TOKEN:
            cli.token = optarg;
            break;
        case O_DEVICE:
            device = optarg;
            break;
        case O_KIND:
            if (kind_parse(optarg, &cli.kind) < 0) {
                fail("--kind: expected mobile, desktop, web or bot, got '%s'", optarg);
                return EXIT_USAGE;
            }
            break;
        case O_TIMEOUT:
            errno = 0;
            tmo = strtol(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || end == optarg || tmo < 1 || tmo > 3600000) {
                fail("--timeout: expected milliseconds (1..3600000), got '%s'", optarg);
                return EXIT_USAGE;
            }
            cli.timeout_ms = (unsigned)tmo;
            break;
        case 'v':
            log_set_level(LOG_LVL_DEBUG);
            cli.verbose = true;
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        default:
            fail("see cim --help");
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fail("missing command (see cim --help)");
        return EXIT_USAGE;
    }
    cmd_i = optind;
    if ((cmd = find_cmd(argv[cmd_i])) == NULL || (cmd->flags & CMD_SHELL_ONLY)) {
        fail("unknown command '%s' (see cim --help)", argv[cmd_i]);
        return EXIT_USAGE;
    }

    if (cmd->flags & CMD_ONLINE) {
        if (key_hex != NULL && cli.tofu) {
            fail("--key and --tofu exclude each other");
            return EXIT_USAGE;
        }
        if (key_hex == NULL && !cli.tofu && (key_hex = getenv("CIM_KEY")) != NULL &&
            key_hex[0] == '\0')
            key_hex = NULL;
        if (key_hex != NULL) {
            if (strlen(key_hex) != 2 * CHAN_KEY || chan_unhex(key_hex, cli.key) < 0) {
                fail("%s: expected 64 hex characters",
                     getenv("CIM_KEY") == key_hex ? "CIM_KEY" : "--key");
                return EXIT_USAGE;
            }
            cli.has_key = true;
        }
        if (!cli.has_key && !cli.tofu) {
            fail("no server key: give --key HEX (see cimctl show-key), set CIM_KEY, or use "
                 "--tofu");
            return EXIT_USAGE;
        }
        if (cli.user == NULL || cli.user[0] == '\0') {
            fail("missing --user (see cim --help)");
            return EXIT_USAGE;
        }
        if (cli.token == NULL && (cli.token = getenv("CIM_TOKEN")) == NULL) {
            fail("missing token: give --token T or set CIM_TOKEN");
            return EXIT_USAGE;
        }
        if (device != NULL)
            snprintf(cli.device, sizeof(cli.device), "%s", device);
        else
            default_device(cli.device, sizeof(cli.device));
        if ((rc = go_online(&cli)) != EXIT_OK)
            goto out;
        if (!(cmd->flags & CMD_PUSHES))
            drain_pushes(&cli);
    }
    cmd_getopt_reset();
    rc = cmd->run(&cli, argc - cmd_i, argv + cmd_i); /* its argv[0] is its name */
    drain_pushes(&cli);
out:
    cimc_close(cli.c);
    return rc;
}
