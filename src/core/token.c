#include "core/token.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/log.h"
#include "core/rc.h"

#define NAME_MAX_ 64 /* longest app or user */
#define MAC_LEN 32
#define MAC_B64 43       /* base64url of 32 bytes, no padding */
#define EXPIRY_DIGITS 19 /* INT64_MAX has 19 digits */

/* An app or user that can go into the HMAC input: 1..64 bytes, printable, no '|' (the
 * separator, which would make "a|b" + "c" and "a" + "b|c" the same input). */
static bool name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > NAME_MAX_)
        return false;
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e || *s == '|')
            return false;
    return true;
}

/* base64url without padding of the 32-byte MAC into out[MAC_B64 + 1]. */
static void b64url(const uint8_t mac[MAC_LEN], char out[MAC_B64 + 1])
{
    char std[4 * ((MAC_LEN + 2) / 3) + 1]; /* 44 + NUL */

    (void)EVP_EncodeBlock((unsigned char *)std, mac, MAC_LEN); /* returns the length, 44 */
    for (int i = 0; i < MAC_B64; i++)
        out[i] = std[i] == '+' ? '-' : std[i] == '/' ? '_' : std[i];
    out[MAC_B64] = '\0';
}

/* The MAC of ("v1|" app "|" user "|" expiry), base64url-encoded. */
static int mac_b64(const uint8_t secret[TOKEN_SECRET], const char *app, const char *user,
                   const char *expiry, char out[MAC_B64 + 1])
{
    char input[3 + NAME_MAX_ + 1 + NAME_MAX_ + 1 + EXPIRY_DIGITS + 1];
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    int n;

    n = snprintf(input, sizeof(input), "v1|%s|%s|%s", app, user, expiry);
    if (n < 0 || (size_t)n >= sizeof(input))
        return RC_EINVAL;
    if (HMAC(EVP_sha256(), secret, TOKEN_SECRET, (const unsigned char *)input, (size_t)n, mac,
             &maclen) == NULL ||
        maclen != MAC_LEN) {
        LOG_ERROR("token: HMAC-SHA256 failed");
        return RC_ECRYPTO;
    }
    b64url(mac, out);
    OPENSSL_cleanse(mac, sizeof(mac));
    return 0;
}

int token_mint(const uint8_t secret[TOKEN_SECRET], const char *app, const char *user,
               int64_t expiry, char *out, size_t outlen)
{
    char digits[EXPIRY_DIGITS + 1];
    char mac[MAC_B64 + 1];
    int n, rc;

    if (app == NULL || app[0] == '\0')
        app = "default";
    if (user == NULL || !name_ok(app) || !name_ok(user) || expiry < 0)
        return RC_EINVAL;
    (void)snprintf(digits, sizeof(digits), "%" PRId64, expiry); /* at most 19 digits */
    if ((rc = mac_b64(secret, app, user, digits, mac)) < 0)
        return rc;
    n = snprintf(out, outlen, "v1.%s.%s", digits, mac);
    if (n < 0 || (size_t)n >= outlen) {
        if (outlen > 0)
            out[0] = '\0';
        return RC_EINVAL;
    }
    return 0;
}

static bool b64url_char(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_';
}

/*
 * Strict parse of "v1." DIGITS "." MAC: DIGITS is the canonical decimal form of an int64
 * (1..19 digits, no sign, no leading zero except "0" itself), MAC exactly 43 base64url
 * characters whose last one carries no stray bits (the canonical encoding of 32 bytes).
 * Canonical forms mean one token text per (app, user, expiry).
 */
static int parse(const char *token, char digits[EXPIRY_DIGITS + 1], int64_t *expiry,
                 const char **mac)
{
    const char *p = token, *d;
    uint64_t v = 0;
    size_t n;

    if (strncmp(p, "v1.", 3) != 0)
        return RC_EINVAL;
    p += 3;
    d = p;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > INT64_MAX)
            return RC_EINVAL;
        p++;
    }
    n = (size_t)(p - d);
    if (n == 0 || n > EXPIRY_DIGITS || (d[0] == '0' && n > 1) || *p != '.')
        return RC_EINVAL;
    memcpy(digits, d, n);
    digits[n] = '\0';
    p++;
    for (n = 0; n < MAC_B64; n++)
        if (!b64url_char(p[n]))
            return RC_EINVAL;
    if (p[MAC_B64] != '\0' || strchr("AEIMQUYcgkosw048", p[MAC_B64 - 1]) == NULL)
        return RC_EINVAL; /* longer, or the last character has bits beyond the 256th */
    *expiry = (int64_t)v;
    *mac = p;
    return 0;
}

int token_verify(const uint8_t secret[TOKEN_SECRET], const char *app, const char *user,
                 const char *token, int64_t now)
{
    char digits[EXPIRY_DIGITS + 1];
    char want[MAC_B64 + 1];
    const char *mac = NULL;
    int64_t expiry = 0;
    int rc;

    if (token == NULL || (rc = parse(token, digits, &expiry, &mac)) < 0)
        return RC_EINVAL;
    if (app == NULL || app[0] == '\0')
        app = "default";
    /* No token is ever minted for such a name, so nothing can match it. */
    if (user == NULL || !name_ok(app) || !name_ok(user))
        return RC_EAUTH;
    if ((rc = mac_b64(secret, app, user, digits, want)) < 0)
        return rc;
    /* Compare the encodings in constant time: equal iff the MACs are (parse() admits only
     * the canonical encoding). */
    if (CRYPTO_memcmp(want, mac, MAC_B64) != 0)
        return RC_EAUTH;
    if (expiry < now)
        return RC_EAUTH;
    return 0;
}

int token_expiry(const char *token, int64_t *expiry)
{
    char digits[EXPIRY_DIGITS + 1];
    const char *mac = NULL;
    return token == NULL ? RC_EINVAL : parse(token, digits, expiry, &mac);
}
