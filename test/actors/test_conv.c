/* actors/conv: the index key of a DIRECT direction read back into its parts
 * (conv_skey_direct, what makes a new direction's records: store_msg.c), at every id
 * length, and everything that is not such a key refused. */
#include <string.h>

#include "actors/conv.h"
#include "cim.pb.h"
#include "support/test.h"

static void round_trip(const char *app, const char *a, const char *b)
{
    uint8_t key[CONV_SKEY_MAX];
    char p[KV_ID_MAX + 1], x[KV_ID_MAX + 1], y[KV_ID_MAX + 1];
    size_t n = conv_skey(key, app, cim_ConvType_DIRECT, a, b);

    ASSERT_TRUE(conv_skey_direct(key, n, p, x, y));
    ASSERT_STREQ(p, app);
    ASSERT_STREQ(x, a);
    ASSERT_STREQ(y, b);
}

TEST(conv_skey_direct_parts)
{
    char longest[KV_ID_MAX + 1];
    uint8_t key[CONV_SKEY_MAX];
    char p[KV_ID_MAX + 1], x[KV_ID_MAX + 1], y[KV_ID_MAX + 1];
    size_t n;

    memset(longest, 'L', KV_ID_MAX);
    longest[KV_ID_MAX] = '\0';
    round_trip("default", "alice", "bob");
    round_trip("a", "b", "b"); /* to oneself */
    round_trip(longest, longest, longest);
    /* a group's key, and keys cut or malformed, are no direction */
    n = conv_skey(key, "default", cim_ConvType_GROUP, "1000", NULL);
    ASSERT_TRUE(!conv_skey_direct(key, n, p, x, y));
    n = conv_skey(key, "default", cim_ConvType_DIRECT, "alice", "bob");
    for (size_t cut = 0; cut <= n - 3; cut++) /* up to "default\0>alice\0": no recipient */
        ASSERT_TRUE(!conv_skey_direct(key, cut, p, x, y));
    ASSERT_TRUE(!conv_skey_direct((const uint8_t *)"\0>a\0b", 5, p, x, y)); /* no app */
    ASSERT_TRUE(!conv_skey_direct((const uint8_t *)"d\0>\0b", 5, p, x, y)); /* no sender */
    ASSERT_TRUE(!conv_skey_direct((const uint8_t *)"d\0>a\0b\0c", 8, p, x, y)); /* 4 parts */
    ASSERT_TRUE(!conv_skey_direct((const uint8_t *)"d\0<a\0b", 6, p, x, y));
}
