/* libFuzzer target fuzz_token: login tokens (src/core/token.c, PROTOCOL.md §6).
 *
 * Input: [mode u8][x i64][y i64][strings], big-endian; the strings are split at NUL bytes
 * into app, user and a third string (missing ones are empty; each is cut at 200 bytes).
 *
 *   mode even  parse: token_verify(secret, app, user, TOKEN = the third string, now = x).
 *              Oracle: an independent model of the strict syntax ("v1." canonical decimal
 *              int64 "." 43 base64url characters that encode exactly 32 bytes) says
 *              RC_EINVAL exactly when token_verify does; a token accepted (0) is exactly
 *              what token_mint makes for its app, user and expiry, with expiry >= now.
 *   mode odd   round trip: expiry = x & INT64_MAX, now = y. token_mint(app, user, expiry)
 *              succeeds exactly when the model says app and user can be minted for (1..64
 *              printable ASCII bytes, no '|'; an empty app is "default"); then the token
 *              verifies at now exactly when expiry >= now, fails for another user, and
 *              every edit of it (the third string's bytes as (position, value) pairs:
 *              value 0 deletes the character there, others replace it, a position past
 *              the end appends) that changes its text fails. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rc.h"
#include "core/token.h"
#include "fuzz/targets.h"

#define STR_MAX 200 /* longer than any valid app, user or token */
#define HDR_IN  17

/* Any fixed secret: the app's 32 raw bytes. */
static const uint8_t secret[TOKEN_SECRET] = {0x5a, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07};

static __attribute__((format(printf, 1, 2), noreturn)) void fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "fuzz_token: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    abort();
}

static int64_t get_i64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return (int64_t)v;
}

/* Copy the next NUL-terminated piece of [*p, end) into out (at most STR_MAX bytes). */
static void next_str(const uint8_t **p, const uint8_t *end, char out[STR_MAX + 1])
{
    size_t n = 0;

    while (*p < end && **p != 0) {
        if (n < STR_MAX)
            out[n++] = (char)**p;
        (*p)++;
    }
    if (*p < end)
        (*p)++; /* the NUL */
    out[n] = '\0';
}

/* ---- the model ---------------------------------------------------------------------- */

static bool model_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n < 1 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '!' || s[i] > '~' || s[i] == '|')
            return false;
    return true;
}

static bool is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* The 6-bit value of a base64url character. */
static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '-' ? 62 : 63;
}

/* The syntax of PROTOCOL.md §6 as token.h states it, written without looking at the
 * parser: @return true when well formed (then *expiry is set). */
static bool model_syntax(const char *t, int64_t *expiry)
{
    const char *d, *mac;
    size_t nd = 0;
    uint64_t v = 0;

    if (strncmp(t, "v1.", 3) != 0)
        return false;
    d = t + 3;
    while (d[nd] >= '0' && d[nd] <= '9')
        nd++;
    if (nd == 0 || nd > 19 || (nd > 1 && d[0] == '0') || d[nd] != '.')
        return false;
    for (size_t i = 0; i < nd; i++) /* 19 digits fit in a u64 */
        v = v * 10 + (uint64_t)(d[i] - '0');
    if (v > (uint64_t)INT64_MAX)
        return false;
    mac = d + nd + 1;
    if (strlen(mac) != 43)
        return false;
    for (int i = 0; i < 43; i++)
        if (!is_b64url(mac[i]))
            return false;
    /* 43 characters carry 258 bits: the last one's low 2 bits lie past the 256th. */
    if ((b64val(mac[42]) & 3) != 0)
        return false;
    *expiry = (int64_t)v;
    return true;
}

/* ---- the two modes ------------------------------------------------------------------ */

