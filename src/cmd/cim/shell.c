/* cli: the interactive shell. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cim/cli_int.h"

#define LINE_MAX_LEN 4096
#define ARGV_MAX     64

int cli__cmd_quit(cli_t *cli, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli->quit = true;
    return EXIT_OK;
}

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
        cli__fail("cannot parse the line (unbalanced quote or too many words)");
        return EXIT_USAGE;
    }
    if (argc == 0 || argv[0][0] == '#')
        return EXIT_OK;
    argv[argc] = NULL;
    if ((cmd = cli__find_cmd(argv[0])) == NULL || (cmd->flags & CMD_NOT_SHELL)) {
        cli__fail("%s: %s (type help)", argv[0],
                  cmd == NULL ? "unknown command" : "not available in the shell");
        return EXIT_USAGE;
    }
    cli__getopt_reset();
    return cmd->run(cli, argc, argv);
}

static void prompt(const cli_t *cli)
{
    if (cli->tty) {
        fputs("cim> ", stdout);
        fflush(stdout);
    }
}

int cli__cmd_shell(cli_t *cli, int argc, char **argv)
{
    char buf[LINE_MAX_LEN + 1];
    size_t have = 0;
    bool discarding = false, eof = false;
    struct pollfd pfd[2];
    int64_t due;
    int rc, n, status = EXIT_OK;
    ssize_t r;
    char *nl;

    if ((rc = cli__no_args(cli__find_cmd(argv[0]), argc, argv)) != EXIT_OK)
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
            cli__drain_pushes(cli);
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
            cli__fail("poll: %s", strerror(errno));
            return EXIT_FAIL;
        }
        if (n == 0) {
            /* Quiet for heartbeat_s: keep the session alive (PROTOCOL.md §3). */
            if ((rc = cimc_ping(cli->c, NULL)) < 0) {
                cli__drain_pushes(cli);
                cli__fail_rc(cli, "heartbeat", rc);
                return EXIT_FAIL;
            }
            cli__drain_pushes(cli);
            continue;
        }
        if (pfd[1].revents != 0) {
            rc = cimc_poll(cli->c);
            cli__drain_pushes(cli);
            if (rc < 0) {
                if (cimc_bye(cli->c) == NULL)
                    cli__fail_rc(cli, "connection", rc);
                return EXIT_FAIL;
            }
            prompt(cli);
        }
        if (pfd[0].revents != 0) {
            r = read(STDIN_FILENO, buf + have, LINE_MAX_LEN - have);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                cli__fail("stdin: %s", strerror(errno));
                return EXIT_FAIL;
            }
            if (r == 0) {
                eof = true;
                continue;
            }
            have += (size_t)r;
            if (have == LINE_MAX_LEN && memchr(buf, '\n', have) == NULL) {
                cli__fail("line too long (over %d bytes); ignored", LINE_MAX_LEN);
                have = 0;
                discarding = true; /* the rest of that line, up to its newline */
            }
        }
    }
    if (cli->tty && !cli->quit)
        putchar('\n');
    return status;
}
