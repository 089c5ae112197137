/* cli: conversations: convs, history, read. */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <pb_decode.h>

#include "cmd/cim/cli_int.h"
#include "core/frame.h"

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
        cli__print_conv(stdout, &cv, b.data, b.len);
    free(b.data);
    return ok;
}

/* convs: newest first, then "total unread: N". */
int cli__cmd_convs(cli_t *cli, int argc, char **argv)
{
    cim_Req req = cim_Req_init_zero;
    cim_ConvListRsp rsp = cim_ConvListRsp_init_zero;
    int rc;

    if ((rc = cli__no_args(cli__find_cmd(argv[0]), argc, argv)) != EXIT_OK)
        return rc;
    rsp.convs.funcs.decode = on_conv;
    rc = cimc_call(cli->c, FT_CONV_LIST, cim_Req_fields, &req, FT_CONV_LIST_ACK,
                   cim_ConvListRsp_fields, &rsp);
    fflush(stdout);
    if ((rc = cli__check(cli, "convs", rc, rsp.code, rsp.reason)) != EXIT_OK)
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
        cli__fail("%s: give one of --with USER or --group G", name);
        return cli__usage_of(cli, name);
    }
    if (!cli__peer_arg_ok(group != NULL ? "--group" : "--with", group != NULL,
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
            cli__print_msg(stdout, &v[i].u.msg, v[i].body_data, v[i].body_len);
    fflush(stdout);
}

/* history (--with USER | --group G) [--before ID] [--limit N] [--all] */
int cli__cmd_history(cli_t *cli, int argc, char **argv)
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
            if (cli__arg_u64("--before", optarg, 0, UINT64_MAX, "a msg_id", &before) < 0)
                return EXIT_USAGE;
            break;
        case O_LIMIT:
            if (cli__arg_limit(optarg, 100, &limit) < 0)
                return EXIT_USAGE;
            break;
        case O_ALL:
            all = true;
            break;
        default:
            return cli__usage_of(cli, argv[0]);
        }
    }
    if (optind < argc)
        return cli__usage_of(cli, argv[0]);
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
        if ((rc = cli__check(cli, "history", rc, rsp.code, rsp.reason)) != EXIT_OK)
            goto out;
        for (size_t i = start; i < ms.n; i++)
            if (oldest == 0 || ms.v[i].u.msg.msg_id < oldest)
                oldest = ms.v[i].u.msg.msg_id;
        if (!all) {
            print_msgs(ms.v, ms.n);
            if (rsp.has_more && oldest != 0)
                cli__note("more before %" PRIu64 ": history %s %s --before %" PRIu64 " (or --all)",
                          oldest, group != NULL ? "--group" : "--with", peer, oldest);
            break;
        }
        if (!rsp.has_more)
            break;
        if (oldest == 0 || (before != 0 && oldest >= before)) {
            cli__fail("history: the server said there is more but returned nothing older");
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
int cli__cmd_read(cli_t *cli, int argc, char **argv)
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
            if (cli__arg_u64("--up-to", optarg, 0, UINT64_MAX, "a msg_id (0: everything)", &up_to) <
                0)
                return EXIT_USAGE;
            break;
        default:
            return cli__usage_of(cli, argv[0]);
        }
    }
    if (optind < argc)
        return cli__usage_of(cli, argv[0]);
    if ((rc = conv_arg(cli, argv[0], with, group, &type, &peer)) != EXIT_OK)
        return rc;
    req.conv_type = type;
    snprintf(req.peer, sizeof(req.peer), "%s", peer);
    req.up_to_msg_id = up_to;
    if ((rc = cli__call_result(cli, "read", FT_READ, cim_ReadReq_fields, &req)) != EXIT_OK)
        return rc;
    if (up_to != 0)
        printf("read %s %s up to %" PRIu64 "\n", cli__conv_name(type), peer, up_to);
    else
        printf("read %s %s up to the latest\n", cli__conv_name(type), peer);
    return EXIT_OK;
}
