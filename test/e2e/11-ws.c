/* Integration: the WebSocket endpoint (ws_listen; src/actors/ws.c). Clients over it are
 * libcim with opts.ws_path (wslay framing), chatting with TCP clients of the same server;
 * the bad input is sent by hand over a raw socket (frames wslay would never build): text
 * messages, unmasked frames, oversize messages, two frames in one message, a refused
 * upgrade. The messaging suites also run whole over WebSocket (CIM_TEST_TRANSPORT=ws,
 * tools/bootstrap test). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/cim.h"
#include "client/cim_int.h"
#include "core/be.h"
#include "core/frame.h"
#include "core/rc.h"
#include "support/http.h"
#include "support/msg.h"
#include "support/server.h"
#include "support/test.h"

/* ---- helpers ------------------------------------------------------------------------ */

static cimc_t *ws_login(const tsrv_t *t, const char *user, const char *device)
{
    cim_LoginReq req = cim_LoginReq_init_zero;
    cim_LoginRsp rsp = cim_LoginRsp_init_zero;
    cimc_opts_t o = tsrv_opts(t);
    cimc_t *c = NULL;

    o.port = t->ws_port;
    o.ws_path = "/ws";
    if (cimc_connect(&o, &c) < 0)
        tsrv_dump_log(t);
    ASSERT_NOT_NULL(c);
    snprintf(req.user, sizeof(req.user), "%s", user);
    snprintf(req.device_id, sizeof(req.device_id), "%s", device);
    req.device_kind = cim_DeviceKind_WEB;
    tsrv_token(t, "", user, 3600, req.token, sizeof(req.token));
    ASSERT_OK(cimc_login(c, &req, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    return c;
}

/* A raw connection to the WebSocket port: send an upgrade with @p extra headers, read the
 * answer's headers into @p head. @return the socket. */
static int raw_upgrade(const tsrv_t *t, const char *path, const char *extra, char *head,
                       size_t hlen)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t->ws_port)};
    char req[1024];
    size_t have = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ASSERT_TRUE(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_OK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)));
    snprintf(req, sizeof(req),
             "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\n%s\r\n",
             path, t->ws_port, extra);
    ASSERT_EQ(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    while (have + 1 < hlen) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t n;
        ASSERT_EQ(poll(&p, 1, 5000), 1);
        n = read(fd, head + have, 1); /* byte by byte: stop exactly at the blank line */
        ASSERT_TRUE(n == 1);
        have++;
        head[have] = '\0';
        if (have >= 4 && strcmp(head + have - 4, "\r\n\r\n") == 0)
            break;
    }
    return fd;
}

/* Send one frame as a client: FIN, @p opcode, masked unless @p unmasked. */
static void ws_send(int fd, int opcode, const void *data, size_t len, bool unmasked, bool fin)
{
    uint8_t *buf = malloc(len + 14), mask[4];
    size_t h = 0;

    ASSERT_NOT_NULL(buf);
    buf[h++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        buf[h++] = (uint8_t)((unmasked ? 0 : 0x80) | len);
    } else if (len < 65536) {
        buf[h++] = (uint8_t)((unmasked ? 0 : 0x80) | 126);
        buf[h++] = (uint8_t)(len >> 8);
        buf[h++] = (uint8_t)len;
    } else {
        buf[h++] = (uint8_t)((unmasked ? 0 : 0x80) | 127);
        for (int i = 7; i >= 0; i--)
            buf[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    ASSERT_EQ(RAND_bytes(mask, 4), 1);
    if (!unmasked) {
        memcpy(buf + h, mask, 4);
        h += 4;
    }
    for (size_t i = 0; i < len; i++)
        buf[h + i] = ((const uint8_t *)data)[i] ^ (unmasked ? 0 : mask[i % 4]);
    ASSERT_EQ(write(fd, buf, h + len), (ssize_t)(h + len));
    free(buf);
}

/* Read the server's next frame (unmasked): its opcode and payload. Returns -1 on EOF. */
static int ws_recv(int fd, uint8_t *payload, size_t cap, size_t *len)
{
    uint8_t h[10];
    size_t n;

    for (size_t got = 0; got < 2;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t r;
        ASSERT_EQ(poll(&p, 1, 5000), 1);
        if ((r = read(fd, h + got, 2 - got)) <= 0)
            return -1;
        got += (size_t)r;
    }
    n = h[1] & 0x7f;
    if (n >= 126) {
        size_t ext = n == 126 ? 2 : 8;
        ASSERT_EQ(read(fd, h + 2, ext), (ssize_t)ext);
        n = 0;
        for (size_t i = 0; i < ext; i++)
            n = n << 8 | h[2 + i];
    }
    ASSERT_TRUE(n <= cap);
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, payload + got, n - got);
        ASSERT_TRUE(r > 0);
        got += (size_t)r;
    }
    *len = n;
    return h[0] & 0x0f;
}

