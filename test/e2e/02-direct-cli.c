/* Integration: the cim CLI's messaging commands (send, sync, timeline, listen, the shell's
 * send shorthand) against a real cimd, run as programs the way a script would. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/chan.h"
#include "support/server.h"
#include "support/test.h"

typedef struct env {
    tsrv_t t;
    char port[16];
    char key[65];
    char alice[512]; /* tokens */
    char bob[512];
} env_t;

/* A server with alice and bob (bob registered with cimctl, as an app server would). */
static void env_start(env_t *e)
{
    char out[256];

    tsrv_start(&e->t, NULL);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", e->t.dir, "user", "add", "bob",
                            NULL),
              0);
    snprintf(e->port, sizeof(e->port), "%d", e->t.port);
    chan_hex(e->t.key, e->key);
    tsrv_token(&e->t, "", "alice", 3600, e->alice, sizeof(e->alice));
    tsrv_token(&e->t, "", "bob", 3600, e->bob, sizeof(e->bob));
}

static size_t str_len(const char *s)
{
    return s != NULL ? strlen(s) : 0;
}

/* cim as USER on DEVICE with the rest of the arguments; stdout into OUT; exit status. */
#define CIM(e, out, user, device, ...)                                                     \
    tsrv_run_tool((out), sizeof(out), "cim", "--port", (e)->port, "--key", (e)->key,       \
                  "--user", #user, "--token", (e)->user, "--device", (device), __VA_ARGS__, \
                  NULL)

/* The same in the background, with @p in on its stdin (NULL: none). */
#define CIM_BG(e, tt, in, user, device, ...)                                               \
    tsrv_tool_start((tt), (in), str_len(in), "cim", "--port", (e)->port, \
                    "--key", (e)->key, "--user", #user, "--token", (e)->user, "--device", \
                    (device), __VA_ARGS__, NULL)

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The msg_id of "sent <msg_id> at <time>". */
static uint64_t sent_id(const char *out)
{
    char *end;
    uint64_t id;

    if (strncmp(out, "sent ", 5) != 0)
        TEST_FAIL_("expected 'sent <msg_id> at <time>', got '%s'", out);
    id = strtoull(out + 5, &end, 10);
    ASSERT_TRUE(id > 0);
    ASSERT_TRUE(strncmp(end, " at 20", 6) == 0);
    return id;
}

static size_t count_lines(const char *out)
{
    size_t n = 0;
    for (; *out != '\0'; out++)
        n += *out == '\n';
    return n;
}

/* Whether @p out has the line "<id> <time> <rest>". */
static bool has_msg(const char *out, uint64_t id, const char *rest)
{
    char head[32];
    size_t hl = (size_t)snprintf(head, sizeof(head), "%" PRIu64 " ", id), rl = strlen(rest);

    for (const char *l = out; *l != '\0';) {
        const char *nl = strchr(l, '\n'), *sp;
        size_t len = nl != NULL ? (size_t)(nl - l) : strlen(l);
        if (len > hl && strncmp(l, head, hl) == 0 && (sp = memchr(l + hl, ' ', len - hl)) != NULL &&
            (size_t)(l + len - (sp + 1)) == rl && strncmp(sp + 1, rest, rl) == 0)
            return true;
        if (nl == NULL)
            break;
        l = nl + 1;
    }
    return false;
}

/* A cursor moved by PUSH_ACK is written by the server's store thread just after the ack:
 * poll until a sync from the cursor comes back empty. */
static void expect_sync_empty(env_t *e, char *out, size_t outlen, const char *device)
{
    for (int i = 0; i < 150; i++) {
        ASSERT_EQ(tsrv_run_tool(out, outlen, "cim", "--port", e->port, "--key", e->key, "--user",
                                "bob", "--token", e->bob, "--device", device, "sync", NULL),
                  0);
        if (out[0] == '\0')
            return;
        sleep_ms(20);
    }
    TEST_FAIL_("sync after the ack still prints:\n%s", out);
}

