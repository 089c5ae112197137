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
 * @param[in]  app     the app; NULL or "" means "default".
 * @param[in]  user    the user id.
 * @param[in]  expiry  Unix seconds, >= 0.
 * @param[out] out     at least TOKEN_MAX bytes; NUL-terminated on success.
 * @return 0, or RC_EINVAL (user empty, app or user over 64 bytes or holding a byte outside
 *         printable ASCII or a '|' — the HMAC input's separator —, expiry negative,
 *         @p outlen too small), RC_ECRYPTO (OpenSSL failed; logged).
 */
int token_mint(const uint8_t secret[TOKEN_SECRET], const char *app, const char *user,
               int64_t expiry, char *out, size_t outlen);

/**
 * Check a token for (@p app, @p user) at time @p now (Unix seconds).
 * Parsing is strict: "v1.", the expiry as canonical decimal (1..19 digits, no sign, no
 * leading zero, at most INT64_MAX), ".", exactly 43 base64url characters forming the
 * canonical encoding of 32 bytes, and nothing after. A token expiring at @p now is still
 * valid.
 *
 * @param[in] app  NULL or "" means "default".
 * @return 0 valid, or
 *         RC_EINVAL  malformed (not "v1.<digits>.<43 base64url chars>"),
 *         RC_EAUTH   expired (expiry < now) or MAC mismatch (forged, other app or user;
 *                    also an app or user no token can be minted for),
 *         RC_ECRYPTO OpenSSL failed (logged).
 */
int token_verify(const uint8_t secret[TOKEN_SECRET], const char *app, const char *user,
                 const char *token, int64_t now);

/**
 * The expiry a well-formed token carries (not verified: call token_verify first).
 * @return 0, or RC_EINVAL (malformed).
 */
int token_expiry(const char *token, int64_t *expiry);

#endif
