/* cli: the interactive shell: a prompt running the command table, pushes printed as they
 * arrive, the heartbeat, and a new session when one ends.
 *
 * Input. On a terminal (stdin and stdout), lines are edited with libedit and kept in a
 * history (edit.c). Otherwise the lines come from a script or a pipe: no prompt, no
 * editing, at most LINE_MAX_LEN bytes a line (a longer one is skipped, with a note).
 * Everything happens in one poll loop over stdin and the connection, so pushes print
 * while a line is being typed.
 *
 * When the session ends, the shell says why on stderr: the server's BYE (its code and
 * reason), or the connection lost. Then:
 *  - BYE{KICKED}: it does not reconnect, and exits with status 1. A kick means another
 *    login took this device (the same --device, or a second shell on the host: the newer
 *    session wins, as PROTOCOL.md §6 wants), or an admin removed the session; coming back
 *    on its own would kick the newer session in turn, or defeat the admin.
 *  - anything else (SHUTTING_DOWN, TIMEOUT, SERVER_BUSY, a lost connection): it logs in
 *    again after RETRY_FIRST_MS, doubling the wait after every failed attempt up to
 *    RETRY_MAX_MS (each wait +-20% at random, so that many shells of a restarted server
 *    do not come back at the same instant); the wait starts over once a session lasted
 *    STABLE_MS. Typing a command that needs the server tries at once. A login the server
 *    refuses for good (UNAUTHORIZED: an expired token; another server key) ends the
 *    shell with status 1. Back online, it prints what arrived meanwhile: a SYNC from the
 *    newest message it had shown (pushes never skip, so that is all it missed).
 * The prompt reads "cim (offline)> " while there is no session.
 *
 * Exit status: that of the last command (0 after quit), 1 when kicked or refused. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cmd/cim/cli_int.h"
#include "core/rc.h"

#define LINE_MAX_LEN   4096
#define ARGV_MAX       64
#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS   30000
#define STABLE_MS      30000
#define PROMPT         "cim> "
#define PROMPT_OFFLINE "cim (offline)> "

typedef struct shell {
    cli_t *cli;
    int status;  /* the last command's exit status */
    bool eof;    /* stdin ended */
    bool editor; /* lines come from edit.c (a terminal), not from read() */
    /* lines read from a script or a pipe */
    char buf[LINE_MAX_LEN + 1];
    size_t have;
    bool discarding; /* skipping the rest of a line that was too long */
    /* sessions */
    int64_t retry_at;  /* offline: when to try again (cli__mono_ms) */
    int64_t backoff;   /* ms to wait after the next failed attempt */
    int64_t online_at; /* when the current session logged in */
} shell_t;

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

/* @p ms, give or take 20%. */
static int64_t jitter(int64_t ms)
{
    uint32_t r = 0;

    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
        r = (uint32_t)getpid();
    return ms * 8 / 10 + (int64_t)(r % (uint32_t)(ms * 4 / 10 + 1));
}

/* Plan the next attempt to log in. */
static void retry_later(shell_t *sh)
{
    int64_t wait = jitter(sh->backoff);

    sh->retry_at = cli__mono_ms() + wait;
    sh->backoff = sh->backoff * 2 < RETRY_MAX_MS ? sh->backoff * 2 : RETRY_MAX_MS;
    cli__note("reconnecting in %.1f s (quit to leave)", (double)wait / 1000.0);
}

/* The session is over: say why, then plan the next one, or end the shell. */
static void session_ended(shell_t *sh, int rc)
{
    cli_t *cli = sh->cli;
    const cim_Bye *bye;

    cli__drain_pushes(cli); /* what came before the end */
    bye = cimc_bye(cli->c);
    if (bye != NULL)
        cli__fail("session ended by the server: %s: %s", cimc_code_str(bye->code),
                  bye->reason[0] ? bye->reason : "(no reason given)");
    else
        cli__fail("connection to %s:%d lost: %s", cli->host, cli->port,
                  rc == RC_ECLOSED ? "closed by the server" : rc_str(rc));
    if (bye != NULL && bye->code == cim_Code_KICKED) {
        cli__fail("not reconnecting: another session took device %s (run the shell again to "
                  "take it back)",
                  cli->device);
        sh->status = EXIT_FAIL;
        cli->quit = true;
    }
    cimc_close(cli->c);
    cli->c = NULL;
    if (cli->quit)
        return;
    if (cli__mono_ms() - sh->online_at >= STABLE_MS)
        sh->backoff = RETRY_FIRST_MS; /* that session lasted: start the waits over */
    cli__edit_prompt(PROMPT_OFFLINE);
    retry_later(sh);
}