TEST_TIMEOUT(e2e_cli_send_sync_and_timeline, 60)
{
    env_t e;
    tsrv_tool_t tt;
    char out[16384], after[32];
    uint64_t id, id2;

    env_start(&e);

    /* send exits 0 once acknowledged and names the msg_id */
    ASSERT_EQ(CIM(&e, out, alice, "alice-1", "send", "--to", "bob", "hi"), 0);
    id = sent_id(out);
    ASSERT_EQ(count_lines(out), 1);

    /* bob's sync shows it; without --ack it stays there */
    ASSERT_EQ(CIM(&e, out, bob, "bob-1", "sync"), 0);
    ASSERT_TRUE(has_msg(out, id, "alice -> bob [text] hi"));
    ASSERT_EQ(count_lines(out), 1);
    ASSERT_EQ(CIM(&e, out, bob, "bob-1", "sync"), 0);
    ASSERT_TRUE(has_msg(out, id, "alice -> bob [text] hi"));

    /* both timelines have it, from the start, on any device */
    ASSERT_EQ(CIM(&e, out, alice, "alice-2", "timeline"), 0);
    ASSERT_TRUE(has_msg(out, id, "alice -> bob [text] hi"));
    ASSERT_EQ(CIM(&e, out, bob, "bob-2", "timeline"), 0);
    ASSERT_TRUE(has_msg(out, id, "alice -> bob [text] hi"));

    /* sync --ack prints it and moves the cursor: the next sync prints nothing new */
    ASSERT_EQ(CIM(&e, out, bob, "bob-1", "sync", "--ack"), 0);
    ASSERT_TRUE(has_msg(out, id, "alice -> bob [text] hi"));
    expect_sync_empty(&e, out, sizeof(out), "bob-1");
    ASSERT_EQ(CIM(&e, out, alice, "alice-1", "send", "--to", "bob", "again", "and", "again"), 0);
    id2 = sent_id(out);
    ASSERT_TRUE(id2 > id);
    ASSERT_EQ(CIM(&e, out, bob, "bob-1", "sync"), 0);
    ASSERT_TRUE(has_msg(out, id2, "alice -> bob [text] again and again"));
    ASSERT_EQ(count_lines(out), 1);
    /* another device of bob's has its own cursor, and --after pages from an id */
    ASSERT_EQ(CIM(&e, out, bob, "bob-3", "sync"), 0);
    ASSERT_EQ(count_lines(out), 2);
    ASSERT_EQ(CIM(&e, out, bob, "bob-3", "sync", "--page", "--limit", "1"), 0);
    ASSERT_EQ(count_lines(out), 1);
    ASSERT_TRUE(has_msg(out, id, "alice -> bob [text] hi"));
    snprintf(after, sizeof(after), "%" PRIu64, id);
    ASSERT_EQ(CIM(&e, out, bob, "bob-3", "sync", "--after", after), 0);
    ASSERT_EQ(count_lines(out), 1);
    ASSERT_TRUE(has_msg(out, id2, "alice -> bob [text] again and again"));
    /* acking past the cursor would skip messages: refused */
    ASSERT_EQ(CIM(&e, out, bob, "bob-3", "sync", "--after", after, "--ack"), 2);

    /* an unknown recipient: exit 1, nothing on stdout, the refusal on stderr */
    ASSERT_NE(CIM(&e, out, alice, "alice-1", "send", "--to", "nobody", "hi"), 0);
    ASSERT_STREQ(out, "");
    CIM_BG(&e, &tt, NULL, alice, "alice-1", "send", "--to", "nobody", "hi");
    ASSERT_EQ(tsrv_tool_finish(&tt, 10000), 1);
    ASSERT_STREQ(tt.out, "");
    ASSERT_NOT_NULL(strstr(tt.err, "cim: send refused: NOT_FOUND: "));
    ASSERT_EQ(tsrv_stop(&e.t), 0);
}

