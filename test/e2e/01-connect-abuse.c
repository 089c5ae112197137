/* Integration: hostile or broken input closes only the offending connection, with the
 * answer PROTOCOL.md prescribes, while other sessions carry on. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pb_encode.h>

#include "client/cim.h"
#include "core/frame.h"
#include "support/server.h"
#include "support/test.h"

static void hdr(uint8_t out[8], uint32_t len, uint32_t type)
{
    uint32_t l = htonl(len), t = htonl(type);
    memcpy(out, &l, 4);
    memcpy(out + 4, &t, 4);
}

/* Closed, and with BYE{code} when code >= 0, without BYE when code < 0. */
static void expect_closed(cimc_t *c, int code)
{
    ASSERT_OK(cimc_wait_closed(c, 5000));
    if (code < 0) {
        ASSERT_NULL(cimc_bye(c));
    } else {
        ASSERT_NOT_NULL(cimc_bye(c));
        ASSERT_EQ(cimc_bye(c)->code, code);
    }
}

/* Send @p bytes on a fresh connection (after the handshake when @p handshake) and expect
 * the given close, while @p bystander keeps working. */
static void abuse(const tsrv_t *t, cimc_t *bystander, bool handshake, const void *bytes,
                  size_t len, int code)
{
    cimc_opts_t o = tsrv_opts(t);
    cimc_t *c = NULL;
    if (handshake)
        ASSERT_OK(cimc_connect(&o, &c));
    else
        ASSERT_OK(cimc_connect_raw(&o, &c));
    ASSERT_OK(cimc_write_raw(c, bytes, len));
    expect_closed(c, code);
    cimc_close(c);
    ASSERT_OK(cimc_ping(bystander, NULL));
}

