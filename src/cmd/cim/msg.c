/* cli: messages: send, typing, sync, timeline, listen, recall. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <pb_decode.h>

#include "cmd/cim/cli_int.h"
#include "core/frame.h"
#include "core/rc.h"

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
        cli__fail("send: out of memory");
        return -1;
    }
    for (;;) {
        if (have == size) {
            if (size > cap) {
                cli__fail("send: the body on stdin is over %zu bytes (the frame limit)", cap);
                free(buf);
                return -1;
            }
            if ((nb = realloc(buf, size * 2)) == NULL) {
                cli__fail("send: out of memory");
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
            cli__fail("send: stdin: %s", strerror(errno));
            free(buf);
            return -1;
        }
        if (r == 0)
            break;
        have += (size_t)r;
    }
    if (have > cap) {
        cli__fail("send: the body on stdin is over %zu bytes (the frame limit)", cap);
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
    if ((rc = cli__check(cli, what, rc, rsp.code, rsp.reason)) != EXIT_OK)
        return rc;
    /* Shown, as far as the shell's resume is concerned: this device gets no push of its
     * own message, and the server queues the pushes of earlier messages before this
     * answer, so nothing below it is still on its way. */
    if (rsp.msg_id > cli->seen)
        cli->seen = rsp.msg_id;
    if (!quiet) {
        cli__fmt_time_ms(rsp.time_ms, when, sizeof(when));
        printf("sent %" PRIu64 " at %s%s\n", rsp.msg_id, when,
               req->transient ? " (transient)" : "");
        fflush(stdout);
    }
    return EXIT_OK;
}

/* send (--to USER | --group G) [--type T] [--transient] [--id CMID] TEXT... | -
 * (also "send USER TEXT...": without --to or --group the first word names the user). */
