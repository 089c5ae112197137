/* Integration: the admin HTTP listener (docs/ADMIN-API.md) through a real HTTP client
 * (libcurl) against a real cimd — health, metrics, server push reaching an online client
 * and an offline one's SYNC, kick, disable, token revocation, groups, and bad input that
 * gets the documented error and changes nothing. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/cim.h"
#include "core/frame.h"
#include "core/token.h"
#include "support/http.h"
#include "support/msg.h"
#include "support/server.h"
#include "support/test.h"

/* ---- helpers ------------------------------------------------------------------------ */

static json_t *parse(const thttp_t *r)
{
    json_error_t err;
    json_t *j = json_loads(r->body, 0, &err);
    if (j == NULL)
        TEST_FAIL_("not JSON (%s): %s", err.text, r->body);
    return j;
}

static const char *jstr(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    if (!json_is_string(v))
        TEST_FAIL_("no string %s in %s", key, json_dumps(j, JSON_COMPACT));
    return json_string_value(v);
}

/* Check a JSON error answer: status and code. */
static void expect_error(const thttp_t *r, long status, const char *code)
{
    json_t *j;
    if (r->status != status)
        TEST_FAIL_("expected %ld %s, got %ld: %s", status, code, r->status, r->body);
    j = parse(r);
    ASSERT_STREQ(jstr(j, "code"), code);
    ASSERT_TRUE(strlen(jstr(j, "reason")) > 0);
    json_decref(j);
}

/* Send a request and check it is refused with @p status and @p code. */
static void http_err(const tsrv_t *t, const char *method, const char *path, const char *bearer,
                     const char *body, long status, const char *code)
{
    thttp_t *r = malloc(sizeof(*r));
    ASSERT_NOT_NULL(r);
    thttp(r, t, method, path, bearer, body);
    expect_error(r, status, code);
    free(r);
}

/* Every line is a comment or "name[{labels}] value": the 0.0.4 text format. */
static void check_exposition(const char *page)
{
    const char *p = page;
    int samples = 0;
    while (*p) {
        const char *e = strchr(p, '\n');
        char line[512], *sp;
        ASSERT_NOT_NULL(e);
        snprintf(line, sizeof(line), "%.*s", (int)(e - p), p);
        if (line[0] != '#') {
            ASSERT_TRUE((line[0] >= 'a' && line[0] <= 'z') || line[0] == '_');
            sp = strrchr(line, ' ');
            ASSERT_NOT_NULL(sp);
            char *end;
            (void)strtod(sp + 1, &end);
            ASSERT_TRUE(*end == '\0' && end != sp + 1);
            samples++;
        } else {
            ASSERT_TRUE(strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0);
        }
        p = e + 1;
    }
    ASSERT_TRUE(samples > 20);
}

/* Log in with a given token; the LoginRsp's code. */
static int try_login(const tsrv_t *t, const char *user, const char *device, const char *token,
                     char *reason, size_t rlen)
{
    cim_LoginReq req = cim_LoginReq_init_zero;
    cim_LoginRsp rsp = cim_LoginRsp_init_zero;
    cimc_t *c = tsrv_connect(t);
    snprintf(req.user, sizeof(req.user), "%s", user);
    snprintf(req.device_id, sizeof(req.device_id), "%s", device);
    snprintf(req.token, sizeof(req.token), "%s", token);
    req.device_kind = cim_DeviceKind_DESKTOP;
    ASSERT_OK(cimc_login(c, &req, &rsp));
    if (reason != NULL)
        snprintf(reason, rlen, "%s", rsp.reason);
    cimc_close(c);
    return rsp.code;
}

static void put_user(const tsrv_t *t, const char *secret, const char *user)
{
    thttp_t r;
    char path[128];
    snprintf(path, sizeof(path), "/v1/apps/default/users/%s", user);
    ASSERT_TRUE(thttp(&r, t, "PUT", path, secret, NULL) / 100 == 2);
}

/* ---- tests ---------------------------------------------------------------------------- */

