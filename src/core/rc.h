/**
 * rc: the project's error codes.
 *
 * Functions that can fail return int: 0 is success, a negative value an rc.
 * System failures are -errno (so libuv's UV_E* codes, which are -errno on Unix,
 * pass through unchanged). Project codes live in one reserved range,
 * -20000 .. -20999, far from any -errno, the trick LMDB uses to stay clear of
 * BerkeleyDB's codes. No MDB_* or OpenSSL value ever leaves kv or chan: those
 * modules translate at the boundary.
 *
 * Threading: everything here is pure and may be called from any thread.
 */
#ifndef CIM_CORE_RC_H
#define CIM_CORE_RC_H

#include <stddef.h>

#define RC_BASE      (-20000)
#define RC_EPROTO    (RC_BASE - 1)  /**< malformed frame or message, protocol violation */
#define RC_ETOOBIG   (RC_BASE - 2)  /**< a length over its cap */
#define RC_ENOTFOUND (RC_BASE - 3)  /**< the key, user or object does not exist */
#define RC_EFULL     (RC_BASE - 4)  /**< a bounded queue or table is full */
#define RC_ECLOSED   (RC_BASE - 5)  /**< the peer, actor or handle is closing */
#define RC_ECRYPTO   (RC_BASE - 6)  /**< a crypto operation failed (tag, signature, key) */
#define RC_EAUTH     (RC_BASE - 7)  /**< bad, expired or forged credentials */
#define RC_EINVAL    (RC_BASE - 8)  /**< an argument out of range or malformed */
#define RC_ESTORE    (RC_BASE - 9)  /**< storage failed (LMDB error other than the above) */
#define RC_EEXIST    (RC_BASE - 10) /**< the key or object already exists */
#define RC_EKEY      (RC_BASE - 11) /**< the peer's identity key is not the pinned one */
#define RC_ETIMEDOUT (RC_BASE - 12) /**< a deadline passed */
#define RC_EAGAIN    (RC_BASE - 13) /**< incomplete: call again with more input */
#define RC_EMAPFULL  (RC_BASE - 14) /**< the LMDB map is full (kv grows it and retries) */
#define RC_LAST      (RC_BASE - 15)

/**
 * Name an rc for logs and error messages.
 *
 * @param[in] rc  0, a project code, or a -errno value.
 * @return a static, NUL-terminated string; never NULL. Thread-safe.
 */
const char *rc_str(int rc);

/**
 * Say why something failed: format a one-line reason into @p err (when not NULL and
 * @p errlen > 0; truncated to fit) and return @p rc, for `return rc_msg(err, errlen,
 * RC_EINVAL, "bad value '%s' for %s", ...)`.
 * @return @p rc. Thread-safe.
 */
int rc_msg(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