int cli__cmd_send(cli_t *cli, int argc, char **argv)
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
    const cmd_t *cmd = cli__find_cmd(argv[0]);
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
            if (cli__msg_type_parse(optarg, &type) < 0) {
                cli__fail("--type: expected text, image, audio, video, file, location or custom, "
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
            return cli__cmd_usage(cmd);
        }
    }
    if (to != NULL && group != NULL) {
        cli__fail("send: --to and --group exclude each other");
        return EXIT_USAGE;
    }
    if (to == NULL && group == NULL && optind < argc)
        to = argv[optind++];
    if ((to == NULL && group == NULL) || optind >= argc)
        return cli__cmd_usage(cmd);
    if (group != NULL && !cli__peer_arg_ok("send: --group", true, group))
        return EXIT_USAGE;
    if (to != NULL && (to[0] == '\0' || strlen(to) >= sizeof(req.to))) {
        cli__fail("send: the recipient must be a user id of 1..%zu bytes", sizeof(req.to) - 1);
        return EXIT_USAGE;
    }
    if (cmid != NULL && (cmid[0] == '\0' || strlen(cmid) >= sizeof(req.client_msg_id))) {
        cli__fail("send: --id must be 1..%zu bytes", sizeof(req.client_msg_id) - 1);
        return EXIT_USAGE;
    }
    if (optind == argc - 1 && strcmp(argv[optind], "-") == 0) {
        if (cli->in_shell) {
            cli__fail("send: a body from stdin (-) works on the command line only");
            return EXIT_USAGE;
        }
        if (read_stdin(cimc_max_body(cli->c), &body, &len) < 0)
            return EXIT_FAIL;
    } else if ((body = join_words(argc - optind, argv + optind, &len)) == NULL) {
        cli__fail("send: out of memory");
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

/* What sync_run is given for each page. */
typedef struct sync_page {
    cli_t *cli;
    sync_out_t *o;
} sync_page_t;

/* SyncRsp.messages: print each message as it is decoded. */
static bool on_sync_msg(pb_istream_t *s, const pb_field_t *f, void **arg)
{
    sync_page_t *pg = *arg;
    sync_out_t *o = pg->o;
    cimc_push_t m;

    (void)f;
    if (cimc_message_decode(s, &m) < 0)
        return false;
    cli__print_msg(stdout, &m.u.msg, m.body_data, m.body_len);
    if (o->n++ == 0)
        o->first = m.u.msg.msg_id;
    o->last = m.u.msg.msg_id;
    if (o->last > pg->cli->seen)
        pg->cli->seen = o->last;
    cimc_push_free(&m);
    return true;
}

/* SYNC from @p after (0: the server's cursor for this device), pages of @p limit (0: the
 * server's default), printing every message; with @p all, ask again while remain > 0. */
int cli__sync_run(cli_t *cli, const char *what, uint64_t after, uint32_t limit, bool all,
                  sync_out_t *o)
{
    sync_page_t pg = {cli, o};
    int rc;

    memset(o, 0, sizeof(*o));
    for (;;) {
        cim_SyncReq req = cim_SyncReq_init_zero;
        cim_SyncRsp rsp = cim_SyncRsp_init_zero;

        req.after_msg_id = after;
        req.limit = limit;
        rsp.messages.funcs.decode = on_sync_msg;
        rsp.messages.arg = &pg;
        rc = cimc_call(cli->c, FT_SYNC, cim_SyncReq_fields, &req, FT_SYNC_ACK, cim_SyncRsp_fields,
                       &rsp);
        fflush(stdout);
        if (o->n > 0) {
            cli->dup_lo = o->first;
            cli->dup_hi = o->last;
        }
        if ((rc = cli__check(cli, what, rc, rsp.code, rsp.reason)) != EXIT_OK)
            return rc;
        o->last_msg_id = rsp.last_msg_id;
        o->remain = rsp.remain;
        if (!all || rsp.remain == 0)
            return EXIT_OK;
        if (rsp.last_msg_id == 0 || (after != 0 && rsp.last_msg_id <= after)) {
            cli__fail("%s: the server said %" PRIu32 " more but returned none", what, rsp.remain);
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
        cli__fail_rc(cli, what, rc);
        return EXIT_FAIL;
    }
    cli->acked = id;
    return EXIT_OK;
}

/* sync [--after ID] [--limit N] [--all|--page] [--ack] */
int cli__cmd_sync(cli_t *cli, int argc, char **argv)
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
    const cmd_t *cmd = cli__find_cmd(argv[0]);
    bool all = !cli->in_shell, ack = false;
    uint64_t after = 0;
    uint32_t limit = 0;
    sync_out_t o;
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case O_AFTER:
            if (cli__arg_u64("--after", optarg, 0, UINT64_MAX, "a msg_id", &after) < 0)
                return EXIT_USAGE;
            break;
        case O_LIMIT:
            if (cli__arg_limit(optarg, 500, &limit) < 0)
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
            return cli__cmd_usage(cmd);
        }
    }
    if (optind < argc)
        return cli__cmd_usage(cmd);
    /* No --after (or 0): from the cursor, as this client knows it — the server's cursor,
     * but current even when this client moved it a moment ago (the server writes it
     * behind the ack). A cursor of 0 reads from the start either way. */
    if (after == 0)
        after = cli->acked;
    /* An ack says this device holds every message up to it (PROTOCOL.md §6). */
    if (ack && after > cli->acked) {
        cli__fail("sync: --ack with --after %" PRIu64 " would skip the messages after this "
                  "device's cursor %" PRIu64,
                  after, cli->acked);
        return EXIT_USAGE;
    }
    if ((rc = cli__sync_run(cli, "sync", after, limit, all, &o)) != EXIT_OK)
        return rc;
    if (!all && o.remain > 0)
        cli__note("%" PRIu32 " more after %" PRIu64 ": sync --after %" PRIu64 " (or sync --all)",
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
int cli__cmd_timeline(cli_t *cli, int argc, char **argv)
{
    sync_out_t o;
    int rc;

    if ((rc = cli__no_args(cli__find_cmd(argv[0]), argc, argv)) != EXIT_OK)
        return rc;
    return cli__sync_run(cli, "timeline", 1, 0, true, &o);
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
    int64_t deadline = timeout_ms >= 0 ? cli__mono_ms() + timeout_ms : -1, due, left, wait;
    uint64_t shown = 0, to_ack = 0;
    uint32_t got = 0;
    bool timed_out = false;
    struct pollfd pfd;
    cimc_push_t p;
    sync_out_t o;
    int rc = 0, n;

    if (ack) {
        if ((rc = cli__sync_run(cli, "listen", cli->acked, 0, true, &o)) != EXIT_OK)
            return rc;
        shown = o.last_msg_id; /* everything up to here is printed */
        if ((rc = send_ack(cli, "listen", o.last_msg_id, false)) != EXIT_OK)
            return rc;
    }
    cli__note("listening as %s%s; Ctrl-C to stop", cli->user, ack ? ", acknowledging" : "");
    for (;;) {
        /* Whatever the library holds already, then the socket. */
        while ((want == 0 || got < want) && (rc = cimc_next_push(cli->c, 0, &p)) == 0) {
            if (p.type == FT_PUSH && (p.u.msg.msg_id == 0 || p.u.msg.msg_id > shown)) {
                cli__print_pushed_msg(stdout, &p.u.msg, p.body_data, p.body_len);
                if (!cli__is_typing(&p.u.msg))
                    got++; /* --count counts messages, not typing indicators */
                if (p.u.msg.msg_id != 0)
                    shown = to_ack = p.u.msg.msg_id; /* pushes come in order, no gaps */
            } else if (p.type == FT_EVENT) {
                cli__print_event(cli, stdout, &p.u.event);
            } /* a BYE: the closed connection is reported below */
            cimc_push_free(&p);
        }
        fflush(stdout);
        if (ack && to_ack > cli->acked && send_ack(cli, "listen", to_ack, false) != EXIT_OK)
            return EXIT_FAIL;
        if (want != 0 && got >= want)
            break;
        if (rc != RC_ETIMEDOUT) { /* the connection ended */
            cli__fail_rc(cli, "listen", rc);
            return EXIT_FAIL;
        }
        if (stop_signal)
            break;
        due = cimc_ping_due_ms(cli->c);
        left = deadline >= 0 ? deadline - cli__mono_ms() : -1;
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
            cli__fail("poll: %s", strerror(errno));
            return EXIT_FAIL;
        }
        if (n == 0) {
            if (cimc_ping_due_ms(cli->c) == 0 && (rc = cimc_ping(cli->c, NULL)) < 0 &&
                cimc_bye(cli->c) == NULL) {
                cli__fail_rc(cli, "heartbeat", rc);
                return EXIT_FAIL;
            }
            continue;
        }
        (void)cimc_poll(cli->c); /* an error shows in cimc_next_push, after what came first */
    }
    /* Make sure the server has the last ack before we close. */
    if (ack && cli->acked > 0 && (rc = cimc_ping(cli->c, NULL)) < 0) {
        cli__fail_rc(cli, "listen", rc);
        return EXIT_FAIL;
    }
    if (timed_out && want != 0) {
        cli__fail("listen: timed out with %" PRIu32 " of %" PRIu32 " messages", got, want);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* listen [--count N] [--timeout S] [--ack] */
int cli__cmd_listen(cli_t *cli, int argc, char **argv)
{
    enum { O_COUNT = 256, O_TIMEOUT, O_ACK };
    static const struct option opts[] = {
        {"count", required_argument, NULL, O_COUNT},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"ack", no_argument, NULL, O_ACK},
        {NULL, 0, NULL, 0},
    };
    const cmd_t *cmd = cli__find_cmd(argv[0]);
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
            if (cli__arg_u64("--count", optarg, 1, UINT32_MAX, "a number of messages (1 or more)",
                             &v) < 0)
                return EXIT_USAGE;
            want = (uint32_t)v;
            break;
        case O_TIMEOUT:
            errno = 0;
            secs = strtod(optarg, &end);
            if (errno != 0 || *end != '\0' || end == optarg || !(secs > 0) || secs > 1e7) {
                cli__fail("--timeout: expected seconds (> 0), got '%s'", optarg);
                return EXIT_USAGE;
            }
            timeout_ms = (int64_t)(secs * 1000.0 + 0.5);
            break;
        case O_ACK:
            ack = true;
            break;
        default:
            return cli__cmd_usage(cmd);
        }
    }
    if (optind < argc)
        return cli__cmd_usage(cmd);

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

