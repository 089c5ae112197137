/* Tests of src/core/chan.c: handshake, sealed frames, identity file, hex.
 *
 * The key schedule is checked twice, independently of chan.c's code path: against fixed
 * vectors computed outside OpenSSL (Python's `cryptography` and hashlib, from the RFC 7748
 * X25519 and RFC 8032 Ed25519 test keys), and by recomputing th and HKDF (by hand, from
 * HMAC-SHA256) for a live handshake. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "core/chan.h"
#include "core/frame.h"
#include "support/test.h"

#define HELLO_LEN 70

/* A ClientHello as the client library encodes it: version 1, client_key, client_random. */
static void make_hello(uint8_t out[HELLO_LEN], const uint8_t key[CHAN_KEY],
                       const uint8_t random[CHAN_RANDOM])
{
    out[0] = 0x08;
    out[1] = 0x01;
    out[2] = 0x12;
    out[3] = 0x20;
    memcpy(out + 4, key, CHAN_KEY);
    out[36] = 0x1a;
    out[37] = 0x20;
    memcpy(out + 38, random, CHAN_RANDOM);
}

/* Both ends of one connection after a handshake. */
typedef struct pair {
    chan_identity_t *id;
    chan_client_t c;
    uint8_t hello[HELLO_LEN];
    uint8_t server_key[CHAN_KEY], server_random[CHAN_RANDOM], sig[CHAN_SIG];
    uint8_t identity[CHAN_KEY];
    chan_t srv, cli;
} pair_t;

/* Run the server half and stop before the client checks the ServerHello. */
static void pair_start(pair_t *p)
{
    memset(p, 0, sizeof(*p));
    ASSERT_OK(chan_global_init());
    p->id = chan_identity_generate();
    chan_identity_public(p->id, p->identity);
    ASSERT_OK(chan_client_start(&p->c));
    ASSERT_NOT_NULL(p->c.eph);
    make_hello(p->hello, p->c.key, p->c.random);
    ASSERT_OK(chan_server_handshake(p->id, p->hello, HELLO_LEN, p->c.key, p->server_key,
                                    p->server_random, p->sig, &p->srv));
}

static int pair_finish(pair_t *p, const uint8_t *pinned)
{
    return chan_client_finish(&p->c, p->hello, HELLO_LEN, p->server_key, p->server_random,
                              p->identity, p->sig, pinned, &p->cli);
}

static void pair_open(pair_t *p)
{
    pair_start(p);
    ASSERT_OK(pair_finish(p, p->identity));
}

static void pair_close(pair_t *p)
{
    chan_client_close(&p->c);
    chan_client_close(&p->c); /* twice is harmless */
    chan_identity_free(p->id);
}

/* th computed from the concatenation in one shot, as a third-party SDK would. */
static void ref_transcript(const uint8_t *hello, size_t hello_len, const uint8_t *server_key,
                           const uint8_t *server_random, const uint8_t *identity, uint8_t th[32])
{
    uint8_t buf[1024];
    size_t n = 0;
    unsigned int len = 0;

    memcpy(buf, "cim/1 handshake", 15);
    n = 15;
    memcpy(buf + n, hello, hello_len);
    n += hello_len;
    memcpy(buf + n, server_key, 32);
    n += 32;
    memcpy(buf + n, server_random, 32);
    n += 32;
    memcpy(buf + n, identity, 32);
    n += 32;
    ASSERT_EQ(EVP_Digest(buf, n, th, &len, EVP_sha256(), NULL), 1);
    ASSERT_EQ(len, 32);
}

/* RFC 5869 HKDF-SHA256 with L = 64, written out with HMAC. */
static void ref_hkdf(const uint8_t shared[32], const uint8_t th[32], uint8_t okm[64])
{
    static const char info[] = "cim/1 keys";
    uint8_t prk[32], msg[32 + sizeof(info)];
    unsigned int len = 0;

    ASSERT_NOT_NULL(HMAC(EVP_sha256(), th, 32, shared, 32, prk, &len));
    memcpy(msg, info, sizeof(info) - 1);
    msg[sizeof(info) - 1] = 1;
    ASSERT_NOT_NULL(HMAC(EVP_sha256(), prk, 32, msg, sizeof(info), okm, &len));
    memcpy(msg, okm, 32);
    memcpy(msg + 32, info, sizeof(info) - 1);
    msg[32 + sizeof(info) - 1] = 2;
    ASSERT_NOT_NULL(HMAC(EVP_sha256(), prk, 32, msg, sizeof(msg), okm + 32, &len));
}

static void ref_sign(EVP_PKEY *key, const uint8_t th[32], uint8_t sig[CHAN_SIG])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t len = CHAN_SIG;

    ASSERT_NOT_NULL(md);
    ASSERT_EQ(EVP_DigestSignInit(md, NULL, NULL, NULL, key), 1);
    ASSERT_EQ(EVP_DigestSign(md, sig, &len, th, 32), 1);
    ASSERT_EQ(len, CHAN_SIG);
    EVP_MD_CTX_free(md);
}

