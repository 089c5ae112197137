/* cli: contacts and blocks: contacts, contact add|remove, block, unblock. */
#include <pb_decode.h>

#include "cmd/cim/cli_int.h"
#include "core/frame.h"

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
int cli__cmd_contacts(cli_t *cli, int argc, char **argv)
{
    cim_Req req = cim_Req_init_zero;
    cim_ContactListRsp rsp = cim_ContactListRsp_init_zero;
    int rc;

    if ((rc = cli__no_args(cli__find_cmd(argv[0]), argc, argv)) != EXIT_OK)
        return rc;
    rsp.contacts.funcs.decode = on_contact;
    rc = cimc_call(cli->c, FT_CONTACT_LIST, cim_Req_fields, &req, FT_CONTACT_LIST_ACK,
                   cim_ContactListRsp_fields, &rsp);
    fflush(stdout);
    return cli__check(cli, "contacts", rc, rsp.code, rsp.reason);
}

/* contact add|remove USER, block USER, unblock USER */
static int user_op(cli_t *cli, int argc, char **argv, uint32_t type, const char *what,
                   const char *done)
{
    cim_UserReq req = cim_UserReq_init_zero;
    int rc;

    if (argc != 2 || argv[1][0] == '-')
        return cli__usage_of(cli, argv[0]);
    if ((rc = cli__users_ok(cli, what, 1, argv + 1)) != EXIT_OK)
        return rc;
    snprintf(req.user, sizeof(req.user), "%s", argv[1]);
    if ((rc = cli__call_result(cli, what, type, cim_UserReq_fields, &req)) != EXIT_OK)
        return rc;
    printf("%s %s\n", done, argv[1]);
    return EXIT_OK;
}

int cli__cmd_contact_add(cli_t *cli, int argc, char **argv)
{
    return user_op(cli, argc, argv, FT_CONTACT_ADD, "contact add", "added contact");
}

int cli__cmd_contact_remove(cli_t *cli, int argc, char **argv)
{
    return user_op(cli, argc, argv, FT_CONTACT_REMOVE, "contact remove", "removed contact");
}

int cli__cmd_block(cli_t *cli, int argc, char **argv)
{
    return user_op(cli, argc, argv, FT_BLOCK, "block", "blocked");
}

int cli__cmd_unblock(cli_t *cli, int argc, char **argv)
{
    return user_op(cli, argc, argv, FT_UNBLOCK, "unblock", "unblocked");
}
