/* Integration: the first-run traps of issue 10 in the cim CLI, against a real cimd.
 *
 *  - --version on cim and cimdump;
 *  - one-shot commands without --device log in as a fresh device, so they never kick a
 *    live shell of the same user, and leave no delivery cursor behind; sync and listen
 *    keep this host's device and its cursor;
 *  - the shell on a terminal (a pty): libedit's line editing and bounded history file,
 *    pushes printed while a line is being typed, and what it does when its session
 *    ends: kicked by the same device (says so, exits 1), the server restarted (says so,
 *    reconnects), the session timed out meanwhile (reconnects and SYNCs what it missed). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/chan.h"
#include "core/version.h"
#include "support/pty.h"
#include "support/server.h"
#include "support/test.h"

typedef struct env {
    tsrv_t t;
    char port[16];
    char key[65];
    char alice[512]; /* tokens */
    char bob[512];
    char state[64];     /* XDG_STATE_HOME of the shells: a temporary directory */
    char state_env[96]; /* "XDG_STATE_HOME=..." */
} env_t;

/* A server (with the extra flags, up to two pairs; NULL ends them), alice and bob registered,
 * their tokens; the shells keep their history in a directory of their own. */
static void env_start(env_t *e, const char *f1, const char *v1, const char *f2, const char *v2)
{
    char out[256];

    tsrv_start(&e->t, f1, v1, f2, v2, NULL);
    ASSERT_EQ(
        tsrv_run_tool(out, sizeof(out), "cimctl", "--data", e->t.dir, "user", "add", "bob", NULL),
        0);
    ASSERT_EQ(
        tsrv_run_tool(out, sizeof(out), "cimctl", "--data", e->t.dir, "user", "add", "alice", NULL),
        0);
    snprintf(e->port, sizeof(e->port), "%d", e->t.port);
    chan_hex(e->t.key, e->key);
    tsrv_token(&e->t, "", "alice", 3600, e->alice, sizeof(e->alice));
    tsrv_token(&e->t, "", "bob", 3600, e->bob, sizeof(e->bob));
    snprintf(e->state, sizeof(e->state), "/tmp/cimtest-state-XXXXXX");
    ASSERT_NOT_NULL(mkdtemp(e->state));
    snprintf(e->state_env, sizeof(e->state_env), "XDG_STATE_HOME=%s", e->state);
}

static void env_stop(env_t *e)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->state);
    ASSERT_EQ(system(cmd), 0);
    ASSERT_EQ(tsrv_stop(&e->t), 0);
}

