/* Integration: cimdump against the data of a running cimd — traffic made through libcim,
 * then every command's JSON checked against what was sent (field strings matched exactly,
 * each document also parsed by python3's json module, a build dependency already), while
 * cimd keeps writing too; and the one-line errors. docs/CIMDUMP.md is the contract. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>

#include "client/cim.h"
#include "core/frame.h"
#include "core/snowflake.h"
#include "support/msg.h"
#include "support/server.h"
#include "support/test.h"

static char out[1 << 20];

/* Documents waiting to be parsed (python3 starts in ~0.1 s: parse them in batches). */
#define JSON_BATCH 24
static char json_paths[JSON_BATCH][32];
static int json_n;

/* Parse every pending document with python3's json module; each must be exactly one JSON
 * document (the failing one is printed). */
static void json_flush(void)
{
    static const char prog[] = "import json,sys\n"
                               "for p in sys.argv[1:]:\n"
                               "    s = open(p, 'rb').read()\n"
                               "    try:\n"
                               "        json.loads(s.decode('utf-8'))\n"
                               "    except Exception as e:\n"
                               "        sys.stderr.write('%s: %s\\n%s\\n' % (p, e, s[:3000]))\n"
                               "        sys.exit(1)\n";
    char *argv[JSON_BATCH + 4];
    int argc = 0, status;
    pid_t pid;

    if (json_n == 0)
        return;
    argv[argc++] = "python3";
    argv[argc++] = "-c";
    argv[argc++] = (char *)prog;
    for (int i = 0; i < json_n; i++)
        argv[argc++] = json_paths[i];
    argv[argc] = NULL;
    fflush(NULL);
    pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        execvp("python3", argv);
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    for (int i = 0; i < json_n; i++)
        unlink(json_paths[i]);
    json_n = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        TEST_FAIL_("cimdump printed something that is not one JSON document (python3 exit %d)",
                   WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

/* Queue @p doc for json_flush (which runs when the batch is full, and at the end of every
 * test). */
static void json_ok(const char *doc)
{
    size_t len = strlen(doc);
    int fd;

    if (json_n == JSON_BATCH)
        json_flush();
    snprintf(json_paths[json_n], sizeof(json_paths[0]), "/tmp/cimdump-json-XXXXXX");
    fd = mkstemp(json_paths[json_n]);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ(write(fd, doc, len), (ssize_t)len);
    close(fd);
    json_n++;
}

/* Run cimdump --json on @p t's data with up to four arguments (NULL ends them early);
 * it must succeed with one valid JSON document, returned (static storage). */
static const char *dumpj(const tsrv_t *t, const char *a1, const char *a2, const char *a3,
                         const char *a4)
{
    int rc = tsrv_run_tool(out, sizeof(out), "cimdump", "--data", t->dir, "--json", a1, a2, a3, a4,
                           (char *)NULL);
    if (rc != 0)
        TEST_FAIL_("cimdump --json %s %s failed: exit %d", a1, a2 ? a2 : "", rc);
    ASSERT_TRUE(strlen(out) > 0 && out[strlen(out) - 1] == '\n');
    json_ok(out);
    return out;
}

/* The same as text: must succeed and print something. */
static void dump_text(const tsrv_t *t, const char *a1, const char *a2)
{
    int rc = tsrv_run_tool(out, sizeof(out), "cimdump", "--data", t->dir, a1, a2, (char *)NULL);
    if (rc != 0)
        TEST_FAIL_("cimdump %s %s failed: exit %d", a1, a2 ? a2 : "", rc);
    ASSERT_TRUE(strlen(out) > 0);
}

static void expect_has(const char *doc, const char *want)
{
    if (strstr(doc, want) == NULL)
        TEST_FAIL_("missing %s in %.3000s", want, doc);
}

static void expect_lacks(const char *doc, const char *want)
{
    if (strstr(doc, want) != NULL)
        TEST_FAIL_("unexpected %s in %.3000s", want, doc);
}

/* The number right after @p key in @p doc (a failure when absent). */
static double real_after(const char *doc, const char *key)
{
    const char *p = strstr(doc, key);
    if (p == NULL)
        TEST_FAIL_("missing %s in %.2000s", key, doc);
    return strtod(p + strlen(key), NULL);
}

static size_t count_of(const char *doc, const char *what)
{
    size_t n = 0;
    for (const char *p = doc; (p = strstr(p, what)) != NULL; p += strlen(what))
        n++;
    return n;
}

/* Run cimdump with args (NULL-terminated) and expect exit @p code with exactly one line on
 * stderr starting with @p err. */
static void expect_error(int code, const char *err, const char *a1, const char *a2, const char *a3,
                         const char *a4, const char *a5, const char *a6)
{
    tsrv_tool_t tt;
    int rc;

    tsrv_tool_start(&tt, NULL, 0, "cimdump", a1, a2, a3, a4, a5, a6, (char *)NULL);
    rc = tsrv_tool_finish(&tt, 10000);
    if (rc != code || strncmp(tt.err, err, strlen(err)) != 0 ||
        strchr(tt.err, '\n') != tt.err + strlen(tt.err) - 1)
        TEST_FAIL_("cimdump %s %s %s: exit %d, stderr '%s'; want exit %d and one line '%s...'", a1,
                   a2 ? a2 : "", a3 ? a3 : "", rc, tt.err, code, err);
    ASSERT_EQ(tt.out_len, 0);
}

/* ---- direct messages ---------------------------------------------------------------- */

TEST_TIMEOUT(e2e_cimdump_direct_matches_what_was_sent, 60)
{
    static const char text1[] = "hello \"bob\" \\ tab\tnl\n caf\xc3\xa9";
    static const char json1[] = "\"body\":\"hello \\\"bob\\\" \\\\ tab\\tnl\\n caf\xc3\xa9\"";
    static const uint8_t image[] = {0x00, 0x01, 0xff, 0x80};
    tsrv_t t;
    cimc_t *alice, *bob;
    cim_SendRsp r1, r2, r3;
    tmsg_t m;
    uint8_t body[256];
    char want[512], id[3][24];
    uint64_t ms;
    uint32_t node, seq;
    const char *doc;

    tsrv_start(&t, NULL);
    /* no message yet: no bytes per message */
    doc = dumpj(&t, "stats", NULL, NULL, NULL);
    expect_has(doc, "\"bytes_per_message\":{\"file\":null,\"used\":null,\"live\":null}");
    expect_has(doc, "\"name\":\"msgs\",");
    expect_lacks(doc, "\"bytes_per_message\":0");
    alice = tmsg_login(&t, "alice", "aphone", cim_DeviceKind_MOBILE, NULL);
    bob = tmsg_login(&t, "bob", "bdesk", cim_DeviceKind_DESKTOP, NULL);
    tmsg_wait_user(&t, "alice");
    tmsg_wait_user(&t, "bob");
    ASSERT_OK(tmsg_send(alice, "bob", "c1", cim_MsgType_TEXT, text1, strlen(text1), false, &r1));
    ASSERT_EQ(r1.code, cim_Code_OK);
    ASSERT_OK(tmsg_send(alice, "bob", "c2", cim_MsgType_IMAGE, image, sizeof(image), false, &r2));
    ASSERT_EQ(r2.code, cim_Code_OK);
    ASSERT_OK(tmsg_send(alice, "bob", "c3", cim_MsgType_TEXT, "", 0, false, &r3));
    ASSERT_EQ(r3.code, cim_Code_OK);
    snprintf(id[0], sizeof(id[0]), "%llu", (unsigned long long)r1.msg_id);
    snprintf(id[1], sizeof(id[1]), "%llu", (unsigned long long)r2.msg_id);
    snprintf(id[2], sizeof(id[2]), "%llu", (unsigned long long)r3.msg_id);
    /* bob takes all three and acknowledges them: his device cursor moves to the last */
    for (int i = 0; i < 3; i++)
        ASSERT_OK(tmsg_next_push(bob, 5000, &m, body, sizeof(body)));
    ASSERT_U64_EQ(m.msg_id, r3.msg_id);
    ASSERT_OK(tmsg_push_ack(bob, r3.msg_id));

    /* msg: every field of the first message, its time from the SnowFlake id */
    doc = dumpj(&t, "msg", id[0], NULL, NULL);
    snowflake_decode(r1.msg_id, &ms, &node, &seq);
    snprintf(want, sizeof(want), "{\"id\":\"%s\",\"time_ms\":%llu,", id[0], (unsigned long long)ms);
    ASSERT_TRUE(strncmp(doc, want, strlen(want)) == 0);
    snprintf(want, sizeof(want), "\"node\":%u,\"seq\":%u,", node, seq);
    expect_has(doc, want);
    /* stored without its id and time (the key gives both): STORAGE.md, msgs */
    expect_has(doc, "\"head_implied\":true,"
                    "\"conv_type\":\"DIRECT\",\"from\":\"alice\",\"to\":\"bob\","
                    "\"msg_type\":\"TEXT\",\"client_msg_id\":\"c1\",\"flags\":0,"
                    "\"recalled\":false,\"from_device\":\"MOBILE\"");
    snprintf(want, sizeof(want),
             "\"message_time_ms\":%llu,\"body_len\":%zu,"
             "\"body_encoding\":\"utf8\",",
             (unsigned long long)r1.time_ms, strlen(text1));
    expect_has(doc, want);
    expect_has(doc, json1);
    expect_has(doc, "\"body_truncated\":false");
    /* a body that is not UTF-8 comes in hex */
    doc = dumpj(&t, "msg", id[1], NULL, NULL);
    expect_has(doc, "\"msg_type\":\"IMAGE\"");
    expect_has(doc, "\"body_len\":4,\"body_encoding\":\"hex\",\"body\":\"0001ff80\"");
    doc = dumpj(&t, "msg", id[2], NULL, NULL);
    expect_has(doc, "\"body_len\":0,\"body_encoding\":\"utf8\",\"body\":\"\"");

    /* timeline: bob's three, in order, paged with --after / --limit */
    doc = dumpj(&t, "timeline", "bob", NULL, NULL);
    expect_has(doc, "{\"app\":\"default\",\"user\":\"bob\",\"after\":\"0\",\"limit\":100,"
                    "\"total\":3,\"count\":3,\"remain\":0,\"next_after\":null,");
    ASSERT_TRUE(strstr(doc, id[0]) < strstr(doc, id[1]));
    ASSERT_TRUE(strstr(doc, id[1]) < strstr(doc, id[2]));
    expect_has(doc, json1);
    expect_has(doc, "\"client_msg_id\":\"c2\"");
    doc = dumpj(&t, "timeline", "bob", "--limit", "1");
    snprintf(want, sizeof(want), "\"total\":3,\"count\":1,\"remain\":2,\"next_after\":\"%s\"",
             id[0]);
    expect_has(doc, want);
    doc = dumpj(&t, "timeline", "bob", "--after", id[0]);
    expect_has(doc, "\"total\":3,\"count\":2,\"remain\":0");
    expect_lacks(doc, "\"client_msg_id\":\"c1\"");
    ASSERT_EQ(count_of(doc, "\"id\":"), 2);

    /* user: bob's device cursor reaches the acknowledged id (acks are batched: poll) */
    snprintf(want, sizeof(want),
             "\"devices\":[{\"device\":\"bdesk\",\"cursor\":\"%s\","
             "\"pending\":0}]",
             id[2]);
    for (int i = 0; i < 100; i++) {
        doc = dumpj(&t, "user", "bob", NULL, NULL);
        if (strstr(doc, want) != NULL)
            break;
        tmsg_sleep_ms(50);
    }
    expect_has(doc, want);
    snprintf(want, sizeof(want), "\"timeline\":{\"count\":3,\"first\":\"%s\",\"last\":\"%s\"}",
             id[0], id[2]);
    expect_has(doc, want);
    expect_has(doc, "{\"app\":\"default\",\"user\":\"bob\",\"created_ms\":");
    expect_has(doc, "\"conversations\":1,\"unread\":3,\"groups\":[],\"spans\":[],\"contacts\":0,"
                    "\"blocked\":0}");
    doc = dumpj(&t, "user", "alice", NULL, NULL);
    expect_has(doc, "\"timeline\":{\"count\":3,");
    expect_has(doc, "\"devices\":[]"); /* alice acknowledged nothing */

    /* convs: one DIRECT conversation each side, bob's three unread */
    doc = dumpj(&t, "convs", "bob", NULL, NULL);
    snprintf(want, sizeof(want),
             "\"count\":1,\"total_unread\":3,\"convs\":[{\"conv_type\":"
             "\"DIRECT\",\"peer\":\"alice\",\"last_id\":\"%s\",",
             id[2]);
    expect_has(doc, want);
    expect_has(doc, "\"unread\":3,\"read_up_to\":\"0\",");
    expect_has(doc, "\"left_id\":null,\"messages\":3}]}");
    doc = dumpj(&t, "convs", "alice", NULL, NULL);
    expect_has(doc, "\"peer\":\"bob\"");
    expect_has(doc, "\"total_unread\":0");

    /* users, apps, stats */
    doc = dumpj(&t, "users", NULL, NULL, NULL);
    expect_has(doc, "{\"user\":\"alice\",\"created_ms\":");
    expect_has(doc, "\"timeline\":3}");
    expect_has(doc, "\"count\":2}");
    doc = dumpj(&t, "apps", NULL, NULL, NULL);
    expect_has(doc, "{\"apps\":[{\"app\":\"default\",\"created_ms\":");
    expect_has(doc, "\"users\":2}");
    doc = dumpj(&t, "stats", NULL, NULL, NULL);
    expect_has(doc, "\"schema\":8,");
    expect_has(doc, "\"dup_tree_bytes\":0}"); /* three messages: every timeline fits a leaf */
    /* while cimd runs the timelines' appends are deferred: in cpend, a record a commit
     * (the users dump above merged them) */
    expect_has(doc, "{\"name\":\"timeline\",\"dupsort\":true,\"entries\":0,");
    expect_has(doc, "{\"name\":\"cpend\",\"dupsort\":false,\"entries\":3,");
    /* the three records share one entry (a chunk); the count walks them */
    expect_has(doc, "{\"name\":\"msgs\",\"dupsort\":false,\"entries\":1,");
    expect_has(doc, "\"apps\":1,\"users\":2,\"groups\":0,");
    snprintf(want, sizeof(want), "\"messages\":{\"count\":3,\"oldest\":{\"id\":\"%s\",", id[0]);
    expect_has(doc, want);
    snprintf(want, sizeof(want), "\"newest\":{\"id\":\"%s\",", id[2]);
    expect_has(doc, want);
    snprintf(want, sizeof(want), "\"last_issued\":\"%s\"", id[2]);
    expect_has(doc, want);
    expect_has(doc, "\"self\":true}"); /* our own reader slot is listed */
    /* bytes on disk per stored message (3): data.mdb, the pages in use, the live ones (not
     * on the free list); each database's pages over the messages too */
    {
        double file = real_after(doc, "\"file_size\":"), used = real_after(doc, "\"used\":");
        double psize = real_after(doc, "\"page_size\":"), fr = real_after(doc, "\"free_pages\":");
        const char *msgs = strstr(doc, "{\"name\":\"msgs\",");
        double mbytes, mper;

        snprintf(want, sizeof(want),
                 "\"bytes_per_message\":{\"file\":%.1f,\"used\":%.1f,\"live\":%.1f}}", file / 3,
                 used / 3, (used - fr * psize) / 3);
        expect_has(doc, want);
        ASSERT_NOT_NULL(msgs);
        mbytes = real_after(msgs, "\"bytes\":");
        mper = real_after(msgs, "\"bytes_per_message\":");
        ASSERT_TRUE(fabs(mper - mbytes / 3) < 0.06);
        /* plausible: at least a page for the records, all of it within data.mdb */
        ASSERT_TRUE(mbytes >= psize && mper <= file / 3);
        ASSERT_TRUE(used <= file && file / 3 > 100);
    }

    /* decode-id needs no data */
    ASSERT_EQ(
        tsrv_run_tool(out, sizeof(out), "cimdump", "--json", "decode-id", id[0], (char *)NULL), 0);
    json_ok(out);
    snprintf(want, sizeof(want), "{\"id\":\"%s\",\"time_ms\":%llu,", id[0], (unsigned long long)ms);
    expect_has(out, want);
    snprintf(want, sizeof(want), "\"node\":%u,\"seq\":%u}", node, seq);
    expect_has(out, want);

    /* every command also prints a table; DESIGN.md's form "cimdump DIR COMMAND" works */
    dump_text(&t, "stats", NULL);
    expect_has(out, "\nper message ");
    expect_has(out, " bytes of data.mdb, ");
    expect_has(out, " B/MSG\n");
    dump_text(&t, "apps", NULL);
    dump_text(&t, "users", NULL);
    dump_text(&t, "user", "bob");
    dump_text(&t, "timeline", "bob");
    expect_has(out, "hello \\\"bob\\\"");
    dump_text(&t, "msg", id[1]);
    expect_has(out, "hex 0001ff80");
    expect_has(out, "\nrecord         "); /* its stored size, and that the key gives its head */
    expect_has(out, " bytes stored (its id and time left out: the key gives both)\n");
    dump_text(&t, "convs", "bob");
    dump_text(&t, "groups", NULL);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimdump", t.dir, "user", "alice", (char *)NULL), 0);
    expect_has(out, "alice");

    cimc_close(alice);
    cimc_close(bob);
    json_flush();
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* ---- groups ------------------------------------------------------------------------- */

static void mk_note(void *ctx, size_t i, char *cmid, size_t cap, const uint8_t **body,
                    size_t *len)
{
    (void)ctx;
    snprintf(cmid, cap, "n%zu", i);
    *body = (const uint8_t *)"a note";
    *len = 6;
}

/* stats accounts for every live page: the databases' own trees, the two meta pages, and
 * the trees a timeline grows into once it outgrows a leaf (dup_tree_bytes), which LMDB's
 * own statistics leave out — exactly, not roughly. */
TEST_TIMEOUT(e2e_cimdump_stats_counts_every_live_page, 60)
{
    tsrv_t t;
    size_t answered = 0;
    const char *doc, *p;
    double psize, live, dup, dbs = 0;

    tsrv_start(&t, "--send_rate", "100000", "--send_burst", "100000", NULL);
    cimc_close(tsrv_login(&t, "bob", "d1", NULL));
    cimc_t *a = tsrv_login(&t, "alice", "d1", NULL);
    ASSERT_OK(tmsg_send_many(a, "bob", 1200, 64, cim_MsgType_TEXT, mk_note, NULL, NULL, NULL,
                             &answered));
    ASSERT_EQ(answered, 1200);
    cimc_close(a);
    ASSERT_EQ(tsrv_stop_keep(&t), 0);
    doc = dumpj(&t, "stats", NULL, NULL, NULL);
    expect_has(doc, "\"messages\":{\"count\":1200,");
    psize = real_after(doc, "\"page_size\":");
    live = real_after(doc, "\"used\":") - real_after(doc, "\"free_pages\":") * psize;
    dup = real_after(doc, "\"dup_tree_bytes\":");
    for (p = strstr(doc, "\"databases\":"); (p = strstr(p, "\"bytes\":")) != NULL; p++)
        dbs += real_after(p, "\"bytes\":");
    /* alice's and bob's 1,200 ids (9.6 KB each) are trees of their own */
    ASSERT_TRUE(dup >= 4 * psize);
    ASSERT_TRUE(fabs(live - (dbs + 2 * psize + dup)) < 0.5);
    tsrv_restart(&t);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

static void create_group(cimc_t *c, const char *name, const char *const *members, size_t n,
                         bool open, cim_Group *g)
{
    cim_GroupCreateReq req = cim_GroupCreateReq_init_zero;
    cim_GroupRsp rsp = cim_GroupRsp_init_zero;

    snprintf(req.name, sizeof(req.name), "%s", name);
    for (size_t i = 0; i < n; i++)
        snprintf(req.members[i], sizeof(req.members[i]), "%s", members[i]);
    req.members_count = (pb_size_t)n;
    req.open = open;
    ASSERT_OK(cimc_call(c, FT_GROUP_CREATE, cim_GroupCreateReq_fields, &req, FT_GROUP_CREATE_ACK,
                        cim_GroupRsp_fields, &rsp));
    if (rsp.code != cim_Code_OK)
        TEST_FAIL_("GROUP_CREATE answered %d (%s)", rsp.code, rsp.reason);
    ASSERT_TRUE(rsp.has_group);
    *g = rsp.group;
}

TEST_TIMEOUT(e2e_cimdump_group_members_owner_and_events, 60)
{
    static const char *const members[] = {"bob", "carol"};
    tsrv_t t;
    cimc_t *alice, *bob, *carol;
    cim_Group g, g2;
    cim_SendReq req;
    cim_SendRsp rsp;
    cimc_bytes_t b = {(const uint8_t *)"hi all", 6};
    char want[512], mid[24];
    const char *doc;

    tsrv_start(&t, NULL);
    alice = tmsg_login(&t, "alice", "a1", cim_DeviceKind_DESKTOP, NULL);
    bob = tmsg_login(&t, "bob", "b1", cim_DeviceKind_DESKTOP, NULL);
    carol = tmsg_login(&t, "carol", "c1", cim_DeviceKind_WEB, NULL);
    tmsg_wait_user(&t, "alice");
    tmsg_wait_user(&t, "bob");
    tmsg_wait_user(&t, "carol");
    create_group(alice, "tea \"room\"", members, 2, false, &g);
    create_group(bob, "open", NULL, 0, true, &g2);
    tmsg_fill_req(&req, g.group_id, "g1", cim_MsgType_TEXT, &b, false);
    req.conv_type = cim_ConvType_GROUP;
    ASSERT_OK(tmsg_send_req(carol, &req, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    snprintf(mid, sizeof(mid), "%llu", (unsigned long long)rsp.msg_id);

    /* group: the record and its members, the owner marked */
    doc = dumpj(&t, "group", g.group_id, NULL, NULL);
    snprintf(want, sizeof(want),
             "{\"group_id\":\"%s\",\"name\":\"tea \\\"room\\\"\","
             "\"owner\":\"alice\",\"created_ms\":%llu,",
             g.group_id, (unsigned long long)g.created_ms);
    expect_has(doc, want);
    expect_has(doc, "\"member_count\":3,\"open\":false,\"dismissed\":false,\"app\":\"default\"");
    expect_has(doc, "{\"user\":\"alice\",\"owner\":true,\"joined\":\"");
    expect_has(doc, "{\"user\":\"bob\",\"owner\":false,");
    expect_has(doc, "{\"user\":\"carol\",\"owner\":false,");
    ASSERT_EQ(count_of(doc, "\"user\":"), 3);

    /* groups: both, in id order */
    doc = dumpj(&t, "groups", NULL, NULL, NULL);
    expect_has(doc, "\"count\":2}");
    ASSERT_TRUE(strstr(doc, "\"name\":\"tea") < strstr(doc, "\"name\":\"open\""));
    expect_has(doc, "\"owner\":\"bob\",");
    expect_has(doc, "\"member_count\":1,\"open\":true,");

    /* the group message, and the SYSTEM message of the creation in carol's timeline */
    doc = dumpj(&t, "msg", mid, NULL, NULL);
    snprintf(want, sizeof(want),
             "\"conv_type\":\"GROUP\",\"from\":\"carol\",\"to\":\"%s\","
             "\"msg_type\":\"TEXT\",\"client_msg_id\":\"g1\"",
             g.group_id);
    expect_has(doc, want);
    expect_has(doc, "\"from_device\":\"WEB\"");
    expect_has(doc, "\"body\":\"hi all\"");
    doc = dumpj(&t, "timeline", "carol", NULL, NULL);
    expect_has(doc, "\"total\":2,\"count\":2,");
    expect_has(doc, "\"msg_type\":\"SYSTEM\"");
    snprintf(want, sizeof(want),
             "\"group_event\":{\"kind\":\"GE_CREATED\",\"actor\":\"alice\","
             "\"users\":[\"bob\",\"carol\"],\"group\":{\"group_id\":\"%s\",",
             g.group_id);
    expect_has(doc, want);

    /* user and convs see the memberships */
    doc = dumpj(&t, "user", "bob", NULL, NULL);
    snprintf(want, sizeof(want), "\"groups\":[\"%s\",\"%s\"]", g.group_id, g2.group_id);
    expect_has(doc, want);
    doc = dumpj(&t, "convs", "bob", NULL, NULL);
    snprintf(want, sizeof(want), "{\"conv_type\":\"GROUP\",\"peer\":\"%s\",\"last_id\":\"%s\",",
             g.group_id, mid);
    expect_has(doc, want);
    expect_has(doc, "\"peer_read_up_to\":null,\"left_id\":null,\"messages\":2}");
    dump_text(&t, "group", g.group_id);
    expect_has(out, "(owner)");
    expect_has(out, "tea \\\"room\\\"");

    cimc_close(alice);
    cimc_close(bob);
    cimc_close(carol);
    json_flush();
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* ---- while cimd keeps writing -------------------------------------------------------- */

typedef struct writer {
    cimc_t *c;
    _Atomic bool stop;
    _Atomic uint64_t last_id; /* the newest acknowledged (so committed) id */
    _Atomic uint64_t sent;
    int failed; /* an rc, or the code of a rejected SEND */
    char reason[256];
} writer_t;

static void *write_loop(void *arg)
{
    writer_t *w = arg;
    char cmid[32], body[64];
    cim_SendRsp rsp;

    for (uint64_t i = 0; !atomic_load(&w->stop); i++) {
        snprintf(cmid, sizeof(cmid), "bg-%llu", (unsigned long long)i);
        snprintf(body, sizeof(body), "background message %llu", (unsigned long long)i);
        int rc = tmsg_send(w->c, "bob", cmid, cim_MsgType_TEXT, body, strlen(body), false, &rsp);
        if (rc != 0 || rsp.code != cim_Code_OK) {
            snprintf(w->reason, sizeof(w->reason), "%s", rc != 0 ? rc_str(rc) : rsp.reason);
            w->failed = rc != 0 ? rc : (int)rsp.code;
            break;
        }
        atomic_store(&w->last_id, rsp.msg_id);
        atomic_store(&w->sent, i + 1);
    }
    return NULL;
}

/* The number after "key": in doc (first occurrence). */
static uint64_t num_after(const char *doc, const char *key)
{
    const char *p = strstr(doc, key);
    if (p == NULL)
        TEST_FAIL_("missing %s in %.2000s", key, doc);
    p += strlen(key);
    if (*p == '"')
        p++;
    return strtoull(p, NULL, 10);
}

TEST_TIMEOUT(e2e_cimdump_while_cimd_writes, 120)
{
    tsrv_t t;
    writer_t w = {0};
    pthread_t th;
    uint64_t prev_msgs = 0, prev_total = 0, last, n, sent, before;
    char id[24], want[160];
    const char *doc;

    /* no rate limit: the writer sends as fast as the store commits */
    tsrv_start(&t, "--send_rate", "1000000", "--send_burst", "1000000", NULL);
    w.c = tmsg_login(&t, "alice", "a1", cim_DeviceKind_DESKTOP, NULL);
    cimc_close(tmsg_login(&t, "bob", "b1", cim_DeviceKind_DESKTOP, NULL));
    tmsg_wait_user(&t, "alice");
    tmsg_wait_user(&t, "bob");
    ASSERT_EQ(pthread_create(&th, NULL, write_loop, &w), 0);
    while (atomic_load(&w.sent) < 5 && !w.failed)
        tmsg_sleep_ms(5);

    /* Every round: the counts only grow, and every id acknowledged before cimdump started
     * is there, decoded. cimdump never fails or waits on the writer. At least 20 rounds,
     * and on until the writer has committed 500 messages meanwhile. */
    before = atomic_load(&w.sent);
    for (int round = 0; round < 20 || atomic_load(&w.sent) - before < 500; round++) {
        ASSERT_LT(round, 2000);
        uint64_t t0 = tmsg_now_ms();
        last = atomic_load(&w.last_id);
        snprintf(id, sizeof(id), "%llu", (unsigned long long)last);

        doc = dumpj(&t, "stats", NULL, NULL, NULL);
        n = num_after(doc, "\"messages\":{\"count\":");
        ASSERT_TRUE(n >= prev_msgs);
        prev_msgs = n;
        expect_has(doc, "\"self\":true}");

        doc = dumpj(&t, "msg", id, NULL, NULL);
        expect_has(doc, "\"from\":\"alice\",\"to\":\"bob\"");
        expect_has(doc, "\"body\":\"background message ");

        doc = dumpj(&t, "timeline", "bob", "--limit", "50");
        n = num_after(doc, "\"total\":");
        ASSERT_TRUE(n >= prev_total);
        prev_total = n;
        expect_lacks(doc, "\"missing\"");
        expect_lacks(doc, "\"error\"");

        /* --after is exclusive: the page starts past the acknowledged id */
        doc = dumpj(&t, "timeline", "bob", "--after", id);
        snprintf(want, sizeof(want), "\"after\":\"%s\"", id);
        expect_has(doc, want);
        snprintf(want, sizeof(want), "\"id\":\"%s\"", id);
        expect_lacks(doc, want);
        ASSERT_TRUE(num_after(doc, "\"total\":") >= prev_total);
        dumpj(&t, "user", "bob", NULL, NULL);
        dumpj(&t, "convs", "bob", NULL, NULL);
        dump_text(&t, "stats", NULL);
        /* a read-only snapshot: never held up by the writer's transactions */
        ASSERT_LT(tmsg_now_ms() - t0, 5000);
        if (w.failed)
            TEST_FAIL_("the writer failed: %d (%s)", w.failed, w.reason);
    }
    atomic_store(&w.stop, true);
    ASSERT_EQ(pthread_join(th, NULL), 0);
    ASSERT_EQ(w.failed, 0);
    sent = atomic_load(&w.sent);

    /* Quiet again: exactly what was acknowledged is stored. */
    snprintf(want, sizeof(want), "\"messages\":{\"count\":%llu,", (unsigned long long)sent);
    expect_has(dumpj(&t, "stats", NULL, NULL, NULL), want);
    snprintf(want, sizeof(want), "\"total\":%llu,", (unsigned long long)sent);
    expect_has(dumpj(&t, "timeline", "alice", "--limit", "1"), want);
    snprintf(id, sizeof(id), "%llu", (unsigned long long)atomic_load(&w.last_id));
    snprintf(want, sizeof(want), "\"last\":\"%s\"", id);
    expect_has(dumpj(&t, "user", "bob", NULL, NULL), want);
    snprintf(want, sizeof(want), "\"client_msg_id\":\"bg-%llu\"", (unsigned long long)(sent - 1));
    expect_has(dumpj(&t, "msg", id, NULL, NULL), want);

    cimc_close(w.c);
    json_flush();
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* ---- errors ------------------------------------------------------------------------- */

/* An LMDB environment of something else: one named database, no cim ones. */
static void make_foreign_env(const char *dir)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {3, "key"}, v = {5, "value"};

    ASSERT_OK(mdb_env_create(&env));
    ASSERT_OK(mdb_env_set_maxdbs(env, 4));
    ASSERT_OK(mdb_env_open(env, dir, 0, 0600));
    ASSERT_OK(mdb_txn_begin(env, NULL, 0, &txn));
    ASSERT_OK(mdb_dbi_open(txn, "other", MDB_CREATE, &dbi));
    ASSERT_OK(mdb_put(txn, dbi, &k, &v, 0));
    ASSERT_OK(mdb_txn_commit(txn));
    mdb_env_close(env);
}

/* An empty file DIR/NAME. */
static void touch(const char *dir, const char *name)
{
    char path[160];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    ASSERT_NOT_NULL(f = fopen(path, "w"));
    fclose(f);
}

TEST_TIMEOUT(e2e_cimdump_errors, 60)
{
    tsrv_t t;
    char empty[] = "/tmp/cimdump-empty-XXXXXX", foreign[] = "/tmp/cimdump-foreign-XXXXXX";
    char path[128], missing[128], want[300];
    struct stat sb;

    tsrv_start(&t, NULL);
    cimc_close(tmsg_login(&t, "alice", "a1", cim_DeviceKind_DESKTOP, NULL));
    tmsg_wait_user(&t, "alice");
    ASSERT_NOT_NULL(mkdtemp(empty));
    ASSERT_NOT_NULL(mkdtemp(foreign));
    make_foreign_env(foreign);
    snprintf(missing, sizeof(missing), "%s/nope", empty);

    /* no directory, an empty one (left untouched: no lock.mdb made), one without an
     * identity key, a foreign LMDB env (given an identity.key, so that LMDB is what
     * refuses it) */
    snprintf(want, sizeof(want), "cimdump: no cim data in %s: no such directory\n", missing);
    expect_error(1, want, "--data", missing, "stats", NULL, NULL, NULL);
    snprintf(want, sizeof(want), "cimdump: no cim data in %s: no data.mdb\n", empty);
    expect_error(1, want, "--data", empty, "users", NULL, NULL, NULL);
    snprintf(path, sizeof(path), "%s/lock.mdb", empty);
    ASSERT_TRUE(stat(path, &sb) < 0 && errno == ENOENT);
    snprintf(want, sizeof(want), "cimdump: no cim data in %s: no identity.key\n", foreign);
    expect_error(1, want, "--data", foreign, "--json", "stats", NULL, NULL);
    touch(foreign, "identity.key");
    touch(empty, "identity.key");
    snprintf(want, sizeof(want), "cimdump: no cim data in %s: kv: ", foreign);
    expect_error(1, want, "--data", foreign, "--json", "stats", NULL, NULL);
    /* a data.mdb that is not LMDB at all */
    snprintf(path, sizeof(path), "%s/data.mdb", empty);
    {
        FILE *f = fopen(path, "w");
        ASSERT_NOT_NULL(f);
        fputs("not an lmdb file, just some bytes\n", f);
        fclose(f);
    }
    snprintf(want, sizeof(want), "cimdump: no cim data in %s: kv: ", empty);
    expect_error(1, want, "--data", empty, "stats", NULL, NULL, NULL);

    /* unknown user, message, group, app: exact lines */
    expect_error(1, "cimdump: unknown user 'zed'\n", "--data", t.dir, "user", "zed", NULL, NULL);
    expect_error(1, "cimdump: unknown user 'zed'\n", "--data", t.dir, "--json", "timeline", "zed",
                 NULL);
    expect_error(1, "cimdump: unknown user 'zed'\n", "--data", t.dir, "convs", "zed", NULL, NULL);
    expect_error(1, "cimdump: unknown message id 12345\n", "--data", t.dir, "--json", "msg",
                 "12345", NULL);
    expect_error(1, "cimdump: invalid message id 'x1'", "--data", t.dir, "msg", "x1", NULL, NULL);
    expect_error(1, "cimdump: unknown group '4242'\n", "--data", t.dir, "group", "4242", NULL,
                 NULL);
    expect_error(1, "cimdump: unknown app 'acme'\n", "--data", t.dir, "--app", "acme", "users",
                 NULL);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "app", "add", "acme",
                            (char *)NULL),
              0);
    expect_error(1, "cimdump: unknown user 'alice' in app 'acme'", "--data", t.dir, "--app", "acme",
                 "user", "alice");
    /* usage errors: exit 2 */
    expect_error(2, "cimdump: unknown command 'frob'", "--data", t.dir, "frob", NULL, NULL, NULL);
    expect_error(2, "cimdump: timeline: expected", "--data", t.dir, "timeline", NULL, NULL, NULL);
    expect_error(2, "cimdump: invalid --limit", "--data", t.dir, "timeline", "alice", "--limit=0",
                 NULL);
    expect_error(2, "cimdump: stats: --after and --limit", "--data", t.dir, "stats", "--after=5",
                 NULL, NULL);
    expect_error(2, "cimdump: no command", "--data", t.dir, NULL, NULL, NULL, NULL);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimdump", "--help", (char *)NULL), 0);
    expect_has(out, "usage: cimdump");

    json_flush();
    ASSERT_EQ(tsrv_stop(&t), 0);
    snprintf(path, sizeof(path), "%s/data.mdb", empty);
    unlink(path);
    snprintf(path, sizeof(path), "%s/identity.key", empty);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", empty); /* LMDB's, from the last open */
    unlink(path);
    snprintf(path, sizeof(path), "%s/data.mdb", foreign);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", foreign);
    unlink(path);
    snprintf(path, sizeof(path), "%s/identity.key", foreign);
    unlink(path);
    ASSERT_OK(rmdir(foreign));
    ASSERT_OK(rmdir(empty));
}