static void unhex_n(const char *hex, uint8_t *out, size_t n)
{
    ASSERT_EQ(strlen(hex), 2 * n);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        ASSERT_EQ(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

/* Seal @p pt_len bytes of @p pt as @p type with @p from, open with @p to, compare. */
static void seal_open(chan_ctx_t *a, chan_t *from, chan_ctx_t *b, chan_t *to, uint32_t type,
                      const char *pt)
{
    uint8_t frame[256];
    size_t n = strlen(pt);
    uint32_t len, t;

    ASSERT_OK(chan_seal(a, from, type, (const uint8_t *)pt, n, frame));
    frame_hdr_read(frame, &len, &t);
    ASSERT_EQ(len, FRAME_HDR + n + FRAME_TAG);
    ASSERT_EQ(t, type);
    if (n > 3)
        ASSERT_TRUE(memcmp(frame + FRAME_HDR, pt, n) != 0); /* not sent in clear */
    ASSERT_OK(chan_open(b, to, frame, len));
    ASSERT_MEMEQ(frame + FRAME_HDR, pt, n);
}

TEST(chan_sizes)
{
    /* The per-connection budget the header promises. */
    ASSERT_EQ(sizeof(chan_t), 88);
}

TEST(chan_handshake_seal_open_both_ways)
{
    chan_ctx_t *cctx, *sctx;
    pair_t p;

    pair_open(&p);
    cctx = chan_ctx_new();
    sctx = chan_ctx_new();
    ASSERT_MEMEQ(p.cli.tx_key, p.srv.rx_key, CHAN_KEY);
    ASSERT_MEMEQ(p.cli.rx_key, p.srv.tx_key, CHAN_KEY);
    ASSERT_TRUE(memcmp(p.cli.tx_key, p.cli.rx_key, CHAN_KEY) != 0);
    ASSERT_U64_EQ(p.cli.tx_ctr, 0);
    ASSERT_U64_EQ(p.cli.rx_ctr, 0);
    ASSERT_U64_EQ(p.srv.tx_ctr, 0);
    ASSERT_U64_EQ(p.srv.rx_ctr, 0);

    seal_open(cctx, &p.cli, sctx, &p.srv, FT_LOGIN, "login request");
    seal_open(cctx, &p.cli, sctx, &p.srv, FT_PING, "ping");
    seal_open(sctx, &p.srv, cctx, &p.cli, FT_LOGIN_ACK, "welcome");
    seal_open(cctx, &p.cli, sctx, &p.srv, FT_SEND, "a message body");
    ASSERT_U64_EQ(p.cli.tx_ctr, 3);
    ASSERT_U64_EQ(p.srv.rx_ctr, 3);
    ASSERT_U64_EQ(p.srv.tx_ctr, 1);
    ASSERT_U64_EQ(p.cli.rx_ctr, 1);
    for (int i = 0; i < 10; i++)
        seal_open(sctx, &p.srv, cctx, &p.cli, FT_PUSH, "pushed message");
    ASSERT_U64_EQ(p.srv.tx_ctr, 11);
    ASSERT_U64_EQ(p.cli.rx_ctr, 11);

    /* A frame of the largest body the protocol allows. */
    {
        size_t n = FRAME_MAX_BODY;
        uint8_t *pt = malloc(n), *frame = malloc(n + FRAME_HDR + FRAME_TAG);
        ASSERT_NOT_NULL(pt);
        ASSERT_NOT_NULL(frame);
        for (size_t i = 0; i < n; i++)
            pt[i] = (uint8_t)(i * 7);
        ASSERT_OK(chan_seal(cctx, &p.cli, FT_SEND, pt, n, frame));
        ASSERT_OK(chan_open(sctx, &p.srv, frame, n + FRAME_HDR + FRAME_TAG));
        ASSERT_MEMEQ(frame + FRAME_HDR, pt, n);
        free(pt);
        free(frame);
    }
    chan_ctx_free(cctx);
    chan_ctx_free(sctx);
    chan_ctx_free(NULL);
    pair_close(&p);
    chan_global_free();
}

TEST(chan_transcript_recomputed)
{
    uint8_t th[32], shared[32], okm[64];
    EVP_PKEY *peer, *idkey;
    EVP_PKEY_CTX *pctx;
    EVP_MD_CTX *md;
    size_t len = 32;
    pair_t p;

    pair_open(&p);
    /* The signature is over th as PROTOCOL.md §2 step 3 defines it. */
    ref_transcript(p.hello, HELLO_LEN, p.server_key, p.server_random, p.identity, th);
    idkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, p.identity, 32);
    ASSERT_NOT_NULL(idkey);
    md = EVP_MD_CTX_new();
    ASSERT_EQ(EVP_DigestVerifyInit(md, NULL, NULL, NULL, idkey), 1);
    ASSERT_EQ(EVP_DigestVerify(md, p.sig, CHAN_SIG, th, 32), 1);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(idkey);

    /* shared = X25519(client ephemeral, server_key); keys = HKDF(shared, th). */
    peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, p.server_key, 32);
    ASSERT_NOT_NULL(peer);
    pctx = EVP_PKEY_CTX_new(p.c.eph, NULL);
    ASSERT_NOT_NULL(pctx);
    ASSERT_EQ(EVP_PKEY_derive_init(pctx), 1);
    ASSERT_EQ(EVP_PKEY_derive_set_peer(pctx, peer), 1);
    ASSERT_EQ(EVP_PKEY_derive(pctx, shared, &len), 1);
    EVP_PKEY_CTX_free(pctx);
    EVP_PKEY_free(peer);
    ref_hkdf(shared, th, okm);
    ASSERT_MEMEQ(p.cli.tx_key, okm, 32);
    ASSERT_MEMEQ(p.cli.rx_key, okm + 32, 32);
    ASSERT_MEMEQ(p.srv.rx_key, okm, 32);
    ASSERT_MEMEQ(p.srv.tx_key, okm + 32, 32);
    pair_close(&p);
}