static void parse_mode(const char *app, const char *user, const char *tok, int64_t now)
{
    char minted[TOKEN_MAX];
    int64_t expiry = 0;
    bool wf = model_syntax(tok, &expiry);
    int rc = token_verify(secret, app, user, tok, now);

    if ((rc == RC_EINVAL) != !wf)
        fail("token_verify(\"%s\") = %s, the model says %s", tok, rc_str(rc),
             wf ? "well formed" : "malformed");
    if (rc != 0 && rc != RC_EINVAL && rc != RC_EAUTH)
        fail("token_verify returned %s", rc_str(rc));
    if (rc == 0) {
        if (expiry < now)
            fail("expired token accepted: expiry %" PRId64 " < now %" PRId64, expiry, now);
        if (token_mint(secret, app, user, expiry, minted, sizeof(minted)) != 0 ||
            strcmp(minted, tok) != 0)
            fail("accepted token \"%s\" is not the one minted for it", tok);
    }
}

static void round_trip(const char *app, const char *user, const uint8_t *edits, size_t nedits,
                       int64_t expiry, int64_t now)
{
    char tok[TOKEN_MAX], other[STR_MAX + 2], edited[TOKEN_MAX + 4];
    bool can = model_name_ok(app[0] ? app : "default") && model_name_ok(user);
    int rc = token_mint(secret, app, user, expiry, tok, sizeof(tok));
    size_t len;

    if (rc != (can ? 0 : RC_EINVAL))
        fail("token_mint(app \"%s\", user \"%s\") = %s, the model says %s", app, user, rc_str(rc),
             can ? "valid" : "invalid");
    if (rc != 0)
        return;
    rc = token_verify(secret, app, user, tok, now);
    if (rc != (expiry >= now ? 0 : RC_EAUTH))
        fail("fresh token \"%s\" at now %" PRId64 ": %s", tok, now, rc_str(rc));
    snprintf(other, sizeof(other), "%sx", user);
    if (token_verify(secret, app, other, tok, INT64_MIN) == 0)
        fail("token of \"%s\" accepted for \"%s\"", user, other);
    /* An empty app is "default" everywhere, the HMAC input included. */
    if (app[0] == '\0' && token_verify(secret, "default", user, tok, INT64_MIN) != 0)
        fail("token minted for app \"\" refused for \"default\"");
    len = strlen(tok);
    memcpy(edited, tok, len + 1);
    for (size_t i = 0; i + 1 < nedits; i += 2) {
        size_t pos = edits[i] % (len + 1);
        char c = (char)edits[i + 1];
        if (c == 0 && pos < len) {
            memmove(edited + pos, edited + pos + 1, len - pos);
            len--;
        } else if (c != 0 && pos < len) {
            edited[pos] = c;
        } else if (c != 0 && len + 1 < sizeof(edited)) {
            edited[len++] = c;
            edited[len] = '\0';
        }
    }
    rc = token_verify(secret, app, user, edited, INT64_MIN);
    if (strcmp(edited, tok) != 0 && rc == 0)
        fail("edited token \"%s\" accepted (minted \"%s\")", edited, tok);
    if (strcmp(edited, tok) == 0 && rc != 0)
        fail("unedited token refused: %s", rc_str(rc));
}

int fuzz_token_input(const uint8_t *data, size_t size)
{
    char app[STR_MAX + 1], user[STR_MAX + 1], third[STR_MAX + 1];
    const uint8_t *p = data + HDR_IN, *end = data + size, *edits;
    int64_t x, y;

    if (size < HDR_IN)
        return 0;
    x = get_i64(data + 1);
    y = get_i64(data + 9);
    next_str(&p, end, app);
    next_str(&p, end, user);
    if (data[0] & 1) {
        edits = p; /* raw bytes: the edits may hold NULs */
        round_trip(app, user, edits, (size_t)(end - edits), x & INT64_MAX, y);
    } else {
        next_str(&p, end, third);
        parse_mode(app, user, third, x);
    }
    return 0;
}

#ifdef CIM_FUZZ_TARGET
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_token_input(data, size);
}
#endif
