/* Integration: cimctl and cim against a running cimd. */
#include <stdio.h>
#include <string.h>

#include "client/cim.h"
#include "core/chan.h"
#include "support/server.h"
#include "support/test.h"

TEST(e2e_tools_cimctl_while_cimd_runs)
{
    tsrv_t t;
    char out[4096], hex[65], secret[80], tok[256], port[16];
    cim_LoginReq req = cim_LoginReq_init_zero;
    cim_LoginRsp rsp = cim_LoginRsp_init_zero;

    tsrv_start(&t, NULL);
    /* show-key prints the key the server announced */
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "show-key", NULL), 0);
    chan_hex(t.key, hex);
    ASSERT_TRUE(strncmp(out, hex, 64) == 0);

    /* a new app, a token minted by cimctl for it, and a login through libcim */
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "app", "add", "acme",
                            NULL), 0);
    ASSERT_TRUE(strlen(out) >= 64);
    snprintf(secret, sizeof(secret), "%.64s", out);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "app", "show", "acme",
                            NULL), 0);
    ASSERT_TRUE(strncmp(out, secret, 64) == 0);
    ASSERT_NE(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "app", "add", "acme",
                            NULL), 0);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "token", "--app",
                            "acme", "--user", "wile", "--ttl", "600", NULL), 0);
    out[strcspn(out, "\r\n")] = '\0';
    ASSERT_TRUE(strlen(out) < sizeof(tok));
    memcpy(tok, out, strlen(out) + 1);
    cimc_t *c = tsrv_connect(&t);
    snprintf(req.app, sizeof(req.app), "acme");
    snprintf(req.user, sizeof(req.user), "wile");
    snprintf(req.device_id, sizeof(req.device_id), "d1");
    snprintf(req.token, sizeof(req.token), "%s", tok);
    ASSERT_OK(cimc_login(c, &req, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    cimc_close(c);

    /* users: add, duplicate refused, listed per app */
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "user", "add", "roadrunner",
                            "--app", "acme", NULL), 0);
    ASSERT_NE(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "user", "add", "roadrunner",
                            "--app", "acme", NULL), 0);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "user", "list", "--app",
                            "acme", NULL), 0);
    ASSERT_NOT_NULL(strstr(out, "roadrunner"));
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "user", "list", NULL), 0);
    ASSERT_NULL(strstr(out, "roadrunner"));
    ASSERT_NE(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "app", "show", "nope",
                            NULL), 0);
    ASSERT_NE(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "frobnicate", NULL), 0);

    snprintf(port, sizeof(port), "%d", t.port);
    (void)port;
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST(e2e_tools_cim_cli_login_and_errors)
{
    tsrv_t t;
    char out[8192], hex[65], wrong[65], tok[256], port[16];

    tsrv_start(&t, NULL);
    chan_hex(t.key, hex);
    snprintf(port, sizeof(port), "%d", t.port);
    tsrv_token(&t, "", "alice", 600, tok, sizeof(tok));

    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cim", "--port", port, "--key", hex, "--user",
                            "alice", "--token", tok, "--device", "cli", "login", NULL), 0);
    ASSERT_NOT_NULL(strstr(out, "alice"));
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cim", "--port", port, "--key", hex, "--user",
                            "alice", "--token", tok, "ping", NULL), 0);

    /* wrong pinned key */
    snprintf(wrong, sizeof(wrong), "%s", hex);
    wrong[0] = wrong[0] == '0' ? '1' : '0';
    ASSERT_NE(tsrv_run_tool(out, sizeof(out), "cim", "--port", port, "--key", wrong, "--user",
                            "alice", "--token", tok, "login", NULL), 0);
    /* bad token */
    ASSERT_NE(tsrv_run_tool(out, sizeof(out), "cim", "--port", port, "--key", hex, "--user",
                            "alice", "--token", "v1.1.xyz", "login", NULL), 0);
    ASSERT_EQ(tsrv_stop(&t), 0);
    /* server down */
    ASSERT_NE(tsrv_run_tool(out, sizeof(out), "cim", "--port", port, "--key", hex, "--user",
                            "alice", "--token", tok, "login", NULL), 0);
}