/* Fixed vectors: client ephemeral = RFC 7748 §6.1 Alice, server ephemeral = Bob, identity
 * = RFC 8032 §7.1 TEST 1, client_random = 00..1f, server_random = 20..3f. th, signature,
 * keys and frames were computed with Python's cryptography/hashlib. */
#define KAT_ALICE_PRIV "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
#define KAT_ALICE_PUB "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
#define KAT_BOB_PUB "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
#define KAT_ID_PRIV "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
#define KAT_ID_PUB "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
#define KAT_TH "c672fb22e774252b7d1ae0b1592af221ca4e59dd9339d077c26d842185b97064"
#define KAT_SIG                                                                                    \
    "1d52aa76920cd229afd18a3eaa1385ad2b1538ebcb285bee8f9563cc767b0e15"                             \
    "0d02a243ec444bb249dfb2eab9fbed067a75889c886f9252e698be1603f27d0b"
#define KAT_C2S "1dd91c2e853a4d98d16f61cb11954980b33548bbd4a135ad1aa85e5e35ad5f4e"
#define KAT_S2C "11d08f551376e236eb001c58201400afb8ca3a259c3edb42443f693b59ee706d"
/* LOGIN frames with plaintext "hello", c→s counters 0 and 1. */
#define KAT_FRAME0 "0000001d000001012dc51864976c91e4dc3bdaeb8d8b9316032d27f67b"
#define KAT_FRAME1 "0000001d000001012d63b204a25e0787c4d01376e6f554ac26f7daf0b1"

typedef struct kat {
    uint8_t alice_priv[32], alice_pub[32], bob_pub[32], id_priv[32], id_pub[32];
    uint8_t th[32], sig[64], c2s[32], s2c[32], frame0[29], frame1[29];
    uint8_t crand[32], srand[32], hello[HELLO_LEN];
} kat_t;

static void kat_load(kat_t *k)
{
    unhex_n(KAT_ALICE_PRIV, k->alice_priv, 32);
    unhex_n(KAT_ALICE_PUB, k->alice_pub, 32);
    unhex_n(KAT_BOB_PUB, k->bob_pub, 32);
    unhex_n(KAT_ID_PRIV, k->id_priv, 32);
    unhex_n(KAT_ID_PUB, k->id_pub, 32);
    unhex_n(KAT_TH, k->th, 32);
    unhex_n(KAT_SIG, k->sig, 64);
    unhex_n(KAT_C2S, k->c2s, 32);
    unhex_n(KAT_S2C, k->s2c, 32);
    unhex_n(KAT_FRAME0, k->frame0, 29);
    unhex_n(KAT_FRAME1, k->frame1, 29);
    for (int i = 0; i < 32; i++) {
        k->crand[i] = (uint8_t)i;
        k->srand[i] = (uint8_t)(32 + i);
    }
    make_hello(k->hello, k->alice_pub, k->crand);
}

/* A chan_client_t whose ephemeral key is Alice's. */
static void kat_client(const kat_t *k, chan_client_t *c)
{
    uint8_t pub[32];
    size_t len = 32;

    memset(c, 0, sizeof(*c));
    c->eph = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, k->alice_priv, 32);
    ASSERT_NOT_NULL(c->eph);
    ASSERT_EQ(EVP_PKEY_get_raw_public_key(c->eph, pub, &len), 1);
    ASSERT_MEMEQ(pub, k->alice_pub, 32);
    memcpy(c->key, pub, 32);
    memcpy(c->random, k->crand, 32);
}

TEST(chan_known_answer)
{
    chan_ctx_t *ctx;
    chan_client_t c;
    chan_t cli, srv;
    uint8_t th[32], frame[29];
    kat_t k;

    ASSERT_OK(chan_global_init());
    kat_load(&k);
    /* The reference transcript helper agrees with the vector. */
    ref_transcript(k.hello, HELLO_LEN, k.bob_pub, k.srand, k.id_pub, th);
    ASSERT_MEMEQ(th, k.th, 32);

    kat_client(&k, &c);
    ASSERT_OK(chan_client_finish(&c, k.hello, HELLO_LEN, k.bob_pub, k.srand, k.id_pub, k.sig,
                                 k.id_pub, &cli));
    ASSERT_MEMEQ(cli.tx_key, k.c2s, 32);
    ASSERT_MEMEQ(cli.rx_key, k.s2c, 32);
    ASSERT_U64_EQ(cli.tx_ctr, 0);
    ASSERT_U64_EQ(cli.rx_ctr, 0);

    /* Sealed frames: nonce = 0000 || be64(counter), AAD = header. */
    ctx = chan_ctx_new();
    ASSERT_OK(chan_seal(ctx, &cli, FT_LOGIN, (const uint8_t *)"hello", 5, frame));
    ASSERT_MEMEQ(frame, k.frame0, 29);
    ASSERT_OK(chan_seal(ctx, &cli, FT_LOGIN, (const uint8_t *)"hello", 5, frame));
    ASSERT_MEMEQ(frame, k.frame1, 29);

    /* The server's view of the same keys opens the vector frames. */
    memcpy(srv.rx_key, k.c2s, 32);
    memcpy(srv.tx_key, k.s2c, 32);
    srv.rx_ctr = srv.tx_ctr = 0;
    memcpy(frame, k.frame0, 29);
    ASSERT_OK(chan_open(ctx, &srv, frame, 29));
    ASSERT_MEMEQ(frame + 8, "hello", 5);
    memcpy(frame, k.frame1, 29);
    ASSERT_OK(chan_open(ctx, &srv, frame, 29));
    ASSERT_MEMEQ(frame + 8, "hello", 5);
    chan_ctx_free(ctx);
    chan_client_close(&c);
}

