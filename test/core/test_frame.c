/* Tests of src/core/frame.c: header layout, type tables and stream reassembly. */
#include <errno.h>
#include <malloc.h>

#include "core/frame.h"
#include "core/mem.h"
#include "support/test.h"

#define MAX_SEEN 64

/* What the callback saw: a copy of each frame, and where it pointed. */
typedef struct seen {
    int n;
    int stop_at; /* return stop_rc on this frame (1-based); 0 = never */
    int stop_rc;
    const uint8_t *lo, *hi; /* the caller's buffer, to tell in-place frames apart */
    int in_place;           /* frames handed over inside [lo, hi) */
    uint32_t type[MAX_SEEN];
    uint32_t len[MAX_SEEN];
    uint8_t bytes[MAX_SEEN][512];
} seen_t;

static int on_frame(void *ctx, uint32_t type, uint8_t *frame, uint32_t len)
{
    seen_t *s = ctx;
    uint32_t hlen, htype;

    ASSERT_LT(s->n, MAX_SEEN);
    ASSERT_LE(len, sizeof(s->bytes[0]));
    frame_hdr_read(frame, &hlen, &htype);
    ASSERT_EQ(hlen, len);
    ASSERT_EQ(htype, type);
    s->type[s->n] = type;
    s->len[s->n] = len;
    memcpy(s->bytes[s->n], frame, len);
    if (frame >= s->lo && frame < s->hi)
        s->in_place++;
    s->n++;
    /* The bytes are the callback's to modify (decryption in place). */
    memset(frame, 0xEE, len);
    if (s->stop_at == s->n)
        return s->stop_rc;
    return 0;
}

/* Append one frame with body bytes b, b+1, ... to @p buf at @p *off. */
static void put_frame(uint8_t *buf, size_t *off, uint32_t type, uint32_t body_len, uint8_t b)
{
    frame_hdr_write(buf + *off, FRAME_HDR + body_len, type);
    for (uint32_t i = 0; i < body_len; i++)
        buf[*off + FRAME_HDR + i] = (uint8_t)(b + i);
    *off += FRAME_HDR + body_len;
}

/* A stream of five frames, empty bodies included. */
static size_t sample_stream(uint8_t *buf)
{
    size_t off = 0;

    put_frame(buf, &off, FT_HELLO, 70, 1);
    put_frame(buf, &off, FT_PING, 0, 0);
    put_frame(buf, &off, FT_SEND, 33, 9);
    put_frame(buf, &off, FT_UNBLOCK_ACK, 1, 200);
    put_frame(buf, &off, FT_LOGIN, 16, 50);
    return off;
}

/* Check @p s saw exactly the frames of sample_stream(). */
static void check_sample(const seen_t *s, const uint8_t *stream)
{
    static const uint32_t types[] = {FT_HELLO, FT_PING, FT_SEND, FT_UNBLOCK_ACK, FT_LOGIN};
    static const uint32_t lens[] = {78, 8, 41, 9, 24};
    size_t off = 0;

    ASSERT_EQ(s->n, 5);
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ(s->type[i], types[i]);
        ASSERT_EQ(s->len[i], lens[i]);
        ASSERT_MEMEQ(s->bytes[i], stream + off, lens[i]);
        off += lens[i];
    }
}

TEST(frame_hdr_layout)
{
    uint8_t h[FRAME_HDR];
    uint32_t len, type;

    ASSERT_EQ(sizeof(frame_rd_t), 24);
    frame_hdr_write(h, 0x01020304, 0x0A0B0C0D);
    ASSERT_MEMEQ(h, "\x01\x02\x03\x04\x0A\x0B\x0C\x0D", 8);
    frame_hdr_read(h, &len, &type);
    ASSERT_EQ(len, 0x01020304);
    ASSERT_EQ(type, 0x0A0B0C0D);
    frame_hdr_write(h, UINT32_MAX, FT_LOGIN);
    frame_hdr_read(h, &len, &type);
    ASSERT_U64_EQ(len, UINT32_MAX);
    ASSERT_EQ(type, FT_LOGIN);
}

