/**
 * conv: conversations — their keys and their per-user state record.
 *
 * A conversation is DIRECT (two users) or GROUP (a group id). Two keys name it:
 *  - the *user key* (conv_ukey): user key NUL conv_type peer — one per participant, for
 *    that user's state (convs database): last message, unread count, read cursor;
 *  - the *shared key* (conv_skey): app NUL 'D' lower-id NUL higher-id, or app NUL 'G'
 *    group id — one per conversation, for its message index (cmsgs), so a message is
 *    indexed once however many take part.
 * Unread counts messages from others whose type a user reads (not SYSTEM, not RECALL).
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
#define CONV_REC_LEN 36

/** A user's state of one conversation (convs database). */
typedef struct conv_rec {
    uint64_t last_id;    /* newest message (0: none yet) */
    uint64_t read_up_to; /* the user's read cursor */
    uint64_t updated_ms; /* time of the newest message or change */
    uint64_t left_id;    /* GROUP: 0 while a member, else the event that removed the user */
    uint32_t unread;
} conv_rec_t;

/** The per-user key of a conversation. @return its length. */
size_t conv_ukey(uint8_t out[CONV_UKEY_MAX], const char *app, const char *user, int conv_type,
                 const char *peer);

/** The prefix of all of a user's conversation keys (user key NUL). @return its length. */
size_t conv_uprefix(uint8_t out[CONV_UKEY_MAX], const char *app, const char *user);

/** The shared key of a conversation between @p a and @p b (DIRECT), or of group @p a. */
size_t conv_skey(uint8_t out[CONV_SKEY_MAX], const char *app, int conv_type, const char *a,
                 const char *b);

/** Decode a record (a short or empty value reads as zeros). */
void conv_decode(const uint8_t *v, size_t len, conv_rec_t *c);

/** Encode a record. */
void conv_encode(const conv_rec_t *c, uint8_t out[CONV_REC_LEN]);

/** @return true when messages of @p msg_type count as unread. */
bool conv_counts(int msg_type);

#endif