/* Ed25519 is deterministic: the identity key signs th into exactly the vector's signature. */
TEST(chan_known_answer_signature)
{
    uint8_t sig[64];
    EVP_PKEY *idkey;
    kat_t k;

    kat_load(&k);
    idkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, k.id_priv, 32);
    ASSERT_NOT_NULL(idkey);
    ref_sign(idkey, k.th, sig);
    ASSERT_MEMEQ(sig, k.sig, 64);
    EVP_PKEY_free(idkey);
}

/* Seal one c→s frame of "payload" into @p frame; returns its length. */
static size_t seal_one(chan_ctx_t *ctx, pair_t *p, uint32_t type, const char *pt, uint8_t *frame)
{
    size_t n = strlen(pt);
    ASSERT_OK(chan_seal(ctx, &p->cli, type, (const uint8_t *)pt, n, frame));
    return FRAME_HDR + n + FRAME_TAG;
}

/* @p frame with byte @p at xor @p mask must fail to open, leave rx_ctr alone, and the
 * untouched frame must open afterwards. */
static void expect_tamper_fails(chan_ctx_t *ctx, pair_t *p, const uint8_t *frame, size_t len,
                                size_t at, uint8_t mask)
{
    uint8_t bad[256], good[256];
    uint64_t ctr = p->srv.rx_ctr;

    memcpy(bad, frame, len);
    memcpy(good, frame, len);
    bad[at] ^= mask;
    ASSERT_RC(chan_open(ctx, &p->srv, bad, len), RC_ECRYPTO);
    ASSERT_U64_EQ(p->srv.rx_ctr, ctr);
    /* No unauthenticated plaintext is left behind: the body is wiped, or still the
     * ciphertext when the frame was refused before decryption (a changed length). */
    for (size_t i = FRAME_HDR; i < len - FRAME_TAG; i++)
        ASSERT_TRUE(bad[i] == 0 || bad[i] == (uint8_t)(frame[i] ^ (i == at ? mask : 0)));
    ASSERT_OK(chan_open(ctx, &p->srv, good, len));
    ASSERT_U64_EQ(p->srv.rx_ctr, ctr + 1);
    p->srv.rx_ctr = ctr; /* let the caller reuse the frame */
}

TEST(chan_tampered_ciphertext)
{
    uint8_t frame[256];
    chan_ctx_t *ctx;
    size_t len;
    pair_t p;

    pair_open(&p);
    ctx = chan_ctx_new();
    len = seal_one(ctx, &p, FT_SEND, "some secret message", frame);
    for (size_t at = FRAME_HDR; at < len - FRAME_TAG; at++)
        expect_tamper_fails(ctx, &p, frame, len, at, 0x01);
    expect_tamper_fails(ctx, &p, frame, len, FRAME_HDR, 0x80);
    chan_ctx_free(ctx);
    pair_close(&p);
}

TEST(chan_tampered_tag)
{
    uint8_t frame[256];
    chan_ctx_t *ctx;
    size_t len;
    pair_t p;

    pair_open(&p);
    ctx = chan_ctx_new();
    len = seal_one(ctx, &p, FT_SEND, "some secret message", frame);
    for (size_t at = len - FRAME_TAG; at < len; at++)
        expect_tamper_fails(ctx, &p, frame, len, at, 0x40);
    chan_ctx_free(ctx);
    pair_close(&p);
}

TEST(chan_tampered_header)
{
    uint8_t frame[256], bad[256];
    chan_ctx_t *ctx;
    size_t len;
    pair_t p;

    pair_open(&p);
    ctx = chan_ctx_new();
    len = seal_one(ctx, &p, FT_SEND, "some secret message", frame);
    /* Every header byte: the type (SEND → another valid type too) and the length. */
    for (size_t at = 0; at < FRAME_HDR; at++)
        expect_tamper_fails(ctx, &p, frame, len, at, 0x01);
    expect_tamper_fails(ctx, &p, frame, len, 7, 0x01 ^ 0x02); /* 0x0201 → 0x0202 */

    /* A length field that agrees with the length passed, but not with what was sealed. */
    memcpy(bad, frame, len);
    bad[3] = (uint8_t)(len - 1);
    ASSERT_RC(chan_open(ctx, &p.srv, bad, len - 1), RC_ECRYPTO);
    ASSERT_U64_EQ(p.srv.rx_ctr, 0);
    chan_ctx_free(ctx);
    pair_close(&p);
}