TEST(frame_type_tables)
{
    /* Every C→S type of PROTOCOL.md §4, and every S→C one. */
    static const uint32_t c2s[] = {
        FT_HELLO,          FT_LOGIN,         FT_LOGOUT,        FT_PING,        FT_SEND,
        FT_PUSH_ACK,       FT_SYNC,          FT_RECALL,        FT_CONV_LIST,   FT_HISTORY,
        FT_READ,           FT_GROUP_CREATE,  FT_GROUP_JOIN,    FT_GROUP_LEAVE, FT_GROUP_ADD,
        FT_GROUP_KICK,     FT_GROUP_DISMISS, FT_GROUP_MEMBERS, FT_GROUP_LIST,  FT_CONTACT_ADD,
        FT_CONTACT_REMOVE, FT_CONTACT_LIST,  FT_BLOCK,         FT_UNBLOCK,
    };
    static const uint32_t s2c[] = {
        FT_HELLO_ACK,
        FT_BYE,
        FT_LOGIN_ACK,
        FT_LOGOUT_ACK,
        FT_PONG,
        FT_SEND_ACK,
        FT_PUSH,
        FT_SYNC_ACK,
        FT_RECALL_ACK,
        FT_CONV_LIST_ACK,
        FT_HISTORY_ACK,
        FT_READ_ACK,
        FT_EVENT,
        FT_GROUP_CREATE_ACK,
        FT_GROUP_JOIN_ACK,
        FT_GROUP_LEAVE_ACK,
        FT_GROUP_ADD_ACK,
        FT_GROUP_KICK_ACK,
        FT_GROUP_DISMISS_ACK,
        FT_GROUP_MEMBERS_ACK,
        FT_GROUP_LIST_ACK,
        FT_CONTACT_ADD_ACK,
        FT_CONTACT_REMOVE_ACK,
        FT_CONTACT_LIST_ACK,
        FT_BLOCK_ACK,
        FT_UNBLOCK_ACK,
    };
    static const uint32_t unknown[] = {0,      4,      0x00FF,  0x0100,     0x0107,
                                       0x0200, 0x0209, 0x0308,  0x0411,     0x050B,
                                       0x0600, 0x0601, 0x10001, 0x01000001, UINT32_MAX};
    int known = 0;

    for (size_t i = 0; i < sizeof(c2s) / sizeof(c2s[0]); i++) {
        ASSERT_TRUE(frame_type_known(c2s[i]));
        ASSERT_TRUE(frame_type_from_client(c2s[i]));
    }
    for (size_t i = 0; i < sizeof(s2c) / sizeof(s2c[0]); i++) {
        ASSERT_TRUE(frame_type_known(s2c[i]));
        ASSERT_TRUE(!frame_type_from_client(s2c[i]));
    }
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        ASSERT_TRUE(!frame_type_known(unknown[i]));
        ASSERT_TRUE(!frame_type_from_client(unknown[i]));
        ASSERT_STREQ(frame_type_name(unknown[i]), "UNKNOWN");
    }
    /* The table holds exactly the 50 types of §4. */
    for (uint32_t t = 0; t < 0x10000; t++)
        known += frame_type_known(t);
    ASSERT_EQ(known, 50);
    ASSERT_EQ(sizeof(c2s) / sizeof(c2s[0]) + sizeof(s2c) / sizeof(s2c[0]), 50);
    ASSERT_STREQ(frame_type_name(FT_HELLO), "HELLO");
    ASSERT_STREQ(frame_type_name(FT_BYE), "BYE");
    ASSERT_STREQ(frame_type_name(FT_PUSH_ACK), "PUSH_ACK");
    ASSERT_STREQ(frame_type_name(FT_EVENT), "EVENT");
    ASSERT_STREQ(frame_type_name(FT_GROUP_LIST_ACK), "GROUP_LIST_ACK");
    ASSERT_STREQ(frame_type_name(FT_UNBLOCK_ACK), "UNBLOCK_ACK");
}

/* Start counting allocations (each test runs in its own process) and say how much is
 * counted now. */
static size_t mem_base(void)
{
    mem_count(true);
    return mem_used();
}

TEST(frame_many_in_one_buffer)
{
    uint8_t stream[512], copy[512];
    seen_t s = {0};
    frame_rd_t rd;
    size_t n = sample_stream(stream), base = mem_base();

    memcpy(copy, stream, n);
    frame_rd_init(&rd);
    s.lo = stream;
    s.hi = stream + n;
    ASSERT_OK(frame_rd_feed(&rd, stream, n, 1024, on_frame, &s));
    check_sample(&s, copy);
    ASSERT_EQ(s.in_place, 5); /* every frame passed in place, none copied */
    ASSERT_EQ(mem_used(), base);
    ASSERT_EQ(frame_rd_pending(&rd), 0);
    ASSERT_NULL(rd.part);
    frame_rd_close(&rd);
}

