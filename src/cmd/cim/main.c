/* cim: the command-line client, on libcim's blocking API.
 *
 *   cim [OPTIONS] COMMAND [ARGS]      one command, then exit (0 on success)
 *   cim [OPTIONS] shell               an interactive prompt running the same commands
 *
 * This file holds the options, the command table (the one place a command is added) and
 * the one-shot run; cli_int.h describes the rest and which file holds what. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cim/cli_int.h"
#include "core/log.h"
#include "core/version.h"

static const cmd_t commands[];

const cmd_t *cli__find_cmd(const char *name)
{
    for (const cmd_t *c = commands; c->name != NULL; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    if (strcmp(name, "exit") == 0)
        return cli__find_cmd("quit");
    return NULL;
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

/* Subcommands of group (flags come from the group row). */
static const cmd_t group_cmds[] = {
    {"create", cli__cmd_group_create, "NAME [--open] [MEMBER...]",
     "new group, you its owner: prints its id", 0, NULL},
    {"join", cli__cmd_group_join, "G", "join an open group", 0, NULL},
    {"add", cli__cmd_group_add, "G USER...", "add users (any member may)", 0, NULL},
    {"leave", cli__cmd_group_leave, "G", "leave a group", 0, NULL},
    {"kick", cli__cmd_group_kick, "G USER...", "remove members (owner only)", 0, NULL},
    {"dismiss", cli__cmd_group_dismiss, "G", "end the group (owner only)", 0, NULL},
    {"members", cli__cmd_group_members, "G", "one member per line, the owner marked", 0, NULL},
    {"list", cli__cmd_group_list, "", "your groups: id name owner members open|closed", 0, NULL},
    {NULL, NULL, NULL, NULL, 0, NULL},
};

static const cmd_t contact_cmds[] = {
    {"add", cli__cmd_contact_add, "USER", "add to your contacts (presence events follow)", 0, NULL},
    {"remove", cli__cmd_contact_remove, "USER", "remove from your contacts", 0, NULL},
    {NULL, NULL, NULL, NULL, 0, NULL},
};

