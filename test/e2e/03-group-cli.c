/* Integration: the cim CLI's group, conversation, history, read, recall, contact and
 * block commands (and how listen shows events) against a real cimd, run as programs the
 * way a script would. */
#include <inttypes.h>
#include <signal.h>
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
    char carol[512];
} env_t;

/* A server with alice, bob and carol (registered with cimctl, as an app server would). */
static void env_start(env_t *e)
{
    static const char *const users[] = {"alice", "bob", "carol"};
    char out[256];

    tsrv_start(&e->t, NULL);
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++)
        ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", e->t.dir, "user", "add",
                                users[i], NULL),
                  0);
    snprintf(e->port, sizeof(e->port), "%d", e->t.port);
    chan_hex(e->t.key, e->key);
    tsrv_token(&e->t, "", "alice", 3600, e->alice, sizeof(e->alice));
    tsrv_token(&e->t, "", "bob", 3600, e->bob, sizeof(e->bob));
    tsrv_token(&e->t, "", "carol", 3600, e->carol, sizeof(e->carol));
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

/* The same in the background (stdout and stderr collected), @p in on its stdin. */
#define CIM_BG(e, tt, in, user, device, ...)                                               \
    tsrv_tool_start((tt), (in), str_len(in), "cim", "--port", (e)->port, "--key", (e)->key, \
                    "--user", #user, "--token", (e)->user, "--device", (device),           \
                    __VA_ARGS__, NULL)

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Run cim until its output is exactly @p want (presence follows a session's close, which
 * the server sees a moment after the program exits): up to 3 s. */
#define CIM_UNTIL(e, out, want, user, device, ...)                                         \
    do {                                                                                   \
        bool ok_ = false;                                                                  \
        for (int i_ = 0; i_ < 150 && !ok_; i_++) {                                         \
            ASSERT_EQ(CIM(e, out, user, device, __VA_ARGS__), 0);                          \
            if (!(ok_ = strcmp((out), (want)) == 0))                                       \
                sleep_ms(20);                                                              \
        }                                                                                  \
        if (!ok_)                                                                          \
            TEST_FAIL_("expected '%s', got '%s'", (want), (out));                          \
    } while (0)

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

/* Where the line "<id> <time> <rest>" starts in @p out, or NULL. */
static const char *find_msg(const char *out, uint64_t id, const char *rest)
{
    char head[32];
    size_t hl = (size_t)snprintf(head, sizeof(head), "%" PRIu64 " ", id), rl = strlen(rest);

    for (const char *l = out; *l != '\0';) {
        const char *nl = strchr(l, '\n'), *sp;
        size_t len = nl != NULL ? (size_t)(nl - l) : strlen(l);
        if (len > hl && strncmp(l, head, hl) == 0 && (sp = memchr(l + hl, ' ', len - hl)) != NULL &&
            (size_t)(l + len - (sp + 1)) == rl && strncmp(sp + 1, rest, rl) == 0)
            return l;
        if (nl == NULL)
            break;
        l = nl + 1;
    }
    return NULL;
}

