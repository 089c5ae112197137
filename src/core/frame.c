#include "core/frame.h"

#include <errno.h>
#include <string.h>

#include "core/be.h"
#include "core/mem.h"
#include "core/rc.h"

/* Frame types are grouped by their high byte (0x00..0x05) and numbered from 1 without gaps
 * inside a group, so a lookup is two bounds checks and an index: no search per frame. */
typedef struct type_info {
    const char *name;
    bool from_client; /* C→S in PROTOCOL.md §4 */
} type_info_t;

static const type_info_t group0[] = {
    {"HELLO", true}, {"HELLO_ACK", false},
    {"BYE", false},
};

static const type_info_t group1[] = {
    {"LOGIN", true}, {"LOGIN_ACK", false},
    {"LOGOUT", true}, {"LOGOUT_ACK", false},
    {"PING", true}, {"PONG", false},
};

static const type_info_t group2[] = {
    {"SEND", true}, {"SEND_ACK", false},
    {"PUSH", false}, {"PUSH_ACK", true},
    {"SYNC", true}, {"SYNC_ACK", false},
    {"RECALL", true}, {"RECALL_ACK", false},
};

static const type_info_t group3[] = {
    {"CONV_LIST", true}, {"CONV_LIST_ACK", false},
    {"HISTORY", true}, {"HISTORY_ACK", false},
    {"READ", true}, {"READ_ACK", false},
    {"EVENT", false},
};

static const type_info_t group4[] = {
    {"GROUP_CREATE", true}, {"GROUP_CREATE_ACK", false},
    {"GROUP_JOIN", true}, {"GROUP_JOIN_ACK", false},
    {"GROUP_LEAVE", true}, {"GROUP_LEAVE_ACK", false},
    {"GROUP_ADD", true}, {"GROUP_ADD_ACK", false},
    {"GROUP_KICK", true}, {"GROUP_KICK_ACK", false},
    {"GROUP_DISMISS", true}, {"GROUP_DISMISS_ACK", false},
    {"GROUP_MEMBERS", true}, {"GROUP_MEMBERS_ACK", false},
    {"GROUP_LIST", true}, {"GROUP_LIST_ACK", false},
};

static const type_info_t group5[] = {
    {"CONTACT_ADD", true}, {"CONTACT_ADD_ACK", false},
    {"CONTACT_REMOVE", true}, {"CONTACT_REMOVE_ACK", false},
    {"CONTACT_LIST", true}, {"CONTACT_LIST_ACK", false},
    {"BLOCK", true}, {"BLOCK_ACK", false},
    {"UNBLOCK", true}, {"UNBLOCK_ACK", false},
};

#define GROUP(g) {g, sizeof(g) / sizeof((g)[0])}

static const struct {
    const type_info_t *types;
    uint32_t n;
} groups[] = {
    GROUP(group0), GROUP(group1), GROUP(group2), GROUP(group3), GROUP(group4), GROUP(group5),
};

static const type_info_t *type_lookup(uint32_t type)
{
    uint32_t hi = type >> 8, lo = type & 0xff;

    if (hi >= sizeof(groups) / sizeof(groups[0]) || lo == 0 || lo > groups[hi].n)
        return NULL;
    return &groups[hi].types[lo - 1];
}

bool frame_type_known(uint32_t type)
{
    return type_lookup(type) != NULL;
}

bool frame_type_from_client(uint32_t type)
{
    const type_info_t *t = type_lookup(type);
    return t != NULL && t->from_client;
}

const char *frame_type_name(uint32_t type)
{
    const type_info_t *t = type_lookup(type);
    return t != NULL ? t->name : "UNKNOWN";
}

void frame_hdr_write(uint8_t out[FRAME_HDR], uint32_t len, uint32_t type)
{
    be32_put(out, len);
    be32_put(out + 4, type);
}

void frame_hdr_read(const uint8_t in[FRAME_HDR], uint32_t *len, uint32_t *type)
{
    *len = be32_get(in);
    *type = be32_get(in + 4);
}

void frame_rd_init(frame_rd_t *rd)
{
    memset(rd, 0, sizeof(*rd));
}

/* The checks every header passes before anything is allocated for its frame. */
static int check_hdr(const uint8_t *hdr, uint32_t max_len, uint32_t *len, uint32_t *type)
{
    frame_hdr_read(hdr, len, type);
    if (*len < FRAME_HDR)
        return RC_EPROTO;
    if (*len > max_len)
        return RC_ETOOBIG;
    if (!frame_type_known(*type))
        return RC_EPROTO;
    return 0;
}

/* Start keeping a frame whose header is known but whose body is not all here: allocate
 * exactly its length (bounded by max_len already) and copy the @p n bytes we have. */
static int keep_partial(frame_rd_t *rd, const uint8_t *data, size_t n, uint32_t len)
{
    rd->part = mem_try_alloc(len);
    if (rd->part == NULL)
        return -ENOMEM;
    memcpy(rd->part, data, n);
    rd->have = (uint32_t)n;
    rd->need = len;
    return 0;
}

int frame_rd_feed(frame_rd_t *rd, uint8_t *data, size_t n, uint32_t max_len, frame_cb cb,
                  void *ctx)
{
    uint8_t hdr[FRAME_HDR], *frame;
    uint32_t len, type;
    size_t take;
    int rc;

    while (n > 0) {
        if (rd->need > 0) {
            /* Completing a kept frame. */
            take = rd->need - rd->have;
            if (take > n)
                take = n;
            memcpy(rd->part + rd->have, data, take);
            rd->have += (uint32_t)take;
            data += take;
            n -= take;
            if (rd->have < rd->need)
                return 0;
            /* Detach before the callback so the reader is empty whatever it returns. */
            frame = rd->part;
            frame_hdr_read(frame, &len, &type);
            frame_rd_init(rd);
            rc = cb(ctx, type, frame, len);
            mem_free(frame);
            if (rc != 0)
                return rc;
            continue;
        }

        if (rd->have > 0) {
            /* Completing a header that arrived in pieces. */
            take = FRAME_HDR - rd->have;
            if (take > n)
                take = n;
            memcpy(rd->hdr + rd->have, data, take);
            rd->have += (uint32_t)take;
            data += take;
            n -= take;
            if (rd->have < FRAME_HDR)
                return 0;
            if ((rc = check_hdr(rd->hdr, max_len, &len, &type)) < 0)
                return rc;
            if (len == FRAME_HDR) {
                /* An empty body: the header is the whole frame; no block needed. */
                memcpy(hdr, rd->hdr, FRAME_HDR);
                frame_rd_init(rd);
                if ((rc = cb(ctx, type, hdr, len)) != 0)
                    return rc;
                continue;
            }
            if ((rc = keep_partial(rd, rd->hdr, FRAME_HDR, len)) < 0)
                return rc;
            continue;
        }

        /* Idle reader: frames that lie whole in @p data go to the callback in place. */
        if (n < FRAME_HDR) {
            memcpy(rd->hdr, data, n);
            rd->have = (uint32_t)n;
            return 0;
        }
        if ((rc = check_hdr(data, max_len, &len, &type)) < 0)
            return rc;
        if (len > n)
            return keep_partial(rd, data, n, len);
        if ((rc = cb(ctx, type, data, len)) != 0)
            return rc;
        data += len;
        n -= len;
    }
    return 0;
}

size_t frame_rd_pending(const frame_rd_t *rd)
{
    return rd->have;
}

void frame_rd_close(frame_rd_t *rd)
{
    mem_free(rd->part);
    frame_rd_init(rd);
}
