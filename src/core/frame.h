/**
 * frame: the wire framing of PROTOCOL.md §1 and incremental reassembly.
 *
 * A frame is an 8-byte header (u32 total length including the header, u32 type, both
 * big-endian) and a body. frame_rd_feed() takes bytes as they arrive from a socket and
 * calls back once per complete frame. Complete frames are handed over *in place* from the
 * caller's buffer when they lie whole inside it (the worker's shared read buffer); only
 * a trailing partial frame is copied into the reader, in a block sized to that frame, so an
 * idle connection holds no buffer at all (a frame_rd_t is 24 bytes).
 *
 * Checks made here: length < 8 and length > max_len are RC_EPROTO / RC_ETOOBIG before any
 * allocation; the type must be one of PROTOCOL.md §4 (frame_type_known) else RC_EPROTO.
 * Which types are allowed in which direction and state is the session's business.
 *
 * Threading: a frame_rd_t belongs to one thread (its session's loop).
 */
#ifndef CIM_CORE_FRAME_H
#define CIM_CORE_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_HDR 8              /**< header bytes */
#define FRAME_TAG 16             /**< AES-GCM tag bytes after every sealed body */
#define FRAME_HANDSHAKE_MAX 1024 /**< max total length of HELLO / HELLO_ACK */
#define FRAME_MAX_BODY 65536     /**< default max plaintext body (max_body) */

/** Frame types, PROTOCOL.md §4. */
enum {
    FT_HELLO = 0x0001,
    FT_HELLO_ACK = 0x0002,
    FT_BYE = 0x0003,
    FT_LOGIN = 0x0101,
    FT_LOGIN_ACK = 0x0102,
    FT_LOGOUT = 0x0103,
    FT_LOGOUT_ACK = 0x0104,
    FT_PING = 0x0105,
    FT_PONG = 0x0106,
    FT_SEND = 0x0201,
    FT_SEND_ACK = 0x0202,
    FT_PUSH = 0x0203,
    FT_PUSH_ACK = 0x0204,
    FT_SYNC = 0x0205,
    FT_SYNC_ACK = 0x0206,
    FT_RECALL = 0x0207,
    FT_RECALL_ACK = 0x0208,
    FT_CONV_LIST = 0x0301,
    FT_CONV_LIST_ACK = 0x0302,
    FT_HISTORY = 0x0303,
    FT_HISTORY_ACK = 0x0304,
    FT_READ = 0x0305,
    FT_READ_ACK = 0x0306,
    FT_EVENT = 0x0307,
    FT_GROUP_CREATE = 0x0401,
    FT_GROUP_CREATE_ACK = 0x0402,
    FT_GROUP_JOIN = 0x0403,
    FT_GROUP_JOIN_ACK = 0x0404,
    FT_GROUP_LEAVE = 0x0405,
    FT_GROUP_LEAVE_ACK = 0x0406,
    FT_GROUP_ADD = 0x0407,
    FT_GROUP_ADD_ACK = 0x0408,
    FT_GROUP_KICK = 0x0409,
    FT_GROUP_KICK_ACK = 0x040A,
    FT_GROUP_DISMISS = 0x040B,
    FT_GROUP_DISMISS_ACK = 0x040C,
    FT_GROUP_MEMBERS = 0x040D,
    FT_GROUP_MEMBERS_ACK = 0x040E,
    FT_GROUP_LIST = 0x040F,
    FT_GROUP_LIST_ACK = 0x0410,
    FT_CONTACT_ADD = 0x0501,
    FT_CONTACT_ADD_ACK = 0x0502,
    FT_CONTACT_REMOVE = 0x0503,
    FT_CONTACT_REMOVE_ACK = 0x0504,
    FT_CONTACT_LIST = 0x0505,
    FT_CONTACT_LIST_ACK = 0x0506,
    FT_BLOCK = 0x0507,
    FT_BLOCK_ACK = 0x0508,
    FT_UNBLOCK = 0x0509,
    FT_UNBLOCK_ACK = 0x050A,
};

/** @return true when @p type is one of the frame types of PROTOCOL.md §4. */
bool frame_type_known(uint32_t type);

/** @return true when @p type is sent by clients (C→S), false for S→C and unknown types. */
bool frame_type_from_client(uint32_t type);

/** @return the name of @p type ("LOGIN"), or "UNKNOWN". Static string. */
const char *frame_type_name(uint32_t type);

/** Write a header: @p len is the total frame length including the 8 header bytes. */
void frame_hdr_write(uint8_t out[FRAME_HDR], uint32_t len, uint32_t type);

/** Read a header written by frame_hdr_write. */
void frame_hdr_read(const uint8_t in[FRAME_HDR], uint32_t *len, uint32_t *type);

/** Reassembly state of one byte stream. Zero-initialise (or frame_rd_init) before use. */
typedef struct frame_rd {
    uint8_t *part;      /* the frame being completed: header + body, sized to that frame */
    uint32_t have;      /* bytes of it received so far */
    uint32_t need;      /* its total length; 0 while fewer than 8 bytes are known */
    uint8_t hdr[8];     /* a header not yet complete */
} frame_rd_t;

/**
 * Called once per complete frame.
 *
 * @param[in] ctx    the ctx given to frame_rd_feed.
 * @param[in] type   the frame type (known, per frame_type_known).
 * @param[in] frame  the whole frame, header included; borrowed until the callback returns.
 *                   The bytes may be modified in place (decryption).
 * @param[in] len    its total length (>= 8).
 * @return 0 to go on; any other value stops the feed, which returns it.
 */
typedef int (*frame_cb)(void *ctx, uint32_t type, uint8_t *frame, uint32_t len);

/** Make @p rd empty. */
void frame_rd_init(frame_rd_t *rd);

/**
 * Feed @p n received bytes; call @p cb for every frame they complete, in order.
 *
 * @param[in,out] rd   the stream's state.
 * @param[in]     data received bytes; borrowed. Frames lying whole inside it are passed
 *                     to @p cb in place (and may be modified by it).
 * @param[in]     max_len  the largest total frame length accepted now (it changes when the
 *                     handshake completes). Checked against each header before anything
 *                     is allocated.
 * @return 0 when every byte was consumed (a trailing partial frame is kept in @p rd), or
 *         RC_EPROTO   a length below 8 or an unknown type,
 *         RC_ETOOBIG  a length above @p max_len,
 *         -ENOMEM     the partial-frame copy could not be allocated,
 *         or the first non-zero value returned by @p cb.
 *         After an error the stream is unusable: the caller closes the connection.
 */
int frame_rd_feed(frame_rd_t *rd, uint8_t *data, size_t n, uint32_t max_len, frame_cb cb,
                  void *ctx);

/** Bytes @p rd holds for a partial frame (0 when idle). */
size_t frame_rd_pending(const frame_rd_t *rd);

/** Release the partial-frame copy. The reader may be fed again afterwards (empty). */
void frame_rd_close(frame_rd_t *rd);

#endif