/* Log in again; print what arrived while there was no session. @return true if online. */
static bool reconnect(shell_t *sh)
{
    cli_t *cli = sh->cli;
    bool retry = true;
    sync_out_t o;

    if (cli__go_online(cli, &retry) != EXIT_OK) {
        if (!retry) {
            cli__fail("not reconnecting: the server refuses this login for good");
            sh->status = EXIT_FAIL;
            cli->quit = true;
            return false;
        }
        retry_later(sh);
        return false;
    }
    sh->online_at = cli__mono_ms();
    cli__note("reconnected as %s on %s:%d", cli->user, cli->host, cli->port);
    cli__edit_prompt(PROMPT);
    /* Pushes come for everything after the LoginRsp's latest_msg_id; the messages between
     * the newest one shown and that are in the timeline (1: from its start). */
    if (cli->session.latest_msg_id > cli->seen &&
        cli__sync_run(cli, "resume", cli->seen != 0 ? cli->seen : 1, 0, true, &o) != EXIT_OK)
        cli__fail("resume: showing only what comes from now on");
    return true;
}

/* 0 while the session lasts, else why it ended (the BYE, EOF or an error). Reads what
 * the connection holds now (pushes are queued), without waiting. */
static int session_state(cli_t *cli)
{
    int rc;

    if (cimc_bye(cli->c) != NULL)
        return RC_ECLOSED;
    rc = cimc_poll(cli->c);
    return rc < 0 ? rc : cimc_bye(cli->c) != NULL ? RC_ECLOSED : 0;
}

/* Run one line: a command of the table (not those only for the command line). */
static void run_line(shell_t *sh, char *line)
{
    cli_t *cli = sh->cli;
    char *argv[ARGV_MAX + 1];
    const cmd_t *cmd;
    int argc, rc;

    line[strcspn(line, "\r\n")] = '\0';
    if ((argc = split_words(line, argv, ARGV_MAX)) < 0) {
        cli__fail("cannot parse the line (unbalanced quote or too many words)");
        sh->status = EXIT_USAGE;
        return;
    }
    if (argc == 0 || argv[0][0] == '#')
        return;
    argv[argc] = NULL;
    if ((cmd = cli__find_cmd(argv[0])) == NULL || (cmd->flags & CMD_NOT_SHELL)) {
        cli__fail("%s: %s (type help)", argv[0],
                  cmd == NULL ? "unknown command" : "not available in the shell");
        sh->status = EXIT_USAGE;
        return;
    }
    if ((cmd->flags & CMD_ONLINE) && cli->c == NULL && !reconnect(sh)) {
        if (!cli->quit)
            cli__fail("%s: not connected", argv[0]);
        sh->status = EXIT_FAIL;
        return;
    }
    cli__getopt_reset();
    sh->status = cmd->run(cli, argc, argv);
    cli__drain_pushes(cli);
    fflush(stdout); /* whole answers, also to a pipe (a program driving the shell) */
    if (cli->c != NULL && (rc = session_state(cli)) < 0)
        session_ended(sh, rc);
}

/* edit.c's line callback. */
static void on_edit_line(char *line, void *ctx)
{
    shell_t *sh = ctx;

    if (line == NULL) { /* Ctrl-D */
        sh->eof = true;
        putchar('\n');
        return;
    }
    run_line(sh, line);
}

/* stdin is readable (a script or a pipe): run the whole lines it brings, and at its end
 * the last one even without a newline. */
