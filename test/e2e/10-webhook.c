/* Integration: webhooks (docs/WEBHOOKS.md) — a real cimd POSTs to a real HTTP receiver on
 * loopback (support/hookrecv): message.offline with its signature and fields, bodies only
 * when asked, nothing for an online recipient, retries with one delivery id, a dead
 * endpoint that costs message traffic nothing, message.to_bot, user.online/offline, and
 * `cimctl app set` checked and picked up by a running cimd. */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include "core/kv.h"
#include "support/hookrecv.h"
#include "support/msg.h"
#include "support/server.h"
#include "support/test.h"

#define TOOL_MS 10000

#define RUN(tt, ...)                                                                               \
    (tsrv_tool_start((tt), NULL, 0, __VA_ARGS__, (char *)NULL), tsrv_tool_finish((tt), TOOL_MS))

/* A data directory made with `cimctl init` whose app "default" has these settings (a
 * NULL-terminated list of KEY=VALUE), so cimd reads them at its start. */
static void make_dir(char dir[64], const char *const *settings)
{
    tsrv_tool_t tt;
    snprintf(dir, 64, "/tmp/cimtest-hook-XXXXXX");
    ASSERT_NOT_NULL(mkdtemp(dir));
    ASSERT_EQ(RUN(&tt, "cimctl", "--data", dir, "init"), 0);
    for (; *settings != NULL; settings++) {
        if (RUN(&tt, "cimctl", "--data", dir, "app", "set", "default", *settings) != 0)
            TEST_FAIL_("app set %s: %s", *settings, tt.err);
    }
}

static void app_secret(const tsrv_t *t, uint8_t secret[32])
{
    kv_t *kv = NULL;
    kv_txn_t *txn = NULL;
    ASSERT_OK(kv_open(t->dir, KV_RDONLY, &kv));
    ASSERT_OK(kv_begin(kv, KV_READ, &txn));
    ASSERT_OK(kv_app_get(txn, "default", secret));
    kv_abort(txn);
    kv_close(kv);
}

/* A cimd whose app "default" sends its webhooks to a receiver of the test's own. */
typedef struct hooked {
    tsrv_t t;
    hookrecv_t *r;
    uint8_t secret[32];
} hooked_t;

/* Start both; @p setting is one more KEY=VALUE for the app, or NULL. */
static void hooked_start(hooked_t *h, const char *setting)
{
    char dir[64], url[128];
    h->r = hookrecv_start();
    snprintf(url, sizeof(url), "webhook_url=%s", hookrecv_url(h->r));
    make_dir(dir, (const char *const[]){url, setting, NULL});
    tsrv_start_on(&h->t, dir, NULL);
    app_secret(&h->t, h->secret);
}

/* Stop cimd (exit status 0, unless the test stopped it already), remove its directory,
 * stop the receiver. */
static void hooked_stop(hooked_t *h)
{
    if (h->t.pid > 0)
        ASSERT_EQ(tsrv_stop(&h->t), 0);
    else
        (void)tsrv_stop(&h->t); /* not running: only removes the directory */
    hookrecv_stop(h->r);
}

/* Request @p i must be a webhook POST of @p event, signed with @p secret over its exact
 * body, its id equal to X-Cim-Delivery. @return its JSON (json_decref it). */
