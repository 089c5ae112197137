/**
 * conv: conversations — their keys and their per-user state record.
 *
 * A conversation is DIRECT (two users) or GROUP (a group id). Two keys name it:
 *  - the *user key* (conv_ukey): user key NUL conv_type peer — one per participant, for
 *    that user's state (convs database): last message, unread count, read cursor;
 *  - the *index key* (conv_skey) of its message index (cmsgs): app NUL 'G' group id for a
 *    group (a message is indexed once however many take part), and for DIRECT one per
 *    direction, app NUL '>' sender NUL recipient: so what a user sent and what they
 *    received are apart, and their own last message — which reads everything before it —
 *    is found without writing their record per message.
 * Unread counts messages from others whose type a user reads (not SYSTEM, not RECALL).
 *
 * The stored record holds only what changes meaning rarely: the read cursor (moved by
 * READ, and in a group by the user's own messages), when it changed, when the user joined
 * a group and where a former member left it. The last message, the unread count and, in
 * a DIRECT conversation, the effective read cursor are derived when read (conv_view):
 * the newest index entry; the cursor is the later of the record's and the user's own
 * last message; unread is the entries after it (and after the join) that are not the
 * user's — DIRECT: the other direction's key; GROUP: every entry after the cursor is from
 * someone else, since one's own group message moves one's cursor — less the SYSTEM events
 * among them (cevents). RECALL control messages are not indexed.
 *
 * Threading: pure; any thread.
 */
#ifndef CIM_ACTORS_CONV_H
#define CIM_ACTORS_CONV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/kv.h"

#define CONV_UKEY_MAX (KV_UKEY_MAX + 2 + KV_ID_MAX)
#define CONV_SKEY_MAX (KV_ID_MAX + 3 + 2 * KV_ID_MAX + 1)
#define CONV_REC_LEN 36 /* since_id, read_up_to, updated_ms, left_id, 4 bytes (schema 1's
                           unread, now 0) */

/** A user's state of one conversation (convs database). */
typedef struct conv_rec {
    uint64_t since_id;   /* GROUP: the event that (re)added the user: what came before it
                            is never unread (0: from the start) */
    uint64_t read_up_to; /* the user's read cursor */
    uint64_t updated_ms; /* time of the record's last change */
    uint64_t left_id;    /* GROUP: 0 while a member, else the event that removed the user */
} conv_rec_t;

/** A conversation as its user sees it now: the record plus what is derived from the index. */
typedef struct conv_view {
    uint64_t last_id;    /* newest message the user can see (0: none) */
    uint64_t read_up_to; /* the read cursor: the record's, or the user's own last message
                            in the conversation if later (sending reads what came before) */
    uint64_t updated_ms; /* time of that message, or of the record's last change if later */
    uint32_t unread;
} conv_view_t;

/** The per-user key of a conversation. @return its length. */
size_t conv_ukey(uint8_t out[CONV_UKEY_MAX], const char *app, const char *user, int conv_type,
                 const char *peer);

/** The prefix of all of a user's conversation keys (user key NUL). @return its length. */
size_t conv_uprefix(uint8_t out[CONV_UKEY_MAX], const char *app, const char *user);

/** The index key of the messages @p a sent to @p b (DIRECT), or of group @p a (GROUP). */
size_t conv_skey(uint8_t out[CONV_SKEY_MAX], const char *app, int conv_type, const char *a,
                 const char *b);

/**
 * The parts of a DIRECT index key (conv_skey's inverse): @p app, sender @p a, recipient
 * @p b, each NUL-terminated. @return false when @p key is not a DIRECT index key.
 */
bool conv_skey_direct(const uint8_t *key, size_t klen, char app[KV_ID_MAX + 1],
                      char a[KV_ID_MAX + 1], char b[KV_ID_MAX + 1]);

/** Decode a record (a short or empty value reads as zeros). */
void conv_decode(const uint8_t *v, size_t len, conv_rec_t *c);

/** Encode a record. */
void conv_encode(const conv_rec_t *c, uint8_t out[CONV_REC_LEN]);

/**
 * @p key's record (conv_ukey), from convs or on its way there (a new DIRECT conversation's,
 * kv_conv_defer: empty, which reads as zeros). @p out: zeros when there is none.
 * @return 0, RC_ENOTFOUND or rc.
 */
int conv_load(kv_txn_t *txn, const uint8_t *key, size_t klen, conv_rec_t *out);

/**
 * kv_rec_scan of @p user's records (@p cb gets the key after conv_uprefix, and the value),
 * then of those on their way to convs (kv_conv_defer), which come after, each once, with
 * an empty value. @return 0, rc, or @p cb's value.
 */
int conv_scan(kv_txn_t *txn, const char *app, const char *user,
              int (*cb)(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val,
                        size_t vlen),
              void *ctx);

/**
 * Derive @p out for (@p app, @p user)'s conversation (@p conv_type, @p peer) whose record
 * is @p rec, reading the conversation index in @p txn. @return 0 or rc.
 */
int conv_view(kv_txn_t *txn, const char *app, const char *user, int conv_type,
              const char *peer, const conv_rec_t *rec, conv_view_t *out);

/**
 * Only the effective read cursor of conv_view (the peer's, in CONV_LIST). @return 0 or rc.
 */
int conv_read_cursor(kv_txn_t *txn, const char *app, const char *user, int conv_type,
                     const char *peer, const conv_rec_t *rec, uint64_t *out);

/**
 * Page (@p user, @p peer)'s conversation backwards, as kv_cmsg_before: the newest ids
 * below @p before (0: from the newest), newest first, both directions of a DIRECT one.
 * @return 0 or rc.
 */
int conv_history(kv_txn_t *txn, const char *app, const char *user, int conv_type,
                 const char *peer, uint64_t before, uint64_t *ids, size_t max, size_t *n,
                 bool *more);

/** How many messages the conversation's index holds (cimdump). @return 0 or rc. */
int conv_index_count(kv_txn_t *txn, const char *app, const char *user, int conv_type,
                     const char *peer, uint64_t *out);

/** @return true when messages of @p msg_type count as unread. */
bool conv_counts(int msg_type);

#endif
