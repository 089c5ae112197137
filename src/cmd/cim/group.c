/* cli: groups: group create|join|add|leave|kick|dismiss|members|list. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <pb_decode.h>

#include "cmd/cim/cli_int.h"
#include "core/frame.h"

#define GROUP_USERS_MAX 1000 /* GroupCreateReq.members, GroupUsersReq.users (cim.options) */

/* group create NAME [--open] [MEMBER...]: the new group's id alone on stdout. */
int cli__cmd_group_create(cli_t *cli, int argc, char **argv)
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
            return cli__usage_of(cli, argv[0]);
        is_open = true;
    }
    if (optind >= argc)
        return cli__usage_of(cli, argv[0]);
    name = argv[optind++];
    if (name[0] == '\0' || strlen(name) > 64) {
        cli__fail("group create: the name must be 1..64 bytes");
        return EXIT_USAGE;
    }
    n = argc - optind;
    if (n > GROUP_USERS_MAX) {
        cli__fail("group create: at most %d members at once (add more with group add)",
                  GROUP_USERS_MAX);
        return EXIT_USAGE;
    }
    if (n > 0 && (rc = cli__users_ok(cli, "group create", n, argv + optind)) != EXIT_OK)
        return rc;
    if ((req = calloc(1, sizeof(*req))) == NULL) { /* 65 KB of user ids: not on the stack */
        cli__fail("group create: out of memory");
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
    if ((rc = cli__check(cli, "group create", rc, rsp.code, rsp.reason)) != EXIT_OK)
        return rc;
    if (!rsp.has_group || rsp.group.group_id[0] == '\0') {
        cli__fail("group create: the server's answer names no group");
        return EXIT_FAIL;
    }
    printf("%s\n", rsp.group.group_id);
    return EXIT_OK;
}

/* The G of "group <sub> G ...": @return EXIT_OK, or EXIT_USAGE (reported). */
static int group_arg(const cli_t *cli, int argc, char **argv, int min_argc, int max_argc)
{
    if (argc < min_argc || (max_argc > 0 && argc > max_argc) || argv[1][0] == '-')
        return cli__usage_of(cli, argv[0]);
    if (!cli__group_id_ok(argv[1])) {
        cli__fail("group %s: '%s' is not a group id (a decimal number)", argv[0], argv[1]);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* group join G: prints "joined <the group line>". */
int cli__cmd_group_join(cli_t *cli, int argc, char **argv)
{
    cim_GroupReq req = cim_GroupReq_init_zero;
    cim_GroupRsp rsp = cim_GroupRsp_init_zero;
    int rc;

    if ((rc = group_arg(cli, argc, argv, 2, 2)) != EXIT_OK)
        return rc;
    snprintf(req.group_id, sizeof(req.group_id), "%s", argv[1]);
    rc = cimc_call(cli->c, FT_GROUP_JOIN, cim_GroupReq_fields, &req, FT_GROUP_JOIN_ACK,
                   cim_GroupRsp_fields, &rsp);
    if ((rc = cli__check(cli, "group join", rc, rsp.code, rsp.reason)) != EXIT_OK)
        return rc;
    fputs("joined ", stdout);
    if (rsp.has_group)
        cli__print_group(stdout, &rsp.group);
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
    if ((rc = cli__call_result(cli, what, type, cim_GroupReq_fields, &req)) != EXIT_OK)
        return rc;
    printf("%s %s\n", done, argv[1]);
    return EXIT_OK;
}

int cli__cmd_group_leave(cli_t *cli, int argc, char **argv)
{
    return group_plain(cli, argc, argv, FT_GROUP_LEAVE, "group leave", "left");
}

int cli__cmd_group_dismiss(cli_t *cli, int argc, char **argv)
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
        (rc = cli__users_ok(cli, what, n, argv + 2)) != EXIT_OK)
        return rc;
    if (n > GROUP_USERS_MAX) {
        cli__fail("%s: at most %d users at once", what, GROUP_USERS_MAX);
        return EXIT_USAGE;
    }
    if ((req = calloc(1, sizeof(*req))) == NULL) {
        cli__fail("%s: out of memory", what);
        return EXIT_FAIL;
    }
    snprintf(req->group_id, sizeof(req->group_id), "%s", argv[1]);
    for (int i = 0; i < n; i++)
        snprintf(req->users[i], sizeof(req->users[i]), "%s", argv[2 + i]);
    req->users_count = (pb_size_t)n;
    rc = cli__call_result(cli, what, type, cim_GroupUsersReq_fields, req);
    free(req);
    if (rc != EXIT_OK)
        return rc;
    printf("%s %s:", done, argv[1]);
    for (int i = 2; i < argc; i++)
        printf(" %s", argv[i]);
    putchar('\n');
    return EXIT_OK;
}

int cli__cmd_group_add(cli_t *cli, int argc, char **argv)
{
    return group_users(cli, argc, argv, FT_GROUP_ADD, "group add", "added to");
}

int cli__cmd_group_kick(cli_t *cli, int argc, char **argv)
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
int cli__cmd_group_members(cli_t *cli, int argc, char **argv)
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
    if ((rc = cli__check(cli, "group members", rc, rsp.code, rsp.reason)) == EXIT_OK)
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
    cli__print_group(stdout, &g);
    return true;
}

/* group list: the groups I am in, one line each (print_group). */
int cli__cmd_group_list(cli_t *cli, int argc, char **argv)
{
    cim_Req req = cim_Req_init_zero;
    cim_GroupListRsp rsp = cim_GroupListRsp_init_zero;
    int rc;

    if (argc > 1)
        return cli__usage_of(cli, argv[0]);
    rsp.groups.funcs.decode = on_group;
    rc = cimc_call(cli->c, FT_GROUP_LIST, cim_Req_fields, &req, FT_GROUP_LIST_ACK,
                   cim_GroupListRsp_fields, &rsp);
    fflush(stdout);
    return cli__check(cli, "group list", rc, rsp.code, rsp.reason);
}