TEST(e2e_admin_healthz_and_metrics)
{
    tsrv_t t;
    thttp_t r;
    char before[65536];
    tmsg_t m;
    uint8_t body[64];
    cim_SendRsp rsp;

    tsrv_start(&t, "--metrics_token", "scrape-me", NULL);
    ASSERT_EQ(thttp(&r, &t, "GET", "/healthz", NULL, NULL), 200);
    ASSERT_STREQ(r.body, "ok\n");
    ASSERT_EQ(thttp(&r, &t, "POST", "/healthz", NULL, "{}"), 405);
    /* the metrics token is asked for */
    http_err(&t, "GET", "/metrics", NULL, NULL, 401, "UNAUTHORIZED");
    http_err(&t, "GET", "/metrics", "wrong", NULL, 401, "UNAUTHORIZED");
    ASSERT_EQ(thttp(&r, &t, "GET", "/metrics", "scrape-me", NULL), 200);
    ASSERT_TRUE(strstr(r.ctype, "text/plain; version=0.0.4") != NULL);
    check_exposition(r.body);
    ASSERT_TRUE(strstr(r.body, "cim_build_info{version=\"") != NULL);
    ASSERT_TRUE(strstr(r.body, "cim_store_commit_seconds_bucket{le=\"+Inf\"}") != NULL);
    ASSERT_TRUE(thttp_metric(r.body, "process_open_fds") > 0);
    snprintf(before, sizeof(before), "%s", r.body);

    /* traffic moves the counters */
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    ASSERT_OK(tmsg_send(a, "bob", "m1", cim_MsgType_TEXT, "hello", 5, false, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    ASSERT_OK(tmsg_next_push(b, 2000, &m, body, sizeof(body)));
    ASSERT_EQ(try_login(&t, "mallory", "m", "v1.1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL,
                        0),
              cim_Code_UNAUTHORIZED);
    ASSERT_EQ(thttp(&r, &t, "GET", "/metrics", "scrape-me", NULL), 200);
    check_exposition(r.body);
    ASSERT_EQ(thttp_metric(r.body, "cim_sessions"), 2);
    ASSERT_TRUE(thttp_metric(r.body, "cim_connections") >= 2);
    ASSERT_EQ(thttp_metric(r.body, "cim_logins_total{result=\"OK\"}") -
                  thttp_metric(before, "cim_logins_total{result=\"OK\"}"),
              2);
    ASSERT_EQ(thttp_metric(r.body, "cim_logins_total{result=\"UNAUTHORIZED\"}") -
                  thttp_metric(before, "cim_logins_total{result=\"UNAUTHORIZED\"}"),
              1);
    ASSERT_EQ(thttp_metric(r.body, "cim_messages_stored_total") -
                  thttp_metric(before, "cim_messages_stored_total"),
              1);
    /* the message's client_msg_id is in the dedup window: one table of 64 slots of 16 bytes
     * more than before (its stripe's first) */
    ASSERT_EQ(thttp_metric(r.body, "cim_dedup_ids") - thttp_metric(before, "cim_dedup_ids"), 1);
    ASSERT_EQ(thttp_metric(r.body, "cim_dedup_bytes") - thttp_metric(before, "cim_dedup_bytes"),
              64 * 16);
    ASSERT_TRUE(thttp_metric(r.body, "cim_pushes_total") > thttp_metric(before, "cim_pushes_total"));
    ASSERT_TRUE(thttp_metric(r.body, "cim_bytes_in_total") > thttp_metric(before, "cim_bytes_in_total"));
    ASSERT_TRUE(thttp_metric(r.body, "cim_bytes_out_total") > thttp_metric(before, "cim_bytes_out_total"));
    ASSERT_TRUE(thttp_metric(r.body, "cim_store_batch_size_count") >
                thttp_metric(before, "cim_store_batch_size_count"));
    cimc_close(a);
    cimc_close(b);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST(e2e_admin_push_reaches_online_and_offline)
{
    tsrv_t t;
    thttp_t r;
    char secret[65];
    tmsg_t m, got[8];
    tmsg_page_t page;
    uint8_t body[256];
    json_t *j;
    char id1[32];

    tsrv_start(&t, NULL);
    thttp_secret(&t, "default", secret);
    put_user(&t, secret, "ops");
    put_user(&t, secret, "carol"); /* never logs in until the end: offline */
    cimc_t *bob = tsrv_login(&t, "bob", "b1", NULL);

    /* to an online user: a PUSH like any SEND's, from the named sender */
    ASSERT_EQ(thttp(&r, &t, "POST", "/v1/apps/default/messages", secret,
                    "{\"from\":\"ops\",\"to\":\"bob\",\"body\":\"your order shipped\","
                    "\"client_msg_id\":\"order-42\"}"),
              200);
    j = parse(&r);
    snprintf(id1, sizeof(id1), "%s", jstr(j, "msg_id"));
    ASSERT_STREQ(jstr(j, "client_msg_id"), "order-42");
    ASSERT_TRUE(json_integer_value(json_object_get(j, "time_ms")) > 0);
    json_decref(j);
    ASSERT_OK(tmsg_next_push(bob, 2000, &m, body, sizeof(body)));
    ASSERT_EQ(m.msg_id, strtoull(id1, NULL, 10));
    ASSERT_STREQ(m.from, "ops");
    ASSERT_EQ(m.msg_type, cim_MsgType_TEXT);
    ASSERT_EQ(m.body_len, 18);
    ASSERT_TRUE(memcmp(m.body, "your order shipped", 18) == 0);

    /* the same client_msg_id again: the original answer, nothing stored twice */
    ASSERT_EQ(thttp(&r, &t, "POST", "/v1/apps/default/messages", secret,
                    "{\"from\":\"ops\",\"to\":\"bob\",\"body\":\"your order shipped\","
                    "\"client_msg_id\":\"order-42\"}"),
              200);
    j = parse(&r);
    ASSERT_STREQ(jstr(j, "msg_id"), id1);
    json_decref(j);
    tmsg_expect_no_push(bob, 200);

    /* to an offline user, binary body: waits for SYNC */
    ASSERT_EQ(thttp(&r, &t, "POST", "/v1/apps/default/messages", secret,
                    "{\"from\":\"ops\",\"to\":\"carol\",\"type\":\"CUSTOM\","
                    "\"body_b64\":\"AAEC/w==\"}"),
              200);
    cimc_t *carol = tsrv_login(&t, "carol", "c1", NULL);
    tmsg_page_init(&page, got, 8, body, sizeof(body));
    ASSERT_OK(tmsg_sync(carol, 0, 50, &page));
    ASSERT_EQ(page.n, 1);
    ASSERT_STREQ(got[0].from, "ops");
    ASSERT_EQ(got[0].msg_type, cim_MsgType_CUSTOM);
    ASSERT_EQ(got[0].body_len, 4);
    ASSERT_TRUE(memcmp(got[0].body, "\x00\x01\x02\xff", 4) == 0);

    /* transient: pushed to the online, stored for nobody, msg_id 0 */
    ASSERT_EQ(thttp(&r, &t, "POST", "/v1/apps/default/messages", secret,
                    "{\"from\":\"ops\",\"to\":\"bob\",\"body\":\"typing\",\"transient\":true}"),
              200);
    j = parse(&r);
    ASSERT_STREQ(jstr(j, "msg_id"), "0");
    json_decref(j);
    ASSERT_OK(tmsg_next_push(bob, 2000, &m, body, sizeof(body)));
    ASSERT_EQ(m.msg_id, 0);

    /* blocks apply to API sends too, unless system */
    {
        cim_Result res;
        ASSERT_OK(tmsg_user_req(carol, FT_BLOCK, "ops", &res));
        ASSERT_EQ(res.code, cim_Code_OK);
        http_err(&t, "POST", "/v1/apps/default/messages", secret,
                 "{\"from\":\"ops\",\"to\":\"carol\",\"body\":\"spam\"}", 403, "BLOCKED");
        ASSERT_EQ(thttp(&r, &t, "POST", "/v1/apps/default/messages", secret,
                        "{\"from\":\"ops\",\"to\":\"carol\",\"body\":\"account notice\","
                        "\"system\":true}"),
                  200);
        ASSERT_OK(tmsg_next_push(carol, 2000, &m, body, sizeof(body)));
        ASSERT_EQ(m.msg_type, cim_MsgType_SYSTEM);
    }
    cimc_close(carol);
    cimc_close(bob);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST(e2e_admin_group_create_and_system_message)
{
    tsrv_t t;
    thttp_t r;
    char secret[65], gid[32], path[128];
    tmsg_t m;
    uint8_t body[256];
    json_t *j;

    tsrv_start(&t, NULL);
    thttp_secret(&t, "default", secret);
    put_user(&t, secret, "alice");
    put_user(&t, secret, "bob");
    put_user(&t, secret, "ops");
    ASSERT_EQ(thttp(&r, &t, "POST", "/v1/apps/default/groups", secret,
                    "{\"owner\":\"alice\",\"name\":\"team\",\"members\":[\"bob\"]}"),
              201);
    j = parse(&r);
    snprintf(gid, sizeof(gid), "%s", jstr(j, "group_id"));
    ASSERT_STREQ(jstr(j, "owner"), "alice");
    ASSERT_EQ(json_integer_value(json_object_get(j, "member_count")), 2);
    json_decref(j);

    snprintf(path, sizeof(path), "/v1/apps/default/groups/%s", gid);
    ASSERT_EQ(thttp(&r, &t, "GET", path, secret, NULL), 200);
    j = parse(&r);
    ASSERT_STREQ(jstr(j, "name"), "team");
    json_decref(j);
    snprintf(path, sizeof(path), "/v1/apps/default/groups/%s/members", gid);
    ASSERT_EQ(thttp(&r, &t, "GET", path, secret, NULL), 200);
    j = parse(&r);
    ASSERT_EQ(json_array_size(json_object_get(j, "members")), 2);
    ASSERT_STREQ(jstr(json_array_get(json_object_get(j, "members"), 0), "user"), "alice");
    json_decref(j);
    http_err(&t, "GET", "/v1/apps/default/groups/99999", secret, NULL, 404, "NOT_FOUND");

    cimc_t *bob = tsrv_login(&t, "bob", "b1", NULL);
    char msg[256];
    /* a non-member may not send to the group... */
    snprintf(msg, sizeof(msg), "{\"from\":\"ops\",\"group\":\"%s\",\"body\":\"hi\"}", gid);
    http_err(&t, "POST", "/v1/apps/default/messages", secret, msg, 403, "NOT_MEMBER");
    /* ...but a system message goes to every member */
    snprintf(msg, sizeof(msg),
             "{\"from\":\"ops\",\"group\":\"%s\",\"body\":\"maintenance at 10\",\"system\":true}",
             gid);
    ASSERT_EQ(thttp(&r, &t, "POST", "/v1/apps/default/messages", secret, msg), 200);
    ASSERT_OK(tmsg_next_push(bob, 2000, &m, body, sizeof(body)));
    ASSERT_EQ(m.msg_type, cim_MsgType_SYSTEM);
    ASSERT_STREQ(m.from, "ops");
    ASSERT_STREQ(m.to, gid);
    cimc_close(bob);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST(e2e_admin_kick_disable_revoke)
{
    tsrv_t t;
    thttp_t r;
    char secret[65], tok[TOKEN_MAX], reason[256];
    cimc_push_t p;
    json_t *j;

    tsrv_start(&t, NULL);
    thttp_secret(&t, "default", secret);
    cimc_t *b1 = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *b2 = tsrv_login(&t, "bob", "b2", NULL);
    cimc_t *al = tsrv_login(&t, "alice", "a1", NULL);

    /* GET lists the devices online */
    ASSERT_EQ(thttp(&r, &t, "GET", "/v1/apps/default/users/bob", secret, NULL), 200);
    j = parse(&r);
    ASSERT_EQ(json_array_size(json_object_get(j, "devices_online")), 2);
    ASSERT_TRUE(json_is_false(json_object_get(j, "disabled")));
    json_decref(j);

    /* kick: every session of bob gets BYE{KICKED}; alice carries on */
    ASSERT_EQ(thttp(&r, &t, "POST", "/v1/apps/default/users/bob/kick", secret, NULL), 200);
    j = parse(&r);
    ASSERT_EQ(json_integer_value(json_object_get(j, "kicked")), 2);
    json_decref(j);
    ASSERT_EQ(cimc_wait_closed(b1, 2000), 0);
    ASSERT_EQ(cimc_bye(b1)->code, cim_Code_KICKED);
    ASSERT_EQ(cimc_wait_closed(b2, 2000), 0);
    ASSERT_EQ(cimc_bye(b2)->code, cim_Code_KICKED);
    cimc_close(b1);
    cimc_close(b2);
    ASSERT_OK(cimc_ping(al, NULL));

    /* disable: the live session closes with BYE{UNAUTHORIZED}, logins are refused */
    b1 = tsrv_login(&t, "bob", "b1", NULL);
    ASSERT_EQ(thttp(&r, &t, "PUT", "/v1/apps/default/users/bob", secret, "{\"disabled\":true}"),
              200);
    j = parse(&r);
    ASSERT_TRUE(json_is_true(json_object_get(j, "disabled")));
    json_decref(j);
    ASSERT_EQ(cimc_wait_closed(b1, 2000), 0);
    ASSERT_EQ(cimc_bye(b1)->code, cim_Code_UNAUTHORIZED);
    cimc_close(b1);
    tsrv_token(&t, "", "bob", 3600, tok, sizeof(tok));
    ASSERT_EQ(try_login(&t, "bob", "b1", tok, reason, sizeof(reason)), cim_Code_UNAUTHORIZED);
    ASSERT_STREQ(reason, "user disabled");
    /* enable again */
    ASSERT_EQ(thttp(&r, &t, "PUT", "/v1/apps/default/users/bob", secret, "{\"disabled\":false}"),
              200);
    ASSERT_EQ(try_login(&t, "bob", "b1", tok, NULL, 0), cim_Code_OK);

    /* revoke-tokens: a token expiring within ttl_s of now is refused, a later one works */
    ASSERT_EQ(thttp(&r, &t, "POST", "/v1/apps/default/users/bob/revoke-tokens", secret,
                    "{\"ttl_s\":7200}"),
              200);
    j = parse(&r);
    ASSERT_TRUE(json_integer_value(json_object_get(j, "tokens_before_s")) >= time(NULL) + 7199);
    json_decref(j);
    ASSERT_EQ(try_login(&t, "bob", "b1", tok, reason, sizeof(reason)), cim_Code_UNAUTHORIZED);
    ASSERT_TRUE(strstr(reason, "revoked") != NULL);
    tsrv_token(&t, "", "bob", 7300, tok, sizeof(tok));
    ASSERT_EQ(try_login(&t, "bob", "b1", tok, NULL, 0), cim_Code_OK);
    /* unknown users */
    http_err(&t, "POST", "/v1/apps/default/users/nobody/kick", secret, NULL, 404, "NOT_FOUND");
    http_err(&t, "POST", "/v1/apps/default/users/nobody/revoke-tokens", secret, NULL, 404, "NOT_FOUND");
    http_err(&t, "GET", "/v1/apps/default/users/nobody", secret, NULL, 404, "NOT_FOUND");
    /* PUT of a new user creates it: 201, then 200 */
    ASSERT_EQ(thttp(&r, &t, "PUT", "/v1/apps/default/users/dave", secret, NULL), 201);
    ASSERT_EQ(thttp(&r, &t, "PUT", "/v1/apps/default/users/dave", secret, NULL), 200);
    ASSERT_OK(cimc_ping(al, NULL));
    (void)p;
    cimc_close(al);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_admin_bad_input_changes_nothing, 20)
{
    tsrv_t t;
    thttp_t r;
    char secret[65], other[65], wrong[65], buf[256], latest[32];
    cim_SendRsp rsp;
    json_t *j;
    static char big[2 * 1024 * 1024];
    static const char prefix[] = "{\"from\":\"ops\",\"to\":\"bob\",\"body\":\"";

    tsrv_start(&t, "--max_msg_bytes", "1000", NULL);
    thttp_secret(&t, "default", secret);
    ASSERT_EQ(tsrv_run_tool(buf, sizeof(buf), "cimctl", "--data", t.dir, "app", "add", "other",
                            NULL),
              0);
    thttp_secret(&t, "other", other);
    put_user(&t, secret, "ops");
    cimc_t *bob = tsrv_login(&t, "bob", "b1", NULL);
    ASSERT_EQ(thttp(&r, &t, "GET", "/v1/apps/default/users/bob", secret, NULL), 200);
    j = parse(&r);
    snprintf(latest, sizeof(latest), "%s", jstr(j, "latest_msg_id"));
    json_decref(j);

    /* authentication */
    const char *msg = "{\"from\":\"ops\",\"to\":\"bob\",\"body\":\"x\"}";
    http_err(&t, "POST", "/v1/apps/default/messages", NULL, msg, 401, "UNAUTHORIZED");
    snprintf(wrong, sizeof(wrong), "%s", secret);
    wrong[0] = wrong[0] == '0' ? '1' : '0';
    http_err(&t, "POST", "/v1/apps/default/messages", wrong, msg, 401, "UNAUTHORIZED");
    http_err(&t, "POST", "/v1/apps/default/messages", "zz", msg, 401, "UNAUTHORIZED");
    http_err(&t, "POST", "/v1/apps/default/messages", other, msg, 403, "FORBIDDEN");
    http_err(&t, "POST", "/v1/apps/nosuchapp/messages", secret, msg, 403, "FORBIDDEN");
    http_err(&t, "POST", "/v1/apps/nosuchapp/messages", wrong, msg, 401, "UNAUTHORIZED");

    /* malformed and mistyped bodies */
    static const char *const bad[] = {
        "{\"from\":\"ops\",\"to\":\"bob\",\"body\":",         /* malformed */
        "[1,2]",                                              /* not an object */
        "{\"from\":\"ops\",\"to\":\"bob\",\"body\":7}",       /* wrong type */
        "{\"from\":3,\"to\":\"bob\"}",                        /* wrong type */
        "{\"from\":\"ops\",\"to\":\"bob\",\"colour\":\"red\"}", /* unknown key */
        "{\"from\":\"ops\",\"to\":\"bob\",\"group\":\"1000\"}", /* both */
        "{\"from\":\"ops\"}",                                 /* neither */
        "{\"from\":\"o p s\",\"to\":\"bob\"}",                /* bad id */
        "{\"from\":\"ops\",\"to\":\"bob\",\"type\":\"SYSTEM\"}", /* SYSTEM without system */
        "{\"from\":\"ops\",\"to\":\"bob\",\"type\":\"TEXTS\"}",
        "{\"from\":\"ops\",\"to\":\"bob\",\"body_b64\":\"@@@@\"}",
        "{\"from\":\"ops\",\"to\":\"bob\",\"body_b64\":\"abc\"}",
        "{\"from\":\"ops\",\"to\":\"bob\",\"body\":\"a\",\"body_b64\":\"YQ==\"}",
        "{\"from\":\"ops\",\"to\":\"bob\",\"client_msg_id\":\"\"}",
        "{\"from\":\"ops\",\"to\":\"bob\",\"transient\":\"yes\"}",
        "{\"a\":1,\"a\":2}", /* duplicate keys */
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        http_err(&t, "POST", "/v1/apps/default/messages", secret, bad[i], 400, "BAD_REQUEST");
    http_err(&t, "PUT", "/v1/apps/default/users/bob", secret, "{\"disabled\":\"yes\"}", 400,
             "BAD_REQUEST");
    http_err(&t, "PUT", "/v1/apps/default/users/bob", secret, "{\"admin\":true}", 400,
             "BAD_REQUEST");
    http_err(&t, "POST", "/v1/apps/default/groups", secret,
             "{\"owner\":\"ops\",\"name\":\"g\",\"members\":[1]}", 400, "BAD_REQUEST");
    http_err(&t, "POST", "/v1/apps/default/groups", secret,
             "{\"owner\":\"ops\",\"name\":\"g\",\"members\":[\"ghost\"]}", 404, "NOT_FOUND");
    /* oversize: over max_msg_bytes, and over the 1 MiB request bound */
    memset(big, 'x', sizeof(big) - 1);
    memcpy(big, prefix, strlen(prefix));
    snprintf(big + strlen(prefix) + 1001, 8, "\"}");
    http_err(&t, "POST", "/v1/apps/default/messages", secret, big, 413, "TOO_LARGE");
    memset(big, 'x', sizeof(big) - 1);
    memcpy(big, prefix, strlen(prefix));
    snprintf(big + sizeof(big) - 8, 8, "\"}");
    ASSERT_EQ(thttp(&r, &t, "POST", "/v1/apps/default/messages", secret, big), 413);
    /* unknown users, groups, endpoints, methods */
    http_err(&t, "POST", "/v1/apps/default/messages", secret, "{\"from\":\"ghost\",\"to\":\"bob\"}",
             404, "NOT_FOUND");
    http_err(&t, "POST", "/v1/apps/default/messages", secret, "{\"from\":\"ops\",\"to\":\"ghost\"}",
             404, "NOT_FOUND");
    http_err(&t, "POST", "/v1/apps/default/messages", secret,
             "{\"from\":\"ops\",\"group\":\"424242\"}", 404, "NOT_FOUND");
    http_err(&t, "GET", "/v1/apps/default/nothing", secret, NULL, 404, "NOT_FOUND");
    http_err(&t, "GET", "/nothing", NULL, NULL, 404, "NOT_FOUND");
    http_err(&t, "GET", "/v1/apps/default/messages", secret, NULL, 405, "METHOD_NOT_ALLOWED");
    http_err(&t, "GET", "/v1/apps/default/users/%00", secret, NULL, 400, "BAD_REQUEST");

    /* nothing changed: bob got nothing, his timeline did not move; the server carries on */
    tmsg_expect_no_push(bob, 200);
    ASSERT_EQ(thttp(&r, &t, "GET", "/v1/apps/default/users/bob", secret, NULL), 200);
    j = parse(&r);
    ASSERT_STREQ(jstr(j, "latest_msg_id"), latest);
    json_decref(j);
    cimc_t *al = tsrv_login(&t, "alice", "a1", NULL);
    ASSERT_OK(tmsg_send(al, "bob", "still-ok", cim_MsgType_TEXT, "ok", 2, false, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    ASSERT_EQ(thttp(&r, &t, "GET", "/healthz", NULL, NULL), 200);
    cimc_close(al);
    cimc_close(bob);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST(e2e_admin_off)
{
    tsrv_t t;
    tsrv_start(&t, "--admin_listen", "off", NULL);
    ASSERT_EQ(t.admin_port, 0);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    cimc_close(a);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_admin_cimctl_commands, 15)
{
    tsrv_t t;
    char out[1024], admin[64], reason[256], tok[TOKEN_MAX];
    tmsg_t m;
    uint8_t body[256];

    tsrv_start(&t, NULL);
    snprintf(admin, sizeof(admin), "127.0.0.1:%d", t.admin_port);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "user", "add", "ops",
                            NULL),
              0);
    cimc_t *bob = tsrv_login(&t, "bob", "b1", NULL);

    /* send: the msg_id is printed, the message pushed */
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "send", "ops", "bob",
                            "deploy done", "--admin", admin, NULL),
              0);
    ASSERT_TRUE(strtoull(out, NULL, 10) > 0);
    ASSERT_OK(tmsg_next_push(bob, 2000, &m, body, sizeof(body)));
    ASSERT_EQ(m.msg_id, strtoull(out, NULL, 10));
    ASSERT_EQ(m.body_len, 11);

    /* kick */
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "kick", "bob",
                            "--admin", admin, NULL),
              0);
    ASSERT_STREQ(out, "kicked 1\n");
    ASSERT_EQ(cimc_wait_closed(bob, 2000), 0);
    ASSERT_EQ(cimc_bye(bob)->code, cim_Code_KICKED);
    cimc_close(bob);

    /* disable, enable */
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "user", "disable", "bob",
                            "--admin", admin, NULL),
              0);
    tsrv_token(&t, "", "bob", 3600, tok, sizeof(tok));
    ASSERT_EQ(try_login(&t, "bob", "b1", tok, reason, sizeof(reason)), cim_Code_UNAUTHORIZED);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "user", "enable", "bob",
                            "--admin", admin, NULL),
              0);
    ASSERT_EQ(try_login(&t, "bob", "b1", tok, NULL, 0), cim_Code_OK);

    /* errors: unknown sender, unknown user, no server there, an option that does not apply */
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "send", "ghost", "bob",
                            "x", "--admin", admin, NULL),
              1);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "kick", "ghost",
                            "--admin", admin, NULL),
              1);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "kick", "bob",
                            "--admin", "127.0.0.1:1", NULL),
              1);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "kick", "bob",
                            "--group", "--admin", admin, NULL),
              2);
    ASSERT_EQ(tsrv_stop(&t), 0);
}