static json_t *expect_hook(hookrecv_t *r, size_t i, const uint8_t secret[32], const char *event)
{
    uint8_t mac[32];
    unsigned int maclen = 0;
    char want[80] = "sha256=";
    hookrecv_req_t q;
    json_error_t jerr;
    json_t *j;

    hookrecv_get(r, i, &q);
    ASSERT_STREQ(q.method, "POST");
    ASSERT_STREQ(q.path, "/hook");
    ASSERT_STREQ(q.content_type, "application/json");
    ASSERT_STREQ(q.event, event);
    ASSERT_EQ(strlen(q.delivery), 32);
    ASSERT_EQ(strspn(q.delivery, "0123456789abcdef"), 32);
    /* the signature, checked here with OpenSSL directly, not with cimd's own code */
    ASSERT_NOT_NULL(
        HMAC(EVP_sha256(), secret, 32, (const uint8_t *)q.body, q.body_len, mac, &maclen));
    for (unsigned k = 0; k < maclen; k++)
        snprintf(want + 7 + 2 * k, 3, "%02x", mac[k]);
    ASSERT_STREQ(q.signature, want);
    j = json_loadb(q.body, q.body_len, 0, &jerr);
    if (j == NULL)
        TEST_FAIL_("webhook body is not JSON (%s): %s", jerr.text, q.body);
    ASSERT_STREQ(json_string_value(json_object_get(j, "id")), q.delivery);
    ASSERT_STREQ(json_string_value(json_object_get(j, "event")), event);
    ASSERT_STREQ(json_string_value(json_object_get(j, "app")), "default");
    ASSERT_TRUE(json_is_integer(json_object_get(j, "time_ms")));
    ASSERT_LT(1700000000000LL, json_integer_value(json_object_get(j, "time_ms")));
    ASSERT_TRUE(json_is_object(json_object_get(j, "data")));
    return j;
}

static const char *data_str(json_t *j, const char *key)
{
    return json_string_value(json_object_get(json_object_get(j, "data"), key));
}

/* The message fields of a message event. */
static void expect_message(json_t *j, const cim_SendRsp *ack, const char *from, const char *to_key,
                           const char *to, const char *recipient, const char *conv_type,
                           const char *peer, const char *type)
{
    json_t *d = json_object_get(j, "data"), *conv = json_object_get(d, "conversation");
    char id[24];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)ack->msg_id);
    ASSERT_STREQ(data_str(j, "msg_id"), id);
    ASSERT_STREQ(data_str(j, "from"), from);
    ASSERT_STREQ(data_str(j, to_key), to);
    ASSERT_NULL(json_object_get(d, strcmp(to_key, "to") == 0 ? "group" : "to"));
    ASSERT_STREQ(data_str(j, "recipient"), recipient);
    ASSERT_STREQ(json_string_value(json_object_get(conv, "type")), conv_type);
    ASSERT_STREQ(json_string_value(json_object_get(conv, "peer")), peer);
    ASSERT_STREQ(data_str(j, "type"), type);
    ASSERT_EQ(json_integer_value(json_object_get(d, "time_ms")), (long long)ack->time_ms);
}

static void send_ok(cimc_t *c, const char *to, const char *cmid, int type, const void *body,
                    size_t len, cim_SendRsp *rsp)
{
    TMSG_EXPECT(tmsg_send(c, to, cmid, type, body, len, false, rsp), *rsp, cim_Code_OK);
}

/* Send messages from @p c to @p to, one every 50 ms for up to @p max_ms, until @p r has
 * more than @p had requests: for what cimd learns asynchronously (a device went away, the
 * settings changed). Then let what is still on its way arrive. @return the count then. */
static size_t send_until_hook(cimc_t *c, const char *to, hookrecv_t *r, size_t had, unsigned max_ms,
                              cim_SendRsp *ack)
{
    static int seq;
    for (unsigned waited = 0; waited < max_ms && hookrecv_count(r) <= had; waited += 50) {
        char cmid[24];
        snprintf(cmid, sizeof(cmid), "until%d", seq++);
        send_ok(c, to, cmid, cim_MsgType_TEXT, "x", 1, ack);
        hookrecv_wait(r, had + 1, 50);
    }
    ASSERT_LT(had, hookrecv_count(r));
    tmsg_sleep_ms(200);
    return hookrecv_count(r);
}

/* The "webhook: stopped: ..." counters cimd logs when it stops. */
typedef struct counters {
    unsigned long long sent, delivered, failed, full, retries, abandoned;
} counters_t;

