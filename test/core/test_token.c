/* token: PROTOCOL.md §6 tokens: mint, verify, strict parsing, known vectors. */
#include "core/token.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "support/test.h"

#define NOW 1767225600LL /* 2026-01-01T00:00:00Z */

static void secret_a(uint8_t s[TOKEN_SECRET])
{
    for (int i = 0; i < TOKEN_SECRET; i++)
        s[i] = (uint8_t)i;
}

static void secret_b(uint8_t s[TOKEN_SECRET])
{
    for (int i = 0; i < TOKEN_SECRET; i++)
        s[i] = (uint8_t)(0xff - i);
}

/* An independent base64url (no padding) encoder, bit by bit. */
static void b64url_ref(const uint8_t *in, size_t n, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            out[o++] = abc[(acc >> (bits - 6)) & 63];
            bits -= 6;
        }
    }
    if (bits > 0)
        out[o++] = abc[(acc << (6 - bits)) & 63];
    out[o] = '\0';
}

/* The token as PROTOCOL.md §6 spells it, computed with OpenSSL's HMAC directly. */
static void token_ref(const uint8_t secret[TOKEN_SECRET], const char *app, const char *user,
                      int64_t expiry, char *out, size_t outlen)
{
    char input[256], b64[64];
    uint8_t mac[32];
    unsigned int maclen = 0;
    int n = snprintf(input, sizeof(input), "v1|%s|%s|%" PRId64, app, user, expiry);

    ASSERT_NOT_NULL(
        HMAC(EVP_sha256(), secret, TOKEN_SECRET, (const uint8_t *)input, (size_t)n, mac, &maclen));
    ASSERT_EQ(maclen, 32);
    b64url_ref(mac, sizeof(mac), b64);
    ASSERT_EQ(strlen(b64), 43);
    snprintf(out, outlen, "v1.%" PRId64 ".%s", expiry, b64);
}

TEST(token_known_vectors)
{
    uint8_t sa[TOKEN_SECRET], sb[TOKEN_SECRET];
    char tok[TOKEN_MAX], ref[TOKEN_MAX];

    secret_a(sa);
    secret_b(sb);
    /* Computed outside the project (Python hmac + base64.urlsafe_b64encode):
     * HMAC-SHA256(00 01 .. 1f, "v1|default|alice|1767225600"). */
    ASSERT_OK(token_mint(sa, "", "alice", NOW, tok, sizeof(tok)));
    ASSERT_STREQ(tok, "v1.1767225600.sqxpGMhlbO8GYNi1S8wFSmkBhvxkWxdg7MIDHNtjB88");
    token_ref(sa, "default", "alice", NOW, ref, sizeof(ref));
    ASSERT_STREQ(tok, ref);
    /* HMAC-SHA256(ff fe .. e0, "v1|chat-app|bob@x.y|4102444800"): '-' and '_' appear. */
    ASSERT_OK(token_mint(sb, "chat-app", "bob@x.y", 4102444800LL, tok, sizeof(tok)));
    ASSERT_STREQ(tok, "v1.4102444800.uKJVBlkj2vtf_DngC76Hv-Ka-feWJWv8_QimQeTBsik");
    token_ref(sb, "chat-app", "bob@x.y", 4102444800LL, ref, sizeof(ref));
    ASSERT_STREQ(tok, ref);
    ASSERT_OK(token_verify(sb, "chat-app", "bob@x.y", tok, NOW));

    /* More layouts against the reference: expiry 0, the largest expiry, long names. */
    const char *user64 = "u123456789012345678901234567890123456789012345678901234567890123";
    ASSERT_EQ(strlen(user64), 64);
    static const int64_t expiries[] = {0, 1, 99, NOW, INT64_MAX};
    for (size_t i = 0; i < sizeof(expiries) / sizeof(expiries[0]); i++) {
        ASSERT_OK(token_mint(sa, user64, user64, expiries[i], tok, sizeof(tok)));
        token_ref(sa, user64, user64, expiries[i], ref, sizeof(ref));
        ASSERT_STREQ(tok, ref);
        ASSERT_TRUE(strlen(tok) < TOKEN_MAX);
    }
}

TEST(token_valid_and_expired)
{
    uint8_t s[TOKEN_SECRET];
    char tok[TOKEN_MAX];

    secret_a(s);
    ASSERT_OK(token_mint(s, "default", "alice", NOW + 3600, tok, sizeof(tok)));
    ASSERT_OK(token_verify(s, "default", "alice", tok, NOW));
    ASSERT_OK(token_verify(s, "default", "alice", tok, NOW + 3600)); /* the last second */
    ASSERT_RC(token_verify(s, "default", "alice", tok, NOW + 3601), RC_EAUTH);
    ASSERT_RC(token_verify(s, "default", "alice", tok, INT64_MAX), RC_EAUTH);
    ASSERT_OK(token_mint(s, "default", "alice", 0, tok, sizeof(tok)));
    ASSERT_TRUE(strncmp(tok, "v1.0.", 5) == 0);
    ASSERT_OK(token_verify(s, "default", "alice", tok, 0));
    ASSERT_RC(token_verify(s, "default", "alice", tok, 1), RC_EAUTH);
}

