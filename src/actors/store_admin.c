/* store_admin: the writes only the admin API asks for (docs/ADMIN-API.md): create,
 * disable or enable a user, revoke a user's tokens. Sessions of a disabled user are
 * closed by the admin thread after the commit; logins check the record (session_auth.c,
 * and the store's own LOGIN step). */
#include <string.h>

#include "actors/store_int.h"
#include "cim.pb.h"
#include "core/rc.h"

int store__admin_op(kv_txn_t *txn, store_op_t *op)
{
    kv_user_t u;
    bool changed = false;
    int rc = kv_user_info(txn, op->app, op->target, &u);

    if (rc == RC_ENOTFOUND && op->type == STORE_OP_USER_REVOKE) {
        op->code = cim_Code_NOT_FOUND;
        snprintf(op->reason, sizeof(op->reason), "unknown user");
        return 0;
    }
    if (rc == RC_ENOTFOUND) {
        memset(&u, 0, sizeof(u));
        u.created_ms = snowflake_now_ms();
        op->created = changed = true;
    } else if (rc < 0) {
        return rc;
    }
    if (op->type == STORE_OP_USER_PUT && op->disabled >= 0 && u.disabled != (op->disabled > 0)) {
        u.disabled = op->disabled > 0;
        changed = true;
    }
    if (op->type == STORE_OP_USER_REVOKE && op->arg > u.tokens_before_s) {
        u.tokens_before_s = op->arg;
        changed = true;
    }
    /* An unchanged record is not rewritten: no page dirtied for a repeated PUT. */
    if (changed && (rc = kv_user_put(txn, op->app, op->target, &u)) < 0)
        return rc;
    op->urec = u;
    op->code = cim_Code_OK;
    return 0;
}
