/* cim: the command-line client, on libcim's blocking API.
 *
 *   cim [OPTIONS] COMMAND [ARGS]      one command, then exit (0 on success)
 *   cim [OPTIONS] shell               an interactive prompt running the same commands
 *
 * Every command is one row of `commands` below: its name, handler, argument synopsis and
 * one line of help. The one-shot command line and the shell both dispatch through that
 * table, so a new command (send, sync, history, group ...) is a handler and a row. A
 * handler gets argv with argv[0] = its name and may parse options with getopt_long (call
 * cmd_getopt_reset() first); it reports failures itself with die()/fail() and returns
 * EXIT_OK, EXIT_FAIL or EXIT_USAGE.
 *
 * Pushes (PUSH, EVENT, BYE) are printed as they arrive: during a command, and while the
 * shell waits for input (poll on stdin and the connection). The shell also sends the
 * heartbeat PING when the connection has been quiet for heartbeat_s. */
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
#include <time.h>
#include <unistd.h>

#include "client/cim.h"
#include "core/chan.h"
#include "core/frame.h"
#include "core/log.h"
#include "core/rc.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

#define CMD_ONLINE     0x1 /* needs a logged-in connection */
#define CMD_NOT_SHELL  0x2 /* meaningless inside the shell */
#define CMD_SHELL_ONLY 0x4 /* meaningless on the command line */

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

    cimc_t *c; /* the connection once online */
    cim_LoginRsp session;
    bool in_shell;
    bool tty;  /* stdin is a terminal: show a prompt */
    bool quit; /* the shell should end */
} cli_t;

typedef struct cmd {
    const char *name;
    int (*run)(cli_t *cli, int argc, char **argv);
    const char *args; /* synopsis after the name */
    const char *help; /* one line */
    unsigned flags;   /* CMD_* */
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

static void print_push(const cli_t *cli, const cimc_push_t *p)
{
    const cim_Message *m = &p->u.msg;
    const cim_Event *e = &p->u.event;
    char when[40];

    if (cli->tty && cli->in_shell)
        fputs("\r\033[K", stdout); /* over the prompt */
    switch (p->type) {
    case FT_PUSH:
        fmt_time_ms(m->time_ms, when, sizeof(when));
        printf("[msg %" PRIu64 "] %s %s -> %s (%s %s%s): ", m->msg_id, when, m->from, m->to,
               conv_name(m->conv_type), msg_type_name(m->msg_type),
               (m->flags & 1u) ? ", recalled" : "");
        if (p->body_len > 0 && m->msg_type != cim_MsgType_SYSTEM &&
            m->msg_type != cim_MsgType_RECALL && printable(p->body_data, p->body_len))
            printf("%.*s\n", (int)p->body_len, (const char *)p->body_data);
        else
            printf("<%zu bytes>\n", p->body_len);
        break;
    case FT_EVENT:
        if (e->kind == cim_EventKind_READ)
            printf("[read] %s read %s conversation %s up to %" PRIu64 "\n", e->user,
                   conv_name(e->conv_type), e->peer, e->up_to_msg_id);
        else if (e->kind == cim_EventKind_PRESENCE)
            printf("[presence] %s is %s\n", e->user, e->online ? "online" : "offline");
        else
            printf("[event %d] %s %s\n", (int)e->kind, e->user, e->peer);
        break;
    case FT_BYE:
        printf("[bye] %s: %s\n", cimc_code_str(p->u.bye.code), p->u.bye.reason);
        break;
    default:
        break;
    }
    fflush(stdout);
}

/* Print every push queued so far. */
static void drain_pushes(cli_t *cli)
{
    cimc_push_t p;

    if (cli->c == NULL)
        return;
    while (cimc_next_push(cli->c, 0, &p) == 0) {
        print_push(cli, &p);
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

static int cmd_help(cli_t *cli, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    for (const cmd_t *c = commands; c->name != NULL; c++) {
        char syn[64];
        if (cli->in_shell ? (c->flags & CMD_NOT_SHELL) : (c->flags & CMD_SHELL_ONLY))
            continue;
        snprintf(syn, sizeof(syn), "%s%s%s", c->name, c->args[0] ? " " : "", c->args);
        printf("  %-30s %s\n", syn, c->help);
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

/* The command table: the one place a command is added. */
static const cmd_t commands[] = {
    {"login", cmd_session, "", "log in and print the session", CMD_ONLINE},
    {"whoami", cmd_session, "", "print the session", CMD_ONLINE},
    {"ping", cmd_ping, "", "measure the round trip to the server", CMD_ONLINE},
    {"shell", cmd_shell, "", "interactive prompt (pushes are shown as they arrive)",
     CMD_ONLINE | CMD_NOT_SHELL},
    {"help", cmd_help, "", "list the commands", 0},
    {"quit", cmd_quit, "", "leave the shell (also: exit, end of input)", CMD_SHELL_ONLY},
    {NULL, NULL, NULL, NULL, 0},
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
               "  -v, --verbose     library debug logging on stderr\n"
               "  -h, --help        this help\n"
               "\n"
               "commands:\n");
    fflush(f);
    if (f == stdout) {
        cmd_help(&none, 0, NULL);
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
        drain_pushes(&cli);
    }
    cmd_getopt_reset();
    rc = cmd->run(&cli, argc - cmd_i, argv + cmd_i); /* its argv[0] is its name */
    drain_pushes(&cli);
out:
    cimc_close(cli.c);
    return rc;
}