/* recall MSG_ID */
int cli__cmd_recall(cli_t *cli, int argc, char **argv)
{
    cim_RecallReq req = cim_RecallReq_init_zero;
    uint64_t id;
    int rc;

    if (argc != 2)
        return cli__usage_of(cli, argv[0]);
    if (cli__arg_u64("recall", argv[1], 1, UINT64_MAX, "a msg_id", &id) < 0)
        return EXIT_USAGE;
    req.msg_id = id;
    if ((rc = cli__call_result(cli, "recall", FT_RECALL, cim_RecallReq_fields, &req)) != EXIT_OK)
        return rc;
    printf("recalled %" PRIu64 "\n", id);
    return EXIT_OK;
}

/* typing (--to USER | --group G): a transient CUSTOM message with the body "typing"
 * (the convention: receivers show transient CUSTOM messages as [typing]). Prints
 * nothing. */
int cli__cmd_typing(cli_t *cli, int argc, char **argv)
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
            return cli__usage_of(cli, argv[0]);
    }
    if (to == NULL && group == NULL && optind == argc - 1)
        to = argv[optind++]; /* typing bob */
    if (optind < argc || (to == NULL) == (group == NULL))
        return cli__usage_of(cli, argv[0]);
    if (!cli__peer_arg_ok(group != NULL ? "typing: --group" : "typing: --to", group != NULL,
                          group != NULL ? group : to))
        return EXIT_USAGE;
    snprintf(req.to, sizeof(req.to), "%s", group != NULL ? group : to);
    new_client_msg_id(req.client_msg_id, sizeof(req.client_msg_id));
    req.conv_type = group != NULL ? cim_ConvType_GROUP : cim_ConvType_DIRECT;
    req.msg_type = cim_MsgType_CUSTOM;
    req.transient = true;
    return send_one(cli, "typing", &req, (const uint8_t *)body, sizeof(body) - 1, true);
}
