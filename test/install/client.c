/* A program an application developer would write against the installed libcim: built by
 * the install test (test/e2e/10-service-install.c) with nothing but the installed tree and
 * `pkg-config --cflags --libs cim`, never by the project's own build.
 *
 *   client PORT KEY_HEX USER TOKEN TO
 *
 * Connects to 127.0.0.1:PORT pinning KEY_HEX, logs in as USER with TOKEN, sends "hello
 * from an installed libcim" to TO and prints "SEND_ACK <code> <msg_id>". Exit 0 only when
 * the server stored it (SEND_ACK OK). */
#include <cim.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unhex(const char *hex, uint8_t out[32])
{
    if (strlen(hex) != 64)
        return -1;
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const char body[] = "hello from an installed libcim";
    cim_LoginReq login = cim_LoginReq_init_zero;
    cim_LoginRsp lrsp = cim_LoginRsp_init_zero;
    cim_SendReq req = cim_SendReq_init_zero;
    cim_SendRsp rsp = cim_SendRsp_init_zero;
    cimc_bytes_t b = {body, sizeof(body) - 1};
    cimc_opts_t opts;
    cimc_t *c = NULL;
    uint8_t key[32];
    int rc;

    if (argc != 6 || unhex(argv[2], key) != 0) {
        fprintf(stderr, "usage: client PORT KEY_HEX USER TOKEN TO\n");
        return 2;
    }
    memset(&opts, 0, sizeof(opts));
    opts.host = "127.0.0.1";
    opts.port = atoi(argv[1]);
    opts.pinned_key = key;
    if ((rc = cimc_connect(&opts, &c)) < 0) {
        fprintf(stderr, "connect: %s\n", cimc_strerror(rc));
        return 1;
    }
    snprintf(login.user, sizeof(login.user), "%s", argv[3]);
    snprintf(login.device_id, sizeof(login.device_id), "installed");
    snprintf(login.token, sizeof(login.token), "%s", argv[4]);
    login.device_kind = cim_DeviceKind_BOT;
    if ((rc = cimc_login(c, &login, &lrsp)) < 0 || lrsp.code != cim_Code_OK) {
        fprintf(stderr, "login: %s\n", rc < 0 ? cimc_strerror(rc) : cimc_code_str(lrsp.code));
        cimc_close(c);
        return 1;
    }
    req.conv_type = cim_ConvType_DIRECT;
    snprintf(req.to, sizeof(req.to), "%s", argv[5]);
    snprintf(req.client_msg_id, sizeof(req.client_msg_id), "installed-1");
    req.msg_type = cim_MsgType_TEXT;
    cimc_bytes_encoder(&req.body, &b);
    rc = cimc_call(c, FT_SEND, cim_SendReq_fields, &req, FT_SEND_ACK, cim_SendRsp_fields, &rsp);
    if (rc < 0) {
        fprintf(stderr, "send: %s\n", cimc_strerror(rc));
        cimc_close(c);
        return 1;
    }
    printf("SEND_ACK %s %llu\n", cimc_code_str(rsp.code), (unsigned long long)rsp.msg_id);
    cimc_close(c);
    return rsp.code == cim_Code_OK ? 0 : 1;
}
