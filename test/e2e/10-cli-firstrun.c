/* Integration: the first-run traps of issue 10 in the cim CLI, against a real cimd.
 *
 *  - --version on cim and cimdump;
 *  - one-shot commands without --device log in as a fresh device, so they never kick a
 *    live shell of the same user (on a pty, as a person runs it), and leave no delivery
 *    cursor behind; sync and listen keep this host's device and its cursor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", e->t.dir, "user", "add", "bob",
                            NULL),
              0);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", e->t.dir, "user", "add",
                            "alice", NULL),
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
#define CIM(e, out, user, ...)                                                                 \
    tsrv_run_tool((out), sizeof(out), "cim", "--port", (e)->port, "--key", (e)->key, "--user", \
                  #user, "--token", (e)->user, __VA_ARGS__, NULL)

/* alice's shell on a terminal, its history under e->state. */
static void shell_start(env_t *e, tpty_t *p)
{
    const char *env[] = {e->state_env, NULL};

    tpty_start(p, env, "cim", "--port", e->port, "--key", e->key, "--user", "alice", "--token",
               e->alice, "shell", NULL);
}

#define EXPECT(p, needle, ms)                                                                  \
    do {                                                                                       \
        if (!tpty_expect((p), (needle), (ms))) {                                               \
            tpty_dump(p);                                                                      \
            TEST_FAIL_("the terminal did not show \"%s\"", (needle));                          \
        }                                                                                      \
    } while (0)

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
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimdump", "--data", e.t.dir, "--json", "user",
                            "bob", NULL),
              0);
    ASSERT_EQ(gethostname(host, sizeof(host) - 1), 0);
    snprintf(want, sizeof(want), "\"devices\":[{\"device\":\"cli-%.12s", host);
    ASSERT_NOT_NULL(strstr(out, want));
    ASSERT_NULL(strstr(strstr(out, want) + strlen(want), "\"device\":")); /* one */
    env_stop(&e);
}
