/**
 * send: the rules of a SEND that do not depend on who asks — a session (session_msg.c)
 * or the app's backend through the admin API (admin_api.c, POST .../messages) — and the
 * routing of transient messages, which are never stored.
 *
 * Threading: any thread that may open read transactions (workers, the admin thread).
 */
#ifndef CIM_ACTORS_SEND_H
#define CIM_ACTORS_SEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actors/dedup.h"
#include "actors/server.h"
#include "actors/store.h"

/* The answer to a resend of a message stored but not in every timeline yet (in a
 * cluster: PROTOCOL-NOTES 27), SERVER_BUSY. */
#define SEND_NOT_APPLIED "the message is stored but not yet in every timeline; retry with " \
                         "the same client_msg_id"

/**
 * Can @p from send to @p to (a user id for DIRECT, a group id for GROUP)? In one short
 * read transaction:
 *  - a stored @p cmid of @p from (non-empty) is a resend: its id in @p prior, and
 *    nothing else is judged (the first send was accepted);
 *  - DIRECT: the recipient exists (NOT_FOUND) and has not blocked @p from (BLOCKED);
 *  - GROUP: the group exists and lives (NOT_FOUND) and @p from is a member (NOT_MEMBER).
 * With @p system (the admin API's SYSTEM messages) blocks and membership do not apply;
 * existence does. The store checks group membership again in its own order.
 * A resend of a message committed here but not in its timelines yet (a cluster's) is
 * refused SERVER_BUSY, SEND_NOT_APPLIED, with @p prior 0.
 * Without a cluster the window is looked up only when a rule refuses (a SEND that passes
 * goes to the store, which looks it up first): @p prior is then the id of a resend
 * that would have been refused, else 0 even for a resend.
 * @param[out] code  cim_Code_OK or the code to refuse with, @p why its reason.
 * @return 0, or rc (storage).
 */
int send_check(server_t *srv, const char *app, const char *from, int conv_type,
               const char *to, const char *cmid, bool system, uint64_t *prior, int *code,
               const char **why);

/**
 * Is @p cmid (non-empty) of @p from a resend? Only the deduplication window is looked at
 * (a DIRECT message to a user of another home: the rest is that home's to judge).
 * @param[out] prior  the original id, or 0.
 * @param[out] code  cim_Code_OK, or SERVER_BUSY as send_check's (@p why its reason).
 * @return 0, or rc (storage).
 */
int send_resend(server_t *srv, const char *app, const char *from, const char *cmid,
                uint64_t *prior, int *code, const char **why);

/**
 * The check a sender's home asks of this node, the recipient's (cluster_check_cb; @p ctx
 * is the server_t): send_check of a DIRECT message without client_msg_id (@p system: the
 * admin API's SYSTEM message).
 * @return cim_Code_OK, NOT_FOUND, BLOCKED, or INTERNAL (storage), @p why its reason.
 */
int send_check_home(void *ctx, const char *app, const char *from, const char *to,
                    bool system, const char **why);

/**
 * Is message @p id in the timeline of user @p name of @p app here, or (@p record) its
 * record (cluster_has_cb; @p ctx is the server_t)? A storage error reads as false.
 */
bool send_has_home(void *ctx, const char *app, const char *name, uint64_t id, bool record);

/**
 * Deliver transient message @p rec (encoded cim.Message) to the live sessions here of user
 * @p name, or (@p group) of every member of group @p name (cluster_deliver_cb; @p ctx is
 * the server_t): one sent from another home.
 */
void send_deliver_home(void *ctx, const char *app, const char *name, bool group,
                       const uint8_t *rec, size_t len);

/**
 * Hand a SEND or an op (@p q, from a session or the admin API) to where it is carried out:
 * this node's store, or in a cluster (docs/SCALING.md) the cluster thread — a DIRECT SEND
 * to a user of another home (r->xhome, r->home) is checked there first, a group's SEND or
 * change whose group is homed on another node is forwarded to that node, a CONTACT_ADD or
 * BLOCK of a user of another home asks that home whether the user exists, and a
 * GROUP_CREATE or GROUP_ADD asks the homes of the users it names. Takes @p q on 0. Any
 * thread. @return 0, RC_EFULL or RC_ECLOSED (the caller keeps @p q and answers).
 */
int send_post(server_t *srv, store_req_t *q);

/**
 * Route a transient message at once: encode it from @p meta (app, from, to, conv_type,
 * msg_type, from_kind, cmid; time_ms, unless set, is set here) and hand it to every online
 * device of the recipient (every member for a group) and of the sender, except session @p skip_sid
 * (0: none). Best effort: nothing is stored.
 * @return 0, or RC_EINVAL (cannot encode).
 */
int send_transient_route(server_t *srv, store_send_t *meta, const uint8_t *body, size_t len,
                         uint64_t skip_sid);

#endif
