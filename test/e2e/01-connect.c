/* Integration: handshake, login, heartbeat, timeouts, kicks, shutdown — a real cimd on a
 * loopback port driven through libcim. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pb_encode.h>

#include "client/cim.h"
#include "core/frame.h"
#include "support/server.h"
#include "support/test.h"

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Log in with explicit fields; returns the code (the connection stays with the caller). */
static int login_as(const tsrv_t *t, cimc_t *c, const char *app, const char *user,
                    const char *device, const char *token, cim_LoginRsp *rsp)
{
    cim_LoginReq req = cim_LoginReq_init_zero;
    snprintf(req.app, sizeof(req.app), "%s", app);
    snprintf(req.user, sizeof(req.user), "%s", user);
    snprintf(req.device_id, sizeof(req.device_id), "%s", device);
    snprintf(req.token, sizeof(req.token), "%s", token);
    req.device_kind = cim_DeviceKind_MOBILE;
    memset(rsp, 0, sizeof(*rsp));
    int rc = cimc_login(c, &req, rsp);
    if (rc != 0) {
        tsrv_dump_log(t);
        TEST_FAIL_("cimc_login: %s", rc_str(rc));
    }
    return rsp->code;
}

/* The server must have said BYE{code} and closed. */
static void expect_bye(cimc_t *c, int code)
{
    ASSERT_OK(cimc_wait_closed(c, 5000));
    const cim_Bye *bye = cimc_bye(c);
    ASSERT_NOT_NULL(bye);
    ASSERT_EQ(bye->code, code);
    ASSERT_TRUE(bye->reason[0] != '\0');
}