/* The command table: the one place a command is added. */
static const cmd_t commands[] = {
    {"login", cli__cmd_session, "", "log in and print the session", CMD_ONLINE, NULL},
    {"whoami", cli__cmd_session, "", "print the session", CMD_ONLINE, NULL},
    {"ping", cli__cmd_ping, "", "measure the round trip to the server", CMD_ONLINE, NULL},
    {"send", cli__cmd_send,
     "--to USER|--group G [--type T] [--transient] [--id CMID] TEXT...|-",
     "send a message: the words, or - for stdin", CMD_ONLINE, NULL},
    {"sync", cli__cmd_sync, "[--after ID] [--limit N] [--all|--page] [--ack]",
     "messages this device has not acknowledged", CMD_ONLINE | CMD_CURSOR, NULL},
    {"timeline", cli__cmd_timeline, "", "the whole timeline from the start (acknowledges nothing)",
     CMD_ONLINE, NULL},
    {"listen", cli__cmd_listen, "[--count N] [--timeout S] [--ack]",
     "print messages and events as they arrive", CMD_ONLINE | CMD_PUSHES | CMD_CURSOR, NULL},
    {"group", cli__cmd_sub, "create|join|add|leave|kick|dismiss|members|list ...", "groups",
     CMD_ONLINE, group_cmds},
    {"convs", cli__cmd_convs, "", "conversations, newest first, with unread counts", CMD_ONLINE,
     NULL},
    {"history", cli__cmd_history, "(--with USER | --group G) [--before ID] [--limit N] [--all]",
     "a conversation's messages, paging backwards", CMD_ONLINE, NULL},
    {"read", cli__cmd_read, "(--with USER | --group G) [--up-to ID]",
     "mark a conversation read (up to ID; default everything)", CMD_ONLINE, NULL},
    {"recall", cli__cmd_recall, "MSG_ID", "recall a message you sent (within the recall window)",
     CMD_ONLINE, NULL},
    {"typing", cli__cmd_typing, "--to USER | --group G",
     "send a typing indicator (transient CUSTOM \"typing\")", CMD_ONLINE, NULL},
    {"contacts", cli__cmd_contacts, "", "your contacts: user online|offline [blocked]", CMD_ONLINE,
     NULL},
    {"contact", cli__cmd_sub, "add|remove USER", "contacts", CMD_ONLINE, contact_cmds},
    {"block", cli__cmd_block, "USER", "refuse USER's messages (their send gets BLOCKED)",
     CMD_ONLINE, NULL},
    {"unblock", cli__cmd_unblock, "USER", "accept USER's messages again", CMD_ONLINE, NULL},
    {"shell", cli__cmd_shell, "", "interactive prompt: pushes shown, line editing, reconnects",
     CMD_ONLINE | CMD_NOT_SHELL | CMD_SHELL_DEVICE, NULL},
    {"help", cmd_help, "", "list the commands", 0, NULL},
    {"quit", cli__cmd_quit, "", "leave the shell (also: exit, end of input)", CMD_SHELL_ONLY, NULL},
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
               "  --device ID       device id (default: by command, see 'devices' below)\n"
               "  --kind K          device kind: mobile, desktop, web or bot (default desktop)\n"
               "  --timeout MS      connect and answer timeout (default 10000)\n"
               "  -v, --verbose     library debug logging, and pushes, on stderr\n"
               "  -h, --help        this help\n"
               "  --version         print the version and exit\n"
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
                "devices: the server keeps a delivery cursor per device (moved by acks: sync\n"
                "--ack, listen --ack) and a login with the device id of a live session kicks\n"
                "that session. Without --device cim therefore picks:\n"
                "  sync, listen   cli-<hostname>: this host's command-line device; its cursor\n"
                "                 carries over from one run to the next\n"
                "  shell          cli-<hostname>-shell: the shell's own device, so that no\n"
                "                 other command kicks it (a second shell replaces the first)\n"
                "  the others     cli-<hostname>-<random>, fresh every run: they acknowledge\n"
                "                 nothing, so the server keeps no cursor for them and nothing\n"
                "                 piles up however often they run\n"
                "  --device ID picks one for any command (two live sessions with the same ID:\n"
                "  the newer kicks the older).\n"
                "\n"
                "shell: on a terminal, lines are edited with libedit (arrows, Ctrl-A/E, ...)\n"
                "and kept in $XDG_STATE_HOME/cim/history (else ~/.local/state/cim/history;\n"
                "the last 1000; a line that starts with a blank is not kept). Pushes print\n"
                "as they arrive. When the session ends the shell says why (the server's\n"
                "BYE, or the connection lost). KICKED (another login took its device): it\n"
                "exits 1. Otherwise it logs in again after 1 s, doubling the wait up to\n"
                "30 s (a command typed meanwhile tries at once), and then prints what\n"
                "arrived while it was away. Ctrl-D or quit leaves.\n"
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
        O_TIMEOUT,
        O_VERSION
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
        {"version", no_argument, NULL, O_VERSION},
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
                cli__fail("--port: expected 1..65535, got '%s'", optarg);
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
            if (cli__kind_parse(optarg, &cli.kind) < 0) {
                cli__fail("--kind: expected mobile, desktop, web or bot, got '%s'", optarg);
                return EXIT_USAGE;
            }
            break;
        case O_TIMEOUT:
            errno = 0;
            tmo = strtol(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || end == optarg || tmo < 1 || tmo > 3600000) {
                cli__fail("--timeout: expected milliseconds (1..3600000), got '%s'", optarg);
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
        case O_VERSION:
            version_print("cim");
            return EXIT_OK;
        default:
            cli__fail("see cim --help");
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        cli__fail("missing command (see cim --help)");
        return EXIT_USAGE;
    }
    cmd_i = optind;
    if ((cmd = cli__find_cmd(argv[cmd_i])) == NULL || (cmd->flags & CMD_SHELL_ONLY)) {
        cli__fail("unknown command '%s' (see cim --help)", argv[cmd_i]);
        return EXIT_USAGE;
    }

    if (cmd->flags & CMD_ONLINE) {
        if (key_hex != NULL && cli.tofu) {
            cli__fail("--key and --tofu exclude each other");
            return EXIT_USAGE;
        }
        if (key_hex == NULL && !cli.tofu && (key_hex = getenv("CIM_KEY")) != NULL &&
            key_hex[0] == '\0')
            key_hex = NULL;
        if (key_hex != NULL) {
            if (strlen(key_hex) != 2 * CHAN_KEY || chan_unhex(key_hex, cli.key) < 0) {
                cli__fail("%s: expected 64 hex characters",
                          getenv("CIM_KEY") == key_hex ? "CIM_KEY" : "--key");
                return EXIT_USAGE;
            }
            cli.has_key = true;
        }
        if (!cli.has_key && !cli.tofu) {
            cli__fail("no server key: give --key HEX (see cimctl show-key), set CIM_KEY, or use "
                          "--tofu");
            return EXIT_USAGE;
        }
        if (cli.user == NULL || cli.user[0] == '\0') {
            cli__fail("missing --user (see cim --help)");
            return EXIT_USAGE;
        }
        if (cli.token == NULL && (cli.token = getenv("CIM_TOKEN")) == NULL) {
            cli__fail("missing token: give --token T or set CIM_TOKEN");
            return EXIT_USAGE;
        }
        if (device != NULL)
            snprintf(cli.device, sizeof(cli.device), "%s", device);
        else
            cli__pick_device(cmd, cli.device, sizeof(cli.device));
        if ((rc = cli__go_online(&cli, NULL)) != EXIT_OK)
            goto out;
        if (!(cmd->flags & CMD_PUSHES))
            cli__drain_pushes(&cli);
    }
    cli__getopt_reset();
    rc = cmd->run(&cli, argc - cmd_i, argv + cmd_i); /* its argv[0] is its name */
    cli__drain_pushes(&cli);
out:
    cimc_close(cli.c);
    return rc;
}