static void stopped_counters(const tsrv_t *t, counters_t *c)
{
    char line[1024];
    bool found = false;
    FILE *f = fopen(t->log, "r");
    ASSERT_NOT_NULL(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        const char *p = strstr(line, "webhook: stopped: ");
        if (p != NULL &&
            sscanf(p,
                   "webhook: stopped: %llu requests, %llu events delivered, "
                   "%llu attempts failed, %llu dropped (queue full), %llu "
                   "dropped (retries), %llu abandoned",
                   &c->sent, &c->delivered, &c->failed, &c->full, &c->retries, &c->abandoned) == 6)
            found = true;
    }
    fclose(f);
    if (!found) {
        tsrv_dump_log(t);
        TEST_FAIL_("no 'webhook: stopped' line in the log");
    }
}

/* message.offline: one signed event per offline recipient, with the documented fields and
 * no body unless asked; nothing for the sender. */
TEST_TIMEOUT(e2e_webhook_offline_signed, 30)
{
    cim_SendRsp ack;
    json_t *j;
    hooked_t h;

    hooked_start(&h, NULL);
    tmsg_register_users(&h.t, (const char *const[]){"bob"}, 1);
    cimc_t *a = tsrv_login(&h.t, "alice", "a1", NULL);
    send_ok(a, "bob", "m1", cim_MsgType_TEXT, "hello bob", 9, &ack);
    ASSERT_EQ(hookrecv_wait(h.r, 1, 5000), 1);
    j = expect_hook(h.r, 0, h.secret, "message.offline");
    expect_message(j, &ack, "alice", "to", "bob", "bob", "DIRECT", "alice", "TEXT");
    ASSERT_NULL(json_object_get(json_object_get(j, "data"), "body"));
    ASSERT_NULL(json_object_get(json_object_get(j, "data"), "body_b64"));
    json_decref(j);
    /* nothing more: the sender (online or not) is never a recipient */
    tmsg_sleep_ms(300);
    ASSERT_EQ(hookrecv_count(h.r), 1);
    cimc_close(a);
    hooked_stop(&h);
}

/* webhook_bodies = true: a UTF-8 body as a string, other bytes as base64. */
TEST_TIMEOUT(e2e_webhook_bodies_when_asked, 30)
{
    static const uint8_t bin[] = {0xff, 0xfe, 0x00, 0x01, 'x'};
    cim_SendRsp ack1, ack2;
    json_t *j;
    hooked_t h;

    hooked_start(&h, "webhook_bodies=true");
    tmsg_register_users(&h.t, (const char *const[]){"bob"}, 1);
    cimc_t *a = tsrv_login(&h.t, "alice", "a1", NULL);
    send_ok(a, "bob", "m1", cim_MsgType_TEXT, "h\xc3\xa9llo \"bob\"", 12, &ack1);
    ASSERT_EQ(hookrecv_wait(h.r, 1, 5000), 1);
    send_ok(a, "bob", "m2", cim_MsgType_FILE, bin, sizeof(bin), &ack2);
    ASSERT_EQ(hookrecv_wait(h.r, 2, 5000), 2);
    j = expect_hook(h.r, 0, h.secret, "message.offline");
    expect_message(j, &ack1, "alice", "to", "bob", "bob", "DIRECT", "alice", "TEXT");
    ASSERT_STREQ(data_str(j, "body"), "h\xc3\xa9llo \"bob\"");
    json_decref(j);
    j = expect_hook(h.r, 1, h.secret, "message.offline");
    expect_message(j, &ack2, "alice", "to", "bob", "bob", "DIRECT", "alice", "FILE");
    ASSERT_NULL(json_object_get(json_object_get(j, "data"), "body"));
    ASSERT_STREQ(data_str(j, "body_b64"), "//4AAXg=");
    json_decref(j);
    cimc_close(a);
    hooked_stop(&h);
}

/* An online recipient gets the PUSH and no event; in a group only the offline members
 * are events, the sender never. */