TEST(frame_one_byte_at_a_time)
{
    uint8_t stream[512];
    seen_t s = {0};
    frame_rd_t rd;
    size_t n = sample_stream(stream), base = mem_base();

    frame_rd_init(&rd);
    for (size_t i = 0; i < n; i++) {
        uint8_t b = stream[i];
        ASSERT_OK(frame_rd_feed(&rd, &b, 1, 1024, on_frame, &s));
    }
    check_sample(&s, stream);
    ASSERT_EQ(frame_rd_pending(&rd), 0);
    ASSERT_NULL(rd.part);
    ASSERT_EQ(mem_used(), base); /* every partial block was released */
}

/* Feed @p stream cut at @p a and @p b (a <= b): three feeds, the middle one maybe empty. */
static void feed_cut(const uint8_t *stream, size_t n, size_t a, size_t b)
{
    uint8_t work[512];
    size_t cuts[4] = {0, a, b, n};
    seen_t s = {0};
    frame_rd_t rd = {0};

    memcpy(work, stream, n);
    for (int i = 0; i < 3; i++)
        ASSERT_OK(frame_rd_feed(&rd, work + cuts[i], cuts[i + 1] - cuts[i], 1024, on_frame, &s));
    check_sample(&s, stream);
    ASSERT_EQ(frame_rd_pending(&rd), 0);
    ASSERT_NULL(rd.part);
}

TEST(frame_split_at_every_offset)
{
    uint8_t stream[512];
    size_t n = sample_stream(stream), base = mem_base();

    for (size_t a = 0; a <= n; a++)
        feed_cut(stream, n, a, a);
    for (size_t a = 0; a <= n; a++)
        for (size_t b = a; b <= n; b++)
            feed_cut(stream, n, a, b);
    ASSERT_EQ(mem_used(), base);
}

/* Feed @p hdr as one buffer and again split after byte @p cut; both must fail with @p want
 * before the callback runs and without allocating. */
static void expect_bad_header(const uint8_t hdr[FRAME_HDR], uint32_t max_len, int want)
{
    size_t base = mem_base();

    for (size_t cut = 0; cut <= FRAME_HDR; cut++) {
        uint8_t buf[64] = {0};
        seen_t s = {0};
        frame_rd_t rd = {0};
        int rc = 0;

        memcpy(buf, hdr, FRAME_HDR);
        /* Some body bytes after the header, so a wrongly accepted frame could complete. */
        if (cut > 0)
            rc = frame_rd_feed(&rd, buf, cut, max_len, on_frame, &s);
        if (rc == 0)
            rc = frame_rd_feed(&rd, buf + cut, sizeof(buf) - cut, max_len, on_frame, &s);
        ASSERT_RC(rc, want);
        ASSERT_EQ(s.n, 0);
        ASSERT_NULL(rd.part);
        ASSERT_EQ(mem_used(), base);
        frame_rd_close(&rd);
    }
}

TEST(frame_length_below_8)
{
    uint8_t h[FRAME_HDR];

    for (uint32_t len = 0; len < FRAME_HDR; len++) {
        frame_hdr_write(h, len, FT_PING);
        expect_bad_header(h, 1024, RC_EPROTO);
    }
}

TEST(frame_length_exactly_8)
{
    uint8_t buf[16], b;
    seen_t s = {0};
    frame_rd_t rd = {0};
    size_t base = mem_base();

    /* Whole in the buffer: in place. */
    frame_hdr_write(buf, FRAME_HDR, FT_PING);
    s.lo = buf;
    s.hi = buf + sizeof(buf);
    ASSERT_OK(frame_rd_feed(&rd, buf, FRAME_HDR, FRAME_HDR, on_frame, &s));
    ASSERT_EQ(s.n, 1);
    ASSERT_EQ(s.len[0], FRAME_HDR);
    ASSERT_EQ(s.type[0], FT_PING);
    ASSERT_EQ(s.in_place, 1);

    /* Byte by byte: the header is the whole frame, so nothing is ever allocated. */
    frame_hdr_write(buf, FRAME_HDR, FT_LOGOUT);
    for (int i = 0; i < FRAME_HDR; i++) {
        b = buf[i];
        ASSERT_OK(frame_rd_feed(&rd, &b, 1, FRAME_HDR, on_frame, &s));
        ASSERT_NULL(rd.part);
        ASSERT_EQ(mem_used(), base);
    }
    ASSERT_EQ(s.n, 2);
    ASSERT_EQ(s.len[1], FRAME_HDR);
    ASSERT_EQ(s.type[1], FT_LOGOUT);
    ASSERT_EQ(frame_rd_pending(&rd), 0);

    /* Two empty frames back to back, the split inside the second header. */
    frame_hdr_write(buf, FRAME_HDR, FT_PING);
    frame_hdr_write(buf + 8, FRAME_HDR, FT_PONG);
    ASSERT_OK(frame_rd_feed(&rd, buf, 11, FRAME_HDR, on_frame, &s));
    ASSERT_EQ(frame_rd_pending(&rd), 3);
    ASSERT_OK(frame_rd_feed(&rd, buf + 11, 5, FRAME_HDR, on_frame, &s));
    ASSERT_EQ(s.n, 4);
    ASSERT_EQ(s.type[3], FT_PONG);
    ASSERT_EQ(mem_used(), base);
}