/* Whether @p out has exactly the line @p line. */
static bool has_line(const char *out, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = out; (p = strstr(p, line)) != NULL; p++)
        if ((p == out || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

/* The id printed by group create: digits alone on one line. */
static void group_id_of(const char *out, char *gid, size_t n)
{
    size_t len = strlen(out);

    if (len < 2 || len > 21 || out[len - 1] != '\n' || count_lines(out) != 1)
        TEST_FAIL_("group create printed '%s', not an id alone on a line", out);
    for (size_t i = 0; i + 1 < len; i++)
        if (out[i] < '0' || out[i] > '9')
            TEST_FAIL_("group create printed '%s', not a decimal id", out);
    ASSERT_TRUE(out[0] != '0');
    snprintf(gid, n, "%.*s", (int)(len - 1), out);
}

TEST_TIMEOUT(e2e_cli_group_create_members_send, 60)
{
    env_t e;
    tsrv_tool_t tt;
    char out[16384], gid[32], gid2[32], line[256], to[64];
    uint64_t id;

    env_start(&e);

    /* create prints the id alone, for G=$(cim ... group create team bob carol) */
    ASSERT_EQ(CIM(&e, out, alice, "a", "group", "create", "team", "bob"), 0);
    group_id_of(out, gid, sizeof(gid));

    /* members: the creator (marked owner) and the members, one per line */
    ASSERT_EQ(CIM(&e, out, bob, "b", "group", "members", gid), 0);
    ASSERT_EQ(count_lines(out), 2);
    ASSERT_TRUE(has_line(out, "alice (owner)"));
    ASSERT_TRUE(has_line(out, "bob"));

    /* list: one line per group */
    ASSERT_EQ(CIM(&e, out, bob, "b", "group", "list"), 0);
    snprintf(line, sizeof(line), "%s team owner=alice members=2 closed", gid);
    ASSERT_TRUE(has_line(out, line));
    ASSERT_EQ(count_lines(out), 1);

    /* send --group reaches a member: bob's sync shows it, to #G */
    ASSERT_EQ(CIM(&e, out, alice, "a", "send", "--group", gid, "hello", "team"), 0);
    id = sent_id(out);
    ASSERT_EQ(CIM(&e, out, bob, "b", "sync"), 0);
    snprintf(to, sizeof(to), "alice -> #%s [text] hello team", gid);
    ASSERT_NOT_NULL(find_msg(out, id, to));
    /* and the creation is a SYSTEM message in the group */
    snprintf(line, sizeof(line), "<group %s created by alice: bob>", gid);
    ASSERT_NOT_NULL(strstr(out, line));

    /* carol is not a member: sending and joining a closed group are refused */
    CIM_BG(&e, &tt, NULL, carol, "c", "send", "--group", gid, "hi");
    ASSERT_EQ(tsrv_tool_finish(&tt, 10000), 1);
    ASSERT_STREQ(tt.out, "");
    ASSERT_NOT_NULL(strstr(tt.err, "cim: send refused: NOT_MEMBER: "));
    CIM_BG(&e, &tt, NULL, carol, "c", "group", "join", gid);
    ASSERT_EQ(tsrv_tool_finish(&tt, 10000), 1);
    ASSERT_NOT_NULL(strstr(tt.err, "cim: group join refused: FORBIDDEN: "));

    /* add, then kick (owner only), leave */
    ASSERT_EQ(CIM(&e, out, bob, "b", "group", "add", gid, "carol"), 0);
    ASSERT_EQ(CIM(&e, out, carol, "c", "group", "members", gid), 0);
    ASSERT_EQ(count_lines(out), 3);
    ASSERT_TRUE(has_line(out, "carol"));
    CIM_BG(&e, &tt, NULL, bob, "b", "group", "kick", gid, "carol");
    ASSERT_EQ(tsrv_tool_finish(&tt, 10000), 1);
    ASSERT_NOT_NULL(strstr(tt.err, "cim: group kick refused: FORBIDDEN: "));
    ASSERT_EQ(CIM(&e, out, alice, "a", "group", "kick", gid, "carol"), 0);
    ASSERT_EQ(CIM(&e, out, bob, "b", "group", "leave", gid), 0);
    ASSERT_EQ(CIM(&e, out, alice, "a", "group", "members", gid), 0);
    ASSERT_STREQ(out, "alice (owner)\n");

    /* an open group: anyone joins by id; dismissed, it is gone */
    ASSERT_EQ(CIM(&e, out, alice, "a", "group", "create", "--open", "open house"), 0);
    group_id_of(out, gid2, sizeof(gid2));
    ASSERT_TRUE(strcmp(gid, gid2) != 0);
    ASSERT_EQ(CIM(&e, out, carol, "c", "group", "join", gid2), 0);
    snprintf(line, sizeof(line), "joined %s \"open house\" owner=alice members=2 open\n", gid2);
    ASSERT_STREQ(out, line);
    ASSERT_EQ(CIM(&e, out, carol, "c", "group", "list"), 0);
    snprintf(line, sizeof(line), "%s \"open house\" owner=alice members=2 open", gid2);
    ASSERT_TRUE(has_line(out, line));
    ASSERT_EQ(CIM(&e, out, alice, "a", "group", "dismiss", gid2), 0);
    CIM_BG(&e, &tt, NULL, carol, "c", "group", "members", gid2);
    ASSERT_EQ(tsrv_tool_finish(&tt, 10000), 1);
    ASSERT_NOT_NULL(strstr(tt.err, "cim: group members refused: NOT_FOUND: "));
    ASSERT_EQ(CIM(&e, out, carol, "c", "group", "list"), 0);
    ASSERT_STREQ(out, "");

    /* usage errors: exit 2 */
    ASSERT_EQ(CIM(&e, out, alice, "a", "group"), 2);
    ASSERT_EQ(CIM(&e, out, alice, "a", "group", "frobnicate"), 2);
    ASSERT_EQ(CIM(&e, out, alice, "a", "group", "create"), 2);
    ASSERT_EQ(CIM(&e, out, alice, "a", "group", "members", "team"), 2);
    ASSERT_EQ(CIM(&e, out, alice, "a", "group", "add", gid), 2);
    ASSERT_EQ(CIM(&e, out, alice, "a", "send", "--group", gid, "--to", "bob", "x"), 2);
    ASSERT_EQ(CIM(&e, out, alice, "a", "send", "--group", "x1", "x"), 2);

    /* --help lists the new commands */
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cim", "--help", NULL), 0);
    ASSERT_NOT_NULL(strstr(out, "group create NAME [--open] [MEMBER...]"));
    ASSERT_NOT_NULL(strstr(out, "group members G"));
    ASSERT_NOT_NULL(strstr(out, "history (--with USER | --group G)"));
    ASSERT_NOT_NULL(strstr(out, "contact add USER"));
    ASSERT_NOT_NULL(strstr(out, "typing --to USER | --group G"));
    ASSERT_EQ(tsrv_stop(&e.t), 0);
}

TEST_TIMEOUT(e2e_cli_conv_unread_and_read, 60)
{
    env_t e;
    char out[16384], gid[32], want[128];
    uint64_t id, d1, d2;

    env_start(&e);
    ASSERT_EQ(CIM(&e, out, alice, "a", "group", "create", "team", "bob", "carol"), 0);
    group_id_of(out, gid, sizeof(gid));
    ASSERT_EQ(CIM(&e, out, alice, "a", "send", "--group", gid, "hi", "all"), 0);
    id = sent_id(out);

    /* bob: one unread (the SYSTEM creation message does not count) */
    ASSERT_EQ(CIM(&e, out, bob, "b", "convs"), 0);
    snprintf(want, sizeof(want), "group %s unread=1 read=0 last: %" PRIu64 " ", gid, id);
    ASSERT_NOT_NULL(strstr(out, want));
    ASSERT_NOT_NULL(strstr(out, " alice [text] hi all\n"));
    ASSERT_TRUE(has_line(out, "total unread: 1"));
    ASSERT_EQ(CIM(&e, out, bob, "b", "read", "--group", gid), 0);
    ASSERT_EQ(CIM(&e, out, bob, "b", "convs"), 0);
    snprintf(want, sizeof(want), "group %s unread=0 read=%" PRIu64 " last: %" PRIu64 " ", gid,
             id, id);
    ASSERT_NOT_NULL(strstr(out, want));
    ASSERT_TRUE(has_line(out, "total unread: 0"));
    /* carol has not read: her count stays */
    ASSERT_EQ(CIM(&e, out, carol, "c", "convs"), 0);
    ASSERT_TRUE(has_line(out, "total unread: 1"));

    /* direct: two unread, read up to the first, then everything; newest first */
    ASSERT_EQ(CIM(&e, out, alice, "a", "send", "--to", "bob", "one"), 0);
    d1 = sent_id(out);
    ASSERT_EQ(CIM(&e, out, alice, "a", "send", "--to", "bob", "two"), 0);
    d2 = sent_id(out);
    ASSERT_EQ(CIM(&e, out, bob, "b", "convs"), 0);
    ASSERT_EQ(count_lines(out), 3);
    ASSERT_TRUE(strncmp(out, "direct alice unread=2 read=0 ", 29) == 0); /* newest first */
    ASSERT_TRUE(has_line(out, "total unread: 2"));
    snprintf(want, sizeof(want), "%" PRIu64, d1);
    ASSERT_EQ(CIM(&e, out, bob, "b", "read", "--with", "alice", "--up-to", want), 0);
    ASSERT_EQ(CIM(&e, out, bob, "b", "convs"), 0);
    snprintf(want, sizeof(want), "direct alice unread=1 read=%" PRIu64 " ", d1);
    ASSERT_NOT_NULL(strstr(out, want));
    ASSERT_EQ(CIM(&e, out, bob, "b", "read", "--with", "alice"), 0);
    ASSERT_EQ(CIM(&e, out, bob, "b", "convs"), 0);
    snprintf(want, sizeof(want), "direct alice unread=0 read=%" PRIu64 " ", d2);
    ASSERT_NOT_NULL(strstr(out, want));
    ASSERT_TRUE(has_line(out, "total unread: 0"));
    /* alice sees how far bob has read */
    ASSERT_EQ(CIM(&e, out, alice, "a", "convs"), 0);
    snprintf(want, sizeof(want), " peer_read=%" PRIu64 " last: %" PRIu64 " ", d2, d2);
    ASSERT_NOT_NULL(strstr(out, want));

    /* usage */
    ASSERT_EQ(CIM(&e, out, bob, "b", "read"), 2);
    ASSERT_EQ(CIM(&e, out, bob, "b", "read", "--with", "alice", "--group", gid), 2);
    ASSERT_EQ(tsrv_stop(&e.t), 0);
}

TEST_TIMEOUT(e2e_cli_conv_history_and_recall, 60)
{
    env_t e;
    tsrv_tool_t tt;
    char out[16384], gid[32], arg[32], to[64];
    uint64_t id[5];
    const char *p, *q;

    env_start(&e);
    for (int i = 0; i < 5; i++) {
        char text[16];
        snprintf(text, sizeof(text), "m%d", i);
        ASSERT_EQ(CIM(&e, out, alice, "a", "send", "--to", "bob", text), 0);
        id[i] = sent_id(out);
    }

    /* one page: the newest, ascending */
    ASSERT_EQ(CIM(&e, out, bob, "b", "history", "--with", "alice"), 0);
    ASSERT_EQ(count_lines(out), 5);
    for (int i = 0; i < 4; i++) {
        char a[16], b[16];
        snprintf(a, sizeof(a), "m%d", i);
        snprintf(b, sizeof(b), "m%d", i + 1);
        snprintf(to, sizeof(to), "alice -> bob [text] %s", a);
        p = find_msg(out, id[i], to);
        snprintf(to, sizeof(to), "alice -> bob [text] %s", b);
        q = find_msg(out, id[i + 1], to);
        ASSERT_NOT_NULL(p);
        ASSERT_NOT_NULL(q);
        ASSERT_TRUE(p < q);
    }
    /* --limit: the newest two; --before pages back */
    ASSERT_EQ(CIM(&e, out, bob, "b", "history", "--with", "alice", "--limit", "2"), 0);
    ASSERT_EQ(count_lines(out), 2);
    ASSERT_NOT_NULL(p = find_msg(out, id[3], "alice -> bob [text] m3"));
    ASSERT_NOT_NULL(q = find_msg(out, id[4], "alice -> bob [text] m4"));
    ASSERT_TRUE(p < q);
    snprintf(arg, sizeof(arg), "%" PRIu64, id[3]);
    ASSERT_EQ(CIM(&e, out, alice, "a", "history", "--with", "bob", "--limit", "2", "--before",
                  arg),
              0);
    ASSERT_EQ(count_lines(out), 2);
    ASSERT_NOT_NULL(p = find_msg(out, id[1], "alice -> bob [text] m1"));
    ASSERT_NOT_NULL(q = find_msg(out, id[2], "alice -> bob [text] m2"));
    ASSERT_TRUE(p < q);
    /* a note on stderr says how to go on */
    CIM_BG(&e, &tt, NULL, bob, "b", "history", "--with", "alice", "--limit", "2");
    ASSERT_EQ(tsrv_tool_finish(&tt, 10000), 0);
    ASSERT_NOT_NULL(strstr(tt.err, "--before "));
    /* --all: every page, oldest first */
    ASSERT_EQ(CIM(&e, out, bob, "b", "history", "--with", "alice", "--limit", "2", "--all"), 0);
    ASSERT_EQ(count_lines(out), 5);
    p = out;
    for (int i = 0; i < 5; i++) {
        char text[48];
        snprintf(text, sizeof(text), "alice -> bob [text] m%d", i);
        ASSERT_NOT_NULL(q = find_msg(out, id[i], text));
        ASSERT_TRUE(q >= p);
        p = q;
    }

    /* recall: only the sender; then history shows it recalled, for both */
    snprintf(arg, sizeof(arg), "%" PRIu64, id[2]);
    CIM_BG(&e, &tt, NULL, bob, "b", "recall", arg);
    ASSERT_EQ(tsrv_tool_finish(&tt, 10000), 1);
    ASSERT_NOT_NULL(strstr(tt.err, "cim: recall refused: FORBIDDEN: "));
    ASSERT_EQ(CIM(&e, out, alice, "a", "recall", arg), 0);
    ASSERT_TRUE(strncmp(out, "recalled ", 9) == 0);
    ASSERT_EQ(CIM(&e, out, bob, "b", "history", "--with", "alice", "--all"), 0);
    ASSERT_EQ(count_lines(out), 5);
    ASSERT_NOT_NULL(find_msg(out, id[2], "alice -> bob [text] <recalled>"));
    ASSERT_NOT_NULL(find_msg(out, id[1], "alice -> bob [text] m1"));
    ASSERT_EQ(CIM(&e, out, alice, "a", "history", "--with", "bob"), 0);
    ASSERT_NOT_NULL(find_msg(out, id[2], "alice -> bob [text] <recalled>"));
    ASSERT_NULL(strstr(out, "m2"));
    /* the recall itself is a RECALL message in bob's timeline */
    ASSERT_EQ(CIM(&e, out, bob, "b", "sync"), 0);
    snprintf(to, sizeof(to), "<recall of %" PRIu64 " by alice>", id[2]);
    ASSERT_NOT_NULL(strstr(out, to));
    CIM_BG(&e, &tt, NULL, alice, "a", "recall", "12345");
    ASSERT_EQ(tsrv_tool_finish(&tt, 10000), 1);
    ASSERT_NOT_NULL(strstr(tt.err, "cim: recall refused: NOT_FOUND: "));

    /* a group's history: the creation, then the messages */
    ASSERT_EQ(CIM(&e, out, alice, "a", "group", "create", "g", "bob"), 0);
    group_id_of(out, gid, sizeof(gid));
    ASSERT_EQ(CIM(&e, out, bob, "b", "send", "--group", gid, "first"), 0);
    id[0] = sent_id(out);
    ASSERT_EQ(CIM(&e, out, alice, "a", "send", "--group", gid, "second"), 0);
    id[1] = sent_id(out);
    ASSERT_EQ(CIM(&e, out, bob, "b", "history", "--group", gid, "--all"), 0);
    ASSERT_EQ(count_lines(out), 3);
    ASSERT_NOT_NULL(p = strstr(out, "[system] <group "));
    snprintf(to, sizeof(to), "bob -> #%s [text] first", gid);
    ASSERT_NOT_NULL(q = find_msg(out, id[0], to));
    ASSERT_TRUE(p < q);
    p = q;
    snprintf(to, sizeof(to), "alice -> #%s [text] second", gid);
    ASSERT_NOT_NULL(q = find_msg(out, id[1], to));
    ASSERT_TRUE(p < q);
    /* carol never was a member */
    CIM_BG(&e, &tt, NULL, carol, "c", "history", "--group", gid);
    ASSERT_EQ(tsrv_tool_finish(&tt, 10000), 1);
    ASSERT_NOT_NULL(strstr(tt.err, "cim: history refused: NOT_MEMBER: "));

    /* usage */
    ASSERT_EQ(CIM(&e, out, bob, "b", "history"), 2);
    ASSERT_EQ(CIM(&e, out, bob, "b", "history", "--with", "alice", "--limit", "101"), 2);
    ASSERT_EQ(CIM(&e, out, bob, "b", "recall"), 2);
    ASSERT_EQ(CIM(&e, out, bob, "b", "recall", "x"), 2);
    ASSERT_EQ(tsrv_stop(&e.t), 0);
}

TEST_TIMEOUT(e2e_cli_conv_contacts_and_block, 60)
{
    env_t e;
    tsrv_tool_t tt, lt;
    char out[16384];

    env_start(&e);

    /* add, list (online/offline), remove */
    ASSERT_EQ(CIM(&e, out, alice, "a", "contact", "add", "bob"), 0);
    ASSERT_EQ(CIM(&e, out, alice, "a", "contact", "add", "carol"), 0);
    ASSERT_EQ(CIM(&e, out, alice, "a", "contacts"), 0);
    ASSERT_EQ(count_lines(out), 2);
    ASSERT_TRUE(has_line(out, "bob offline"));
    ASSERT_TRUE(has_line(out, "carol offline"));
    CIM_BG(&e, &lt, NULL, bob, "b-listen", "listen", "--timeout", "30");
    ASSERT_TRUE(tsrv_tool_wait_for(&lt, "listening as bob", 10000));
    ASSERT_EQ(CIM(&e, out, alice, "a", "contacts"), 0);
    ASSERT_TRUE(has_line(out, "bob online"));
    kill(lt.pid, SIGTERM);
    ASSERT_EQ(tsrv_tool_finish(&lt, 10000), 0);
    ASSERT_EQ(CIM(&e, out, alice, "a", "contact", "remove", "carol"), 0);
    CIM_UNTIL(&e, out, "bob offline\n", alice, "a", "contacts");
    CIM_BG(&e, &tt, NULL, alice, "a", "contact", "remove", "carol");
    ASSERT_EQ(tsrv_tool_finish(&tt, 10000), 1);
    ASSERT_NOT_NULL(strstr(tt.err, "cim: contact remove refused: NOT_FOUND: "));
    CIM_BG(&e, &tt, NULL, alice, "a", "contact", "add", "nobody");
    ASSERT_EQ(tsrv_tool_finish(&tt, 10000), 1);
    ASSERT_NOT_NULL(strstr(tt.err, "cim: contact add refused: NOT_FOUND: "));

    /* bob blocks alice: her send exits 1 with BLOCKED; a contact shows it blocked */
    ASSERT_EQ(CIM(&e, out, bob, "b", "block", "alice"), 0);
    CIM_BG(&e, &tt, NULL, alice, "a", "send", "--to", "bob", "let me in");
    ASSERT_EQ(tsrv_tool_finish(&tt, 10000), 1);
    ASSERT_STREQ(tt.out, "");
    ASSERT_NOT_NULL(strstr(tt.err, "cim: send refused: BLOCKED: "));
    ASSERT_EQ(CIM(&e, out, bob, "b", "contact", "add", "alice"), 0);
    CIM_UNTIL(&e, out, "alice offline blocked\n", bob, "b", "contacts");
    /* carol is not blocked; after unblock alice gets through */
    ASSERT_EQ(CIM(&e, out, carol, "c", "send", "--to", "bob", "hi"), 0);
    ASSERT_EQ(CIM(&e, out, bob, "b", "unblock", "alice"), 0);
    ASSERT_EQ(CIM(&e, out, alice, "a", "send", "--to", "bob", "thanks"), 0);
    (void)sent_id(out);
    CIM_UNTIL(&e, out, "alice offline\n", bob, "b", "contacts");
    CIM_BG(&e, &tt, NULL, bob, "b", "unblock", "alice");
    ASSERT_EQ(tsrv_tool_finish(&tt, 10000), 1);
    ASSERT_NOT_NULL(strstr(tt.err, "cim: unblock refused: NOT_FOUND: "));

    /* usage */
    ASSERT_EQ(CIM(&e, out, bob, "b", "block"), 2);
    ASSERT_EQ(CIM(&e, out, bob, "b", "contact", "add"), 2);
    ASSERT_EQ(CIM(&e, out, bob, "b", "contact"), 2);
    ASSERT_EQ(tsrv_stop(&e.t), 0);
}

/* listen shows typing, read, presence and recall pushes as tagged lines */
TEST_TIMEOUT(e2e_cli_conv_listen_events, 60)
{
    env_t e;
    tsrv_tool_t lt;
    char out[16384], gid[32], want[128];
    uint64_t x, y;

    env_start(&e);
    ASSERT_EQ(CIM(&e, out, bob, "b", "contact", "add", "alice"), 0);
    ASSERT_EQ(CIM(&e, out, alice, "a", "group", "create", "g", "bob"), 0);
    group_id_of(out, gid, sizeof(gid));

    /* three messages end it: typing indicators and events do not count */
    CIM_BG(&e, &lt, NULL, bob, "b-listen", "listen", "--count", "3", "--timeout", "30");
    ASSERT_TRUE(tsrv_tool_wait_for(&lt, "listening as bob", 10000));
    ASSERT_EQ(CIM(&e, out, alice, "a", "typing", "--to", "bob"), 0);
    ASSERT_STREQ(out, "");
    ASSERT_TRUE(tsrv_tool_wait_for(&lt, "[typing] alice -> bob\n", 10000));
    ASSERT_TRUE(tsrv_tool_wait_for(&lt, "[presence] alice online\n", 10000));
    snprintf(want, sizeof(want), "[typing] alice -> #%s\n", gid);
    ASSERT_EQ(CIM(&e, out, alice, "a", "typing", "--group", gid), 0);
    ASSERT_TRUE(tsrv_tool_wait_for(&lt, want, 10000));

    ASSERT_EQ(CIM(&e, out, alice, "a", "send", "--to", "bob", "x"), 0); /* 1 */
    x = sent_id(out);
    ASSERT_TRUE(tsrv_tool_wait_for(&lt, " alice -> bob [text] x\n", 10000));
    ASSERT_EQ(CIM(&e, out, bob, "b-other", "send", "--to", "alice", "y"), 0); /* 2 */
    y = sent_id(out);
    ASSERT_TRUE(tsrv_tool_wait_for(&lt, " bob -> alice [text] y\n", 10000));
    /* alice reads: bob's devices learn how far, named from the reader's side */
    ASSERT_EQ(CIM(&e, out, alice, "a", "read", "--with", "bob"), 0);
    snprintf(want, sizeof(want), "[read] alice read bob up to %" PRIu64 "\n", y);
    ASSERT_TRUE(tsrv_tool_wait_for(&lt, want, 10000));
    ASSERT_TRUE(tsrv_tool_wait_for(&lt, "[presence] alice offline\n", 10000));
    snprintf(want, sizeof(want), "%" PRIu64, x);
    ASSERT_EQ(CIM(&e, out, alice, "a", "recall", want), 0); /* 3: the RECALL message */
    ASSERT_EQ(tsrv_tool_finish(&lt, 15000), 0);
    snprintf(want, sizeof(want), "[recall] %" PRIu64 " by alice\n", x);
    ASSERT_NOT_NULL(strstr(lt.out, want));

    /* a read on bob's other device shows on this one as "bob read alice" */
    CIM_BG(&e, &lt, NULL, bob, "b-listen", "listen", "--timeout", "30");
    ASSERT_TRUE(tsrv_tool_wait_for(&lt, "listening as bob", 10000));
    ASSERT_EQ(CIM(&e, out, alice, "a", "send", "--to", "bob", "z"), 0);
    x = sent_id(out);
    ASSERT_TRUE(tsrv_tool_wait_for(&lt, " alice -> bob [text] z\n", 10000));
    ASSERT_EQ(CIM(&e, out, bob, "b-other", "read", "--with", "alice"), 0);
    snprintf(want, sizeof(want), "[read] bob read alice up to %" PRIu64 "\n", x);
    ASSERT_TRUE(tsrv_tool_wait_for(&lt, want, 10000));
    kill(lt.pid, SIGTERM);
    ASSERT_EQ(tsrv_tool_finish(&lt, 10000), 0);

    ASSERT_EQ(CIM(&e, out, alice, "a", "typing"), 2);
    ASSERT_EQ(CIM(&e, out, alice, "a", "typing", "--to", "bob", "--group", gid), 2);
    ASSERT_EQ(tsrv_stop(&e.t), 0);
}

/* The same commands in the shell, with the pushes they cause printed in between. */
TEST_TIMEOUT(e2e_cli_group_shell, 60)
{
    env_t e;
    tsrv_tool_t tt;
    char out[16384], gid[32], script[1024], want[128];

    env_start(&e);
    ASSERT_EQ(CIM(&e, out, alice, "a", "group", "create", "shell team", "bob"), 0);
    group_id_of(out, gid, sizeof(gid));
    snprintf(script, sizeof(script),
             "send --group %s hello from the shell\n"
             "group add %s carol\n"
             "group members %s\n"
             "history --group %s --all\n"
             "convs\n"
             "group list\n"
             "quit\n",
             gid, gid, gid, gid);
    CIM_BG(&e, &tt, script, alice, "a", "shell");
    ASSERT_EQ(tsrv_tool_finish(&tt, 15000), 0);
    ASSERT_TRUE(strncmp(tt.out, "sent ", 5) == 0);
    snprintf(want, sizeof(want), "added to %s: carol", gid);
    ASSERT_TRUE(has_line(tt.out, want));
    ASSERT_TRUE(has_line(tt.out, "alice (owner)"));
    ASSERT_TRUE(has_line(tt.out, "carol"));
    snprintf(want, sizeof(want), " alice -> #%s [text] hello from the shell\n", gid);
    ASSERT_NOT_NULL(strstr(tt.out, want));
    snprintf(want, sizeof(want), "<group %s added by alice: carol>", gid);
    ASSERT_NOT_NULL(strstr(tt.out, want));
    snprintf(want, sizeof(want), "group %s unread=0 ", gid);
    ASSERT_NOT_NULL(strstr(tt.out, want));
    ASSERT_TRUE(has_line(tt.out, "total unread: 0"));
    snprintf(want, sizeof(want), "%s \"shell team\" owner=alice members=3 closed", gid);
    ASSERT_TRUE(has_line(tt.out, want));

    /* carol, added in the shell, has the message in her history */
    ASSERT_EQ(CIM(&e, out, carol, "c", "history", "--group", gid), 0);
    snprintf(want, sizeof(want), "<group %s added by alice: carol>", gid);
    ASSERT_NOT_NULL(strstr(out, want));
    ASSERT_EQ(tsrv_stop(&e.t), 0);
}