TEST(token_wrong_app_user_secret)
{
    uint8_t s[TOKEN_SECRET], other[TOKEN_SECRET];
    char tok[TOKEN_MAX];

    secret_a(s);
    secret_b(other);
    ASSERT_OK(token_mint(s, "app1", "alice", NOW + 60, tok, sizeof(tok)));
    ASSERT_OK(token_verify(s, "app1", "alice", tok, NOW));
    ASSERT_RC(token_verify(s, "app2", "alice", tok, NOW), RC_EAUTH);
    ASSERT_RC(token_verify(s, "default", "alice", tok, NOW), RC_EAUTH);
    ASSERT_RC(token_verify(s, "", "alice", tok, NOW), RC_EAUTH);
    ASSERT_RC(token_verify(s, "app1", "alicf", tok, NOW), RC_EAUTH);
    ASSERT_RC(token_verify(s, "app1", "alice2", tok, NOW), RC_EAUTH);
    ASSERT_RC(token_verify(s, "app1", "", tok, NOW), RC_EAUTH);
    ASSERT_RC(token_verify(other, "app1", "alice", tok, NOW), RC_EAUTH);
    /* The separator keeps app and user apart: "ab"+"c" is not "a"+"bc". */
    ASSERT_OK(token_mint(s, "ab", "c", NOW, tok, sizeof(tok)));
    ASSERT_RC(token_verify(s, "a", "bc", tok, NOW), RC_EAUTH);
}

TEST(token_empty_app_is_default)
{
    uint8_t s[TOKEN_SECRET];
    char a[TOKEN_MAX], b[TOKEN_MAX];

    secret_a(s);
    ASSERT_OK(token_mint(s, "", "alice", NOW, a, sizeof(a)));
    ASSERT_OK(token_mint(s, "default", "alice", NOW, b, sizeof(b)));
    ASSERT_STREQ(a, b);
    ASSERT_OK(token_mint(s, NULL, "alice", NOW, b, sizeof(b)));
    ASSERT_STREQ(a, b);
    /* Minted with "" verifies as "default", and the other way round. */
    ASSERT_OK(token_verify(s, "default", "alice", a, NOW));
    ASSERT_OK(token_verify(s, "", "alice", b, NOW));
    ASSERT_OK(token_verify(s, NULL, "alice", b, NOW));
}

/* @p pattern with its "%s" (if any) replaced by @p mac. */
static void subst(char *out, size_t outlen, const char *pattern, const char *mac)
{
    const char *at = strstr(pattern, "%s");

    if (at == NULL)
        snprintf(out, outlen, "%s", pattern);
    else
        snprintf(out, outlen, "%.*s%s%s", (int)(at - pattern), pattern, mac, at + 2);
}

