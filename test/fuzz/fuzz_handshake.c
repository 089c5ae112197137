/* libFuzzer target fuzz_handshake: both ends of the handshake (PROTOCOL.md §2).
 *
 * Input: byte 0 picks the side (bit 0) and, for the client, its options.
 *
 *   bit 0 = 0  server: the rest of the input goes to a fresh session in the HELLO state
 *              (harness.h, family FUZZ_FAM_HELLO, mode 0: byte 1 of the rest is the chunk
 *              size, then raw bytes): frame reassembly with the handshake limit,
 *              ClientHello decoding, chan_server_handshake and the HELLO_ACK. The harness
 *              checks that every HELLO_ACK the server writes verifies, for a client, against
 *              exactly the HELLO body it was sent.
 *
 *   bit 0 = 1  client: libcim makes a real ClientHello (cimc__hello_start); a genuine
 *              ServerHello is computed for it (chan_server_handshake, a fixed identity);
 *              libcim checks the body built from it (cimc__hello_finish):
 *                bit 1 = 0  the genuine ServerHello, then the rest of the input appended
 *                           (later fields override earlier ones; unknown ones are skipped);
 *                bit 1 = 1  the rest of the input alone;
 *                bits 2..3  the client's trust: 0 pinned to the identity, 1 pinned to
 *                           another key, 2 trust on first use, 3 neither.
 *              Oracle: the genuine body alone is accepted exactly when the trust allows
 *              (0 and 2; else RC_EKEY); whenever a body is accepted, the client's keys are
 *              the server's (its send key is the server's receive key and back), so no
 *              accepted HELLO_ACK can leave the two ends with different keys. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pb_encode.h>

#include "cim.pb.h"
#include "client/cim_int.h"
#include "core/chan.h"
#include "core/frame.h"
#include "core/rc.h"
#include "fuzz/harness.h"
#include "fuzz/targets.h"

enum { TRUST_PINNED = 0, TRUST_WRONG_PIN = 1, TRUST_TOFU = 2, TRUST_NONE = 3 };

static chan_identity_t *identity; /* the process's server identity, made once */
static uint8_t identity_pub[CHAN_KEY];

static __attribute__((format(printf, 1, 2), noreturn)) void fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "fuzz_handshake: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    abort();
}

static void client_side(uint8_t flags, const uint8_t *rest, size_t nrest)
{
    cim_ServerHello sh = cim_ServerHello_init_zero;
    uint8_t body[2 * FRAME_HANDSHAKE_MAX], other[CHAN_KEY];
    int trust = (flags >> 2) & 3, rc;
    cimc_opts_t opts = {0};
    pb_ostream_t os;
    size_t blen = 0;
    chan_t server;
    cimc_t c;

    if ((rc = chan_global_init()) < 0)
        fail("chan_global_init: %s", rc_str(rc));
    if (identity == NULL) {
        identity = chan_identity_generate();
        chan_identity_public(identity, identity_pub);
    }
    memcpy(other, identity_pub, CHAN_KEY);
    other[0] ^= 1;
    if (trust == TRUST_PINNED)
        opts.pinned_key = identity_pub;
    else if (trust == TRUST_WRONG_PIN)
        opts.pinned_key = other;
    opts.trust_on_first_use = trust == TRUST_TOFU;

    memset(&c, 0, sizeof(c));
    cimc__init(&c, CIMC_MODE_BLOCKING, &opts);
    if ((rc = cimc__hello_start(&c)) < 0)
        fail("cimc__hello_start: %s", rc_str(rc));
    sh.version = 1;
    sh.server_key.size = CHAN_KEY;
    sh.server_random.size = CHAN_RANDOM;
    sh.identity.size = CHAN_KEY;
    sh.signature.size = CHAN_SIG;
    memcpy(sh.identity.bytes, identity_pub, CHAN_KEY);
    if ((rc = chan_server_handshake(identity, c.hs->hello, c.hs->hello_len, c.hs->cl.key,
                                    sh.server_key.bytes, sh.server_random.bytes, sh.signature.bytes,
                                    &server)) < 0)
        fail("chan_server_handshake refused libcim's own ClientHello: %s", rc_str(rc));
    if (!(flags & 2)) {
        os = pb_ostream_from_buffer(body, sizeof(body));
        if (!pb_encode(&os, cim_ServerHello_fields, &sh))
            fail("encoding the ServerHello: %s", PB_GET_ERROR(&os));
        blen = os.bytes_written;
    }
    if (nrest > sizeof(body) - blen)
        nrest = sizeof(body) - blen;
    memcpy(body + blen, rest, nrest);
    blen += nrest;

    rc = cimc__hello_finish(&c, body, blen);
    if (!(flags & 2) && nrest == 0) {
        int want = trust == TRUST_PINNED || trust == TRUST_TOFU ? 0 : RC_EKEY;
        if (rc != want)
            fail("genuine HELLO_ACK with trust %d: %s, expected %s", trust, rc_str(rc),
                 rc_str(want));
    }
    if (rc == 0) {
        if (c.state != CIMC_ST_SECURE)
            fail("HELLO_ACK accepted but the client is in state %d", c.state);
        if (memcmp(c.ch.tx_key, server.rx_key, CHAN_KEY) != 0 ||
            memcmp(c.ch.rx_key, server.tx_key, CHAN_KEY) != 0 || c.ch.tx_ctr != 0 ||
            c.ch.rx_ctr != 0)
            fail("HELLO_ACK accepted, but the client's keys are not the server's");
    } else if (rc != RC_EPROTO && rc != RC_EKEY && rc != RC_ECRYPTO) {
        fail("cimc__hello_finish returned %s", rc_str(rc));
    }
    if (c.hs != NULL)
        fail("cimc__hello_finish left the handshake state behind");
    cimc__release(&c);
}

int fuzz_handshake_input(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        client_side(data[0], data + 1, size - 1);
    else
        (void)fuzz_family_input(FUZZ_FAM_HELLO, data + 1, size - 1); /* returns 0 */
    return 0;
}

#ifdef CIM_FUZZ_TARGET
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_handshake_input(data, size);
}
#endif