TEST_TIMEOUT(e2e_webhook_none_when_online, 30)
{
    char gid[80];
    cim_SendRsp ack;
    cim_GroupRsp g;
    json_t *j;
    hooked_t h;

    hooked_start(&h, NULL);
    tmsg_register_users(&h.t, (const char *const[]){"carol"}, 1);
    cimc_t *b = tsrv_login(&h.t, "bob", "b1", NULL);
    cimc_t *a = tsrv_login(&h.t, "alice", "a1", NULL);
    cimc_t *a2 = tsrv_login(&h.t, "alice", "a2", NULL); /* the sender's other device */
    send_ok(a, "bob", "m1", cim_MsgType_TEXT, "hi", 2, &ack);
    tmsg_expect_push(b, ack.msg_id, cim_ConvType_DIRECT, "alice", "bob", "m1", cim_MsgType_TEXT,
                     "hi", 2);
    /* a group of alice, bob (online) and carol (offline) */
    TMSG_EXPECT(tmsg_group_create(a, "team", (const char *const[]){"bob", "carol"}, 2, false, &g),
                g, cim_Code_OK);
    snprintf(gid, sizeof(gid), "%s", g.group.group_id);
    TMSG_EXPECT(
        tmsg_send_conv(a, cim_ConvType_GROUP, gid, "g1", cim_MsgType_TEXT, "all", 3, false, &ack),
        ack, cim_Code_OK);
    ASSERT_EQ(hookrecv_wait(h.r, 1, 5000), 1);
    j = expect_hook(h.r, 0, h.secret, "message.offline");
    expect_message(j, &ack, "alice", "group", gid, "carol", "GROUP", gid, "TEXT");
    json_decref(j);
    tmsg_sleep_ms(300);
    ASSERT_EQ(hookrecv_count(h.r), 1); /* not for bob, nor the DIRECT one, nor alice */
    /* bob goes away: now a message to him is an event */
    cimc_close(b);
    send_until_hook(a2, "bob", h.r, 1, 5000, &ack);
    j = expect_hook(h.r, 1, h.secret, "message.offline");
    ASSERT_STREQ(data_str(j, "recipient"), "bob");
    json_decref(j);
    cimc_close(a);
    cimc_close(a2);
    hooked_stop(&h);
}

/* The receiver fails once: the same event (same X-Cim-Delivery, same bytes) comes again
 * after the backoff and is delivered once. */
TEST_TIMEOUT(e2e_webhook_retried_after_failure, 30)
{
    hookrecv_req_t q0, q1;
    counters_t n;
    cim_SendRsp ack;
    uint64_t t0;
    json_t *j;
    hooked_t h;

    hooked_start(&h, NULL);
    tmsg_register_users(&h.t, (const char *const[]){"bob"}, 1);
    cimc_t *a = tsrv_login(&h.t, "alice", "a1", NULL);
    hookrecv_fail_next(h.r, 1, 503);
    t0 = tmsg_now_ms();
    send_ok(a, "bob", "m1", cim_MsgType_TEXT, "again", 5, &ack);
    ASSERT_EQ(hookrecv_wait(h.r, 2, 5000), 2);
    ASSERT_LE(500, tmsg_now_ms() - t0); /* the first backoff: 0.5..1 s */
    hookrecv_get(h.r, 0, &q0);
    hookrecv_get(h.r, 1, &q1);
    ASSERT_EQ(q0.status, 503);
    ASSERT_EQ(q1.status, 200);
    ASSERT_STREQ(q0.delivery, q1.delivery);
    ASSERT_EQ(q0.body_len, q1.body_len);
    ASSERT_TRUE(memcmp(q0.body, q1.body, q0.body_len) == 0);
    j = expect_hook(h.r, 1, h.secret, "message.offline");
    expect_message(j, &ack, "alice", "to", "bob", "bob", "DIRECT", "alice", "TEXT");
    json_decref(j);
    tmsg_sleep_ms(1500);
    ASSERT_EQ(hookrecv_count(h.r), 2); /* delivered: never again */
    cimc_close(a);
    ASSERT_EQ(tsrv_stop_keep(&h.t), 0);
    stopped_counters(&h.t, &n);
    ASSERT_EQ(n.sent, 2);
    ASSERT_EQ(n.delivered, 1);
    ASSERT_EQ(n.failed, 1);
    ASSERT_EQ(n.full + n.retries + n.abandoned, 0);
    hooked_stop(&h);
}