TEST(frame_length_over_limit)
{
    enum { MAX = 100 };
    uint8_t buf[MAX + 8] = {0}, h[FRAME_HDR];
    seen_t s = {0};
    frame_rd_t rd = {0};

    /* Exactly max: accepted, whole and split. */
    frame_hdr_write(buf, MAX, FT_SEND);
    ASSERT_OK(frame_rd_feed(&rd, buf, MAX, MAX, on_frame, &s));
    frame_hdr_write(buf, MAX, FT_SEND);
    ASSERT_OK(frame_rd_feed(&rd, buf, 3, MAX, on_frame, &s));
    ASSERT_OK(frame_rd_feed(&rd, buf + 3, 50, MAX, on_frame, &s));
    ASSERT_OK(frame_rd_feed(&rd, buf + 53, MAX - 53, MAX, on_frame, &s));
    ASSERT_EQ(s.n, 2);
    ASSERT_EQ(s.len[0], MAX);
    ASSERT_EQ(s.len[1], MAX);

    /* max + 1, and the largest u32: refused before anything is allocated. */
    frame_hdr_write(h, MAX + 1, FT_SEND);
    expect_bad_header(h, MAX, RC_ETOOBIG);
    frame_hdr_write(h, UINT32_MAX, FT_SEND);
    expect_bad_header(h, MAX, RC_ETOOBIG);
    /* The sizes of the protocol: handshake frames, then sealed frames. */
    frame_hdr_write(h, FRAME_HANDSHAKE_MAX + 1, FT_HELLO);
    expect_bad_header(h, FRAME_HANDSHAKE_MAX, RC_ETOOBIG);
    frame_hdr_write(h, FRAME_HDR + FRAME_MAX_BODY + FRAME_TAG + 1, FT_SEND);
    expect_bad_header(h, FRAME_HDR + FRAME_MAX_BODY + FRAME_TAG, RC_ETOOBIG);
}

TEST(frame_unknown_type)
{
    static const uint32_t bad[] = {0,      4,      0x0100,  0x0107,    0x0411,
                                   0x050B, 0x0600, 0x10101, UINT32_MAX};
    uint8_t h[FRAME_HDR];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        frame_hdr_write(h, 16, bad[i]);
        expect_bad_header(h, 1024, RC_EPROTO);
    }
    /* A bad frame after good ones: the good ones are delivered first. */
    {
        uint8_t buf[64] = {0};
        size_t off = 0;
        seen_t s = {0};
        frame_rd_t rd = {0};

        put_frame(buf, &off, FT_PING, 0, 0);
        put_frame(buf, &off, FT_SEND, 4, 0);
        put_frame(buf, &off, 0x0999, 4, 0);
        ASSERT_RC(frame_rd_feed(&rd, buf, off, 1024, on_frame, &s), RC_EPROTO);
        ASSERT_EQ(s.n, 2);
    }
}

TEST(frame_callback_stops_feed)
{
    uint8_t stream[512];
    size_t n = sample_stream(stream), base = mem_base();
    seen_t s = {0};
    frame_rd_t rd = {0};

    /* In place: the feed returns the callback's value and delivers nothing more. */
    s.stop_at = 2;
    s.stop_rc = 42;
    ASSERT_RC(frame_rd_feed(&rd, stream, n, 1024, on_frame, &s), 42);
    ASSERT_EQ(s.n, 2);
    frame_rd_close(&rd);

    /* From a kept partial frame: the block is released although the feed stops. */
    n = sample_stream(stream);
    memset(&s, 0, sizeof(s));
    s.stop_at = 1;
    s.stop_rc = RC_ECRYPTO;
    ASSERT_OK(frame_rd_feed(&rd, stream, 20, 1024, on_frame, &s));
    ASSERT_NOT_NULL(rd.part);
    ASSERT_RC(frame_rd_feed(&rd, stream + 20, n - 20, 1024, on_frame, &s), RC_ECRYPTO);
    ASSERT_EQ(s.n, 1);
    ASSERT_NULL(rd.part);
    ASSERT_EQ(mem_used(), base);

    /* From a header completed in rd->hdr (empty body). */
    memset(&s, 0, sizeof(s));
    s.stop_at = 1;
    s.stop_rc = -EPIPE;
    frame_hdr_write(stream, 8, FT_PING);
    frame_hdr_write(stream + 8, 8, FT_PING);
    ASSERT_OK(frame_rd_feed(&rd, stream, 5, 1024, on_frame, &s));
    ASSERT_RC(frame_rd_feed(&rd, stream + 5, 11, 1024, on_frame, &s), -EPIPE);
    ASSERT_EQ(s.n, 1);
    frame_rd_close(&rd);
    ASSERT_EQ(mem_used(), base);
}