/* cim as USER without --device (the defaults are what is tested), stdout into OUT. */
#define CIM(e, out, user, ...)                                                                     \
    tsrv_run_tool((out), sizeof(out), "cim", "--port", (e)->port, "--key", (e)->key, "--user",     \
                  #user, "--token", (e)->user, __VA_ARGS__, NULL)

/* alice's shell on a terminal, its history under e->state. */
static void shell_start(env_t *e, tpty_t *p)
{
    const char *env[] = {e->state_env, NULL};

    tpty_start(p, env, "cim", "--port", e->port, "--key", e->key, "--user", "alice", "--token",
               e->alice, "shell", NULL);
}

#define EXPECT(p, needle, ms)                                                                      \
    do {                                                                                           \
        if (!tpty_expect((p), (needle), (ms))) {                                                   \
            tpty_dump(p);                                                                          \
            TEST_FAIL_("the terminal did not show \"%s\"", (needle));                              \
        }                                                                                          \
    } while (0)

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- --version --------------------------------------------------------------------- */

TEST(e2e_cli_version)
{
    char out[256], want[128];

    /* no server, key or user needed */
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cim", "--version", NULL), 0);
    snprintf(want, sizeof(want), "cim %s\n", cim_version);
    ASSERT_STREQ(out, want);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimdump", "--version", NULL), 0);
    snprintf(want, sizeof(want), "cimdump %s\n", cim_version);
    ASSERT_STREQ(out, want);
    ASSERT_TRUE(strlen(cim_version) > 0);
}

/* ---- devices of one-shot commands -------------------------------------------------- */

/* The device id in the output of `cim login` / `cim whoami`. */
static void device_of(const char *out, char *dev, size_t n)
{
    const char *d = strstr(out, "device:       ");

    ASSERT_NOT_NULL(d);
    d += strlen("device:       ");
    snprintf(dev, n, "%.*s", (int)strcspn(d, " \n"), d);
}

/* "cli-<host>-<8 hex digits>", at most 64 bytes. */
static bool oneshot_id(const char *dev)
{
    const char *dash = strrchr(dev, '-');

    if (strncmp(dev, "cli-", 4) != 0 || strlen(dev) > 64 || dash == NULL || strlen(dash) != 9)
        return false;
    for (const char *c = dash + 1; *c != '\0'; c++)
        if (strchr("0123456789abcdef", *c) == NULL)
            return false;
    return true;
}

TEST_TIMEOUT(e2e_cli_oneshot_does_not_kick_the_shell, 60)
{
    env_t e;
    tpty_t p;
    char out[8192];

    env_start(&e, NULL, NULL, NULL, NULL);
    shell_start(&e, &p);
    EXPECT(&p, "logged in as alice", 10000);
    EXPECT(&p, "cim> ", 10000);

    /* one-shot commands of the same user, all without --device */
    ASSERT_EQ(CIM(&e, out, alice, "send", "--to", "bob", "from a script"), 0);
    ASSERT_EQ(CIM(&e, out, alice, "history", "--with", "bob"), 0);
    ASSERT_EQ(CIM(&e, out, alice, "sync"), 0);
    ASSERT_EQ(CIM(&e, out, alice, "convs"), 0);

    /* the shell is still there: it got the push of the script's message (to the sender's
     * other devices) and answers a command */
    EXPECT(&p, " alice -> bob [text] from a script", 10000);
    tpty_type(&p, "ping\r");
    EXPECT(&p, "pong from 127.0.0.1:", 10000);
    ASSERT_NULL(strstr(p.out, "KICKED"));
    tpty_type(&p, "quit\r");
    ASSERT_EQ(tpty_finish(&p, 10000), 0);
    env_stop(&e);
}

TEST_TIMEOUT(e2e_cli_oneshot_devices_leave_no_cursor, 60)
{
    env_t e;
    char out[8192], dev1[128], dev2[128], want[128], host[256] = "";

    env_start(&e, NULL, NULL, NULL, NULL);
    ASSERT_EQ(CIM(&e, out, alice, "send", "--to", "bob", "one"), 0);
    ASSERT_EQ(CIM(&e, out, alice, "send", "--to", "bob", "two"), 0);

    /* every one-shot run is a device of its own: cli-<host>-<8 hex> */
    ASSERT_EQ(CIM(&e, out, alice, "whoami"), 0);
    device_of(out, dev1, sizeof(dev1));
    ASSERT_EQ(CIM(&e, out, alice, "whoami"), 0);
    device_of(out, dev2, sizeof(dev2));
    ASSERT_TRUE(oneshot_id(dev1));
    ASSERT_TRUE(oneshot_id(dev2));
    ASSERT_TRUE(strcmp(dev1, dev2) != 0);

    /* sync keeps this host's device: what --ack moved stays moved for the next run */
    ASSERT_EQ(CIM(&e, out, bob, "sync", "--ack"), 0);
    ASSERT_NOT_NULL(strstr(out, " alice -> bob [text] one\n"));
    ASSERT_NOT_NULL(strstr(out, " alice -> bob [text] two\n"));
    ASSERT_EQ(CIM(&e, out, bob, "sync"), 0);
    ASSERT_STREQ(out, "");

    /* the server holds a cursor for bob's one device, and none for alice's runs */
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimdump", "--data", e.t.dir, "--json", "user",
                            "alice", NULL),
              0);
    ASSERT_NOT_NULL(strstr(out, "\"devices\":[]"));
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimdump", "--data", e.t.dir, "--json", "user", "bob",
                            NULL),
              0);
    ASSERT_EQ(gethostname(host, sizeof(host) - 1), 0);
    snprintf(want, sizeof(want), "\"devices\":[{\"device\":\"cli-%.12s", host);
    ASSERT_NOT_NULL(strstr(out, want));
    ASSERT_NULL(strstr(strstr(out, want) + strlen(want), "\"device\":")); /* one */
    env_stop(&e);
}