static void mk_flood(void *ctx, size_t i, char *cmid, size_t cap, const uint8_t **body, size_t *len)
{
    (void)ctx;
    snprintf(cmid, cap, "flood%zu", i);
    *body = (const uint8_t *)"flood message";
    *len = 13;
}

/* A dead endpoint (a closed port) and a flood of messages: every SEND is acknowledged OK
 * as fast as without webhooks, the queue stays within webhook_queue, and the drops are
 * counted. */
TEST_TIMEOUT(e2e_webhook_dead_endpoint_costs_nothing, 60)
{
    enum { N = 2000 };
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t alen = sizeof(addr);
    char dir[64], url[128];
    counters_t n;
    static int codes[N];
    size_t answered = 0;
    uint64_t t0, took;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    tsrv_t t;

    /* a port nobody listens on: bound and kept bound, never listening (connections are
     * refused), so no other test running meanwhile can take the port and answer the
     * events meant to find nobody there */
    ASSERT_TRUE(fd >= 0);
    ASSERT_OK(bind(fd, (struct sockaddr *)&addr, sizeof(addr)));
    ASSERT_OK(getsockname(fd, (struct sockaddr *)&addr, &alen));
    snprintf(url, sizeof(url), "webhook_url=http://127.0.0.1:%d/hook", ntohs(addr.sin_port));
    make_dir(dir, (const char *const[]){url, NULL});
    tsrv_start_on(&t, dir, "--webhook_queue", "50", "--webhook_retries", "2", "--send_rate",
                  "1000000", "--send_burst", "1000000", NULL);
    tmsg_register_users(&t, (const char *const[]){"bob"}, 1);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    t0 = tmsg_now_ms();
    ASSERT_OK(
        tmsg_send_many(a, "bob", N, 64, cim_MsgType_TEXT, mk_flood, NULL, NULL, codes, &answered));
    took = tmsg_now_ms() - t0;
    ASSERT_EQ(answered, N);
    for (size_t i = 0; i < N; i++)
        ASSERT_EQ(codes[i], cim_Code_OK);
    ASSERT_LT(took, 20000);
    cimc_close(a);
    tmsg_sleep_ms(2500); /* the second attempts (0.5..1 s later) fail too: dropped */
    ASSERT_EQ(tsrv_stop_keep(&t), 0);
    stopped_counters(&t, &n);
    /* every event is accounted for: refused at the full queue, or tried and dropped */
    ASSERT_EQ(n.full + n.retries + n.abandoned, N);
    ASSERT_LE(N / 2, n.full); /* the queue held at most webhook_queue: the rest dropped */
    ASSERT_LE(50, n.retries); /* the first 50 admitted, each tried twice */
    ASSERT_EQ(n.delivered, 0);
    ASSERT_EQ(n.failed, n.sent);      /* every attempt failed */
    ASSERT_LE(2 * n.retries, n.sent); /* webhook_retries attempts each, no more */
    ASSERT_LE(n.sent, 2 * n.retries + n.abandoned);
    ASSERT_EQ(tsrv_stop(&t), -1);
    close(fd);
}

/* message.to_bot: a user a BOT device logged in as (or marked with `cimctl user set`) gets
 * message.to_bot, not message.offline, while offline. */