TEST(frame_rd_pending_and_close)
{
    uint8_t buf[256] = {0};
    size_t off = 0, base = mem_base();
    seen_t s = {0};
    frame_rd_t rd;

    frame_rd_init(&rd);
    ASSERT_EQ(frame_rd_pending(&rd), 0);
    put_frame(buf, &off, FT_SEND, 100, 7);
    ASSERT_OK(frame_rd_feed(&rd, buf, 3, 1024, on_frame, &s));
    ASSERT_EQ(frame_rd_pending(&rd), 3);
    ASSERT_OK(frame_rd_feed(&rd, buf + 3, 40, 1024, on_frame, &s));
    ASSERT_EQ(frame_rd_pending(&rd), 43);
    ASSERT_LT(base, mem_used());

    /* Close drops the partial frame; the reader then starts afresh. */
    frame_rd_close(&rd);
    ASSERT_EQ(frame_rd_pending(&rd), 0);
    ASSERT_NULL(rd.part);
    ASSERT_EQ(mem_used(), base);
    ASSERT_OK(frame_rd_feed(&rd, buf, off, 1024, on_frame, &s));
    ASSERT_EQ(s.n, 1);
    ASSERT_EQ(s.len[0], 108);
    ASSERT_EQ(s.bytes[0][8], 7);

    /* Close on an idle reader, twice, is harmless. */
    frame_rd_close(&rd);
    frame_rd_close(&rd);
    ASSERT_EQ(mem_used(), base);
}

TEST(frame_partial_allocates_only_what_is_needed)
{
    uint8_t buf[512] = {0};
    size_t off = 0, base = mem_base();
    seen_t s = {0};
    frame_rd_t rd = {0};

    /* Two whole frames and the start of a 400-byte third one. */
    put_frame(buf, &off, FT_PING, 0, 0);
    put_frame(buf, &off, FT_SEND, 20, 0);
    put_frame(buf, &off, FT_SEND, 392, 3);

    /* Fewer than 8 bytes of the third frame: nothing is allocated, the header waits. */
    ASSERT_OK(frame_rd_feed(&rd, buf, 36 + 5, 1024, on_frame, &s));
    ASSERT_EQ(s.n, 2);
    ASSERT_NULL(rd.part);
    ASSERT_EQ(frame_rd_pending(&rd), 5);
    ASSERT_EQ(mem_used(), base);

    /* The header completes: one block the size of that frame, not of max_len. */
    ASSERT_OK(frame_rd_feed(&rd, buf + 41, 10, 65536, on_frame, &s));
    ASSERT_NOT_NULL(rd.part);
    ASSERT_EQ(rd.need, 400);
    ASSERT_EQ(frame_rd_pending(&rd), 15);
    ASSERT_EQ(mem_used() - base, malloc_usable_size(rd.part));
    ASSERT_LE(400, malloc_usable_size(rd.part));
    ASSERT_LT(malloc_usable_size(rd.part), 400 + 32);

    /* The rest arrives; the block goes away with the frame. */
    ASSERT_OK(frame_rd_feed(&rd, buf + 51, off - 51, 65536, on_frame, &s));
    ASSERT_EQ(s.n, 3);
    ASSERT_EQ(s.len[2], 400);
    ASSERT_EQ(s.bytes[2][8], 3);
    ASSERT_EQ(s.bytes[2][399], (uint8_t)(3 + 391));
    ASSERT_NULL(rd.part);
    ASSERT_EQ(mem_used(), base);

    /* A trailing partial frame whose header is in the buffer: sized to the frame too. */
    off = 0;
    put_frame(buf, &off, FT_HISTORY, 200, 0);
    ASSERT_OK(frame_rd_feed(&rd, buf, 50, 65536, on_frame, &s));
    ASSERT_EQ(rd.need, 208);
    ASSERT_EQ(mem_used() - base, malloc_usable_size(rd.part));
    ASSERT_LT(malloc_usable_size(rd.part), 208 + 32);
    frame_rd_close(&rd);
    ASSERT_EQ(mem_used(), base);
}
