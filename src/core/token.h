/**
 * token: app-minted login tokens, PROTOCOL.md §6.
 *
 *   token = "v1." expiry "." base64url_nopad(HMAC-SHA256(secret, "v1|" app "|" user "|" expiry))
 *
 * expiry is a decimal Unix time in seconds; the HMAC key is the app's 32 raw secret
 * bytes. An empty app is "default" everywhere, the HMAC input included. Verification
 * compares the MAC in constant time.
 *
 * Threading: pure functions, any thread.
 */
#ifndef CIM_CORE_TOKEN_H
#define CIM_CORE_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define TOKEN_SECRET 32 /**< app secret bytes */
#define TOKEN_MAX 128   /**< longest token produced (v1. + 20 digits + . + 43) plus NUL */

/**
 * Mint a token.
 * @param[out] out     at least TOKEN_MAX bytes; NUL-terminated on success.
 * @return 0, or RC_EINVAL (app or user empty or over 64 bytes, @p outlen too small),
 *         RC_ECRYPTO.
 */
int token_mint(const uint8_t secret[TOKEN_SECRET], const char *app, const char *user,
               int64_t expiry, char *out, size_t outlen);

/**
 * Check a token for (@p app, @p user) at time @p now (Unix seconds).
 * @return 0 valid, or
 *         RC_EINVAL  malformed (not "v1.<digits>.<43 base64url chars>"),
 *         RC_EAUTH   expired (expiry < now) or MAC mismatch (forged, other app or user).
 */
int token_verify(const uint8_t secret[TOKEN_SECRET], const char *app, const char *user,
                 const char *token, int64_t now);

#endif