TEST(e2e_abuse_before_handshake)
{
    tsrv_t t;
    uint8_t f[2048];
    const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    tsrv_start(&t, NULL);
    cimc_t *ok = tsrv_login(&t, "alice", "d1", NULL);

    abuse(&t, ok, false, http, strlen(http), -1);           /* garbage */
    hdr(f, 4, FT_HELLO);
    abuse(&t, ok, false, f, 8, -1);                         /* length < 8 */
    hdr(f, 2000, FT_HELLO);
    memset(f + 8, 0, 2000 - 8);
    abuse(&t, ok, false, f, 2000, -1);                      /* hello over 1024 */
    hdr(f, 8 + 10, FT_LOGIN);
    abuse(&t, ok, false, f, 18, -1);                        /* not a HELLO first */
    hdr(f, 8 + 5, FT_HELLO);
    memcpy(f + 8, "\xff\xff\xff\xff\xff", 5);
    abuse(&t, ok, false, f, 13, -1);                        /* undecodable hello */
    hdr(f, 8, 0x7777);
    abuse(&t, ok, false, f, 8, -1);                         /* unknown type */

    cimc_close(ok);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST(e2e_abuse_after_handshake)
{
    tsrv_t t;
    uint8_t f[256];
    tsrv_start(&t, NULL);
    cimc_t *ok = tsrv_login(&t, "alice", "d1", NULL);

    hdr(f, 0xFFFFFFF0u, FT_PING);
    abuse(&t, ok, true, f, 8, cim_Code_PROTOCOL_ERROR);     /* absurd length */
    hdr(f, 3, FT_PING);
    abuse(&t, ok, true, f, 8, cim_Code_PROTOCOL_ERROR);     /* length < 8 */
    hdr(f, 8 + 16, 0x0999);
    memset(f + 8, 0, 16);
    abuse(&t, ok, true, f, 24, cim_Code_PROTOCOL_ERROR);    /* unknown type */
    hdr(f, 8 + 16, FT_HELLO);
    abuse(&t, ok, true, f, 24, cim_Code_PROTOCOL_ERROR);    /* HELLO again */
    hdr(f, 8 + 40, FT_LOGIN);
    for (int i = 0; i < 40; i++)
        f[8 + i] = (uint8_t)(i * 37 + 11);
    abuse(&t, ok, true, f, 48, -1);                         /* tampered: fails to open */
    hdr(f, 8 + 4, FT_LOGIN);
    abuse(&t, ok, true, f, 12, -1);                         /* shorter than a tag */

    /* a server-to-client type, properly sealed */
    cimc_t *c = tsrv_connect(&t);
    ASSERT_OK(cimc_send_frame(c, FT_PUSH, NULL, 0));
    expect_closed(c, cim_Code_PROTOCOL_ERROR);
    cimc_close(c);

    /* after login too */
    c = tsrv_login(&t, "bob", "d1", NULL);
    ASSERT_OK(cimc_send_frame(c, FT_SEND_ACK, NULL, 0));
    expect_closed(c, cim_Code_PROTOCOL_ERROR);
    cimc_close(c);
    c = tsrv_login(&t, "bob", "d1", NULL);
    hdr(f, 8 + 20, FT_PING);
    memset(f + 8, 0x5a, 20);
    ASSERT_OK(cimc_write_raw(c, f, 28));                    /* tampered after login */
    expect_closed(c, -1);
    cimc_close(c);

    ASSERT_OK(cimc_ping(ok, NULL));
    cimc_close(ok);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

static size_t ping_frame(cimc_t *c, uint8_t *out, uint64_t stamp)
{
    cim_Ping ping = cim_Ping_init_zero;
    uint8_t body[32], *sealed = NULL;
    size_t n = 0;
    pb_ostream_t os = pb_ostream_from_buffer(body, sizeof(body));
    ping.client_time_ms = stamp;
    ASSERT_TRUE(pb_encode(&os, cim_Ping_fields, &ping));
    ASSERT_OK(cimc_seal(c, FT_PING, body, os.bytes_written, &sealed, &n));
    memcpy(out, sealed, n);
    free(sealed);
    return n;
}

static void expect_pongs(cimc_t *c, int n)
{
    for (int i = 0; i < n; i++) {
        uint32_t type = 0;
        uint8_t *body = NULL;
        size_t len = 0;
        ASSERT_OK(cimc_next_frame(c, 5000, &type, &body, &len));
        ASSERT_EQ(type, FT_PONG);
        free(body);
    }
}

TEST(e2e_abuse_split_and_coalesced_frames)
{
    /* 20 pings in one write, then one ping a byte at a time: the server reassembles. */
    tsrv_t t;
    uint8_t buf[4096];
    size_t n = 0;
    tsrv_start(&t, NULL);
    cimc_t *c = tsrv_login(&t, "alice", "d1", NULL);
    for (int i = 0; i < 20; i++)
        n += ping_frame(c, buf + n, (uint64_t)i + 1);
    ASSERT_OK(cimc_write_raw(c, buf, n));
    expect_pongs(c, 20);
    n = ping_frame(c, buf, 99);
    for (size_t i = 0; i < n; i++) {
        ASSERT_OK(cimc_write_raw(c, buf + i, 1));
        usleep(1000);
    }
    expect_pongs(c, 1);
    cimc_close(c);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST(e2e_abuse_replayed_frame)
{
    /* A frame sent twice fails to open the second time: closed without a word. */
    tsrv_t t;
    uint8_t buf[256];
    size_t n;
    tsrv_start(&t, NULL);
    cimc_t *ok = tsrv_login(&t, "alice", "d1", NULL);
    cimc_t *c = tsrv_login(&t, "bob", "d1", NULL);
    n = ping_frame(c, buf, 1);
    ASSERT_OK(cimc_write_raw(c, buf, n));
    expect_pongs(c, 1);
    ASSERT_OK(cimc_write_raw(c, buf, n));
    expect_closed(c, -1);
    cimc_close(c);
    ASSERT_OK(cimc_ping(ok, NULL));
    cimc_close(ok);
    ASSERT_EQ(tsrv_stop(&t), 0);
}