static void read_lines(shell_t *sh)
{
    ssize_t r = read(STDIN_FILENO, sh->buf + sh->have, LINE_MAX_LEN - sh->have);
    char *nl;

    if (r < 0 && errno == EINTR)
        return;
    if (r < 0) {
        cli__fail("stdin: %s", strerror(errno));
        sh->status = EXIT_FAIL;
        sh->eof = true;
        return;
    }
    if (r == 0)
        sh->eof = true;
    sh->have += (size_t)r;
    while (!sh->cli->quit &&
           ((nl = memchr(sh->buf, '\n', sh->have)) != NULL || (sh->eof && sh->have > 0))) {
        size_t len = nl != NULL ? (size_t)(nl - sh->buf) : sh->have;
        sh->buf[len] = '\0';
        if (!sh->discarding)
            run_line(sh, sh->buf);
        sh->discarding = false;
        len = nl != NULL ? len + 1 : sh->have;
        memmove(sh->buf, sh->buf + len, sh->have - len);
        sh->have -= len;
    }
    if (sh->have == LINE_MAX_LEN) {
        cli__fail("line too long (over %d bytes); ignored", LINE_MAX_LEN);
        sh->have = 0;
        sh->discarding = true; /* the rest of that line, up to its newline */
    }
}

int cli__cmd_shell(cli_t *cli, int argc, char **argv)
{
    shell_t *sh;
    struct pollfd pfd[2];
    int64_t wait;
    int rc, n, in, conn;

    if ((rc = cli__no_args(cli__find_cmd(argv[0]), argc, argv)) != EXIT_OK)
        return rc;
    if ((sh = calloc(1, sizeof(*sh))) == NULL) {
        cli__fail("shell: out of memory");
        return EXIT_FAIL;
    }
    sh->cli = cli;
    sh->backoff = RETRY_FIRST_MS;
    sh->online_at = cli__mono_ms();
    cli->in_shell = true;
    cli->seen = cli->session.latest_msg_id; /* pushes bring what comes after it */
    if (isatty(STDIN_FILENO) && isatty(STDOUT_FILENO))
        printf("logged in as %s on %s:%d (device %s); type help\n", cli->user, cli->host, cli->port,
               cli->device);
    cli->tty = sh->editor = cli__edit_start(PROMPT, on_edit_line, sh);
    while (!cli->quit && !sh->eof) {
        n = 0;
        in = conn = -1;
        pfd[in = n++] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
        if (cli->c != NULL) {
            pfd[conn = n++] = (struct pollfd){.fd = cimc_fd(cli->c), .events = POLLIN};
            wait = cimc_ping_due_ms(cli->c);
        } else {
            wait = sh->retry_at - cli__mono_ms();
            wait = wait < 0 ? 0 : wait;
        }
        cli__edit_show();
        n = poll(pfd, (nfds_t)n, wait < 0 ? -1 : wait > INT32_MAX ? INT32_MAX : (int)wait);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            cli__fail("poll: %s", strerror(errno));
            sh->status = EXIT_FAIL;
            break;
        }
        if (n == 0 && cli->c == NULL) {
            (void)reconnect(sh); /* a failure is reported and the next attempt planned */
            continue;
        }
        if (n == 0) {
            /* Quiet for heartbeat_s: keep the session alive (PROTOCOL.md §3). */
            if ((rc = cimc_ping(cli->c, NULL)) < 0)
                session_ended(sh, rc);
            else
                cli__drain_pushes(cli);
            continue;
        }
        if (conn >= 0 && pfd[conn].revents != 0) {
            rc = cimc_poll(cli->c);
            cli__drain_pushes(cli);
            if (rc < 0 || cimc_bye(cli->c) != NULL)
                session_ended(sh, rc < 0 ? rc : RC_ECLOSED);
        }
        if (in >= 0 && pfd[in].revents != 0 && !cli->quit) {
            if (sh->editor)
                cli__edit_read();
            else
                read_lines(sh);
        }
    }
    cli__edit_stop();
    rc = sh->status;
    free(sh);
    return rc;
}