TEST_TIMEOUT(e2e_webhook_to_bot, 30)
{
    cim_SendRsp ack;
    tsrv_tool_t tt;
    json_t *j;
    hooked_t h;
    size_t n;

    hooked_start(&h, NULL);
    /* helper logs in once as a BOT, then goes away */
    cimc_t *bot = tmsg_login(&h.t, "helper", "bot1", cim_DeviceKind_BOT, NULL);
    cimc_t *a = tsrv_login(&h.t, "alice", "a1", NULL);
    send_ok(a, "helper", "m1", cim_MsgType_TEXT, "online bot", 10, &ack);
    tmsg_expect_push(bot, ack.msg_id, cim_ConvType_DIRECT, "alice", "helper", "m1",
                     cim_MsgType_TEXT, "online bot", 10);
    cimc_close(bot);
    n = send_until_hook(a, "helper", h.r, 0, 5000, &ack);
    j = expect_hook(h.r, n - 1, h.secret, "message.to_bot");
    expect_message(j, &ack, "alice", "to", "helper", "helper", "DIRECT", "alice", "TEXT");
    json_decref(j);
    /* a webhook-only bot, never connected: marked by cimctl (read per event: no delay) */
    tmsg_register_users(&h.t, (const char *const[]){"robo"}, 1);
    ASSERT_EQ(RUN(&tt, "cimctl", "--data", h.t.dir, "user", "set", "robo", "bot=true"), 0);
    send_ok(a, "robo", "r1", cim_MsgType_TEXT, "robo?", 5, &ack);
    ASSERT_EQ(hookrecv_wait(h.r, n + 1, 5000), n + 1);
    j = expect_hook(h.r, n, h.secret, "message.to_bot");
    ASSERT_STREQ(data_str(j, "recipient"), "robo");
    json_decref(j);
    ASSERT_EQ(RUN(&tt, "cimctl", "--data", h.t.dir, "user", "set", "robo", "bot=false"), 0);
    send_ok(a, "robo", "r2", cim_MsgType_TEXT, "human?", 6, &ack);
    ASSERT_EQ(hookrecv_wait(h.r, n + 2, 5000), n + 2);
    j = expect_hook(h.r, n + 1, h.secret, "message.offline");
    json_decref(j);
    /* the BOT mark outlives a restart (it is stored with the user) */
    ASSERT_EQ(tsrv_stop_keep(&h.t), 0);
    tsrv_restart(&h.t);
    cimc_close(a);
    a = tsrv_login(&h.t, "alice", "a1", NULL);
    send_ok(a, "helper", "m-after", cim_MsgType_TEXT, "still a bot", 11, &ack);
    ASSERT_EQ(hookrecv_wait(h.r, n + 3, 5000), n + 3);
    j = expect_hook(h.r, n + 2, h.secret, "message.to_bot");
    json_decref(j);
    cimc_close(a);
    hooked_stop(&h);
}

/* user.online / user.offline when opted in: the first device online, the last offline. */
TEST_TIMEOUT(e2e_webhook_presence, 30)
{
    cim_SendRsp ack;
    json_t *j;
    hooked_t h;

    hooked_start(&h, "webhook_events=user.online,user.offline");
    cimc_t *b1 = tsrv_login(&h.t, "bob", "b1", NULL);
    ASSERT_EQ(hookrecv_wait(h.r, 1, 5000), 1);
    j = expect_hook(h.r, 0, h.secret, "user.online");
    ASSERT_STREQ(data_str(j, "user"), "bob");
    json_decref(j);
    cimc_t *b2 = tsrv_login(&h.t, "bob", "b2", NULL); /* not the first device: no event */
    cimc_close(b1);                                   /* not the last */
    /* message events are not asked for: a message to offline carol is none */
    tmsg_register_users(&h.t, (const char *const[]){"carol"}, 1);
    send_ok(b2, "carol", "c1", cim_MsgType_TEXT, "hey", 3, &ack);
    tmsg_sleep_ms(300);
    ASSERT_EQ(hookrecv_count(h.r), 1);
    cimc_close(b2);
    ASSERT_EQ(hookrecv_wait(h.r, 2, 5000), 2);
    j = expect_hook(h.r, 1, h.secret, "user.offline");
    ASSERT_STREQ(data_str(j, "user"), "bob");
    json_decref(j);
    tmsg_sleep_ms(300);
    ASSERT_EQ(hookrecv_count(h.r), 2);
    hooked_stop(&h);
}