TEST(chan_replayed_frame)
{
    uint8_t frame[256], copy[256];
    chan_ctx_t *ctx;
    size_t len;
    pair_t p;

    pair_open(&p);
    ctx = chan_ctx_new();
    len = seal_one(ctx, &p, FT_SEND, "pay me once", frame);
    memcpy(copy, frame, len);
    ASSERT_OK(chan_open(ctx, &p.srv, frame, len));
    ASSERT_RC(chan_open(ctx, &p.srv, copy, len), RC_ECRYPTO);
    ASSERT_U64_EQ(p.srv.rx_ctr, 1);
    /* The stream goes on with the next genuine frame. */
    len = seal_one(ctx, &p, FT_SEND, "next", frame);
    ASSERT_OK(chan_open(ctx, &p.srv, frame, len));
    ASSERT_U64_EQ(p.srv.rx_ctr, 2);
    chan_ctx_free(ctx);
    pair_close(&p);
}

TEST(chan_reordered_frames)
{
    uint8_t f0[256], f1[256], f1copy[256];
    chan_ctx_t *ctx;
    size_t l0, l1;
    pair_t p;

    pair_open(&p);
    ctx = chan_ctx_new();
    l0 = seal_one(ctx, &p, FT_SEND, "first", f0);
    l1 = seal_one(ctx, &p, FT_SEND, "second", f1);
    memcpy(f1copy, f1, l1);
    ASSERT_RC(chan_open(ctx, &p.srv, f1copy, l1), RC_ECRYPTO);
    ASSERT_U64_EQ(p.srv.rx_ctr, 0);
    ASSERT_OK(chan_open(ctx, &p.srv, f0, l0));
    ASSERT_MEMEQ(f0 + 8, "first", 5);
    ASSERT_OK(chan_open(ctx, &p.srv, f1, l1));
    ASSERT_MEMEQ(f1 + 8, "second", 6);
    /* A frame of one direction does not open in the other. */
    ASSERT_OK(chan_seal(ctx, &p.srv, FT_PONG, (const uint8_t *)"pong", 4, f0));
    memcpy(f1, f0, 28);
    ASSERT_RC(chan_open(ctx, &p.srv, f1, 28), RC_ECRYPTO);
    ASSERT_OK(chan_open(ctx, &p.cli, f0, 28));
    chan_ctx_free(ctx);
    pair_close(&p);
}

TEST(chan_wrong_pinned_key)
{
    uint8_t other[CHAN_KEY];
    chan_t untouched;
    pair_t p;

    pair_start(&p);
    memcpy(other, p.identity, CHAN_KEY);
    other[31] ^= 1;
    memset(&p.cli, 0xAB, sizeof(p.cli));
    untouched = p.cli;
    ASSERT_RC(pair_finish(&p, other), RC_EKEY);
    ASSERT_MEMEQ(&p.cli, &untouched, sizeof(untouched)); /* written only on success */
    /* Trust on first use (NULL) and the right pin both succeed. */
    ASSERT_OK(pair_finish(&p, NULL));
    ASSERT_OK(pair_finish(&p, p.identity));
    ASSERT_MEMEQ(p.cli.tx_key, p.srv.rx_key, CHAN_KEY);
    pair_close(&p);
}

TEST(chan_bad_signature)
{
    pair_t p;

    pair_start(&p);
    /* Any bit of the signature. */
    for (int i = 0; i < CHAN_SIG * 8; i += 7) {
        p.sig[i / 8] ^= (uint8_t)(1 << (i % 8));
        ASSERT_RC(pair_finish(&p, p.identity), RC_ECRYPTO);
        p.sig[i / 8] ^= (uint8_t)(1 << (i % 8));
    }
    /* Anything else the transcript covers. */
    p.server_random[0] ^= 1;
    ASSERT_RC(pair_finish(&p, p.identity), RC_ECRYPTO);
    p.server_random[0] ^= 1;
    p.server_key[5] ^= 1;
    ASSERT_RC(pair_finish(&p, p.identity), RC_ECRYPTO);
    p.server_key[5] ^= 1;
    p.hello[HELLO_LEN - 1] ^= 1;
    ASSERT_RC(pair_finish(&p, p.identity), RC_ECRYPTO);
    p.hello[HELLO_LEN - 1] ^= 1;
    /* A different identity, unpinned: its signature does not verify. */
    p.identity[0] ^= 1;
    ASSERT_RC(pair_finish(&p, NULL), RC_ECRYPTO);
    p.identity[0] ^= 1;
    ASSERT_OK(pair_finish(&p, p.identity));
    pair_close(&p);
}

/* X25519 public keys of small order (and non-canonical encodings of them): each gives an
 * all-zero shared secret with any private key. */
static const char *const low_order[] = {
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "0100000000000000000000000000000000000000000000000000000000000080",
};