TEST(token_malformed)
{
    uint8_t s[TOKEN_SECRET];
    char tok[TOKEN_MAX], bad[2 * TOKEN_MAX];
    const char *mac;

    secret_a(s);
    ASSERT_OK(token_mint(s, "default", "alice", NOW + 60, tok, sizeof(tok)));
    mac = strrchr(tok, '.') + 1;
    ASSERT_EQ(strlen(mac), 43);

    static const char *const cases[] = {
        "",
        "v1",
        "v1.",
        "v1..",
        "v1.1767225660",
        "v1.1767225660.",
        "v1.1767225660",
        ".1767225660.%s",
        "1767225660.%s",
        "v2.1767225660.%s",
        "V1.1767225660.%s",
        "v1 .1767225660.%s",
        "v1..%s",
        "v1.+1767225660.%s",
        "v1.-1767225660.%s",
        "v1. 1767225660.%s",
        "v1.1767225660 .%s",
        "v1.01767225660.%s",
        "v1.0x69.%s",
        "v1.17672256a0.%s",
        "v1.1767225660e0.%s",
        "v1.9223372036854775808.%s",  /* INT64_MAX + 1 */
        "v1.99999999999999999999.%s", /* 20 digits */
        "v1.1767225660.%s=",          /* padding */
        "v1.1767225660.%s.",
        "v1.1767225660.%sA", /* 44 characters */
        "v1.1767225660..%s",
        "v1.1767225660;%s",
        "v1.1767225660.%s\n",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        subst(bad, sizeof(bad), cases[i], mac);
        int rc = token_verify(s, "default", "alice", bad, NOW);
        if (rc != RC_EINVAL)
            TEST_FAIL_("case %zu \"%s\": got %d (%s), want RC_EINVAL", i, bad, rc, rc_str(rc));
    }
    ASSERT_RC(token_verify(s, "default", "alice", NULL, NOW), RC_EINVAL);

    /* Wrong MAC lengths: 42 characters, 0 characters. */
    snprintf(bad, sizeof(bad), "v1.1767225660.%.42s", mac);
    ASSERT_RC(token_verify(s, "default", "alice", bad, NOW), RC_EINVAL);
    /* Characters outside base64url, at every position. */
    static const char badch[] = "+/=.! ~\x01\x7f\xc3";
    for (size_t i = 0; i < 43; i++) {
        for (size_t k = 0; k < sizeof(badch) - 1; k++) {
            snprintf(bad, sizeof(bad), "%s", tok);
            bad[strlen(bad) - 43 + i] = badch[k];
            ASSERT_RC(token_verify(s, "default", "alice", bad, NOW), RC_EINVAL);
        }
    }
    /* A last character with stray low bits is not the canonical encoding of 32 bytes. */
    snprintf(bad, sizeof(bad), "%s", tok);
    char *last = bad + strlen(bad) - 1;
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int v = (int)(strchr(b64, *last) - b64);
    *last = b64[v | 1];
    ASSERT_RC(token_verify(s, "default", "alice", bad, NOW), RC_EINVAL);
}

TEST(token_forged)
{
    uint8_t s[TOKEN_SECRET];
    char tok[TOKEN_MAX], bad[TOKEN_MAX];
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    secret_a(s);
    ASSERT_OK(token_mint(s, "default", "alice", NOW + 60, tok, sizeof(tok)));
    size_t len = strlen(tok);
    /* Any single MAC character changed to another valid one (the last one only to values
     * that keep the encoding canonical): a forgery. */
    for (size_t i = len - 43; i < len; i++) {
        for (int k = 0; k < 64; k++) {
            if (b64[k] == tok[i] || (i == len - 1 && (k & 3) != 0))
                continue;
            memcpy(bad, tok, len + 1);
            bad[i] = b64[k];
            int rc = token_verify(s, "default", "alice", bad, NOW);
            if (rc != RC_EAUTH)
                TEST_FAIL_("%s: got %d, want RC_EAUTH", bad, rc);
        }
    }
    /* A later expiry with the old MAC: a forgery, not an extension. */
    snprintf(bad, sizeof(bad), "v1.%lld.%s", NOW + 61, strrchr(tok, '.') + 1);
    ASSERT_RC(token_verify(s, "default", "alice", bad, NOW), RC_EAUTH);
}

TEST(token_mint_limits)
{
    uint8_t s[TOKEN_SECRET];
    char tok[TOKEN_MAX];
    char name65[66];

    secret_a(s);
    memset(name65, 'a', 65);
    name65[65] = '\0';
    ASSERT_RC(token_mint(s, "default", "", NOW, tok, sizeof(tok)), RC_EINVAL);
    ASSERT_RC(token_mint(s, "default", NULL, NOW, tok, sizeof(tok)), RC_EINVAL);
    ASSERT_RC(token_mint(s, "default", name65, NOW, tok, sizeof(tok)), RC_EINVAL);
    ASSERT_RC(token_mint(s, name65, "alice", NOW, tok, sizeof(tok)), RC_EINVAL);
    ASSERT_RC(token_mint(s, "default", "a|b", NOW, tok, sizeof(tok)), RC_EINVAL);
    ASSERT_RC(token_mint(s, "a|b", "alice", NOW, tok, sizeof(tok)), RC_EINVAL);
    ASSERT_RC(token_mint(s, "default", "al ice", NOW, tok, sizeof(tok)), RC_EINVAL);
    ASSERT_RC(token_mint(s, "default", "alice", -1, tok, sizeof(tok)), RC_EINVAL);
    name65[64] = '\0';
    ASSERT_OK(token_mint(s, name65, name65, INT64_MAX, tok, sizeof(tok)));
    /* The output buffer: exactly the token plus its NUL fits, one byte less does not. */
    size_t need = strlen(tok) + 1;
    char small[TOKEN_MAX];
    ASSERT_OK(token_mint(s, name65, name65, INT64_MAX, small, need));
    ASSERT_STREQ(small, tok);
    ASSERT_RC(token_mint(s, name65, name65, INT64_MAX, small, need - 1), RC_EINVAL);
    ASSERT_OK(token_verify(s, name65, name65, tok, NOW));
}