TEST_TIMEOUT(e2e_cli_send_options, 60)
{
    env_t e;
    tsrv_tool_t tt;
    char out[16384];
    static const char bin[] = {0x00, (char)0xff, 0x0a, 0x41};
    uint64_t id, dup, bid, tid;

    env_start(&e);

    /* --id: a repeated client_msg_id is the same message */
    ASSERT_EQ(CIM(&e, out, alice, "a", "send", "--to", "bob", "--id", "order-17", "once"), 0);
    id = sent_id(out);
    ASSERT_EQ(CIM(&e, out, alice, "a", "send", "--to", "bob", "--id", "order-17", "once"), 0);
    dup = sent_id(out);
    ASSERT_U64_EQ(dup, id);

    /* the body from stdin, binary, as a file */
    tsrv_tool_start(&tt, bin, sizeof(bin), "cim", "--port", e.port, "--key", e.key, "--user",
                    "alice", "--token", e.alice, "--device", "a", "send", "--to", "bob",
                    "--type", "file", "-", NULL);
    ASSERT_EQ(tsrv_tool_finish(&tt, 10000), 0);
    bid = sent_id(tt.out);
    /* text with a newline and a backslash stays on one line */
    CIM_BG(&e, &tt, "two\nlines \\ here", alice, "a", "send", "--to", "bob", "-");
    ASSERT_EQ(tsrv_tool_finish(&tt, 10000), 0);
    tid = sent_id(tt.out);
    /* words after the options are text, even when they look like options */
    ASSERT_EQ(CIM(&e, out, alice, "a", "send", "--to", "bob", "--", "-v", "is", "text"), 0);
    /* transient: acknowledged, not stored */
    ASSERT_EQ(CIM(&e, out, alice, "a", "send", "--to", "bob", "--transient", "--type", "custom",
                  "typing"),
              0);
    ASSERT_TRUE(strncmp(out, "sent 0 at ", 10) == 0);

    ASSERT_EQ(CIM(&e, out, bob, "bob-1", "sync"), 0);
    ASSERT_EQ(count_lines(out), 4);
    ASSERT_TRUE(has_msg(out, id, "alice -> bob [text] once"));
    ASSERT_TRUE(has_msg(out, bid, "alice -> bob [file] <4 bytes: 00ff0a41>"));
    ASSERT_TRUE(has_msg(out, tid, "alice -> bob [text] two\\nlines \\\\ here"));
    ASSERT_NOT_NULL(strstr(out, " alice -> bob [text] -v is text\n"));
    ASSERT_NULL(strstr(out, "typing"));

    /* usage errors: exit 2, nothing sent */
    ASSERT_EQ(CIM(&e, out, alice, "a", "send", "--to", "bob", "--type", "gif", "x"), 2);
    ASSERT_EQ(CIM(&e, out, alice, "a", "send", "--to", "bob"), 2);
    ASSERT_EQ(CIM(&e, out, alice, "a", "send"), 2);
    ASSERT_EQ(CIM(&e, out, alice, "a", "sync", "--limit", "501"), 2);
    ASSERT_EQ(CIM(&e, out, alice, "a", "listen", "--count", "0"), 2);
    ASSERT_EQ(CIM(&e, out, bob, "bob-2", "sync"), 0);
    ASSERT_EQ(count_lines(out), 4);

    /* --help lists the new commands */
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cim", "--help", NULL), 0);
    ASSERT_NOT_NULL(strstr(out, "send --to USER"));
    ASSERT_NOT_NULL(strstr(out, "sync [--after ID]"));
    ASSERT_NOT_NULL(strstr(out, "timeline"));
    ASSERT_NOT_NULL(strstr(out, "listen [--count N]"));
    ASSERT_EQ(tsrv_stop(&e.t), 0);
}

