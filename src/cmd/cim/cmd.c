/* cli: dispatch helpers, argument checks, and how a command reports (cli_int.h). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/cim/cli_int.h"
#include "core/rc.h"

/* ---- reporting ------------------------------------------------------------------------ */

/* One line on stderr after what stdout holds so far, prefixed "cim: ". */
static void say(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

static void say(const char *fmt, va_list ap)
{
    cli__edit_hide(); /* in the shell, between keystrokes: not over the prompt */
    fflush(stdout);
    fputs("cim: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli__fail(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    say(fmt, ap);
    va_end(ap);
}

void cli__note(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    say(fmt, ap);
    va_end(ap);
}

/* Report a failed request on the connection, naming the BYE when the server said one. */
void cli__fail_rc(const cli_t *cli, const char *what, int rc)
{
    const cim_Bye *bye = cimc_bye(cli->c);

    if (rc == RC_ECLOSED && bye != NULL)
        cli__fail("%s: server closed the connection: %s: %s", what, cimc_code_str(bye->code),
                  bye->reason);
    else if (rc == RC_ECLOSED)
        cli__fail("%s: server closed the connection", what);
    else
        cli__fail("%s: %s:%d: %s", what, cli->host, cli->port, rc_str(rc));
}

/* ---- dispatch and arguments ---------------------------------------------------------- */

/* Reset getopt for a handler's own options (argv[0] is the command name). */
void cli__getopt_reset(void)
{
    optind = 0; /* GNU: 0 reinitialises, also forgetting a previous scan's state */
    opterr = 1;
}

/* A handler that takes no arguments. */
int cli__no_args(const cmd_t *cmd, int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        cli__fail("%s takes no arguments (usage: %s%s%s)", cmd->name, cmd->name,
                  cmd->args[0] ? " " : "", cmd->args);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

int cli__cmd_usage(const cmd_t *cmd)
{
    cli__fail("usage: %s%s%s", cmd->name, cmd->args[0] ? " " : "", cmd->args);
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
int cli__arg_u64(const char *name, const char *s, uint64_t min, uint64_t max, const char *expected,
                 uint64_t *out)
{
    if (parse_u64(s, min, max, out) == 0)
        return 0;
    cli__fail("%s: expected %s, got '%s'", name, expected, s);
    return -1;
}

/* --limit N: 1..@p max messages per page. @return 0, or -1 (reported). */
int cli__arg_limit(const char *s, uint32_t max, uint32_t *limit)
{
    uint64_t v;

    if (parse_u64(s, 1, max, &v) < 0) {
        cli__fail("--limit: expected 1..%" PRIu32 " messages per page, got '%s'", max, s);
        return -1;
    }
    *limit = (uint32_t)v;
    return 0;
}

int64_t cli__mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether @p s is a group id as the server assigns them: 1..19 decimal digits, no
 * leading zero. */
bool cli__group_id_ok(const char *s)
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
bool cli__peer_arg_ok(const char *what, bool group, const char *s)
{
    if (group ? cli__group_id_ok(s) : user_id_ok(s))
        return true;
    if (group)
        cli__fail("%s: '%s' is not a group id (a decimal number)", what, s);
    else
        cli__fail("%s: the user id must be 1..64 bytes", what);
    return false;
}

/* The outcome of a request: the rc of the call, then the code of its answer. */
int cli__check(cli_t *cli, const char *what, int rc, cim_Code code, const char *reason)
{
    if (rc < 0) {
        cli__fail_rc(cli, what, rc);
        return EXIT_FAIL;
    }
    if (code != cim_Code_OK) {
        cli__fail("%s refused: %s: %s", what, cimc_code_str(code), reason);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* The row named @p name: while a subcommand runs, among its command's subcommands. */
static const cmd_t *find_row(const cli_t *cli, const char *name)
{
    if (cli->parent != NULL)
        for (const cmd_t *c = cli->parent->sub; c->name != NULL; c++)
            if (strcmp(c->name, name) == 0)
                return c;
    return cli__find_cmd(name);
}

/* "cim: usage: group create NAME [--open] [MEMBER...]" */
int cli__usage_of(const cli_t *cli, const char *name)
{
    const cmd_t *c = find_row(cli, name);

    if (c == NULL)
        return EXIT_USAGE;
    cli__fail("usage: %s%s%s%s%s", cli->parent != NULL ? cli->parent->name : "",
              cli->parent != NULL ? " " : "", c->name, c->args[0] ? " " : "", c->args);
    return EXIT_USAGE;
}

/* A request answered with a Result. */
int cli__call_result(cli_t *cli, const char *what, uint32_t type, const pb_msgdesc_t *fields,
                     void *req)
{
    cim_Result res = cim_Result_init_zero;
    int rc = cimc_call(cli->c, type, fields, req, type + 1, cim_Result_fields, &res);

    return cli__check(cli, what, rc, res.code, res.reason);
}

/* Check the USER... words of a command: at least one, each a possible user id. */
int cli__users_ok(const cli_t *cli, const char *name, int n, char **users)
{
    if (n < 1)
        return cli__usage_of(cli, name);
    for (int i = 0; i < n; i++)
        if (!user_id_ok(users[i])) {
            cli__fail("%s: user ids are 1..64 bytes, got '%s'", name, users[i]);
            return EXIT_USAGE;
        }
    return EXIT_OK;
}

/* A command with subcommands: run the one named by the second word. */
int cli__cmd_sub(cli_t *cli, int argc, char **argv)
{
    const cmd_t *cmd = cli__find_cmd(argv[0]), *s;
    int rc;

    if (argc < 2 || argv[1][0] == '-') {
        cli__fail("usage: %s %s (see help)", cmd->name, cmd->args);
        return EXIT_USAGE;
    }
    for (s = cmd->sub; s->name != NULL; s++)
        if (strcmp(s->name, argv[1]) == 0)
            break;
    if (s->name == NULL) {
        cli__fail("%s: unknown subcommand '%s' (%s)", cmd->name, argv[1], cmd->args);
        return EXIT_USAGE;
    }
    cli->parent = cmd;
    cli__getopt_reset();
    rc = s->run(cli, argc - 1, argv + 1); /* its argv[0] is its own name */
    cli->parent = NULL;
    return rc;
}