/* ---- the shell on a terminal ------------------------------------------------------- */

TEST_TIMEOUT(e2e_cli_shell_history_and_line_editing, 60)
{
    env_t e;
    tpty_t p;
    char path[128], line[64];
    struct stat st;
    FILE *f;
    int n = 0;
    char last[2][64] = {"", ""};

    env_start(&e, NULL, NULL, NULL, NULL);
    /* a history longer than it may grow: the shell keeps the newest 1000 lines */
    snprintf(path, sizeof(path), "%s/cim", e.state);
    ASSERT_OK(mkdir(path, 0700));
    snprintf(path, sizeof(path), "%s/cim/history", e.state);
    ASSERT_NOT_NULL(f = fopen(path, "w"));
    fputs("_HiStOrY_V2_\n", f);
    for (int i = 1; i <= 1500; i++)
        fprintf(f, "old\\040%d\n", i);
    ASSERT_OK(fclose(f));
    ASSERT_OK(chmod(path, 0644));

    shell_start(&e, &p);
    EXPECT(&p, "cim> ", 10000);
    tpty_type(&p, "ping\r");
    EXPECT(&p, "pong from", 10000);
    /* the up arrow brings the last line back */
    EXPECT(&p, "cim> ", 10000);
    tpty_type(&p, "\x1b[A\r");
    EXPECT(&p, "pong from", 10000);
    /* editing: "ing", Ctrl-A (start of line), "p": "ping" */
    EXPECT(&p, "cim> ", 10000);
    tpty_type(&p, "ing\x01p\r");
    EXPECT(&p, "pong from", 10000);
    /* a line that starts with a blank is not kept */
    EXPECT(&p, "cim> ", 10000);
    tpty_type(&p, " secret\r");
    EXPECT(&p, "unknown command", 10000);
    EXPECT(&p, "cim> ", 10000);
    tpty_type(&p, "quit\r");
    ASSERT_EQ(tpty_finish(&p, 10000), 0);

    ASSERT_OK(stat(path, &st));
    ASSERT_EQ(st.st_mode & 0777, 0600); /* it holds what was typed */
    ASSERT_NOT_NULL(f = fopen(path, "r"));
    ASSERT_NOT_NULL(fgets(line, sizeof(line), f));
    ASSERT_STREQ(line, "_HiStOrY_V2_\n");
    while (fgets(line, sizeof(line), f) != NULL) {
        ASSERT_NULL(strstr(line, "secret"));
        memcpy(last[0], last[1], sizeof(last[0]));
        snprintf(last[1], sizeof(last[1]), "%s", line);
        n++;
    }
    ASSERT_OK(fclose(f));
    ASSERT_EQ(n, 1000);
    ASSERT_STREQ(last[0], "ping\n"); /* once: a repeat of the line before is not kept */
    ASSERT_STREQ(last[1], "quit\n");
    env_stop(&e);
}

TEST_TIMEOUT(e2e_cli_shell_push_keeps_the_line_being_typed, 60)
{
    env_t e;
    tpty_t p;
    char out[8192];

    env_start(&e, NULL, NULL, NULL, NULL);
    shell_start(&e, &p);
    EXPECT(&p, "cim> ", 10000);
    tpty_type(&p, "send bob half a li");
    EXPECT(&p, "half a li", 10000);
    ASSERT_EQ(CIM(&e, out, bob, "send", "--to", "alice", "meanwhile"), 0);
    EXPECT(&p, " bob -> alice [text] meanwhile", 10000);
    /* the prompt and the half-typed line are drawn again under it */
    EXPECT(&p, "cim> send bob half a li", 10000);
    tpty_type(&p, "ne\r");
    EXPECT(&p, "sent ", 10000);
    EXPECT(&p, "cim> ", 10000);
    tpty_type(&p, "\x04"); /* Ctrl-D on an empty line ends the shell */
    ASSERT_EQ(tpty_finish(&p, 10000), 0);
    ASSERT_EQ(CIM(&e, out, bob, "sync"), 0);
    ASSERT_NOT_NULL(strstr(out, " alice -> bob [text] half a line\n"));
    env_stop(&e);
}

