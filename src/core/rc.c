#include "core/rc.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *rc_str(int rc)
{
    switch (rc) {
    case 0: return "ok";
    case RC_EPROTO: return "protocol error";
    case RC_ETOOBIG: return "too large";
    case RC_ENOTFOUND: return "not found";
    case RC_EFULL: return "queue full";
    case RC_ECLOSED: return "closed";
    case RC_ECRYPTO: return "crypto failure";
    case RC_EAUTH: return "authentication failed";
    case RC_EINVAL: return "invalid argument";
    case RC_ESTORE: return "storage error";
    case RC_EEXIST: return "already exists";
    case RC_EKEY: return "server identity key does not match the pinned key";
    case RC_ETIMEDOUT: return "timed out";
    case RC_EAGAIN: return "incomplete";
    case RC_EMAPFULL: return "storage map full";
    default: break;
    }
    if (rc < 0 && rc > -4096)
        return strerrordesc_np(-rc) ? strerrordesc_np(-rc) : "unknown system error";
    return "unknown error";
}

int rc_msg(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        (void)vsnprintf(err, errlen, fmt, ap); /* truncation is fine for a message */
        va_end(ap);
    }
    return rc;
}