/* `cimctl app set` refuses bad settings with a reason and changes nothing; good ones reach
 * a running cimd without a restart, and clearing the URL stops the events. */
TEST_TIMEOUT(e2e_webhook_settings_live, 30)
{
    hookrecv_t *r = hookrecv_start();
    char url[128];
    cim_SendRsp ack;
    tsrv_tool_t tt;
    tsrv_t t;
    uint64_t t0;
    size_t n;

    tsrv_start(&t, NULL);
    tmsg_register_users(&t, (const char *const[]){"bob"}, 1);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    send_ok(a, "bob", "before", cim_MsgType_TEXT, "x", 1, &ack);

    ASSERT_EQ(RUN(&tt, "cimctl", "--data", t.dir, "app", "set", "default",
                  "webhook_url=ftp://127.0.0.1/x"),
              1);
    ASSERT_NOT_NULL(strstr(tt.err, "bad webhook_url 'ftp://127.0.0.1/x': expected an http:// "
                                   "or https:// URL with a host; nothing changed"));
    snprintf(url, sizeof(url), "webhook_url=%s", hookrecv_url(r));
    ASSERT_EQ(RUN(&tt, "cimctl", "--data", t.dir, "app", "set", "default", url,
                  "webhook_bodies=true", "webhook_events=message.offline,message.sent"),
              1);
    ASSERT_NOT_NULL(strstr(tt.err, "unknown event 'message.sent' in webhook_events (one of: "
                                   "message.offline, message.to_bot, user.online, "
                                   "user.offline); nothing changed"));
    ASSERT_EQ(RUN(&tt, "cimctl", "--data", t.dir, "app", "set", "default", "colour=blue"), 1);
    ASSERT_NOT_NULL(strstr(tt.err, "unknown setting 'colour'"));
    ASSERT_EQ(RUN(&tt, "cimctl", "--data", t.dir, "app", "show", "default", "--settings"), 0);
    ASSERT_STREQ(tt.out, "webhook_url=\nwebhook_events=message.offline,message.to_bot\n"
                         "webhook_bodies=false\n");
    send_ok(a, "bob", "still-none", cim_MsgType_TEXT, "x", 1, &ack);
    tmsg_sleep_ms(1500); /* past a refresh: nothing was set, nothing comes */
    ASSERT_EQ(hookrecv_count(r), 0);

    /* a good setting: a running cimd picks it up within about a second */
    ASSERT_EQ(RUN(&tt, "cimctl", "--data", t.dir, "app", "set", "default", url), 0);
    ASSERT_EQ(RUN(&tt, "cimctl", "--data", t.dir, "app", "list", "--settings"), 0);
    ASSERT_NOT_NULL(strstr(tt.out, url));
    t0 = tmsg_now_ms();
    send_until_hook(a, "bob", r, 0, 5000, &ack);
    ASSERT_LT(tmsg_now_ms() - t0, 3000); /* a refresh a second: within about one */

    /* cleared: the events stop */
    ASSERT_EQ(RUN(&tt, "cimctl", "--data", t.dir, "app", "set", "default", "webhook_url="), 0);
    tmsg_sleep_ms(1500);
    n = hookrecv_wait(r, 1000, 500); /* whatever was still on its way */
    send_ok(a, "bob", "off", cim_MsgType_TEXT, "x", 1, &ack);
    tmsg_sleep_ms(500);
    ASSERT_EQ(hookrecv_count(r), n);
    cimc_close(a);
    ASSERT_EQ(tsrv_stop(&t), 0);
    hookrecv_stop(r);
}