TEST(chan_low_order_client_key_rejected)
{
    uint8_t key[CHAN_KEY], hello[HELLO_LEN], skey[CHAN_KEY], srand[CHAN_RANDOM];
    uint8_t sig[CHAN_SIG], rnd[CHAN_RANDOM] = {0};
    chan_identity_t *id;
    chan_t ch, untouched;

    ASSERT_OK(chan_global_init());
    id = chan_identity_generate();
    memset(&ch, 0x5A, sizeof(ch));
    untouched = ch;
    for (size_t i = 0; i < sizeof(low_order) / sizeof(low_order[0]); i++) {
        unhex_n(low_order[i], key, CHAN_KEY);
        make_hello(hello, key, rnd);
        ASSERT_RC(chan_server_handshake(id, hello, HELLO_LEN, key, skey, srand, sig, &ch),
                  RC_ECRYPTO);
        ASSERT_MEMEQ(&ch, &untouched, sizeof(ch));
    }
    chan_identity_free(id);
}

TEST(chan_low_order_server_key_rejected)
{
    uint8_t th[32], sig[CHAN_SIG], skey[CHAN_KEY];
    chan_client_t c;
    EVP_PKEY *idkey;
    chan_t ch;
    kat_t k;

    ASSERT_OK(chan_global_init());
    kat_load(&k);
    kat_client(&k, &c);
    idkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, k.id_priv, 32);
    ASSERT_NOT_NULL(idkey);
    /* A correctly signed ServerHello whose ephemeral key is of small order. */
    for (size_t i = 0; i < sizeof(low_order) / sizeof(low_order[0]); i++) {
        unhex_n(low_order[i], skey, CHAN_KEY);
        ref_transcript(k.hello, HELLO_LEN, skey, k.srand, k.id_pub, th);
        ref_sign(idkey, th, sig);
        ASSERT_RC(
            chan_client_finish(&c, k.hello, HELLO_LEN, skey, k.srand, k.id_pub, sig, k.id_pub, &ch),
            RC_ECRYPTO);
    }
    EVP_PKEY_free(idkey);
    chan_client_close(&c);
}

/* A fresh directory for key files; removed by rm_dir. */
static void tmp_dir(char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/cim-test-chan-XXXXXX");
    ASSERT_NOT_NULL(mkdtemp(dir));
}

static void rm_dir(const char *dir)
{
    char path[512];
    struct dirent *e;
    DIR *d = opendir(dir);

    ASSERT_NOT_NULL(d);
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        ASSERT_EQ(unlink(path), 0);
    }
    closedir(d);
    ASSERT_EQ(rmdir(dir), 0);
}

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    ASSERT_EQ(close(fd), 0);
}