/* The next frame must be a close with @p code. */
static void expect_close(int fd, int code)
{
    uint8_t p[256];
    size_t n = 0;
    int op = ws_recv(fd, p, sizeof(p), &n);
    ASSERT_EQ(op, 8);
    ASSERT_TRUE(n >= 2);
    ASSERT_EQ(p[0] << 8 | p[1], code);
}

/* After the server gave up on the connection: nothing but EOF (or a final close frame). */
static void expect_eof(int fd)
{
    uint8_t p[256];
    size_t n;
    int op;
    while ((op = ws_recv(fd, p, sizeof(p), &n)) == 8)
        ;
    ASSERT_EQ(op, -1);
}

/* ---- tests ---------------------------------------------------------------------------- */

TEST_TIMEOUT(e2e_ws_chat_with_tcp, 15)
{
    tsrv_t t;
    cim_SendRsp rsp;
    tmsg_t m, got[8];
    tmsg_page_t page;
    uint8_t body[256];

    tsrv_start(&t, NULL);
    ASSERT_TRUE(t.ws_port > 0);
    cimc_t *alice = tsrv_login(&t, "alice", "a-desk", NULL); /* TCP */
    cimc_t *bob = ws_login(&t, "bob", "b-web");              /* WebSocket */
    ASSERT_TRUE(tsrv_log_has(&t, "WebSocket connection from 127.0.0.1"));

    /* TCP -> WebSocket, a push */
    ASSERT_OK(tmsg_send(alice, "bob", "m1", cim_MsgType_TEXT, "hi bob", 6, false, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    ASSERT_OK(tmsg_next_push(bob, 2000, &m, body, sizeof(body)));
    ASSERT_EQ(m.msg_id, rsp.msg_id);
    ASSERT_STREQ(m.from, "alice");
    ASSERT_OK(tmsg_push_ack(bob, m.msg_id));
    /* WebSocket -> TCP, and a large message (many WebSocket frames' worth) */
    static uint8_t big[16000];
    memset(big, 'x', sizeof(big));
    ASSERT_OK(tmsg_send(bob, "alice", "m2", cim_MsgType_TEXT, big, sizeof(big), false, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    ASSERT_OK(tmsg_next_push(alice, 2000, &m, body, sizeof(body)));
    ASSERT_EQ(m.body_len, sizeof(big));
    ASSERT_EQ(m.body_hash, tmsg_hash(big, sizeof(big)));
    /* SYNC over the WebSocket from the device's cursor: the PUSH_ACK above moved it past
     * m1, so only m2 (bob's own, sent from this device) is left */
    tmsg_page_init(&page, got, 8, NULL, 0);
    ASSERT_OK(tmsg_sync(bob, 0, 50, &page));
    ASSERT_EQ(page.n, 1);
    ASSERT_STREQ(got[0].client_msg_id, "m2");
    ASSERT_OK(cimc_ping(bob, NULL));

    /* the same device on the other transport kicks the older session */
    cimc_t *bob_tcp = tsrv_login(&t, "bob", "b-web", NULL);
    ASSERT_EQ(cimc_wait_closed(bob, 2000), 0);
    ASSERT_EQ(cimc_bye(bob)->code, cim_Code_KICKED);
    cimc_close(bob);
    bob = ws_login(&t, "bob", "b-web");
    ASSERT_EQ(cimc_wait_closed(bob_tcp, 2000), 0);
    ASSERT_EQ(cimc_bye(bob_tcp)->code, cim_Code_KICKED);
    cimc_close(bob_tcp);

    /* a message that is not one frame, after the handshake: BYE{PROTOCOL_ERROR} */
    {
        cimc_t *carol = ws_login(&t, "carol", "c-web");
        uint8_t junk[20];
        memset(junk, 0, sizeof(junk));
        frame_hdr_write(junk, 100, FT_PING); /* says 100 bytes; the message has 20 */
        ASSERT_OK(cimc_write_raw(carol, junk, sizeof(junk)));
        ASSERT_EQ(cimc_wait_closed(carol, 2000), 0);
        ASSERT_NOT_NULL(cimc_bye(carol));
        ASSERT_EQ(cimc_bye(carol)->code, cim_Code_PROTOCOL_ERROR);
        cimc_close(carol);
        ASSERT_OK(cimc_ping(alice, NULL));
    }

    /* shutdown: the WebSocket session gets BYE{SHUTTING_DOWN} like a TCP one */
    ASSERT_EQ(tsrv_stop_keep(&t), 0);
    ASSERT_EQ(cimc_wait_closed(bob, 2000), 0);
    ASSERT_NOT_NULL(cimc_bye(bob)); /* the BYE before the close frame */
    ASSERT_EQ(cimc_bye(bob)->code, cim_Code_SHUTTING_DOWN);
    cimc_close(bob);
    cimc_close(alice);
    (void)tsrv_stop(&t);
}

TEST_TIMEOUT(e2e_ws_upgrade_refusals, 15)
{
    tsrv_t t;
    thttp_t r;
    char head[2048];
    int fd;

    tsrv_start(&t, "--ws_origins", "https://chat.example, http://localhost:8080", NULL);
    /* subprotocols offered but not cim.v1: refused; none offered (a client written from
     * PROTOCOL.md alone, which names none): served, and none named in the answer */
    fd = raw_upgrade(&t, "/ws", "Sec-WebSocket-Protocol: mqtt\r\n", head, sizeof(head));
    ASSERT_TRUE(strncmp(head, "HTTP/1.1 400", 12) == 0);
    close(fd);
    fd = raw_upgrade(&t, "/ws", "", head, sizeof(head));
    ASSERT_TRUE(strncmp(head, "HTTP/1.1 101", 12) == 0);
    ASSERT_NULL(strstr(head, "sec-websocket-protocol"));
    close(fd);
    /* an Origin not listed; a listed one; none at all (not a browser) */
    fd = raw_upgrade(&t, "/ws", "Sec-WebSocket-Protocol: cim.v1\r\nOrigin: https://evil.example\r\n",
                     head, sizeof(head));
    ASSERT_TRUE(strncmp(head, "HTTP/1.1 403", 12) == 0);
    close(fd);
    fd = raw_upgrade(&t, "/ws", "Sec-WebSocket-Protocol: chat, cim.v1\r\nOrigin: https://chat.example\r\n",
                     head, sizeof(head));
    ASSERT_TRUE(strncmp(head, "HTTP/1.1 101", 12) == 0);
    ASSERT_NOT_NULL(strstr(head, "sec-websocket-protocol: cim.v1"));
    /* RFC 6455's own example key and answer */
    ASSERT_NOT_NULL(strstr(head, "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    close(fd);
    fd = raw_upgrade(&t, "/ws", "Sec-WebSocket-Protocol: cim.v1\r\n", head, sizeof(head));
    ASSERT_TRUE(strncmp(head, "HTTP/1.1 101", 12) == 0);
    close(fd);
    /* not an upgrade; other methods and paths */
    ASSERT_EQ(thttp_n(&r, &(tsrv_t){.admin_port = t.ws_port}, "GET", "/ws", NULL, NULL, 0), 400);
    ASSERT_EQ(thttp_n(&r, &(tsrv_t){.admin_port = t.ws_port}, "POST", "/ws", NULL, "x", 1), 405);
    ASSERT_EQ(thttp_n(&r, &(tsrv_t){.admin_port = t.ws_port}, "GET", "/nothing", NULL, NULL, 0),
              404);
    /* /config.json tells a page the key to pin; /dev/token only with dev_tokens */
    ASSERT_EQ(thttp_n(&r, &(tsrv_t){.admin_port = t.ws_port}, "GET", "/config.json", NULL, NULL,
                      0),
              200);
    {
        char hex[65];
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", t.key[i]);
        ASSERT_NOT_NULL(strstr(r.body, hex));
        ASSERT_NOT_NULL(strstr(r.body, "\"subprotocol\":\"cim.v1\""));
    }
    /* the page: an ETag, and a reload with it costs a 304 */
    {
        char inm[128];
        tsrv_t ws = {.admin_port = t.ws_port};
        ASSERT_EQ(thttp_hdr(&r, &ws, "GET", "/", NULL), 200);
        ASSERT_TRUE(r.etag[0] == '"');
        snprintf(inm, sizeof(inm), "If-None-Match: %s", r.etag);
        ASSERT_EQ(thttp_hdr(&r, &ws, "GET", "/", inm), 304);
        ASSERT_EQ(thttp_hdr(&r, &ws, "GET", "/", "If-None-Match: \"0\""), 200);
    }
    ASSERT_EQ(thttp_n(&r, &(tsrv_t){.admin_port = t.ws_port}, "GET", "/dev/token?user=bob", NULL,
                      NULL, 0),
              404);
    /* / is the browser client's page, web/index.html (it once answered 404: the path it
     * was mapped to died with its block) */
    ASSERT_EQ(thttp_n(&r, &(tsrv_t){.admin_port = t.ws_port}, "GET", "/", NULL, NULL, 0), 200);
    ASSERT_NOT_NULL(strstr(r.body, "<title>cim</title>"));
    ASSERT_EQ(thttp_n(&r, &(tsrv_t){.admin_port = t.ws_port}, "GET", "/app.js", NULL, NULL, 0),
              200);
    /* a libcim client whose upgrade is refused says why */
    {
        cimc_opts_t o = tsrv_opts(&t);
        cimc_t *c = NULL;
        o.port = t.ws_port;
        o.ws_path = "/nope";
        ASSERT_EQ(cimc_connect(&o, &c), RC_EPROTO);
    }
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_ws_dev_tokens, 15)
{
    tsrv_t t;
    thttp_t r;
    char *tok, *end;
    cim_LoginReq req = cim_LoginReq_init_zero;
    cim_LoginRsp rsp = cim_LoginRsp_init_zero;
    cimc_t *c = NULL;
    cimc_opts_t o;

    tsrv_start(&t, "--dev_tokens", "true", NULL);
    ASSERT_TRUE(tsrv_log_has(&t, "dev_tokens is on"));
    ASSERT_EQ(thttp_n(&r, &(tsrv_t){.admin_port = t.ws_port}, "GET", "/dev/token?user=web%2Duser",
                      NULL, NULL, 0),
              200);
    ASSERT_NOT_NULL(tok = strstr(r.body, "\"token\":\""));
    tok += 9;
    ASSERT_NOT_NULL(end = strchr(tok, '"'));
    *end = '\0';
    snprintf(req.token, sizeof(req.token), "%s", tok); /* r is used again below */
    ASSERT_EQ(thttp_n(&r, &(tsrv_t){.admin_port = t.ws_port}, "GET", "/dev/token?user=a%20b",
                      NULL, NULL, 0),
              400);
    o = tsrv_opts(&t);
    o.port = t.ws_port;
    o.ws_path = "/ws";
    ASSERT_OK(cimc_connect(&o, &c));
    snprintf(req.user, sizeof(req.user), "web-user");
    snprintf(req.device_id, sizeof(req.device_id), "tab1");
    ASSERT_OK(cimc_login(c, &req, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    cimc_close(c);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_ws_bad_frames_close_with_the_right_code, 20)
{
    tsrv_t t;
    char head[2048];
    uint8_t p[512];
    size_t n;
    int fd;
    static uint8_t big[70000];
    const char *proto = "Sec-WebSocket-Protocol: cim.v1\r\n";

    tsrv_start(&t, NULL);
    cimc_t *alice = tsrv_login(&t, "alice", "a1", NULL); /* must carry on through it all */

    /* a text message: 1003 */
    fd = raw_upgrade(&t, "/ws", proto, head, sizeof(head));
    ws_send(fd, 1, "hello", 5, false, true);
    expect_close(fd, 1003);
    close(fd);
    /* an unmasked client frame: 1002 */
    fd = raw_upgrade(&t, "/ws", proto, head, sizeof(head));
    ws_send(fd, 2, "abcdefgh", 8, true, true);
    expect_close(fd, 1002);
    close(fd);
    /* an unknown opcode: 1002 */
    fd = raw_upgrade(&t, "/ws", proto, head, sizeof(head));
    ws_send(fd, 3, "x", 1, false, true);
    expect_close(fd, 1002);
    close(fd);
    /* larger than the largest frame, in one message or in fragments: 1009 */
    fd = raw_upgrade(&t, "/ws", proto, head, sizeof(head));
    ws_send(fd, 2, big, sizeof(big), false, true);
    expect_close(fd, 1009);
    close(fd);
    fd = raw_upgrade(&t, "/ws", proto, head, sizeof(head));
    ws_send(fd, 2, big, 40000, false, false);
    ws_send(fd, 0, big, 40000, false, true);
    expect_close(fd, 1009);
    close(fd);
    /* ping: pong with the same payload; then the close handshake from the client */
    fd = raw_upgrade(&t, "/ws", proto, head, sizeof(head));
    ws_send(fd, 9, "are you there", 13, false, true);
    ASSERT_EQ(ws_recv(fd, p, sizeof(p), &n), 10);
    ASSERT_EQ(n, 13);
    ASSERT_TRUE(memcmp(p, "are you there", 13) == 0);
    ws_send(fd, 8, "\x03\xe8", 2, false, true);
    expect_close(fd, 1000);
    expect_eof(fd);
    close(fd);
    /* a message that is not exactly one frame (two HELLO-sized headers in one): closed */
    fd = raw_upgrade(&t, "/ws", proto, head, sizeof(head));
    {
        uint8_t two[16];
        frame_hdr_write(two, 8, FT_PING);
        frame_hdr_write(two + 8, 8, FT_PING);
        ws_send(fd, 2, two, sizeof(two), false, true);
    }
    expect_eof(fd);
    close(fd);
    /* a real HELLO in two fragments: reassembled, and the HELLO_ACK comes back */
    {
        cimc_t c;
        uint8_t msg[1024];
        memset(&c, 0, sizeof(c));
        cimc__init(&c, CIMC_MODE_BLOCKING, NULL);
        ASSERT_OK(cimc__hello_start(&c));
        frame_hdr_write(msg, (uint32_t)(FRAME_HDR + c.hs->hello_len), FT_HELLO);
        memcpy(msg + FRAME_HDR, c.hs->hello, c.hs->hello_len);
        fd = raw_upgrade(&t, "/ws", proto, head, sizeof(head));
        ws_send(fd, 2, msg, 10, false, false);
        ws_send(fd, 0, msg + 10, FRAME_HDR + c.hs->hello_len - 10, false, true);
        ASSERT_EQ(ws_recv(fd, p, sizeof(p), &n), 2);
        ASSERT_TRUE(n > FRAME_HDR);
        ASSERT_EQ(p[7], FT_HELLO_ACK); /* type, big-endian u32 after the length */
        ASSERT_EQ((size_t)be32_get(p), n);
        cimc__release(&c);
        close(fd);
    }
    /* nothing of it reached anyone else */
    ASSERT_OK(cimc_ping(alice, NULL));
    cimc_close(alice);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* A WebSocket reader that stops reading is cut like a TCP one: its queued output counts
 * against max_conn_queue_kb, then BYE{SERVER_BUSY}, and nobody else waits for it. */
TEST_TIMEOUT(e2e_ws_slow_reader_is_cut, 60)
{
    tsrv_t t;
    cim_SendRsp rsp;
    static uint8_t body[15000];
    char id[16];
    int sent = 0;

    tsrv_start(&t, "--max_conn_queue_kb", "256", "--send_rate", "100000", "--send_burst",
               "100000", NULL);
    cimc_t *alice = tsrv_login(&t, "alice", "a1", NULL);
    cimc_t *bob = ws_login(&t, "bob", "b-web"); /* never reads from here on */
    memset(body, 'p', sizeof(body));
    /* ~45 MB of pushes: far more than the kernel's socket buffers hold */
    for (int i = 0; i < 3000 && !tsrv_log_has(&t, "closing (BYE SERVER_BUSY)"); i++) {
        snprintf(id, sizeof(id), "f%d", i);
        ASSERT_OK(tmsg_send(alice, "bob", id, cim_MsgType_TEXT, body, sizeof(body), false, &rsp));
        ASSERT_EQ(rsp.code, cim_Code_OK);
        sent++;
    }
    for (int i = 0; i < 50 && !tsrv_log_has(&t, "closing (BYE SERVER_BUSY)"); i++)
        tmsg_sleep_ms(100);
    ASSERT_TRUE(tsrv_log_has(&t, "closing (BYE SERVER_BUSY)"));
    /* the sender was never held back */
    ASSERT_OK(cimc_ping(alice, NULL));
    /* bob, reading at last, finds the connection closed; his messages wait for SYNC */
    ASSERT_EQ(cimc_wait_closed(bob, 10000), 0);
    cimc_close(bob);
    bob = ws_login(&t, "bob", "b-web");
    {
        tmsg_t got[8];
        tmsg_page_t page;
        tmsg_page_init(&page, got, 8, NULL, 0);
        ASSERT_OK(tmsg_sync(bob, 0, 5, &page));
        ASSERT_TRUE(page.n > 0);
    }
    fprintf(stderr, "sent %d messages of %zu bytes before the cut\n", sent, sizeof(body));
    cimc_close(bob);
    cimc_close(alice);
    ASSERT_EQ(tsrv_stop(&t), 0);
}