TEST_TIMEOUT(e2e_cli_shell_kicked_by_the_same_device_exits, 60)
{
    env_t e;
    tpty_t p;
    tsrv_tool_t tt;

    env_start(&e, NULL, NULL, NULL, NULL);
    shell_start(&e, &p);
    EXPECT(&p, "cim> ", 10000);
    /* a second shell of alice's on this host: the same device, so it takes over */
    tsrv_tool_start(&tt, "ping\n", 5, "cim", "--port", e.port, "--key", e.key, "--user", "alice",
                    "--token", e.alice, "shell", NULL);
    ASSERT_EQ(tsrv_tool_finish(&tt, 15000), 0);
    ASSERT_NOT_NULL(strstr(tt.out, "pong from"));
    EXPECT(&p, "session ended by the server: KICKED: ", 10000);
    EXPECT(&p, "not reconnecting", 10000);
    ASSERT_EQ(tpty_finish(&p, 10000), 1);
    ASSERT_NULL(strstr(p.out, "reconnecting in"));
    env_stop(&e);
}

TEST_TIMEOUT(e2e_cli_shell_reconnects_after_a_restart, 60)
{
    env_t e;
    tpty_t p;
    char out[8192], listen[32];

    /* a fixed port: the shell comes back to the address it was given */
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", tsrv_free_port());
    env_start(&e, "--listen", listen, NULL, NULL);
    shell_start(&e, &p);
    EXPECT(&p, "cim> ", 10000);

    ASSERT_EQ(tsrv_stop_keep(&e.t), 0);
    EXPECT(&p, "session ended by the server: SHUTTING_DOWN: ", 10000);
    EXPECT(&p, "reconnecting in ", 10000);
    EXPECT(&p, "cim (offline)> ", 10000);
    tsrv_restart(&e.t);
    ASSERT_EQ(CIM(&e, out, bob, "send", "--to", "alice", "after the restart"), 0);
    EXPECT(&p, "reconnected as alice on 127.0.0.1:", 15000);
    EXPECT(&p, " bob -> alice [text] after the restart", 10000);
    tpty_type(&p, "ping\r");
    EXPECT(&p, "pong from", 10000);
    tpty_type(&p, "quit\r");
    ASSERT_EQ(tpty_finish(&p, 10000), 0);
    env_stop(&e);
}

TEST_TIMEOUT(e2e_cli_shell_resumes_with_sync, 60)
{
    env_t e;
    tpty_t p;
    char out[8192];

    /* heartbeat 1 s: a connection silent for 3 s gets BYE{TIMEOUT} */
    env_start(&e, "--heartbeat_s", "1", NULL, NULL);
    ASSERT_EQ(CIM(&e, out, bob, "send", "--to", "alice", "before the shell"), 0);
    shell_start(&e, &p);
    EXPECT(&p, "cim> ", 10000);
    /* the shell stops (no pings): the server ends its session; bob's message is stored
     * with no session of alice's to push it to */
    ASSERT_OK(kill(p.pid, SIGSTOP));
    /* 3 s of silence end it; the rest is margin for a loaded machine (under ASan it once
     * took longer, and the shell's overdue ping on SIGCONT kept the session alive) */
    sleep_ms(6500);
    ASSERT_EQ(CIM(&e, out, bob, "send", "--to", "alice", "while you were stopped"), 0);
    ASSERT_OK(kill(p.pid, SIGCONT));
    EXPECT(&p, "session ended by the server: TIMEOUT: ", 10000);
    EXPECT(&p, "reconnected as alice", 15000);
    /* what it missed, through SYNC, and nothing it had shown or was there before it */
    EXPECT(&p, " bob -> alice [text] while you were stopped", 10000);
    ASSERT_NULL(strstr(p.out, "before the shell"));
    tpty_type(&p, "quit\r");
    ASSERT_EQ(tpty_finish(&p, 10000), 0);
    env_stop(&e);
}