TEST(e2e_login_ok_and_ping)
{
    tsrv_t t;
    cim_LoginRsp rsp;
    uint64_t rtt;
    tsrv_start(&t, "--heartbeat_s", "7", NULL);
    cimc_t *c = tsrv_login(&t, "alice", "phone-1", &rsp);
    ASSERT_EQ(rsp.code, cim_Code_OK);
    ASSERT_EQ(rsp.heartbeat_s, 7);
    ASSERT_EQ(rsp.max_body, 65536);
    ASSERT_TRUE(rsp.server_time_ms > 1767225600000ULL);
    ASSERT_MEMEQ(cimc_server_key(c), t.key, 32);
    for (int i = 0; i < 10; i++)
        ASSERT_OK(cimc_ping(c, &rtt));
    cimc_close(c);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST(e2e_login_creates_user_and_default_app)
{
    tsrv_t t;
    char out[4096];
    tsrv_start(&t, NULL);
    cimc_t *c = tsrv_login(&t, "newbie", "d1", NULL);
    ASSERT_OK(cimc_ping(c, NULL));
    cimc_close(c);
    /* The store registers the user asynchronously; give it a moment. */
    for (int i = 0; i < 100; i++) {
        ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "user", "list",
                                NULL), 0);
        if (strstr(out, "newbie") != NULL)
            break;
        usleep(20000);
    }
    ASSERT_NOT_NULL(strstr(out, "newbie"));
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST(e2e_login_empty_app_is_default)
{
    tsrv_t t;
    cim_LoginRsp rsp;
    char tok[256];
    tsrv_start(&t, NULL);
    cimc_t *c = tsrv_connect(&t);
    tsrv_token(&t, "default", "bob", 600, tok, sizeof(tok));
    ASSERT_EQ(login_as(&t, c, "default", "bob", "d1", tok, &rsp), cim_Code_OK);
    cimc_close(c);
    c = tsrv_connect(&t);
    tsrv_token(&t, "", "bob", 600, tok, sizeof(tok));
    ASSERT_EQ(login_as(&t, c, "", "bob", "d2", tok, &rsp), cim_Code_OK);
    cimc_close(c);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST(e2e_login_refusals_close)
{
    tsrv_t t;
    cim_LoginRsp rsp;
    char tok[256], bad[256];
    tsrv_start(&t, NULL);
    cimc_t *ok = tsrv_login(&t, "carol", "d0", NULL);

    /* wrong token: minted for another user */
    cimc_t *c = tsrv_connect(&t);
    tsrv_token(&t, "", "mallory", 600, tok, sizeof(tok));
    ASSERT_EQ(login_as(&t, c, "", "alice", "d1", tok, &rsp), cim_Code_UNAUTHORIZED);
    ASSERT_TRUE(rsp.reason[0] != '\0');
    expect_bye(c, cim_Code_UNAUTHORIZED);
    cimc_close(c);

    /* expired token */
    c = tsrv_connect(&t);
    tsrv_token(&t, "", "alice", -10, tok, sizeof(tok));
    ASSERT_EQ(login_as(&t, c, "", "alice", "d1", tok, &rsp), cim_Code_UNAUTHORIZED);
    expect_bye(c, cim_Code_UNAUTHORIZED);
    cimc_close(c);

    /* forged token: one character of the MAC changed */
    c = tsrv_connect(&t);
    tsrv_token(&t, "", "alice", 600, tok, sizeof(tok));
    snprintf(bad, sizeof(bad), "%s", tok);
    bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == 'A' ? 'B' : 'A';
    ASSERT_EQ(login_as(&t, c, "", "alice", "d1", bad, &rsp), cim_Code_UNAUTHORIZED);
    expect_bye(c, cim_Code_UNAUTHORIZED);
    cimc_close(c);

    /* malformed token */
    c = tsrv_connect(&t);
    ASSERT_EQ(login_as(&t, c, "", "alice", "d1", "not-a-token", &rsp), cim_Code_UNAUTHORIZED);
    expect_bye(c, cim_Code_UNAUTHORIZED);
    cimc_close(c);

    /* unknown app */
    c = tsrv_connect(&t);
    ASSERT_EQ(login_as(&t, c, "nosuchapp", "alice", "d1", tok, &rsp), cim_Code_UNAUTHORIZED);
    expect_bye(c, cim_Code_UNAUTHORIZED);
    cimc_close(c);

    /* token of the default app presented for another app name */
    c = tsrv_connect(&t);
    ASSERT_EQ(login_as(&t, c, "other", "alice", "d1", tok, &rsp), cim_Code_UNAUTHORIZED);
    cimc_close(c);

    /* malformed user id and device id */
    c = tsrv_connect(&t);
    ASSERT_EQ(login_as(&t, c, "", "al ice", "d1", tok, &rsp), cim_Code_BAD_REQUEST);
    expect_bye(c, cim_Code_BAD_REQUEST);
    cimc_close(c);
    c = tsrv_connect(&t);
    ASSERT_EQ(login_as(&t, c, "", "alice", "", tok, &rsp), cim_Code_BAD_REQUEST);
    cimc_close(c);
    c = tsrv_connect(&t);
    ASSERT_EQ(login_as(&t, c, "", "alice", "dev/1", tok, &rsp), cim_Code_BAD_REQUEST);
    cimc_close(c);

    /* the bystander never noticed */
    ASSERT_OK(cimc_ping(ok, NULL));
    cimc_close(ok);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST(e2e_first_frame_not_login)
{
    tsrv_t t;
    cim_Ping ping = cim_Ping_init_zero;
    uint8_t body[32];
    pb_ostream_t os = pb_ostream_from_buffer(body, sizeof(body));
    tsrv_start(&t, NULL);
    cimc_t *c = tsrv_connect(&t);
    ping.client_time_ms = 1;
    ASSERT_TRUE(pb_encode(&os, cim_Ping_fields, &ping));
    ASSERT_OK(cimc_send_frame(c, FT_PING, body, os.bytes_written));
    expect_bye(c, cim_Code_UNAUTHORIZED);
    cimc_close(c);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST(e2e_login_twice_is_bad_request)
{
    tsrv_t t;
    cim_LoginRsp rsp;
    char tok[256];
    tsrv_start(&t, NULL);
    cimc_t *c = tsrv_login(&t, "dave", "d1", NULL);
    tsrv_token(&t, "", "dave", 600, tok, sizeof(tok));
    ASSERT_EQ(login_as(&t, c, "", "dave", "d1", tok, &rsp), cim_Code_BAD_REQUEST);
    ASSERT_OK(cimc_ping(c, NULL)); /* still open */
    cimc_close(c);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST(e2e_login_timeout)
{
    tsrv_t t;
    tsrv_start(&t, "--login_timeout_s", "1", NULL);
    /* handshake done, no LOGIN: BYE{TIMEOUT} */
    uint64_t t0 = now_ms();
    cimc_t *c = tsrv_connect(&t);
    expect_bye(c, cim_Code_TIMEOUT);
    ASSERT_TRUE(now_ms() - t0 >= 900);
    cimc_close(c);
    /* not even a handshake: closed without a word */
    cimc_opts_t o = tsrv_opts(&t);
    ASSERT_OK(cimc_connect_raw(&o, &c));
    ASSERT_OK(cimc_wait_closed(c, 5000));
    ASSERT_NULL(cimc_bye(c));
    cimc_close(c);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_idle_timeout, 15)
{
    tsrv_t t;
    tsrv_start(&t, "--heartbeat_s", "1", NULL);
    cimc_t *idle = tsrv_login(&t, "idle", "d1", NULL);
    cimc_t *busy = tsrv_login(&t, "busy", "d1", NULL);
    uint64_t t0 = now_ms();
    /* busy pings twice a second for 4.5 s and survives; idle is cut after ~3 s */
    while (now_ms() - t0 < 4500) {
        ASSERT_OK(cimc_ping(busy, NULL));
        usleep(500000);
    }
    expect_bye(idle, cim_Code_TIMEOUT);
    ASSERT_OK(cimc_ping(busy, NULL));
    cimc_close(idle);
    cimc_close(busy);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST(e2e_same_device_kicks_older)
{
    tsrv_t t;
    tsrv_start(&t, "--workers", "2", NULL);
    cimc_t *a1 = tsrv_login(&t, "erin", "phone", NULL);
    cimc_t *a2 = tsrv_login(&t, "erin", "laptop", NULL);
    cimc_t *a3 = tsrv_login(&t, "erin", "phone", NULL); /* same device as a1 */
    expect_bye(a1, cim_Code_KICKED);
    ASSERT_OK(cimc_ping(a2, NULL)); /* other devices coexist */
    ASSERT_OK(cimc_ping(a3, NULL));
    cimc_close(a1);
    cimc_close(a2);
    cimc_close(a3);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST(e2e_single_session_kicks_other_devices)
{
    tsrv_t t;
    tsrv_start(&t, "--single_session", "true", NULL);
    cimc_t *a1 = tsrv_login(&t, "frank", "phone", NULL);
    cimc_t *b = tsrv_login(&t, "grace", "phone", NULL);
    cimc_t *a2 = tsrv_login(&t, "frank", "laptop", NULL);
    expect_bye(a1, cim_Code_KICKED);
    ASSERT_OK(cimc_ping(a2, NULL));
    ASSERT_OK(cimc_ping(b, NULL)); /* other users unaffected */
    cimc_close(a1);
    cimc_close(a2);
    cimc_close(b);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST(e2e_logout)
{
    tsrv_t t;
    cim_Result res = cim_Result_init_zero;
    tsrv_start(&t, NULL);
    cimc_t *c = tsrv_login(&t, "heidi", "d1", NULL);
    ASSERT_OK(cimc_logout(c, &res));
    ASSERT_EQ(res.code, cim_Code_OK);
    cimc_close(c);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST(e2e_sigterm_says_bye_to_everyone)
{
    tsrv_t t;
    cimc_t *c[6];
    int status;
    char dev[16];
    tsrv_start(&t, "--workers", "2", NULL);
    for (int i = 0; i < 5; i++) {
        snprintf(dev, sizeof(dev), "d%d", i);
        c[i] = tsrv_login(&t, "ivan", dev, NULL);
    }
    c[5] = tsrv_connect(&t); /* handshake done, not logged in */
    kill(t.pid, SIGTERM);
    for (int i = 0; i < 6; i++) {
        expect_bye(c[i], cim_Code_SHUTTING_DOWN);
        cimc_close(c[i]);
    }
    ASSERT_EQ(waitpid(t.pid, &status, 0), t.pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    t.pid = 0;
    ASSERT_EQ(tsrv_stop(&t), -1); /* already gone */
}

TEST(e2e_conn_caps_refuse_before_handshake)
{
    tsrv_t t;
    cimc_t *c[3], *extra = NULL;
    cimc_opts_t o;
    tsrv_start(&t, "--max_conns_per_ip", "3", NULL);
    o = tsrv_opts(&t);
    for (int i = 0; i < 3; i++)
        c[i] = tsrv_connect(&t);
    /* the fourth from the same address is closed before any handshake */
    ASSERT_TRUE(cimc_connect(&o, &extra) != 0);
    cimc_close(extra);
    cimc_close(c[0]);
    /* a slot frees up once a connection closes */
    for (int i = 0; i < 100; i++) {
        extra = NULL;
        if (cimc_connect(&o, &extra) == 0)
            break;
        usleep(20000);
    }
    ASSERT_NOT_NULL(extra);
    cimc_close(extra);
    cimc_close(c[1]);
    cimc_close(c[2]);
    ASSERT_EQ(tsrv_stop(&t), 0);
}