TEST_TIMEOUT(e2e_cli_listen_and_ack, 60)
{
    env_t e;
    tsrv_tool_t tt;
    char out[16384];
    uint64_t id1, id2, id0;

    env_start(&e);

    /* listen --count 1, started first, gets the message sent after it is ready */
    CIM_BG(&e, &tt, NULL, bob, "bob-l", "listen", "--count", "1", "--timeout", "20");
    ASSERT_TRUE(tsrv_tool_wait_for(&tt, "listening as bob", 10000));
    ASSERT_STREQ(tt.out, "");
    ASSERT_EQ(CIM(&e, out, alice, "a", "send", "--to", "bob", "first", "one"), 0);
    id1 = sent_id(out);
    ASSERT_EQ(tsrv_tool_finish(&tt, 15000), 0);
    ASSERT_TRUE(has_msg(tt.out, id1, "alice -> bob [text] first one"));
    ASSERT_EQ(count_lines(tt.out), 1);

    /* without --ack the cursor stayed: sync still has it */
    ASSERT_EQ(CIM(&e, out, bob, "bob-l", "sync"), 0);
    ASSERT_TRUE(has_msg(out, id1, "alice -> bob [text] first one"));

    /* listen --ack: what the device has not acknowledged first, then the new message,
     * all acknowledged: a new sync prints nothing new */
    CIM_BG(&e, &tt, NULL, bob, "bob-l", "listen", "--count", "1", "--ack", "--timeout", "20");
    ASSERT_TRUE(tsrv_tool_wait_for(&tt, "listening as bob", 10000));
    ASSERT_TRUE(has_msg(tt.out, id1, "alice -> bob [text] first one"));
    ASSERT_EQ(CIM(&e, out, alice, "a", "send", "--to", "bob", "second"), 0);
    id2 = sent_id(out);
    ASSERT_EQ(tsrv_tool_finish(&tt, 15000), 0);
    ASSERT_TRUE(has_msg(tt.out, id1, "alice -> bob [text] first one"));
    ASSERT_TRUE(has_msg(tt.out, id2, "alice -> bob [text] second"));
    ASSERT_EQ(count_lines(tt.out), 2);
    expect_sync_empty(&e, out, sizeof(out), "bob-l");
    ASSERT_EQ(CIM(&e, out, bob, "bob-l", "timeline"), 0);
    ASSERT_EQ(count_lines(out), 2);

    /* a message while nobody listens: the next listen --ack catches up with it */
    ASSERT_EQ(CIM(&e, out, alice, "a", "send", "--to", "bob", "offline"), 0);
    id0 = sent_id(out);
    CIM_BG(&e, &tt, NULL, bob, "bob-l", "listen", "--ack", "--timeout", "0.5");
    ASSERT_EQ(tsrv_tool_finish(&tt, 15000), 0); /* no --count: the timeout is a normal end */
    ASSERT_TRUE(has_msg(tt.out, id0, "alice -> bob [text] offline"));
    ASSERT_EQ(count_lines(tt.out), 1);
    expect_sync_empty(&e, out, sizeof(out), "bob-l");

    /* --count not reached within --timeout: exit 1 */
    CIM_BG(&e, &tt, NULL, bob, "bob-l", "listen", "--count", "1", "--timeout", "0.3");
    ASSERT_EQ(tsrv_tool_finish(&tt, 15000), 1);
    ASSERT_STREQ(tt.out, "");
    ASSERT_NOT_NULL(strstr(tt.err, "timed out"));
    ASSERT_EQ(tsrv_stop(&e.t), 0);
}

TEST_TIMEOUT(e2e_cli_shell_send_shorthand, 60)
{
    env_t e;
    tsrv_tool_t tt;
    char out[16384];
    const char *script = "send bob hello there\n"
                         "send --to bob \"quoted  words\"\n"
                         "timeline\n"
                         "quit\n";

    env_start(&e);
    CIM_BG(&e, &tt, script, alice, "a", "shell");
    ASSERT_EQ(tsrv_tool_finish(&tt, 15000), 0);
    ASSERT_TRUE(strncmp(tt.out, "sent ", 5) == 0);
    ASSERT_NOT_NULL(strstr(tt.out, " alice -> bob [text] hello there\n"));
    ASSERT_NOT_NULL(strstr(tt.out, " alice -> bob [text] quoted  words\n"));
    ASSERT_EQ(count_lines(tt.out), 4); /* two "sent", two timeline lines */

    ASSERT_EQ(CIM(&e, out, bob, "bob-1", "sync"), 0);
    ASSERT_NOT_NULL(strstr(out, " alice -> bob [text] hello there\n"));
    ASSERT_EQ(count_lines(out), 2);
    ASSERT_EQ(tsrv_stop(&e.t), 0);
}
