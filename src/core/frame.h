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

#include "core/frame_type.h"

#define FRAME_HDR 8              /**< header bytes */
#define FRAME_TAG 16             /**< AES-GCM tag bytes after every sealed body */
#define FRAME_HANDSHAKE_MAX 1024 /**< max total length of HELLO / HELLO_ACK */
#define FRAME_MAX_BODY 65536     /**< default max plaintext body (max_body) */


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