TEST(chan_identity_file)
{
    char dir[64], path[128], pem[4096];
    uint8_t pub1[CHAN_KEY], pub2[CHAN_KEY], pub3[CHAN_KEY], raw[CHAN_KEY];
    chan_identity_t *id = NULL;
    bool created = false;
    EVP_PKEY *key;
    struct stat st;
    size_t len = CHAN_KEY;
    FILE *f;
    int fd;
    ssize_t n;

    ASSERT_OK(chan_global_init());
    tmp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/identity.key", dir);

    /* open never creates. */
    ASSERT_RC(chan_identity_open(path, &id), -ENOENT);
    ASSERT_NULL(id);
    ASSERT_EQ(stat(path, &st), -1);

    /* load creates, mode 0600, PEM PKCS#8, and says it did. */
    ASSERT_OK(chan_identity_load(path, &id, &created));
    ASSERT_TRUE(created);
    chan_identity_public(id, pub1);
    chan_identity_free(id);
    ASSERT_EQ(stat(path, &st), 0);
    ASSERT_TRUE(S_ISREG(st.st_mode));
    ASSERT_EQ(st.st_mode & 0777, 0600);
    fd = open(path, O_RDONLY);
    ASSERT_TRUE(fd >= 0);
    n = read(fd, pem, sizeof(pem) - 1);
    ASSERT_TRUE(n > 0);
    pem[n] = '\0';
    close(fd);
    ASSERT_TRUE(strncmp(pem, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);

    /* The file is what OpenSSL reads as that Ed25519 key. */
    f = fopen(path, "r");
    ASSERT_NOT_NULL(f);
    key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    ASSERT_NOT_NULL(key);
    ASSERT_EQ(EVP_PKEY_get_id(key), EVP_PKEY_ED25519);
    ASSERT_EQ(EVP_PKEY_get_raw_public_key(key, raw, &len), 1);
    ASSERT_MEMEQ(raw, pub1, CHAN_KEY);
    EVP_PKEY_free(key);

    /* Reloading, by either function, yields the same key and leaves the file alone. */
    ASSERT_OK(chan_identity_load(path, &id, &created));
    ASSERT_TRUE(!created);
    chan_identity_public(id, pub2);
    chan_identity_free(id);
    ASSERT_OK(chan_identity_open(path, &id));
    chan_identity_public(id, pub3);
    ASSERT_MEMEQ(pub1, pub2, CHAN_KEY);
    ASSERT_MEMEQ(pub1, pub3, CHAN_KEY);

    /* And it serves a handshake that a client pinned to it accepts. */
    {
        uint8_t hello[HELLO_LEN], skey[32], srand[32], sig[64];
        chan_client_t c;
        chan_t srv, cli;
        ASSERT_OK(chan_client_start(&c));
        make_hello(hello, c.key, c.random);
        ASSERT_OK(chan_server_handshake(id, hello, HELLO_LEN, c.key, skey, srand, sig, &srv));
        ASSERT_OK(chan_client_finish(&c, hello, HELLO_LEN, skey, srand, pub1, sig, pub1, &cli));
        ASSERT_MEMEQ(cli.tx_key, srv.rx_key, CHAN_KEY);
        chan_client_close(&c);
    }
    chan_identity_free(id);

    /* A key readable by others still loads (cimd warns). */
    ASSERT_EQ(chmod(path, 0644), 0);
    ASSERT_OK(chan_identity_open(path, &id));
    chan_identity_free(id);

    /* Never overwritten when it is not a usable key: garbage, empty, another algorithm. */
    id = NULL;
    write_file(path, "not a key\n");
    ASSERT_RC(chan_identity_load(path, &id, NULL), RC_ECRYPTO);
    write_file(path, "");
    ASSERT_RC(chan_identity_load(path, &id, NULL), RC_ECRYPTO);
    ASSERT_EQ(stat(path, &st), 0);
    ASSERT_EQ(st.st_size, 0);
    key = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    ASSERT_NOT_NULL(key);
    f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    ASSERT_EQ(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    EVP_PKEY_free(key);
    ASSERT_RC(chan_identity_load(path, &id, NULL), RC_ECRYPTO);
    ASSERT_NULL(id);

    /* A directory that does not exist: the file system's error. */
    snprintf(path, sizeof(path), "%s/missing/identity.key", dir);
    ASSERT_RC(chan_identity_load(path, &id, NULL), -ENOENT);
    ASSERT_NULL(id);
    rm_dir(dir);
}

TEST(chan_open_short_frame)
{
    uint8_t frame[FRAME_HDR + FRAME_TAG] = {0};
    chan_ctx_t *ctx;
    pair_t p;

    pair_open(&p);
    ctx = chan_ctx_new();
    for (size_t len = 0; len < FRAME_HDR + FRAME_TAG; len++) {
        frame_hdr_write(frame, (uint32_t)len, FT_SEND);
        ASSERT_RC(chan_open(ctx, &p.srv, frame, len), RC_ECRYPTO);
    }
    ASSERT_U64_EQ(p.srv.rx_ctr, 0);
    chan_ctx_free(ctx);
    pair_close(&p);
}

TEST(chan_empty_plaintext)
{
    uint8_t frame[FRAME_HDR + FRAME_TAG], copy[FRAME_HDR + FRAME_TAG];
    chan_ctx_t *ctx;
    uint32_t len, type;
    pair_t p;

    pair_open(&p);
    ctx = chan_ctx_new();
    ASSERT_OK(chan_seal(ctx, &p.cli, FT_PING, NULL, 0, frame));
    frame_hdr_read(frame, &len, &type);
    ASSERT_EQ(len, 24);
    ASSERT_EQ(type, FT_PING);
    memcpy(copy, frame, sizeof(frame));
    copy[FRAME_HDR] ^= 1; /* the tag alone authenticates an empty body */
    ASSERT_RC(chan_open(ctx, &p.srv, copy, 24), RC_ECRYPTO);
    ASSERT_OK(chan_open(ctx, &p.srv, frame, 24));
    ASSERT_U64_EQ(p.srv.rx_ctr, 1);
    ASSERT_OK(chan_seal(ctx, &p.srv, FT_PONG, (const uint8_t *)"", 0, frame));
    ASSERT_OK(chan_open(ctx, &p.cli, frame, 24));
    chan_ctx_free(ctx);
    pair_close(&p);
}

TEST(chan_ctx_shared_by_connections)
{
    chan_ctx_t *cctx, *sctx;
    uint8_t fa[64], fb[64], copy[64];
    pair_t a, b;

    /* One context per thread serves every connection: re-keyed per frame. */
    pair_open(&a);
    pair_open(&b);
    cctx = chan_ctx_new();
    sctx = chan_ctx_new();
    for (int i = 0; i < 5; i++) {
        seal_open(cctx, &a.cli, sctx, &a.srv, FT_SEND, "to a");
        seal_open(cctx, &b.cli, sctx, &b.srv, FT_SEND, "to b");
        seal_open(sctx, &b.srv, cctx, &b.cli, FT_PUSH, "from b");
        seal_open(sctx, &a.srv, cctx, &a.cli, FT_PUSH, "from a");
    }
    /* Interleaved seal/seal/open/open, and a frame of one connection in the other. */
    ASSERT_OK(chan_seal(cctx, &a.cli, FT_SEND, (const uint8_t *)"xa", 2, fa));
    ASSERT_OK(chan_seal(cctx, &b.cli, FT_SEND, (const uint8_t *)"xb", 2, fb));
    memcpy(copy, fa, 26); /* a failed open wipes the body in place */
    ASSERT_RC(chan_open(sctx, &b.srv, copy, 26), RC_ECRYPTO);
    ASSERT_OK(chan_open(sctx, &b.srv, fb, 26));
    ASSERT_OK(chan_open(sctx, &a.srv, fa, 26));
    ASSERT_MEMEQ(fa + 8, "xa", 2);
    ASSERT_MEMEQ(fb + 8, "xb", 2);
    chan_ctx_free(cctx);
    chan_ctx_free(sctx);
    pair_close(&a);
    pair_close(&b);
}

/* chan.c's slot of a serial (its KEYED_BITS and multiplier): for serials that share one. */
static unsigned keyed_slot(uint64_t serial)
{
    return (unsigned)((serial * 0x9e3779b97f4a7c15ULL) >> (64 - 12));
}

/* Another serial, far from any the handshakes give here, in the same slot as @p serial. */
static uint64_t colliding(uint64_t serial)
{
    uint64_t s = serial + ((uint64_t)1 << 40);

    while (keyed_slot(s) != keyed_slot(serial))
        s++;
    return s;
}

TEST(chan_keyed_contexts_shared_thrashed_forgotten)
{
    chan_ctx_t *cctx, *sctx;
    pair_t a, b;
    chan_t bare;

    /* A context keeps each connection's key in a slot: a busy one sets only its nonce. */
    pair_open(&a);
    pair_open(&b);
    ASSERT_TRUE(a.srv.serial != 0 && a.cli.serial != 0 && a.srv.serial != b.srv.serial);
    cctx = chan_ctx_new();
    sctx = chan_ctx_new();
    for (int i = 0; i < 3; i++) {
        seal_open(cctx, &a.cli, sctx, &a.srv, FT_SEND, "to a");
        seal_open(sctx, &a.srv, cctx, &a.cli, FT_PUSH, "from a");
    }
    /* Two connections in one slot take it from each other at every frame. */
    b.srv.serial = colliding(a.srv.serial);
    b.cli.serial = colliding(a.cli.serial);
    for (int i = 0; i < 5; i++) {
        seal_open(cctx, &a.cli, sctx, &a.srv, FT_SEND, "to a");
        seal_open(cctx, &b.cli, sctx, &b.srv, FT_SEND, "to b");
        seal_open(sctx, &b.srv, cctx, &b.cli, FT_PUSH, "from b");
        seal_open(sctx, &a.srv, cctx, &a.cli, FT_PUSH, "from a");
    }
    /* Forgotten (its connection closed): the next frame keys a fresh context. */
    chan_forget(sctx, &a.srv);
    chan_forget(sctx, &a.srv); /* twice is harmless */
    chan_forget(NULL, &a.srv);
    seal_open(cctx, &a.cli, sctx, &a.srv, FT_SEND, "after forget");
    seal_open(sctx, &a.srv, cctx, &a.cli, FT_PUSH, "after forget");
    /* Keys set by hand (no serial) use the shared context, re-keyed per frame. */
    bare = b.srv;
    bare.serial = 0;
    seal_open(cctx, &b.cli, sctx, &bare, FT_SEND, "no serial");
    seal_open(sctx, &bare, cctx, &b.cli, FT_PUSH, "no serial");
    seal_open(cctx, &a.cli, sctx, &a.srv, FT_SEND, "to a");
    chan_ctx_free(cctx);
    chan_ctx_free(sctx);
    pair_close(&a);
    pair_close(&b);
}

TEST(chan_hex_round_trip)
{
    uint8_t key[CHAN_KEY], back[CHAN_KEY];
    char hex[2 * CHAN_KEY + 1], bad[2 * CHAN_KEY + 2];

    for (int i = 0; i < CHAN_KEY; i++)
        key[i] = (uint8_t)(i * 8 + 0x0F);
    chan_hex(key, hex);
    ASSERT_STREQ(hex, "0f171f272f373f474f575f676f777f878f979fa7afb7bfc7cfd7dfe7eff7ff07");
    ASSERT_OK(chan_unhex(hex, back));
    ASSERT_MEMEQ(back, key, CHAN_KEY);

    /* Upper case is accepted on input. */
    ASSERT_OK(chan_unhex("0F171F272F373F474F575F676F777F878F979FA7AFB7BFC7CFD7DFE7EFF7FF07", back));
    ASSERT_MEMEQ(back, key, CHAN_KEY);

    /* Refused, and @p out left alone: short, long, a bad digit anywhere. */
    memset(back, 0x33, sizeof(back));
    ASSERT_RC(chan_unhex("", back), RC_EINVAL);
    ASSERT_RC(chan_unhex("0f17", back), RC_EINVAL);
    memcpy(bad, hex, sizeof(hex));
    bad[63] = '\0';
    ASSERT_RC(chan_unhex(bad, back), RC_EINVAL);
    memcpy(bad, hex, sizeof(hex));
    bad[64] = '0';
    bad[65] = '\0';
    ASSERT_RC(chan_unhex(bad, back), RC_EINVAL);
    for (int i = 0; i < 64; i++) {
        memcpy(bad, hex, sizeof(hex));
        bad[i] = (i % 2) ? 'g' : ' ';
        ASSERT_RC(chan_unhex(bad, back), RC_EINVAL);
    }
    for (int i = 0; i < CHAN_KEY; i++)
        ASSERT_EQ(back[i], 0x33);
}

TEST(chan_random_bytes)
{
    uint8_t a[64] = {0}, b[64] = {0}, zero[64] = {0};

    ASSERT_OK(chan_random(a, sizeof(a)));
    ASSERT_OK(chan_random(b, sizeof(b)));
    ASSERT_OK(chan_random(b, 0));
    ASSERT_TRUE(memcmp(a, b, sizeof(a)) != 0);
    ASSERT_TRUE(memcmp(a, zero, sizeof(a)) != 0);
}
